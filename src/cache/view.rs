//! The port the core reads sources through (`core::source::SourceView`), on the cache:
//! one namespace at a time.

use std::ops::Bound;

use super::{MATCH_CHUNK, SourceCache, idx};
use crate::core::digest::SourceDigests;
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::source::{SourceInfo, SourceView};
use crate::core::sync::Recover;

impl SourceCache {
    /// The view of one namespace the policy reads.
    pub fn view<'a>(&'a self, namespace: &'a str) -> NamespaceView<'a> {
        NamespaceView {
            cache: self,
            namespace,
        }
    }
}

/// One namespace of the cache, as the policy sees it.
pub struct NamespaceView<'a> {
    cache: &'a SourceCache,
    namespace: &'a str,
}

impl SourceView for NamespaceView<'_> {
    fn info(&self, source: &SourceRef) -> Option<SourceInfo> {
        self.cache.get(self.namespace, source).map(|e| e.info)
    }
    /// The names are copied out under the lock [`MATCH_CHUNK`] at a time and matched
    /// outside it: a tenant's costly regex never holds the lock the watches write under
    /// (a name added or removed meanwhile is seen or not, as with any read).
    fn names_matching(&self, kind: SourceKind, matches: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut after: Option<Box<str>> = None;
        loop {
            let chunk: Vec<Box<str>> = {
                let map = self.cache.map.read().recover();
                let Some(sources) = map.get(self.namespace) else {
                    break;
                };
                let names = &sources.0[idx(kind)];
                let from = match &after {
                    Some(a) => Bound::Excluded(&**a),
                    None => Bound::Unbounded,
                };
                names
                    .range::<str, _>((from, Bound::Unbounded))
                    .take(MATCH_CHUNK)
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            let Some(last) = chunk.last().cloned() else {
                break;
            };
            let full = chunk.len() == MATCH_CHUNK;
            out.extend(chunk.into_iter().filter(|n| matches(n)).map(String::from));
            if !full {
                break;
            }
            after = Some(last);
        }
        out
    }
    fn digests(&self, source: &SourceRef) -> Option<SourceDigests> {
        self.cache.get(self.namespace, source).map(|e| e.digests)
    }
}
