//! `hostile`: normal reviews beside a hostile tenant's, and peak RSS under a flood.

use super::*;

/// What one hostile tenant sends, each kind at its own fixed rate.
pub(crate) fn hostile_bodies(max_body: usize) -> Vec<(&'static str, Bytes)> {
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
pub(crate) fn hostile_sender(
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

pub(crate) async fn hostile_bench(quick: bool) -> Result<(), AnyErr> {
    const MAX_BODY: usize = 4 << 20;
    // per second: each small hostile kind, and maximum-size bodies (20 MiB/s of them; the
    // apiserver stores objects of at most 1.5 MiB, so a review's body is rarely above 3 MiB)
    const HOSTILE_RATE: u32 = 25;
    const BIG_RATE: u32 = 5;
    let (server, addr, tls) = start_server().await?;
    let pid = server.id().ok_or("not running")?;
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
    fair_bench(quick).await
}

/// Closed loop that goes on after an error (reconnecting): a flood counts what was
/// answered and what was refused (503/408 or a closed connection).
pub(crate) async fn closed_loop_tolerant(
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

/// A costly review of the `tenant` namespace: 64 reload-list regexes (the most a list
/// takes), each matched against the namespace's long-named sources.
pub(crate) fn costly_review() -> Bytes {
    let regexes: Vec<String> = (0..64).map(|i| format!("l+-{i}.*")).collect();
    review_body(
        "tenant",
        json!({"configmap.reloader.stakater.com/reload": regexes.join(",")}),
        0,
    )
}

/// A plain reload-list review of another namespace (`ns1`): one name, a lookup.
pub(crate) fn plain_reload_review() -> Bytes {
    review_body(
        "ns1",
        json!({"configmap.reloader.stakater.com/reload": "test-config-env"}),
        0,
    )
}

/// Sends `body` from `conns` connections as fast as each is answered, on a runtime (and
/// threads) of its own, until `stop`: (answered with a patch or none, answered refused
/// with the throttle warning, failed).
pub(crate) fn flood_thread(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    conns: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Result<(usize, usize, usize), String>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for _ in 0..conns {
                let (tls, body, stop) = (tls.clone(), body.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut ok, mut throttled, mut failed) = (0, 0, 0);
                    let mut conn = None;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            conn = connect(addr, tls.clone()).await.ok();
                        }
                        let Some(s) = conn.as_mut() else {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        match call(s, "/mutate", &body).await {
                            Ok(b) if memchr::memmem::find(&b, b"without a record").is_some() => {
                                throttled += 1
                            }
                            Ok(_) => ok += 1,
                            Err(_) => {
                                failed += 1;
                                conn = None;
                            }
                        }
                    }
                    (ok, throttled, failed)
                }));
            }
            let (mut ok, mut throttled, mut failed) = (0, 0, 0);
            for t in tasks {
                let (o, t, f) = t.await.map_err(|e| e.to_string())?;
                ok += o;
                throttled += t;
                failed += f;
            }
            Ok((ok, throttled, failed))
        })
    })
}

/// `hostile` (and `fair` alone): another namespace's plain reload-list reviews at a fixed
/// rate, alone and beside one namespace's flood of costly reload-list reviews on 32 and on
/// 128 connections; p50/p99 of the plain ones, from the moment each was due.
pub(crate) async fn fair_bench(quick: bool) -> Result<(), AnyErr> {
    const RATE: u32 = 100;
    let (server, addr, tls) = start_server().await?;
    let plain = plain_reload_review();
    let costly = costly_review();
    let dur = Duration::from_secs(if quick { 3 } else { 10 });
    // both are answered with a stamp before the timing starts
    let t = Instant::now();
    for body in [&plain, &costly] {
        let mut s = connect(addr, tls.clone()).await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&call(&mut s, "/mutate", body).await?)?;
        if answer["response"]["patch"].as_str().is_none() {
            return Err(format!("not stamped: {answer}").into());
        }
    }
    let first = t.elapsed();
    open_loop(
        addr,
        tls.clone(),
        "/mutate",
        plain.clone(),
        RATE,
        Duration::from_secs(1),
    )
    .await?;
    let alone = open_loop(addr, tls.clone(), "/mutate", plain.clone(), RATE, dur).await?;
    let mut rows = vec![(
        "plain reload list alone (baseline)".to_string(),
        alone,
        None,
    )];
    for conns in [32, 128] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood = flood_thread(addr, tls.clone(), costly.clone(), conns, stop.clone());
        // the flood fills its queue before the timing starts
        tokio::time::sleep(Duration::from_millis(500)).await;
        let under = open_loop(addr, tls.clone(), "/mutate", plain.clone(), RATE, dur).await?;
        stop.store(true, Ordering::Relaxed);
        let counts = tokio::task::spawn_blocking(move || flood.join())
            .await?
            .map_err(|_| "the flood client panicked")??;
        rows.push((
            format!("beside a flood on {conns} connections"),
            under,
            Some(counts),
        ));
    }
    println!(
        "\n## plain reload-list reviews of one namespace at {RATE}/s, alone and beside another namespace's flood of costly ones (64 regexes over {HOSTILE_SOURCES} sources; one took {} alone, with its plain one)",
        ms(first)
    );
    println!(
        "{:<40} {:>11} {:>11} {:>34}",
        "load", "p50", "p99", "flood: stamped / refused / failed"
    );
    for (name, s, counts) in &rows {
        let flood = counts
            .map(|(o, t, f)| format!("{o} / {t} / {f}"))
            .unwrap_or_default();
        println!(
            "{:<40} {:>11} {:>11} {:>34}",
            name,
            ms(s.pct(0.5)),
            ms(s.pct(0.99)),
            flood
        );
    }
    drop(server);
    Ok(())
}
