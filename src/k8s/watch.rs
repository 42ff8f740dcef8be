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
