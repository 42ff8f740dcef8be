//! `webhook` and `inproc`: the webhook server alone (no cluster), over TLS and in process.

use super::*;

/// The webhook server alone (no cluster): the sources the bench request uses are in its cache.
pub(crate) async fn serve(cert: &str, key: &str, addr: &str) -> Result<(), AnyErr> {
    // logging as in production (info, text): the per-request span is part of the cost
    hashroll::services::telemetry::init("text", "info")?;
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
pub(crate) async fn static_answer(_body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#,
    )
        .into_response()
}

/// Long-named ConfigMaps in the bench server's `tenant` namespace.
pub(crate) const HOSTILE_SOURCES: usize = 3_000;

pub(crate) fn bench_state() -> Result<Arc<hashroll::services::state::State>, AnyErr> {
    use hashroll::cache::SourceCache;
    use hashroll::cache::filter::NamespaceFilter;
    use hashroll::core::names::AnnotationNames;
    use hashroll::core::refs::SourceRef;
    use hashroll::core::selector::LabelSelector;
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
    let state = Arc::new(hashroll::testing::offline_state(
        hashroll::core::digest::KeyRing::single(
            hashroll::core::digest::DigestKey::new(b"bench-key-0123456789abcdef".to_vec())
                .expect("key"),
        ),
        cache,
    ));
    Ok(state)
}

/// The admission path without network: µs per review, for profiling, next to the floor of
/// reading the same body (serde_json scanning it without building anything).
pub(crate) async fn inproc() -> Result<(), AnyErr> {
    if std::env::var_os("BENCH_LOG").is_some() {
        hashroll::services::telemetry::init("text", "info")?;
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

pub(crate) async fn webhook_bench(quick: bool) -> Result<(), AnyErr> {
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
