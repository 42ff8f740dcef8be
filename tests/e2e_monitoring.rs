//! The alert rules and the dashboard, checked by the tools that consume them: `promtool
//! check rules` and `promtool test rules` (promtool built from its Go module) on the chart's
//! `files/alerts.yaml`, and every metric the rules and the dashboard name is in `/metrics` of
//! a hashroll that has rolled something, with the names and types Reloader's dashboards
//! read.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use support::*;

fn files() -> String {
    format!("{}/charts/hashroll/files", env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> (bool, String) {
    let bin = hashroll_harness::tools::tool("promtool")
        .unwrap_or_else(|e| panic!("cannot build promtool: {e}"));
    let out = Command::new(bin)
        .args(args)
        .current_dir(files())
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yaml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // every alert has a unit test that fires it
    let rules = std::fs::read_to_string(format!("{}/alerts.yaml", files())).unwrap();
    let tests = std::fs::read_to_string(format!("{}/alerts_test.yaml", files())).unwrap();
    for line in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!(
                "alertname: {line}\n        exp_alerts:\n          - exp_labels"
            )),
            "{line} has no test that fires it"
        );
    }
}

/// The metric names in a PromQL expression: identifiers of hashroll's, Reloader's or the
/// process's families, a histogram's `_bucket`/`_sum`/`_count` taken back to its family.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if ["hashroll_", "reloader_", "process_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            let base = word
                .strip_suffix("_bucket")
                .or_else(|| word.strip_suffix("_sum"))
                .or_else(|| word.strip_suffix("_count"))
                .unwrap_or(&word);
            out.insert(base.to_string());
        }
        word.clear();
    }
    out
}

/// Every PromQL expression of the rules and the dashboard.
fn expressions() -> Vec<String> {
    let rules = std::fs::read_to_string(format!("{}/alerts.yaml", files())).unwrap();
    let mut out: Vec<String> = Vec::new();
    // `expr:` values, folded (`>-`) ones included
    let mut lines = rules.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(v) = l.trim().strip_prefix("expr:") else {
            continue;
        };
        let mut e = v.trim().trim_start_matches(">-").to_string();
        while lines
            .peek()
            .is_some_and(|n| n.starts_with("          ") && !n.trim_start().starts_with("for:"))
        {
            e.push(' ');
            e.push_str(lines.next().unwrap().trim());
        }
        out.push(e);
    }
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/dashboard.json", files())).unwrap(),
    )
    .unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Family names in an exposition (`# TYPE NAME ...`), and the type of each.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn every_metric_the_rules_and_dashboard_name_is_exported() {
    let exprs = expressions();
    assert!(exprs.len() >= 17, "{exprs:?}");
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        wanted.contains("reloader_reload_executed_total"),
        "{wanted:?}"
    );

    let client = client().await;
    let ns = namespace("monitoring");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    h.env
        .push(("METRICS_COUNT_BY_NAMESPACE".into(), "enabled".into()));
    h.restart().await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["app"]),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=app", 2).await;
    let text = wait_for("the roll counted", DEADLINE, || async {
        let m = h.metrics().await;
        m.contains("reloader_action_total{").then_some(m)
    })
    .await;
    let fams = families(&text);
    // a family `X` of type counter is exposed as `X_total`; Reloader's by-namespace counter
    // keeps its own name
    let exported: BTreeSet<String> = fams
        .iter()
        .flat_map(|(name, ty)| {
            let mut v = vec![name.clone()];
            if ty == "counter" && !name.ends_with("_total") {
                v.push(format!("{name}_total"));
            }
            v
        })
        .collect();
    let missing: Vec<_> = wanted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\n{text}"
    );
    // with a sample, not only a TYPE line (but the families counted only on failures)
    let on_failure = ["reloader_errors_total", "hashroll_watch_restarts_total"];
    for name in wanted.iter().filter(|n| !on_failure.contains(&n.as_str())) {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name.as_str()) && !l.starts_with('#')),
            "{name} has no sample\n{text}"
        );
    }
    // Reloader's names, with Reloader's labels
    for want in [
        "reloader_reload_executed_total{success=\"true\"} 1",
        &format!(
            "reloader_reload_executed_total_by_namespace{{success=\"true\",namespace=\"{ns}\"}} 1"
        ),
        "reloader_action_total{workload_kind=\"Deployment\",result=\"success\"} 1",
        "reloader_events_received_total{event_type=\"update\",resource_type=\"configmap\"}",
        "reloader_workloads_matched_total{kind=\"Deployment\"} 1",
        "hashroll_leader 1",
        "hashroll_caches_synced 1",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}
