//! The kinds beyond the three apps/v1 ones, for the tests that need them: the Argo Rollout
//! and the test's own custom kind (a `Widget` keeping its pod template at
//! `spec.workload.podTemplate`), and [`Kind`]: one row per kind, so a scenario is written
//! once and run for each.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use super::*;

pub const TOKEN: &str = "hashroll.dev/config-hash";

/// `--workload-kind` for the Widget.
pub const WIDGET_FLAG: &str =
    "--workload-kind=example.hashroll.dev/v1/Widget=spec.workload.podTemplate";

pub const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.hashroll.dev
spec:
  group: example.hashroll.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn dynamic(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

pub fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    dynamic(client, ns, "example.hashroll.dev", "v1", "Widget")
}

pub fn rollouts(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    dynamic(client, ns, "argoproj.io", "v1alpha1", "Rollout")
}

/// The annotation `key` of the object at JSON pointer `at` (a pod template's metadata).
pub fn annotation_at(o: &DynamicObject, at: &str, key: &str) -> Option<String> {
    o.data
        .pointer(&format!(
            "{at}/metadata/annotations/{}",
            key.replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// Installs the Widget CRD and waits until it is established (polled: `kubectl wait` fails
/// at once while the CRD has no conditions yet).
pub async fn install_widget_crd() {
    kubectl_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    wait_for("the Widget CRD established", DEADLINE, || async {
        let s = plane()
            .kubectl(&[
                "get",
                "crd",
                "widgets.example.hashroll.dev",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
            ])
            .ok()?;
        (s.trim() == "True").then_some(())
    })
    .await;
}

/// Adds widgets to the rules of the test's webhook configuration for `ns`.
pub fn add_widget_rule(ns: &str) {
    kubectl(&[
        "patch",
        "mutatingwebhookconfiguration",
        &format!("hashroll-{ns}"),
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/webhooks/0/rules/-", "value": {"apiGroups": ["example.hashroll.dev"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["widgets"], "scope": "Namespaced"}}]"#,
    ]);
}

/// Waits until a server-side dry-run create of an opted-in Widget comes back stamped: the
/// widget rule has reached the apiserver's admission chain.
pub async fn wait_widget_rule_active(ns: &str) {
    let probe = Kind::Widget.yaml(
        "probe",
        r#"reloader.stakater.com/auto: "true""#,
        "[{configMapRef: {name: probe}}]",
    );
    wait_for("the widget rule live", DEADLINE, || async {
        let out = plane()
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
                &probe,
            )
            .ok()?;
        out.contains(TOKEN).then_some(())
    })
    .await;
}

/// The objects in `ns` whose controlling owner is `kind/name`.
async fn owned<K>(api: Api<K>, kind: &str, name: &str) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|o| {
            o.meta()
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.kind == kind && r.name == name)
        })
        .collect()
}

pub async fn rollout_replicasets(client: &kube::Client, ns: &str, name: &str) -> Vec<ReplicaSet> {
    owned(Api::namespaced(client.clone(), ns), "Rollout", name).await
}

/// One row per kind beyond the apps/v1 three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CronJob,
    Job,
    Rollout,
    Widget,
}

impl Kind {
    /// The word `hashroll explain KIND/NAME` takes.
    pub fn word(self) -> &'static str {
        match self {
            Kind::CronJob => "cronjob",
            Kind::Job => "job",
            Kind::Rollout => "rollout",
            Kind::Widget => "widget",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::CronJob => "cronjobs",
            Kind::Job => "jobs",
            Kind::Rollout => "rollouts",
            Kind::Widget => "widgets",
        }
    }

    /// Where the pod template is, as a JSON pointer.
    pub fn template_at(self) -> &'static str {
        match self {
            Kind::CronJob => "/spec/jobTemplate/spec/template",
            Kind::Job | Kind::Rollout => "/spec/template",
            Kind::Widget => "/spec/workload/podTemplate",
        }
    }

    /// A `name` of this kind with annotations `ann` (flow-mapping entries) whose one
    /// container has `envFrom: ENV_FROM` (a flow sequence; `[]` for none).
    pub fn yaml(self, name: &str, ann: &str, env_from: &str) -> String {
        let pod = |indent: &str, labels: bool| {
            let meta = if labels {
                format!("{indent}metadata: {{labels: {{app: {name}}}}}\n")
            } else {
                String::new()
            };
            format!(
                "{meta}{indent}spec:\n{indent}  restartPolicy: {}\n{indent}  containers: [{{name: c, image: busybox, envFrom: {env_from}}}]\n",
                if labels { "Always" } else { "Never" }
            )
        };
        let head = |api: &str, kind: &str| {
            format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations: {{{ann}}}\nspec:\n"
            )
        };
        match self {
            // a schedule far away: every Job in the test is one hashroll made
            Kind::CronJob => format!(
                "{}  schedule: \"0 0 1 1 *\"\n  jobTemplate:\n    spec:\n      template:\n{}",
                head("batch/v1", "CronJob"),
                pod("        ", false)
            ),
            Kind::Job => format!(
                "{}  template:\n{}",
                head("batch/v1", "Job"),
                pod("    ", false)
            ),
            Kind::Rollout => format!(
                "{}  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  strategy: {{canary: {{}}}}\n  template:\n{}",
                head("argoproj.io/v1alpha1", "Rollout"),
                pod("    ", true)
            ),
            Kind::Widget => format!(
                "{}  size: 3\n  workload:\n    podTemplate:\n{}",
                head("example.hashroll.dev/v1", "Widget"),
                pod("      ", true)
            ),
        }
    }

    fn api(self, client: &kube::Client, ns: &str) -> Api<DynamicObject> {
        match self {
            Kind::CronJob => dynamic(client, ns, "batch", "v1", "CronJob"),
            Kind::Job => dynamic(client, ns, "batch", "v1", "Job"),
            Kind::Rollout => rollouts(client, ns),
            Kind::Widget => widgets(client, ns),
        }
    }

    /// The roll token on `name`'s pod template, if it exists and has one.
    pub async fn token(self, client: &kube::Client, ns: &str, name: &str) -> Option<String> {
        let o = self.api(client, ns).get(name).await.ok()?;
        annotation_at(&o, self.template_at(), TOKEN)
    }
}

/// Counts the versions of each workload of one kind that ran or would run: for a CronJob,
/// 1 + the Jobs it owns; a Job, the distinct uids seen (it is made again on a roll); a
/// Rollout, the ReplicaSets the Argo controller made; a Widget (no controller), the
/// distinct tokens seen. A roll adds one.
pub struct Versions {
    pub kind: Kind,
    client: kube::Client,
    ns: String,
    seen: std::sync::Mutex<BTreeMap<String, HashSet<String>>>,
}

impl Versions {
    pub fn new(kind: Kind, client: &kube::Client, ns: &str) -> Versions {
        Versions {
            kind,
            client: client.clone(),
            ns: ns.to_string(),
            seen: Default::default(),
        }
    }

    pub async fn count(&self, name: &str) -> usize {
        let (client, ns) = (&self.client, self.ns.as_str());
        match self.kind {
            Kind::CronJob => {
                1 + owned(Api::<Job>::namespaced(client.clone(), ns), "CronJob", name)
                    .await
                    .len()
            }
            Kind::Rollout => rollout_replicasets(client, ns, name).await.len(),
            Kind::Job | Kind::Widget => {
                let o = self.kind.api(client, ns).get(name).await.ok();
                let mark = o.and_then(|o| match self.kind {
                    Kind::Job => o.metadata.uid.clone(),
                    // no token (yet) is a version too
                    _ => {
                        Some(annotation_at(&o, self.kind.template_at(), TOKEN).unwrap_or_default())
                    }
                });
                let mut seen = self.seen.lock().unwrap();
                let versions = seen.entry(name.to_string()).or_default();
                versions.extend(mark);
                versions.len()
            }
        }
    }

    /// Waits until `name` has at least `n` versions.
    pub async fn wait(&mut self, name: &str, n: usize) {
        let what = format!(
            "{n} versions of {}/{name} in {}",
            self.kind.plural(),
            self.ns
        );
        wait_for(&what, DEADLINE, || async {
            (self.count(name).await >= n).then_some(())
        })
        .await;
    }

    /// Asserts each `(name, n)` stays at exactly `n` versions over [`SETTLE`].
    pub async fn stay(&mut self, want: &[(&str, usize)]) {
        holds_for(SETTLE, || async {
            for (name, n) in want {
                let got = self.count(name).await;
                assert_eq!(
                    got,
                    *n,
                    "versions of {}/{name} in {}",
                    self.kind.plural(),
                    self.ns
                );
            }
        })
        .await;
    }
}
