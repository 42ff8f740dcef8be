//! `hashroll explain`: what a workload tracks and why, or what a change to a source would
//! roll, read from the cluster with the same pure core the webhook and watcher use.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use crate::cache::{NamespaceFilter, SourceCache};
use crate::core::digest::{ABSENT, DigestKey};
use crate::core::patch::RecordNames;
use crate::core::policy::{PolicyConfig, opted_in};
use crate::core::record::{Mode, RollOptions, Stamp, stamp};
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::selector::LabelSelector;
use crate::core::workload::{Workload, WorkloadKind, stored_of};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cannot reach the cluster: {0}")]
    Cluster(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("unknown kind {0:?}: use deployment, daemonset, statefulset, configmap or secret")]
    Kind(String),
    #[error("expected KIND/NAME, got {0:?}")]
    Target(String),
    #[error("cannot read the HMAC key: {0}")]
    Key(String),
    #[error("{0}")]
    Api(String),
}

fn api_err(what: &str, e: kube::Error) -> ExplainError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ExplainError::NotFound(what.to_string()),
        kube::Error::Api(s) => ExplainError::Api(format!("{what}: {}", s.message)),
        other => ExplainError::Cluster(other.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub struct TrackedSource {
    pub source: String,
    pub reasons: Vec<String>,
    pub keys: Option<Vec<String>>,
    pub exists: bool,
    pub digest: String,
    pub recorded: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    pub namespace: String,
    pub opted_in: bool,
    pub tracked: Vec<TrackedSource>,
    pub record: Option<BTreeMap<String, String>>,
    pub should_be: Option<BTreeMap<String, String>>,
    pub token: Option<String>,
    pub roll_pending: bool,
    pub pending_sources: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub namespace: String,
    pub exists: bool,
    pub would_roll: Vec<Tracker>,
}

#[derive(Debug, Serialize)]
pub struct Tracker {
    pub workload: String,
    pub reasons: Vec<String>,
}

/// Everything explain needs from the cluster for one namespace.
struct Snapshot {
    cache: SourceCache,
}

async fn snapshot(client: &Client, ns: &str, cfg: &PolicyConfig) -> Result<Snapshot, ExplainError> {
    let cache = SourceCache::new(
        cfg.names.clone(),
        LabelSelector::default(),
        NamespaceFilter::default(),
    );
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_err("configmaps", e))?;
    for cm in cms.items {
        let e = cache.configmap_entry(&cm);
        cache.upsert(ns, &SourceRef::configmap(cm.name_any()), e);
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_err("secrets", e))?;
    for s in secrets.items {
        let e = cache.secret_entry(&s);
        cache.upsert(ns, &SourceRef::secret(s.name_any()), e);
    }
    Ok(Snapshot { cache })
}

async fn workload_objects(
    client: &Client,
    ns: &str,
    kind: WorkloadKind,
    name: Option<&str>,
) -> Result<Vec<Value>, ExplainError> {
    async fn get<K>(api: Api<K>, name: Option<&str>, what: &str) -> Result<Vec<Value>, ExplainError>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let objs = match name {
            Some(n) => vec![
                api.get(n)
                    .await
                    .map_err(|e| api_err(&format!("{what}/{n}"), e))?,
            ],
            None => {
                api.list(&ListParams::default())
                    .await
                    .map_err(|e| api_err(what, e))?
                    .items
            }
        };
        Ok(objs
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())
    }
    let c = client.clone();
    match kind {
        WorkloadKind::Deployment => {
            get(Api::<Deployment>::namespaced(c, ns), name, "deployment").await
        }
        WorkloadKind::DaemonSet => {
            get(Api::<DaemonSet>::namespaced(c, ns), name, "daemonset").await
        }
        WorkloadKind::StatefulSet => {
            get(Api::<StatefulSet>::namespaced(c, ns), name, "statefulset").await
        }
    }
}

fn run_stamp(
    cfg: &PolicyConfig,
    key: &DigestKey,
    names: &RecordNames,
    snap: &Snapshot,
    w: &Workload,
    obj: &Value,
) -> Stamp {
    let stored = stored_of(obj, &names.record, &names.token);
    stamp(
        cfg,
        key,
        w,
        &snap.cache.view(&w.namespace),
        &stored,
        Mode::Reconcile,
        RollOptions::default(),
    )
}

pub async fn explain_workload(
    client: &Client,
    cfg: &PolicyConfig,
    key: &DigestKey,
    names: &RecordNames,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<WorkloadReport, ExplainError> {
    let obj = workload_objects(client, ns, kind, Some(name))
        .await?
        .remove(0);
    let w = Workload::from_value(kind, ns, &obj).map_err(|e| ExplainError::Api(e.to_string()))?;
    let snap = snapshot(client, ns, cfg).await?;
    let s = run_stamp(cfg, key, names, &snap, &w, &obj);
    let stored = stored_of(&obj, &names.record, &names.token);
    let tracked = s
        .tracked
        .iter()
        .map(|(src, t)| {
            let rk = src.record_key();
            let digest = s.current.get(&rk).cloned().unwrap_or_default();
            TrackedSource {
                source: rk.clone(),
                reasons: t.reasons.iter().map(|r| r.to_string()).collect(),
                keys: match &t.keys {
                    crate::core::refs::Keys::All => None,
                    crate::core::refs::Keys::Some(k) => Some(k.iter().cloned().collect()),
                },
                exists: digest != ABSENT,
                digest,
                recorded: stored.record.as_ref().and_then(|r| r.get(&rk).cloned()),
            }
        })
        .collect();
    Ok(WorkloadReport {
        workload: format!("{}/{}", kind.as_str().to_lowercase(), name),
        namespace: ns.to_string(),
        opted_in: opted_in(cfg, &w.annotations, &w.template_annotations),
        tracked,
        record: stored.record.clone(),
        should_be: s.decision.record.clone(),
        token: stored.token.clone(),
        roll_pending: s.decision.roll,
        pending_sources: s.decision.changed.clone(),
    })
}

pub async fn explain_source(
    client: &Client,
    cfg: &PolicyConfig,
    key: &DigestKey,
    names: &RecordNames,
    ns: &str,
    source: &SourceRef,
) -> Result<SourceReport, ExplainError> {
    let snap = snapshot(client, ns, cfg).await?;
    let exists = snap.cache.get(ns, source).is_some();
    let mut would_roll = Vec::new();
    for kind in WorkloadKind::ALL {
        for obj in workload_objects(client, ns, kind, None).await? {
            let Ok(w) = Workload::from_value(kind, ns, &obj) else {
                continue;
            };
            let s = run_stamp(cfg, key, names, &snap, &w, &obj);
            if let Some(t) = s.tracked.get(source) {
                would_roll.push(Tracker {
                    workload: format!("{}/{}", kind.as_str().to_lowercase(), w.name),
                    reasons: t.reasons.iter().map(|r| r.to_string()).collect(),
                });
            }
        }
    }
    Ok(SourceReport {
        source: source.record_key(),
        namespace: ns.to_string(),
        exists,
        would_roll,
    })
}

/// What `explain` was asked about.
pub enum Target {
    Workload(WorkloadKind, String),
    Source(SourceRef),
}

pub fn parse_target(s: &str) -> Result<Target, ExplainError> {
    let (kind, name) = s
        .split_once('/')
        .ok_or_else(|| ExplainError::Target(s.to_string()))?;
    if name.is_empty() {
        return Err(ExplainError::Target(s.to_string()));
    }
    if let Some(k) = WorkloadKind::parse(kind) {
        return Ok(Target::Workload(k, name.to_string()));
    }
    if let Some(k) = SourceKind::parse(kind) {
        return Ok(Target::Source(SourceRef::new(k, name)));
    }
    Err(ExplainError::Kind(kind.to_string()))
}

fn short(d: &str) -> &str {
    if d == ABSENT { d } else { &d[..d.len().min(8)] }
}

pub fn render_workload(r: &WorkloadReport) -> String {
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
    s
}

pub fn render_source(r: &SourceReport) -> String {
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
        }
    }
    s
}

/// Reads the key the installation uses: the file, else the Secret (never created here).
pub async fn read_key(
    client: &Client,
    file: Option<&std::path::Path>,
    ns: &str,
    secret: &str,
) -> Result<DigestKey, ExplainError> {
    if let Some(f) = file {
        return crate::key::from_file(f).map_err(|e| ExplainError::Key(e.to_string()));
    }
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(secret)
        .await
        .map_err(|e| ExplainError::Key(format!("Secret {ns}/{secret}: {e}")))?;
    s.data
        .and_then(|d| d.get("key").cloned())
        .and_then(|b| DigestKey::new(b.0))
        .ok_or_else(|| ExplainError::Key(format!("Secret {ns}/{secret} has no usable key")))
}
