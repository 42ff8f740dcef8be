//! `make bench` (`cargo bench --bench hashroll -- WHAT`): each figure next to a baseline
//! measured in the same run. A bench target, so its dependencies (the harness, hyper's
//! client) are dev-only and the production binary does not carry them.
//!
//! - `webhook`: admission throughput and p50/p99 over TLS with HTTP/1.1 keep-alive against
//!   the webhook server (its own process, the real server code), next to a static endpoint
//!   the bench adds to the same server; saturation (32 connections, closed loop) and a fixed 1,000/s (open loop).
//! - `hostile`: normal reviews at a fixed 1,000/s (p50/p99) alone and while a hostile
//!   tenant's reviews (a thousand missing names, pathological and oversized regexes, a regex
//!   over thousands of long-named sources, maximum-size bodies) arrive at the same time; then
//!   the server's peak RSS under a flood of maximum-size bodies, next to its peak after the
//!   normal load.
//! - `reload`: source write accepted → workload template patched, at 10,000 ConfigMaps and
//!   2,000 Deployments on the local control plane, next to the apiserver's own watch latency
//!   for the source (the floor); `--coalesce-window=0` and the default.
//! - `memory`: peak RSS (VmHWM) of hashroll with 10,000 Secrets of 8 KiB, next to its peak on
//!   an empty cluster.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use hashroll_harness::launch::{Launch, readyz};
use hashroll_harness::plane::{Plane, PlaneOptions};
use hashroll_harness::webhook_config::Scope;

type AnyErr = Box<dyn std::error::Error + Send + Sync>;

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench hashroll -- [all|webhook|hostile|inproc|reload|held|memory|scale] [--quick]"
    );
    std::process::exit(2)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` adds `--bench`
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let what = args.first().map(String::as_str).unwrap_or("all");
    let res: Result<(), AnyErr> = rt.block_on(async {
        match what {
            "serve" => {
                let [_, cert, key, addr] = &args[..] else {
                    usage()
                };
                serve(cert, key, addr).await
            }
            "webhook" => webhook_bench(quick).await,
            "hostile" => hostile_bench(quick).await,
            "inproc" => inproc().await,
            "reload" => reload_bench(quick).await,
            "held" => held_bench(quick).await,
            "memory" => memory_bench(quick).await,
            "scale" => scale_bench(quick).await,
            "all" => {
                webhook_bench(quick).await?;
                hostile_bench(quick).await?;
                reload_bench(quick).await?;
                held_bench(quick).await?;
                memory_bench(quick).await
            }
            _ => usage(),
        }
    });
    if let Err(e) = res {
        eprintln!("hashroll-bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- webhook

/// The webhook server alone (no cluster): the sources the bench request uses are in its cache.
async fn serve(cert: &str, key: &str, addr: &str) -> Result<(), AnyErr> {
    // logging as in production (info, text): the per-request span is part of the cost
    hashroll::telemetry::init("text", "info")?;
    let state = bench_state()?;
    let certs = hashroll::webhook::tls::CertReloader::load(Path::new(cert), Path::new(key))?;
    let tls = certs.server_config(None)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ready");
    // the production routes, plus a fixed answer from the same server: the baseline
    let router = hashroll::webhook::router(state, 4 << 20)
        .route("/static", axum::routing::post(static_answer));
    hashroll::webhook::serve_tls(listener, tls, router).await;
    Ok(())
}

/// A fixed answer: the server's cost without the admission work.
async fn static_answer(_body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#,
    )
        .into_response()
}

/// Long-named ConfigMaps in the bench server's `tenant` namespace.
const HOSTILE_SOURCES: usize = 3_000;

fn bench_state() -> Result<Arc<hashroll::state::State>, AnyErr> {
    use hashroll::cache::SourceCache;
    use hashroll::core::names::AnnotationNames;
    use hashroll::core::refs::SourceRef;
    use hashroll::core::selector::LabelSelector;
    use hashroll::namespaces::NamespaceFilter;
    let cache = Arc::new(SourceCache::new(
        AnnotationNames::default(),
        LabelSelector::default(),
        NamespaceFilter::default(),
    ));
    for (name, data) in [
        (
            "test-config-file",
            json!({"info.yaml": "user=aliens\nage=22\n"}),
        ),
        (
            "test-config-env",
            json!({"COUNTRY": "china", "CITY": "beijing"}),
        ),
    ] {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "ns1"}, "data": data}),
        )?;
        let e = cache.configmap_entry(&cm);
        cache.upsert("ns1", &SourceRef::configmap(name), e);
    }
    // a tenant namespace with thousands of long-named sources, for the hostile bench's
    // wide regex (`reload: "l+-.*"` matches them all)
    for i in 0..HOSTILE_SOURCES {
        let name = format!("{}-{i}", "l".repeat(200));
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "tenant"}, "data": {"k": "v"}}),
        )?;
        let e = cache.configmap_entry(&cm);
        cache.upsert("tenant", &SourceRef::configmap(&name), e);
    }
    let state = Arc::new(hashroll::state::State {
        policy: Default::default(),
        names: Default::default(),
        roll: Default::default(),
        keys: hashroll::key::LiveKeys::fixed(hashroll::core::digest::KeyRing::single(
            hashroll::core::digest::DigestKey::new(b"bench-key-0123456789abcdef".to_vec())
                .expect("key"),
        )),
        cache,
        client: None,
        metrics: hashroll::metrics::Metrics::new(),
        watcher_ready: std::sync::atomic::AtomicBool::new(true),
        writer: hashroll::lease::Leadership::always(),
    });
    Ok(state)
}

/// The admission path without network: µs per review, for profiling, next to the floor of
/// reading the same body (serde_json scanning it without building anything).
async fn inproc() -> Result<(), AnyErr> {
    if std::env::var_os("BENCH_LOG").is_some() {
        hashroll::telemetry::init("text", "info")?;
    }
    let state = bench_state()?;
    let body = admission_body();
    // the best of several rounds: this figure is for comparing builds, and a shared
    // machine only ever adds time
    const ROUNDS: usize = 9;
    const N: usize = 4_000;
    let mut scan = f64::MAX;
    let mut parse = f64::MAX;
    let mut full = f64::MAX;
    for _ in 0..ROUNDS {
        let per = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / N as f64;
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&body)?);
        }
        scan = scan.min(per(t));
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(
                hashroll::webhook::review::parse(&body).map_err(|e| e.to_string())?,
            );
        }
        parse = parse.min(per(t));
        let t = Instant::now();
        for _ in 0..N {
            let (out, _) = hashroll::webhook::admit::handle(&state, &body)
                .await
                .map_err(|e| e.to_string())?;
            std::hint::black_box(serde_json::to_vec(&out)?);
        }
        full = full.min(per(t));
    }
    for (what, body) in hostile_bodies(4 << 20) {
        let mut best = f64::MAX;
        let rounds = if std::env::var_os("BENCH_HOSTILE_ROUNDS").is_some() {
            500
        } else {
            5
        };
        for _ in 0..rounds {
            let t = Instant::now();
            let (out, _) = hashroll::webhook::admit::handle(&state, &body)
                .await
                .map_err(|e| e.to_string())?;
            std::hint::black_box(serde_json::to_vec(&out)?);
            best = best.min(t.elapsed().as_secs_f64() * 1e6);
        }
        println!("hostile review in-process ({what}): {best:.0} µs");
    }
    println!(
        "admission path in-process: {full:.2} µs per review (best of {ROUNDS} rounds; scanning the {}-byte body: {scan:.2} µs, reading the review envelope: {parse:.2} µs)",
        body.len()
    );
    Ok(())
}

fn admission_body() -> Bytes {
    review_body("ns1", json!({"reloader.stakater.com/auto": "true"}), 0)
}

/// An AdmissionReview (CREATE of a Deployment) in `ns` with these workload annotations;
/// `pad` bytes of filler in a container env value make it as large as asked.
fn review_body(ns: &str, annotations: serde_json::Value, pad: usize) -> Bytes {
    let mut env = vec![
        json!({"name": "COUNTRY", "valueFrom": {"configMapKeyRef": {"name": "test-config-env", "key": "COUNTRY"}}}),
        json!({"name": "CITY", "valueFrom": {"configMapKeyRef": {"name": "test-config-env", "key": "CITY"}}}),
    ];
    if pad > 0 {
        env.push(json!({"name": "PAD", "value": "p".repeat(pad)}));
    }
    let deploy: serde_json::Value = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": ns, "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": "nginx"}}, "replicas": 1, "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx",
                "env": env,
                "volumeMounts": [{"name": "foo", "mountPath": "/etc/foo", "readOnly": true}]}],
                "volumes": [{"name": "foo", "configMap": {"name": "test-config-file"}}]}}}
    });
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "nginx", "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
            "object": deploy, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"}
        }
    });
    Bytes::from(serde_json::to_vec(&review).expect("json"))
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, AnyErr> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: &Bytes,
) -> Result<Bytes, AnyErr> {
    sender.ready().await?;
    let req = hyper::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(format!("{path}: HTTP {}", resp.status()).into());
    }
    Ok(resp.into_body().collect().await?.to_bytes())
}

struct Sample {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    }
}

async fn closed_loop(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    body: Bytes,
    conns: usize,
    dur: Duration,
) -> Result<Sample, AnyErr> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + dur;
    for _ in 0..conns {
        let mut s = connect(addr, tls.clone()).await?;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < end {
                let t = Instant::now();
                if call(&mut s, path, &body).await.is_err() {
                    break;
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    Ok(Sample {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

async fn open_loop(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    body: Bytes,
    rate: u32,
    dur: Duration,
) -> Result<Sample, AnyErr> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut s = connect(addr, tls.clone()).await?;
        let rx = rx.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let intended = { rx.lock().await.recv().await };
                let Some(intended) = intended else { break };
                if call(&mut s, path, &body).await.is_err() {
                    break;
                }
                // from the moment it was due: queueing counts (no coordinated omission)
                lat.push(intended.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let total = (rate as f64 * dur.as_secs_f64()) as u64;
    let step = Duration::from_secs_f64(1.0 / rate as f64);
    // the schedule runs on a thread of its own with std's fine-grained sleep: tokio's timer
    // has millisecond ticks, which would add up to 1 ms of its own to every latency
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + step * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(due).is_err() {
                break;
            }
        }
    });
    tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| "pacer thread panicked")?;
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    Ok(Sample {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The bench's webhook server in a process of its own (so its RSS is its own), with a
/// client TLS configuration that trusts it.
async fn start_server()
-> Result<(KillOnDrop, std::net::SocketAddr, Arc<rustls::ClientConfig>), AnyErr> {
    let dir = tempfile::tempdir()?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::default();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = p.signed_by(&key, &issuer)?;
    std::fs::write(dir.path().join("tls.crt"), cert.pem())?;
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut server = KillOnDrop(
        Command::new(std::env::current_exe()?)
            .args([
                "serve",
                &dir.path().join("tls.crt").display().to_string(),
                &dir.path().join("tls.key").display().to_string(),
                &addr.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.0.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err("the bench server did not start".into());
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    Ok((server, addr, tls))
}

async fn webhook_bench(quick: bool) -> Result<(), AnyErr> {
    let (server, addr, tls) = start_server().await?;
    let body = admission_body();
    // the answer is a real stamp
    let mut s = connect(addr, tls.clone()).await?;
    let answer: serde_json::Value = serde_json::from_slice(&call(&mut s, "/mutate", &body).await?)?;
    if answer["response"]["patch"].as_str().is_none() {
        return Err(format!("the webhook did not stamp the bench request: {answer}").into());
    }
    let dur = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    println!(
        "\n## webhook admission over TLS (HTTP/1.1 keep-alive), AdmissionReview of {} bytes",
        body.len()
    );
    println!(
        "{:<34} {:<8} {:>12} {:>11} {:>11}",
        "load", "endpoint", "req/s", "p50", "p99"
    );
    closed_loop(
        addr,
        tls.clone(),
        "/static",
        body.clone(),
        32,
        Duration::from_secs(1),
    )
    .await?; // warm-up
    let st = closed_loop(addr, tls.clone(), "/static", body.clone(), 32, dur).await?;
    let mu = closed_loop(addr, tls.clone(), "/mutate", body.clone(), 32, dur).await?;
    for (name, s) in [("static", &st), ("mutate", &mu)] {
        println!(
            "{:<34} {:<8} {:>12.0} {:>11} {:>11}",
            "saturation, 32 connections",
            name,
            s.rate(),
            ms(s.pct(0.5)),
            ms(s.pct(0.99))
        );
    }
    let ratio = mu.rate() / st.rate();
    println!("throughput ratio mutate/static: {ratio:.2}");
    let st = open_loop(addr, tls.clone(), "/static", body.clone(), 1000, dur).await?;
    let mu = open_loop(addr, tls.clone(), "/mutate", body.clone(), 1000, dur).await?;
    for (name, s) in [("static", &st), ("mutate", &mu)] {
        println!(
            "{:<34} {:<8} {:>12.0} {:>11} {:>11}",
            "open loop, 1000/s offered",
            name,
            s.rate(),
            ms(s.pct(0.5)),
            ms(s.pct(0.99))
        );
    }
    let p99 = mu.pct(0.99);
    println!(
        "open-loop p99 mutate: {} (target <= 1 ms: {}); p99 ratio mutate/static: {:.2}",
        ms(p99),
        if p99 <= Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        },
        p99.as_secs_f64() / st.pct(0.99).as_secs_f64().max(1e-9)
    );
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------- hostile

/// What one hostile tenant sends, each kind at its own fixed rate.
fn hostile_bodies(max_body: usize) -> Vec<(&'static str, Bytes)> {
    let missing: Vec<String> = (0..1000).map(|i| format!("missing-{i}")).collect();
    let regexes = [
        "(a{1000}){1000}",
        "((a+)+)+b",
        "(unclosed",
        &"x".repeat(600),
    ]
    .join(",");
    let big = review_body("tenant", json!({"reloader.stakater.com/auto": "true"}), 0);
    // as close to the largest accepted body as the envelope allows
    let big = review_body(
        "tenant",
        json!({"reloader.stakater.com/auto": "true"}),
        max_body - big.len() - 64,
    );
    vec![
        (
            "1,000 missing names",
            review_body(
                "tenant",
                json!({"configmap.reloader.stakater.com/reload": missing.join(",")}),
                0,
            ),
        ),
        (
            "pathological/oversized regexes",
            review_body(
                "tenant",
                json!({"configmap.reloader.stakater.com/reload": regexes}),
                0,
            ),
        ),
        (
            "regex over 3,000 long names",
            review_body(
                "tenant",
                json!({"configmap.reloader.stakater.com/reload": "l+-.*"}),
                0,
            ),
        ),
        ("maximum-size body", big),
    ]
}

/// Sends `body` at `rate`/s on its own connections until `stop`; counts answers and errors.
fn hostile_sender(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    rate: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let mut ok = 0;
        let mut failed = 0;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut conn = None;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if conn.is_none() {
                conn = connect(addr, tls.clone()).await.ok();
            }
            let Some(s) = conn.as_mut() else {
                failed += 1;
                continue;
            };
            match call(s, "/mutate", &body).await {
                Ok(_) => ok += 1,
                Err(_) => {
                    failed += 1;
                    conn = None;
                }
            }
        }
        (ok, failed)
    })
}

async fn hostile_bench(quick: bool) -> Result<(), AnyErr> {
    const MAX_BODY: usize = 4 << 20;
    // per second: each small hostile kind, and maximum-size bodies (20 MiB/s of them; the
    // apiserver stores objects of at most 1.5 MiB, so a review's body is rarely above 3 MiB)
    const HOSTILE_RATE: u32 = 25;
    const BIG_RATE: u32 = 5;
    let (server, addr, tls) = start_server().await?;
    let pid = server.0.id();
    let normal = admission_body();
    let dur = Duration::from_secs(if quick { 3 } else { 10 });
    // warm-up as in the webhook bench: a saturating second, then the paced load
    closed_loop(
        addr,
        tls.clone(),
        "/mutate",
        normal.clone(),
        32,
        Duration::from_secs(2),
    )
    .await?;
    open_loop(
        addr,
        tls.clone(),
        "/mutate",
        normal.clone(),
        1000,
        Duration::from_secs(1),
    )
    .await?;
    let alone = open_loop(addr, tls.clone(), "/mutate", normal.clone(), 1000, dur).await?;
    let hostile = hostile_bodies(MAX_BODY);
    // each hostile review is answered (allowed, whatever it carries) before the timing starts
    for (what, body) in &hostile {
        let mut s = connect(addr, tls.clone()).await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&call(&mut s, "/mutate", body).await?)?;
        if answer["response"]["allowed"] != json!(true) {
            return Err(format!("hostile review ({what}) not allowed: {answer}").into());
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // the hostile client runs on a runtime (and threads) of its own, so that its TLS work on
    // 4 MiB bodies does not delay the normal client's tasks: what is measured is the server
    let hostile_client = {
        let (tls, stop) = (tls.clone(), stop.clone());
        // one kind alone, to see its share: HOSTILE_ONLY=index
        let only: Option<usize> = std::env::var("HOSTILE_ONLY")
            .ok()
            .and_then(|v| v.parse().ok());
        let bodies: Vec<(u32, Bytes)> = hostile
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
            .map(|(_, (_, b))| {
                let rate = if b.len() > MAX_BODY / 2 {
                    BIG_RATE
                } else {
                    HOSTILE_RATE
                };
                (rate, b.clone())
            })
            .collect();
        std::thread::spawn(move || -> Result<Vec<(usize, usize)>, String> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let senders: Vec<_> = bodies
                    .into_iter()
                    .map(|(rate, b)| hostile_sender(addr, tls.clone(), b, rate, stop.clone()))
                    .collect();
                let mut counts = Vec::new();
                for s in senders {
                    counts.push(s.await.map_err(|e| e.to_string())?);
                }
                Ok(counts)
            })
        })
    };
    let under = open_loop(addr, tls.clone(), "/mutate", normal.clone(), 1000, dur).await?;
    stop.store(true, Ordering::Relaxed);
    let counts = tokio::task::spawn_blocking(move || hostile_client.join())
        .await?
        .map_err(|_| "the hostile client panicked")??;
    let hwm_normal = vm_hwm(pid)?;

    println!(
        "\n## normal reviews at 1,000/s offered, alone and beside a hostile tenant ({HOSTILE_RATE}/s of each small kind below, {BIG_RATE}/s of maximum-size bodies)"
    );
    println!("{:<44} {:>10} {:>11} {:>11}", "load", "req/s", "p50", "p99");
    for (name, s) in [
        ("normal alone (baseline)", &alone),
        ("normal + hostile", &under),
    ] {
        println!(
            "{:<44} {:>10.0} {:>11} {:>11}",
            name,
            s.rate(),
            ms(s.pct(0.5)),
            ms(s.pct(0.99))
        );
    }
    let shown: Vec<_> = match std::env::var("HOSTILE_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(o) => hostile.iter().skip(o).take(1).collect(),
        None => hostile.iter().collect(),
    };
    for ((what, body), (ok, failed)) in shown.into_iter().zip(&counts) {
        println!(
            "  hostile: {what:<32} {:>8} bytes, {ok} answered, {failed} failed",
            body.len()
        );
    }
    let p99 = under.pct(0.99);
    println!(
        "p99 of normal reviews under hostile load: {} (target <= 1 ms: {})",
        ms(p99),
        if p99 <= Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        }
    );

    // regex flood: reviews of distinct costly regexes (each `a{500}-N` is ten bytes of text
    // and ~40 KiB compiled; 40 per review, none repeated over 100 reviews: 160 MiB if the
    // memo kept them by text, as it did), from 8 connections as fast as they can
    let regex_bodies: Vec<Bytes> = (0..100)
        .map(|r| {
            let list: Vec<String> = (0..40)
                .map(|e| format!("a{{500}}-{}", r * 40 + e))
                .collect();
            review_body(
                "tenant",
                json!({"configmap.reloader.stakater.com/reload": list.join(",")}),
                0,
            )
        })
        .collect();
    let regex_flood = closed_loop_tolerant(addr, tls.clone(), regex_bodies, 8, dur).await?;
    let hwm_regex = vm_hwm(pid)?;

    // flood: many connections sending maximum-size bodies as fast as they can
    let flood_conns = 64;
    let big = hostile.last().map(|(_, b)| b.clone()).ok_or("no body")?;
    let flood =
        closed_loop_tolerant(addr, tls.clone(), vec![big.clone()], flood_conns, dur).await?;
    let hwm_flood = vm_hwm(pid)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("\n## peak RSS (VmHWM) of the webhook server");
    println!(
        "{:<60} {:>10}",
        "after the normal and hostile loads (baseline)",
        format!("{:.1} MiB", mib(hwm_normal))
    );
    println!(
        "{:<60} {:>10}",
        format!(
            "regex flood: 8 connections, 4,000 distinct costly entries, {} answered",
            regex_flood.0
        ),
        format!("{:.1} MiB", mib(hwm_regex))
    );
    println!(
        "{:<60} {:>10}",
        format!(
            "flood: {flood_conns} connections of {:.1} MiB bodies, {} answered, {} refused",
            big.len() as f64 / (1 << 20) as f64,
            flood.0,
            flood.1
        ),
        format!("{:.1} MiB", mib(hwm_flood))
    );
    drop(server);
    Ok(())
}

/// Closed loop that goes on after an error (reconnecting): a flood counts what was
/// answered and what was refused (503/408 or a closed connection).
async fn closed_loop_tolerant(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    bodies: Vec<Bytes>,
    conns: usize,
    dur: Duration,
) -> Result<(usize, usize), AnyErr> {
    let end = Instant::now() + dur;
    let mut tasks = Vec::new();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..conns {
        let (tls, bodies, next) = (tls.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            let mut conn = None;
            while Instant::now() < end {
                if conn.is_none() {
                    conn = connect(addr, tls.clone()).await.ok();
                }
                let Some(s) = conn.as_mut() else {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let body = &bodies[next.fetch_add(1, Ordering::Relaxed) % bodies.len()];
                match call(s, "/mutate", body).await {
                    Ok(_) => ok += 1,
                    Err(_) => {
                        refused += 1;
                        conn = None;
                    }
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (o, r) = t.await?;
        ok += o;
        refused += r;
    }
    Ok((ok, refused))
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- cluster benches

/// A change of one ConfigMap that N Deployments track, rolled at once (no order) in one
/// namespace and, in another, held behind a first wave whose rollout fails (its one pod
/// cannot be scheduled; a 1 s rollout timeout): hashroll's CPU from the change until every
/// check is done (all rolled; all but the first held) and 10 s more, side by side.
async fn held_bench(quick: bool) -> Result<(), AnyErr> {
    let n = if quick { 300 } else { 1_000 };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;
    let flags = ["--coalesce-window=0", "--max-rollouts-per-second=100000"];
    let (h, launch) = start_hashroll(&plane, &flags)?;
    wait_ready(&launch).await?;
    register_webhook(&plane, &launch)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = h.0.id();
    let mut rows = Vec::new();
    for (ns, waved) in [("at-once", false), ("held", true)] {
        create_namespace(&client, ns).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        cms.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("shared".into(), ns),
                data: Some([("v".to_string(), "0".to_string())].into()),
                ..Default::default()
            },
        )
        .await?;
        let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
        create_many(&deps, n, |i| {
            let first = waved && i == 0;
            let mut ann = json!({"reloader.stakater.com/auto": "true"});
            if waved {
                ann["hashroll.dev/wave"] = json!(if first { "0" } else { "1" });
            }
            if first {
                ann["hashroll.dev/rollout-timeout"] = json!("1s");
            }
            serde_json::from_value(json!({
                "metadata": {"name": format!("dep-{i}"), "namespace": ns, "annotations": ann},
                "spec": {"replicas": if first { 1 } else { 0 },
                    "selector": {"matchLabels": {"app": format!("dep-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("dep-{i}")}},
                        "spec": {"nodeSelector": if first { json!({"no-such": "node"}) } else { json!({}) },
                            "containers": [{"name": "c", "image": "x", "envFrom": [{"configMapRef": {"name": "shared"}}]}]}}}
            }))
            .expect("deployment")
        })
        .await?;
        // every Deployment seen and settled before the change
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rolled0 = metric(&launch, "reloader_reload_executed_total").await?;
        let ticks0 = cpu_ticks(pid)?;
        let t0 = Instant::now();
        cms.patch(
            "shared",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"v": "1"}})),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let done = if waved {
                metric(&launch, "hashroll_rollouts_held").await? >= (n - 1) as f64
            } else {
                metric(&launch, "reloader_reload_executed_total").await? - rolled0 >= n as f64
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{ns}: not done in 300 s").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cpu = (cpu_ticks(pid)? - ticks0) as f64 / 100.0;
        let rolled = metric(&launch, "reloader_reload_executed_total").await? - rolled0;
        rows.push((ns, took, cpu, rolled));
    }
    println!(
        "\n## a change of one ConfigMap {n} Deployments track: rolled at once, or held behind a failed first wave"
    );
    println!(
        "{:<10} {:>14} {:>22} {:>8}",
        "case", "checks done", "hashroll CPU (+10 s)", "rolled"
    );
    for (ns, took, cpu, rolled) in rows {
        println!(
            "{ns:<10} {:>13.2}s {:>21.2}s {rolled:>8}",
            took.as_secs_f64(),
            cpu
        );
    }
    Ok(())
}

async fn client_of(plane: &Plane) -> Result<kube::Client, AnyErr> {
    let kc = kube::config::Kubeconfig::read_from(plane.kubeconfig())?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.read_timeout = Some(Duration::from_secs(60));
    Ok(kube::Client::try_from(cfg)?)
}

/// hashroll (the release build of this crate's binary) against the plane.
fn start_hashroll(plane: &Plane, flags: &[&str]) -> Result<(KillOnDrop, Launch), AnyErr> {
    let launch = Launch::prepare(Path::new(env!("CARGO_BIN_EXE_hashroll")))?;
    launch.issue_cert(plane)?;
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let mut cmd = launch.command(plane.kubeconfig(), "warn", false, &flags)?;
    Ok((KillOnDrop(plane.spawn_in_group(&mut cmd)?), launch))
}

async fn wait_ready(launch: &Launch) -> Result<(), AnyErr> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let port = launch.metrics_port;
        if tokio::task::spawn_blocking(move || readyz(port)).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "hashroll not ready; log:\n{}",
        std::fs::read_to_string(launch.log_path()).unwrap_or_default()
    )
    .into())
}

async fn create_many<K, F>(api: &Api<K>, n: usize, make: F) -> Result<(), AnyErr>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(usize) -> K,
{
    let done = AtomicUsize::new(0);
    futures::stream::iter((0..n).map(make))
        .map(|obj| {
            let api = api.clone();
            let done = &done;
            async move {
                api.create(&PostParams::default(), &obj).await?;
                done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, AnyErr>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

async fn create_namespace(client: &kube::Client, ns: &str) -> Result<(), AnyErr> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(ns.into(), ""),
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}

fn meta(name: String, ns: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(ns.to_string()),
        ..Default::default()
    }
}

fn register_webhook(plane: &Plane, launch: &Launch) -> Result<(), AnyErr> {
    let yaml = launch.webhook_config(plane, "hashroll-bench", Scope::AllButSystem);
    plane.kubectl_stdin(&["apply", "-f", "-"], &yaml)?;
    Ok(())
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// 200 changes (20/s, each to a different ConfigMap used by one Deployment): time from the
/// write being accepted to (a) the ConfigMap's watch event (the floor) and (b) the
/// Deployment's token changing.
async fn measure_reloads(
    client: &kube::Client,
    ns: &str,
    changes: usize,
    deployments: usize,
    round: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), AnyErr> {
    let seen_cm: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let seen_dep: Arc<std::sync::Mutex<HashMap<String, (String, Instant)>>> = Default::default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    // record, per object, the first time each new state is seen
    let w1 = {
        let seen = seen_cm.clone();
        let cms = cms.clone();
        tokio::spawn(async move {
            let mut s = watcher(cms, watcher::Config::default().any_semantic()).boxed();
            while let Ok(Some(ev)) = s.try_next().await {
                if let watcher::Event::Apply(cm) = ev {
                    let v = cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("v").cloned())
                        .unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .entry(format!("{}={v}", cm.metadata.name.unwrap_or_default()))
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let w2 = {
        let seen = seen_dep.clone();
        let deps = deps.clone();
        tokio::spawn(async move {
            let mut s = watcher(deps, watcher::Config::default().any_semantic()).boxed();
            while let Ok(Some(ev)) = s.try_next().await {
                if let watcher::Event::Apply(d) | watcher::Event::InitApply(d) = ev {
                    let tok = d
                        .spec
                        .template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.annotations.as_ref())
                        .and_then(|a| a.get("hashroll.dev/config-hash").cloned())
                        .unwrap_or_default();
                    let name = d.metadata.name.unwrap_or_default();
                    let mut m = seen.lock().unwrap();
                    let changed = m.get(&name).map(|(t, _)| *t != tok).unwrap_or(true);
                    if changed {
                        m.insert(name, (tok, Instant::now()));
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await; // both watches listed
    let mut floor = Vec::new();
    let mut total = Vec::new();
    let mut pending = Vec::new();
    for i in 0..changes {
        let idx = (i * 7 + round * 3) % deployments;
        let name = format!("cm-{idx}");
        let v = format!("r{round}-{i}");
        let before = seen_dep
            .lock()
            .unwrap()
            .get(&format!("dep-{idx}"))
            .map(|(t, _)| t.clone())
            .unwrap_or_default();
        cms.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": v}})),
        )
        .await?;
        let accepted = Instant::now();
        pending.push((idx, format!("{name}={v}"), before, accepted));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for (idx, cm_key, before, accepted) in pending {
        loop {
            let c = seen_cm.lock().unwrap().get(&cm_key).copied();
            let d = seen_dep
                .lock()
                .unwrap()
                .get(&format!("dep-{idx}"))
                .filter(|(t, _)| *t != before)
                .map(|(_, at)| *at);
            if let (Some(c), Some(d)) = (c, d) {
                floor.push(c.saturating_duration_since(accepted));
                total.push(d.saturating_duration_since(accepted));
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("no reload seen for dep-{idx} within 120 s").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    w1.abort();
    w2.abort();
    Ok((floor, total))
}

async fn reload_bench(quick: bool) -> Result<(), AnyErr> {
    let (n_cm, n_dep, changes) = if quick {
        (1_000, 200, 40)
    } else {
        (10_000, 2_000, 200)
    };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;
    let ns = "bench";
    create_namespace(&client, ns).await?;

    let t = Instant::now();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    create_many(&cms, n_cm, |i| ConfigMap {
        metadata: meta(format!("cm-{i}"), ns),
        data: Some(
            [
                ("v".to_string(), "0".to_string()),
                ("payload".to_string(), "x".repeat(256)),
            ]
            .into(),
        ),
        ..Default::default()
    })
    .await?;
    eprintln!(
        "created {n_cm} ConfigMaps in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    for (round, window) in ["0", "1s"].into_iter().enumerate() {
        let flags = [
            format!("--coalesce-window={window}"),
            "--max-rollouts-per-second=100000".to_string(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (h, launch) = start_hashroll(&plane, &flags)?;
        wait_ready(&launch).await?;
        if round == 0 {
            register_webhook(&plane, &launch)?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let t = Instant::now();
            let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
            create_many(&deps, n_dep, |i| {
                serde_json::from_value(json!({
                    "metadata": {"name": format!("dep-{i}"), "namespace": ns, "annotations": {"reloader.stakater.com/auto": "true"}},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": format!("dep-{i}")}},
                        "template": {"metadata": {"labels": {"app": format!("dep-{i}")}},
                            "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": format!("cm-{i}"), "key": "v"}}}]}]}}}
                }))
                .expect("deployment")
            })
            .await?;
            eprintln!(
                "created {n_dep} Deployments in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let (mut floor, mut total) = measure_reloads(&client, ns, changes, n_dep, round).await?;
        let mut added: Vec<Duration> = floor
            .iter()
            .zip(&total)
            .map(|(f, t)| t.saturating_sub(*f))
            .collect();
        results.push((
            window,
            pct(&mut floor, 0.5),
            pct(&mut floor, 0.99),
            pct(&mut total, 0.5),
            pct(&mut total, 0.99),
            pct(&mut added, 0.5),
        ));
        drop(h);
    }
    println!(
        "\n## reload latency: source write accepted -> workload template patched ({n_cm} ConfigMaps, {n_dep} Deployments, {changes} changes)"
    );
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>14} {:>16}",
        "--coalesce-window", "floor p50", "floor p99", "hashroll p50", "hashroll p99", "added p50"
    );
    for (w, fp50, fp99, tp50, tp99, a50) in &results {
        println!(
            "{:<22} {:>14} {:>14} {:>14} {:>14} {:>16}",
            w,
            ms(*fp50),
            ms(*fp99),
            ms(*tp50),
            ms(*tp99),
            ms(*a50)
        );
    }
    let a0 = results[0].5;
    println!(
        "added over the floor at p50 with window 0: {} (target <= 20 ms: {})",
        ms(a0),
        if a0 <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// hashroll as the cluster grows: at each size (1k Secrets of 2 KiB and 1k Deployments, 10k
/// and 5k, 100k and 20k; half the Deployments opted in, each on its own ConfigMap and a
/// Secret), a first start (which records the workloads created before it), then a restart
/// with nothing changed: time from start to ready, peak RSS, API requests made until a few
/// seconds after ready, and writes (must be 0 on the restart). At the largest size, a second
/// replica (HA follower) idles for 60 s: its CPU time; then the reload latency of opted-in
/// workloads. The baseline is the same binary on the empty cluster.
async fn scale_bench(quick: bool) -> Result<(), AnyErr> {
    let sizes: &[(usize, usize)] = if quick {
        &[(1_000, 1_000), (5_000, 2_000)]
    } else {
        &[(1_000, 1_000), (10_000, 5_000), (100_000, 20_000)]
    };
    let (idle, changes) = if quick { (10, 20) } else { (60, 100) };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;
    for ns in ["scale", "hashroll"] {
        create_namespace(&client, ns).await?;
    }
    let ha = [
        "--enable-ha",
        "--lease-duration=5s",
        "--max-rollouts-per-second=100000",
        "--coalesce-window=0",
    ];
    let mut rows = vec![run_once(&plane, &ha, "empty cluster (baseline)").await?];

    let ns = "scale";
    let (mut have_sec, mut have_dep) = (0, 0);
    let mut leader = None;
    for &(n_sec, n_dep) in sizes {
        // nothing runs while the cluster grows: the first start finds it all unrecorded
        drop(leader.take());
        let t = Instant::now();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        create_many(&secrets, n_sec - have_sec, |i| Secret {
            metadata: meta(format!("s-{}", have_sec + i), ns),
            string_data: Some([("k".to_string(), format!("{:02048}", have_sec + i))].into()),
            ..Default::default()
        })
        .await?;
        // deployment i: even ones opt in as dep-(i/2) on cm-(i/2), odd ones are plain
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        create_many(&cms, n_dep / 2 - have_dep / 2, |i| ConfigMap {
            metadata: meta(format!("cm-{}", have_dep / 2 + i), ns),
            data: Some([("v".to_string(), "0".to_string())].into()),
            ..Default::default()
        })
        .await?;
        let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
        create_many(&deps, n_dep - have_dep, |j| {
            let i = have_dep + j;
            let (name, ann) = if i % 2 == 0 {
                (format!("dep-{}", i / 2), json!({"reloader.stakater.com/auto": "true"}))
            } else {
                (format!("plain-{}", i / 2), json!({}))
            };
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns, "annotations": ann},
                "spec": {"replicas": 0, "paused": true, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "c", "image": "x",
                            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": format!("cm-{}", i / 2), "key": "v"}}}],
                            "envFrom": [{"secretRef": {"name": format!("s-{}", i % n_sec)}}]}]}}}
            }))
            .expect("deployment")
        })
        .await?;
        (have_sec, have_dep) = (n_sec, n_dep);
        eprintln!(
            "{n_sec} Secrets, {n_dep} Deployments ({} ConfigMaps) ready in {:.1}s",
            n_dep / 2,
            t.elapsed().as_secs_f64()
        );
        let what = format!("{n_sec} Secrets, {n_dep} Deployments");
        let first = run_once(&plane, &ha, &format!("{what}: first start")).await?;
        rows.push(first);
        // the restart with nothing changed; it stays up, the leader, for the next steps
        let (row, h) = run_kept(&plane, &ha, &format!("{what}: restart")).await?;
        rows.push(row);
        leader = Some(h);
    }
    println!("\n## scale (half the Deployments opted in; Secrets of 2 KiB)");
    println!(
        "{:<44} {:>9} {:>9} {:>13} {:>7}",
        "", "ready (s)", "RSS (MiB)", "API requests", "writes"
    );
    for r in &rows {
        println!(
            "{:<44} {:>9.1} {:>9.1} {:>13} {:>7}",
            r.what,
            r.ready.as_secs_f64(),
            r.peak_rss as f64 / 1048576.0,
            r.requests,
            r.writes
        );
    }

    // a follower beside the leader, idle
    let (follower, launch) = start_hashroll(&plane, &ha)?;
    wait_ready(&launch).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, req0) = (cpu_ticks(follower.0.id())?, requests(&launch).await?);
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (cpu1, req1) = (cpu_ticks(follower.0.id())?, requests(&launch).await?);
    println!(
        "follower idle {idle} s at the largest size: CPU {:.2} s ({:.2} %), API requests {}",
        (cpu1 - cpu0) as f64 / 100.0,
        (cpu1 - cpu0) as f64 / idle as f64,
        req1 - req0
    );
    drop(follower);

    let (_, n_dep) = sizes[sizes.len() - 1];
    let (mut floor, mut total) = measure_reloads(&client, ns, changes, n_dep / 2, 0).await?;
    let mut added: Vec<Duration> = floor
        .iter()
        .zip(&total)
        .map(|(f, t)| t.saturating_sub(*f))
        .collect();
    println!(
        "reload latency over {changes} changes at the largest size: floor p50 {} p99 {}, hashroll p50 {} p99 {}, added p50 {}",
        ms(pct(&mut floor, 0.5)),
        ms(pct(&mut floor, 0.99)),
        ms(pct(&mut total, 0.5)),
        ms(pct(&mut total, 0.99)),
        ms(pct(&mut added, 0.5))
    );
    drop(leader);
    Ok(())
}

/// One line of the scale table.
struct ScaleRow {
    what: String,
    ready: Duration,
    peak_rss: u64,
    requests: u64,
    writes: u64,
}

/// Starts hashroll, waits until it is ready, leads, and has written what its start-up
/// reconcile found (5 s more, then until nothing is pending), and stops it: its row.
async fn run_once(plane: &Plane, flags: &[&str], what: &str) -> Result<ScaleRow, AnyErr> {
    Ok(run_kept(plane, flags, what).await?.0)
}

/// [`run_once`], and the process, still running.
async fn run_kept(
    plane: &Plane,
    flags: &[&str],
    what: &str,
) -> Result<(ScaleRow, KillOnDrop), AnyErr> {
    let t = Instant::now();
    let (h, launch) = start_hashroll(plane, flags)?;
    wait_ready(&launch).await?;
    let ready = t.elapsed();
    // leading (the previous one was killed: its lease runs out first), then the writes of
    // the start-up reconcile, until none is pending
    let deadline = Instant::now() + Duration::from_secs(300);
    while metric(&launch, "hashroll_leader").await? < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    while metric(&launch, "hashroll_pending_rolls").await? > 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let row = ScaleRow {
        what: what.to_string(),
        ready,
        peak_rss: vm_hwm(h.0.id())?,
        requests: requests(&launch).await?,
        writes: metric(&launch, "hashroll_patch_duration_seconds_count").await? as u64,
    };
    eprintln!(
        "{what}: ready {:.1}s, {} requests, {} writes",
        ready.as_secs_f64(),
        row.requests,
        row.writes
    );
    Ok((row, h))
}

/// The sum of every series of metric `name` on hashroll's /metrics.
async fn metric(launch: &Launch, name: &str) -> Result<f64, AnyErr> {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", launch.metrics_port))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn requests(launch: &Launch) -> Result<u64, AnyErr> {
    Ok(metric(launch, "hashroll_api_requests_total").await? as u64)
}

/// User and system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> Result<u64, AnyErr> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command name (which may hold spaces) in parentheses
    let after = stat.rsplit_once(')').ok_or("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).ok_or("utime")?.parse::<u64>()? + f.get(12).ok_or("stime")?.parse::<u64>()?)
}

fn vm_hwm(pid: u32) -> Result<u64, AnyErr> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmHWM")?
        .parse::<u64>()?
        * 1024)
}

async fn memory_bench(quick: bool) -> Result<(), AnyErr> {
    let n = if quick { 1_000 } else { 10_000 };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;

    // baseline: the same binary on the empty cluster
    let (base, launch) = start_hashroll(&plane, &[])?;
    wait_ready(&launch).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_hwm = vm_hwm(base.0.id())?;
    drop(base);

    let ns = "secrets";
    create_namespace(&client, ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let t = Instant::now();
    create_many(&secrets, n, |i| {
        let mut bytes = vec![0u8; 8192];
        let mut x = (i as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15);
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Secret {
            metadata: meta(format!("s-{i}"), ns),
            data: Some([("blob".to_string(), k8s_openapi::ByteString(bytes))].into()),
            ..Default::default()
        }
    })
    .await?;
    eprintln!(
        "created {n} Secrets of 8 KiB in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let (h, launch) = start_hashroll(&plane, &[])?;
    wait_ready(&launch).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hwm = vm_hwm(h.0.id())?;
    drop(h);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("\n## peak RSS (VmHWM) of hashroll");
    println!(
        "{:<36} {:>12}",
        "empty cluster (baseline)",
        format!("{:.1} MiB", mib(base_hwm))
    );
    println!(
        "{:<36} {:>12}",
        format!("{n} Secrets of 8 KiB"),
        format!("{:.1} MiB", mib(hwm))
    );
    println!(
        "ratio to baseline: {:.2}; target <= 24 MiB: {}",
        hwm as f64 / base_hwm as f64,
        if mib(hwm) <= 24.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
