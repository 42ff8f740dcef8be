//! The reference pages under `docs/src/reference/`, rendered from the code itself so they
//! cannot drift from it: the flags from clap's command (`Cli`), the annotations from
//! `core::names::EVERY`, the metrics from the registry's own exposition, the Event reasons
//! from the writer's `Reason`, the chart's values from `values.yaml` and
//! `values.schema.json`. `reference_pages_are_current` fails when a page differs from what
//! the code renders; `make reference` (`HASHROLL_BLESS=1`) writes them.
//!
//! Which chart value gives which flag is a table here, not read from the template (a Go
//! template says it only by running it); the test holds every row to the template's text and
//! every flag the template gives to a row. The small values.yaml reader is our own: the
//! `# --` comments that document a value are not something a YAML parser keeps.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use clap::CommandFactory;

use crate::cmd::cli::Cli;
use crate::core::names::{Access, EVERY};
use crate::services::metrics::Metrics;
use crate::watcher::writer::Reason;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Where a flag's chart value reaches the container.
enum Via {
    /// an argument `- --FLAG...` of `hashroll.args` (templates/_helpers.tpl)
    Arg,
    /// the flag's environment variable, `- name: VAR` in templates/deployment.yaml
    Env,
    /// this text of templates/deployment.yaml (a Secret loaded as environment)
    Text(&'static str),
}

/// One flag of `hashroll run` the chart sets: the values it comes from (each must appear
/// where the template gives the flag), or none and what sets it.
struct ChartRow {
    flag: &'static str,
    values: &'static [&'static str],
    via: Via,
    /// what the cell says when `values` alone does not
    note: &'static str,
}

const fn row(flag: &'static str, values: &'static [&'static str]) -> ChartRow {
    ChartRow {
        flag,
        values,
        via: Via::Arg,
        note: "",
    }
}

const CHART_ROWS: &[ChartRow] = &[
    ChartRow {
        note: "`certificates.mode: self-managed`",
        ..row("self-managed-certs", &["certificates.mode"])
    },
    row("tls-secret", &["certificates.secretName"]),
    ChartRow {
        note: "`certificates.mode: secret` or `cert-manager`: the mounted Secret",
        ..row("tls-cert-file", &["certificates.mode"])
    },
    ChartRow {
        note: "`certificates.mode: secret` or `cert-manager`: the mounted Secret",
        ..row("tls-key-file", &["certificates.mode"])
    },
    ChartRow {
        note: "set by the chart: the release's name",
        ..row("webhook-config", &[])
    },
    ChartRow {
        note: "set by the chart: the release's name",
        ..row("service-name", &[])
    },
    ChartRow {
        note: "set by the chart: port 9443",
        ..row("webhook-addr", &[])
    },
    ChartRow {
        note: "set by the chart: port 9090",
        ..row("metrics-addr", &[])
    },
    ChartRow {
        note: "set by the chart: the release's Deployment",
        ..row("owner-deployment", &[])
    },
    row("enable-ha", &["enableHA"]),
    row("namespaced", &["namespaced"]),
    ChartRow {
        note: "`namespaces`; `watchGlobally: false` (or `namespaced` with none): the release's namespace",
        ..row("namespaces", &["namespaces", "watchGlobally"])
    },
    row("namespaces-to-ignore", &["ignoreNamespaces"]),
    row("namespace-selector", &["namespaceSelector"]),
    row("max-concurrent-rollouts", &["maxConcurrentRollouts"]),
    row("rollout-timeout", &["rolloutTimeout"]),
    row("paused", &["paused"]),
    row("window-namespace-label", &["windowNamespaceLabel"]),
    row("resource-label-selector", &["resourceLabelSelector"]),
    row(
        "resources-to-ignore",
        &["ignoreSecrets", "ignoreConfigMaps"],
    ),
    row("ignored-workload-types", &["ignoreJobs", "ignoreCronJobs"]),
    row("is-argo-rollouts", &["isArgoRollouts"]),
    row("reload-on-create", &["reloadOnCreate"]),
    row("reload-on-delete", &["reloadOnDelete"]),
    row("auto-reload-all", &["autoReloadAll"]),
    row("enable-csi-integration", &["enableCSIIntegration"]),
    row("cronjob-run-on-change", &["cronjobRunOnChange"]),
    row("log-format", &["logFormat"]),
    row("log-level", &["logLevel"]),
    ChartRow {
        note: "`clientCA.existingSecret`: its `ca.crt`, mounted",
        ..row("client-ca-file", &["clientCA.existingSecret"])
    },
    row("lease-name", &["leaseName"]),
    ChartRow {
        via: Via::Env,
        ..row("alert-on-reload", &["alerts.onReload"])
    },
    ChartRow {
        via: Via::Env,
        ..row("alert-sink", &["alerts.sink"])
    },
    ChartRow {
        via: Via::Env,
        ..row("alert-additional-info", &["alerts.additionalInfo"])
    },
    ChartRow {
        via: Via::Text("envFrom:"),
        note: "`alerts.existingSecret`: its `ALERT_WEBHOOK_URL`",
        ..row("alert-webhook-url", &["alerts.existingSecret"])
    },
    ChartRow {
        via: Via::Text("envFrom:"),
        note: "`alerts.existingSecret`: its `ALERT_WEBHOOK_PROXY`",
        ..row("alert-webhook-proxy", &["alerts.existingSecret"])
    },
    ChartRow {
        via: Via::Env,
        ..row("webhook-url", &["webhookUrl", "webhookUrlExistingSecret"])
    },
];

/// Environment variables hashroll reads that are no flag's: (name, chart value, meaning).
const ENV_ONLY: &[(&str, &str, &str)] = &[
    (
        "METRICS_COUNT_BY_NAMESPACE",
        "enableMetricsByNamespace",
        "`enabled`: count rolls by namespace too, `reloader_reload_executed_total_by_namespace` (Reloader's)",
    ),
    (
        "POD_NAMESPACE",
        "",
        "hashroll's own namespace when `--namespace` is not given (the chart sets it from the pod)",
    ),
    (
        "POD_NAME",
        "",
        "this replica's name in the Lease and on its Events (the chart sets it from the pod)",
    ),
    (
        "HOSTNAME",
        "",
        "the replica's name when `POD_NAME` is not set",
    ),
];

/// A Markdown table cell: one line, no `|` that ends it.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn code(s: &str) -> String {
    if s.is_empty() {
        "`\"\"`".into()
    } else {
        format!("`{s}`")
    }
}

fn header(title: &str, from: &str) -> String {
    format!(
        "# {title}\n\n<!-- generated: do not edit; run `make reference` -->\n\
         Generated from {from} by `make reference`; a test fails when this page and the code \
         disagree.\n"
    )
}

/// The text of a chart file.
fn chart_file(name: &str) -> String {
    let path = format!("{ROOT}/charts/hashroll/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines around the one holding `anchor`: from after the previous list item (`- ...`)
/// to before the next, where a template's condition and value for that item are.
fn regions(text: &str, is_anchor: impl Fn(&str) -> bool) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let item = |l: &str| l.trim_start().starts_with("- ");
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !is_anchor(l) {
            continue;
        }
        let start = lines[..i]
            .iter()
            .rposition(|l| item(l))
            .map_or(0, |p| p + 1);
        let end = lines[i + 1..]
            .iter()
            .position(|l| item(l))
            .map_or(lines.len(), |p| i + 1 + p);
        out.push(lines[start..end].join("\n"));
    }
    out
}

/// Whether `line` is the argument `- --flag` or `- --flag=...`.
fn is_arg(line: &str, flag: &str) -> bool {
    line.trim_start()
        .strip_prefix("- --")
        .and_then(|r| r.strip_prefix(flag))
        .is_some_and(|r| r.is_empty() || r.starts_with('='))
}

/// Checks each chart row against the templates, and that every flag and flag variable the
/// templates give has a row.
fn check_chart_rows(run: &clap::Command) {
    let helpers = chart_file("templates/_helpers.tpl");
    let deployment = chart_file("templates/deployment.yaml");
    for r in CHART_ROWS {
        let arg = run
            .get_arguments()
            .find(|a| a.get_long() == Some(r.flag))
            .unwrap_or_else(|| panic!("the chart row --{} is no flag of `run`", r.flag));
        let found = match r.via {
            Via::Arg => regions(&helpers, |l| is_arg(l, r.flag)),
            Via::Env => {
                let var = arg
                    .get_env()
                    .unwrap_or_else(|| panic!("--{} has no variable", r.flag))
                    .to_string_lossy()
                    .into_owned();
                regions(&deployment, |l| l.trim() == format!("- name: {var}"))
            }
            Via::Text(t) => regions(&deployment, |l| l.trim() == t),
        };
        assert!(
            !found.is_empty(),
            "the chart's templates no longer give --{}: fix CHART_ROWS",
            r.flag
        );
        for v in r.values {
            assert!(
                found.iter().any(|f| f.contains(&format!(".Values.{v}"))),
                "the chart gives --{} without .Values.{v}: fix CHART_ROWS\n{found:?}",
                r.flag
            );
        }
    }
    for l in helpers.lines() {
        if let Some(rest) = l.trim_start().strip_prefix("- --") {
            let flag = rest.split('=').next().unwrap_or_default();
            assert!(
                CHART_ROWS.iter().any(|r| r.flag == flag),
                "the chart gives --{flag}, which CHART_ROWS does not name"
            );
        }
    }
    for a in run.get_arguments() {
        if let Some(var) = a.get_env().map(|v| v.to_string_lossy().into_owned()) {
            let given = deployment
                .lines()
                .any(|l| l.trim() == format!("- name: {var}"));
            let long = a.get_long().unwrap_or_default();
            assert!(
                !given || CHART_ROWS.iter().any(|r| r.flag == long),
                "the chart sets {var} (--{long}), which CHART_ROWS does not name"
            );
        }
    }
}

/// The chart cell of a `run` flag.
fn chart_cell(flag: &str) -> String {
    match CHART_ROWS.iter().find(|r| r.flag == flag) {
        Some(r) if !r.note.is_empty() => r.note.to_string(),
        Some(r) => r
            .values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", "),
        None => "through `extraArgs`".into(),
    }
}

/// The help of an argument, or for an annotation-naming flag what it names.
fn help_of(a: &clap::Arg, default: &str) -> String {
    let help = a
        .get_help()
        .or(a.get_long_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let long = a.get_long().unwrap_or_default();
    let mut help = if !help.is_empty() {
        help
    } else if let Some(d) = EVERY.iter().find(|d| d.flag == Some(long)) {
        assert_eq!(
            d.name, default,
            "--{long}'s default is not the name it renames"
        );
        format!(
            "the name of the annotation `{}` (see [annotations](annotations.md))",
            d.name
        )
    } else {
        panic!("--{long} has no help: give it a doc comment");
    };
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    let boolean = values.len() == 2 && values.iter().all(|v| v == "`true`" || v == "`false`");
    if !values.is_empty() && !boolean {
        let _ = write!(help, " (one of {})", values.join(", "));
    }
    cell(&help)
}

/// The flags page: every flag of every command.
fn flags_page() -> String {
    let mut cli = Cli::command();
    cli.build();
    let mut s = header(
        "Flags",
        "the command line's definition (`hashroll <command> --help` says the same)",
    );
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let run = name == "run";
        if run {
            check_chart_rows(sub);
        }
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = write!(s, "\n## `hashroll {name}`\n\n{}\n\n", cell(&about));
        if run {
            s.push_str("| flag | environment | default | chart value | |\n|---|---|---|---|---|\n");
        } else {
            s.push_str("| flag | environment | default | |\n|---|---|---|---|\n");
        }
        for a in sub.get_arguments() {
            let id = a.get_id().as_str();
            if id != "help" && id != "version" {
                flag_row(&mut s, a, run);
            }
        }
    }
    s.push_str(
        "\n## Environment only\n\nRead from the environment; no flag sets them.\n\n\
         | variable | chart value | |\n|---|---|---|\n",
    );
    for (var, value, about) in ENV_ONLY {
        let value = if value.is_empty() {
            "—".to_string()
        } else {
            format!("`{value}`")
        };
        let _ = writeln!(s, "| `{var}` | {value} | {} |", cell(about));
    }
    s
}

/// A flag's row of its command's table (`run`'s has the chart value and Reloader's names).
fn flag_row(s: &mut String, a: &clap::Arg, run: bool) {
    let mut names = match (a.get_long(), a.get_short()) {
        (Some(l), Some(c)) => format!("`--{l}`, `-{c}`"),
        (Some(l), None) => format!("`--{l}`"),
        _ => format!("`{}` (positional)", a.get_id().as_str().to_uppercase()),
    };
    for alias in a.get_all_aliases().unwrap_or_default() {
        let _ = write!(names, ", `--{alias}`");
    }
    let mut env = a
        .get_env()
        .map(|e| format!("`{}`", e.to_string_lossy()))
        .unwrap_or_else(|| "—".into());
    if run {
        // Reloader's names, read where neither the flag nor ours is set
        let flags: Vec<&str> = a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().unwrap_or_default())
            .collect();
        let theirs: Vec<String> = crate::cmd::cli::reloader::env_names()
            .into_iter()
            .filter(|(_, f)| flags.contains(f))
            .map(|(v, _)| format!("`{v}`"))
            .collect();
        if !theirs.is_empty() {
            let _ = write!(env, " (Reloader's {})", theirs.join(", "));
        }
    }
    let default = a
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(",");
    let default_cell = if a.get_default_values().is_empty() {
        "—".into()
    } else {
        code(&default)
    };
    let help = help_of(a, &default);
    if run {
        let chart = chart_cell(a.get_long().unwrap_or_default());
        let _ = writeln!(s, "| {names} | {env} | {default_cell} | {chart} | {help} |");
    } else {
        let _ = writeln!(s, "| {names} | {env} | {default_cell} | {help} |");
    }
}

/// Every environment variable the crate's code reads by name (`env::var` of a literal).
fn env_reads(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("src") {
        let p = e.expect("an entry").path();
        if p.is_dir() {
            env_reads(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("a source file");
            for (at, _) in text.match_indices("env::var(\"") {
                let rest = &text[at + "env::var(\"".len()..];
                if let Some(end) = rest.find('"') {
                    out.push(rest[..end].to_string());
                }
            }
        }
    }
}

fn annotations_page() -> String {
    let mut s = header("Annotations", "`src/core/names.rs`");
    s.push_str("\n| annotation | on | hashroll | renamed by | |\n|---|---|---|---|---|\n");
    for d in EVERY {
        let access = match d.access {
            Access::Reads => "reads",
            Access::Writes => "writes",
            Access::Removes => "removes (`migrate`)",
        };
        let flag = d
            .flag
            .map(|f| format!("`--{f}`"))
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            s,
            "| `{}` | {} | {access} | {flag} | {} |",
            d.name,
            d.on,
            cell(d.about)
        );
    }
    s
}

/// One metric family of the exposition.
#[derive(Default)]
struct Family {
    name: String,
    help: String,
    kind: String,
    series: Vec<String>,
    labels: Vec<String>,
}

fn metrics_page() -> String {
    let m = Metrics::new();
    m.touch_every_family();
    let text = m.render();
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.push(Family {
                name: name.into(),
                help: help.into(),
                ..Family::default()
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let f = families.last_mut().expect("TYPE after HELP");
            f.kind = rest.split_once(' ').map(|(_, t)| t).unwrap_or("").into();
        } else if line.starts_with('#') {
            continue;
        } else {
            let f = families.last_mut().expect("a series after HELP");
            let (series, labels) = match line.split_once('{') {
                Some((n, rest)) => (n, rest.split_once('}').map_or("", |(l, _)| l)),
                None => (line.split_once(' ').map_or(line, |(n, _)| n), ""),
            };
            if !f.series.iter().any(|s| s == series) {
                f.series.push(series.into());
            }
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let label = pair.split_once('=').map_or(pair, |(l, _)| l);
                if label != "le" && !f.labels.iter().any(|l| l == label) {
                    f.labels.push(label.into());
                }
            }
        }
    }
    let mut s = header(
        "Metrics",
        "the registry of `src/services/metrics` (what `/metrics` serves)",
    );
    s.push_str("\n| metric | type | labels | |\n|---|---|---|---|\n");
    for f in &families {
        assert!(
            !f.series.is_empty(),
            "{} shows no series: touch it in Metrics::touch_every_family",
            f.name
        );
        // a counter's series is what a query names (`_total`, or Reloader's own name)
        let name = match f.kind.as_str() {
            "counter" => format!("`{}`", f.series[0]),
            "histogram" => format!("`{}` (`_bucket`, `_sum`, `_count`)", f.name),
            _ => format!("`{}`", f.name),
        };
        let labels = if f.labels.is_empty() {
            "—".to_string()
        } else {
            f.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "| {name} | {} | {labels} | {} |", f.kind, cell(&f.help));
    }
    assert!(families.len() >= 30, "{} metrics", families.len());
    s
}

fn events_page() -> String {
    let mut s = header(
        "Events",
        "the writer's list of reasons (`src/watcher/writer/events.rs`)",
    );
    s.push_str(
        "\nEvents are core `v1` Events (also read as `events.k8s.io/v1`), reported by `hashroll.dev/hashroll` with action \
         `Reload`.\n\n| reason | type | on | when |\n|---|---|---|---|\n",
    );
    for r in Reason::ALL {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            r.as_str(),
            r.type_(),
            r.regarding(),
            cell(r.when())
        );
    }
    s
}

/// One leaf of values.yaml: its dotted path, default and `# --` comment.
struct Value {
    path: String,
    default: String,
    doc: String,
}

/// The leaves of values.yaml (two-space indented mappings; lists and `{}` are leaves).
fn values(text: &str) -> Vec<Value> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.trim();
            if let Some(first) = c.strip_prefix("-- ") {
                comment = vec![first.to_string()];
            } else if !comment.is_empty() {
                comment.push(c.to_string());
            }
            continue;
        }
        let indent = line.len() - t.len();
        let Some((key, rest)) = t.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = stack
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        if rest.trim().is_empty() {
            stack.push((indent, key.to_string()));
        } else {
            out.push(Value {
                path,
                default: rest.trim().to_string(),
                doc: comment.join(" "),
            });
        }
        comment.clear();
    }
    out
}

/// The schema's node of a dotted value path: through `properties`, or an open object's
/// `additionalProperties` schema (a map such as `resources.requests`).
fn schema_node<'a>(schema: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut node = schema;
    for part in path.split('.') {
        node = match node.get("properties").and_then(|p| p.get(part)) {
            Some(n) => n,
            None => node.get("additionalProperties").filter(|a| a.is_object())?,
        };
    }
    Some(node)
}

/// The schema's type of a dotted value path, with its enum if it has one.
fn schema_type(schema: &serde_json::Value, path: &str) -> Option<String> {
    let node = schema_node(schema, path)?;
    let ty = match &node["type"] {
        serde_json::Value::String(t) if t == "array" => match node["items"]["type"].as_str() {
            Some(item) => format!("list of {item}s"),
            None => "list".into(),
        },
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        _ => return None,
    };
    Some(match node["enum"].as_array() {
        Some(e) => format!(
            "{ty}: {}",
            e.iter()
                .map(|v| match v.as_str() {
                    Some("") => "`\"\"`".to_string(),
                    Some(s) => format!("`{s}`"),
                    None => format!("`{v}`"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => ty,
    })
}

fn chart_values_page() -> String {
    let schema: serde_json::Value = serde_json::from_str(&chart_file("values.schema.json"))
        .expect("values.schema.json is JSON");
    let mut by_value: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in CHART_ROWS {
        for v in r.values {
            by_value
                .entry(v)
                .or_default()
                .push(format!("`--{}`", r.flag));
        }
    }
    for (var, value, _) in ENV_ONLY {
        if !value.is_empty() {
            by_value.entry(value).or_default().push(format!("`{var}`"));
        }
    }
    let mut s = header(
        "Chart values",
        "the chart's `values.yaml` and `values.schema.json`",
    );
    s.push_str(
        "\nHelm refuses a value of another type, and a key this table does not list (the \
         Kubernetes maps `nodeSelector`, `affinity`, `podAnnotations`, `resources.*` aside).\n\n| value | type | default | flag | |\n|---|---|---|---|---|\n",
    );
    let leaves = values(&chart_file("values.yaml"));
    for v in &leaves {
        let ty = schema_type(&schema, &v.path)
            .unwrap_or_else(|| panic!("{} has no type in values.schema.json", v.path));
        assert!(!v.doc.is_empty(), "{} has no `# --` comment", v.path);
        let flag = by_value
            .get(v.path.as_str())
            .map(|f| f.join(", "))
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            s,
            "| `{}` | {} | `{}` | {flag} | {} |",
            v.path,
            cell(&ty),
            v.default,
            cell(&v.doc)
        );
    }
    for value in by_value.keys() {
        assert!(
            leaves.iter().any(|l| l.path == *value),
            "{value} is in CHART_ROWS or ENV_ONLY but not in values.yaml"
        );
    }
    s
}

/// (file under docs/src/reference, its rendering)
fn pages() -> Vec<(&'static str, String)> {
    vec![
        ("flags.md", flags_page()),
        ("annotations.md", annotations_page()),
        ("metrics.md", metrics_page()),
        ("events.md", events_page()),
        ("chart-values.md", chart_values_page()),
    ]
}

#[test]
fn reference_pages_are_current() {
    let dir = format!("{ROOT}/docs/src/reference");
    let bless = std::env::var_os("HASHROLL_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, text) in pages() {
        let path = format!("{dir}/{file}");
        if bless {
            std::fs::create_dir_all(&dir).expect("docs/src/reference");
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{path}: {e}"));
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale: run `make reference` (not what the code renders: {})",
        stale.join(", ")
    );
}

#[test]
fn every_environment_variable_read_is_a_flags_or_listed() {
    let mut read = Vec::new();
    env_reads(Path::new(&format!("{ROOT}/src")), &mut read);
    assert!(
        read.iter().any(|v| v == "METRICS_COUNT_BY_NAMESPACE"),
        "{read:?}"
    );
    let mut cli = Cli::command();
    cli.build();
    let flag_vars: Vec<String> = cli
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    for v in read {
        assert!(
            flag_vars.contains(&v) || ENV_ONLY.iter().any(|(n, _, _)| *n == v),
            "hashroll reads {v}: list it in ENV_ONLY"
        );
    }
}

#[test]
fn the_template_regions_find_a_flag_and_its_condition() {
    let tpl = "- run\n{{- if .Values.enableHA }}\n- --enable-ha\n{{- end }}\n- --x=1\n";
    let r = regions(tpl, |l| is_arg(l, "enable-ha"));
    assert_eq!(r.len(), 1);
    assert!(r[0].contains(".Values.enableHA") && !r[0].contains("--x"));
    assert!(regions(tpl, |l| is_arg(l, "enable")).is_empty());
    assert!(is_arg("  - --x=1", "x") && !is_arg("- --xy", "x"));
}

/// The dotted paths of the properties of the schema's closed objects.
fn schema_paths(node: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if node["additionalProperties"] != serde_json::Value::Bool(false) {
        return;
    }
    for (k, v) in node["properties"].as_object().into_iter().flatten() {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        schema_paths(v, &path, out);
        out.push(path);
    }
}

#[test]
fn the_schema_names_the_values_of_values_yaml_and_no_other() {
    let schema: serde_json::Value =
        serde_json::from_str(&chart_file("values.schema.json")).expect("JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "Helm 3 reads draft-07"
    );
    let leaves = values(&chart_file("values.yaml"));
    let mut paths = Vec::new();
    schema_paths(&schema, "", &mut paths);
    assert!(paths.len() > 60, "{paths:?}");
    // Helm's own `global`, and Kubernetes' resource claims, which values.yaml leaves unset
    let beyond = ["global", "resources.claims"];
    for p in &paths {
        let in_values = leaves
            .iter()
            .any(|l| l.path == *p || l.path.starts_with(&format!("{p}.")));
        assert!(
            in_values || beyond.contains(&p.as_str()),
            "values.schema.json names {p}, which values.yaml does not have"
        );
    }
    for l in &leaves {
        assert!(
            schema_node(&schema, &l.path).is_some(),
            "{} is not in values.schema.json",
            l.path
        );
    }
}
