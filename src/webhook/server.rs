//! The HTTPS server of the webhook (axum over rustls): routes, TLS accept, connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admit;
use crate::state::State as AppState;

async fn mutate(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let t0 = Instant::now();
    let out = match admit::handle(&state, &body).await {
        Ok((review, outcome)) => {
            state.metrics.webhook_result(outcome.label());
            axum::Json(review).into_response()
        }
        Err(e) => {
            state.metrics.webhook_result("bad_request");
            tracing::warn!(error = %e, "bad admission request");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    };
    state
        .metrics
        .webhook_duration
        .observe(t0.elapsed().as_secs_f64());
    out
}

/// A body refused for its size was not read to its end: the connection cannot carry another
/// request, so the answer says so (a client would otherwise reuse it and fail).
async fn close_after_refusal(mut resp: Response) -> Response {
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// The webhook's routes.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(close_after_refusal))
        .with_state(state)
}

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 48\r\n\r\nthis port speaks HTTPS: use https:// to call it\n";

/// Serves `router` over TLS on `listener` forever. Each connection runs in its own task, so
/// a slow or broken client holds only itself up.
pub async fn serve_tls(listener: TcpListener, tls: Arc<ServerConfig>, router: Router) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            // a TLS handshake starts with a handshake record (0x16); anything else is plain HTTP
            let mut first = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] != 0x16 => {
                    let mut stream = stream;
                    let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                    let _ = stream.shutdown().await;
                    tracing::debug!(%peer, "plain HTTP on the TLS port");
                    return;
                }
                Ok(Ok(1)) => {}
                _ => return,
            }
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(true);
            builder.http2().timer(TokioTimer::new());
            let service = TowerToHyperService::new(router);
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
