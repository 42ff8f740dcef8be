//! SecretProviderClasses of the Secrets Store CSI Driver as sources (`--enable-csi-integration`).
//!
//! The driver writes one `SecretProviderClassPodStatus` per pod and class (named
//! `<pod>-<namespace>-<class>`, owned by the pod, labelled with its node): the class
//! (`status.secretProviderClassName`), whether it is mounted, and the `objects[]` (`id`,
//! `version`) it mounted. A class has no status of its own, so the cache makes one per
//! namespace and class from its pods' statuses; its digests are `id → version` (keyed and
//! hashed with the class name like any source's).
//!
//! How the statuses of one class combine (what [`Classes`] keeps):
//!
//! - The class's versions are those of the status that changed **last**: a status
//!   created, or one whose versions changed. "When" is the status's own last change: the
//!   latest of its `creationTimestamp` and its `managedFields` times (the apiserver moves
//!   those only when a field changes, so a write that changes nothing is not a change).
//! - A rotation reaches the pods one by one: the first status that reports the new versions
//!   moves the class (one change, so one roll); the others report what the class already
//!   holds (no change). New pods mount the new versions: no change either.
//! - A status whose versions did not change (the driver's periodic poll) changes nothing.
//! - A status that goes (its pod went) changes nothing; the class goes with its last one.
//!   Its appearing and going never roll (`refs::SourceKindRow::presence_rolls`): a pod that
//!   mounted a class has what it reports.
//! - After a restart or relist the same rule picks the class's versions from what is
//!   listed, so a rotation that happened while hashroll was down is one change, and one
//!   that was already rolled is none.
//!
//! A status not mounted (yet), or one past the bounds below (a tenant who may write
//! statuses in its own namespace), counts as absent; a bad one is logged.

use std::collections::{HashMap, HashSet};

use kube::api::{ApiResource, DynamicObject, ObjectMeta};

use crate::core::digest::SourceDigests;
use crate::core::refs::is_object_name;

mod watch;

pub(crate) use watch::run;

/// The driver's API group.
pub(crate) const GROUP: &str = "secrets-store.csi.x-k8s.io";

/// Objects read from one status; a status with more counts as absent.
pub(crate) const MAX_OBJECTS: usize = 256;
/// The longest `id` or `version` read; a status with a longer one counts as absent.
pub(crate) const MAX_FIELD_LEN: usize = 1024;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// `SecretProviderClassPodStatus`.
pub(crate) fn status_resource() -> ApiResource {
    resource(
        "SecretProviderClassPodStatus",
        "secretproviderclasspodstatuses",
    )
}

/// `SecretProviderClass`.
pub(crate) fn class_resource() -> ApiResource {
    resource("SecretProviderClass", "secretproviderclasses")
}

/// What hashroll reads of one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusView {
    pub class: String,
    /// `id → version`
    pub versions: SourceDigests,
    /// its last change, in seconds since the epoch
    pub changed_at: i64,
}

/// A status as hashroll reads it: `Ok(None)` when it is not mounted (yet), `Err` when it is
/// past a bound or malformed (why, for the log).
pub(crate) fn read_status(obj: &DynamicObject) -> Result<Option<StatusView>, String> {
    let Some(status) = obj.data.get("status") else {
        return Ok(None);
    };
    if status.get("mounted").and_then(|m| m.as_bool()) != Some(true) {
        return Ok(None);
    }
    let class = status
        .get("secretProviderClassName")
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    if !is_object_name(class) {
        return Err("status.secretProviderClassName is not an object name".into());
    }
    let objects = match status.get("objects") {
        None | Some(serde_json::Value::Null) => &Vec::new(),
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return Err("status.objects is not a list".into()),
    };
    if objects.len() > MAX_OBJECTS {
        return Err(format!(
            "{} objects, more than {MAX_OBJECTS}",
            objects.len()
        ));
    }
    let mut pairs = Vec::with_capacity(objects.len());
    for o in objects {
        let field = |f: &str| o.get(f).and_then(|v| v.as_str()).unwrap_or_default();
        let (id, version) = (field("id"), field("version"));
        if id.len() > MAX_FIELD_LEN || version.len() > MAX_FIELD_LEN {
            return Err(format!(
                "an object id or version is longer than {MAX_FIELD_LEN} bytes"
            ));
        }
        pairs.push((id, version.as_bytes()));
    }
    Ok(Some(StatusView {
        class: class.to_string(),
        versions: SourceDigests::from_data(pairs, []),
        changed_at: changed_at(&obj.metadata),
    }))
}

/// The latest of an object's creation and its managed fields' times (seconds).
fn changed_at(meta: &ObjectMeta) -> i64 {
    let created = meta.creation_timestamp.as_ref().map(|t| t.0.as_second());
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0.as_second()))
        .chain(created)
        .max()
        .unwrap_or(0)
}

/// One namespace's name of a status or class.
type Key = (Box<str>, Box<str>);

fn key(ns: &str, name: &str) -> Key {
    (ns.into(), name.into())
}

#[derive(Debug)]
struct Seen {
    class: Box<str>,
    versions: SourceDigests,
}

#[derive(Debug)]
struct Class {
    versions: SourceDigests,
    /// when the status that set `versions` changed
    at: i64,
    /// statuses of it
    pods: u32,
}

/// What the cache must do for a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassEvent {
    /// it is mounted, with these versions (new, or changed)
    Set {
        namespace: String,
        class: String,
        versions: SourceDigests,
    },
    /// its last status went
    Gone { namespace: String, class: String },
}

/// The statuses of every class, and each class's versions (the rule is the module's doc).
#[derive(Debug, Default)]
pub(crate) struct Classes {
    statuses: HashMap<Key, Seen>,
    classes: HashMap<Key, Class>,
    /// during a (re)list, the statuses it listed
    listing: Option<HashSet<Key>>,
}

impl Classes {
    pub(crate) fn len(&self) -> usize {
        self.classes.len()
    }

    /// A status was listed, added or modified (`None`: not mounted, or unreadable).
    pub(crate) fn apply(
        &mut self,
        namespace: &str,
        status: &str,
        view: Option<StatusView>,
    ) -> Option<ClassEvent> {
        let k = key(namespace, status);
        if let Some(l) = &mut self.listing {
            l.insert(k.clone());
        }
        let Some(view) = view else {
            return self.delete(namespace, status);
        };
        let mut gone = None;
        if let Some(old) = self.statuses.get(&k) {
            if *old.class == *view.class {
                if old.versions == view.versions {
                    // a write that changed no version (the driver's poll)
                    return None;
                }
            } else {
                // now of another class (the driver never does this; a hand-written one may)
                gone = self.delete(namespace, status);
            }
        }
        let ck = key(namespace, &view.class);
        let is_new = !self.statuses.contains_key(&k);
        let (event, versions) = match self.classes.get_mut(&ck) {
            None => {
                self.classes.insert(
                    ck,
                    Class {
                        versions: view.versions.clone(),
                        at: view.changed_at,
                        pods: 1,
                    },
                );
                (true, view.versions)
            }
            Some(c) => {
                if is_new {
                    c.pods += 1;
                }
                if c.versions == view.versions {
                    c.at = c.at.max(view.changed_at);
                    // share the class's encoding
                    (false, c.versions.clone())
                } else if view.changed_at >= c.at {
                    c.versions = view.versions.clone();
                    c.at = view.changed_at;
                    (true, view.versions)
                } else {
                    // an older change than the one the class holds
                    (false, view.versions)
                }
            }
        };
        self.statuses.insert(
            k,
            Seen {
                class: view.class.as_str().into(),
                versions: versions.clone(),
            },
        );
        if event {
            return Some(ClassEvent::Set {
                namespace: namespace.to_string(),
                class: view.class,
                versions,
            });
        }
        gone
    }

    /// A status was deleted (or is no longer mounted).
    pub(crate) fn delete(&mut self, namespace: &str, status: &str) -> Option<ClassEvent> {
        let seen = self.statuses.remove(&key(namespace, status))?;
        let ck = (Box::from(namespace), seen.class);
        let c = self.classes.get_mut(&ck)?;
        c.pods = c.pods.saturating_sub(1);
        if c.pods > 0 {
            return None;
        }
        self.classes.remove(&ck);
        Some(ClassEvent::Gone {
            namespace: namespace.to_string(),
            class: ck.1.into(),
        })
    }

    /// A (re)list starts.
    pub(crate) fn relist_start(&mut self) {
        self.listing = Some(HashSet::new());
    }

    /// A (re)list ended: the statuses it did not list are gone. Returns every class that is
    /// mounted (what the cache must hold now; the others go with its own relist).
    pub(crate) fn relist_done(&mut self) -> Vec<ClassEvent> {
        if let Some(listed) = self.listing.take() {
            let stale: Vec<Key> = self
                .statuses
                .keys()
                .filter(|k| !listed.contains(*k))
                .cloned()
                .collect();
            for (ns, status) in stale {
                self.delete(&ns, &status);
            }
        }
        self.classes
            .iter()
            .map(|((ns, class), c)| ClassEvent::Set {
                namespace: ns.to_string(),
                class: class.to_string(),
                versions: c.versions.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    /// Test-only views of the type, kept out of its production impl.
    impl Classes {
        fn is_empty(&self) -> bool {
            self.classes.is_empty()
        }
    }

    use super::*;
    use serde_json::json;

    fn status(class: &str, objects: &[(&str, &str)], at: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClassPodStatus",
            "metadata": {"name": "p", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "secrets-store-csi-driver", "operation": "Update",
                    "apiVersion": "secrets-store.csi.x-k8s.io/v1", "time": at}]},
            "status": {"mounted": true, "secretProviderClassName": class, "podName": "p",
                "objects": objects.iter().map(|(i, v)| json!({"id": i, "version": v})).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    fn view(objects: &[(&str, &str)], at: i64) -> Option<StatusView> {
        Some(StatusView {
            class: "c".into(),
            versions: SourceDigests::from_data(objects.iter().map(|(i, v)| (*i, v.as_bytes())), []),
            changed_at: at,
        })
    }

    fn set(v: &Option<StatusView>) -> Option<ClassEvent> {
        Some(ClassEvent::Set {
            namespace: "ns".into(),
            class: "c".into(),
            versions: v.as_ref().unwrap().versions.clone(),
        })
    }

    #[test]
    fn a_status_reads_its_class_and_versions_within_bounds() {
        let s = status("db", &[("b", "2"), ("a", "1")], "2026-01-02T00:00:00Z");
        let v = read_status(&s).unwrap().unwrap();
        assert_eq!(v.class, "db");
        // sorted id → version, whatever the order written
        let same = read_status(&status(
            "db",
            &[("a", "1"), ("b", "2")],
            "2026-01-02T00:00:00Z",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(v.versions, same.versions);
        assert_eq!(v.changed_at, 1_767_312_000);
        let mut not_mounted = s.clone();
        not_mounted.data["status"]["mounted"] = json!(false);
        assert_eq!(read_status(&not_mounted), Ok(None));
        let many: Vec<(String, String)> = (0..=MAX_OBJECTS)
            .map(|i| (i.to_string(), "v".into()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(read_status(&status("db", &many, "2026-01-02T00:00:00Z")).is_err());
        let long = "v".repeat(MAX_FIELD_LEN + 1);
        assert!(read_status(&status("db", &[("a", &long)], "2026-01-02T00:00:00Z")).is_err());
        assert!(read_status(&status("Not A Name", &[], "2026-01-02T00:00:00Z")).is_err());
    }

    #[test]
    fn one_rotation_reaching_the_pods_one_by_one_is_one_change() {
        let mut c = Classes::default();
        let v1 = view(&[("db", "1")], 100);
        // three pods mount v1: the first makes the class, the others change nothing
        assert_eq!(c.apply("ns", "a", v1.clone()), set(&v1));
        assert_eq!(c.apply("ns", "b", view(&[("db", "1")], 101)), None);
        assert_eq!(c.apply("ns", "x", view(&[("db", "1")], 102)), None);
        // the driver's poll: written again, no version changed
        assert_eq!(c.apply("ns", "a", view(&[("db", "1")], 103)), None);
        // the rotation reaches a, then b
        let v2 = view(&[("db", "2")], 200);
        assert_eq!(c.apply("ns", "a", v2.clone()), set(&v2));
        assert_eq!(c.apply("ns", "b", view(&[("db", "2")], 201)), None);
        // the roll: new pods mount v2, old ones go; x (not rotated yet) going changes nothing
        assert_eq!(c.apply("ns", "new1", view(&[("db", "2")], 210)), None);
        assert_eq!(c.delete("ns", "a"), None);
        assert_eq!(c.delete("ns", "x"), None);
        assert_eq!(c.delete("ns", "b"), None);
        // the last pod goes: so does the class
        assert_eq!(
            c.delete("ns", "new1"),
            Some(ClassEvent::Gone {
                namespace: "ns".into(),
                class: "c".into()
            })
        );
        assert!(c.is_empty());
    }

    #[test]
    fn a_relist_picks_the_last_change_so_a_restart_rolls_only_what_it_missed() {
        // rotated while down: a changed at 200 (after b's creation), b not yet
        let mut c = Classes::default();
        c.relist_start();
        c.apply("ns", "b", view(&[("db", "1")], 150));
        c.apply("ns", "a", view(&[("db", "2")], 200));
        let listed = c.relist_done();
        assert_eq!(listed, vec![set(&view(&[("db", "2")], 0)).unwrap()]);
        // the same in the other order
        let mut c = Classes::default();
        c.relist_start();
        c.apply("ns", "a", view(&[("db", "2")], 200));
        c.apply("ns", "b", view(&[("db", "1")], 150));
        assert_eq!(c.relist_done(), listed);
        // a status the relist no longer lists is gone; the class with its last one
        c.relist_start();
        c.apply("ns", "a", view(&[("db", "2")], 200));
        assert_eq!(c.relist_done().len(), 1);
        assert_eq!(c.statuses.len(), 1);
        c.relist_start();
        assert!(c.relist_done().is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn an_unmounted_status_counts_as_gone() {
        let mut c = Classes::default();
        c.apply("ns", "a", view(&[("db", "1")], 1));
        assert!(matches!(
            c.apply("ns", "a", None),
            Some(ClassEvent::Gone { .. })
        ));
        assert!(c.is_empty());
    }
}
