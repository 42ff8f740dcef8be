//! `--enable-pprof`: a CPU profile in pprof's format at `/debug/pprof/profile?seconds=N`
//! (as Go's net/http/pprof serves it, so `go tool pprof http://ADDR/debug/pprof/profile`
//! reads it). The sampling is pprof-rs's (a well-kept crate: a SIGPROF timer and a
//! backtrace per sample), not ours. Off by default; the endpoint has no authentication, so
//! its default address is the pod's loopback (reach it with `kubectl port-forward`).
//!
//! Bounded: one profile at a time (another asks again later: 409), at most
//! [`MAX_SECONDS`] each, on its own blocking thread so the runtime is never held.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The longest profile one request may ask for.
pub(crate) const MAX_SECONDS: u64 = 300;
/// Go's default.
const DEFAULT_SECONDS: u64 = 30;
/// Samples a second (Go's rate, off the round 100 so it does not beat with timers).
const FREQUENCY: i32 = 99;

#[derive(Deserialize)]
struct Params {
    seconds: Option<u64>,
}

/// Serves the profile endpoint until the process ends.
pub(crate) async fn serve(listener: TcpListener) {
    let one_at_a_time = Arc::new(Semaphore::new(1));
    let app = Router::new()
        .route(
            "/debug/pprof/",
            get(|| async { "profile: /debug/pprof/profile?seconds=N (CPU, pprof format)\n" }),
        )
        .route("/debug/pprof/profile", get(profile))
        .with_state(one_at_a_time);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "pprof server stopped");
    }
}

async fn profile(State(slot): State<Arc<Semaphore>>, Query(p): Query<Params>) -> Response {
    let seconds = p.seconds.unwrap_or(DEFAULT_SECONDS);
    if seconds == 0 || seconds > MAX_SECONDS {
        let why = format!("seconds must be 1 to {MAX_SECONDS}\n");
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let Ok(_permit) = slot.try_acquire_owned() else {
        return (StatusCode::CONFLICT, "a profile is already being taken\n").into_response();
    };
    let took = tokio::task::spawn_blocking(move || take(Duration::from_secs(seconds))).await;
    match took {
        Ok(Ok(body)) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            body,
        )
            .into_response(),
        Ok(Err(why)) => {
            tracing::warn!(error = %why, "cannot take a CPU profile");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Samples for `d`, then encodes the profile (protobuf, as `go tool pprof` reads).
fn take(d: Duration) -> Result<Vec<u8>, String> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(d);
    let report = guard.report().build().map_err(|e| e.to_string())?;
    let profile = report.pprof().map_err(|e| e.to_string())?;
    let mut body = Vec::with_capacity(profile.encoded_len());
    profile.encode(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}
