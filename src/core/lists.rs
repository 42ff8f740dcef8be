//! The reload and exclude lists a workload writes: their entries, within the bounds of
//! `core::limits`, each reload entry compiled as an anchored regex, and the memo of compiled
//! regexes bounded by what they take compiled.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex_automata::meta::Regex;

use super::limits::{
    MAX_ENTRY_LEN, MAX_LIST_ENTRIES, REGEX_COMPILE_BUDGET, REGEX_MEMO_BYTES, REGEX_MEMO_ONE,
    REGEX_SIZE_LIMIT,
};

use crate::core::sync::Recover;

/// A reload-list entry compiled as the anchored regex `^entry$`.
pub(crate) struct ListEntry {
    pub(crate) text: String,
    pub(crate) regex: Option<Regex>,
    pub(crate) literal: bool,
}

/// Compiled reload-list regexes by entry text, and the compiled bytes they hold.
#[derive(Default)]
struct RegexMemo {
    compiled: HashMap<String, Result<Regex, String>>,
    bytes: usize,
}

/// What keeping a compiled entry costs: the automata's heap bytes, one search cache (a
/// search needs one per thread; its size follows the automata's), and the text.
fn compiled_bytes(entry: &str, r: &Result<Regex, String>) -> usize {
    entry.len()
        + r.as_ref()
            .map_or(0, |r| r.memory_usage() + r.create_cache().memory_usage())
}

impl RegexMemo {
    fn get(&self, entry: &str) -> Option<Result<Regex, String>> {
        self.compiled.get(entry).cloned()
    }

    /// Keeps `compiled` unless it costs past [`REGEX_MEMO_ONE`]; starts over rather than
    /// pass [`REGEX_MEMO_BYTES`].
    fn keep(&mut self, entry: &str, compiled: &Result<Regex, String>, cost: usize) {
        if cost > REGEX_MEMO_ONE {
            return;
        }
        if self.bytes + cost > REGEX_MEMO_BYTES {
            self.compiled.clear();
            self.bytes = 0;
        }
        self.bytes += cost;
        self.compiled.insert(entry.to_string(), compiled.clone());
    }
}

/// The compiled bytes the memo holds now (the hostile bench).
pub fn regex_memo_bytes() -> usize {
    memo().lock().recover().bytes
}

fn memo() -> &'static Mutex<RegexMemo> {
    static MEMO: OnceLock<Mutex<RegexMemo>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// The anchored regex of a reload-list entry (an error text when it is not a valid regex or
/// compiles past [`REGEX_SIZE_LIMIT`]), compiled once per distinct entry. ASCII, as Go's
/// regexp (Reloader's) reads `\b`, `\w`, `\d`, and as object names are: without Unicode
/// the automaton stays small and the lazy DFA handles word boundaries; with it a fuzzed list
/// of `\b`-and-`.` entries ran on the PikeVM at tens of milliseconds per review. It matches
/// bytes, so `.` also matches a byte of a multi-byte character (no name has one).
///
/// The same lists come back on every admission and every source change, hence the memo. It
/// is bounded by what the regexes take compiled, not by their text (a seven-byte `a{5000}`
/// compiles to about 250 KiB; see [`RegexMemo::keep`]). regex-automata's meta regex is the
/// regex crate's own engine, with its size reported (`memory_usage`).
///
/// `budget`: the compiled bytes this check may still spend, less what this entry cost;
/// `None` when it is spent and the entry is not in the memo (not compiled).
fn list_regex(entry: &str, budget: &mut usize) -> Option<Result<Regex, String>> {
    list_regex_in(memo(), entry, budget)
}

fn list_regex_in(
    memo: &Mutex<RegexMemo>,
    entry: &str,
    budget: &mut usize,
) -> Option<Result<Regex, String>> {
    let lock = || memo.lock().recover();
    if let Some(r) = lock().get(entry) {
        return Some(r);
    }
    if *budget == 0 {
        return None;
    }
    let limit = Some(REGEX_SIZE_LIMIT);
    let compiled = Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .configure(
            Regex::config()
                .nfa_size_limit(limit)
                .onepass_size_limit(limit)
                .dfa_size_limit(limit)
                .hybrid_cache_capacity(REGEX_SIZE_LIMIT),
        )
        .build(&format!("^(?:{entry})$"))
        .map_err(|e| {
            if e.size_limit().is_some() {
                "the regex is too large".to_string()
            } else {
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .to_string()
            }
        });
    let cost = compiled_bytes(entry, &compiled);
    lock().keep(entry, &compiled, cost);
    *budget = budget.saturating_sub(cost);
    Some(compiled)
}

/// The entries of a comma list, at most [`MAX_LIST_ENTRIES`] of at most [`MAX_ENTRY_LEN`]
/// bytes; what is past a bound is reported in `problems`.
fn list_items<'a>(
    annotation: &str,
    value: Option<&'a str>,
    problems: &mut Vec<String>,
) -> Vec<&'a str> {
    let Some(value) = value else {
        return Vec::new();
    };
    let all = || value.split(',').map(str::trim).filter(|e| !e.is_empty());
    for e in all().take(MAX_LIST_ENTRIES) {
        if e.len() > MAX_ENTRY_LEN {
            problems.push(format!(
                "{annotation}: an entry of {} bytes is longer than {MAX_ENTRY_LEN}; skipped",
                e.len()
            ));
        }
    }
    if all().nth(MAX_LIST_ENTRIES).is_some() {
        problems.push(format!(
            "{annotation}: only the first {MAX_LIST_ENTRIES} entries are read"
        ));
    }
    list_entries(value).collect()
}

/// The entries of a comma list the policy reads: the first [`MAX_LIST_ENTRIES`] non-empty
/// ones, less those over [`MAX_ENTRY_LEN`] bytes. The watcher's index reads lists through
/// this too, so it never holds more than the policy can track.
pub(crate) fn list_entries(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .take(MAX_LIST_ENTRIES)
        .filter(|e| e.len() <= MAX_ENTRY_LEN)
}

pub(crate) fn parse_list(
    annotation: &str,
    value: Option<&str>,
    budget: &mut usize,
    problems: &mut Vec<String>,
) -> Vec<ListEntry> {
    let mut spent = false;
    list_items(annotation, value, problems)
        .into_iter()
        .map(|e| {
            let literal = e
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            // a name compiles small (at most MAX_ENTRY_LEN plain bytes): not from the budget
            let mut unlimited = usize::MAX;
            let regex = match list_regex(e, if literal { &mut unlimited } else { budget }) {
                Some(Ok(r)) => Some(r),
                Some(Err(why)) => {
                    problems.push(format!("{annotation}: entry {e:?} skipped: {why}"));
                    None
                }
                None => {
                    if !spent {
                        spent = true;
                        problems.push(format!(
                            "{annotation}: the lists' regexes compile past {} MiB; the rest skipped",
                            REGEX_COMPILE_BUDGET >> 20
                        ));
                    }
                    None
                }
            };
            ListEntry {
                text: e.to_string(),
                regex,
                literal,
            }
        })
        .collect()
}

pub(crate) fn exclude_set(
    annotation: &str,
    value: Option<&str>,
    problems: &mut Vec<String>,
) -> Vec<String> {
    list_items(annotation, value, problems)
        .into_iter()
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audit 7: the memo was bounded by entry text, so seven-byte entries each pinned
    /// ~250 KiB compiled. Now by compiled size: a costly entry is not kept, the memo never
    /// passes its bound, and one check compiles at most its budget.
    #[test]
    fn the_regex_memo_is_bounded_by_compiled_size() {
        let memo = Mutex::new(RegexMemo::default());
        let mut unlimited = usize::MAX;
        // a seven-byte entry that compiles to far more than its text: compiled, not kept
        let costly = "a{5000}";
        let r = list_regex_in(&memo, costly, &mut unlimited).unwrap();
        assert!(r.is_ok(), "{r:?}");
        let cost = usize::MAX - unlimited;
        assert!(cost > 100 * 1024, "a{{5000}} cost {cost}");
        assert_eq!(memo.lock().unwrap().bytes, 0);
        // past the size limit: refused as too large
        let r = list_regex_in(&memo, "a{9000}", &mut unlimited).unwrap();
        assert!(r.unwrap_err().contains("too large"));
        // many distinct cheap-but-not-free entries: the memo stays within its bound
        for i in 0..800 {
            let mut budget = usize::MAX;
            let r = list_regex_in(&memo, &format!("a{{{}}}", 100 + i % 600), &mut budget);
            assert!(r.unwrap().is_ok());
            let m = memo.lock().unwrap();
            assert!(m.bytes <= REGEX_MEMO_BYTES, "memo at {} bytes", m.bytes);
            let held: usize = m.compiled.iter().map(|(e, r)| compiled_bytes(e, r)).sum();
            assert_eq!(held, m.bytes, "the count matches what is held");
        }
        // a kept entry comes back without spending the budget
        let mut budget = 0;
        assert!(list_regex_in(&memo, "a{699}", &mut budget).is_some());
        // the budget spent, an entry not kept is not compiled
        assert!(list_regex_in(&memo, "b{4000}", &mut budget).is_none());
    }
}
