//! Waiting for a custom resource installed after start ([`until_served`]): a watch of its
//! CustomResourceDefinition, by name, wakes the wait the moment the CRD is created or
//! becomes Established, and a list of the resource itself (`api::served`) says whether it
//! is served yet. A kind installed after hashroll (Argo Rollouts, a `--workload-kind`
//! kind, the CSI driver's statuses; a GitOps sync that installs an operator and hashroll
//! together) is watched within a second or two instead of at the next poll.
//!
//! The watch names one CRD (`fieldSelector=metadata.name=...`), so a ClusterRole can grant
//! it with `resourceNames` (the apiserver authorizes a list or watch with that selector as
//! a request for the named object). A slow poll stays as the backstop: a ClusterRole
//! without the right (an older install, a kind whose rules are the user's) makes the watch
//! fail with 403; then the CRD is looked for every [`BACKSTOP`], as before the watch, and
//! said once in the log.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

/// How often the resource is looked for without a word from the CRD watch.
pub(crate) const BACKSTOP: Duration = Duration::from_secs(30);

/// After the CRD is Established, how long its resource may take to be served (the
/// apiserver's handler and discovery can lag the condition by a moment), and how often it
/// is looked for meanwhile.
const SETTLING: Duration = Duration::from_secs(10);
const SETTLING_STEP: Duration = Duration::from_millis(200);

/// The name of `resource`'s CRD: `<plural>.<group>`.
pub(crate) fn crd_name(resource: &ApiResource) -> String {
    format!("{}.{}", resource.plural, resource.group)
}

/// Whether the CRD says it is served: condition Established is True.
fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Whether a failed watch was refused by RBAC.
fn forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(a))
        | watcher::Error::WatchStartFailed(kube::Error::Api(a))
        | watcher::Error::WatchFailed(kube::Error::Api(a)) => a.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// Returns once the API serves `resource` (`what` names it in logs): at once when it is
/// served now; else when its CRD, watched by name, is Established and the resource answers;
/// or at a [`BACKSTOP`] poll that finds it. `ns`: where to look for the resource; with one
/// (`--namespaced`, which may not read CRDs) the poll alone looks.
pub(crate) async fn until_served(
    client: &Client,
    resource: &ApiResource,
    what: &str,
    ns: Option<&str>,
) {
    let served = || super::api::served(client, resource, what, ns);
    if served().await {
        return;
    }
    let name = crd_name(resource);
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut crds = ns
        .is_none()
        .then(|| watcher::watcher(api, cfg).default_backoff().boxed());
    let mut backstop = tokio::time::interval(BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the first tick is now: served was just asked
    backstop.tick().await;
    loop {
        let sign = tokio::select! {
            ev = async {
                match crds.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => ev,
            _ = backstop.tick() => {
                if served().await {
                    return;
                }
                continue;
            }
        };
        match sign {
            Some(Ok(Event::InitApply(crd) | Event::Apply(crd))) if established(&crd) => {
                tracing::info!(kind = what, crd = %name, "CRD established");
                // a bounded number of looks, SETTLING_STEP apart: about SETTLING in all
                let tries = SETTLING.as_millis() / SETTLING_STEP.as_millis();
                for _ in 0..tries {
                    if served().await {
                        return;
                    }
                    tokio::time::sleep(SETTLING_STEP).await;
                }
                tracing::warn!(kind = what, crd = %name, "CRD established but its kind not served yet; waiting for its next change");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) if forbidden(&e) => {
                tracing::info!(kind = what, crd = %name, every = ?BACKSTOP, "no right to watch the CRD; looking for the kind at intervals instead");
                crds = None;
            }
            Some(Err(e)) => {
                tracing::debug!(kind = what, crd = %name, error = %e, "CRD watch failed; retrying after a backoff");
            }
            None => crds = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    fn crd(conditions: &[(&str, &str)]) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: Some(CustomResourceDefinitionStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| CustomResourceDefinitionCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_crd_is_established_only_by_its_condition() {
        assert!(established(&crd(&[
            ("NamesAccepted", "True"),
            ("Established", "True")
        ])));
        assert!(!established(&crd(&[("NamesAccepted", "True")])));
        assert!(!established(&crd(&[("Established", "False")])));
        assert!(!established(&CustomResourceDefinition::default()));
    }

    #[test]
    fn the_crd_of_a_resource_is_named_plural_dot_group() {
        let r = ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        };
        assert_eq!(crd_name(&r), "rollouts.argoproj.io");
    }

    #[test]
    fn only_a_403_stops_the_crd_watch() {
        let api = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert!(forbidden(&watcher::Error::InitialListFailed(api(403))));
        assert!(forbidden(&watcher::Error::WatchStartFailed(api(403))));
        assert!(!forbidden(&watcher::Error::InitialListFailed(api(500))));
        assert!(!forbidden(&watcher::Error::NoResourceVersion));
    }
}
