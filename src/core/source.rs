//! The port the shell's source cache implements for the core: what the policy reads of a
//! source ([`SourceInfo`], never its data) and the sources of one namespace
//! ([`SourceView`]).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use super::digest::SourceDigests;
use super::names::{AnnotationNames, PAUSED, RELEASE};
use super::refs::{SourceKind, SourceRef};
use super::syntax::parse_bool;

/// What the policy reads of a source (never its data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// carries `match: "true"`
    pub matched: bool,
    /// carries `ignore: "true"`
    pub ignored: bool,
    /// passes `--resource-label-selector` (true when no selector is set)
    pub selected: bool,
    /// carries `hashroll.dev/paused: "true"`: the rolls it causes wait
    pub paused: bool,
    /// carries `hashroll.dev/release: <change>`: that change's failed rollout holds no
    /// later wave (see [`change_id`])
    pub release: Option<NonZeroU32>,
}

impl SourceInfo {
    /// Reads a source's annotations (and the label-selector verdict) into a [`SourceInfo`].
    pub fn from_annotations(
        names: &AnnotationNames,
        annotations: Option<&BTreeMap<String, String>>,
        selected: bool,
    ) -> SourceInfo {
        let is_true =
            |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str) == Some("true");
        let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
        SourceInfo {
            matched: is_true(&names.search_match),
            ignored: is_true(&names.ignore),
            selected,
            paused: get(PAUSED).and_then(parse_bool) == Some(true),
            release: get(RELEASE).and_then(change_id),
        }
    }
}

/// The sources of one namespace, as the policy sees them.
pub trait SourceView {
    /// `None` when the source does not exist (as far as the view knows).
    fn info(&self, source: &SourceRef) -> Option<SourceInfo>;
    /// Names of the existing sources of `kind` that `matches` accepts (reload-list regexes);
    /// only those are copied out.
    fn names_matching(&self, kind: SourceKind, matches: &dyn Fn(&str) -> bool) -> Vec<String>;
    /// The key digests of an existing source (a clone shares them).
    fn digests(&self, source: &SourceRef) -> Option<SourceDigests>;
}

/// A change as a release names it: the 16 hex digits a workload's record holds for the
/// source after rolling for it, kept as its first 32 bits (a source's annotations are kept
/// for each of a cluster's Secrets: 4 bytes, not a string). `None` for anything else.
pub(crate) fn change_id(v: &str) -> Option<NonZeroU32> {
    let v = v.trim();
    if v.len() != 16 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&v[..8], 16)
        .ok()
        .and_then(NonZeroU32::new)
}
