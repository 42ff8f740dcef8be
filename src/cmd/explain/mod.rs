//! `hashroll explain`: what a workload tracks and why, or what a change to a source would
//! roll, read from the cluster with the same pure core the webhook and watcher use.

use std::collections::BTreeMap;

use kube::Client;
use serde::Serialize;
use serde_json::Value;

use crate::cmd::cli::args::ExplainArgs;
use crate::cmd::objects::{ReadError, Snapshot, snapshot, workload_objects};
use crate::core::digest::KeyRing;
use crate::core::gate;
use crate::core::kind::WorkloadKind;
use crate::core::names::RecordNames;
use crate::core::policy::{PolicyConfig, opted_in};
use crate::core::record::{Entry, Record, State, Stored};
use crate::core::record::{MadeWith, Mode, RollOptions};
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::stamp::{Stamp, stamp};
use crate::core::workload::{Workload, WorkloadError};

mod render;
pub(crate) mod safe;

pub(crate) use render::{render_source, render_workload};

/// `hashroll explain`: the report on the target, as text or JSON.
pub(crate) async fn command(args: ExplainArgs) -> Result<String, ExplainError> {
    let target = parse_target(&args.target)?;
    let client = Client::try_default()
        .await
        .map_err(|e| ReadError::Cluster(e.to_string()))?;
    let key =
        crate::services::key::for_command(&client, args.key.place(), &args.hashroll_namespace)
            .await?;
    let cfg = PolicyConfig {
        auto_reload_all: args.auto_reload_all,
        auto_all_skips: PolicyConfig::auto_all_skips_with(&args.hashroll_namespace),
        csi_integration: args.enable_csi_integration,
        ..Default::default()
    };
    let names = RecordNames {
        record: args.key.record_annotation.clone(),
        token: args.key.token_annotation.clone(),
    };
    let json = args.output == "json";
    let ns = &args.namespace;
    let switches = safe::switches(&client, &args.hashroll_namespace, &args.gate, ns).await;
    Ok(match target {
        Target::Workload(kind, name) => {
            let mut r =
                explain_workload(&client, &cfg, &key, &names, ns, (kind, &name), switches).await?;
            r.add_breaker(args.min_roll_interval);
            r.mode = mode(&client, &args.webhook_config).await;
            if json {
                render::pretty(&r)
            } else {
                render_workload(&r)
            }
        }
        Target::Source(source) => {
            let r = explain_source(&client, &cfg, &key, &names, ns, &source, switches).await?;
            if json {
                render::pretty(&r)
            } else {
                render_source(&r)
            }
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExplainError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "unknown kind {0:?}: use deployment, daemonset, statefulset, configmap, secret or secretproviderclass"
    )]
    Kind(String),
    #[error("expected KIND/NAME, got {0:?}")]
    Target(String),
    #[error(transparent)]
    Key(#[from] crate::services::key::KeyError),
    /// the workload cannot be explained as it is (the text says why)
    #[error("{0}")]
    Workload(String),
}

#[derive(Debug, Serialize)]
pub(crate) struct TrackedSource {
    pub source: String,
    pub reasons: Vec<String>,
    pub keys: Option<Vec<String>>,
    pub exists: bool,
    pub digest: String,
    pub recorded: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WorkloadReport {
    pub workload: String,
    pub namespace: String,
    pub opted_in: bool,
    pub tracked: Vec<TrackedSource>,
    pub record: Option<BTreeMap<String, String>>,
    pub should_be: Option<BTreeMap<String, String>>,
    pub token: Option<String>,
    pub roll_pending: bool,
    pub pending_sources: Vec<String>,
    /// which key the record was made with, and what becomes of it
    pub record_key: String,
    /// the flap breaker's interval for it (0: off), when it last rolled, and when the next
    /// roll may happen if that is later than now
    pub min_roll_interval: String,
    pub last_roll: Option<String>,
    pub next_roll_not_before: Option<String>,
    /// its safe-rollout settings (wave, after, paused, roll window), one line each
    pub rolling: Vec<String>,
    /// with a roll pending: whether it may go now, and if not what holds it
    pub gate: Option<String>,
    /// whether workloads are stamped at admission (the webhook) or by the watcher alone
    pub mode: String,
    #[serde(skip)]
    annotations: BTreeMap<String, String>,
}

impl WorkloadReport {
    /// Fills in the flap breaker's part, with `flag` as the running hashroll's
    /// `--min-roll-interval`.
    pub(crate) fn add_breaker(&mut self, flag: std::time::Duration) {
        use crate::core::names::{LAST_ROLL, MIN_ROLL_INTERVAL};
        use crate::watcher::breaker;
        let (interval, _) = breaker::interval(
            flag,
            self.annotations.get(MIN_ROLL_INTERVAL).map(String::as_str),
        );
        let last = self.annotations.get(LAST_ROLL).cloned();
        self.min_roll_interval = format!("{}s", interval.as_secs());
        self.next_roll_not_before = breaker::next_roll(
            interval,
            last.as_deref(),
            k8s_openapi::jiff::Timestamp::now(),
        )
        .map(|t| t.to_string());
        self.last_roll = last;
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct SourceReport {
    pub source: String,
    pub namespace: String,
    pub exists: bool,
    pub would_roll: Vec<Tracker>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Tracker {
    pub workload: String,
    pub reasons: Vec<String>,
    /// with a roll pending for it: what the gate says of it
    pub pending: Option<String>,
}

fn run_stamp(
    cfg: &PolicyConfig,
    key: &KeyRing,
    names: &RecordNames,
    snap: &Snapshot,
    w: &Workload,
    obj: &Value,
) -> Stamp {
    let stored = Stored::of_object(w.kind, obj, names);
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

/// Each tracked source: why, which keys, its digest now and what the record holds.
fn tracked_sources(s: &Stamp, stored: &Stored) -> Vec<TrackedSource> {
    s.tracked
        .iter()
        .map(|(src, t)| {
            let state = s.current.get_source(src);
            TrackedSource {
                source: src.to_string(),
                reasons: t.reasons.iter().map(|r| r.to_string()).collect(),
                keys: match &t.keys {
                    crate::core::refs::Keys::All => None,
                    crate::core::refs::Keys::Some(k) => Some(k.iter().cloned().collect()),
                },
                exists: state.is_some_and(|d| *d != State::Absent),
                digest: state.map(State::to_string).unwrap_or_default(),
                // made with another key: compared as the watcher compares it
                recorded: s
                    .carried
                    .as_ref()
                    .or(stored.record.as_ref())
                    .and_then(|r| r.get_source(src))
                    .map(State::to_string),
            }
        })
        .collect()
}

pub(crate) async fn explain_workload(
    client: &Client,
    cfg: &PolicyConfig,
    key: &KeyRing,
    names: &RecordNames,
    ns: &str,
    (kind, name): (WorkloadKind, &str),
    switches: crate::core::gate::Switches,
) -> Result<WorkloadReport, ExplainError> {
    let obj = workload_objects(client, ns, kind, Some(name))
        .await?
        .remove(0);
    let w = match Workload::from_value(kind, ns, &obj) {
        Ok(w) => w,
        Err(WorkloadError::NoTemplate) if obj.pointer("/spec/workloadRef/name").is_some() => {
            let r = &obj["spec"]["workloadRef"];
            return Err(ExplainError::Workload(format!(
                "{}/{name} takes its pod template from {}/{} (spec.workloadRef): that object is \
                 what hashroll stamps and rolls, and its annotations say what it tracks; \
                 explain it instead",
                kind.as_str().to_lowercase(),
                r["kind"].as_str().unwrap_or("Deployment").to_lowercase(),
                r["name"].as_str().unwrap_or_default(),
            )));
        }
        Err(e) => return Err(ExplainError::Workload(e.to_string())),
    };
    let snap = snapshot(client, ns, cfg).await?;
    let s = run_stamp(cfg, key, names, &snap, &w, &obj);
    let stored = Stored::of_object(kind, &obj, names);
    let tracked = tracked_sources(&s, &stored);
    let gate = if s.decision.roll {
        let all = safe::namespace_workloads(client, ns).await?;
        let ctx = safe::Ctx {
            cfg,
            key,
            names,
            snap: &snap,
            switches,
        };
        let me = safe::Listed {
            kind,
            w: w.clone(),
            obj: obj.clone(),
        };
        Some(safe::gate_text(&safe::gate_of(&ctx, &me, &s, &all)))
    } else {
        None
    };
    Ok(WorkloadReport {
        rolling: safe::settings_text(&w),
        gate,
        workload: format!("{}/{}", kind.as_str().to_lowercase(), name),
        namespace: ns.to_string(),
        opted_in: opted_in(cfg, &w.annotations, &w.template_annotations),
        tracked,
        record: stored.record.as_ref().map(Record::texts),
        should_be: s.decision.record.as_ref().map(Record::texts),
        token: stored.token.clone(),
        roll_pending: s.decision.roll,
        pending_sources: s.decision.changed.iter().map(Entry::to_string).collect(),
        record_key: key_text(&s.made_with, stored.key_id.as_deref(), key),
        min_roll_interval: "0s".into(),
        last_roll: None,
        next_roll_not_before: None,
        mode: String::new(),
        annotations: w.annotations.clone(),
    })
}

/// Which mode runs, as far as the caller can see: the webhook configuration there (stamped
/// at admission), absent (the watcher alone: a namespaced install or `--webhook=false`), or
/// not readable with the caller's rights.
async fn mode(client: &Client, webhook_config: &str) -> String {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let api: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(client.clone());
    match api.get_opt(webhook_config).await {
        Ok(Some(_)) => format!(
            "webhook: MutatingWebhookConfiguration {webhook_config} stamps workloads at admission"
        ),
        Ok(None) => format!(
            "watcher only: no MutatingWebhookConfiguration {webhook_config} (a namespaced install \
             or --webhook=false); a new workload's first pods start without the roll token, \
             its first change still rolls it"
        ),
        Err(kube::Error::Api(e)) if e.code == 403 => format!(
            "unknown: you cannot read MutatingWebhookConfiguration {webhook_config} (a \
             namespace admin cannot; a namespaced install has none and stamps with the watcher alone)"
        ),
        Err(e) => {
            format!("unknown: cannot read MutatingWebhookConfiguration {webhook_config}: {e}")
        }
    }
}

/// What `explain` says of the key a record was made with.
fn key_text(made: &MadeWith, id: Option<&str>, keys: &KeyRing) -> String {
    let now = keys.current.id();
    match made {
        MadeWith::Current if id.is_none() => "no record".into(),
        MadeWith::Current => format!("made with the current key {now}"),
        MadeWith::Unnamed => format!(
            "names no key (written before records named one): taken as made with the current \
             key {now}; the next check writes the id"
        ),
        MadeWith::Previous => format!(
            "made with the previous key {}: checked with it, and re-recorded with the current \
             key {now} on the next check without a roll (a source changed since still rolls)",
            id.unwrap_or_default()
        ),
        MadeWith::Lost(old) => format!(
            "made with key {old}, which hashroll no longer has (neither the current key {now} \
             nor a previous one): re-recorded with the current key without a roll; a change \
             made while the key was lost is not rolled"
        ),
    }
}

pub(crate) async fn explain_source(
    client: &Client,
    cfg: &PolicyConfig,
    key: &KeyRing,
    names: &RecordNames,
    ns: &str,
    source: &SourceRef,
    switches: crate::core::gate::Switches,
) -> Result<SourceReport, ExplainError> {
    let snap = snapshot(client, ns, cfg).await?;
    let exists = snap.cache.get(ns, source).is_some();
    let all = safe::namespace_workloads(client, ns).await?;
    let ctx = safe::Ctx {
        cfg,
        key,
        names,
        snap: &snap,
        switches,
    };
    let mut would_roll = Vec::new();
    for l in &all {
        let s = run_stamp(cfg, key, names, &snap, &l.w, &l.obj);
        if let Some(t) = s.tracked.get(source) {
            let pending = gate::pending_for(s.decision.roll, &s.decision.changed, source)
                .then(|| safe::gate_text(&safe::gate_of(&ctx, l, &s, &all)));
            would_roll.push(Tracker {
                workload: format!("{}/{}", l.kind.as_str().to_lowercase(), l.w.name),
                reasons: t.reasons.iter().map(|r| r.to_string()).collect(),
                pending,
            });
        }
    }
    Ok(SourceReport {
        source: source.to_string(),
        namespace: ns.to_string(),
        exists,
        would_roll,
    })
}

/// What `explain` was asked about.
pub(crate) enum Target {
    Workload(WorkloadKind, String),
    Source(SourceRef),
}

pub(crate) fn parse_target(s: &str) -> Result<Target, ExplainError> {
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
