//! From a workload kind to its API: the one place the shell turns a row of the kind table
//! ([`crate::core::kind::KINDS`]) into something to call. Workloads are read and written
//! as dynamic objects, so no code path matches on the kind to pick a Rust type.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PatchParams, PostParams};
use serde_json::Value;

use crate::core::kind::WorkloadKind;
use crate::core::workload::{Workload, WorkloadError};

/// The field manager every write of hashroll names, so `managedFields` (and a server-side
/// applier such as Argo CD or Flux) show which fields hashroll owns.
pub(crate) const FIELD_MANAGER: &str = "hashroll";

/// The parameters of a patch by hashroll.
pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// The parameters of a create or replace by hashroll.
pub(crate) fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// The API resource of `kind`.
pub(crate) fn resource(kind: WorkloadKind) -> ApiResource {
    let r = kind.row();
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: if r.group.is_empty() {
            r.version.to_string()
        } else {
            format!("{}/{}", r.group, r.version)
        },
        kind: r.name.to_string(),
        plural: r.plural.to_string(),
    }
}

/// Whether the API serves `resource` (a list of at most one object answers; 404: not
/// installed; any other error is logged, naming it `what`, and counts as not yet). The
/// optional kinds (Argo Rollouts, the Secrets Store CSI Driver's) are looked for with it.
/// `ns`: where to list (`--namespaced` has no right to list cluster-wide).
pub(crate) async fn served(
    client: &Client,
    resource: &ApiResource,
    what: &str,
    ns: Option<&str>,
) -> bool {
    let api = super::scope::dynamic(client.clone(), ns, resource);
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(a)) if a.code == 404 => false,
        Err(e) => {
            tracing::warn!(kind = what, error = %e, "cannot tell whether the kind is installed");
            false
        }
    }
}

/// Every object of `kind` in `ns`, or cluster-wide for `None`.
pub(crate) fn watched(client: Client, ns: Option<&str>, kind: WorkloadKind) -> Api<DynamicObject> {
    super::scope::dynamic(client, ns, &resource(kind))
}

/// The objects of `kind` in `namespace`.
pub(crate) fn namespaced(
    client: Client,
    namespace: &str,
    kind: WorkloadKind,
) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &resource(kind))
}

/// What the core reads of a workload given as a dynamic object, and whether it is paused.
pub(crate) fn workload(
    kind: WorkloadKind,
    obj: &DynamicObject,
) -> Result<(Workload, bool), WorkloadError> {
    let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
    // the object's own fields (spec, ...) are `data`; its metadata is typed already
    let mut w = Workload::from_value(kind, ns, &obj.data)?;
    w.name = obj.metadata.name.clone().unwrap_or_default();
    w.shape.metadata = true;
    w.shape.annotations = obj.metadata.annotations.is_some();
    w.annotations = obj.metadata.annotations.clone().unwrap_or_default();
    w.controlled = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    let paused = obj
        .data
        .get("spec")
        .and_then(|s| s.get("paused"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((w, paused))
}

/// The whole object as JSON (what `explain` reads).
pub(crate) fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dynamic_deployment_reads_like_its_json() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "annotations": {"a": "b"}},
            "spec": {"paused": true, "template": {"metadata": {"annotations": {"t": "u"}},
                "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}}}});
        let obj: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        let (w, paused) = workload(WorkloadKind::Deployment, &obj).unwrap();
        let want = Workload::from_value(WorkloadKind::Deployment, "ns", &v).unwrap();
        assert_eq!(w, want);
        assert!(paused);
        assert_eq!(resource(WorkloadKind::StatefulSet).api_version, "apps/v1");
        assert_eq!(resource(WorkloadKind::DaemonSet).plural, "daemonsets");
    }
}
