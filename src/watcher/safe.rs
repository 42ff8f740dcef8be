//! The watcher's side of safe rollouts (the rules are `core::gate`): the switches, the
//! workloads whose roll waits, and what was said about them. Nothing here decides: a
//! waiting workload is only a workload to check again when its namespace moves, and what
//! was said only keeps Events and alerts to one per hold. A restart forgets all of it and
//! loses nothing: every workload is checked at start, and the gate reads the objects.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use super::workloads::WorkloadKey;
use crate::core::gate::{Gate, Hold, Switches};

/// The cluster-wide and per-namespace pause switches: `--paused`, and hashroll's switch
/// ConfigMap (`paused: "true"`, `paused-namespaces: "a,b"`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SwitchState {
    pub cluster: bool,
    pub namespaces: HashSet<String>,
}

/// Entries read from `paused-namespaces`.
const MAX_PAUSED_NAMESPACES: usize = 10_000;

impl SwitchState {
    /// Reads the switch ConfigMap's data (absent: nothing paused).
    pub(crate) fn from_data<'a>(get: impl Fn(&str) -> Option<&'a str>) -> SwitchState {
        let on = |k: &str| get(k).and_then(crate::core::policy::parse_bool) == Some(true);
        SwitchState {
            cluster: on("paused"),
            namespaces: get("paused-namespaces")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && n.len() <= 63)
                .take(MAX_PAUSED_NAMESPACES)
                .map(String::from)
                .collect(),
        }
    }
}

/// Why a workload's roll is not going now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Paused,
    Wave,
    Held,
}

pub(crate) struct Safe {
    flag_paused: bool,
    switches: RwLock<SwitchState>,
    default_timeout: Duration,
    /// by namespace, the workloads whose roll waits, and why
    waiting: Mutex<HashMap<Arc<str>, HashMap<WorkloadKey, Why>>>,
    /// per held workload, the hold last reported on it
    said: Mutex<HashMap<WorkloadKey, Hold>>,
    /// the failures already reported on their source: (namespace, source, workload, change)
    failures: Mutex<HashSet<Failure>>,
}

/// A failure as reported on its source: (namespace, source, workload, change).
type Failure = (Arc<str>, String, String, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Failures remembered against saying them twice before the memo starts over.
const MAX_FAILURES_SAID: usize = 10_000;

/// What [`Safe::note`] says should be reported of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// a Warning Event on the held workload (its hold is new or changed)
    pub workload: bool,
    /// a Warning Event on the source, an alert and a failure counted (the failure is new)
    pub source: bool,
}

impl Safe {
    pub(crate) fn new(flag_paused: bool, default_timeout: Duration) -> Safe {
        Safe {
            flag_paused,
            switches: RwLock::new(SwitchState::default()),
            default_timeout,
            waiting: Default::default(),
            said: Default::default(),
            failures: Default::default(),
        }
    }

    /// The switches as they stand for `namespace`.
    pub(crate) fn switches(&self, namespace: &str) -> Switches {
        let s = self.switches.read().unwrap_or_else(PoisonError::into_inner);
        Switches {
            cluster_paused: self.flag_paused || s.cluster,
            namespace_paused: s.namespaces.contains(namespace),
            default_timeout: self.default_timeout,
        }
    }

    /// Sets the switch ConfigMap's state; the namespaces whose rolls it let go (all: `None`).
    pub(crate) fn set_switches(&self, new: SwitchState) -> Option<Vec<String>> {
        let mut s = self
            .switches
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if *s == new {
            return Some(Vec::new());
        }
        let released = if s.cluster && !new.cluster {
            None
        } else {
            Some(s.namespaces.difference(&new.namespaces).cloned().collect())
        };
        tracing::info!(
            cluster_paused = new.cluster,
            paused_namespaces = new.namespaces.len(),
            "pause switches changed"
        );
        *s = new;
        released
    }

    /// Notes what the gate said of `key`; what of a hold is new and should be reported.
    pub(crate) fn note(&self, key: &WorkloadKey, gate: &Gate) -> Report {
        let why = match gate {
            Gate::Go => None,
            Gate::Paused(_) => Some(Why::Paused),
            Gate::Wait { .. } => Some(Why::Wave),
            Gate::Held(_) => Some(Why::Held),
        };
        {
            let mut w = lock(&self.waiting);
            match why {
                Some(why) => {
                    w.entry(key.namespace.clone())
                        .or_default()
                        .insert(key.clone(), why);
                }
                None => {
                    if let Some(ns) = w.get_mut(&key.namespace) {
                        ns.remove(key);
                        if ns.is_empty() {
                            w.remove(&key.namespace);
                        }
                    }
                }
            }
        }
        let Gate::Held(hold) = gate else {
            lock(&self.said).remove(key);
            return Report {
                workload: false,
                source: false,
            };
        };
        let workload = lock(&self.said).insert(key.clone(), hold.clone()).as_ref() != Some(hold);
        let mut f = lock(&self.failures);
        if f.len() >= MAX_FAILURES_SAID {
            f.clear();
        }
        let source = f.insert((
            key.namespace.clone(),
            hold.source.clone(),
            hold.failed.clone(),
            hold.change.clone(),
        ));
        Report { workload, source }
    }

    /// Forgets a workload that is gone.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.note(key, &Gate::Go);
    }

    /// The waiting workloads of `namespace` (to check again: something there moved).
    pub(crate) fn waiting_in(&self, namespace: &str) -> Vec<WorkloadKey> {
        lock(&self.waiting)
            .get(namespace)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// (held, waiting or paused) workloads, for the gauges.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let w = lock(&self.waiting);
        let held = w
            .values()
            .flat_map(|m| m.values())
            .filter(|w| **w == Why::Held)
            .count();
        let all: usize = w.values().map(HashMap::len).sum();
        (held, all - held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::workload::WorkloadKind;

    fn key(ns: &str, name: &str) -> WorkloadKey {
        WorkloadKey {
            kind: WorkloadKind::Deployment,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn hold(change: &str) -> Gate {
        Gate::Held(Hold {
            source: "configmap/cfg".into(),
            failed: "deployment/a".into(),
            why: "failed".into(),
            change: change.into(),
            since: None,
        })
    }

    #[test]
    fn a_hold_is_reported_once_per_workload_and_once_on_its_source() {
        let s = Safe::new(false, Duration::from_secs(600));
        let (b, c) = (key("ns", "b"), key("ns", "c"));
        let r = s.note(&b, &hold("1"));
        assert!(r.workload && r.source);
        let r = s.note(&b, &hold("1"));
        assert!(!r.workload && !r.source, "said once");
        let r = s.note(&c, &hold("1"));
        assert!(
            r.workload && !r.source,
            "the source hears of a failure once"
        );
        let r = s.note(&b, &hold("2"));
        assert!(r.workload && r.source, "another change is another failure");
        assert_eq!(s.counts(), (2, 0));
        s.note(&c, &Gate::Paused("x".into()));
        assert_eq!(s.counts(), (1, 1));
        assert_eq!(s.waiting_in("ns").len(), 2);
        s.note(&b, &Gate::Go);
        s.forget(&c);
        assert_eq!(s.counts(), (0, 0));
        assert!(s.waiting_in("ns").is_empty());
    }

    #[test]
    fn switches_say_what_they_let_go() {
        let s = Safe::new(false, Duration::from_secs(1));
        let data = |pairs: &'static [(&'static str, &'static str)]| {
            SwitchState::from_data(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
        };
        assert_eq!(
            s.set_switches(data(&[("paused-namespaces", "a, b,,")])),
            Some(vec![])
        );
        assert!(s.switches("a").namespace_paused && !s.switches("c").namespace_paused);
        let mut let_go = s.set_switches(data(&[("paused-namespaces", "b")])).unwrap();
        let_go.sort();
        assert_eq!(let_go, ["a"]);
        s.set_switches(data(&[("paused", "true")]));
        assert!(s.switches("x").cluster_paused);
        assert_eq!(s.set_switches(data(&[])), None, "all let go");
        assert!(Safe::new(true, Duration::ZERO).switches("x").cluster_paused);
    }
}
