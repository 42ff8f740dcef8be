//! The lean reader of a pod spec: only the fields that name sources, every other field
//! skipped by serde without being built.

use std::collections::BTreeMap;

#[cfg(test)]
use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;

/// The fields of a PodSpec that name ConfigMaps and Secrets; all others are skipped when
/// read. Field names and nesting as in the Kubernetes API (`null` reads as absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRefs {
    #[serde(default)]
    pub containers: Option<Vec<ContainerRefs>>,
    #[serde(default)]
    pub init_containers: Option<Vec<ContainerRefs>>,
    #[serde(default)]
    pub volumes: Option<Vec<VolumeRefs>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRefs {
    #[serde(default)]
    pub env: Option<Vec<EnvRefs>>,
    #[serde(default)]
    pub env_from: Option<Vec<EnvFromRefs>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvRefs {
    #[serde(default)]
    pub value_from: Option<ValueFromRefs>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueFromRefs {
    #[serde(default)]
    pub config_map_key_ref: Option<KeyRef>,
    #[serde(default)]
    pub secret_key_ref: Option<KeyRef>,
}

/// `configMapKeyRef` / `secretKeyRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KeyRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromRefs {
    #[serde(default)]
    pub config_map_ref: Option<NameRef>,
    #[serde(default)]
    pub secret_ref: Option<NameRef>,
}

/// `configMapRef` / `secretRef` of envFrom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NameRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRefs {
    #[serde(default)]
    pub config_map: Option<ItemsRef>,
    #[serde(default)]
    pub secret: Option<SecretVolumeRef>,
    #[serde(default)]
    pub projected: Option<ProjectedRefs>,
    #[serde(default)]
    pub csi: Option<CsiRefs>,
}

/// A `csi` volume: the Secrets Store CSI Driver names its class in `volumeAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsiRefs {
    #[serde(default)]
    pub volume_attributes: Option<BTreeMap<String, String>>,
}

/// The `volumeAttributes` key of a CSI volume that names its SecretProviderClass (read on
/// any driver, as Reloader does).
pub const SECRET_PROVIDER_CLASS_ATTRIBUTE: &str = "secretProviderClass";

/// A `configMap` volume, or a projected `configMap` / `secret` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ItemsRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub items: Option<Vec<ItemRef>>,
    #[serde(default)]
    pub optional: Option<bool>,
}

/// A `secret` volume (its name field is `secretName`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeRef {
    #[serde(default)]
    pub secret_name: Option<String>,
    #[serde(default)]
    pub items: Option<Vec<ItemRef>>,
    #[serde(default)]
    pub optional: Option<bool>,
}

/// One `items[]` entry: only its key matters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ItemRef {
    #[serde(default)]
    pub key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ProjectedRefs {
    #[serde(default)]
    pub sources: Option<Vec<ProjectionRefs>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionRefs {
    #[serde(default)]
    pub config_map: Option<ItemsRef>,
    #[serde(default)]
    pub secret: Option<ItemsRef>,
}

#[cfg(test)]
impl From<&PodSpec> for PodRefs {
    /// The same fields out of a typed PodSpec.
    fn from(spec: &PodSpec) -> PodRefs {
        PodRefs {
            containers: Some(spec.containers.iter().map(typed::container).collect()),
            init_containers: spec
                .init_containers
                .as_ref()
                .map(|v| v.iter().map(typed::container).collect()),
            volumes: spec
                .volumes
                .as_ref()
                .map(|volumes| volumes.iter().map(typed::volume).collect()),
        }
    }
}

/// The references out of typed pod spec parts, for tests that build a `PodSpec`.
#[cfg(test)]
mod typed {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, KeyToPath, Volume};

    fn items(items: &Option<Vec<KeyToPath>>) -> Option<Vec<ItemRef>> {
        items
            .as_ref()
            .map(|v| v.iter().map(|i| ItemRef { key: i.key.clone() }).collect())
    }

    pub(super) fn container(c: &Container) -> ContainerRefs {
        ContainerRefs {
            env: c.env.as_ref().map(|env| {
                env.iter()
                    .map(|e| EnvRefs {
                        value_from: e.value_from.as_ref().map(|f| ValueFromRefs {
                            config_map_key_ref: f.config_map_key_ref.as_ref().map(|r| KeyRef {
                                name: Some(r.name.clone()),
                                key: r.key.clone(),
                                optional: r.optional,
                            }),
                            secret_key_ref: f.secret_key_ref.as_ref().map(|r| KeyRef {
                                name: Some(r.name.clone()),
                                key: r.key.clone(),
                                optional: r.optional,
                            }),
                        }),
                    })
                    .collect()
            }),
            env_from: c.env_from.as_ref().map(|env_from| {
                env_from
                    .iter()
                    .map(|e| EnvFromRefs {
                        config_map_ref: e.config_map_ref.as_ref().map(|r| NameRef {
                            name: Some(r.name.clone()),
                            optional: r.optional,
                        }),
                        secret_ref: e.secret_ref.as_ref().map(|r| NameRef {
                            name: Some(r.name.clone()),
                            optional: r.optional,
                        }),
                    })
                    .collect()
            }),
        }
    }

    pub(super) fn volume(v: &Volume) -> VolumeRefs {
        VolumeRefs {
            config_map: v.config_map.as_ref().map(|c| ItemsRef {
                name: Some(c.name.clone()),
                items: items(&c.items),
                optional: c.optional,
            }),
            secret: v.secret.as_ref().map(|s| SecretVolumeRef {
                secret_name: s.secret_name.clone(),
                items: items(&s.items),
                optional: s.optional,
            }),
            csi: v.csi.as_ref().map(|c| CsiRefs {
                volume_attributes: c.volume_attributes.clone(),
            }),
            projected: v.projected.as_ref().map(|p| ProjectedRefs {
                sources: p.sources.as_ref().map(|sources| {
                    sources
                        .iter()
                        .map(|s| ProjectionRefs {
                            config_map: s.config_map.as_ref().map(|c| ItemsRef {
                                name: Some(c.name.clone()),
                                items: items(&c.items),
                                optional: c.optional,
                            }),
                            secret: s.secret.as_ref().map(|c| ItemsRef {
                                name: Some(c.name.clone()),
                                items: items(&c.items),
                                optional: c.optional,
                            }),
                        })
                        .collect()
                }),
            }),
        }
    }
}
