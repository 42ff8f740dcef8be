//! `held`: one change rolled at once next to the same change held behind a failed wave.

use super::*;

/// A change of one ConfigMap that N Deployments track, rolled at once (no order) in one
/// namespace and, in another, held behind a first wave whose rollout fails (its one pod
/// cannot be scheduled; a 1 s rollout timeout): hashroll's CPU from the change until every
/// check is done (all rolled; all but the first held) and 10 s more, side by side.
pub(crate) async fn held_bench(quick: bool) -> Result<(), AnyErr> {
    let n = if quick { 300 } else { 1_000 };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;
    let flags = ["--coalesce-window=0", "--max-rollouts-per-second=100000"];
    let (h, launch) = start_hashroll(&plane, &flags)?;
    launch.wait_ready(&h, READY_WITHIN).await?;
    register_webhook(&plane, &launch)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = h.id().ok_or("not running")?;
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
