//! The text of `explain`'s reports (JSON is their serde form).

use super::{SourceReport, WorkloadReport};
use crate::core::digest::ABSENT;

/// The first 8 characters of a digest (a record is tenant input: no slicing inside a char).
fn short(d: &str) -> &str {
    if d == ABSENT {
        d
    } else {
        d.get(..8).unwrap_or(d)
    }
}

/// Pretty JSON of a report, with a trailing newline.
pub(super) fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
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
