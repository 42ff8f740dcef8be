//! PodSpec → the ConfigMaps and Secrets it uses, with the keys it uses.
//!
//! A pod spec is read into [`PodRefs`], the few fields that name sources; serde skips
//! everything else (images, probes, resources...) without building it. That is what keeps
//! admission cheap: a typed `PodSpec` allocates every field of every container.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod pod;

pub use pod::*;

/// The kinds of source. Each is a row of [`SOURCE_KINDS`]: what differs between kinds is
/// read from there, so a fourth kind is a variant, a row, and its annotation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    ConfigMap,
    Secret,
    /// a Secrets Store CSI Driver class, as its pods' `SecretProviderClassPodStatus`
    /// objects report the versions they mounted (`cache::csi`)
    SecretProviderClass,
}

/// What hashroll needs to know of one kind of source.
#[derive(Debug)]
pub struct SourceKindRow {
    pub kind: SourceKind,
    /// the prefix of a record key, and the name in logs and metrics
    pub name: &'static str,
    /// other spellings `explain` and `SourceKind::parse` take
    pub aliases: &'static [&'static str],
    /// a source of this kind can be read by name (a GET confirms a miss); a class is known
    /// only through its pods' statuses
    pub gettable: bool,
    /// whether appearing or disappearing is a change that rolls (`--reload-on-create`,
    /// `--reload-on-delete`). A class appears when its first pod mounts it and disappears
    /// with its last pod; a pod that mounted it already has what it reports, so neither
    /// is a reason to roll: only a version change is.
    pub presence_rolls: bool,
    /// the object's `apiVersion` and `kind` (what an Event about it names)
    pub api_version: &'static str,
    pub object_kind: &'static str,
}

/// The kinds of source, in [`SourceKind`] order.
pub const SOURCE_KINDS: [SourceKindRow; 3] = [
    SourceKindRow {
        kind: SourceKind::ConfigMap,
        name: "configmap",
        aliases: &["configmaps", "cm"],
        gettable: true,
        presence_rolls: true,
        api_version: "v1",
        object_kind: "ConfigMap",
    },
    SourceKindRow {
        kind: SourceKind::Secret,
        name: "secret",
        aliases: &["secrets"],
        gettable: true,
        presence_rolls: true,
        api_version: "v1",
        object_kind: "Secret",
    },
    SourceKindRow {
        kind: SourceKind::SecretProviderClass,
        name: "secretproviderclass",
        aliases: &["secretproviderclasses", "spc"],
        gettable: false,
        presence_rolls: false,
        api_version: "secrets-store.csi.x-k8s.io/v1",
        object_kind: "SecretProviderClass",
    },
];

impl SourceKind {
    /// Every kind, in order.
    pub const ALL: [SourceKind; 3] = [
        SourceKind::ConfigMap,
        SourceKind::Secret,
        SourceKind::SecretProviderClass,
    ];
    /// Its position in [`SOURCE_KINDS`] (and in per-kind arrays).
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn row(self) -> &'static SourceKindRow {
        &SOURCE_KINDS[self.index()]
    }
    /// `configmap` / `secret` / `secretproviderclass`: the prefix of a record key.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }
    pub fn parse(s: &str) -> Option<SourceKind> {
        let s = s.to_ascii_lowercase();
        SOURCE_KINDS
            .iter()
            .find(|r| r.name == s || r.aliases.contains(&s.as_str()))
            .map(|r| r.kind)
    }
}

/// A source by kind and name, in the workload's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub name: String,
}

impl SourceRef {
    pub fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        SourceRef {
            kind,
            name: name.into(),
        }
    }
    pub fn configmap(name: impl Into<String>) -> Self {
        Self::new(SourceKind::ConfigMap, name)
    }
    pub fn secret(name: impl Into<String>) -> Self {
        Self::new(SourceKind::Secret, name)
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Which keys of a source a workload depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// the whole source (envFrom, a volume without `items`)
    All,
    /// only these keys (keyRefs, `items`)
    Some(BTreeSet<String>),
}

impl Keys {
    fn merge(&mut self, other: Keys) {
        match (&mut *self, other) {
            (Keys::All, _) => {}
            (_, Keys::All) => *self = Keys::All,
            (Keys::Some(a), Keys::Some(b)) => a.extend(b),
        }
    }
    fn from_items(items: Option<&Vec<ItemRef>>) -> Keys {
        match items {
            Some(items) if !items.is_empty() => {
                Keys::Some(items.iter().map(|i| i.key.clone()).collect())
            }
            _ => Keys::All,
        }
    }
    fn one(key: &str) -> Keys {
        Keys::Some(BTreeSet::from([key.to_string()]))
    }
}

/// One source a pod spec uses: the union of all places that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub source: SourceRef,
    pub keys: Keys,
    /// true only when every use of it is optional
    pub optional: bool,
}

#[derive(Default)]
struct Collector {
    refs: BTreeMap<SourceRef, (Keys, bool)>,
}

impl Collector {
    fn add(&mut self, kind: SourceKind, name: Option<&str>, keys: Keys, optional: Option<bool>) {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return;
        };
        let optional = optional.unwrap_or(false);
        self.refs
            .entry(SourceRef::new(kind, name))
            .and_modify(|(k, o)| {
                k.merge(keys.clone());
                *o = *o && optional;
            })
            .or_insert((keys, optional));
    }

    fn items(
        &mut self,
        kind: SourceKind,
        name: &Option<String>,
        items: &Option<Vec<ItemRef>>,
        optional: Option<bool>,
    ) {
        let keys = Keys::from_items(items.as_ref());
        self.add(kind, name.as_deref(), keys, optional);
    }

    /// A container's environment: single keys and whole sources.
    fn container(&mut self, container: &ContainerRefs) {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                let keys = Keys::one(&r.key);
                self.add(SourceKind::ConfigMap, r.name.as_deref(), keys, r.optional);
            }
            if let Some(r) = &from.secret_key_ref {
                let keys = Keys::one(&r.key);
                self.add(SourceKind::Secret, r.name.as_deref(), keys, r.optional);
            }
        }
        for env_from in container.env_from.iter().flatten() {
            if let Some(r) = &env_from.config_map_ref {
                let name = r.name.as_deref();
                self.add(SourceKind::ConfigMap, name, Keys::All, r.optional);
            }
            if let Some(r) = &env_from.secret_ref {
                self.add(SourceKind::Secret, r.name.as_deref(), Keys::All, r.optional);
            }
        }
    }

    /// A volume: ConfigMaps and Secrets (projected too) by their items, a CSI volume's class.
    fn volume(&mut self, volume: &VolumeRefs) {
        if let Some(cm) = &volume.config_map {
            self.items(SourceKind::ConfigMap, &cm.name, &cm.items, cm.optional);
        }
        if let Some(s) = &volume.secret {
            self.items(SourceKind::Secret, &s.secret_name, &s.items, s.optional);
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(cm) = &source.config_map {
                self.items(SourceKind::ConfigMap, &cm.name, &cm.items, cm.optional);
            }
            if let Some(s) = &source.secret {
                self.items(SourceKind::Secret, &s.name, &s.items, s.optional);
            }
        }
        if let Some(csi) = &volume.csi {
            let class = csi
                .volume_attributes
                .as_ref()
                .and_then(|a| a.get(SECRET_PROVIDER_CLASS_ATTRIBUTE))
                // a free-form string in the API: only an object's name can be a class
                .filter(|n| is_object_name(n));
            self.items(
                SourceKind::SecretProviderClass,
                &class.cloned(),
                &None,
                None,
            );
        }
    }
}

/// A Kubernetes object name (a DNS subdomain: at most 253 bytes of `a-z`, `0-9`, `-`, `.`).
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Every ConfigMap, Secret and SecretProviderClass `spec` uses, in containers and init containers (ephemeral
/// containers are ignored), sorted by kind and name, one entry per source.
pub fn references(spec: &PodRefs) -> Vec<Reference> {
    let mut c = Collector::default();
    let containers = spec
        .containers
        .iter()
        .flatten()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        c.container(container);
    }
    for volume in spec.volumes.iter().flatten() {
        c.volume(volume);
    }
    c.refs
        .into_iter()
        .map(|(source, (keys, optional))| Reference {
            source,
            keys,
            optional,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use serde_json::json;

    /// Both ways in: straight from JSON (the webhook, the watcher) and through a typed
    /// PodSpec; they must agree.
    fn spec(v: serde_json::Value) -> PodRefs {
        let lean: PodRefs = serde_json::from_value(v.clone()).expect("valid pod refs");
        let typed: PodSpec = serde_json::from_value(v.clone()).expect("valid PodSpec");
        assert_eq!(PodRefs::from(&typed), lean, "typed and lean reads of {v}");
        let from_text: PodRefs = serde_json::from_str(&v.to_string()).expect("valid text");
        assert_eq!(from_text, lean);
        lean
    }

    fn keys(ks: &[&str]) -> Keys {
        Keys::Some(ks.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn references_table() {
        struct Case {
            name: &'static str,
            spec: serde_json::Value,
            want: Vec<Reference>,
        }
        let r = |source: SourceRef, keys: Keys, optional: bool| Reference {
            source,
            keys,
            optional,
        };
        let cases = vec![
            Case {
                name: "env_key_ref_uses_one_key",
                spec: json!({"containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw", "optional": true}}}
                ]}]}),
                want: vec![
                    r(SourceRef::configmap("cm"), keys(&["a"]), false),
                    r(SourceRef::secret("s"), keys(&["pw"]), true),
                ],
            },
            Case {
                name: "two_key_refs_to_one_source_merge_keys",
                spec: json!({"containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b"}}}
                ]}]}),
                want: vec![r(SourceRef::configmap("cm"), keys(&["a", "b"]), false)],
            },
            Case {
                name: "env_from_uses_all_keys",
                spec: json!({"containers": [{"name": "c", "envFrom": [
                    {"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}}
                ]}]}),
                want: vec![
                    r(SourceRef::configmap("cm"), Keys::All, false),
                    r(SourceRef::secret("s"), Keys::All, false),
                ],
            },
            Case {
                name: "key_ref_and_env_from_of_one_source_is_all_keys",
                spec: json!({"containers": [{"name": "c",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}}],
                    "envFrom": [{"configMapRef": {"name": "cm", "optional": true}}]}]}),
                want: vec![r(SourceRef::configmap("cm"), Keys::All, false)],
            },
            Case {
                name: "volume_items_use_listed_keys",
                spec: json!({"containers": [{"name": "c"}], "volumes": [
                    {"name": "v", "configMap": {"name": "cm", "items": [{"key": "k1", "path": "p"}]}},
                    {"name": "w", "secret": {"secretName": "s", "optional": true}}
                ]}),
                want: vec![
                    r(SourceRef::configmap("cm"), keys(&["k1"]), false),
                    r(SourceRef::secret("s"), Keys::All, true),
                ],
            },
            Case {
                name: "projected_volume_sources",
                spec: json!({"containers": [{"name": "c"}], "volumes": [
                    {"name": "p", "projected": {"sources": [
                        {"configMap": {"name": "pcm"}},
                        {"secret": {"name": "ps", "items": [{"key": "tls.crt", "path": "c"}]}},
                        {"serviceAccountToken": {"path": "token"}}
                    ]}}
                ]}),
                want: vec![
                    r(SourceRef::configmap("pcm"), Keys::All, false),
                    r(SourceRef::secret("ps"), keys(&["tls.crt"]), false),
                ],
            },
            Case {
                name: "init_containers_count",
                spec: json!({"containers": [{"name": "c"}], "initContainers": [{"name": "i",
                    "envFrom": [{"secretRef": {"name": "init-s"}}]}]}),
                want: vec![r(SourceRef::secret("init-s"), Keys::All, false)],
            },
            Case {
                name: "ephemeral_containers_and_pull_secrets_do_not_count",
                spec: json!({"containers": [{"name": "c"}],
                    "imagePullSecrets": [{"name": "pull"}],
                    "ephemeralContainers": [{"name": "e", "envFrom": [{"configMapRef": {"name": "eph"}}]}]}),
                want: vec![],
            },
            Case {
                name: "optional_only_when_every_use_is_optional",
                spec: json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm", "optional": true}}]}],
                    "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}),
                want: vec![r(SourceRef::configmap("cm"), Keys::All, false)],
            },
            Case {
                name: "optional_missing_source_is_still_a_reference",
                spec: json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "maybe", "optional": true}}]}]}),
                want: vec![r(SourceRef::configmap("maybe"), Keys::All, true)],
            },
            Case {
                name: "csi_volumes_name_their_secret_provider_class",
                spec: json!({"containers": [{"name": "c"}], "volumes": [
                    {"name": "a", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                        "volumeAttributes": {"secretProviderClass": "vault-db"}}},
                    {"name": "b", "csi": {"driver": "other.csi.example", "volumeAttributes": {"size": "1"}}},
                    {"name": "c", "csi": {"driver": "secrets-store.csi.k8s.io",
                        "volumeAttributes": {"secretProviderClass": "Not A Name"}}}
                ]}),
                want: vec![r(
                    SourceRef::new(SourceKind::SecretProviderClass, "vault-db"),
                    Keys::All,
                    false,
                )],
            },
        ];
        for case in cases {
            assert_eq!(
                references(&spec(case.spec)),
                case.want,
                "case {}",
                case.name
            );
        }
    }

    #[test]
    fn kinds_display_and_parse_by_their_rows() {
        assert_eq!(SourceRef::secret("db-pass").to_string(), "secret/db-pass");
        for row in &SOURCE_KINDS {
            assert_eq!(row.kind.row().name, row.name, "rows in SourceKind order");
            for alias in row.aliases {
                assert_eq!(SourceKind::parse(alias), Some(row.kind));
            }
        }
        assert_eq!(SourceKind::ALL.map(|k| k.index()), [0, 1, 2]);
    }
}
