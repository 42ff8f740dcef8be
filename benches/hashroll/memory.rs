//! `memory`: peak RSS with 10,000 Secrets of 8 KiB next to an empty cluster.

use super::*;

pub(crate) async fn memory_bench(quick: bool) -> Result<(), AnyErr> {
    let n = if quick { 1_000 } else { 10_000 };
    let plane = Plane::start(PlaneOptions::default())?;
    let client = client_of(&plane).await?;

    // baseline: the same binary on the empty cluster
    let (base, launch) = start_hashroll(&plane, &[])?;
    launch.wait_ready(&base, READY_WITHIN).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_hwm = vm_hwm(base.id().ok_or("not running")?)?;
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
    launch.wait_ready(&h, READY_WITHIN).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hwm = vm_hwm(h.id().ok_or("not running")?)?;
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
