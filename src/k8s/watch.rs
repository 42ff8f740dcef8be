//! The one watch driver. Every watch of hashroll (ConfigMaps, Secrets, each workload kind,
//! namespaces) is a [`Handler`] run by [`run`]: kube-runtime's `watcher` speaks the
//! list/watch protocol (paged lists, bookmarks, relists after a 410) and its default backoff
//! (exponential with jitter, client-go's parameters, reset by the next event) spaces the
//! retries; this adds the handler calls and counts restarts. Handlers are synchronous state
//! machines, so they are unit-tested without a cluster.

use std::fmt::Debug;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

/// Whether the apiserver streams a watch's initial list (`sendInitialEvents`, the WatchList
/// feature: on by default since Kubernetes 1.34). Found once at start by [`probe_streaming`];
/// a property of the apiserver, so one flag for the process.
static STREAMING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the apiserver once whether it streams initial lists: a watch of ConfigMaps with
/// `sendInitialEvents` (in `ns`, or the cluster), for a name nothing has, so it carries
/// nothing. Refused (the WatchList feature off, an older apiserver) or failed: lists stay
/// paged. Said in the log either way.
pub(crate) async fn probe_streaming(client: &kube::Client, ns: Option<&str>) -> bool {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: Api<ConfigMap> = crate::k8s::scope::typed(client.clone(), ns);
    let wp = kube::api::WatchParams::streaming_lists()
        .fields("metadata.name=hashroll-probe-none")
        .timeout(1);
    let on = match api.watch(&wp, "").await {
        Ok(events) => {
            // the first event of a stream that works: the bookmark ending the (empty) list;
            // an apiserver that ignored the ask sends nothing before the timeout
            let mut events = events.boxed();
            let first = tokio::time::timeout(std::time::Duration::from_secs(3), events.next())
                .await
                .ok()
                .flatten();
            matches!(first, Some(Ok(kube::api::WatchEvent::Bookmark(_))))
        }
        Err(e) => {
            tracing::debug!(error = %e, "the apiserver refuses sendInitialEvents");
            false
        }
    };
    if on {
        tracing::info!("initial lists are streamed (sendInitialEvents)");
    } else {
        tracing::info!("initial lists are paged (the apiserver does not stream them)");
    }
    STREAMING.store(on, std::sync::atomic::Ordering::Relaxed);
    on
}

/// A watch's configuration: its initial list streamed where the apiserver can (one object
/// at a time, from the watch cache: fewer requests and no page held), else paged by `page`
/// from the watch cache.
pub(crate) fn initial_list(page: u32) -> watcher::Config {
    if STREAMING.load(std::sync::atomic::Ordering::Relaxed) {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default().page_size(page).any_semantic()
    }
}

/// What one watch does with what it sees.
pub(crate) trait Handler<K> {
    /// A (re)list starts: whatever it does not see again is gone at [`Handler::relist_done`].
    fn relist_start(&mut self);
    /// An object was listed, added or modified.
    fn apply(&mut self, obj: K);
    /// An object was deleted.
    fn delete(&mut self, obj: K);
    /// A (re)list ended.
    fn relist_done(&mut self);
    /// The watch failed and will be restarted (after a backoff).
    fn restarted(&mut self) {}
}

/// Where a watch counts its starts and restarts: the metrics, which sit above the watches
/// (`services::metrics`), so a watch is handed this and not the whole state.
pub(crate) trait WatchCounts: Send + Sync {
    /// A watch of `resource` starts (its restart count shows, at zero).
    fn started(&self, resource: &'static str);
    /// A watch of `resource` failed and will be restarted.
    fn restarted(&self, resource: &'static str);
}

/// Runs `handler` on the watch of `api` until the stream ends (it does not, in practice).
/// `what` names the watch in logs.
pub(crate) async fn run<K, H>(api: Api<K>, cfg: watcher::Config, what: &str, handler: &mut H)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    H: Handler<K>,
{
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => handler.relist_start(),
            Ok(Event::InitApply(obj) | Event::Apply(obj)) => handler.apply(obj),
            Ok(Event::InitDone) => handler.relist_done(),
            Ok(Event::Delete(obj)) => handler.delete(obj),
            Err(e) => {
                handler.restarted();
                tracing::warn!(watch = what, error = %e, "watch failed; retrying after a backoff");
            }
        }
    }
}
