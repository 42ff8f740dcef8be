//! What the cluster benches share: hashroll started against a plane, bulk creates,
//! metrics and /proc readings.

use super::*;

/// How long hashroll has to answer /readyz.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(300);

pub(crate) async fn client_of(plane: &Plane) -> Result<kube::Client, AnyErr> {
    let kc = kube::config::Kubeconfig::read_from(plane.kubeconfig())?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.read_timeout = Some(Duration::from_secs(60));
    Ok(kube::Client::try_from(cfg)?)
}

/// hashroll (the release build of this crate's binary) against the plane.
pub(crate) fn start_hashroll(plane: &Plane, flags: &[&str]) -> Result<(Process, Launch), AnyErr> {
    let launch = Launch::prepare(Path::new(env!("CARGO_BIN_EXE_hashroll")))?;
    launch.issue_cert(plane)?;
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let mut cmd = launch.command(plane.kubeconfig(), "warn", false, &flags)?;
    Ok((launch.start(plane, &mut cmd)?, launch))
}

pub(crate) async fn create_many<K, F>(api: &Api<K>, n: usize, make: F) -> Result<(), AnyErr>
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

pub(crate) async fn create_namespace(client: &kube::Client, ns: &str) -> Result<(), AnyErr> {
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

pub(crate) fn meta(name: String, ns: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(ns.to_string()),
        ..Default::default()
    }
}

pub(crate) fn register_webhook(plane: &Plane, launch: &Launch) -> Result<(), AnyErr> {
    let yaml = launch.webhook_config(plane, "hashroll-bench", Scope::AllButSystem);
    plane.kubectl_stdin(&["apply", "-f", "-"], &yaml)?;
    Ok(())
}

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// The sum of every series of metric `name` on hashroll's /metrics.
pub(crate) async fn metric(launch: &Launch, name: &str) -> Result<f64, AnyErr> {
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

pub(crate) async fn requests(launch: &Launch) -> Result<u64, AnyErr> {
    Ok(metric(launch, "hashroll_api_requests_total").await? as u64)
}

/// User and system CPU time of a process, in clock ticks (1/100 s).
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64, AnyErr> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command name (which may hold spaces) in parentheses
    let after = stat.rsplit_once(')').ok_or("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).ok_or("utime")?.parse::<u64>()? + f.get(12).ok_or("stime")?.parse::<u64>()?)
}

pub(crate) fn vm_hwm(pid: u32) -> Result<u64, AnyErr> {
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
