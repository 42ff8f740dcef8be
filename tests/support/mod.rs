//! Shared by the e2e tests: ONE real control plane per test binary (started on first use,
//! stopped by its reaper when the binary exits, however it exits), a namespace per test,
//! and deadline-bound waits.
#![allow(dead_code)]

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashroll::plane::{Plane, PlaneOptions};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

static PLANE: OnceLock<Plane> = OnceLock::new();
static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The plane of this test binary.
pub fn plane() -> &'static Plane {
    PLANE.get_or_init(|| match Plane::start(PlaneOptions::default()) {
        Ok(p) => {
            eprintln!(
                "control plane up in {:.1}s at {} (logs: {})",
                p.startup.as_secs_f64(),
                p.server(),
                p.dir().join("logs").display()
            );
            p
        }
        Err(e) => panic!("cannot start the control plane: {e}"),
    })
}

/// A client of the plane, for the calling test's runtime.
pub async fn client() -> kube::Client {
    let p = plane();
    let kc = Kubeconfig::read_from(p.kubeconfig()).expect("plane kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

/// Creates a fresh namespace for one test.
pub fn namespace(prefix: &str) -> String {
    let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}-{}-{n}", std::process::id() % 100000);
    kubectl(&["create", "namespace", &name]);
    name
}

/// Runs the plane's kubectl; panics with its stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    plane().kubectl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl apply -f -` (or any verb reading stdin) with `yaml`.
pub fn kubectl_stdin(args: &[&str], yaml: &str) -> String {
    plane()
        .kubectl_stdin(args, yaml)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every 200 ms until it yields `Some`, or panics after `timeout` with `what`
/// and the tails of the plane's logs.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {}s waiting for {what}\n{}",
                timeout.as_secs(),
                plane().log_tails(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ReplicaSets in `ns` matching `selector`.
pub async fn replicasets(client: &kube::Client, ns: &str, selector: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list replicasets")
        .items
}

/// Generous deadlines: the tests must pass on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(90);
