//! The de-duplication of the Warning Events on a workload's bad annotations: a check runs
//! often (every source change, every relist), its problems are posted once for each set of
//! problems, again only when the set changes.

use std::collections::HashMap;
use std::sync::Mutex;

use super::workloads::WorkloadKey;

use crate::core::sync::Recover;

/// Per workload, the problems last reported.
#[derive(Debug, Default)]
pub(crate) struct Reported(Mutex<HashMap<WorkloadKey, Vec<String>>>);

impl Reported {
    /// Whether `problems` are to be reported for `key` now (not the set last reported, and
    /// not empty); remembers them. An empty set forgets what was reported, so the same
    /// problem coming back is reported again.
    pub(crate) fn is_new(&self, key: &WorkloadKey, problems: &[String]) -> bool {
        let mut reported = self.0.lock().recover();
        if reported.get(key).map(Vec::as_slice) == Some(problems) {
            return false;
        }
        if problems.is_empty() {
            reported.remove(key);
            return false;
        }
        reported.insert(key.clone(), problems.to_vec());
        true
    }

    /// The workload is gone.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.0.lock().recover().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_set_of_problems_is_reported_once() {
        let r = Reported::default();
        let key = |n: &str| WorkloadKey {
            kind: crate::core::kind::WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: n.into(),
        };
        let (a, b) = (key("a"), key("b"));
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(!r.is_new(&a, &[]), "nothing to report");
        assert!(r.is_new(&a, &p(&["x"])));
        assert!(!r.is_new(&a, &p(&["x"])), "the same set again");
        assert!(r.is_new(&b, &p(&["x"])), "per workload");
        assert!(r.is_new(&a, &p(&["x", "y"])), "a new set");
        assert!(!r.is_new(&a, &[]), "fixed: nothing to post");
        assert!(
            r.is_new(&a, &p(&["x", "y"])),
            "back after a fix: reported again"
        );
        r.forget(&a);
        assert!(
            r.is_new(&a, &p(&["x", "y"])),
            "a new workload of the same name"
        );
    }
}
