//! Shared by the e2e tests: ONE real control plane per test binary (started on first use,
//! stopped by its reaper when the binary exits, however it exits), a namespace per test,
//! and deadline-bound waits.
#![allow(dead_code)]

pub mod csi;
pub mod helm;
pub mod kinds;
pub mod node;
pub mod tls;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashroll_harness::launch::{Launch, Process};
use hashroll_harness::plane::{Plane, PlaneOptions};
use hashroll_harness::webhook_config::Scope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The annotation the record is written under.
pub const RECORD: &str = "hashroll.dev/sources";

/// The repository's root.
pub fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// The record in `annotations`, as written (its `@key` included).
pub fn record_of(
    annotations: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(annotations?.get(RECORD)?).ok()
}

/// `kubectl apply` of `yaml` in `ns`; its output.
pub fn apply(ns: &str, yaml: &str) -> String {
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], yaml)
}

/// Stand-ins for third-party CRDs (cert-manager's, the Prometheus operator's) the
/// manifests and the chart make objects of: `(group, kind)`, any content kept. Applied,
/// then waited for until established.
pub async fn install_stand_in_crds(crds: &[(&str, &str)]) {
    let mut yaml = String::new();
    let mut names = Vec::new();
    for (group, kind) in crds {
        let singular = kind.to_lowercase();
        let plural = format!("{singular}s");
        let name = format!("{plural}.{group}");
        yaml.push_str(&format!(
            "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {{name: {name}}}\nspec:\n  group: {group}\n\
             \x20 names: {{kind: {kind}, plural: {plural}, singular: {singular}}}\n\
             \x20 scope: Namespaced\n  versions:\n\
             \x20 - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: \
             {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}\n"
        ));
        names.push(name);
    }
    kubectl_stdin(&["apply", "-f", "-"], &yaml);
    for crd in names {
        wait_for(&format!("{crd} established"), DEADLINE, || async {
            let s = plane()
                .kubectl(&[
                    "get",
                    "crd",
                    &crd,
                    "-o",
                    r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
                ])
                .ok()?;
            (s.trim() == "True").then_some(())
        })
        .await;
    }
}

/// cert-manager's kinds the manifests and the chart use.
pub const CERT_MANAGER_KINDS: [(&str, &str); 2] = [
    ("cert-manager.io", "Certificate"),
    ("cert-manager.io", "Issuer"),
];

static PLANE: OnceLock<Plane> = OnceLock::new();
static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The plane of this test binary.
pub fn plane() -> &'static Plane {
    PLANE.get_or_init(|| match Plane::start(PlaneOptions::default()) {
        Ok(p) => {
            eprintln!(
                "control plane up in {:.1}s at {} (logs: {})",
                p.startup.as_secs_f64(),
                p.server(),
                p.dir().join("logs").display()
            );
            p
        }
        Err(e) => panic!("cannot start the control plane: {e}"),
    })
}

/// A client of the plane, for the calling test's runtime.
pub async fn client() -> kube::Client {
    let p = plane();
    let kc = Kubeconfig::read_from(p.kubeconfig()).expect("plane kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

/// Creates a fresh namespace for one test.
pub fn namespace(prefix: &str) -> String {
    let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}-{}-{n}", std::process::id() % 100000);
    kubectl(&["create", "namespace", &name]);
    name
}

/// Runs the plane's kubectl; panics with its stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    plane().kubectl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl apply -f -` (or any verb reading stdin) with `yaml`.
pub fn kubectl_stdin(args: &[&str], yaml: &str) -> String {
    plane()
        .kubectl_stdin(args, yaml)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every 200 ms until it yields `Some`, or panics after `timeout` with `what`
/// and the tails of the plane's logs.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_then(what, timeout, || plane().log_tails(15), f).await
}

/// [`wait_for`], with `tails` saying what the logs held when it times out.
pub async fn wait_for_then<T, F, Fut>(
    what: &str,
    timeout: Duration,
    tails: impl Fn() -> String,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {}s waiting for {what}\n{}",
                timeout.as_secs(),
                tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ReplicaSets in `ns` matching `selector`.
pub async fn replicasets(client: &kube::Client, ns: &str, selector: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list replicasets")
        .items
}

/// Generous deadlines: the tests must pass on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// A hashroll process started against the plane (in the plane's process group, so it is
/// stopped with it), with a serving certificate from the plane's CA. Its files and ports are
/// the harness's [`Launch`] (`h.dir`, `h.webhook_port`, ... through `Deref`).
pub struct Hashroll {
    pub launch: Launch,
    /// the running process (none before the first start); killed when dropped
    pub process: Process,
    pub args: Vec<String>,
    /// run with this kubeconfig instead of the plane's admin one
    pub kubeconfig: Option<std::path::PathBuf>,
    /// no --hmac-key-file: the key comes from (or goes into) a Secret
    pub hmac_from_secret: bool,
    /// more environment for the process (taken at the next start)
    pub env: Vec<(String, String)>,
}

impl std::ops::Deref for Hashroll {
    type Target = Launch;
    fn deref(&self) -> &Launch {
        &self.launch
    }
}

impl Hashroll {
    /// Sends `sig` (`-STOP`, `-CONT`, `-TERM`...) to the process; false when it is not
    /// running.
    pub fn signal(&self, sig: &str) -> bool {
        self.process.signal(sig)
    }

    /// Starts `hashroll run` with `extra` flags and waits until /readyz answers 200.
    pub async fn start(extra: &[&str]) -> Hashroll {
        let mut h = Hashroll::prepare(extra);
        h.launch.issue_cert(plane()).unwrap();
        h.spawn();
        h.wait_ready().await;
        h
    }

    /// Ports and key file, no certificate and no process yet (`restart` starts it).
    pub fn prepare(extra: &[&str]) -> Hashroll {
        Hashroll {
            launch: Launch::prepare(std::path::Path::new(env!("CARGO_BIN_EXE_hashroll"))).unwrap(),
            process: Process::default(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            kubeconfig: None,
            hmac_from_secret: false,
            env: Vec::new(),
        }
    }

    fn spawn(&mut self) {
        let kubeconfig = self.kubeconfig.as_deref().unwrap_or(plane().kubeconfig());
        let mut cmd = self
            .launch
            .command(
                kubeconfig,
                "info,hashroll=debug",
                self.hmac_from_secret,
                &self.args,
            )
            .unwrap();
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = plane().spawn_in_group(&mut cmd).expect("start hashroll");
        self.process.replace(child);
    }

    /// Waits until /readyz answers 200; panics with the log's tail if the process exits
    /// first or [`DEADLINE`] passes.
    pub async fn wait_ready(&self) {
        if let Err(e) = self.launch.wait_ready(&self.process, DEADLINE).await {
            panic!("{e}");
        }
    }

    /// kill -9, no clean-up.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// How the process ended, once it has (without waiting).
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// Starts it again with the same flags, ports and key.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    /// Registers this process as the cluster's mutating webhook (a 127.0.0.1 URL, the
    /// plane's CA as caBundle), as the manifests do, excluding kube-system.
    pub fn register_webhook(&self, name: &str) {
        self.register_webhook_for(name, None)
    }

    /// Same, limited to one namespace when `only` is given.
    pub fn register_webhook_for(&self, name: &str, only: Option<&str>) {
        let scope = match only {
            Some(ns) => Scope::Only(ns),
            None => Scope::AllButSystem,
        };
        let yaml = self.launch.webhook_config(plane(), name, scope);
        kubectl_stdin(&["apply", "-f", "-"], &yaml);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Hashroll {
    /// A hashroll that watches only `ns` (plus `extra` flags) and is the webhook of `ns`
    /// only, so tests in one binary run side by side without seeing each other.
    pub async fn for_namespace(ns: &str, extra: &[&str]) -> Hashroll {
        Self::for_namespace_opts(ns, extra, true).await
    }

    /// [`Hashroll::for_namespace`]; `check_webhook: false` where the flags make it skip `ns`.
    pub async fn for_namespace_opts(ns: &str, extra: &[&str], check_webhook: bool) -> Hashroll {
        let only = format!("--namespaces={ns}");
        let mut flags = vec![only.as_str()];
        flags.extend_from_slice(extra);
        let h = Hashroll::start(&flags).await;
        h.register_webhook_for(&format!("hashroll-{ns}"), Some(ns));
        if check_webhook {
            wait_webhook_active(ns).await;
        }
        h
    }

    /// `hashroll explain ARGS` with this instance's key and `kubeconfig`: (exit code,
    /// stdout, stderr).
    pub fn explain_with(
        &self,
        kubeconfig: &std::path::Path,
        args: &[&str],
    ) -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashroll"))
            .arg("explain")
            .args(args)
            .arg(format!(
                "--hmac-key-file={}",
                self.dir.join("hmac.key").display()
            ))
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("run hashroll explain");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// [`Hashroll::explain_with`] the plane's admin kubeconfig; stdout and stderr together.
    pub fn explain(&self, args: &[&str]) -> String {
        let (_, out, err) = self.explain_with(plane().kubeconfig(), args);
        format!("{out}{err}")
    }

    /// hashroll as the chart runs it in `ns` (self-managed certificates keeping the caBundle
    /// of `webhook`), outside the plane on the chart's ServiceAccount token, with the key
    /// from its Secret; started and ready.
    pub async fn as_the_chart_runs_it(ns: &str, webhook: &str) -> Hashroll {
        let mut h = Hashroll::prepare(&[]);
        let kubeconfig = service_account_kubeconfig(&h.dir, "hashroll", ns);
        h.args = vec![
            "--self-managed-certs".into(),
            format!("--namespace={ns}"),
            format!("--webhook-config={webhook}"),
            format!("--namespaces={ns}"),
        ];
        h.hmac_from_secret = true;
        h.kubeconfig = Some(kubeconfig);
        h.restart().await;
        h
    }

    /// The text of /metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap()
    }
}

/// Waits until `selector` has exactly `n` ReplicaSets.
pub async fn wait_rs(client: &kube::Client, ns: &str, selector: &str, n: usize) {
    wait_for(
        &format!("{n} ReplicaSet(s) of {selector} in {ns}"),
        DEADLINE,
        || async { (replicasets(client, ns, selector).await.len() == n).then_some(()) },
    )
    .await;
}

/// Waits until the apiserver calls the registered webhook: a server-side dry-run create of
/// an opted-in Deployment comes back stamped.
pub async fn wait_webhook_active(ns: &str) {
    wait_webhook_active_on(plane(), ns).await
}

/// [`wait_webhook_active`] on plane `p`.
pub async fn wait_webhook_active_on(p: &Plane, ns: &str) {
    let probe = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"probe","annotations":{"reloader.stakater.com/auto":"true"}},
"spec":{"selector":{"matchLabels":{"app":"probe"}},"template":{"metadata":{"labels":{"app":"probe"}},"spec":{"containers":[{"name":"c","image":"x","envFrom":[{"configMapRef":{"name":"probe"}}]}]}}}}"#;
    wait_for_then(
        "the webhook to be called by the apiserver",
        DEADLINE,
        || p.log_tails(15),
        || async {
            let out = p
                .kubectl_stdin(
                    &[
                        "create",
                        "-n",
                        ns,
                        "--dry-run=server",
                        "-o",
                        "json",
                        "-f",
                        "-",
                    ],
                    probe,
                )
                .ok()?;
            out.contains("hashroll.dev/sources").then_some(())
        },
    )
    .await;
}

/// Runs `check` (which asserts) every 250 ms over `settle`, and once more at its end: the
/// tests' one "nothing happens for a settle period" loop, beside [`wait_for`]'s "something
/// happens within a deadline".
pub async fn holds_for<F, Fut>(settle: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let end = Instant::now() + settle;
    loop {
        check().await;
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asserts that the ReplicaSets matching `selector` stay exactly `want` over `settle`.
pub async fn assert_rs_count_stays(
    client: &kube::Client,
    ns: &str,
    selector: &str,
    want: usize,
    settle: Duration,
) {
    holds_for(settle, || async {
        let n = replicasets(client, ns, selector).await.len();
        assert_eq!(n, want, "ReplicaSets of {selector} in {ns}");
    })
    .await;
}

/// How long "nothing rolled" is watched for.
pub const SETTLE: Duration = Duration::from_secs(4);

/// `kubectl patch configmap NAME --type merge` of its `data` (`data` is a JSON object).
pub fn patch_cm(ns: &str, name: &str, data: &str) {
    kubectl(&[
        "patch",
        "configmap",
        name,
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"data":{data}}}"#),
    ]);
}

/// A ConfigMap `cfg` with `k: v`, and an opted-in Deployment `name` using it (envFrom).
pub fn cfg_and_app(v: &str, apps: &[&str]) -> String {
    let mut out =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{k: '{v}'}}\n");
    for name in apps {
        out.push_str(&app_on(name, "cfg"));
    }
    out
}

/// An opted-in (auto) Deployment `name` using ConfigMap `cm` (envFrom), as a YAML document.
pub fn app_on(name: &str, cm: &str) -> String {
    app_with(name, cm, "", "", "")
}

/// An opted-in Deployment `name` of wave `wave` on ConfigMap `cfg`, its pods labelled
/// `waved: "yes"`, with `spec` (one line, e.g. `minReadySeconds: 6`) in its spec.
pub fn waved_app(name: &str, wave: u32, spec: &str) -> String {
    app_with(
        name,
        "cfg",
        &format!(r#", hashroll.dev/wave: "{wave}""#),
        spec,
        r#", waved: "yes""#,
    )
}

/// [`app_on`] with more annotations (`, k: v` pairs), a line of `spec` and more pod labels.
pub fn app_with(name: &str, cm: &str, annotations: &str, spec: &str, labels: &str) -> String {
    format!(
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{reloader.stakater.com/auto: "true"{annotations}}}
spec:
  {spec}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}{labels}}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: {cm}}}}}]}}]
"#
    )
}

/// Sets `k` of ConfigMap `cfg`.
pub fn set_cfg(ns: &str, v: &str) {
    patch_cm(ns, "cfg", &format!(r#"{{"k":"{v}"}}"#));
}

/// YAML documents of Kubernetes objects as one JSON List (kubectl's client-side reading).
pub fn as_list(yaml: &str) -> serde_json::Value {
    let json = kubectl_stdin(
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        yaml,
    );
    // one JSON document per object, one after the other
    let items: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&json)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .expect("kubectl prints JSON");
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// The objects of a List (or the one object).
pub fn items(list: &serde_json::Value) -> Vec<serde_json::Value> {
    match list.get("items") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        _ => vec![list.clone()],
    }
}

/// The resourceVersion of every object in `list` (`kind/name`, in `ns` where namespaced).
pub fn versions(list: &serde_json::Value, ns: &str) -> BTreeMap<String, String> {
    items(list)
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut args = vec!["get".to_string(), kind.clone(), name.clone()];
            if o["metadata"]["namespace"].is_string() {
                args.extend(["-n".to_string(), ns.to_string()]);
            }
            args.extend(["-o".into(), "jsonpath={.metadata.resourceVersion}".into()]);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            (format!("{kind}/{name}"), kubectl(&a))
        })
        .collect()
}

/// A kubeconfig in `dir` holding a TokenRequest token of ServiceAccount `ns/sa`.
pub fn service_account_kubeconfig(dir: &std::path::Path, sa: &str, ns: &str) -> std::path::PathBuf {
    use base64::Engine;
    let token = kubectl(&["create", "token", sa, "-n", ns, "--duration=2h"]);
    let ca = base64::engine::general_purpose::STANDARD.encode(plane().ca_pem());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: sa\n  context: {{cluster: p, user: sa}}\ncurrent-context: sa\n",
        plane().server(),
        token.trim()
    );
    let path = dir.join("sa.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// The record annotation (`hashroll.dev/sources`) of Deployment `ns/name`, empty when none.
pub fn deployment_record(ns: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        r#"jsonpath={.metadata.annotations.hashroll\.dev/sources}"#,
    ])
}

/// Per Deployment, its ReplicaSets' creation times, oldest first.
pub async fn rs_times(client: &kube::Client, ns: &str) -> BTreeMap<String, Vec<String>> {
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels("waved=yes"))
        .await
        .unwrap()
        .items;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rs {
        let app = r.metadata.labels.as_ref().unwrap()["app"].clone();
        let t = r.metadata.creation_timestamp.unwrap().0.to_string();
        out.entry(app).or_default().push(t);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Waits until every Deployment of `names` has `n` ReplicaSets.
pub async fn wait_all_rs(client: &kube::Client, ns: &str, names: &[String], n: usize) {
    wait_for(
        &format!("{} Deployments with {n} ReplicaSets each", names.len()),
        Duration::from_secs(180),
        || async {
            let t = rs_times(client, ns).await;
            names
                .iter()
                .all(|d| t.get(d).map_or(0, Vec::len) == n)
                .then_some(())
        },
    )
    .await;
}

/// The ReplicaSet count of each Deployment, over the settle period, stays `want`.
pub async fn counts_stay(client: &kube::Client, ns: &str, want: &BTreeMap<String, usize>) {
    holds_for(SETTLE * 2, || async {
        let now: BTreeMap<String, usize> = rs_times(client, ns)
            .await
            .into_iter()
            .map(|(k, v)| (k, v.len()))
            .collect();
        assert_eq!(&now, want, "ReplicaSets per Deployment");
    })
    .await;
}

/// The sum of the samples of metric `name` (a name and the space or brace after it) in
/// the text of /metrics.
pub fn metric(m: &str, name: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `metadata.resourceVersion` of `kind/name` in `ns` now (what hashroll's debug line
/// "workload seen" names once its watch brought that version).
pub fn resource_version(ns: &str, kind: &str, name: &str) -> String {
    kubectl(&[
        "get",
        kind,
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
}

/// A GitOps application's files (e2e_flux, e2e_argocd): ConfigMap `cfg` with `v`, and
/// Deployment `web` on `image`, opted in, using it.
pub fn gitops_app(v: &str, image: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "cfg.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{v: \"{v}\"}}\n"
            ),
        ),
        (
            "web.yaml",
            format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: {image}
        envFrom: [{{configMapRef: {{name: cfg}}}}]
"#
            ),
        ),
    ]
}

/// The field managers of an object and their operations (`Apply`, `Update`).
pub fn managers(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<(String, String)> {
    meta.managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}
