//! Safe rollouts: whether a roll the record calls for may go now. Pure: what it reads
//! (pause switches, waves, the rollout health of the workloads a roll follows) is handed in,
//! all of it read from the objects, so a restart or a new leader decides exactly as the
//! old one would have, and nothing of it lives only in memory.
//!
//! The rules, in order:
//! - paused (cluster switch, namespace switch, a changed source, the workload): wait, and
//!   roll once the switch is off, with the data then current;
//! - waves: within one change of a source, a workload of `hashroll.dev/wave: N` rolls only
//!   once every workload of a lower wave tracking that source has rolled for it and its
//!   rollout is complete; `hashroll.dev/after: deployment/api,...` names the workloads to
//!   follow instead of (or beside) the wave order;
//! - stop on failure: a predecessor whose rollout failed (its controller says so, or it is
//!   not complete within its rollout timeout) holds the roll until the source changes again
//!   (the fix rolls the failed one first) or the source carries
//!   `hashroll.dev/release: <change>`, the change the failed workload rolled to.

use std::num::NonZeroU32;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::health::Health;
use super::names::{AFTER, PAUSED, RELEASE, ROLL_WINDOW, ROLLOUT_TIMEOUT, WAVE};
use super::record::Entry;
use super::refs::SourceRef;
use super::source::change_id;
use super::syntax::parse_go_duration;
use super::window::Windows;

/// The highest wave read.
pub(crate) const MAX_WAVE: u32 = 1000;
/// Entries read from one `after` list.
pub(crate) const MAX_AFTER: usize = 32;
/// Bounds of a rollout timeout.
pub(crate) const MIN_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const MAX_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sources of one change a gate looks at (a change of more is gated on these).
pub(crate) const MAX_GATED_SOURCES: usize = 64;

/// The kinds an `after` entry may name, as written there.
const AFTER_KINDS: [&str; 6] = [
    "deployment",
    "statefulset",
    "daemonset",
    "rollout",
    "cronjob",
    "job",
];

/// What a workload says about its own rolls.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Settings {
    pub wave: u32,
    /// `(kind, name)`, kind lower-case as in [`AFTER_KINDS`]
    pub after: Vec<(String, String)>,
    pub paused: bool,
    pub timeout: Option<Duration>,
    /// `hashroll.dev/roll-window`: rolls only while one is open
    pub window: Option<Windows>,
}

impl Settings {
    /// Whether the workload takes part in an order (its rolls may have to wait for others).
    pub(crate) fn ordered(&self) -> bool {
        self.wave > 0 || !self.after.is_empty()
    }
}

/// Reads a workload's settings from its annotations; problems for the values it cannot
/// read (each is then taken as unset).
pub(crate) fn settings<'a>(get: impl Fn(&str) -> Option<&'a str>) -> (Settings, Vec<String>) {
    let mut s = Settings::default();
    let mut problems = Vec::new();
    if let Some(v) = get(WAVE) {
        match v.trim().parse::<u32>() {
            Ok(n) if n <= MAX_WAVE => s.wave = n,
            _ => problems.push(format!(
                "{WAVE}: {:?} is not a wave (0 to {MAX_WAVE}); taken as 0",
                clip(v)
            )),
        }
    }
    if let Some(v) = get(AFTER) {
        let mut entries = v.split(',').map(str::trim).filter(|e| !e.is_empty());
        for e in entries.by_ref().take(MAX_AFTER) {
            match e.split_once('/') {
                Some((k, n))
                    if AFTER_KINDS.contains(&k.to_ascii_lowercase().as_str())
                        && !n.is_empty()
                        && n.len() <= 253 =>
                {
                    s.after.push((k.to_ascii_lowercase(), n.to_string()))
                }
                _ => problems.push(format!(
                    "{AFTER}: {:?} is not kind/name (kind one of {}); skipped",
                    clip(e),
                    AFTER_KINDS.join(", ")
                )),
            }
        }
        if entries.next().is_some() {
            problems.push(format!(
                "{AFTER}: more than {MAX_AFTER} entries; the rest are ignored"
            ));
        }
    }
    if let Some(v) = get(PAUSED) {
        match super::syntax::parse_bool(v) {
            Some(b) => s.paused = b,
            None => problems.push(format!(
                "{PAUSED}: {:?} is not true or false; taken as false",
                clip(v)
            )),
        }
    }
    if let Some(v) = get(ROLLOUT_TIMEOUT) {
        match parse_go_duration(v) {
            Some(d) if d >= MIN_ROLLOUT_TIMEOUT => s.timeout = Some(d.min(MAX_ROLLOUT_TIMEOUT)),
            _ => problems.push(format!(
                "{ROLLOUT_TIMEOUT}: {:?} is not a duration of at least 1s; the default applies",
                clip(v)
            )),
        }
    }
    if let Some(v) = get(ROLL_WINDOW) {
        match super::window::parse(v) {
            Ok(w) => s.window = Some(w),
            Err(e) => problems.push(format!(
                "{ROLL_WINDOW}: {e}; rolls are not held for a window"
            )),
        }
    }
    (s, problems)
}

/// At most 64 characters of a value, for a message.
fn clip(v: &str) -> String {
    v.chars().take(64).collect()
}

/// A workload a roll may follow, tracking the changed source.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// `kind/name` as an `after` entry names it
    pub kind: String,
    pub name: String,
    pub settings: Settings,
    /// it has not rolled for this change yet
    pub pending: bool,
    pub health: Health,
    /// when hashroll last rolled it
    pub rolled_at: Option<Timestamp>,
    /// what its record holds for the source: the change it rolled to
    pub change: Option<String>,
}

/// One changed source of the roll.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub source: SourceRef,
    pub paused: bool,
    /// its release annotation, read by [`change_id`]
    pub release: Option<NonZeroU32>,
    /// the workloads tracking it that may come before the rolling one (shared: the rolls
    /// of one wave wait on the same list)
    pub peers: std::sync::Arc<[Peer]>,
}

/// The switches beyond the workload and its sources.
#[derive(Debug, Clone, Default)]
pub(crate) struct Switches {
    pub cluster_paused: bool,
    /// hashroll's switch ConfigMap or the Namespace's own annotation
    pub namespace_paused: bool,
    /// the roll window the Namespace's label names (a workload's own window wins)
    pub namespace_window: Option<std::sync::Arc<Windows>>,
    /// `--rollout-timeout`
    pub default_timeout: Duration,
}

/// Whether a roll may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    Go,
    /// paused by a switch: rolls once the switch is off
    Paused(String),
    /// outside the workload's roll windows: rolls when the next opens
    Closed {
        next: Option<Timestamp>,
    },
    /// waiting for its predecessors to roll and complete; `recheck`: when a timeout of
    /// one of them ends
    Wait {
        reason: String,
        recheck: Option<Duration>,
    },
    /// a predecessor's rollout of this change failed
    Held(Hold),
}

/// A failed predecessor that holds a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hold {
    /// the changed source
    pub source: SourceRef,
    /// `kind/name` of the failed workload
    pub failed: String,
    /// what failed: its controller's verdict or the timeout
    pub why: String,
    /// the change the failed one rolled to (what a release names)
    pub change: String,
    /// when it rolled, if hashroll wrote it
    pub since: Option<Timestamp>,
}

#[cfg(test)]
impl Gate {
    pub(crate) fn is_go(&self) -> bool {
        matches!(self, Gate::Go)
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held: the rollout of {} for this change of {} failed ({}); change {} again to \
             roll from the first wave, or release the rest with: kubectl annotate {} \
             {RELEASE}={} --overwrite",
            self.failed,
            self.source,
            self.why,
            self.source,
            format_args!("{} {}", self.source.kind.as_str(), self.source.name),
            self.change
        )
    }
}

/// The sources a roll is gated on: the tracked ones a changed entry covers (a source, or a
/// compact record's group holding it); at most [`MAX_GATED_SOURCES`].
pub(crate) fn gated_sources(
    changed: &[Entry],
    tracked: impl IntoIterator<Item = SourceRef>,
) -> Vec<SourceRef> {
    tracked
        .into_iter()
        .filter(|s| changed.iter().any(|c| c.covers(s)))
        .take(MAX_GATED_SOURCES)
        .collect()
}

/// Whether a workload whose check decided `roll` for the entries `changed` has yet to
/// roll for `source` (a changed group of a compact record: for each source it holds).
pub(crate) fn pending_for(roll: bool, changed: &[Entry], source: &SourceRef) -> bool {
    roll && changed.iter().any(|c| c.covers(source))
}

/// Whether a workload (`kind`/`name`, `settings`) may come before `me`: worth deciding its
/// stamp for [`gate`] (a cheap look at its annotations first).
pub(crate) fn may_precede(me: &Settings, kind: &str, name: &str, settings: &Settings) -> bool {
    settings.wave < me.wave || me.after.iter().any(|(k, n)| k == kind && n == name)
}

/// Whether `peer` comes before `me` (`me_kind`/`me_name`): a lower wave, or named in its
/// `after` list. The peers handed to [`gate`] are already cut of those that also come
/// after `me` ([`after_me`]).
fn precedes(peer: &Peer, me: &Settings, me_kind: &str, me_name: &str) -> bool {
    !(peer.kind == me_kind && peer.name == me_name)
        && may_precede(me, &peer.kind, &peer.name, &peer.settings)
}

/// A workload as the order sees it: `kind` (lower-case, as an `after` entry names it),
/// name and settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub settings: &'a Settings,
}

/// Of `others` (the workloads tracking a changed source beside `me`), which ones come after
/// `me` through the order: a higher wave, an `after` list naming it, or a chain of these.
/// One of them that would also come before `me` closes a cycle, and following it would
/// hold both for ever: `me` does not wait for it (nor it for `me`: the rule is the same
/// from its side). Work: O(n log n) in `others` plus their `after` entries.
pub(crate) fn after_me(me: Node<'_>, others: &[Node<'_>]) -> Vec<bool> {
    use std::collections::HashMap;
    let n = others.len();
    let mut reached = vec![false; n];
    if me.settings.after.is_empty() && others.iter().all(|o| o.settings.after.is_empty()) {
        // waves alone are a strict order: nothing before `me` is also after it
        return reached;
    }
    let index: HashMap<(&str, &str), usize> = others
        .iter()
        .enumerate()
        .map(|(i, o)| ((o.kind, o.name), i))
        .collect();
    // named_by[x]: the workloads whose `after` list names x (x comes before them)
    let mut named_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut named_by_me = Vec::new();
    for (i, o) in others.iter().enumerate() {
        for (k, nm) in &o.settings.after {
            if (k.as_str(), nm.as_str()) == (me.kind, me.name) {
                named_by_me.push(i);
            } else if let Some(&x) = index.get(&(k.as_str(), nm.as_str())) {
                named_by[x].push(i);
            }
        }
    }
    // by wave, highest first: once the lowest wave reached is w, every higher one is
    let mut by_wave: Vec<usize> = (0..n).collect();
    by_wave.sort_by_key(|&i| std::cmp::Reverse(others[i].settings.wave));
    let mut next_high = 0; // by_wave[..next_high] are reached through a wave
    let mut lowest = me.settings.wave;
    let mut queue: Vec<usize> = Vec::new();
    let reach = |i: usize, reached: &mut Vec<bool>, queue: &mut Vec<usize>| {
        if !reached[i] {
            reached[i] = true;
            queue.push(i);
        }
    };
    for &i in &named_by_me {
        reach(i, &mut reached, &mut queue);
    }
    loop {
        while next_high < n && others[by_wave[next_high]].settings.wave > lowest {
            reach(by_wave[next_high], &mut reached, &mut queue);
            next_high += 1;
        }
        let Some(x) = queue.pop() else { break };
        lowest = lowest.min(others[x].settings.wave);
        for &y in &named_by[x] {
            reach(y, &mut reached, &mut queue);
        }
    }
    reached
}

/// A switch that pauses the roll, or a closed roll window.
fn paused_or_closed(
    me: &Settings,
    switches: &Switches,
    sources: &[Source],
    now: Timestamp,
) -> Option<Gate> {
    if switches.cluster_paused {
        return Some(Gate::Paused(
            "every roll is paused (hashroll's switch)".into(),
        ));
    }
    if switches.namespace_paused {
        return Some(Gate::Paused(format!(
            "rolls in this namespace are paused (hashroll's switch, or {PAUSED} on the \
             namespace)"
        )));
    }
    if me.paused {
        return Some(Gate::Paused(format!("{PAUSED} is true on the workload")));
    }
    if let Some(s) = sources.iter().find(|s| s.paused) {
        return Some(Gate::Paused(format!("{PAUSED} is true on {}", s.source)));
    }
    if let Some(w) = me.window.as_ref().or(switches.namespace_window.as_deref())
        && !w.open_at(now)
    {
        return Some(Gate::Closed {
            next: w.next_opening(now),
        });
    }
    None
}

/// Whether a roll of `me` (`kind`/`name`, settings `me`) for a change of `sources` may go
/// at `now`.
pub(crate) fn gate(
    kind: &str,
    name: &str,
    me: &Settings,
    switches: Switches,
    sources: &[Source],
    now: Timestamp,
) -> Gate {
    if let Some(stopped) = paused_or_closed(me, &switches, sources, now) {
        return stopped;
    }
    let mut wait: Option<String> = None;
    let mut recheck: Option<Duration> = None;
    for s in sources {
        for p in s.peers.iter().filter(|p| precedes(p, me, kind, name)) {
            let who = format!("{}/{}", p.kind, p.name);
            if p.pending {
                wait.get_or_insert_with(|| {
                    format!(
                        "waiting for {who} (wave {}) to roll for {}",
                        p.settings.wave, s.source
                    )
                });
                continue;
            }
            let timeout = p.settings.timeout.unwrap_or(switches.default_timeout);
            let failed = match p.health {
                Health::Complete => continue,
                Health::Failed => Some("its controller reports the rollout failed".to_string()),
                Health::Progressing => {
                    let left = p.rolled_at.and_then(|at| {
                        let ran = Duration::try_from(now.duration_since(at)).unwrap_or_default();
                        timeout.checked_sub(ran)
                    });
                    match (p.rolled_at, left) {
                        (Some(_), None) => Some(format!(
                            "not complete within its rollout timeout of {}s",
                            timeout.as_secs()
                        )),
                        (_, left) => {
                            if let Some(l) = left {
                                recheck = Some(recheck.map_or(l, |r| r.min(l)));
                            }
                            wait.get_or_insert_with(|| {
                                format!("waiting for the rollout of {who} to complete")
                            });
                            None
                        }
                    }
                }
            };
            let Some(why) = failed else { continue };
            let change = p.change.as_deref().unwrap_or_default();
            if s.release.is_some() && s.release == change_id(change) {
                continue; // released
            }
            return Gate::Held(Hold {
                source: s.source.clone(),
                failed: who,
                why,
                change: change.to_string(),
                since: p.rolled_at,
            });
        }
    }
    match wait {
        Some(reason) => Gate::Wait { reason, recheck },
        None => Gate::Go,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::health::health;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn wave(n: u32) -> Settings {
        Settings {
            wave: n,
            ..Default::default()
        }
    }

    fn peer(name: &str, s: &Settings, pending: bool, health: Health) -> Peer {
        Peer {
            kind: "deployment".into(),
            name: name.into(),
            settings: s.clone(),
            pending,
            health,
            rolled_at: Some(at("2026-12-02T10:00:00Z")),
            change: Some(CHANGE.into()),
        }
    }

    fn source(peers: Vec<Peer>) -> Source {
        Source {
            source: SourceRef::configmap("cfg"),
            paused: false,
            release: None,
            peers: peers.into(),
        }
    }

    fn sw() -> Switches {
        Switches {
            default_timeout: Duration::from_secs(600),
            ..Default::default()
        }
    }

    const NOW: &str = "2026-12-02T10:01:00Z";
    const CHANGE: &str = "c0ffee0123456789";

    #[test]
    fn a_first_wave_goes_whatever_the_later_ones_do() {
        let (w0, w1) = (wave(0), wave(1));
        let peers = vec![peer("b", &w1, true, Health::Failed)];
        let g = gate("deployment", "a", &w0, sw(), &[source(peers)], at(NOW));
        assert_eq!(g, Gate::Go);
    }

    #[test]
    fn a_later_wave_waits_for_an_earlier_one_to_roll_then_complete() {
        let (w0, w1) = (wave(0), wave(1));
        let me = wave(1);
        for (pending, health, go) in [
            (true, Health::Complete, false),
            (false, Health::Progressing, false),
            (false, Health::Complete, true),
        ] {
            let peers = vec![
                peer("a", &w0, pending, health),
                // the same wave never waits for its own
                peer("c", &w1, true, Health::Progressing),
            ];
            let g = gate("deployment", "b", &me, sw(), &[source(peers)], at(NOW));
            assert_eq!(g.is_go(), go, "{pending} {health:?}: {g:?}");
            if !go {
                assert!(matches!(g, Gate::Wait { .. }), "{g:?}");
            }
        }
    }

    #[test]
    fn a_failed_earlier_wave_holds_until_released_for_its_change() {
        let (w0, me) = (wave(0), wave(2));
        let peers = || vec![peer("a", &w0, false, Health::Failed)];
        let g = gate("deployment", "b", &me, sw(), &[source(peers())], at(NOW));
        let Gate::Held(h) = &g else { panic!("{g:?}") };
        assert_eq!(
            (h.failed.as_str(), h.change.as_str()),
            ("deployment/a", CHANGE)
        );
        assert!(
            h.to_string()
                .contains("hashroll.dev/release=c0ffee0123456789"),
            "{h}"
        );
        // a release of another change does not release this one
        let mut s = source(peers());
        s.release = change_id("0123456789abcdef");
        assert!(matches!(
            gate("deployment", "b", &me, sw(), &[s], at(NOW)),
            Gate::Held(_)
        ));
        let mut s = source(peers());
        s.release = change_id(CHANGE);
        assert_eq!(gate("deployment", "b", &me, sw(), &[s], at(NOW)), Gate::Go);
        // the fix: the failed one is pending again, the later wave waits for it
        let peers = vec![peer("a", &w0, true, Health::Failed)];
        assert!(matches!(
            gate("deployment", "b", &me, sw(), &[source(peers)], at(NOW)),
            Gate::Wait { .. }
        ));
    }

    #[test]
    fn a_rollout_past_its_timeout_counts_as_failed_and_before_it_asks_again_at_the_end() {
        let w0 = Settings {
            timeout: Some(Duration::from_secs(90)),
            ..wave(0)
        };
        let me = wave(1);
        let peers = || vec![peer("a", &w0, false, Health::Progressing)];
        let g = gate("deployment", "b", &me, sw(), &[source(peers())], at(NOW));
        assert_eq!(
            g,
            Gate::Wait {
                reason: "waiting for the rollout of deployment/a to complete".into(),
                recheck: Some(Duration::from_secs(30)),
            }
        );
        let later = at("2026-12-02T10:01:31Z");
        let g = gate("deployment", "b", &me, sw(), &[source(peers())], later);
        assert!(
            matches!(&g, Gate::Held(h) if h.why.contains("90s")),
            "{g:?}"
        );
        // a roll time far in the future (a clock gone wrong) never panics
        let mut p = peers();
        p[0].rolled_at = Some(at("2999-01-01T00:00:00Z"));
        assert!(matches!(
            gate("deployment", "b", &me, sw(), &[source(p)], at(NOW)),
            Gate::Wait { .. }
        ));
    }

    #[test]
    fn after_names_its_predecessors() {
        let me = Settings {
            after: vec![("deployment".into(), "db".into())],
            ..wave(0)
        };
        let db = wave(0);
        let other = wave(0);
        let peers = vec![
            peer("db", &db, true, Health::Complete),
            peer("x", &other, true, Health::Complete),
        ];
        let g = gate("deployment", "api", &me, sw(), &[source(peers)], at(NOW));
        assert!(
            matches!(&g, Gate::Wait { reason, .. } if reason.contains("deployment/db")),
            "{g:?}"
        );
    }

    fn after(w: u32, names: &[&str]) -> Settings {
        Settings {
            after: names
                .iter()
                .map(|n| ("deployment".to_string(), n.to_string()))
                .collect(),
            ..wave(w)
        }
    }

    /// For each workload of `all` (name, settings), the others it follows: those that may
    /// precede it and do not also come after it.
    fn follows(all: &[(&str, Settings)]) -> Vec<Vec<String>> {
        fn node<'a>((n, s): &'a (&'a str, Settings)) -> Node<'a> {
            Node {
                kind: "deployment",
                name: n,
                settings: s,
            }
        }
        all.iter()
            .map(|me| {
                let others: Vec<_> = all.iter().filter(|o| o.0 != me.0).collect();
                let nodes: Vec<Node> = others.iter().map(|o| node(o)).collect();
                let cut = after_me(node(me), &nodes);
                others
                    .iter()
                    .zip(cut)
                    .filter(|(o, cut)| !cut && may_precede(&me.1, "deployment", o.0, &o.1))
                    .map(|(o, _)| o.0.to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_cycle_of_any_length_holds_none_of_its_members() {
        // (what, the workloads, whom each follows)
        type Case<'a> = (&'a str, Vec<(&'a str, Settings)>, Vec<Vec<&'a str>>);
        let table: Vec<Case> = vec![
            (
                "waves alone",
                vec![
                    ("a", wave(0)),
                    ("b", wave(1)),
                    ("c", wave(1)),
                    ("d", wave(2)),
                ],
                vec![vec![], vec!["a"], vec!["a"], vec!["a", "b", "c"]],
            ),
            (
                "a chain of after",
                vec![
                    ("a", wave(0)),
                    ("b", after(0, &["a"])),
                    ("c", after(0, &["b"])),
                ],
                vec![vec![], vec!["a"], vec!["b"]],
            ),
            (
                "two naming each other",
                vec![("a", after(0, &["b"])), ("b", after(0, &["a"]))],
                vec![vec![], vec![]],
            ),
            (
                "three in a ring",
                vec![
                    ("a", after(0, &["c"])),
                    ("b", after(0, &["a"])),
                    ("c", after(0, &["b"])),
                ],
                vec![vec![], vec![], vec![]],
            ),
            (
                "an after list against the waves",
                vec![("a", after(0, &["b"])), ("b", wave(1)), ("c", wave(2))],
                // a and b cut each other; c still follows both
                vec![vec![], vec![], vec!["a", "b"]],
            ),
            (
                "a ring through a wave, beside a free chain",
                vec![
                    ("a", wave(0)),
                    ("b", after(1, &["c"])),
                    ("c", after(0, &["a"])),
                    ("d", after(0, &["a"])),
                ],
                // c after a; b (wave 1) after c (wave 0): no ring, all follow
                vec![vec![], vec!["a", "c", "d"], vec!["a"], vec!["a"]],
            ),
            (
                "a ring closed by a wave",
                vec![
                    ("a", after(0, &["c"])),
                    ("b", wave(0)),
                    ("c", after(1, &["a"])),
                ],
                // c (wave 1) after a, a after c: a ring; b (wave 0) comes before c
                vec![vec![], vec![], vec!["b"]],
            ),
        ];
        for (what, all, want) in table {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(follows(&all), want, "{what}");
        }
    }

    #[test]
    fn every_pause_switch_pauses() {
        let me = wave(0);
        let paused_me = Settings {
            paused: true,
            ..wave(0)
        };
        let mut paused_source = source(vec![]);
        paused_source.paused = true;
        let cases: [(&Settings, Switches, Vec<Source>); 4] = [
            (
                &me,
                Switches {
                    cluster_paused: true,
                    ..sw()
                },
                vec![],
            ),
            (
                &me,
                Switches {
                    namespace_paused: true,
                    ..sw()
                },
                vec![],
            ),
            (&paused_me, sw(), vec![]),
            (&me, sw(), vec![paused_source]),
        ];
        for (s, switches, sources) in cases {
            let g = gate("deployment", "a", s, switches, &sources, at(NOW));
            assert!(matches!(g, Gate::Paused(_)), "{g:?}");
        }
        assert_eq!(gate("deployment", "a", &me, sw(), &[], at(NOW)), Gate::Go);
    }

    #[test]
    fn outside_its_window_a_roll_waits_for_the_next_opening() {
        let me = Settings {
            window: Some(crate::core::window::parse("02:00-03:00").unwrap()),
            ..wave(0)
        };
        assert_eq!(
            gate("deployment", "a", &me, sw(), &[], at(NOW)),
            Gate::Closed {
                next: Some(at("2026-12-03T02:00:00Z"))
            }
        );
        assert_eq!(
            gate(
                "deployment",
                "a",
                &me,
                sw(),
                &[],
                at("2026-12-03T02:10:00Z")
            ),
            Gate::Go
        );
        // the namespace's window applies to a workload without its own; its own wins
        let ns_window = Switches {
            namespace_window: Some(std::sync::Arc::new(
                crate::core::window::parse("10:30-11:00").unwrap(),
            )),
            ..sw()
        };
        assert_eq!(
            gate("deployment", "a", &wave(0), ns_window.clone(), &[], at(NOW)),
            Gate::Closed {
                next: Some(at("2026-12-02T10:30:00Z"))
            }
        );
        assert_eq!(
            gate(
                "deployment",
                "a",
                &me,
                ns_window,
                &[],
                at("2026-12-03T02:10:00Z")
            ),
            Gate::Go
        );
    }

    #[test]
    fn settings_are_bounded_and_bad_values_reported() {
        let read = |pairs: &[(&str, &str)]| {
            let m: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let (s, p) = settings(|k| m.get(k).map(String::as_str));
            (s, p)
        };
        let (s, p) = read(&[
            (WAVE, "2"),
            (AFTER, "Deployment/api, statefulset/db"),
            (PAUSED, "true"),
            (ROLLOUT_TIMEOUT, "5m"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.wave, 2);
        assert_eq!(s.after[0], ("deployment".into(), "api".into()));
        assert!(s.paused && s.timeout == Some(Duration::from_secs(300)));
        let long = "deployment/x,".repeat(100);
        let (s, p) = read(&[
            (WAVE, "99999999999"),
            (AFTER, &long),
            (PAUSED, "maybe"),
            (ROLLOUT_TIMEOUT, "0s"),
            (ROLL_WINDOW, "someday"),
        ]);
        assert_eq!(
            s,
            Settings {
                after: vec![("deployment".into(), "x".into()); MAX_AFTER],
                ..Default::default()
            }
        );
        assert_eq!(p.len(), 5, "{p:?}");
        let (_, p) = read(&[(AFTER, "pod/x,deployment/")]);
        assert_eq!(p.len(), 2, "{p:?}");
        let (s, _) = read(&[(ROLLOUT_TIMEOUT, "9999h")]);
        assert_eq!(s.timeout, Some(MAX_ROLLOUT_TIMEOUT));
    }

    #[test]
    fn health_reads_each_controller_s_status() {
        let dep = |status: Value| json!({"spec": {"replicas": 2}, "status": status});
        let done = json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2});
        let cases = [
            ("Deployment", dep(done.clone()), Some(3), Health::Complete),
            // the controller has not seen the new template yet
            (
                "Deployment",
                dep(done.clone()),
                Some(4),
                Health::Progressing,
            ),
            (
                "Deployment",
                dep(json!({"observedGeneration": 3, "replicas": 3,
                "updatedReplicas": 2, "availableReplicas": 2})),
                Some(3),
                Health::Progressing,
            ),
            (
                "Deployment",
                dep(json!({"observedGeneration": 3, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})),
                Some(3),
                Health::Failed,
            ),
            (
                "StatefulSet",
                json!({"spec": {"replicas": 1}, "status": {"observedGeneration": 1,
                "currentRevision": "a", "updateRevision": "b", "readyReplicas": 1}}),
                Some(1),
                Health::Progressing,
            ),
            (
                "StatefulSet",
                json!({"spec": {"replicas": 1}, "status": {"observedGeneration": 1,
                "currentRevision": "b", "updateRevision": "b", "readyReplicas": 1}}),
                Some(1),
                Health::Complete,
            ),
            (
                "DaemonSet",
                json!({"status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 1, "numberAvailable": 2}}),
                Some(1),
                Health::Progressing,
            ),
            (
                "DaemonSet",
                json!({"status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 2, "numberAvailable": 2}}),
                Some(1),
                Health::Complete,
            ),
            (
                "Rollout",
                json!({"status": {"phase": "Degraded"}}),
                Some(1),
                Health::Failed,
            ),
            (
                "Rollout",
                json!({"status": {"phase": "Progressing"}}),
                Some(1),
                Health::Progressing,
            ),
            (
                "Rollout",
                json!({"status": {"phase": "Healthy"}}),
                Some(1),
                Health::Complete,
            ),
            ("Job", json!({}), Some(1), Health::Complete),
            // a status of the wrong shape is read as not complete, never a panic
            (
                "Deployment",
                json!({"status": "x", "spec": []}),
                Some(1),
                Health::Progressing,
            ),
        ];
        for (kind, data, generation, want) in cases {
            assert_eq!(health(kind, &data, generation), want, "{kind} {data}");
        }
    }
}
