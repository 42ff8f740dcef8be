//! `reloader_reload_executed_total_by_namespace{success,namespace}` (Reloader's
//! `METRICS_COUNT_BY_NAMESPACE`), bounded, and written by hand into the exposition: the
//! registry would name a counter with `_total` at the end, and dashboards read Reloader's
//! name as it is.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::sync::Recover;

/// The most namespaces kept apart; the rest are counted under `namespace="_other"`
/// (namespaces are made by tenants).
pub(super) const MAX_NAMESPACES: usize = 10_000;

#[derive(Default)]
pub(super) struct ByNamespace {
    on: AtomicBool,
    counts: Mutex<BTreeMap<(bool, String), u64>>,
}

impl ByNamespace {
    pub(super) fn turn_on(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// One roll in `namespace` written (or refused), when on.
    pub(super) fn count(&self, success: bool, namespace: &str) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let mut m = self.counts.lock().recover();
        let mut key = (success, namespace.to_string());
        if !m.contains_key(&key) && m.len() >= MAX_NAMESPACES {
            key.1 = "_other".to_string();
        }
        *m.entry(key).or_default() += 1;
    }

    /// Puts the family, when on, into `exposition` before its `# EOF`.
    pub(super) fn render_into(&self, exposition: &mut String) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let m = self.counts.lock().recover();
        let mut extra = String::from(
            "# HELP reloader_reload_executed_total_by_namespace Reloads executed, by success and namespace.\n\
             # TYPE reloader_reload_executed_total_by_namespace counter\n",
        );
        for ((success, ns), n) in m.iter() {
            // namespace names are DNS labels: nothing to escape
            extra.push_str(&format!(
                "reloader_reload_executed_total_by_namespace{{success=\"{success}\",namespace=\"{ns}\"}} {n}\n"
            ));
        }
        match exposition.rfind("# EOF") {
            Some(at) => exposition.insert_str(at, &extra),
            None => exposition.push_str(&extra),
        }
    }
}
