//! The record (each tracked source and its keyed digest) and [`decide`]: given the record a
//! workload should carry now and what it carries, the record and roll token to write. The
//! whole path from a workload to that decision is `core::stamp`.

mod text;

use std::collections::BTreeMap;

#[cfg(test)]
pub(crate) use self::text::record_of;
use self::text::rendered_len;
pub use self::text::{Digest, Entry, Record, State, parse_record};
pub(crate) use self::text::{entry_list, parse_record_with_id, render_record};
use super::digest::{DigestKey, FieldMac, KeyRing, source_digest};
use super::kind::WorkloadKind;
use super::limits::{MAX_RECORD_BYTES, MAX_RECORD_SOURCES, RECORD_GROUPS};
use super::names::RecordNames;
use super::policy::Tracked;
use super::refs::SourceRef;
use super::source::SourceView;
use super::workload::{Workload, at};

/// Why [`decide`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// CREATE, or an UPDATE that changes the pod template: the pods start anew, so record
    /// and token are written fresh.
    Fresh,
    /// An UPDATE that leaves the pod template alone: what stands, stands; only sources that
    /// joined or left the tracked set are added or removed. Never writes a new token.
    Keep,
    /// The watcher: roll where a recorded source's digest changed.
    Reconcile,
}

/// What a workload carries now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) record: Option<Record>,
    /// the id of the key the record was made with (`None`: none written)
    pub(crate) key_id: Option<String>,
    pub(crate) token: Option<String>,
}

impl Stored {
    /// From the record annotation's text (a malformed record counts as none) and the token.
    pub(crate) fn from_annotations(record: Option<&str>, token: Option<&str>) -> Stored {
        let (record, key_id) = record
            .and_then(parse_record_with_id)
            .map_or((None, None), |(r, id)| (Some(r), id));
        Stored {
            record,
            key_id,
            token: token.map(String::from),
        }
    }

    /// The record and token `w` carries (a malformed record counts as none).
    pub(crate) fn of(w: &Workload, names: &RecordNames) -> Stored {
        Stored::from_annotations(
            w.annotations.get(&names.record).map(String::as_str),
            w.template_annotations.get(&names.token).map(String::as_str),
        )
    }

    /// The record and token straight off a JSON object of `kind`.
    pub(crate) fn of_object(
        kind: WorkloadKind,
        obj: &serde_json::Value,
        names: &RecordNames,
    ) -> Stored {
        let ann = |v: Option<&serde_json::Value>, k: &str| {
            v.and_then(|a| a.get(k))
                .and_then(serde_json::Value::as_str)
                .map(String::from)
        };
        Stored::from_annotations(
            ann(at(obj, &["metadata", "annotations"]), &names.record).as_deref(),
            ann(
                at(obj, kind.row().template).and_then(|t| at(t, &["metadata", "annotations"])),
                &names.token,
            )
            .as_deref(),
        )
    }
}

/// `--reload-on-create` / `--reload-on-delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RollOptions {
    pub(crate) on_create: bool,
    pub(crate) on_delete: bool,
}

impl Default for RollOptions {
    fn default() -> Self {
        RollOptions {
            on_create: true,
            on_delete: true,
        }
    }
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    /// the record the workload should carry (`None`: no record annotation)
    pub(crate) record: Option<Record>,
    /// the roll token the pod template should carry
    pub(crate) token: Option<String>,
    /// true when the token changes so the workload rolls
    pub(crate) roll: bool,
    /// the entries whose digest changed (the reason of a roll)
    pub(crate) changed: Vec<Entry>,
    /// the id of the key the record is made with
    pub(crate) key_id: String,
}

impl Decision {
    /// Nothing differs from `stored` (a record made with another key, or with none named,
    /// is written again).
    pub(crate) fn is_noop(&self, stored: &Stored) -> bool {
        self.record == stored.record
            && self.token == stored.token
            && (self.record.is_none() || stored.key_id.as_deref() == Some(self.key_id.as_str()))
    }

    /// The record annotation's text, or `None` for no record.
    pub(crate) fn record_text(&self) -> Option<String> {
        self.record.as_ref().map(|r| render_record(r, &self.key_id))
    }
}

/// Which key the record a workload carries was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MadeWith {
    /// no record, or made with the current key
    Current,
    /// a record that names no key (written before records carried one): taken as made
    /// with the current key
    Unnamed,
    /// the previous key: checked with it, re-recorded with the current one
    Previous,
    /// a key hashroll no longer has (this id): re-recorded with the current key as if
    /// nothing changed, since what changed meanwhile cannot be told
    Lost(String),
}

/// The stored record as if made with the current key, so [`decide`] compares like with
/// like: an entry whose digest under the key it was made with (`then`, the record computed
/// now with that key) is unchanged takes its digest under the current key (`now`); an entry
/// that changed keeps its old value, so it still rolls. With the key lost nothing can be
/// checked: every entry takes today's digest and nothing rolls for it.
pub(crate) fn carry_over(
    keys: &KeyRing,
    stored: &Stored,
    now: &Record,
    then: impl FnOnce(&DigestKey) -> Record,
) -> (Stored, MadeWith) {
    let (Some(record), Some(id)) = (&stored.record, stored.key_id.as_deref()) else {
        let made = if stored.record.is_some() {
            MadeWith::Unnamed
        } else {
            MadeWith::Current
        };
        return (stored.clone(), made);
    };
    if id == keys.current.id() {
        return (stored.clone(), MadeWith::Current);
    }
    let (made, then) = match keys.previous.as_ref().filter(|k| k.id() == id) {
        Some(previous) => (MadeWith::Previous, Some(then(previous))),
        None => (MadeWith::Lost(id.to_string()), None),
    };
    let record = record
        .iter()
        .map(|(k, was)| {
            let unchanged = then.as_ref().is_none_or(|t| t.get(k) == Some(was));
            let v = match now.get(k) {
                Some(today) if unchanged => today,
                _ => was,
            };
            (k.clone(), v.clone())
        })
        .collect();
    let carried = Stored {
        record: Some(record),
        key_id: Some(keys.current.id().to_string()),
        token: stored.token.clone(),
    };
    (carried, made)
}

/// The record a workload should carry now, from what it tracks and the sources' digests.
/// `miss`: what a source the view does not hold is recorded as ([`State::Absent`] for the
/// watcher, [`State::Unseen`] for the webhook).
pub(crate) fn current_record(
    key: &DigestKey,
    namespace: &str,
    tracked: &BTreeMap<SourceRef, Tracked>,
    sources: &dyn SourceView,
    miss: &State,
) -> Record {
    tracked
        .iter()
        .map(|(s, t)| {
            let value = match sources.digests(s) {
                Some(d) => State::Digest(Digest::of_hex(source_digest(
                    key, namespace, s, &d, &t.keys,
                ))),
                None => miss.clone(),
            };
            (Entry::Source(s.clone()), value)
        })
        .collect()
}

/// The record as it is written: the `full` one while it is small, else its compact form of
/// at most [`RECORD_GROUPS`] entries `group/NN` → `COUNT:DIGEST`, each digest keyed over
/// the sources of its group and theirs. A change to any source changes its group's digest,
/// so it still rolls; which sources are tracked is the policy's to say (`explain`), not the
/// record's. So no stamp can push a workload's annotations past the apiserver's limit
/// however many sources it tracks.
pub(crate) fn compact(key: &DigestKey, full: &Record) -> Record {
    // the text as written (escapes included): what `parse_record` will be given back
    if full.len() <= MAX_RECORD_SOURCES && rendered_len(full, key.id()) <= MAX_RECORD_BYTES {
        return full.clone();
    }
    let mut groups = vec![Record::new(); RECORD_GROUPS];
    // a group cannot say which of its sources was unseen: taken as absent, as before
    // the watcher looks (a workload tracking that many may roll once for one created
    // in the watch's lag)
    for (k, v) in full {
        let v = if *v == State::Unseen {
            &State::Absent
        } else {
            v
        };
        groups[group_of(k)].insert(k.clone(), v.clone());
    }
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(i, g)| {
            let digest = record_digest(key, g, "group");
            (
                Entry::Group(u8::try_from(i).expect("fewer than 100 groups")),
                State::Digest(Digest::of_hex(format!("{}:{digest}", g.len()))),
            )
        })
        .collect()
}

/// The group of an entry: FNV-1a over its text, stable across versions and replicas.
fn group_of(entry: &Entry) -> usize {
    group_of_text(entry.parts())
}

fn group_of_text(parts: [&str; 3]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % RECORD_GROUPS as u64) as usize
}

impl Entry {
    /// Whether the entry is about `source`: it is that source, or the group of a compact
    /// record that holds it (which changes with it, and with the others of its group).
    pub(crate) fn covers(&self, source: &SourceRef) -> bool {
        match self {
            Entry::Source(s) => s == source,
            Entry::Group(i) => {
                group_of_text([source.kind.as_str(), "/", &source.name]) == usize::from(*i)
            }
        }
    }
}

/// The keyed digest of a whole record (16 hex chars): each entry's text and state, in
/// order, then `salt`.
pub(crate) fn record_digest(key: &DigestKey, record: &Record, salt: &str) -> String {
    let mut mac = FieldMac::new(key, "hashroll/record/v1");
    for (entry, state) in record {
        mac.field(&entry.parts());
        mac.field(&[state.as_str()]);
    }
    mac.field(&[salt]);
    mac.finish()
}

/// The token of a roll: the record chained onto the previous token, so every roll writes
/// a template never seen before (a change back to older data is a new rollout, not a
/// return to an old ReplicaSet), and two writers deciding the same roll agree.
fn token_for(key: &DigestKey, record: &Record, previous: Option<&str>) -> String {
    record_digest(key, record, previous.unwrap_or_default())
}

/// The one decision: given the record computed now, what the workload carries and why we
/// are asked, which record and token it should carry.
pub(crate) fn decide(
    key: &DigestKey,
    mode: Mode,
    current: &Record,
    stored: &Stored,
    opts: RollOptions,
) -> Decision {
    let non_empty = |r: Record| (!r.is_empty()).then_some(r);
    let keep_token = |record: Option<Record>| Decision {
        record,
        token: stored.token.clone(),
        roll: false,
        changed: Vec::new(),
        key_id: key.id().to_string(),
    };
    match mode {
        Mode::Fresh => {
            if current.is_empty() {
                return keep_token(None);
            }
            let token = record_digest(key, current, "");
            Decision {
                roll: stored.token.as_deref() != Some(token.as_str()),
                record: Some(current.clone()),
                token: Some(token),
                changed: Vec::new(),
                key_id: key.id().to_string(),
            }
        }
        Mode::Keep => {
            let Some(base) = &stored.record else {
                return keep_token(non_empty(current.clone()));
            };
            // what stands stands; joins take today's digest; leaves go
            let merged: Record = current
                .iter()
                .map(|(k, v)| {
                    let stands = base.get(k).filter(|b| **b != State::Unseen);
                    (k.clone(), stands.unwrap_or(v).clone())
                })
                .collect();
            keep_token(non_empty(merged))
        }
        Mode::Reconcile => {
            let Some(base) = &stored.record else {
                return keep_token(non_empty(current.clone()));
            };
            let changed: Vec<Entry> = current
                .iter()
                .filter_map(|(k, now)| {
                    let was = base.get(k)?;
                    // unseen at admission: whatever it is now, the pods read it so
                    if was == now || *was == State::Unseen {
                        return None;
                    }
                    let created = *was == State::Absent;
                    let deleted = *now == State::Absent;
                    // a kind whose presence is no change (a class its pods mount) rolls
                    // only when what it holds changes
                    let presence_rolls = k.source().is_none_or(|s| s.kind.row().presence_rolls);
                    let wanted = (!created || (opts.on_create && presence_rolls))
                        && (!deleted || (opts.on_delete && presence_rolls));
                    wanted.then(|| k.clone())
                })
                .collect();
            if changed.is_empty() {
                return keep_token(non_empty(current.clone()));
            }
            Decision {
                record: Some(current.clone()),
                token: Some(token_for(key, current, stored.token.as_deref())),
                roll: true,
                changed,
                key_id: key.id().to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DigestKey {
        DigestKey::new(b"record-test-key-0123456789".to_vec()).unwrap()
    }
    fn rec(pairs: &[(&str, &str)]) -> Record {
        record_of(pairs)
    }
    const UNSEEN: &str = "unseen";
    const ABSENT: &str = "absent";
    fn stored(r: Option<Record>, t: Option<&str>) -> Stored {
        Stored {
            key_id: r.as_ref().map(|_| key().id().to_string()),
            record: r,
            token: t.map(String::from),
        }
    }
    const O: RollOptions = RollOptions {
        on_create: true,
        on_delete: true,
    };

    #[test]
    fn fresh_writes_record_and_token() {
        let cur = rec(&[("configmap/a", "1111111111111111")]);
        let d = decide(&key(), Mode::Fresh, &cur, &Stored::default(), O);
        assert_eq!(d.record, Some(cur.clone()));
        assert_eq!(d.token, Some(record_digest(&key(), &cur, "")));
        assert!(d.roll);
        // the same again is a no-op
        let s = stored(d.record.clone(), d.token.as_deref());
        let again = decide(&key(), Mode::Fresh, &cur, &s, O);
        assert!(again.is_noop(&s));
        assert!(!again.roll);
    }

    /// Audit 11: a review no longer GETs a source its cache lacks; it records `unseen`,
    /// which the watcher fills in without a roll whatever it finds (before, a source created
    /// just before its workload would have rolled it once, recorded absent, with
    /// --reload-on-create); a later creation still rolls.
    #[test]
    fn unseen_fills_in_without_a_roll() {
        let s = stored(
            Some(rec(&[("configmap/a", UNSEEN), ("configmap/b", UNSEEN)])),
            Some("t"),
        );
        let now = rec(&[("configmap/a", "1111111111111111"), ("configmap/b", ABSENT)]);
        let d = decide(&key(), Mode::Reconcile, &now, &s, O);
        assert!(!d.roll && d.changed.is_empty(), "{d:?}");
        assert_eq!(d.record, Some(now.clone()));
        assert_eq!(d.token.as_deref(), Some("t"));
        // filled in: the next creation of b rolls, as any creation does
        let s = stored(d.record, d.token.as_deref());
        let later = rec(&[
            ("configmap/a", "1111111111111111"),
            ("configmap/b", "2222222222222222"),
        ]);
        let d = decide(&key(), Mode::Reconcile, &later, &s, O);
        assert!(d.roll && entry_list(&d.changed) == "configmap/b", "{d:?}");
        // an update that keeps the pods takes what is known for an unseen entry
        let s = stored(Some(rec(&[("configmap/a", UNSEEN)])), Some("t"));
        let d = decide(
            &key(),
            Mode::Keep,
            &rec(&[("configmap/a", "1111111111111111")]),
            &s,
            O,
        );
        assert_eq!(d.record, Some(rec(&[("configmap/a", "1111111111111111")])));
        // a record with `unseen` is one hashroll writes
        assert!(parse_record(r#"{"configmap/a":"unseen"}"#).is_some());
        // a compact group takes unseen as absent, so filling one in changes no group
        let many = |v: &str| -> Record {
            (0..=MAX_RECORD_SOURCES)
                .map(|i| (format!("configmap/c{i}"), v.to_string()))
                .collect()
        };
        assert_eq!(
            compact(&key(), &many(UNSEEN)),
            compact(&key(), &many(ABSENT))
        );
    }

    #[test]
    fn fresh_with_nothing_tracked_leaves_token_alone() {
        let d = decide(
            &key(),
            Mode::Fresh,
            &Record::new(),
            &stored(None, Some("t")),
            O,
        );
        assert_eq!(d.record, None);
        assert_eq!(d.token.as_deref(), Some("t"));
    }

    #[test]
    fn keep_without_record_records_and_adds_no_token() {
        let cur = rec(&[("configmap/a", "1111111111111111")]);
        let d = decide(&key(), Mode::Keep, &cur, &Stored::default(), O);
        assert_eq!(d.record, Some(cur));
        assert_eq!(d.token, None);
        assert!(!d.roll);
    }

    #[test]
    fn keep_keeps_stale_digests_and_adjusts_membership() {
        let base = rec(&[
            ("configmap/a", "aaaaaaaaaaaaaaaa"),
            ("configmap/gone", "0000000000000000"),
        ]);
        let cur = rec(&[
            ("configmap/a", "bbbbbbbbbbbbbbbb"),
            ("secret/new", "cccccccccccccccc"),
        ]);
        let d = decide(
            &key(),
            Mode::Keep,
            &cur,
            &stored(Some(base), Some("tok")),
            O,
        );
        assert_eq!(
            d.record,
            Some(rec(&[
                ("configmap/a", "aaaaaaaaaaaaaaaa"),
                ("secret/new", "cccccccccccccccc")
            ]))
        );
        assert_eq!(d.token.as_deref(), Some("tok"));
        assert!(!d.roll);
    }

    #[test]
    fn reconcile_table() {
        struct Case {
            name: &'static str,
            base: Option<Record>,
            current: Record,
            opts: RollOptions,
            roll: bool,
            record: Option<Record>,
        }
        let a1 = ("configmap/a", "1111111111111111");
        let a2 = ("configmap/a", "2222222222222222");
        let a_absent = ("configmap/a", "absent");
        let b1 = ("secret/b", "3333333333333333");
        let c1 = ("secretproviderclass/c", "4444444444444444");
        let c2 = ("secretproviderclass/c", "5555555555555555");
        let c_absent = ("secretproviderclass/c", "absent");
        let cases = vec![
            Case {
                name: "class_first_mounted_records_without_roll",
                base: Some(rec(&[a1, c_absent])),
                current: rec(&[a1, c1]),
                opts: O,
                roll: false,
                record: Some(rec(&[a1, c1])),
            },
            Case {
                name: "class_no_longer_mounted_records_without_roll",
                base: Some(rec(&[c1])),
                current: rec(&[c_absent]),
                opts: O,
                roll: false,
                record: Some(rec(&[c_absent])),
            },
            Case {
                name: "class_rotated_rolls",
                base: Some(rec(&[a1, c1])),
                current: rec(&[a1, c2]),
                opts: O,
                roll: true,
                record: Some(rec(&[a1, c2])),
            },
            Case {
                name: "unchanged_does_nothing",
                base: Some(rec(&[a1])),
                current: rec(&[a1]),
                opts: O,
                roll: false,
                record: Some(rec(&[a1])),
            },
            Case {
                name: "changed_digest_rolls",
                base: Some(rec(&[a1])),
                current: rec(&[a2]),
                opts: O,
                roll: true,
                record: Some(rec(&[a2])),
            },
            Case {
                name: "joined_source_does_not_roll",
                base: Some(rec(&[a1])),
                current: rec(&[a1, b1]),
                opts: O,
                roll: false,
                record: Some(rec(&[a1, b1])),
            },
            Case {
                name: "left_source_does_not_roll",
                base: Some(rec(&[a1, b1])),
                current: rec(&[a1]),
                opts: O,
                roll: false,
                record: Some(rec(&[a1])),
            },
            Case {
                name: "no_record_records_without_roll",
                base: None,
                current: rec(&[a2]),
                opts: O,
                roll: false,
                record: Some(rec(&[a2])),
            },
            Case {
                name: "created_source_rolls",
                base: Some(rec(&[a_absent])),
                current: rec(&[a1]),
                opts: O,
                roll: true,
                record: Some(rec(&[a1])),
            },
            Case {
                name: "deleted_source_rolls",
                base: Some(rec(&[a1])),
                current: rec(&[a_absent]),
                opts: O,
                roll: true,
                record: Some(rec(&[a_absent])),
            },
            Case {
                name: "created_source_with_reload_on_create_false_records_only",
                base: Some(rec(&[a_absent])),
                current: rec(&[a1]),
                opts: RollOptions {
                    on_create: false,
                    on_delete: true,
                },
                roll: false,
                record: Some(rec(&[a1])),
            },
            Case {
                name: "deleted_source_with_reload_on_delete_false_records_only",
                base: Some(rec(&[a1])),
                current: rec(&[a_absent]),
                opts: RollOptions {
                    on_create: true,
                    on_delete: false,
                },
                roll: false,
                record: Some(rec(&[a_absent])),
            },
            Case {
                name: "everything_left_removes_record",
                base: Some(rec(&[a1])),
                current: rec(&[]),
                opts: O,
                roll: false,
                record: None,
            },
        ];
        for c in cases {
            let s = stored(c.base, Some("oldtoken00000000"));
            let d = decide(&key(), Mode::Reconcile, &c.current, &s, c.opts);
            assert_eq!(d.roll, c.roll, "case {}", c.name);
            assert_eq!(d.record, c.record, "case {}", c.name);
            if c.roll {
                assert_ne!(d.token, s.token, "case {}", c.name);
            } else {
                assert_eq!(d.token, s.token, "case {}", c.name);
            }
        }
    }

    #[test]
    fn roll_token_never_repeats_the_stored_one() {
        let a2 = rec(&[("configmap/a", "2222222222222222")]);
        let same = record_digest(&key(), &a2, "");
        let s = stored(
            Some(rec(&[("configmap/a", "1111111111111111")])),
            Some(&same),
        );
        let d = decide(&key(), Mode::Reconcile, &a2, &s, O);
        assert!(d.roll);
        assert_ne!(d.token.as_deref(), Some(same.as_str()));
    }

    #[test]
    fn a_change_back_gets_a_new_token() {
        let a = rec(&[("configmap/a", "1111111111111111")]);
        let b = rec(&[("configmap/a", "2222222222222222")]);
        let first = decide(&key(), Mode::Fresh, &a, &Stored::default(), O);
        let to_b = decide(
            &key(),
            Mode::Reconcile,
            &b,
            &stored(first.record.clone(), first.token.as_deref()),
            O,
        );
        let back = decide(
            &key(),
            Mode::Reconcile,
            &a,
            &stored(to_b.record.clone(), to_b.token.as_deref()),
            O,
        );
        assert!(to_b.roll && back.roll);
        assert_ne!(back.token, first.token);
        assert_ne!(back.token, to_b.token);
        // and the same inputs give the same token (two writers agree)
        let again = decide(
            &key(),
            Mode::Reconcile,
            &a,
            &stored(to_b.record.clone(), to_b.token.as_deref()),
            O,
        );
        assert_eq!(again.token, back.token);
    }

    #[test]
    fn a_large_record_is_compact_and_still_sees_every_change() {
        let full: Record = (0..5000)
            .map(|i| {
                (
                    format!("configmap/{}-{i}", "n".repeat(200)),
                    "0123456789abcdef".to_string(),
                )
            })
            .collect();
        let small = compact(&key(), &full);
        assert!(small.len() <= RECORD_GROUPS, "{}", small.len());
        assert!(
            render_record(&small, key().id()).len() < 1024,
            "{}",
            render_record(&small, key().id())
        );
        let counted: usize = small
            .iter()
            .map(|(_, v)| {
                v.as_str()
                    .split(':')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(counted, 5000);
        // one source's data changes: its group changes, and the decision rolls
        let mut changed = full.clone();
        changed.insert(
            SourceRef::configmap(format!("{}-77", "n".repeat(200))).into(),
            State::Digest(Digest::new("fedcba9876543210").unwrap()),
        );
        let after = compact(&key(), &changed);
        assert_eq!(
            small
                .iter()
                .filter(|(k, v)| after.get(k) != Some(*v))
                .count(),
            1
        );
        let d = decide(
            &key(),
            Mode::Reconcile,
            &after,
            &stored(Some(small.clone()), Some("t")),
            O,
        );
        assert!(d.roll && d.changed.len() == 1, "{d:?}");
        // a small record stays as it is
        let few = rec(&[("configmap/a", "0123456789abcdef")]);
        assert_eq!(compact(&key(), &few), few);
    }

    #[test]
    fn record_text_round_trips() {
        let r = rec(&[("secret/x", "absent"), ("configmap/a", "1111111111111111")]);
        let t = render_record(&r, "0123abcd");
        assert_eq!(
            t,
            r#"{"@key":"0123abcd","configmap/a":"1111111111111111","secret/x":"absent"}"#
        );
        assert_eq!(
            parse_record_with_id(&t),
            Some((r.clone(), Some("0123abcd".into())))
        );
        // written before records named their key
        let unnamed = r#"{"configmap/a":"1111111111111111","secret/x":"absent"}"#;
        assert_eq!(parse_record_with_id(unnamed), Some((r, None)));
        // a key id is 8 hex chars
        assert_eq!(
            parse_record(r#"{"@key":"xyz","configmap/a":"absent"}"#),
            None
        );
        assert_eq!(parse_record("not json"), None);
        assert_eq!(parse_record(r#"{"a": 1}"#), None);
        // only what hashroll writes: a tenant's own values or sizes count as no record
        assert_eq!(parse_record(r#"{"configmap/a": "not a digest"}"#), None);
        let long = format!(r#"{{"configmap/a": "{}"}}"#, "a".repeat(4000));
        assert_eq!(parse_record(&long), None);
        let many: Record = (0..=MAX_RECORD_SOURCES)
            .map(|i| (format!("configmap/c{i}"), "absent".to_string()))
            .collect();
        assert_eq!(parse_record(&render_record(&many, "0123abcd")), None);
        let group = rec(&[("group/03", "12:0123456789abcdef")]);
        assert_eq!(
            parse_record(&render_record(&group, "0123abcd")),
            Some(group)
        );
    }

    #[test]
    fn every_record_written_reads_back() {
        // names needing escapes: the size bound is the written text's
        let full: Record = (0..MAX_RECORD_SOURCES)
            .map(|i| {
                (
                    format!("configmap/\u{1}\"{i}{}", "n".repeat(90)),
                    "0123456789abcdef".to_string(),
                )
            })
            .collect();
        let k = DigestKey::new(b"k0123456789abcdef".to_vec()).unwrap();
        let written = compact(&k, &full);
        assert!(parse_record(&render_record(&written, k.id())).is_some());
    }

    /// The record of sources `a` and `b` (data by name) as key `k` digests it.
    fn record_with(k: &DigestKey, data: &[(&str, Option<&str>)]) -> Record {
        data.iter()
            .map(|(name, v)| {
                let s = SourceRef::configmap(*name);
                let d = v.map(|v| {
                    super::super::digest::SourceDigests::from_data([("k", v.as_bytes())], [])
                });
                let state = match d {
                    Some(d) => State::Digest(Digest::of_hex(source_digest(
                        k,
                        "ns",
                        &s,
                        &d,
                        &super::super::refs::Keys::All,
                    ))),
                    None => State::Absent,
                };
                (Entry::Source(s), state)
            })
            .collect()
    }

    #[test]
    fn a_record_made_with_another_key_is_carried_over_without_a_roll() {
        let old = DigestKey::new(b"the-old-key-0123456789".to_vec()).unwrap();
        let new = DigestKey::new(b"the-new-key-0123456789".to_vec()).unwrap();
        assert_ne!(old.id(), new.id());
        let rotated = KeyRing {
            current: new.clone(),
            previous: Some(old.clone()),
        };
        let lost = KeyRing::single(new.clone());
        let then = [("a", Some("1")), ("b", Some("1")), ("c", None)];
        let made = |k: &DigestKey| Stored {
            record: Some(record_with(k, &then)),
            key_id: Some(k.id().to_string()),
            token: Some("t0".into()),
        };
        let unnamed = Stored {
            key_id: None,
            ..made(&new)
        };
        struct Case {
            what: &'static str,
            keys: KeyRing,
            stored: Stored,
            now: [(&'static str, Option<&'static str>); 3],
            made_with: MadeWith,
            roll: Vec<&'static str>,
        }
        let same = then;
        let cases = [
            Case {
                what: "made with the current key, unchanged",
                keys: rotated.clone(),
                stored: made(&new),
                now: same,
                made_with: MadeWith::Current,
                roll: vec![],
            },
            Case {
                what: "made with the previous key, unchanged: re-recorded, no roll",
                keys: rotated.clone(),
                stored: made(&old),
                now: same,
                made_with: MadeWith::Previous,
                roll: vec![],
            },
            Case {
                what: "made with the previous key, one source changed since: it rolls",
                keys: rotated.clone(),
                stored: made(&old),
                now: [("a", Some("2")), ("b", Some("1")), ("c", None)],
                made_with: MadeWith::Previous,
                roll: vec!["configmap/a"],
            },
            Case {
                what: "made with the previous key, a source created since: it rolls",
                keys: rotated.clone(),
                stored: made(&old),
                now: [("a", Some("1")), ("b", Some("1")), ("c", Some("new"))],
                made_with: MadeWith::Previous,
                roll: vec!["configmap/c"],
            },
            Case {
                what: "made with the previous key, a source deleted since: it rolls",
                keys: rotated.clone(),
                stored: made(&old),
                now: [("a", Some("1")), ("b", None), ("c", None)],
                made_with: MadeWith::Previous,
                roll: vec!["configmap/b"],
            },
            Case {
                what: "a key hashroll no longer has: re-recorded, no roll",
                keys: lost.clone(),
                stored: made(&old),
                now: [("a", Some("2")), ("b", Some("1")), ("c", None)],
                made_with: MadeWith::Lost(old.id().to_string()),
                roll: vec![],
            },
            Case {
                what: "a record naming no key is taken as the current key's",
                keys: rotated.clone(),
                stored: unnamed.clone(),
                now: [("a", Some("2")), ("b", Some("1")), ("c", None)],
                made_with: MadeWith::Unnamed,
                roll: vec!["configmap/a"],
            },
        ];
        for c in cases {
            let now = record_with(&c.keys.current, &c.now);
            let (carried, made_with) =
                carry_over(&c.keys, &c.stored, &now, |k| record_with(k, &c.now));
            assert_eq!(made_with, c.made_with, "{}", c.what);
            let d = decide(&c.keys.current, Mode::Reconcile, &now, &carried, O);
            assert_eq!(entry_list(&d.changed), c.roll.join(", "), "{}", c.what);
            assert_eq!(d.roll, !c.roll.is_empty(), "{}", c.what);
            assert_eq!(d.record.as_ref(), Some(&now), "{}", c.what);
            if !d.roll {
                assert_eq!(d.token, c.stored.token, "{}: the token stands", c.what);
            }
            // whatever it was made with, it is written once with the current key's id
            let written = d.record_text().unwrap();
            let again = Stored::from_annotations(Some(&written), d.token.as_deref());
            assert_eq!(again.key_id.as_deref(), Some(c.keys.current.id()));
            assert_eq!(
                d.is_noop(&c.stored),
                c.made_with == MadeWith::Current && !d.roll,
                "{}",
                c.what
            );
            let (carried, made) = carry_over(&c.keys, &again, &now, |k| record_with(k, &c.now));
            assert_eq!(made, MadeWith::Current, "{}", c.what);
            let d2 = decide(&c.keys.current, Mode::Reconcile, &now, &carried, O);
            assert!(d2.is_noop(&again), "{}: then nothing more", c.what);
        }
    }

    #[test]
    fn a_key_id_names_the_key() {
        let a = DigestKey::new(b"the-old-key-0123456789".to_vec()).unwrap();
        let b = DigestKey::new(b"the-old-key-0123456789".to_vec()).unwrap();
        let c = DigestKey::new(b"the-new-key-0123456789".to_vec()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert_eq!(a.id().len(), 8);
        assert!(!format!("{a:?}").contains("old-key"));
    }

    #[test]
    fn stored_reads_record_and_token() {
        use serde_json::json;
        let names = RecordNames::default();
        let obj = json!({"metadata": {"annotations": {"hashroll.dev/sources": "{\"configmap/a\":\"absent\"}"}},
            "spec": {"template": {"metadata": {"annotations": {&names.token: "t1"}}}}});
        let s = Stored::of_object(WorkloadKind::Deployment, &obj, &names);
        assert_eq!(
            s.record.unwrap().get_source(&SourceRef::configmap("a")),
            Some(&State::Absent)
        );
        assert_eq!(s.token.as_deref(), Some("t1"));
        let w = Workload::from_value(WorkloadKind::Deployment, "n", &obj).unwrap();
        assert_eq!(Stored::of(&w, &names).token.as_deref(), Some("t1"));
        let s = Stored::of_object(WorkloadKind::Deployment, &json!({}), &names);
        assert_eq!(s, Stored::default());
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template":
            {"metadata": {"annotations": {&names.token: "t"}}}}}}});
        assert_eq!(
            Stored::of_object(WorkloadKind::CronJob, &cron, &names)
                .token
                .as_deref(),
            Some("t")
        );
    }
    /// The wire format and every digest over a record, pinned: a change here would roll
    /// every workload at upgrade.
    #[test]
    fn wire_format_and_record_digests_are_pinned() {
        let k = DigestKey::new(b"pinned-key-0123456789abcdef".to_vec()).unwrap();
        let r = rec(&[
            ("secretproviderclass/c", "absent"),
            ("secret/b", "unseen"),
            ("configmap/a", "0123456789abcdef"),
        ]);
        assert_eq!(
            render_record(&r, k.id()),
            format!(
                r#"{{"@key":"{}","configmap/a":"0123456789abcdef","secret/b":"unseen","secretproviderclass/c":"absent"}}"#,
                k.id()
            )
        );
        let fresh = decide(&k, Mode::Fresh, &r, &Stored::default(), O);
        let many: Record = (0..=MAX_RECORD_SOURCES)
            .map(|i| (format!("configmap/c{i}"), "0123456789abcdef".to_string()))
            .collect();
        let small = compact(&k, &many);
        let grouped = decide(&k, Mode::Fresh, &small, &Stored::default(), O);
        let (first, value) = small.iter().next().unwrap();
        let changed = rec(&[
            ("secretproviderclass/c", "absent"),
            ("secret/b", "1111111111111111"),
            ("configmap/a", "fedcba9876543210"),
        ]);
        let after = stored(fresh.record.clone(), fresh.token.as_deref());
        let rolled = decide(&k, Mode::Reconcile, &changed, &after, O);
        assert!(rolled.roll);
        let pinned = format!(
            "{} {} {} {} {first}={value} {}",
            k.id(),
            fresh.token.unwrap(),
            rolled.token.unwrap(),
            render_record(&small, k.id()).len(),
            grouped.token.unwrap(),
        );
        assert_eq!(
            pinned,
            "ebd85917 a15533741a3b5043 afd0bef7a89fd7aa 531 group/00=4:6f84948bc05d5e7d d42f7bf71def7274"
        );
    }
    /// A compact record's changed group covers exactly the sources it holds: the ones whose
    /// own change changes that group. The gate waits on those, not on every tracked source.
    #[test]
    fn a_changed_group_covers_the_sources_it_holds() {
        use crate::core::gate::{gated_sources, pending_for};
        let k = key();
        let name = |i: usize| SourceRef::configmap(format!("c{i}"));
        let full = |changed: Option<usize>| -> Record {
            (0..=MAX_RECORD_SOURCES)
                .map(|i| {
                    let d = if Some(i) == changed {
                        "1111111111111111"
                    } else {
                        "0123456789abcdef"
                    };
                    (
                        Entry::Source(name(i)),
                        State::Digest(Digest::new(d).unwrap()),
                    )
                })
                .collect()
        };
        let tracked: Vec<SourceRef> = (0..=MAX_RECORD_SOURCES).map(name).collect();
        let before = compact(&k, &full(None));
        let changed_group = |i: usize| {
            let d = decide(
                &k,
                Mode::Reconcile,
                &compact(&k, &full(Some(i))),
                &stored(Some(before.clone()), Some("t")),
                O,
            );
            assert!(d.roll && d.changed.len() == 1, "{d:?}");
            d.changed
        };
        let changed = changed_group(7);
        let gated = gated_sources(&changed, tracked.iter().cloned());
        assert!(gated.contains(&name(7)), "{gated:?}");
        assert!(
            gated.len() < tracked.len() / 4,
            "{} of {}",
            gated.len(),
            tracked.len()
        );
        for (i, s) in tracked.iter().enumerate() {
            let covered = changed[0].covers(s);
            // covered exactly when its own change changes the same group
            assert_eq!(covered, changed_group(i) == changed, "{s}");
            assert_eq!(pending_for(true, &changed, s), covered, "{s}");
            assert_eq!(gated.contains(s), covered, "{s}");
        }
        assert!(!pending_for(false, &changed, &name(7)));
    }
}
