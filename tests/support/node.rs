//! The real node of a test binary (harness/src/node.rs): one per binary, started on first
//! use, torn down by its reaper when the binary exits. Where the machine cannot run one
//! (not root, no cgroups), the tests that need it say "not run" with the reason and return;
//! anywhere else a node that does not start is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use hashroll_harness::node::{NodeError, RealNode};
use hashroll_harness::plane::Plane;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

static NODE: OnceLock<Result<RealNode, String>> = OnceLock::new();

/// The binary's real node, or `None` (printed as "not run: REASON") where this machine
/// cannot run one.
pub fn real_node(test: &str) -> Option<&'static RealNode> {
    let got = NODE.get_or_init(|| match RealNode::start() {
        Ok(n) => {
            eprintln!(
                "real node up in {:.1}s (plane at {}, node folder {})",
                n.startup.as_secs_f64(),
                n.plane().server(),
                n.dir().display()
            );
            Ok(n)
        }
        Err(NodeError::Unsupported(reason)) => Err(reason),
        Err(e) => panic!("cannot start the real node: {e}"),
    });
    match got {
        Ok(n) => Some(n),
        Err(reason) => {
            eprintln!("{test}: not run: this machine cannot run a real node: {reason}");
            None
        }
    }
}

/// A client of the node's plane.
pub async fn node_client(p: &Plane) -> kube::Client {
    let kc = Kubeconfig::read_from(p.kubeconfig()).expect("plane kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

/// kubectl on the node's plane; panics with its stderr on failure.
pub fn nk(n: &RealNode, args: &[&str]) -> String {
    n.plane().kubectl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl edit` as a person runs it, the editor being `sed -i EXPR` (KUBE_EDITOR).
pub fn kubectl_edit(n: &RealNode, args: &[&str], sed: &str) {
    let editor = format!("sed -i '{}'", sed.replace('\'', "'\\''"));
    let out = Command::new(n.plane().bin().join("kubectl"))
        .arg(format!("--kubeconfig={}", n.plane().kubeconfig().display()))
        .arg("edit")
        .args(args)
        .env("KUBE_EDITOR", editor)
        .output()
        .expect("run kubectl edit");
    assert!(
        out.status.success(),
        "kubectl edit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `f` with the node's and the plane's logs on a time-out.
pub async fn node_wait<T, F, Fut>(n: &RealNode, what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    super::wait_for_then(
        what,
        timeout,
        || format!("{}\n{}", n.plane().log_tails(15), n.log_tails(15)),
        f,
    )
    .await
}

/// The Running, Ready pods of `selector` in `ns` that are not being deleted.
pub async fn ready_pods(client: &kube::Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

/// The OCI archive `make image` writes.
pub fn image_archive() -> PathBuf {
    let path = hashroll_harness::plane::cache_dir()
        .join("image")
        .join(format!("hashroll-{}.oci.tar", env!("CARGO_PKG_VERSION")));
    assert!(
        path.exists(),
        "{} not found: run `make image` first",
        path.display()
    );
    path
}
