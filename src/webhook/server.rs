//! The HTTPS server of the webhook (axum over rustls): routes, TLS accept, connections.
//!
//! Every byte on this port may come from a hostile client, so everything it can hold is
//! bounded: at most [`MAX_CONNECTIONS`] connections, HTTP/1.1 only (the apiserver calls
//! webhooks over HTTP/1.1; no HTTP/2 streams to multiply requests), the TLS handshake
//! within [`HANDSHAKE_TIMEOUT`], headers within [`HEADER_TIMEOUT`], a whole request (body included)
//! within [`REQUEST_TIMEOUT`], a body at most `--max-body-bytes`, and bodies above
//! [`SMALL_BODY`] in flight together at most [`LARGE_BODY_BUDGET`] bytes, so a flood of
//! maximum-size reviews waits its turn instead of taking memory, while ordinary reviews
//! (a few KiB) never wait behind them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::admit;
use super::fair::{Full, MAX_FLOW};
use super::lane::{Lane, LaneConfig, Unserved};
use super::review::{ResponseOut, ReviewOut, namespace_byte, peek_str, uid_byte};
use crate::services::state::State as AppState;

/// A review whose answer may cost more than an ordinary one: a body above [`SMALL_BODY`], or
/// one that names a reload-list annotation with anything but a short list of plain names
/// (other entries are regexes, matched against the namespace's sources). An ordinary
/// review, a few KiB with auto or search or a few plain names to look up, is not.
fn may_be_heavy(state: &AppState, body: &[u8]) -> bool {
    body.len() > SMALL_BODY
        || crate::core::refs::SourceKind::ALL
            .into_iter()
            .map(|k| state.policy.names.reload_of(k))
            .any(|n| more_than_plain_names(body, n))
}

/// The longest reload list read as plain names on the fast path.
const PLAIN_LIST: usize = 1024;

/// Whether `annotation` is in `body` other than as the key of a string of at most
/// [`PLAIN_LIST`] bytes of names without dots (`a-z`, `0-9`, `-`), commas and spaces: each
/// such entry is a lookup, as in the core's reading of a list; anything else (a regex, an
/// escape, the name in another place) counts as costly.
fn more_than_plain_names(body: &[u8], annotation: &str) -> bool {
    let key = format!("\"{annotation}\"");
    if memchr::memmem::find(body, annotation.as_bytes()).is_none() {
        return false;
    }
    let mut keys = 0;
    for at in memchr::memmem::find_iter(body, key.as_bytes()) {
        keys += 1;
        let rest = &body[at + key.len()..];
        let ws = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let mut i = ws(rest);
        if rest.get(i) != Some(&b':') {
            return true;
        }
        i += 1;
        i += ws(&rest[i..]);
        if rest.get(i) != Some(&b'"') {
            return true;
        }
        let value = &rest[i + 1..];
        let len = value
            .iter()
            .take(PLAIN_LIST + 1)
            .take_while(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b',' | b' '))
            .count();
        if len > PLAIN_LIST || value.get(len) != Some(&b'"') {
            return true;
        }
    }
    // the name only inside other text (a longer key, a value): as costly as before
    keys == 0 || memchr::memmem::find_iter(body, annotation.as_bytes()).count() != keys
}

/// The state of the webhook's routes: the shared state and this router's slow lane.
#[derive(Clone)]
struct Hook {
    app: Arc<AppState>,
    lane: Arc<Lane>,
}

async fn mutate(State(hook): State<Hook>, body: Bytes) -> Response {
    let t0 = Instant::now();
    let state = &hook.app;
    let out = if may_be_heavy(state, &body) {
        // on the slow lane, in its namespace's turn: see `lane` and `fair`
        let flow = peek_str(&body, "namespace", MAX_FLOW, namespace_byte).unwrap_or("");
        let flow = flow.to_string();
        let (st, b) = (state.clone(), body.clone());
        match hook
            .lane
            .run(&flow, async move { answer(&st, &b).await })
            .await
        {
            Ok(out) => out,
            Err(Unserved::Refused(full)) => {
                // not queued, so nothing of the lane is held meanwhile: see REFUSAL_PACE
                tokio::time::sleep(REFUSAL_PACE).await;
                refused(state, &body, &flow, full)
            }
            Err(Unserved::Lost) => {
                state.metrics.webhook_result("error");
                tracing::error!("the slow lane did not answer a review");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    } else {
        answer(state, &body).await
    };
    state
        .metrics
        .webhook_duration
        .observe(t0.elapsed().as_secs_f64());
    out
}

/// How long the answer to a refused review takes. A refusal costs the server only the
/// reading of the request, but a client that sends again as soon as it is answered turned
/// that into tens of thousands of refusals a second (measured: 25,000/s from 32
/// connections on 2 cores), whose CPU delayed every other namespace's reviews more than
/// the queue it was kept out of. Paced, a connection of such a client sends at most 4 a
/// second; an apiserver's call, far under its timeout, is still answered without waiting
/// for the lane.
const REFUSAL_PACE: Duration = Duration::from_millis(250);

/// A costly review over its namespace's bound (or the bound of all): allowed at once,
/// without a patch, and said so (a warning to the client, a metric, a log line at most
/// every second); the watcher records the workload once the apiserver holds it.
fn refused(state: &AppState, body: &[u8], flow: &str, full: Full) -> Response {
    state.metrics.webhook_result("throttled");
    let uid = peek_str(body, "uid", 128, uid_byte).unwrap_or("");
    let why = match full {
        Full::Flow => format!("namespace {flow:?} has as many costly reviews waiting as allowed"),
        Full::All => "as many costly reviews wait as allowed".to_string(),
    };
    if let Some(refused) = super::lane::refusal_to_log() {
        tracing::warn!(
            namespace = flow,
            bound = full.label(),
            refused,
            "costly reviews over their bound admitted without a record (--admission-queue-per-namespace, --admission-queue-total)"
        );
    }
    let mut response = ResponseOut::allow(uid);
    response.warnings = Some(vec![format!(
        "hashroll: {why}; admitted without a record now, the watcher adds it shortly"
    )]);
    axum::Json(ReviewOut {
        api_version: "admission.k8s.io/v1".into(),
        kind: "AdmissionReview".into(),
        response,
    })
    .into_response()
}

async fn answer(state: &AppState, body: &[u8]) -> Response {
    match admit::handle(state, body).await {
        Ok((review, outcome)) => {
            state.metrics.webhook_result(outcome.label());
            axum::Json(review).into_response()
        }
        Err(e) => {
            state.metrics.webhook_result("bad_request");
            tracing::warn!(error = %e, "bad admission request");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    }
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

/// Connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// The TLS handshake must be done within this.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request's headers must arrive within this (hyper also closes a keep-alive connection
/// idle this long: longer than the handshake's, so a client's pooled connection outlives
/// a short pause).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body read and answer, must be done within this (the apiserver gives
/// up after the webhook's timeoutSeconds anyway).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A body up to this size needs no share of the large-body budget.
pub(crate) const SMALL_BODY: usize = 64 * 1024;
/// Bytes of bodies above [`SMALL_BODY`] read and handled at once.
pub(crate) const LARGE_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// Bounds one request: its share of the large-body budget (by Content-Length; a body of
/// unknown length counts as the largest allowed) is held while it is read and handled, and
/// the whole of it must end within [`REQUEST_TIMEOUT`].
async fn bounded(
    State(budget): State<Arc<BodyBudget>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let len = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(budget.max_body);
    let _counted = InFlight::start(&budget.in_flight);
    let work = async {
        let _permit = if len > SMALL_BODY {
            let kib = len.min(budget.max_body).div_ceil(1024) as u32;
            match budget.large.acquire_many(kib.min(budget.total_kib)).await {
                Ok(p) => Some(p),
                Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        } else {
            None
        };
        next.run(req).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::debug!("request not done in time");
            let mut resp = StatusCode::REQUEST_TIMEOUT.into_response();
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

/// The large-body budget, in KiB permits.
struct BodyBudget {
    large: Semaphore,
    total_kib: u32,
    max_body: usize,
    /// `hashroll_webhook_requests_in_flight`
    in_flight: prometheus_client::metrics::gauge::Gauge,
}

/// Counts a request in flight while it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn start(g: &prometheus_client::metrics::gauge::Gauge) -> InFlight {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The webhook's routes, with the slow lane's defaults.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    router_with(state, max_body, LaneConfig::default())
}

/// The webhook's routes; costly reviews go to a slow lane of `lane`'s threads and bounds
/// (its threads end when the router and its clones are dropped).
pub fn router_with(state: Arc<AppState>, max_body: usize, lane: LaneConfig) -> Router {
    let total_kib = (LARGE_BODY_BUDGET.max(max_body) / 1024) as u32;
    let budget = Arc::new(BodyBudget {
        large: Semaphore::new(total_kib as usize),
        total_kib,
        max_body,
        in_flight: state.metrics.webhook_in_flight.clone(),
    });
    Router::new()
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(budget, bounded))
        .layer(axum::middleware::map_response(close_after_refusal))
        .with_state(Hook {
            app: state,
            lane: Arc::new(Lane::new(lane)),
        })
}

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 48\r\n\r\nthis port speaks HTTPS: use https:// to call it\n";

/// Serves `router` over TLS on `listener` forever. Each connection runs in its own task, so
/// a slow or broken client holds only itself up.
pub async fn serve_tls(listener: TcpListener, tls: Arc<ServerConfig>, router: Router) {
    serve_tls_until(listener, tls, router, std::future::pending()).await
}

/// How long a stop waits for the admissions in flight.
pub(crate) const STOP_GRACE: Duration = REQUEST_TIMEOUT;

/// [`serve_tls`] until `stop` completes; then no new connection is taken, every open one
/// finishes the request it is reading or answering and closes (an idle keep-alive closes at
/// once), within [`STOP_GRACE`].
pub async fn serve_tls_until(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            s = connections.clone().acquire_owned() => s,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else {
            return;
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, router) = (acceptor.clone(), router.clone());
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, acceptor, router, stopping).await;
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let all = MAX_CONNECTIONS as u32;
    match tokio::time::timeout(STOP_GRACE, connections.acquire_many(all)).await {
        Ok(_) => tracing::info!("webhook stopped; every admission in flight was answered"),
        Err(_) => {
            tracing::warn!("webhook stopped with connections still open after the grace period")
        }
    }
}

/// One connection: plain HTTP is told to use HTTPS; after the handshake, requests are
/// served until the client closes or a stop is seen (then the request in flight is answered
/// and the connection closes).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // a TLS handshake starts with a handshake record (0x16); anything else is plain HTTP
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
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
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let stop_seen = async {
        // the guard the wait gives is dropped here, before any other await
        let _ = stopping.wait_for(|s| *s).await.map(|_| ());
    };
    let res = tokio::select! {
        r = conn.as_mut() => r,
        () = stop_seen => {
            // the request in flight is answered; then the connection closes
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::more_than_plain_names;

    const RELOAD: &str = "configmap.reloader.stakater.com/reload";

    #[test]
    fn a_short_list_of_plain_names_keeps_the_fast_path() {
        for (body, costly) in [
            (
                r#"{"annotations":{"reloader.stakater.com/auto":"true"}}"#,
                false,
            ),
            (
                r#"{"annotations":{"configmap.reloader.stakater.com/reload":"cfg"}}"#,
                false,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload" : "cfg, other-2"}}"#,
                false,
            ),
            // an UPDATE: the old object names it too
            (
                r#"{"o":{"configmap.reloader.stakater.com/reload":"a"},"n":{"configmap.reloader.stakater.com/reload":"b"}}"#,
                false,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload":"l+-.*"}}"#,
                true,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload":"cfg.v1"}}"#,
                true,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload":"a\u002a"}}"#,
                true,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload":["x"]}}"#,
                true,
            ),
            (
                r#"{"a":{"configmap.reloader.stakater.com/reload":"cfg"},"v":"configmap.reloader.stakater.com/reload"}"#,
                true,
            ),
            (
                r#"{"a":{"xconfigmap.reloader.stakater.com/reload":"cfg"}}"#,
                true,
            ),
        ] {
            assert_eq!(
                more_than_plain_names(body.as_bytes(), RELOAD),
                costly,
                "{body}"
            );
        }
        let long = format!(r#"{{"{RELOAD}":"{}"}}"#, "a,".repeat(600));
        assert!(more_than_plain_names(long.as_bytes(), RELOAD));
    }
}
