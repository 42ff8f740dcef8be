//! The record (each tracked source and its keyed digest) and [`decide`]: given the record a
//! workload should carry now and what it carries, the record and roll token to write. The
//! whole path from a workload to that decision is `core::stamp`.

use std::collections::BTreeMap;

use super::digest::{DigestKey, record_digest, source_digest};
use super::limits::{MAX_RECORD_BYTES, MAX_RECORD_SOURCES, RECORD_GROUPS};
use super::policy::{SourceView, Tracked};
use super::refs::SourceRef;

/// `"configmap/<name>"` / `"secret/<name>"` → 16 hex chars or `"absent"`.
pub type Record = BTreeMap<String, String>;

/// Parses the record annotation; `None` when it is not a JSON object of strings.
///
/// The annotation is the tenant's to write, so only what hashroll itself writes is taken: at
/// most [`super::limits::MAX_RECORD_BYTES`] of text and
/// [`super::limits::MAX_RECORD_SOURCES`] entries, each value a digest, `absent`, or a
/// group's `COUNT:DIGEST`. Anything else counts as no record.
pub fn parse_record(text: &str) -> Option<Record> {
    use super::limits::{MAX_RECORD_BYTES, MAX_RECORD_SOURCES};
    if text.len() > MAX_RECORD_BYTES {
        return None;
    }
    let record = serde_json::from_str::<Record>(text).ok()?;
    let value_ok = |v: &str| {
        v == super::digest::ABSENT
            || (v.len() <= 32
                && !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b':'))
    };
    (record.len() <= MAX_RECORD_SOURCES && record.values().all(|v| value_ok(v))).then_some(record)
}

/// The record annotation's text (compact JSON, keys sorted).
pub fn render_record(record: &Record) -> String {
    serde_json::to_string(record).expect("a map of strings serializes")
}

/// Why [`decide`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
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
pub struct Stored {
    pub record: Option<Record>,
    pub token: Option<String>,
}

/// `--reload-on-create` / `--reload-on-delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollOptions {
    pub on_create: bool,
    pub on_delete: bool,
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
pub struct Decision {
    /// the record the workload should carry (`None`: no record annotation)
    pub record: Option<Record>,
    /// the roll token the pod template should carry
    pub token: Option<String>,
    /// true when the token changes so the workload rolls
    pub roll: bool,
    /// record keys whose digest changed (the reason of a roll)
    pub changed: Vec<String>,
}

impl Decision {
    /// Nothing differs from `stored`.
    pub fn is_noop(&self, stored: &Stored) -> bool {
        self.record == stored.record && self.token == stored.token
    }
}

/// The record a workload should carry now, from what it tracks and the sources' digests.
pub fn current_record(
    key: &DigestKey,
    namespace: &str,
    tracked: &BTreeMap<SourceRef, Tracked>,
    sources: &dyn SourceView,
) -> Record {
    tracked
        .iter()
        .map(|(s, t)| {
            let data = sources.digests(s);
            (
                s.record_key(),
                source_digest(key, namespace, s, data.as_deref(), &t.keys),
            )
        })
        .collect()
}

/// Keys of a compact record's groups start with this (never a source's kind).
pub const GROUP_PREFIX: &str = "group/";

/// The record as it is written: the `full` one while it is small, else its compact form of
/// at most [`RECORD_GROUPS`] entries `group/NN` → `COUNT:DIGEST`, each digest keyed over
/// the sources of its group and theirs. A change to any source changes its group's digest,
/// so it still rolls; which sources are tracked is the policy's to say (`explain`), not the
/// record's. So no stamp can push a workload's annotations past the apiserver's limit
/// however many sources it tracks.
pub fn compact(key: &DigestKey, full: &Record) -> Record {
    // the text as written (escapes included): what `parse_record` will be given back
    if full.len() <= MAX_RECORD_SOURCES && render_record(full).len() <= MAX_RECORD_BYTES {
        return full.clone();
    }
    let mut groups = vec![Record::new(); RECORD_GROUPS];
    for (k, v) in full {
        groups[group_of(k)].insert(k.clone(), v.clone());
    }
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(i, g)| {
            let digest = record_digest(key, g, "group");
            (
                format!("{GROUP_PREFIX}{i:02}"),
                format!("{}:{digest}", g.len()),
            )
        })
        .collect()
}

/// The group of a record key: FNV-1a, stable across versions and replicas.
fn group_of(record_key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in record_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % RECORD_GROUPS as u64) as usize
}

/// The token of a roll: the record chained onto the previous token, so every roll writes
/// a template never seen before (a change back to older data is a new rollout, not a
/// return to an old ReplicaSet), and two writers deciding the same roll agree.
fn token_for(key: &DigestKey, record: &Record, previous: Option<&str>) -> String {
    record_digest(key, record, previous.unwrap_or_default())
}

/// The one decision: given the record computed now, what the workload carries and why we
/// are asked, which record and token it should carry.
pub fn decide(
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
            }
        }
        Mode::Keep => {
            let Some(base) = &stored.record else {
                return keep_token(non_empty(current.clone()));
            };
            // what stands stands; joins take today's digest; leaves go
            let merged: Record = current
                .iter()
                .map(|(k, v)| (k.clone(), base.get(k).unwrap_or(v).clone()))
                .collect();
            keep_token(non_empty(merged))
        }
        Mode::Reconcile => {
            let Some(base) = &stored.record else {
                return keep_token(non_empty(current.clone()));
            };
            let changed: Vec<String> = current
                .iter()
                .filter_map(|(k, now)| {
                    let was = base.get(k)?;
                    if was == now {
                        return None;
                    }
                    let created = was == super::digest::ABSENT;
                    let deleted = now == super::digest::ABSENT;
                    let wanted = (!created || opts.on_create) && (!deleted || opts.on_delete);
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
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn stored(r: Option<Record>, t: Option<&str>) -> Stored {
        Stored {
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
        let cases = vec![
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
            render_record(&small).len() < 1024,
            "{}",
            render_record(&small)
        );
        let counted: usize = small
            .values()
            .map(|v| v.split(':').next().unwrap().parse::<usize>().unwrap())
            .sum();
        assert_eq!(counted, 5000);
        // one source's data changes: its group changes, and the decision rolls
        let mut changed = full.clone();
        changed.insert(
            format!("configmap/{}-77", "n".repeat(200)),
            "fedcba9876543210".into(),
        );
        let after = compact(&key(), &changed);
        assert_eq!(small.iter().filter(|(k, v)| after[*k] != **v).count(), 1);
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
        let t = render_record(&r);
        assert_eq!(
            t,
            r#"{"configmap/a":"1111111111111111","secret/x":"absent"}"#
        );
        assert_eq!(parse_record(&t), Some(r));
        assert_eq!(parse_record("not json"), None);
        assert_eq!(parse_record(r#"{"a": 1}"#), None);
        // only what hashroll writes: a tenant's own values or sizes count as no record
        assert_eq!(parse_record(r#"{"configmap/a": "not a digest"}"#), None);
        let long = format!(r#"{{"configmap/a": "{}"}}"#, "a".repeat(4000));
        assert_eq!(parse_record(&long), None);
        let many: Record = (0..=MAX_RECORD_SOURCES)
            .map(|i| (format!("configmap/c{i}"), "absent".to_string()))
            .collect();
        assert_eq!(parse_record(&render_record(&many)), None);
        let group = rec(&[("group/03", "12:0123456789abcdef")]);
        assert_eq!(parse_record(&render_record(&group)), Some(group));
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
        let written = compact(
            &DigestKey::new(b"k0123456789abcdef".to_vec()).unwrap(),
            &full,
        );
        assert!(parse_record(&render_record(&written)).is_some());
    }
}
