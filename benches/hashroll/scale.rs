//! `scale`: start, restart and follower costs at growing cluster sizes.

use super::*;

/// hashroll as the cluster grows: at each size (1k Secrets of 2 KiB and 1k Deployments, 10k
/// and 5k, 100k and 20k; half the Deployments opted in, each on its own ConfigMap and a
/// Secret), a first start (which records the workloads created before it), then a restart
/// with nothing changed: time from start to ready, peak RSS, API requests made until a few
/// seconds after ready, and writes (must be 0 on the restart). At the largest size, a second
/// replica (HA follower) idles for 60 s: its CPU time; then the reload latency of opted-in
/// workloads; then restarts with a change made as soon as each is ready (its start-up
/// reconcile still walking every workload): start to ready, and the change to its roll
/// next to the change to its own watch event (the floor). The baseline is the same binary
/// on the empty cluster.
pub(crate) async fn scale_bench(scale: Scale) -> Result<(), AnyErr> {
    let sizes: &[(usize, usize)] = match scale {
        Scale::Quick => &[(1_000, 1_000), (5_000, 2_000)],
        Scale::Full => &[(1_000, 1_000), (10_000, 5_000), (100_000, 20_000)],
        // 20k objects: 5k Secrets, 5k ConfigMaps, 10k Deployments (5k opted in)
        Scale::Restart => &[(5_000, 10_000)],
    };
    let quick = scale == Scale::Quick;
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

    if scale == Scale::Restart {
        drop(leader.take());
    } else {
        follower_and_reloads(&plane, &client, &ha, ns, sizes, idle, changes).await?;
    }
    drop(leader);
    let rounds = if quick { 5 } else { 10 };
    let r = restart_then_change(&plane, &client, ns, sizes[sizes.len() - 1].1 / 2, rounds).await?;
    let mut ready: Vec<Duration> = r.iter().map(|x| x.0).collect();
    let mut floor: Vec<Duration> = r.iter().map(|x| x.1).collect();
    let mut roll: Vec<Duration> = r.iter().map(|x| x.2).collect();
    let mut first: Vec<Duration> = r.iter().map(|x| x.0 + x.2).collect();
    println!(
        "restart, then a change at ready, over {rounds} restarts at the largest size: ready p50 {}, change to its watch event (floor) p50 {} max {}, change to roll p50 {} max {}, start to roll p50 {} max {}",
        ms(pct(&mut ready, 0.5)),
        ms(pct(&mut floor, 0.5)),
        ms(pct(&mut floor, 1.0)),
        ms(pct(&mut roll, 0.5)),
        ms(pct(&mut roll, 1.0)),
        ms(pct(&mut first, 0.5)),
        ms(pct(&mut first, 1.0)),
    );
    Ok(())
}

/// Which sizes `scale` benches: `--quick`, the full ladder, or (`restart`) one cluster of
/// 20k objects for the restart steps alone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    Quick,
    Full,
    Restart,
}

impl Scale {
    pub(crate) fn of(quick: bool) -> Scale {
        if quick { Scale::Quick } else { Scale::Full }
    }
}

/// At the largest size: a follower idle beside the leader (its CPU and API requests), then
/// the reload latency of opted-in workloads.
async fn follower_and_reloads(
    plane: &Plane,
    client: &kube::Client,
    ha: &[&str],
    ns: &str,
    sizes: &[(usize, usize)],
    idle: u64,
    changes: usize,
) -> Result<(), AnyErr> {
    // a follower beside the leader, idle
    let (follower, launch) = start_hashroll(plane, ha)?;
    launch.wait_ready(&follower, READY_WITHIN).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, req0) = (
        cpu_ticks(follower.id().ok_or("not running")?)?,
        requests(&launch).await?,
    );
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (cpu1, req1) = (
        cpu_ticks(follower.id().ok_or("not running")?)?,
        requests(&launch).await?,
    );
    println!(
        "follower idle {idle} s at the largest size: CPU {:.2} s ({:.2} %), API requests {}",
        (cpu1 - cpu0) as f64 / 100.0,
        (cpu1 - cpu0) as f64 / idle as f64,
        req1 - req0
    );
    drop(follower);

    let (_, n_dep) = sizes[sizes.len() - 1];
    let (mut floor, mut total) = measure_reloads(client, ns, changes, n_dep / 2, 0).await?;
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
    Ok(())
}

/// `rounds` times: hashroll started (no HA, no coalesce window), and once it is ready one
/// opted-in Deployment's ConfigMap changed: (start to ready, the change to its watch event,
/// the change to the Deployment's new token), each.
async fn restart_then_change(
    plane: &Plane,
    client: &kube::Client,
    ns: &str,
    opted: usize,
    rounds: usize,
) -> Result<Vec<(Duration, Duration, Duration)>, AnyErr> {
    let flags = ["--max-rollouts-per-second=100000", "--coalesce-window=0"];
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let token = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("hashroll.dev/config-hash").cloned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for round in 0..rounds {
        let idx = (round * 131 + 17) % opted;
        let (cm, dep) = (format!("cm-{idx}"), format!("dep-{idx}"));
        let before = token(&deps.get(&dep).await?);
        let v = format!("restart-{round}");
        // the watches run before the start, so each event is timed as it arrives
        let seen_cm = {
            let (cms, v) = (cms.clone(), v.clone());
            let cfg = watcher::Config::default().fields(&format!("metadata.name={cm}"));
            tokio::spawn(async move {
                let mut s = watcher(cms, cfg).boxed();
                while let Ok(Some(ev)) = s.try_next().await {
                    if let watcher::Event::Apply(c) = ev
                        && c.data.as_ref().and_then(|d| d.get("v")) == Some(&v)
                    {
                        return Some(Instant::now());
                    }
                }
                None
            })
        };
        let rolled = {
            let (deps, before) = (deps.clone(), before.clone());
            let cfg = watcher::Config::default().fields(&format!("metadata.name={dep}"));
            tokio::spawn(async move {
                let mut s = watcher(deps, cfg).boxed();
                while let Ok(Some(ev)) = s.try_next().await {
                    if let watcher::Event::Apply(d) = ev
                        && token(&d) != before
                    {
                        return Some(Instant::now());
                    }
                }
                None
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await; // both watches listed
        let t = Instant::now();
        let (h, launch) = start_hashroll(plane, &flags)?;
        launch.wait_ready(&h, READY_WITHIN).await?;
        let ready = t.elapsed();
        cms.patch(
            &cm,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": v}})),
        )
        .await?;
        let changed = Instant::now();
        let within = Duration::from_secs(120);
        let seen = tokio::time::timeout(within, seen_cm).await??;
        let rolled = tokio::time::timeout(within, rolled).await??;
        let (Some(seen), Some(rolled)) = (seen, rolled) else {
            return Err(format!("no roll of {dep} seen").into());
        };
        let row = (
            ready,
            seen.saturating_duration_since(changed),
            rolled.saturating_duration_since(changed),
        );
        eprintln!(
            "restart {round}: ready {}, floor {}, change to roll {}",
            ms(row.0),
            ms(row.1),
            ms(row.2)
        );
        out.push(row);
        drop(h);
    }
    Ok(out)
}

/// One line of the scale table.
pub(crate) struct ScaleRow {
    pub(crate) what: String,
    pub(crate) ready: Duration,
    pub(crate) peak_rss: u64,
    pub(crate) requests: u64,
    pub(crate) writes: u64,
}

/// Starts hashroll, waits until it is ready, leads, and has written what its start-up
/// reconcile found (5 s more, then until nothing is pending), and stops it: its row.
pub(crate) async fn run_once(
    plane: &Plane,
    flags: &[&str],
    what: &str,
) -> Result<ScaleRow, AnyErr> {
    Ok(run_kept(plane, flags, what).await?.0)
}

/// [`run_once`], and the process, still running.
pub(crate) async fn run_kept(
    plane: &Plane,
    flags: &[&str],
    what: &str,
) -> Result<(ScaleRow, Process), AnyErr> {
    let t = Instant::now();
    let (h, launch) = start_hashroll(plane, flags)?;
    launch.wait_ready(&h, READY_WITHIN).await?;
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
        peak_rss: vm_hwm(h.id().ok_or("not running")?)?,
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
