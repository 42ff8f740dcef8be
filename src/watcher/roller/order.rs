//! Safe rollouts in the roller: whether a roll may go now (`core::gate`), from the
//! workloads of earlier waves that track the changed source, memoized per namespace
//! generation.

use std::sync::Arc;

use super::Roller;
use crate::core::digest::KeyRing;
use crate::core::gate::{self, Gate};
use crate::core::names::LAST_ROLL;
use crate::core::record::State;
use crate::core::refs::SourceRef;
use crate::core::stamp::Stamp;
use crate::watcher::workloads::{WorkloadEntry, WorkloadKey};

/// (namespace, source, wave) of the peer memo.
pub(super) type MemoKey = (Arc<str>, SourceRef, u32);

/// What the waves below one wave said, and what it was decided on.
pub(super) struct PeerMemo {
    generation: u64,
    digests: Option<crate::core::digest::SourceDigests>,
    keys: Arc<KeyRing>,
    peers: Arc<[gate::Peer]>,
}

/// Entries of the peer memo before it starts over.
const PEER_MEMO_MAX: usize = 4096;

impl Roller {
    /// Whether the roll `result` calls for may go now (`core::gate`), and whether the
    /// roll takes part in an order (its workload or another tracking a changed source has
    /// a wave or an `after` list: the roll then writes when it happened, which a rollout
    /// timeout counts from).
    pub(super) async fn gate(
        &self,
        entry: &WorkloadEntry,
        me: &gate::Settings,
        result: &Stamp,
        keys: &Arc<KeyRing>,
    ) -> (Gate, bool) {
        let key = &entry.key;
        let switches = self.safe.switches(&key.namespace);
        let changed = gate::gated_sources(&result.decision.changed, result.tracked.keys().cloned());
        let me_kind = key.kind.as_str().to_ascii_lowercase();
        let mut engaged = me.ordered();
        // per changed source: its switches, and the workloads tracking it that come before
        // this one (the others cost a look at two annotations)
        let mut sources = Vec::with_capacity(changed.len());
        for s in &changed {
            let cached = self.state.cache.get(&key.namespace, s);
            let info = cached.as_ref().map(|e| e.info).unwrap_or_default();
            let digests = cached.map(|e| e.digests);
            // the rolls of one wave share what the waves below them say, until a workload
            // of the namespace moves, the source changes or the keys do (no `after` list:
            // one names its own)
            let memo_key = (key.namespace.clone(), s.clone(), me.wave);
            let generation = self.generation(&key.namespace);
            let memo = me.after.is_empty().then(|| {
                let memo = self.peer_memo();
                memo.get(&memo_key)
                    .filter(|m| {
                        m.generation == generation
                            && m.digests == digests
                            && Arc::ptr_eq(&m.keys, keys)
                    })
                    .map(|m| m.peers.clone())
            });
            let peers = match memo.flatten() {
                Some(peers) => {
                    engaged = true;
                    peers
                }
                None => {
                    let (peers, seen_ordered, shareable) =
                        self.peers_before(key, me, s, keys).await;
                    engaged |= seen_ordered;
                    let peers: Arc<[gate::Peer]> = peers.into();
                    if shareable && me.ordered() {
                        let mut memo = self.peer_memo();
                        if memo.len() >= PEER_MEMO_MAX {
                            memo.clear();
                        }
                        memo.insert(
                            memo_key,
                            PeerMemo {
                                generation,
                                digests,
                                keys: keys.clone(),
                                peers: peers.clone(),
                            },
                        );
                    }
                    peers
                }
            };
            sources.push(gate::Source {
                source: s.clone(),
                paused: info.paused,
                release: info.release,
                peers,
            });
        }
        let g = gate::gate(
            &me_kind,
            &key.name,
            me,
            switches,
            &sources,
            k8s_openapi::jiff::Timestamp::now(),
        );
        (g, engaged)
    }

    /// The workloads tracking `s` that may come before `me` (`key`), decided now; whether
    /// any workload tracking `s` takes part in an order; and whether the list holds for
    /// every workload of `me`'s wave (no `after` list anywhere: waves alone decide).
    pub(super) async fn peers_before(
        &self,
        key: &WorkloadKey,
        me: &gate::Settings,
        s: &SourceRef,
        keys: &Arc<KeyRing>,
    ) -> (Vec<gate::Peer>, bool, bool) {
        let mut engaged = false;
        let candidates: Vec<WorkloadEntry> = {
            let store = self.store();
            // no workload of the namespace in an order (the usual case): nothing to ask
            if !store.has_ordered(&key.namespace) {
                return (Vec::new(), false, me.after.is_empty());
            }
            store
                .affected(&key.namespace, s)
                .iter()
                .filter(|k| *k != key)
                .filter_map(|k| store.get(k))
                .filter(|p| {
                    engaged |= p.ordered();
                    me.ordered()
                })
                .cloned()
                .collect()
        };
        let read: Vec<(String, gate::Settings)> =
            candidates.iter().map(kind_and_settings).collect();
        let after_me = after_me(key, me, &candidates, &read);
        let shareable = me.after.is_empty() && read.iter().all(|(_, s)| s.after.is_empty());
        let mut peers = Vec::new();
        for ((p, (kind, settings)), after_me) in candidates.into_iter().zip(read).zip(after_me) {
            if after_me || !gate::may_precede(me, &kind, &p.key.name, &settings) {
                continue;
            }
            let stored = p.stored(&self.state.names);
            let stamp = self.stamp(&p, &stored, keys).await;
            if !stamp.tracked.contains_key(s) {
                continue;
            }
            let d = &stamp.decision;
            peers.push(gate::Peer {
                kind,
                name: p.key.name.to_string(),
                settings,
                pending: gate::pending_for(d.roll, &d.changed, s),
                health: p.health,
                rolled_at: p.annotations.get(LAST_ROLL).and_then(|t| t.parse().ok()),
                change: stored
                    .record
                    .as_ref()
                    .and_then(|r| r.get_source(s))
                    .map(State::to_string),
            });
        }
        (peers, engaged, shareable)
    }
}

/// A workload's kind as the gate names it, and its order settings.
fn kind_and_settings(p: &WorkloadEntry) -> (String, gate::Settings) {
    let get = |k: &str| {
        p.annotations
            .get(k)
            .or_else(|| p.template_annotations.get(k))
    };
    (
        p.key.kind.as_str().to_ascii_lowercase(),
        gate::settings(get).0,
    )
}

/// For each candidate (kind and settings in `read`), whether it comes after `me` (`key`):
/// in a cycle, not waited for.
fn after_me(
    key: &WorkloadKey,
    me: &gate::Settings,
    candidates: &[WorkloadEntry],
    read: &[(String, gate::Settings)],
) -> Vec<bool> {
    let me_kind = key.kind.as_str().to_ascii_lowercase();
    let nodes: Vec<gate::Node> = candidates
        .iter()
        .zip(read)
        .map(|(p, (kind, settings))| gate::Node {
            kind,
            name: &p.key.name,
            settings,
        })
        .collect();
    let me_node = gate::Node {
        kind: &me_kind,
        name: &key.name,
        settings: me,
    };
    gate::after_me(me_node, &nodes)
}
