//! `hashroll migrate --from-reloader --chart-values`: hashroll's chart values that do what a
//! Reloader installation does, read from the running Reloader's Deployment (its container's
//! args and environment) or from a Reloader chart values file.
//!
//! Both inputs become one [`ReloaderConfig`] (Reloader's flags and environment, as its chart
//! would pass them), and [`to_values`] turns that into hashroll's values, with a comment on
//! every setting whose default differs between the two (reload on create and delete above
//! all: false in Reloader, true in hashroll) and on every setting that has no equivalent.
//! The translation is pure; `command` in `migrate` reads the inputs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// One value of Reloader's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvValue {
    Literal(String),
    /// `valueFrom` of any kind: known only in the pod
    FromPod,
}

/// Reloader's configuration: its flags (last value wins, as in pflag) and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReloaderConfig {
    /// where it was read from, for the header
    pub(crate) source: String,
    pub(crate) flags: BTreeMap<String, String>,
    pub(crate) env: BTreeMap<String, EnvValue>,
    pub(crate) replicas: Option<i64>,
}

/// Where `--chart-values` reads Reloader's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// a Reloader chart values file
    ValuesFile(std::path::PathBuf),
    /// this Deployment (`NAMESPACE/NAME`)
    Deployment(String, String),
    /// the Deployment in the cluster that runs Reloader's image
    Find,
}

/// Reads Reloader's configuration from `source` and renders hashroll's values.
pub(crate) async fn command(source: Source) -> Result<String, String> {
    use k8s_openapi::api::apps::v1::Deployment;
    let (cfg, untranslated) = match source {
        Source::ValuesFile(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let v: Value = serde_saphyr::from_str(&text)
                .map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
            from_chart_values(&v, &path.display().to_string())
        }
        Source::Deployment(ns, name) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("cannot reach the cluster: {e}"))?;
            let api: kube::Api<Deployment> = kube::Api::namespaced(client, &ns);
            let d = api
                .get(&name)
                .await
                .map_err(|e| format!("cannot read the Deployment {ns}/{name}: {e}"))?;
            let v = serde_json::to_value(&d).map_err(|e| e.to_string())?;
            let cfg = from_deployment(&v)
                .ok_or_else(|| format!("the Deployment {ns}/{name} has no container"))?;
            (cfg, Vec::new())
        }
        Source::Find => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("cannot reach the cluster: {e}"))?;
            let api: kube::Api<Deployment> = kube::Api::all(client);
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| format!("cannot list Deployments: {e}"))?;
            let found: Vec<Value> = list
                .items
                .iter()
                .filter_map(|d| serde_json::to_value(d).ok())
                .filter(runs_reloader)
                .collect();
            match found.as_slice() {
                [one] => (from_deployment(one).unwrap_or_default(), Vec::new()),
                [] => {
                    return Err("no Deployment runs Reloader's image (stakater/reloader); \
                                name one with --reloader-deployment NAMESPACE/NAME"
                        .into());
                }
                many => {
                    let names: Vec<String> = many
                        .iter()
                        .map(|d| {
                            format!(
                                "{}/{}",
                                d["metadata"]["namespace"].as_str().unwrap_or("?"),
                                d["metadata"]["name"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    return Err(format!(
                        "{} Deployments run Reloader ({}); name one with --reloader-deployment",
                        many.len(),
                        names.join(", ")
                    ));
                }
            }
        }
    };
    Ok(to_values(&cfg, &untranslated))
}

/// Whether a Deployment's containers run Reloader's image.
fn runs_reloader(d: &Value) -> bool {
    d.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("stakater/reloader"))
            })
        })
}

/// Strips one pair of surrounding double quotes (Reloader's chart passes
/// `--namespace-selector="k=v"`).
fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Reloader's flags from a container's args: `--flag=value`, `--flag value`, `--flag`.
pub(crate) fn parse_args(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let Some(flag) = args[i]
            .strip_prefix("--")
            .or_else(|| args[i].strip_prefix('-'))
        else {
            i += 1;
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => match args.get(i + 1).filter(|next| !next.starts_with('-')) {
                Some(next) => {
                    i += 1;
                    (flag.to_string(), next.clone())
                }
                None => (flag.to_string(), "true".to_string()),
            },
        };
        out.insert(name, unquote(&value).to_string());
        i += 1;
    }
    out
}

/// The Reloader container of a Deployment (`apps/v1` JSON): the one whose image names
/// reloader, else the first.
pub(crate) fn from_deployment(d: &Value) -> Option<ReloaderConfig> {
    let spec = d.pointer("/spec/template/spec/containers")?.as_array()?;
    let c = spec
        .iter()
        .find(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.contains("stakater/reloader"))
        })
        .or_else(|| spec.first())?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut args = strings(&c["command"]);
    args.extend(strings(&c["args"]));
    let mut env = BTreeMap::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = match e["value"].as_str() {
            Some(v) => EnvValue::Literal(v.to_string()),
            None if e.get("valueFrom").is_some() => EnvValue::FromPod,
            None => EnvValue::Literal(String::new()),
        };
        env.insert(name.to_string(), value);
    }
    let ns = d.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = d.pointer("/metadata/name").and_then(Value::as_str);
    Some(ReloaderConfig {
        source: format!(
            "the Deployment {}/{}",
            ns.unwrap_or("?"),
            name.unwrap_or("?")
        ),
        flags: parse_args(&args),
        env,
        replicas: d.pointer("/spec/replicas").and_then(Value::as_i64),
    })
}

/// Reloader's chart values (the `reloader:` block) as the flags and environment its
/// chart's Deployment would get; also the keys it does not translate.
pub(crate) fn from_chart_values(v: &Value, source: &str) -> (ReloaderConfig, Vec<String>) {
    let r = &v["reloader"];
    let mut c = ChartRead {
        r,
        flags: BTreeMap::new(),
        env: BTreeMap::new(),
    };
    c.logs_and_ignores();
    c.namespaces();
    c.switches();
    c.annotations_and_env();
    let cfg = ReloaderConfig {
        source: source.to_string(),
        flags: c.flags,
        env: c.env,
        replicas: r["deployment"]["replicas"].as_i64(),
    };
    (cfg, untranslated(r))
}

/// The chart's `reloader:` block being read into flags and environment.
struct ChartRead<'a> {
    r: &'a Value,
    flags: BTreeMap<String, String>,
    env: BTreeMap<String, EnvValue>,
}

impl ChartRead<'_> {
    fn truthy(&self, k: &str) -> bool {
        self.r[k].as_bool() == Some(true) || self.r[k].as_str() == Some("true")
    }
    fn text(&self, k: &str) -> Option<String> {
        match &self.r[k] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn set(&mut self, flag: &str, v: String) {
        self.flags.insert(flag.to_string(), v);
    }

    fn logs_and_ignores(&mut self) {
        for (key, flag) in [("logFormat", "log-format"), ("logLevel", "log-level")] {
            if let Some(v) = self.text(key) {
                self.set(flag, v);
            }
        }
        if self.truthy("ignoreSecrets") {
            self.set("resources-to-ignore", "secrets".into());
        }
        if self.truthy("ignoreConfigMaps") {
            self.set("resources-to-ignore", "configmaps".into());
        }
        let ignored: Vec<&str> = [("ignoreJobs", "jobs"), ("ignoreCronJobs", "cronjobs")]
            .into_iter()
            .filter(|(k, _)| self.truthy(k))
            .map(|(_, w)| w)
            .collect();
        if !ignored.is_empty() {
            self.set("ignored-workload-types", ignored.join(","));
        }
    }

    /// The watched namespaces (a list, or its own with `watchGlobally: false`), and the
    /// namespace filters that apply when watching them all.
    fn namespaces(&mut self) {
        let watch_globally = self.r["watchGlobally"].as_bool() != Some(false);
        let namespaces: Vec<String> = match &self.r["namespaces"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect(),
            Value::String(s) => s.split(',').map(|n| n.trim().to_string()).collect(),
            _ => Vec::new(),
        };
        let namespaces: Vec<String> = namespaces.into_iter().filter(|n| !n.is_empty()).collect();
        if !namespaces.is_empty() {
            self.set("namespaces", namespaces.join(","));
        } else if !watch_globally {
            self.env
                .insert("KUBERNETES_NAMESPACE".to_string(), EnvValue::FromPod);
        }
        if watch_globally {
            if let Some(v) = self.text("ignoreNamespaces") {
                self.set("namespaces-to-ignore", v);
            }
            if let Some(v) = self.text("namespaceSelector") {
                self.set("namespace-selector", v);
            }
        }
        if let Some(v) = self.text("resourceLabelSelector") {
            self.set("resource-label-selector", v);
        }
    }

    fn switches(&mut self) {
        if self.truthy("enablePProf") {
            self.set("enable-pprof", "true".into());
            if let Some(a) = self.text("pprofAddr") {
                self.set("pprof-addr", a);
            }
        }
        for (key, flag) in [
            ("enableCSIIntegration", "enable-csi-integration"),
            ("isArgoRollouts", "is-Argo-Rollouts"),
            ("isOpenshift", "is-openshift"),
            ("reloadOnCreate", "reload-on-create"),
            ("reloadOnDelete", "reload-on-delete"),
            ("syncAfterRestart", "sync-after-restart"),
            ("autoReloadAll", "auto-reload-all"),
            ("enableHA", "enable-ha"),
        ] {
            if self.truthy(key) {
                self.set(flag, "true".into());
            }
        }
        if let Some(s) = self.text("reloadStrategy").filter(|s| s != "default") {
            self.set("reload-strategy", s);
        }
        if self.truthy("enableHA") {
            for (key, flag) in [
                ("leaseDuration", "leader-election-lease-duration"),
                ("renewDeadline", "leader-election-renew-deadline"),
                ("retryPeriod", "leader-election-retry-period"),
            ] {
                if let Some(v) = self.r["leaderElection"][key].as_str() {
                    self.set(flag, v.to_string());
                }
            }
        }
    }

    fn annotations_and_env(&mut self) {
        for (key, flag) in [
            ("configmap", "configmap-annotation"),
            ("secret", "secret-annotation"),
            ("auto", "auto-annotation"),
            ("secret_auto", "secret-auto-annotation"),
            ("configmap_auto", "configmap-auto-annotation"),
            ("search", "auto-search-annotation"),
            ("match", "search-match-annotation"),
            ("ignore", "ignore-annotation"),
            ("pausePeriod", "pause-deployment-annotation"),
            ("pauseTime", "pause-deployment-time-annotation"),
        ] {
            if let Some(v) = self.r["custom_annotations"][key].as_str() {
                self.set(flag, v.to_string());
            }
        }
        if self.text("webhookUrl").is_some() {
            self.set("webhook-url", "<hidden>".into());
        }
        if self.truthy("enableMetricsByNamespace") {
            self.env.insert(
                "METRICS_COUNT_BY_NAMESPACE".into(),
                EnvValue::Literal("enabled".into()),
            );
        }
        if let Some(open) = self.r["deployment"]["env"]["open"].as_object() {
            for (k, v) in open {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.env.insert(k.clone(), EnvValue::Literal(v));
            }
        }
    }
}

/// The keys of the `reloader:` block [`from_chart_values`] does not read.
fn untranslated(r: &Value) -> Vec<String> {
    const READ: &[&str] = &[
        "logFormat",
        "logLevel",
        "ignoreSecrets",
        "ignoreConfigMaps",
        "ignoreJobs",
        "ignoreCronJobs",
        "namespaces",
        "watchGlobally",
        "ignoreNamespaces",
        "namespaceSelector",
        "resourceLabelSelector",
        "enablePProf",
        "pprofAddr",
        "enableCSIIntegration",
        "isArgoRollouts",
        "isOpenshift",
        "reloadOnCreate",
        "reloadOnDelete",
        "syncAfterRestart",
        "autoReloadAll",
        "enableHA",
        "reloadStrategy",
        "leaderElection",
        "custom_annotations",
        "webhookUrl",
        "enableMetricsByNamespace",
        "deployment",
    ];
    r.as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !READ.contains(&k.as_str()))
                .map(|k| format!("reloader.{k}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's strconv.ParseBool, as Reloader reads its string flags.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A YAML scalar, quoted.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn list(items: &str) -> String {
    let v: Vec<String> = items
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(q)
        .collect();
    format!("[{}]", v.join(", "))
}

impl ReloaderConfig {
    fn flag(&self, k: &str) -> Option<&str> {
        self.flags.get(k).map(String::as_str)
    }
    /// A flag Reloader reads as a bool (a value it cannot parse counts as false).
    fn bool_flag(&self, k: &str) -> Option<bool> {
        self.flag(k).map(|v| go_bool(v).unwrap_or(false))
    }
    /// A literal, non-empty value of the environment.
    fn env_text(&self, k: &str) -> Option<&str> {
        match self.env.get(k) {
            Some(EnvValue::Literal(v)) if !v.is_empty() => Some(v.as_str()),
            _ => None,
        }
    }
}

/// hashroll's chart values for `cfg`, as YAML with comments.
pub(crate) fn to_values(cfg: &ReloaderConfig, untranslated: &[String]) -> String {
    let mut v = Values {
        cfg,
        out: String::new(),
        extra: Vec::new(),
        notes: Vec::new(),
    };
    let _ = writeln!(
        v.out,
        "# hashroll chart values doing what Reloader did, read from {}\n\
         # install: helm install hashroll charts/hashroll -n hashroll --create-namespace -f THIS_FILE",
        cfg.source
    );
    v.reload_on();
    v.replicas();
    v.switches();
    v.namespaces();
    v.selectors_and_logs();
    v.alerts();
    v.extra_args();
    v.not_needed();
    v.finish(untranslated)
}

/// The values being written: the YAML, the flags left for `extraArgs`, and the notes on
/// what is not carried over.
struct Values<'a> {
    cfg: &'a ReloaderConfig,
    out: String,
    extra: Vec<String>,
    notes: Vec<String>,
}

impl Values<'_> {
    /// Reload on create/delete: the defaults differ, so both are always written.
    fn reload_on(&mut self) {
        let c = self.cfg;
        for (flag, key) in [
            ("reload-on-create", "reloadOnCreate"),
            ("reload-on-delete", "reloadOnDelete"),
        ] {
            let env = crate::cmd::cli::reloader::env_name(flag);
            let set = c.flag(flag).or_else(|| c.env_text(&env));
            let on = set.and_then(go_bool).unwrap_or(false);
            let why = if set.is_some() {
                "as Reloader was set"
            } else {
                "Reloader's default (false) kept; hashroll's default is true: with it a source \
                 created or deleted under a workload that uses it rolls the workload"
            };
            let _ = writeln!(self.out, "{key}: {on}  # {why}");
        }
    }

    fn replicas(&mut self) {
        let replicas = self.cfg.replicas.unwrap_or(1);
        let ha = self.cfg.bool_flag("enable-ha").unwrap_or(false);
        let _ = writeln!(
            self.out,
            "replicaCount: {replicas}  # Reloader's; hashroll's default is 2 (every replica serves the webhook)"
        );
        let _ = writeln!(
            self.out,
            "enableHA: {}  # {}",
            ha || replicas > 1,
            if ha {
                "as Reloader"
            } else {
                "hashroll needs the Lease whenever it runs more than one replica"
            }
        );
    }

    /// The switches with a chart value: what is reloaded, what is ignored.
    fn switches(&mut self) {
        let c = self.cfg;
        for (flag, key) in [
            ("auto-reload-all", "autoReloadAll"),
            ("enable-csi-integration", "enableCSIIntegration"),
        ] {
            if let Some(v) = c.bool_flag(flag) {
                let _ = writeln!(self.out, "{key}: {v}");
            }
        }
        if let Some(v) = c.bool_flag("is-Argo-Rollouts") {
            let _ = writeln!(
                self.out,
                "isArgoRollouts: {}  # hashroll also finds Argo Rollouts by itself when this is \"\"",
                q(&v.to_string())
            );
        }
        match c
            .flag("resources-to-ignore")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("secrets") => self.out.push_str("ignoreSecrets: true\n"),
            Some("configmaps") => self.out.push_str("ignoreConfigMaps: true\n"),
            _ => {}
        }
        for w in c
            .flag("ignored-workload-types")
            .into_iter()
            .flat_map(|t| t.split(',').map(str::trim))
        {
            match w {
                "jobs" => self.out.push_str("ignoreJobs: true\n"),
                "cronjobs" => self.out.push_str("ignoreCronJobs: true\n"),
                _ => {}
            }
        }
    }

    /// The watched namespaces: a list, or Reloader's own (then the release namespace).
    fn namespaces(&mut self) {
        let c = self.cfg;
        let watched = c.flag("namespaces").map(String::from).or_else(|| {
            match c.env.get("KUBERNETES_NAMESPACE") {
                Some(EnvValue::Literal(v)) if !v.is_empty() => Some(v.clone()),
                Some(EnvValue::FromPod) => Some(String::new()),
                _ => None,
            }
        });
        match watched.as_deref() {
            Some("") => {
                self.out.push_str(
                    "watchGlobally: false  # Reloader watched its own namespace (KUBERNETES_NAMESPACE): \
                     hashroll then watches the release namespace\n",
                );
            }
            Some(ns) => {
                let _ = writeln!(self.out, "namespaces: {}", list(ns));
            }
            None => {}
        }
        if watched.is_some() {
            self.out.push_str(
                "# Reloader installed with Roles only (no ClusterRole)? `namespaced: true` does that \
                 here: a Role per watched namespace and no webhook (the watcher alone stamps; see \
                 the Install page, \"Namespaced install\")\n",
            );
        }
    }

    fn selectors_and_logs(&mut self) {
        let c = self.cfg;
        for (flag, key, is_list) in [
            ("namespaces-to-ignore", "ignoreNamespaces", true),
            ("namespace-selector", "namespaceSelector", false),
            ("resource-label-selector", "resourceLabelSelector", false),
        ] {
            if let Some(v) = c.flag(flag).filter(|v| !v.is_empty()) {
                let v = if is_list { list(v) } else { q(v) };
                let _ = writeln!(self.out, "{key}: {v}");
            }
        }
        if let Some(v) = c.flag("log-format") {
            let v = if v.is_empty() { "text" } else { v };
            let _ = writeln!(self.out, "logFormat: {}", q(v));
        }
        if let Some(v) = c.flag("log-level") {
            let level = crate::cmd::cli::reloader::log_level(v);
            let _ = writeln!(self.out, "logLevel: {}", q(&level));
        }
        if let Some(id) = c.flag("leader-election-id") {
            let _ = writeln!(self.out, "leaseName: {}", q(id));
        }
        if c.env_text("METRICS_COUNT_BY_NAMESPACE") == Some("enabled") {
            self.out.push_str("enableMetricsByNamespace: true\n");
        }
    }

    /// Alerts: the switches as values, never the URL (a secret).
    fn alerts(&mut self) {
        let c = self.cfg;
        if c.env_text("ALERT_ON_RELOAD").and_then(go_bool) == Some(true) {
            self.out.push_str("alerts:\n  onReload: true\n");
            if let Some(s) = c.env_text("ALERT_SINK") {
                let _ = writeln!(self.out, "  sink: {}", q(s));
            }
            if let Some(s) = c.env_text("ALERT_ADDITIONAL_INFO") {
                let _ = writeln!(self.out, "  additionalInfo: {}", q(s));
            }
            self.out.push_str(
                "  existingSecret: \"\"  # name here a Secret with ALERT_WEBHOOK_URL (the URL is a secret: not copied here)\n",
            );
        }
        if c.flag("webhook-url").is_some() {
            self.notes.push(
                "--webhook-url: set webhookUrlExistingSecret to a Secret holding the URL (a \
                 secret: not copied here)"
                    .into(),
            );
        }
    }

    /// Flags that are only flags in hashroll's chart: `extraArgs`.
    fn extra_args(&mut self) {
        const ONLY_FLAGS: [&str; 21] = [
            "configmap-annotation",
            "secret-annotation",
            "auto-annotation",
            "secret-auto-annotation",
            "configmap-auto-annotation",
            "auto-search-annotation",
            "search-match-annotation",
            "ignore-annotation",
            "pause-deployment-annotation",
            "pause-deployment-time-annotation",
            "configmap-exclude-annotation",
            "secret-exclude-annotation",
            "secretproviderclass-auto-annotation",
            "secretproviderclass-annotation",
            "secretproviderclass-exclude-annotation",
            "leader-election-lease-duration",
            "leader-election-renew-deadline",
            "leader-election-retry-period",
            "leader-election-namespace",
            "leader-election-release-on-cancel",
            "is-openshift",
        ];
        let c = self.cfg;
        for flag in ONLY_FLAGS {
            if let Some(v) = c.flag(flag) {
                self.extra.push(format!("--{flag}={v}"));
            }
        }
        if c.flag("enable-pprof").and_then(go_bool) == Some(true) {
            self.extra.push("--enable-pprof=true".into());
            self.notes.push(
                "--pprof-addr: hashroll serves profiles on the pod's loopback by default \
                 (127.0.0.1:6060; kubectl port-forward reaches it)"
                    .into(),
            );
        }
        if c.flag("is-openshift").and_then(go_bool) == Some(true) {
            self.notes.push(
                "--is-openshift: add DeploymentConfigs (apps.openshift.io) to the webhook's rules \
                 and hashroll's RBAC"
                    .into(),
            );
        }
    }

    /// Flags hashroll needs no value for.
    fn not_needed(&mut self) {
        let c = self.cfg;
        if let Some(s) = c.flag("reload-strategy") {
            self.notes.push(format!(
                "--reload-strategy={s}: not needed; hashroll always rolls by its one pod-template \
                 annotation, which GitOps tools keep in sync"
            ));
        }
        if c.flag("sync-after-restart").is_some() {
            self.notes.push(
                "--sync-after-restart: not needed; hashroll always catches up at start".into(),
            );
        }
        for flag in ["metrics-addr", "health-addr"] {
            if c.flag(flag).is_some() {
                self.notes.push(format!(
                    "--{flag}: the chart sets hashroll's ports (metrics and health on 9090)"
                ));
            }
        }
    }

    /// `extraArgs`, then the notes: untranslated values and environment included.
    fn finish(mut self, untranslated: &[String]) -> String {
        const KNOWN_ENV: [&str; 15] = [
            "KUBERNETES_NAMESPACE",
            "RELOADER_NAMESPACE",
            "RELOADER_DEPLOYMENT_NAME",
            "POD_NAME",
            "POD_NAMESPACE",
            "METRICS_COUNT_BY_NAMESPACE",
            "ALERT_ON_RELOAD",
            "ALERT_SINK",
            "ALERT_WEBHOOK_URL",
            "ALERT_WEBHOOK_PROXY",
            "ALERT_ADDITIONAL_INFO",
            "GOMAXPROCS",
            "GOMEMLIMIT",
            "RELOAD_ON_CREATE",
            "RELOAD_ON_DELETE",
        ];
        if !self.extra.is_empty() {
            self.out
                .push_str("extraArgs:  # flags with no chart value of their own\n");
            for a in &self.extra {
                let _ = writeln!(self.out, "  - {}", q(a));
            }
        }
        for u in untranslated {
            self.notes.push(format!(
                "{u}: no hashroll equivalent translated; see the chart's values"
            ));
        }
        for k in self
            .cfg
            .env
            .keys()
            .filter(|k| !KNOWN_ENV.contains(&k.as_str()))
        {
            self.notes.push(format!(
                "environment {k}: not translated (hashroll reads Reloader's names for its flags \
                 too; add it under extraEnv if it is one)"
            ));
        }
        if !self.notes.is_empty() {
            self.out.push_str("# not carried over as values:\n");
            for n in &self.notes {
                let _ = writeln!(self.out, "#  - {n}");
            }
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_parse_in_every_form_reloader_takes() {
        let f = parse_args(&args(&[
            "--log-format=json",
            "--auto-annotation",
            "example.com/auto",
            "--enable-pprof",
            "--namespace-selector=\"env=prod\"",
            "--reload-on-create=true",
            "--reload-on-create=false",
        ]));
        assert_eq!(f["log-format"], "json");
        assert_eq!(f["auto-annotation"], "example.com/auto");
        assert_eq!(f["enable-pprof"], "true");
        assert_eq!(f["namespace-selector"], "env=prod");
        assert_eq!(f["reload-on-create"], "false", "the last value wins");
    }

    #[test]
    fn defaults_that_differ_are_written_with_why() {
        let d = json!({"metadata": {"namespace": "r", "name": "reloader"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{
                "image": "ghcr.io/stakater/reloader:v1.4.22", "args": []}]}}}});
        let cfg = from_deployment(&d).expect("a container");
        let v = to_values(&cfg, &[]);
        assert!(
            v.contains("reloadOnCreate: false  # Reloader's default"),
            "{v}"
        );
        assert!(v.contains("reloadOnDelete: false"), "{v}");
        assert!(v.contains("replicaCount: 1"), "{v}");
        assert!(v.contains("enableHA: false"), "{v}");
    }

    #[test]
    fn chart_values_become_hashroll_values() {
        let values = json!({"reloader": {
            "reloadOnCreate": true, "ignoreSecrets": true, "ignoreJobs": true,
            "ignoreNamespaces": "kube-system,flux", "logFormat": "json",
            "logLevel": "warning", "enableHA": true,
            "deployment": {"replicas": 2, "env": {"open": {"ALERT_ON_RELOAD": "true",
                "ALERT_SINK": "slack"}}},
            "custom_annotations": {"auto": "example.com/auto"},
            "reloadStrategy": "annotations", "webhookUrl": "https://hooks.example/x",
            "someFutureKey": 1
        }});
        let (cfg, untranslated) = from_chart_values(&values, "values.yaml");
        let v = to_values(&cfg, &untranslated);
        for want in [
            "reloadOnCreate: true  # as Reloader was set",
            "reloadOnDelete: false",
            "ignoreSecrets: true",
            "ignoreJobs: true",
            "ignoreNamespaces: [\"kube-system\", \"flux\"]",
            "logFormat: \"json\"",
            "logLevel: \"warn\"",
            "replicaCount: 2",
            "enableHA: true",
            "  onReload: true",
            "  sink: \"slack\"",
            "- \"--auto-annotation=example.com/auto\"",
            "--reload-strategy=annotations: not needed",
            "reloader.someFutureKey: no hashroll equivalent",
            "webhookUrlExistingSecret",
        ] {
            assert!(v.contains(want), "missing {want:?} in\n{v}");
        }
        assert!(
            !v.contains("hooks.example"),
            "a webhook URL is a secret:\n{v}"
        );
    }

    #[test]
    fn one_namespace_mode_is_watch_globally_false() {
        let (cfg, _) = from_chart_values(&json!({"reloader": {"watchGlobally": false}}), "f");
        assert!(to_values(&cfg, &[]).contains("watchGlobally: false"));
        let (cfg, _) = from_chart_values(
            &json!({"reloader": {"watchGlobally": false, "namespaces": ["a", "b"]}}),
            "f",
        );
        let values = to_values(&cfg, &[]);
        assert!(values.contains("namespaces: [\"a\", \"b\"]"));
        // scoped mode's Role-only install has its counterpart, named in a comment
        assert!(values.contains("`namespaced: true`"), "{values}");
        let (cfg, _) = from_chart_values(&json!({"reloader": {}}), "f");
        assert!(!to_values(&cfg, &[]).contains("namespaced"));
    }
}
