//! The text of `explain`'s reports (JSON is their serde form).

use super::{SourceReport, WorkloadReport};
use crate::core::record::State;

/// The first 8 characters of a digest (a record is tenant input: no slicing inside a char).
fn short(d: &str) -> &str {
    if d == State::Absent.as_str() {
        d
    } else {
        d.get(..8).unwrap_or(d)
    }
}

/// Pretty JSON of a report, with a trailing newline.
pub(super) fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// A tracked source's line: its state, how it compares with the record, and why.
fn tracked_line(s: &mut String, t: &super::TrackedSource) {
    use std::fmt::Write;
    let keys = t
        .keys
        .as_ref()
        .map(|k| format!(" (keys: {})", k.join(", ")))
        .unwrap_or_default();
    let state = if t.exists {
        format!("exists, digest {}", short(&t.digest))
    } else {
        "absent".to_string()
    };
    let rec = match &t.recorded {
        Some(d) if *d == t.digest => "recorded: same".to_string(),
        Some(d) => format!("recorded: {} (differs)", short(d)),
        None => "not recorded yet".to_string(),
    };
    let _ = writeln!(s, "    {}{keys}: {state}; {rec}", t.source);
    for reason in &t.reasons {
        let _ = writeln!(s, "        because {reason}");
    }
}

pub(crate) fn render_workload(r: &WorkloadReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{} in namespace {}", r.workload, r.namespace);
    if !r.opted_in && r.tracked.is_empty() {
        let _ = writeln!(
            s,
            "  not opted in: no reloader.stakater.com/* annotation (and no --auto-reload-all); nothing is tracked"
        );
        return s;
    }
    let _ = writeln!(s, "  tracks {} source(s):", r.tracked.len());
    for t in &r.tracked {
        tracked_line(&mut s, t);
    }
    let _ = writeln!(
        s,
        "  record it carries: {}",
        r.record
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default())
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(
        s,
        "  record it should carry: {}",
        r.should_be
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default())
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(s, "  record key: {}", r.record_key);
    let _ = writeln!(s, "  roll token: {}", r.token.as_deref().unwrap_or("none"));
    if !r.mode.is_empty() {
        let _ = writeln!(s, "  mode: {}", r.mode);
    }
    if r.roll_pending {
        let _ = writeln!(
            s,
            "  roll pending: yes, for {}",
            r.pending_sources.join(", ")
        );
    } else {
        let _ = writeln!(s, "  roll pending: no");
    }
    for line in &r.rolling {
        let _ = writeln!(s, "  {line}");
    }
    if let Some(g) = &r.gate {
        let _ = writeln!(s, "  the pending roll: {g}");
    }
    if r.min_roll_interval != "0s" {
        let _ = writeln!(
            s,
            "  minimum interval between rolls: {}; last roll: {}; next roll: {}",
            r.min_roll_interval,
            r.last_roll.as_deref().unwrap_or("none recorded"),
            r.next_roll_not_before
                .as_deref()
                .map(|t| format!("not before {t} (changes until then are held)"))
                .unwrap_or_else(|| "may happen now".into())
        );
    }
    s
}

pub(crate) fn render_source(r: &SourceReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} in namespace {} ({})",
        r.source,
        r.namespace,
        if r.exists { "exists" } else { "absent" }
    );
    if r.would_roll.is_empty() {
        let _ = writeln!(s, "  no workload tracks it: a change to it rolls nothing");
    } else {
        let _ = writeln!(
            s,
            "  a change to its data would roll {} workload(s):",
            r.would_roll.len()
        );
        for t in &r.would_roll {
            let _ = writeln!(s, "    {}", t.workload);
            for reason in &t.reasons {
                let _ = writeln!(s, "        because {reason}");
            }
            if let Some(p) = &t.pending {
                let _ = writeln!(s, "        roll pending: {p}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cmd::explain::{TrackedSource, Tracker};

    fn report(tracked: Vec<TrackedSource>) -> WorkloadReport {
        WorkloadReport {
            workload: "deployment/web".into(),
            namespace: "shop".into(),
            opted_in: true,
            tracked,
            record: None,
            should_be: None,
            token: None,
            roll_pending: false,
            pending_sources: vec![],
            record_key: "current".into(),
            min_roll_interval: "0s".into(),
            last_roll: None,
            next_roll_not_before: None,
            rolling: vec![],
            gate: None,
            mode: String::new(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_digest_is_cut_to_eight_characters_never_inside_one() {
        assert_eq!(short("0123456789abcdef"), "01234567");
        assert_eq!(short("absent"), "absent");
        assert_eq!(short("abc"), "abc");
        // a tenant's record may hold anything: a cut inside a character gives it whole
        assert_eq!(short("ééééééé"), "éééé");
        assert_eq!(short("abcdeéé"), "abcdeéé");
    }

    #[test]
    fn a_workload_not_opted_in_says_so_and_nothing_more() {
        let mut r = report(vec![]);
        r.opted_in = false;
        let text = render_workload(&r);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("not opted in"), "{text}");
    }

    #[test]
    fn each_tracked_source_says_whether_its_record_differs() {
        let same = TrackedSource {
            source: "configmap/app".into(),
            reasons: vec!["it is mounted".into()],
            keys: Some(vec!["a".into(), "b".into()]),
            exists: true,
            digest: "1111111122222222".into(),
            recorded: Some("1111111122222222".into()),
        };
        let differs = TrackedSource {
            source: "secret/db".into(),
            reasons: vec![],
            keys: None,
            exists: true,
            digest: "3333333344444444".into(),
            recorded: Some("5555555566666666".into()),
        };
        let gone = TrackedSource {
            source: "secret/old".into(),
            reasons: vec![],
            keys: None,
            exists: false,
            digest: State::Absent.to_string(),
            recorded: None,
        };
        let mut r = report(vec![same, differs, gone]);
        r.roll_pending = true;
        r.pending_sources = vec!["secret/db".into()];
        r.min_roll_interval = "5m".into();
        let text = render_workload(&r);
        for want in [
            "tracks 3 source(s):",
            "configmap/app (keys: a, b): exists, digest 11111111; recorded: same",
            "because it is mounted",
            "secret/db: exists, digest 33333333; recorded: 55555555 (differs)",
            "secret/old: absent; not recorded yet",
            "roll pending: yes, for secret/db",
            "minimum interval between rolls: 5m; last roll: none recorded; next roll: may happen now",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        // the breaker's line only when it is on
        r.min_roll_interval = "0s".into();
        assert!(!render_workload(&r).contains("minimum interval"));
    }

    #[test]
    fn a_source_says_what_its_change_would_roll() {
        let mut r = SourceReport {
            source: "configmap/app".into(),
            namespace: "shop".into(),
            exists: false,
            would_roll: vec![],
        };
        let text = render_source(&r);
        assert!(
            text.contains("(absent)") && text.contains("rolls nothing"),
            "{text}"
        );
        r.exists = true;
        r.would_roll = vec![Tracker {
            workload: "deployment/web".into(),
            reasons: vec!["it names it".into()],
            pending: Some("waits for wave 0".into()),
        }];
        let text = render_source(&r);
        for want in [
            "(exists)",
            "would roll 1 workload(s):",
            "    deployment/web",
            "because it names it",
            "roll pending: waits for wave 0",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
    }
}
