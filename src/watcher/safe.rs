//! The watcher's side of safe rollouts (the rules are `core::gate`): the switches, the
//! workloads whose roll waits, and what was said about them. Nothing here decides: a
//! waiting workload is only a workload to check again when its namespace moves, and what
//! was said only keeps Events and alerts to one per hold. A restart forgets all of it and
//! loses nothing: every workload is checked at start, and the gate reads the objects.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use super::workloads::WorkloadKey;
use k8s_openapi::jiff::Timestamp;

use crate::core::gate::{Gate, Hold, Switches};
use crate::core::refs::SourceRef;
use crate::core::sync::Recover;
use crate::core::window::Windows;
use crate::services::namespaces::NamespaceSays;

/// The cluster-wide and per-namespace pause switches and the namespaces' roll windows:
/// `--paused`, and hashroll's switch ConfigMap (`paused: "true"`, `paused-namespaces:
/// "a,b"`, `window.<name>: "<roll window>"` for the namespaces whose
/// `--window-namespace-label` label names it).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct SwitchState {
    pub cluster: bool,
    pub namespaces: HashSet<String>,
    pub windows: BTreeMap<String, Arc<Windows>>,
}

/// Entries read from `paused-namespaces`.
const MAX_PAUSED_NAMESPACES: usize = 10_000;
/// Named windows read from the switch ConfigMap.
pub(crate) const MAX_NAMED_WINDOWS: usize = 64;
/// The prefix of a named window's key in the switch ConfigMap.
pub(crate) const WINDOW_PREFIX: &str = "window.";

impl SwitchState {
    /// Reads the switch ConfigMap's data (absent: nothing paused, no window); a window that
    /// does not parse is logged and left out.
    pub(crate) fn from_data<'a>(data: impl IntoIterator<Item = (&'a str, &'a str)>) -> SwitchState {
        let mut s = SwitchState::default();
        let mut too_many = false;
        for (k, v) in data {
            if k == "paused" {
                s.cluster = crate::core::syntax::parse_bool(v) == Some(true);
            } else if k == "paused-namespaces" {
                s.namespaces = v
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && n.len() <= 63)
                    .take(MAX_PAUSED_NAMESPACES)
                    .map(String::from)
                    .collect();
            } else if let Some(name) = k.strip_prefix(WINDOW_PREFIX) {
                if s.windows.len() >= MAX_NAMED_WINDOWS {
                    too_many = true;
                    continue;
                }
                match crate::core::window::parse(v) {
                    Ok(w) => {
                        s.windows.insert(name.to_string(), Arc::new(w));
                    }
                    Err(e) => tracing::warn!(
                        window = %name.chars().take(63).collect::<String>(),
                        error = %e,
                        "a roll window of the switch ConfigMap does not parse; left out"
                    ),
                }
            }
        }
        if too_many {
            tracing::warn!(
                "the switch ConfigMap names more than {MAX_NAMED_WINDOWS} windows; the rest \
                 are ignored"
            );
        }
        s
    }

    /// Reads hashroll's switch ConfigMap.
    pub(crate) fn from_configmap(cm: &k8s_openapi::api::core::v1::ConfigMap) -> SwitchState {
        SwitchState::from_data(
            cm.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

impl SwitchState {
    /// The switches for `namespace`, which says `say` of its rolls.
    pub(crate) fn switches_for(
        &self,
        namespace: &str,
        say: Option<&crate::services::namespaces::NamespaceSay>,
        default_timeout: Duration,
    ) -> Switches {
        Switches {
            cluster_paused: self.cluster,
            namespace_paused: self.namespaces.contains(namespace) || say.is_some_and(|s| s.paused),
            namespace_window: say
                .and_then(|s| s.window.as_ref())
                .and_then(|w| self.windows.get(w).cloned()),
            default_timeout,
        }
    }
}

/// Why a workload's roll is not going now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Paused,
    Wave,
    Held,
}

pub(crate) struct Safe {
    flag_paused: bool,
    switches: RwLock<SwitchState>,
    /// what each Namespace says of its rolls (kept by `namespaces::watch_says`)
    says: NamespaceSays,
    default_timeout: Duration,
    /// by namespace, the workloads whose roll waits, and why
    waiting: Mutex<HashMap<Arc<str>, HashMap<WorkloadKey, Why>>>,
    /// per held workload, the hold last reported on it
    said: Mutex<HashMap<WorkloadKey, Hold>>,
    /// the failures already reported on their source: (namespace, source, workload, change)
    failures: Mutex<HashSet<Failure>>,
}

/// A failure as reported on its source: (namespace, source, workload, change).
type Failure = (Arc<str>, SourceRef, String, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().recover()
}

/// Failures remembered against saying them twice before the memo starts over.
const MAX_FAILURES_SAID: usize = 10_000;

/// What [`Safe::note`] says should be reported of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// a Warning Event on the held workload (its hold is new or changed)
    pub workload: bool,
    /// a Warning Event on the source, an alert and a failure counted (the failure is new)
    pub source: bool,
}

impl Safe {
    pub(crate) fn new(flag_paused: bool, default_timeout: Duration, says: NamespaceSays) -> Safe {
        Safe {
            flag_paused,
            switches: RwLock::new(SwitchState::default()),
            says,
            default_timeout,
            waiting: Default::default(),
            said: Default::default(),
            failures: Default::default(),
        }
    }

    /// What the Namespaces say, to keep.
    pub(crate) fn says(&self) -> NamespaceSays {
        self.says.clone()
    }

    /// The switches as they stand for `namespace`.
    pub(crate) fn switches(&self, namespace: &str) -> Switches {
        let s = self.switches.read().recover();
        let says = self.says.read().recover();
        let say = says.get(namespace);
        let mut sw = s.switches_for(namespace, say, self.default_timeout);
        sw.cluster_paused |= self.flag_paused;
        sw
    }

    /// Sets the switch ConfigMap's state; the namespaces whose rolls it let go (all: `None`).
    pub(crate) fn set_switches(&self, new: SwitchState) -> Option<Vec<String>> {
        let mut s = self.switches.write().recover();
        if *s == new {
            return Some(Vec::new());
        }
        let released = if (s.cluster && !new.cluster) || s.windows != new.windows {
            None
        } else {
            Some(s.namespaces.difference(&new.namespaces).cloned().collect())
        };
        tracing::info!(
            cluster_paused = new.cluster,
            paused_namespaces = new.namespaces.len(),
            windows = new.windows.len(),
            "pause switches changed"
        );
        *s = new;
        released
    }

    /// Notes what the gate said of `key`; what of a hold is new and should be reported.
    pub(crate) fn note(&self, key: &WorkloadKey, gate: &Gate) -> Report {
        let why = match gate {
            Gate::Go => None,
            Gate::Paused(_) | Gate::Closed { .. } => Some(Why::Paused),
            Gate::Wait { .. } => Some(Why::Wave),
            Gate::Held(_) => Some(Why::Held),
        };
        {
            let mut w = lock(&self.waiting);
            match why {
                Some(why) => {
                    w.entry(key.namespace.clone())
                        .or_default()
                        .insert(key.clone(), why);
                }
                None => {
                    if let Some(ns) = w.get_mut(&key.namespace) {
                        ns.remove(key);
                        if ns.is_empty() {
                            w.remove(&key.namespace);
                        }
                    }
                }
            }
        }
        let Gate::Held(hold) = gate else {
            lock(&self.said).remove(key);
            return Report {
                workload: false,
                source: false,
            };
        };
        let workload = lock(&self.said).insert(key.clone(), hold.clone()).as_ref() != Some(hold);
        let mut f = lock(&self.failures);
        if f.len() >= MAX_FAILURES_SAID {
            f.clear();
        }
        let source = f.insert((
            key.namespace.clone(),
            hold.source.clone(),
            hold.failed.clone(),
            hold.change.clone(),
        ));
        Report { workload, source }
    }

    /// Forgets a workload that is gone.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.note(key, &Gate::Go);
    }

    /// The waiting workloads of `namespace` (to check again: something there moved).
    pub(crate) fn waiting_in(&self, namespace: &str) -> Vec<WorkloadKey> {
        lock(&self.waiting)
            .get(namespace)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// (held, waiting or paused) workloads, for the gauges.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let w = lock(&self.waiting);
        let held = w
            .values()
            .flat_map(|m| m.values())
            .filter(|w| **w == Why::Held)
            .count();
        let all: usize = w.values().map(HashMap::len).sum();
        (held, all - held)
    }
}

/// `--max-concurrent-rollouts`: at most `cap` workloads rolling at once. A workload counts
/// from the moment its roll is decided (in flight) and then while its controller reports
/// its rollout under way after a roll of hashroll's (the last-roll it wrote, younger than
/// the rollout timeout: a rollout that never ends frees its slot then, as a failure). What
/// waits for a slot waits in a queue per namespace, served in turn, so one namespace's
/// thousand changes do not starve another's one. After a restart the rolling ones are read
/// from the objects again (last-roll and status).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    cap: usize,
    timeout: Duration,
    rolling: HashMap<WorkloadKey, Timestamp>,
    in_flight: usize,
    waiting: BTreeMap<Arc<str>, VecDeque<WorkloadKey>>,
    /// the namespace served last
    turn: Option<Arc<str>>,
}

impl Slots {
    pub(crate) fn new(cap: usize, timeout: Duration) -> Slots {
        Slots {
            cap,
            timeout,
            ..Default::default()
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    fn busy(&self, now: Timestamp) -> usize {
        let live = |at: &Timestamp| {
            Duration::try_from(now.duration_since(*at)).unwrap_or_default() < self.timeout
        };
        self.rolling.values().filter(|at| live(at)).count() + self.in_flight
    }

    /// What the store now says of `key`: rolling since `since` (after a roll of ours), or
    /// not (`None`: complete, failed, or gone); whether that freed a slot.
    pub(crate) fn observe(&mut self, key: &WorkloadKey, since: Option<Timestamp>) -> bool {
        match since {
            Some(at) => {
                self.rolling.insert(key.clone(), at);
                false
            }
            None => self.rolling.remove(key).is_some(),
        }
    }

    /// Takes a slot for a roll of `key` (then [`Slots::done`] once written), or queues it.
    pub(crate) fn take(&mut self, key: &WorkloadKey, now: Timestamp) -> bool {
        if self.busy(now) < self.cap {
            self.in_flight += 1;
            if let Some(q) = self.waiting.get_mut(&key.namespace) {
                q.retain(|k| k != key);
                if q.is_empty() {
                    self.waiting.remove(&key.namespace);
                }
            }
            return true;
        }
        let q = self.waiting.entry(key.namespace.clone()).or_default();
        if !q.contains(key) {
            q.push_back(key.clone());
        }
        false
    }

    /// A roll that took a slot was written (or failed to be).
    pub(crate) fn done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The waiting rolls to check again now that slots may be free: as many as are free,
    /// one namespace after another.
    pub(crate) fn next(&mut self, now: Timestamp) -> Vec<WorkloadKey> {
        let mut free = self.cap.saturating_sub(self.busy(now));
        let mut out = Vec::new();
        while free > 0 && !self.waiting.is_empty() {
            let ns = match &self.turn {
                Some(t) => self
                    .waiting
                    .range::<str, _>((std::ops::Bound::Excluded(&**t), std::ops::Bound::Unbounded))
                    .next()
                    .or_else(|| self.waiting.iter().next())
                    .map(|(k, _)| k.clone()),
                None => self.waiting.keys().next().cloned(),
            };
            let Some(ns) = ns else { break };
            let q = self.waiting.get_mut(&ns).expect("a key of the map");
            if let Some(k) = q.pop_front() {
                out.push(k);
                free -= 1;
            }
            if q.is_empty() {
                self.waiting.remove(&ns);
            }
            self.turn = Some(ns);
        }
        out
    }

    /// Rolls waiting for a slot.
    pub(crate) fn queued(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    pub(crate) fn forget(&mut self, key: &WorkloadKey) {
        self.rolling.remove(key);
        if let Some(q) = self.waiting.get_mut(&key.namespace) {
            q.retain(|k| k != key);
            if q.is_empty() {
                self.waiting.remove(&key.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kind::WorkloadKind;

    fn key(ns: &str, name: &str) -> WorkloadKey {
        WorkloadKey {
            kind: WorkloadKind::Deployment,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn hold(change: &str) -> Gate {
        Gate::Held(Hold {
            source: SourceRef::configmap("cfg"),
            failed: "deployment/a".into(),
            why: "failed".into(),
            change: change.into(),
            since: None,
        })
    }

    #[test]
    fn a_hold_is_reported_once_per_workload_and_once_on_its_source() {
        let s = Safe::new(false, Duration::from_secs(600), Default::default());
        let (b, c) = (key("ns", "b"), key("ns", "c"));
        let r = s.note(&b, &hold("1"));
        assert!(r.workload && r.source);
        let r = s.note(&b, &hold("1"));
        assert!(!r.workload && !r.source, "said once");
        let r = s.note(&c, &hold("1"));
        assert!(
            r.workload && !r.source,
            "the source hears of a failure once"
        );
        let r = s.note(&b, &hold("2"));
        assert!(r.workload && r.source, "another change is another failure");
        assert_eq!(s.counts(), (2, 0));
        s.note(&c, &Gate::Paused("x".into()));
        assert_eq!(s.counts(), (1, 1));
        assert_eq!(s.waiting_in("ns").len(), 2);
        s.note(&b, &Gate::Go);
        s.forget(&c);
        assert_eq!(s.counts(), (0, 0));
        assert!(s.waiting_in("ns").is_empty());
    }

    #[test]
    fn switches_say_what_they_let_go() {
        let s = Safe::new(false, Duration::from_secs(1), Default::default());
        let data = |pairs: &'static [(&'static str, &'static str)]| {
            SwitchState::from_data(pairs.iter().copied())
        };
        assert_eq!(
            s.set_switches(data(&[("paused-namespaces", "a, b,,")])),
            Some(vec![])
        );
        assert!(s.switches("a").namespace_paused && !s.switches("c").namespace_paused);
        let mut let_go = s.set_switches(data(&[("paused-namespaces", "b")])).unwrap();
        let_go.sort();
        assert_eq!(let_go, ["a"]);
        s.set_switches(data(&[("paused", "true")]));
        assert!(s.switches("x").cluster_paused);
        assert_eq!(s.set_switches(data(&[])), None, "all let go");
        assert!(
            Safe::new(true, Duration::ZERO, Default::default())
                .switches("x")
                .cluster_paused
        );
        // a namespace's own pause, and the window its label names
        let says: NamespaceSays = Default::default();
        says.write().unwrap().insert(
            "n".into(),
            crate::services::namespaces::NamespaceSay {
                paused: true,
                window: Some("night".into()),
            },
        );
        let s = Safe::new(false, Duration::from_secs(1), says);
        assert!(s.switches("n").namespace_paused && !s.switches("m").namespace_paused);
        assert!(
            s.switches("n").namespace_window.is_none(),
            "no such window yet"
        );
        assert_eq!(
            s.set_switches(data(&[
                ("window.night", "02:00-05:00 UTC"),
                ("window.bad", "x")
            ])),
            None,
            "new windows: every namespace is checked"
        );
        let w = s.switches("n").namespace_window.expect("the named window");
        assert_eq!(w.text(), "02:00-05:00 UTC");
        assert!(s.switches("m").namespace_window.is_none());
    }

    #[test]
    fn slots_cap_the_rolling_and_serve_namespaces_in_turn() {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let mut s = Slots::new(2, Duration::from_secs(60));
        let (a1, a2, a3, b1) = (key("a", "1"), key("a", "2"), key("a", "3"), key("b", "1"));
        assert!(s.take(&a1, now) && s.take(&a2, now));
        // both written: rolling by their status now, no longer in flight
        s.observe(&a1, Some(now));
        s.observe(&a2, Some(now));
        s.done();
        s.done();
        assert!(!s.take(&a3, now) && !s.take(&key("a", "4"), now) && !s.take(&b1, now));
        assert!(!s.take(&a3, now), "queued once");
        assert_eq!(s.queued(), 3);
        assert!(s.next(now).is_empty(), "no slot free");
        // one completes: one slot, to the first namespace; the next free one goes to b,
        // though a queued first and has more
        assert!(s.observe(&a1, None));
        assert_eq!(s.next(now), std::slice::from_ref(&a3));
        assert!(s.take(&a3, now));
        s.observe(&a3, Some(now));
        s.done();
        assert!(s.observe(&a2, None));
        assert_eq!(s.next(now), std::slice::from_ref(&b1));
        // a rollout past the timeout frees its slot
        let later = now + std::time::Duration::from_secs(61);
        assert_eq!(s.next(later).len(), 1, "a3 timed out: a slot for a/4");
        // a clock gone backwards never panics
        let earlier: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        let _ = s.next(earlier);
        s.forget(&a3);
        assert_eq!(s.queued(), 0);
    }
}
