//! The ONE function that decides what record and roll token a workload should carry:
//! references → policy → digests → [`decide`]. Webhook and watcher both call [`stamp`] (or
//! [`stamp_refs`], from references the watcher kept); if they disagreed, workloads would
//! roll forever. Also what an UPDATE keeps of the old object ([`keep_from_old`]).

use std::collections::BTreeMap;

use super::digest::KeyRing;
use super::kind::{Rollout, WorkloadKind};
use super::names::Annotations;
use super::policy::{PolicyConfig, Tracked, tracking};
use super::record::{
    Decision, MadeWith, Mode, Record, RollOptions, State, Stored, carry_over, compact,
    current_record, decide,
};
use super::refs::{Reference, SourceRef, references};
use super::source::SourceView;
use super::workload::Workload;

/// Everything [`stamp`] decides for one workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamp {
    pub tracked: BTreeMap<SourceRef, Tracked>,
    /// one digest per tracked source (the record before [`compact`])
    pub current: Record,
    pub decision: Decision,
    /// which key the stored record was made with
    pub made_with: MadeWith,
    /// when that was another key: the stored record as if made with the current one
    pub carried: Option<Record>,
    /// what was wrong with the workload's annotations (see `core::limits`)
    pub problems: Vec<String>,
}

/// References → policy → digests → decision, for one workload. The one function webhook
/// and watcher both call.
pub(crate) fn stamp(
    cfg: &PolicyConfig,
    keys: &KeyRing,
    workload: &Workload,
    sources: &dyn SourceView,
    stored: &Stored,
    mode: Mode,
    opts: RollOptions,
) -> Stamp {
    let refs = references(&workload.pod);
    let input = StampInput {
        kind: workload.kind,
        controlled: workload.controlled,
        namespace: &workload.namespace,
        annotations: &workload.annotations,
        template_annotations: &workload.template_annotations,
        refs: &refs,
    };
    stamp_refs(cfg, keys, &input, sources, stored, mode, opts)
}

/// What [`stamp_refs`] reads of a workload: the watcher keeps only this, not the pod spec.
#[derive(Clone, Copy)]
pub(crate) struct StampInput<'a> {
    pub kind: WorkloadKind,
    /// has a controlling owner
    pub controlled: bool,
    pub namespace: &'a str,
    pub annotations: &'a dyn Annotations,
    pub template_annotations: &'a dyn Annotations,
    pub refs: &'a [Reference],
}

/// [`stamp`] from references already extracted.
pub(crate) fn stamp_refs(
    cfg: &PolicyConfig,
    keys: &KeyRing,
    input: &StampInput<'_>,
    sources: &dyn SourceView,
    stored: &Stored,
    mode: Mode,
    opts: RollOptions,
) -> Stamp {
    // `--auto-reload-all` does not reach a kind whose roll must be asked for (a Job), nor
    // the cluster's own namespaces and hashroll's
    let skipped = |ns: &str| cfg.auto_all_skips.iter().any(|n| n == ns);
    let cfg =
        if cfg.auto_reload_all && (!input.kind.row().auto_reload_all || skipped(input.namespace)) {
            std::borrow::Cow::Owned(PolicyConfig {
                auto_reload_all: false,
                ..cfg.clone()
            })
        } else {
            std::borrow::Cow::Borrowed(cfg)
        };
    // a Job made by its CronJob is the CronJob's to roll: it tracks nothing of its own
    let t = if input.controlled && input.kind.row().rollout == Rollout::Recreate {
        Default::default()
    } else {
        tracking(
            &cfg,
            input.annotations,
            input.template_annotations,
            input.refs,
            sources,
        )
    };
    let key = &keys.current;
    let miss = if mode == Mode::Reconcile {
        State::Absent
    } else {
        State::Unseen
    };
    let current = current_record(key, input.namespace, &t.sources, sources, &miss);
    let written = compact(key, &current);
    // a record made with the previous key is checked with it (key rotation)
    let original = stored;
    let (stored, made_with) = carry_over(keys, stored, &written, |then| {
        compact(
            then,
            &current_record(then, input.namespace, &t.sources, sources, &miss),
        )
    });
    let decision = match (&made_with, &original.key_id) {
        // an update that keeps the pods keeps a record made with another key as it stands:
        // replicas holding different keys for a while (one reloaded, one not yet) never
        // rewrite each other's records; the watcher, the one writer, moves records to the
        // current key
        (MadeWith::Previous | MadeWith::Lost(_), Some(id)) if mode == Mode::Keep => Decision {
            record: original.record.clone(),
            token: original.token.clone(),
            roll: false,
            changed: Vec::new(),
            key_id: id.clone(),
        },
        _ => decide(key, mode, &written, &stored, opts),
    };
    let carried = matches!(made_with, MadeWith::Previous | MadeWith::Lost(_))
        .then_some(stored.record)
        .flatten();
    Stamp {
        tracked: t.sources,
        current,
        decision,
        made_with,
        carried,
        problems: t.problems,
    }
}

/// The old object of an UPDATE, as far as the stamp cares.
#[derive(Debug, Clone, Default)]
pub(crate) struct OldObject {
    /// record and token it carried
    pub stored: Stored,
    /// whether the update changes the pod template (the roll token aside)
    pub template_changed: bool,
}

/// What stands for an admission: an UPDATE that leaves the pod template alone keeps the
/// running pods, so what the request carries stands and what it dropped (a `kubectl
/// replace`, a GitOps re-apply without our annotations) comes back from the old object
/// ([`Mode::Keep`]); a CREATE or a template change starts anew ([`Mode::Fresh`]).
pub(crate) fn keep_from_old(sent: Stored, old: Option<OldObject>) -> (Mode, Stored) {
    match old {
        Some(old) if !old.template_changed => {
            // a record and the id of its key go together
            let (record, key_id) = match sent.record {
                Some(r) => (Some(r), sent.key_id),
                None => (old.stored.record, old.stored.key_id),
            };
            (
                Mode::Keep,
                Stored {
                    record,
                    key_id,
                    token: sent.token.or(old.stored.token),
                },
            )
        }
        _ => (Mode::Fresh, sent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(r: Option<&str>, t: Option<&str>) -> Stored {
        Stored {
            record: r.map(|s| {
                [(s.to_string(), "0123456789abcdef".to_string())]
                    .into_iter()
                    .collect()
            }),
            key_id: r.map(|_| "0123abcd".to_string()),
            token: t.map(String::from),
        }
    }

    #[test]
    fn auto_reload_all_does_not_reach_the_clusters_namespaces_nor_hashrolls() {
        use crate::core::digest::DigestKey;
        use crate::core::refs::Keys;
        use crate::testing::FakeSources;
        let keys = KeyRing::single(DigestKey::new(b"0123456789abcdef-test-key".to_vec()).unwrap());
        let cfg = PolicyConfig {
            auto_reload_all: true,
            auto_all_skips: PolicyConfig::auto_all_skips_with("hashroll"),
            ..Default::default()
        };
        let refs = [Reference {
            source: SourceRef::configmap("cfg"),
            keys: Keys::All,
            optional: false,
        }];
        let none = BTreeMap::new();
        let auto: BTreeMap<String, String> =
            [("reloader.stakater.com/auto".to_string(), "true".to_string())].into();
        let tracked = |ns: &str, annotations: &BTreeMap<String, String>| {
            let input = StampInput {
                kind: WorkloadKind::Deployment,
                controlled: false,
                namespace: ns,
                annotations,
                template_annotations: &none,
                refs: &refs,
            };
            let s = stamp_refs(
                &cfg,
                &keys,
                &input,
                &FakeSources::default(),
                &Stored::default(),
                Mode::Fresh,
                RollOptions::default(),
            );
            s.tracked.len()
        };
        assert_eq!(tracked("team-a", &none), 1);
        for ns in ["kube-system", "kube-public", "kube-node-lease", "hashroll"] {
            assert_eq!(tracked(ns, &none), 0, "{ns}: --auto-reload-all reached it");
            assert_eq!(tracked(ns, &auto), 1, "{ns}: its own annotation counts");
        }
    }

    #[test]
    fn replicas_holding_different_keys_never_rewrite_each_others_records_on_update() {
        use crate::core::digest::DigestKey;
        use crate::core::refs::Keys;
        use crate::core::source::SourceInfo;
        use crate::testing::FakeSources;
        let k1 = DigestKey::new(b"first-key-of-sixteen-bytes".to_vec()).unwrap();
        let k2 = DigestKey::new(b"second-key-of-sixteen-bytes".to_vec()).unwrap();
        let lagging = KeyRing::single(k1.clone());
        let reloaded = KeyRing {
            current: k2.clone(),
            previous: Some(k1.clone()),
        };
        let cfg = PolicyConfig::default();
        let refs = [Reference {
            source: SourceRef::configmap("cfg"),
            keys: Keys::All,
            optional: false,
        }];
        let auto: BTreeMap<String, String> =
            [("reloader.stakater.com/auto".to_string(), "true".to_string())].into();
        let none = BTreeMap::new();
        let input = StampInput {
            kind: WorkloadKind::Deployment,
            controlled: false,
            namespace: "ns",
            annotations: &auto,
            template_annotations: &none,
            refs: &refs,
        };
        let info = SourceInfo {
            selected: true,
            ..Default::default()
        };
        let sources = FakeSources([(SourceRef::configmap("cfg"), info)].into());
        let run = |keys: &KeyRing, stored: &Stored, mode| {
            stamp_refs(
                &cfg,
                keys,
                &input,
                &sources,
                stored,
                mode,
                RollOptions::default(),
            )
        };
        // what each replica writes on a create
        let made = |keys: &KeyRing| {
            let d = run(keys, &Stored::default(), Mode::Fresh).decision;
            Stored {
                record: d.record.clone(),
                key_id: Some(d.key_id.clone()),
                token: d.token.clone(),
            }
        };
        let by_lagging = made(&lagging);
        let by_reloaded = made(&reloaded);
        // an update on the other replica leaves each as it stands
        for (keys, stored) in [(&lagging, &by_reloaded), (&reloaded, &by_lagging)] {
            let d = run(keys, stored, Mode::Keep).decision;
            assert!(d.is_noop(stored), "rewritten on update: {d:?}");
        }
        // the watcher (the one writer) moves a previous key's record to the current one,
        // without a roll
        let d = run(&reloaded, &by_lagging, Mode::Reconcile).decision;
        assert!(!d.roll && !d.is_noop(&by_lagging));
        assert_eq!(d.key_id, k2.id());
    }

    #[test]
    fn an_update_keeps_what_it_dropped_unless_the_template_changed() {
        let old = |changed| OldObject {
            stored: stored(Some("configmap/old"), Some("old-token")),
            template_changed: changed,
        };
        let cases = [
            // (what it sends, old object, mode, what stands)
            (stored(None, None), None, Mode::Fresh, stored(None, None)),
            (
                stored(None, None),
                Some(old(false)),
                Mode::Keep,
                stored(Some("configmap/old"), Some("old-token")),
            ),
            (
                stored(Some("configmap/new"), None),
                Some(old(false)),
                Mode::Keep,
                stored(Some("configmap/new"), Some("old-token")),
            ),
            (
                stored(None, Some("sent")),
                Some(old(true)),
                Mode::Fresh,
                stored(None, Some("sent")),
            ),
        ];
        for (sent, old, mode, want) in cases {
            let (m, got) = keep_from_old(sent.clone(), old.clone());
            assert_eq!((m, &got), (mode, &want), "sent {sent:?}, old {old:?}");
        }
    }
}
