//! `hashroll migrate --from-reloader`: removes what Reloader leaves behind in pod templates
//! (its env-vars strategy's `STAKATER_<NAME>_CONFIGMAP` / `_SECRET` /
//! `_SECRETPROVIDERCLASS` variables, its annotations strategy's
//! `reloader.stakater.com/last-reloaded-from`), which pile up and are never removed.
//!
//! A dry run by default: it lists, per workload, what it would remove. With `--apply` one
//! JSON patch per workload, guarded by `test` operations (the resourceVersion and each entry
//! removed, so a concurrent edit makes it fail instead of removing the wrong entry), under
//! `--max-rollouts-per-second`. The patch changes the pod template, so each workload rolls
//! once (said up front); it also carries hashroll's record and token for the workload (the
//! same the webhook would write), so the migration is that rollout and nothing rolls again.
//!
//! What to remove and the patch are pure (`leftovers`, `patch`); the shell lists and writes.
//! Jobs are left alone: a Job's pod template cannot be changed.

use std::fmt::Write as _;
use std::time::Duration;

use kube::Client;
use kube::api::Patch;
use serde_json::{Value, json};

use crate::cmd::cli::args::MigrateArgs;
use crate::cmd::objects::{ReadError, snapshot, workload_objects};
use crate::core::kind::{Rollout, WorkloadKind};
use crate::core::names::{LAST_RELOADED_FROM, RecordNames};
use crate::core::policy::PolicyConfig;
use crate::core::record::Stored;
use crate::core::record::{Mode, RollOptions};
use crate::core::stamp::stamp;
use crate::core::workload::Workload;
use crate::k8s;

/// Whether `name` is a variable Reloader's env-vars strategy adds.
pub(crate) fn is_reloader_env(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("STAKATER_") else {
        return false;
    };
    ["_CONFIGMAP", "_SECRET", "_SECRETPROVIDERCLASS"]
        .iter()
        .any(|suffix| rest.len() > suffix.len() && rest.ends_with(suffix))
}

/// One env entry to remove: the container list (`containers`/`initContainers`), the
/// container's index and name, the entry's index and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvLeftover {
    pub(crate) list: &'static str,
    pub(crate) container: usize,
    pub(crate) container_name: String,
    pub(crate) index: usize,
    pub(crate) name: String,
}

/// What Reloader left in one workload's pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Leftovers {
    pub(crate) envs: Vec<EnvLeftover>,
    pub(crate) annotation: bool,
}

impl Leftovers {
    pub(crate) fn is_empty(&self) -> bool {
        self.envs.is_empty() && !self.annotation
    }
}

/// JSON pointer of the pod template of `kind`.
fn template_pointer(kind: WorkloadKind) -> String {
    kind.row()
        .template
        .iter()
        .fold(String::new(), |p, k| format!("{p}/{k}"))
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Reloader's leftovers in `obj`, a workload of `kind`.
pub(crate) fn leftovers(kind: WorkloadKind, obj: &Value) -> Leftovers {
    let mut out = Leftovers::default();
    let Some(t) = obj.pointer(&template_pointer(kind)) else {
        return out;
    };
    out.annotation = t
        .pointer(&format!(
            "/metadata/annotations/{}",
            escape(LAST_RELOADED_FROM)
        ))
        .is_some();
    for list in ["containers", "initContainers"] {
        let containers = t["spec"][list].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for (ci, c) in containers.iter().enumerate() {
            let env = c["env"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for (ei, e) in env.iter().enumerate() {
                let name = e["name"].as_str().unwrap_or_default();
                if is_reloader_env(name) {
                    out.envs.push(EnvLeftover {
                        list,
                        container: ci,
                        container_name: c["name"].as_str().unwrap_or_default().to_string(),
                        index: ei,
                        name: name.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// The JSON patch removing `left` from `obj` (a workload of `kind`), with hashroll's
/// `record` (annotation name, text) and `token` (annotation name, value) when given.
/// Guarded: `test` of the resourceVersion and of each entry removed.
pub(crate) fn patch(
    kind: WorkloadKind,
    obj: &Value,
    left: &Leftovers,
    record: Option<(&str, &str)>,
    token: Option<(&str, &str)>,
) -> Value {
    let t = template_pointer(kind);
    let mut ops = Vec::new();
    if let Some(rv) = obj.pointer("/metadata/resourceVersion") {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    // from the last index down, so each index still means the entry it named
    let mut envs: Vec<&EnvLeftover> = left.envs.iter().collect();
    envs.sort_by(|a, b| (a.list, a.container, b.index).cmp(&(b.list, b.container, a.index)));
    for e in envs {
        let p = format!("{t}/spec/{}/{}/env/{}", e.list, e.container, e.index);
        ops.push(json!({"op": "test", "path": format!("{p}/name"), "value": e.name}));
        ops.push(json!({"op": "remove", "path": p}));
    }
    let tmpl_ann = format!("{t}/metadata/annotations");
    let mut tmpl_has_annotations = obj.pointer(&tmpl_ann).is_some_and(Value::is_object);
    if left.annotation {
        ops.push(
            json!({"op": "remove", "path": format!("{tmpl_ann}/{}", escape(LAST_RELOADED_FROM))}),
        );
    }
    if let Some((name, value)) = token {
        if !tmpl_has_annotations {
            if obj.pointer(&format!("{t}/metadata")).is_none() {
                ops.push(json!({"op": "add", "path": format!("{t}/metadata"), "value": {}}));
            }
            ops.push(json!({"op": "add", "path": tmpl_ann, "value": {}}));
            tmpl_has_annotations = true;
        }
        debug_assert!(tmpl_has_annotations);
        ops.push(
            json!({"op": "add", "path": format!("{tmpl_ann}/{}", escape(name)), "value": value}),
        );
    }
    if let Some((name, text)) = record {
        if !obj
            .pointer("/metadata/annotations")
            .is_some_and(Value::is_object)
        {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(name)), "value": text}));
    }
    Value::Array(ops)
}

/// The kinds whose templates can be changed (not Jobs), the custom ones included.
fn kinds() -> Vec<WorkloadKind> {
    WorkloadKind::all()
        .filter(|k| k.row().rollout != Rollout::Recreate)
        .collect()
}

/// One workload's line of the plan.
fn describe(kind: WorkloadKind, ns: &str, name: &str, l: &Leftovers, records: usize) -> String {
    let mut parts: Vec<String> = l
        .envs
        .iter()
        .map(|e| format!("env {} (container {})", e.name, e.container_name))
        .collect();
    if l.annotation {
        parts.push(format!("annotation {LAST_RELOADED_FROM}"));
    }
    let mut s = format!(
        "{}/{ns}/{name}: remove {}",
        kind.as_str().to_lowercase(),
        parts.join(", ")
    );
    if records > 0 {
        let _ = write!(s, "; record {records} tracked source(s)");
    }
    s
}

/// Why `hashroll migrate` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error("say what to migrate from: --from-reloader")]
    From,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Key(#[from] crate::services::key::KeyError),
    #[error("{0}")]
    Failed(String),
}

pub(crate) async fn command(args: MigrateArgs) -> Result<String, MigrateError> {
    if !args.from_reloader {
        return Err(MigrateError::From);
    }
    if args.chart_values {
        return chart_values(&args).await;
    }
    let client = Client::try_default()
        .await
        .map_err(|e| ReadError::Cluster(e.to_string()))?;
    let names = RecordNames {
        record: args.key.record_annotation.clone(),
        token: args.key.token_annotation.clone(),
    };
    let cfg = PolicyConfig {
        auto_reload_all: args.auto_reload_all,
        auto_all_skips: PolicyConfig::auto_all_skips_with(&args.hashroll_namespace),
        ..Default::default()
    };
    // the key records what is migrated; without it (hashroll not installed yet) the dry run
    // still lists, and --apply refuses
    let key =
        crate::services::key::for_command(&client, args.key.place(), &args.hashroll_namespace)
            .await;
    let key = match (key, args.apply) {
        (Ok(k), _) => Some(k),
        (Err(e), true) => return Err(e.into()),
        (Err(_), false) => None,
    };
    let namespaces = match &args.namespace {
        Some(ns) => vec![ns.clone()],
        None => all_namespaces(&client).await?,
    };
    let mut out = String::new();
    let mut plan = Vec::new();
    let ctx = PlanContext {
        client: &client,
        cfg: &cfg,
        names: &names,
        key: key.as_ref(),
    };
    for ns in &namespaces {
        for p in ctx.plan_namespace(ns).await? {
            let n = p.record.as_ref().map(|r| r.2).unwrap_or(0);
            let _ = writeln!(out, "{}", describe(p.kind, &p.ns, &p.name, &p.left, n));
            plan.push(p);
        }
    }
    if plan.is_empty() {
        out.push_str("nothing of Reloader's left in any pod template\n");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{} workload(s) carry Reloader's leftovers; removing them changes each pod template, so each rolls once{}",
        plan.len(),
        if key.is_some() {
            " (recorded in the same patch: nothing rolls again)"
        } else {
            " (no HMAC key found: --apply needs hashroll installed, or --hmac-key-file)"
        }
    );
    if !args.apply {
        out.push_str("dry run: nothing changed (add --apply)\n");
        return Ok(out);
    }
    apply_plan(&client, &names, &plan, args.max_rollouts_per_second, out).await
}

/// `--chart-values`: hashroll's chart values from a Reloader values file or Deployment.
async fn chart_values(args: &MigrateArgs) -> Result<String, MigrateError> {
    use crate::cmd::migrate_values::{Source, command};
    let source = match (&args.values, &args.reloader_deployment) {
        (Some(f), _) => Source::ValuesFile(f.clone()),
        (None, Some(d)) => match d.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Source::Deployment(ns.into(), name.into())
            }
            _ => {
                return Err(MigrateError::Failed(format!(
                    "--reloader-deployment {d:?}: expected NAMESPACE/NAME"
                )));
            }
        },
        (None, None) => Source::Find,
    };
    command(source).await.map_err(MigrateError::Failed)
}

/// One workload to clean: Reloader's leftovers in it, and the record and token to write in
/// the same patch (with the number of sources recorded) when the key is known.
struct Planned {
    kind: WorkloadKind,
    ns: String,
    name: String,
    obj: Value,
    left: Leftovers,
    record: Option<(String, String, usize)>,
}

/// What planning reads with.
struct PlanContext<'a> {
    client: &'a Client,
    cfg: &'a PolicyConfig,
    names: &'a RecordNames,
    key: Option<&'a crate::core::digest::KeyRing>,
}

impl PlanContext<'_> {
    /// The workloads of `ns` with Reloader's leftovers, each with its record when the key
    /// is known (the namespace's sources read once, at the first such workload).
    async fn plan_namespace(&self, ns: &str) -> Result<Vec<Planned>, MigrateError> {
        let mut snap = None;
        let mut plan = Vec::new();
        for kind in kinds() {
            // a kind that is not installed (Argo Rollouts, a custom kind) has nothing
            let objs = match workload_objects(self.client, ns, kind, None).await {
                Ok(o) => o,
                Err(ReadError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for obj in objs {
                let left = leftovers(kind, &obj);
                if left.is_empty() {
                    continue;
                }
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut record = None;
                if let (Some(key), Ok(w)) = (self.key, Workload::from_value(kind, ns, &obj)) {
                    if snap.is_none() {
                        snap = Some(snapshot(self.client, ns, self.cfg).await?);
                    }
                    if let Some(view) = snap.as_ref().map(|s| s.cache.view(ns)) {
                        let stored = Stored::of_object(kind, &obj, self.names);
                        let s = stamp(
                            self.cfg,
                            key,
                            &w,
                            &view,
                            &stored,
                            Mode::Fresh,
                            RollOptions::default(),
                        );
                        if let (Some(text), Some(t)) =
                            (s.decision.record_text(), s.decision.token.clone())
                        {
                            let n = s.decision.record.as_ref().map_or(0, |r| r.len());
                            record = Some((text, t, n));
                        }
                    }
                }
                plan.push(Planned {
                    kind,
                    ns: ns.to_string(),
                    name,
                    obj,
                    left,
                    record,
                });
            }
        }
        Ok(plan)
    }
}

/// `--apply`: one patch per planned workload, `rate` a second, each line said in `out`.
async fn apply_plan(
    client: &Client,
    names: &RecordNames,
    plan: &[Planned],
    rate: f64,
    mut out: String,
) -> Result<String, MigrateError> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut failed = 0;
    for (i, p) in plan.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let record = p.record.as_ref();
        let body = patch(
            p.kind,
            &p.obj,
            &p.left,
            record.map(|r| (names.record.as_str(), r.0.as_str())),
            record.map(|r| (names.token.as_str(), r.1.as_str())),
        );
        let api = k8s::api::namespaced(client.clone(), &p.ns, p.kind);
        let patch_body: Patch<Value> =
            Patch::Json(serde_json::from_value(body).map_err(|e| ReadError::Api(e.to_string()))?);
        let what = format!("{}/{}/{}", p.kind.as_str().to_lowercase(), p.ns, p.name);
        match api
            .patch(&p.name, &crate::k8s::api::patch_params(), &patch_body)
            .await
        {
            Ok(_) => {
                let _ = writeln!(out, "patched {what}");
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "FAILED {what}: {e} (changed meanwhile? run again)");
            }
        }
    }
    if failed > 0 {
        return Err(MigrateError::Failed(format!(
            "{out}{failed} of {} workload(s) not patched",
            plan.len()
        )));
    }
    Ok(out)
}

async fn all_namespaces(client: &Client) -> Result<Vec<String>, ReadError> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::ResourceExt;
    let list = kube::Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| ReadError::Cluster(e.to_string()))?;
    Ok(list.items.iter().map(|n| n.name_any()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "resourceVersion": "7", "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"template": {
                "metadata": {"annotations": {LAST_RELOADED_FROM: "{\"type\":\"CONFIGMAP\"}", "keep": "me"}},
                "spec": {
                    "initContainers": [{"name": "init", "env": [{"name": "STAKATER_DB_SECRET", "value": "x"}]}],
                    "containers": [
                        {"name": "a", "env": [
                            {"name": "STAKATER_CFG_CONFIGMAP", "value": "1"},
                            {"name": "KEEP", "value": "k"},
                            {"name": "STAKATER_OTHER_CONFIGMAP", "value": "2"}
                        ]},
                        {"name": "b"}
                    ]
                }
            }}
        })
    }

    #[test]
    fn reloader_variables_are_named_exactly() {
        for yes in [
            "STAKATER_CFG_CONFIGMAP",
            "STAKATER_DB_SECRET",
            "STAKATER_SPC_SECRETPROVIDERCLASS",
        ] {
            assert!(is_reloader_env(yes), "{yes}");
        }
        for no in [
            "STAKATER_CONFIGMAP",
            "STAKATER_X",
            "MY_STAKATER_X_SECRET",
            "stakater_x_secret",
            "KEEP",
        ] {
            assert!(!is_reloader_env(no), "{no}");
        }
    }

    /// Applies a JSON patch the way the apiserver does (RFC 6902, tests included).
    fn apply(obj: &Value, p: &Value) -> Result<Value, String> {
        let mut o = obj.clone();
        let p: json_patch::Patch = serde_json::from_value(p.clone()).map_err(|e| e.to_string())?;
        json_patch::patch(&mut o, &p).map_err(|e| e.to_string())?;
        Ok(o)
    }

    #[test]
    fn the_patch_removes_the_leftovers_and_nothing_else() {
        let d = deployment();
        let l = leftovers(WorkloadKind::Deployment, &d);
        assert_eq!(l.envs.len(), 3);
        assert!(l.annotation);
        let p = patch(
            WorkloadKind::Deployment,
            &d,
            &l,
            Some(("hashroll.dev/sources", "{}")),
            Some(("hashroll.dev/config-hash", "t1")),
        );
        let after = apply(&d, &p).unwrap();
        assert!(leftovers(WorkloadKind::Deployment, &after).is_empty());
        let env = &after["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name": "KEEP", "value": "k"}]));
        assert_eq!(
            after["spec"]["template"]["spec"]["initContainers"][0]["env"],
            json!([])
        );
        let ann = &after["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            ann,
            &json!({"keep": "me", "hashroll.dev/config-hash": "t1"})
        );
        assert_eq!(
            after["metadata"]["annotations"]["hashroll.dev/sources"],
            "{}"
        );
        assert_eq!(
            after["metadata"]["annotations"]["reloader.stakater.com/auto"],
            "true"
        );
    }

    #[test]
    fn a_concurrent_change_fails_the_patch_instead_of_removing_the_wrong_entry() {
        let d = deployment();
        let l = leftovers(WorkloadKind::Deployment, &d);
        let p = patch(WorkloadKind::Deployment, &d, &l, None, None);
        // someone inserted a variable first: indices moved
        let mut moved = d.clone();
        moved["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "NEW", "value": "n"}));
        assert!(apply(&moved, &p).is_err());
        // or the object changed at all
        let mut newer = d.clone();
        newer["metadata"]["resourceVersion"] = json!("8");
        assert!(apply(&newer, &p).is_err());
    }

    #[test]
    fn a_template_without_annotations_gets_the_token_and_cronjobs_their_own_path() {
        let c = json!({
            "metadata": {"name": "c", "resourceVersion": "1"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "a", "env": [{"name": "STAKATER_CFG_CONFIGMAP", "value": "1"}]}
            ]}}}}}
        });
        let l = leftovers(WorkloadKind::CronJob, &c);
        assert_eq!(l.envs.len(), 1);
        assert!(!l.annotation);
        let p = patch(
            WorkloadKind::CronJob,
            &c,
            &l,
            Some(("r", "{}")),
            Some(("t", "x")),
        );
        let after = apply(&c, &p).unwrap();
        assert_eq!(
            after["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]["t"],
            "x"
        );
        assert_eq!(after["metadata"]["annotations"]["r"], "{}");
        assert!(leftovers(WorkloadKind::CronJob, &after).is_empty());
    }

    #[test]
    fn jobs_are_not_migrated() {
        assert!(!kinds().contains(&WorkloadKind::Job));
        assert!(kinds().contains(&WorkloadKind::Deployment));
    }
}
