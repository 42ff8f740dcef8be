//! `/metrics`, `/healthz` and `/readyz` on plain HTTP (the kubelet's probes and Prometheus),
//! and the supervision of the background tasks `/healthz` reports on: a task the process
//! needs that ends or panics makes `/healthz` fail, so the kubelet restarts the pod, instead
//! of a process that says ok while doing nothing. Readiness keeps meaning "caches synced".
//!
//! The port answers anyone who reaches it, so it is bounded as the webhook's is: at most
//! [`MAX_CONNECTIONS`] at once, a connection that sends nothing or no whole request head
//! within [`HEADER_TIMEOUT`] is closed, and none lives past [`CONNECTION_LIFETIME`]
//! (a scraper reconnects). hyper's server with those settings; axum's `serve` has none.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::core::sync::Recover;
use crate::services::state::State as AppState;

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
            gone.lock().recover().push(name);
        });
    }

    /// The tasks that are gone.
    pub(crate) fn gone(&self) -> Vec<&'static str> {
        self.gone.lock().recover().clone()
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
    serve_bounded(listener, app).await
}

/// At most this many connections at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 128;
/// A connection must send its first byte, and then each request head, within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// No connection is kept longer than this.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

async fn serve_bounded(listener: TcpListener, app: Router) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // a connection that never starts a request is closed like a slow one
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                return;
            }
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn fetch(port: u16) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn silent_and_slow_connections_cannot_take_the_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().route("/ok", get(|| async { "ok" }));
        tokio::spawn(serve_bounded(listener, app));
        // more silent connections than the cap, and some that stop mid-head
        let mut held = Vec::new();
        for i in 0..(MAX_CONNECTIONS + 40) {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            if i % 3 == 0 {
                s.write_all(b"GET /ok HTTP/1.1\r\nHo").await.unwrap();
            }
            held.push(s);
        }
        // a well-formed request is answered once the silent ones time out, though every
        // one of them is still open on our side
        let answered = tokio::time::timeout(HEADER_TIMEOUT * 4, async {
            loop {
                if let Ok(Ok(a)) = tokio::time::timeout(HEADER_TIMEOUT * 2, fetch(port)).await {
                    return a;
                }
            }
        })
        .await
        .expect("answered within the header timeout");
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        // the server closed the silent ones
        let mut closed = 0;
        for s in &mut held {
            // closed: an end of stream (after a 408 for a started head) or a reset
            let mut b = Vec::new();
            if tokio::time::timeout(Duration::from_millis(200), s.read_to_end(&mut b))
                .await
                .is_ok()
            {
                closed += 1;
            }
        }
        assert!(
            closed >= MAX_CONNECTIONS,
            "{closed} of {} closed",
            held.len()
        );
    }

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
