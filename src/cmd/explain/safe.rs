//! `explain`'s part on safe rollouts: the gate of a workload's pending roll, decided by
//! `core::gate` from what the cluster holds, as the running hashroll's watcher decides it
//! (the same objects: records, last-roll, status, annotations, the switch ConfigMap).

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{Api, Client};
use serde_json::Value;

use super::{ExplainError, run_stamp};
use crate::cmd::objects::{Snapshot, workload_objects};
use crate::core::digest::KeyRing;
use crate::core::gate::{self, Gate, Switches};
use crate::core::kind::WorkloadKind;
use crate::core::names::LAST_ROLL;
use crate::core::names::{self, RecordNames};
use crate::core::policy::PolicyConfig;
use crate::core::record::{State, Stored};
use crate::core::stamp::Stamp;
use crate::core::workload::Workload;
use crate::watcher::safe::SwitchState;

/// One workload of the namespace, as listed.
pub(crate) struct Listed {
    pub kind: WorkloadKind,
    pub w: Workload,
    pub obj: Value,
}

/// Every workload of `ns` hashroll handles (a kind not installed has none).
pub(crate) async fn namespace_workloads(
    client: &Client,
    ns: &str,
) -> Result<Vec<Listed>, ExplainError> {
    let mut out = Vec::new();
    for kind in WorkloadKind::all() {
        let objs = match workload_objects(client, ns, kind, None).await {
            Ok(objs) => objs,
            Err(_) if kind.row().optional => continue,
            Err(e) => return Err(e.into()),
        };
        for obj in objs {
            if let Ok(w) = Workload::from_value(kind, ns, &obj) {
                out.push(Listed { kind, w, obj });
            }
        }
    }
    Ok(out)
}

/// The switches for `ns`: hashroll's switch ConfigMap (absent: none) and what the
/// Namespace says (its pause annotation, the window its label names).
pub(crate) async fn switches(
    client: &Client,
    hashroll_ns: &str,
    gate_args: &crate::cmd::cli::args::GateArgs,
    ns: &str,
) -> Switches {
    let mut state = SwitchState::default();
    if !gate_args.switch_configmap.is_empty()
        && let Ok(Some(cm)) = Api::<ConfigMap>::namespaced(client.clone(), hashroll_ns)
            .get_opt(&gate_args.switch_configmap)
            .await
    {
        state = SwitchState::from_configmap(&cm);
    }
    let label = Some(gate_args.window_namespace_label.as_str()).filter(|l| !l.is_empty());
    let say = match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(Some(n)) => Some(crate::services::namespaces::say_of(&n, label)),
        _ => None,
    };
    state.switches_for(ns, say.as_ref(), gate_args.rollout_timeout)
}

fn settings_of(w: &Workload) -> gate::Settings {
    gate::settings(|k| {
        w.annotations
            .get(k)
            .or_else(|| w.template_annotations.get(k))
            .map(String::as_str)
    })
    .0
}

/// What to do with the gate's inputs.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a PolicyConfig,
    pub key: &'a KeyRing,
    pub names: &'a RecordNames,
    pub snap: &'a Snapshot,
    pub switches: Switches,
}

/// The gate of `me`'s pending roll (`stamp`), among the namespace's workloads `all`.
pub(crate) fn gate_of(ctx: &Ctx<'_>, me: &Listed, stamp: &Stamp, all: &[Listed]) -> Gate {
    let settings = settings_of(&me.w);
    let changed = gate::gated_sources(&stamp.decision.changed, stamp.tracked.keys().cloned());
    let me_kind = me.kind.as_str().to_ascii_lowercase();
    let mut sources = Vec::new();
    for s in &changed {
        let info = ctx
            .snap
            .cache
            .get(&me.w.namespace, s)
            .map(|e| e.info)
            .unwrap_or_default();
        // the others, and which of them also come after `me` (a cycle: not waited for)
        let others: Vec<(&Listed, String, gate::Settings)> = all
            .iter()
            .map(|p| (p, p.kind.as_str().to_ascii_lowercase(), settings_of(&p.w)))
            .filter(|(p, kind, _)| !(*kind == me_kind && p.w.name == me.w.name))
            .collect();
        let nodes: Vec<gate::Node> = others
            .iter()
            .map(|(p, kind, settings)| gate::Node {
                kind,
                name: &p.w.name,
                settings,
            })
            .collect();
        let me_node = gate::Node {
            kind: &me_kind,
            name: &me.w.name,
            settings: &settings,
        };
        let after_me = gate::after_me(me_node, &nodes);
        drop(nodes);
        let mut peers = Vec::new();
        for ((p, kind, ps), after_me) in others.into_iter().zip(after_me) {
            if after_me || !gate::may_precede(&settings, &kind, &p.w.name, &ps) {
                continue;
            }
            let st = run_stamp(ctx.cfg, ctx.key, ctx.names, ctx.snap, &p.w, &p.obj);
            if !st.tracked.contains_key(s) {
                continue;
            }
            let stored = Stored::of_object(p.kind, &p.obj, ctx.names);
            let generation = p
                .obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64);
            peers.push(gate::Peer {
                kind,
                name: p.w.name.clone(),
                settings: ps,
                pending: gate::pending_for(st.decision.roll, &st.decision.changed, s),
                health: crate::core::health::health(p.kind.as_str(), &p.obj, generation),
                rolled_at: p.w.annotations.get(LAST_ROLL).and_then(|t| t.parse().ok()),
                change: stored
                    .record
                    .as_ref()
                    .and_then(|r| r.get_source(s))
                    .map(State::to_string),
            });
        }
        sources.push(gate::Source {
            source: s.clone(),
            paused: info.paused,
            release: info.release,
            peers: peers.into(),
        });
    }
    gate::gate(
        &me_kind,
        &me.w.name,
        &settings,
        ctx.switches.clone(),
        &sources,
        k8s_openapi::jiff::Timestamp::now(),
    )
}

/// What `explain` says of a gate.
pub(crate) fn gate_text(g: &Gate) -> String {
    match g {
        Gate::Go => "may roll now".into(),
        Gate::Paused(why) => format!("paused: {why}"),
        Gate::Closed { next } => format!(
            "outside its roll window: rolls when it next opens ({})",
            next.map(|t| t.to_string())
                .unwrap_or_else(|| "none within a week".into())
        ),
        Gate::Wait { reason, .. } => reason.clone(),
        Gate::Held(h) => match h.since {
            Some(t) => format!("{h} (the failed rollout started {t})"),
            None => h.to_string(),
        },
    }
}

/// The lines on a workload's own safe-rollout settings.
pub(crate) fn settings_text(w: &Workload) -> Vec<String> {
    let s = settings_of(w);
    let mut out = Vec::new();
    if s.wave > 0 {
        out.push(format!("wave: {}", s.wave));
    }
    if !s.after.is_empty() {
        let names: Vec<String> = s.after.iter().map(|(k, n)| format!("{k}/{n}")).collect();
        out.push(format!("rolls after: {}", names.join(", ")));
    }
    if s.paused {
        out.push(format!("{}: true", names::PAUSED));
    }
    if let Some(w) = &s.window {
        let now = k8s_openapi::jiff::Timestamp::now();
        let text = w.text();
        out.push(if w.open_at(now) {
            format!("roll window: {text} (open now)")
        } else {
            format!(
                "roll window: {text} (closed; next opening {})",
                w.next_opening(now)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            )
        });
    }
    out
}
