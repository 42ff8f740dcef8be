//! `/metrics`, `/healthz` and `/readyz` on plain HTTP (the kubelet's probes and Prometheus).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::state::State as AppState;

/// `/metrics`, `/healthz`, `/readyz` on plain HTTP.
pub(crate) async fn serve(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<AppState>>| async move {
                s.metrics.sources_cached.set(s.cache.len() as i64);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
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
