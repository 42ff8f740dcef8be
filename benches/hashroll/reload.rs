//! `reload`: source write accepted → workload template patched, next to the watch floor.

use super::*;

/// 200 changes (20/s, each to a different ConfigMap used by one Deployment): time from the
/// write being accepted to (a) the ConfigMap's watch event (the floor) and (b) the
/// Deployment's token changing.
pub(crate) async fn measure_reloads(
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

pub(crate) async fn reload_bench(quick: bool) -> Result<(), AnyErr> {
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
        launch.wait_ready(&h, READY_WITHIN).await?;
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
