//! The one-shot reads the commands (`explain`, `migrate`) make of a cluster: a namespace's
//! sources as a [`SourceCache`] snapshot, a kind's workload objects. The running hashroll
//! watches instead; these list once.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::cache::SourceCache;
use crate::cache::filter::NamespaceFilter;
use crate::core::kind::WorkloadKind;
use crate::core::policy::PolicyConfig;
use crate::core::refs::SourceRef;
use crate::core::selector::LabelSelector;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot reach the cluster: {0}")]
    Cluster(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Api(String),
}

fn api_err(what: &str, e: kube::Error) -> ReadError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ReadError::NotFound(what.to_string()),
        kube::Error::Api(s) => ReadError::Api(format!("{what}: {}", s.message)),
        other => ReadError::Cluster(other.to_string()),
    }
}

/// Everything explain needs from the cluster for one namespace.
pub(crate) struct Snapshot {
    pub(crate) cache: SourceCache,
}

/// The namespace's sources (never their data: the cache keeps digests).
pub(crate) async fn snapshot(
    client: &Client,
    ns: &str,
    cfg: &PolicyConfig,
) -> Result<Snapshot, ReadError> {
    let cache = SourceCache::new(
        cfg.names.clone(),
        LabelSelector::default(),
        NamespaceFilter::default(),
    );
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_err("configmaps", e))?;
    for cm in cms.items {
        let e = cache.configmap_entry(&cm);
        cache.upsert(ns, &SourceRef::configmap(cm.name_any()), e);
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_err("secrets", e))?;
    for s in secrets.items {
        let e = cache.secret_entry(&s);
        cache.upsert(ns, &SourceRef::secret(s.name_any()), e);
    }
    if cfg.csi_integration {
        snapshot_classes(client, ns, &cache).await?;
    }
    Ok(Snapshot { cache })
}

/// The namespace's SecretProviderClasses, as the running hashroll's cache holds them (none
/// when the CSI driver's CRDs are not installed).
async fn snapshot_classes(client: &Client, ns: &str, cache: &SourceCache) -> Result<(), ReadError> {
    use crate::cache::csi;
    let list = |r: kube::api::ApiResource| async move {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &r);
        match api.list(&ListParams::default()).await {
            Ok(l) => Ok(l.items),
            Err(kube::Error::Api(a)) if a.code == 404 => Ok(Vec::new()),
            Err(e) => Err(api_err(&r.plural, e)),
        }
    };
    let mut classes = csi::Classes::default();
    for s in list(csi::status_resource()).await? {
        let name = s.name_any();
        classes.apply(ns, &name, csi::read_status(&s).ok().flatten());
    }
    for e in classes.relist_done() {
        cache.apply_class(e);
    }
    for c in list(csi::class_resource()).await? {
        cache.set_class_object(ns, &c.name_any(), Some(&c.metadata));
    }
    Ok(())
}

/// The objects of `kind` in `ns` (one when `name` is given), as JSON values.
pub(crate) async fn workload_objects(
    client: &Client,
    ns: &str,
    kind: WorkloadKind,
    name: Option<&str>,
) -> Result<Vec<Value>, ReadError> {
    let api = crate::k8s::api::namespaced(client.clone(), ns, kind);
    let what = kind.as_str().to_lowercase();
    let objs = match name {
        Some(n) => vec![
            api.get(n)
                .await
                .map_err(|e| api_err(&format!("{what}/{n}"), e))?,
        ],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(|e| api_err(&what, e))?
                .items
        }
    };
    Ok(objs.iter().map(crate::k8s::api::to_value).collect())
}
