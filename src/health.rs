//! `/metrics`, `/healthz` and `/readyz` on plain HTTP (the kubelet's probes and Prometheus),
//! and the supervision of the background tasks `/healthz` reports on: a task the process
//! needs that ends or panics makes `/healthz` fail, so the kubelet restarts the pod, instead
//! of a process that says ok while doing nothing. Readiness keeps meaning "caches synced".

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::state::State as AppState;

/// The tasks the process needs, and the ones that are gone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness {
    gone: Arc<Mutex<Vec<&'static str>>>,
}

impl Liveness {
    /// Spawns a task that should run as long as the process; if it ends or panics, it is
    /// logged and `/healthz` fails from then on.
    pub(crate) fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let gone = self.gone.clone();
        tokio::spawn(async move {
            match handle.await {
                Ok(()) => tracing::error!(task = name, "a task hashroll needs ended"),
                Err(e) => tracing::error!(task = name, error = %e, "a task hashroll needs failed"),
            }
            gone.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(name);
        });
    }

    /// The tasks that are gone.
    pub(crate) fn gone(&self) -> Vec<&'static str> {
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `/metrics`, `/healthz`, `/readyz` on plain HTTP.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    live: Liveness,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<AppState>>| async move {
                s.metrics.sources_cached.set(s.cache.len() as i64);
                s.metrics.leader.set(i64::from(s.writer.is_leader()));
                s.metrics.caches_synced.set(i64::from(s.ready()));
                s.metrics.refresh_process();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
            }),
        )
        .route(
            "/healthz",
            get(move || async move {
                let gone = live.gone();
                if gone.is_empty() {
                    (StatusCode::OK, "ok\n".to_string())
                } else {
                    let text = format!("stopped: {}\n", gone.join(", "));
                    (StatusCode::SERVICE_UNAVAILABLE, text)
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(s): State<Arc<AppState>>| async move {
                if s.ready() {
                    (StatusCode::OK, "ok\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "waiting for the source cache to sync\n",
                    )
                }
            }),
        )
        .with_state(state);
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_ends_is_reported_gone() {
        let live = Liveness::default();
        live.spawn("forever", std::future::pending());
        live.spawn("panics", async { panic!("boom") });
        live.spawn("ends", async {});
        for _ in 0..100 {
            if live.gone().len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut gone = live.gone();
        gone.sort();
        assert_eq!(gone, ["ends", "panics"]);
    }
}
