//! Argo CD against a plane, for the GitOps tests: its multi-call binary built from its Go
//! module by `hack/build-argocd.sh` (run here when the cache lacks it), run as
//! `argocd-repo-server` and `argocd-application-controller` beside a redis of their own, all
//! three in the plane's process group. The controller runs out of cluster: with
//! `ARGOCD_FAKE_IN_CLUSTER=true` the in-cluster destination (`https://kubernetes.default.svc`)
//! is reached through the plane's kubeconfig. Its settings are what an install holds in its
//! namespace: the CRDs, a labelled `argocd-cm`, an `argocd-secret` and the `default`
//! AppProject. Applications come from `file://` Git repositories the tests make, as plain
//! manifests or a Helm chart (the repo-server runs the harness's `helm`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::controller::{free_port, install_crds, io, start};
use crate::plane::{Plane, PlaneError, version};

/// The namespace Argo CD runs in, where Applications live.
pub const NAMESPACE: &str = "argocd";

/// How often the controller compares every Application with Git, and how long the
/// repo-server trusts a branch's resolved commit: short, so that a commit is seen within
/// seconds (an install polls every 3 minutes or is told by a Git webhook).
const RECONCILIATION: &str = "5s";

/// The script the repo-server runs (found on PATH) on every revision it renders.
const VERIFY_WRAPPER: &str = "bin/git-verify-wrapper.sh";

/// Where the build script puts the binary and the CRDs.
pub fn dir() -> PathBuf {
    crate::plane::cache_dir()
        .join("argocd")
        .join(version("ARGOCD_VERSION"))
}

/// Builds Argo CD unless the cache has it.
pub fn ensure_built() -> Result<PathBuf, PlaneError> {
    let d = dir();
    let built = |d: &Path| d.join(".complete").exists() && d.join(VERIFY_WRAPPER).exists();
    if !built(&d) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/build-argocd.sh");
        let st = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(io("running hack/build-argocd.sh"))?;
        if !st.success() || !built(&d) {
            return Err(PlaneError::MissingBinary(d.join("bin/argocd")));
        }
    }
    Ok(d)
}

/// The settings an install keeps in its namespace: `argocd-cm` and `argocd-secret` (both
/// found by the label `app.kubernetes.io/part-of: argocd`), and the `default` AppProject,
/// which lets an Application take any source to any destination. (`server.secretkey`
/// signs the tokens of Argo CD's API server, which does not run here.)
fn settings() -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: {NAMESPACE}
  labels: {{app.kubernetes.io/part-of: argocd}}
data: {{}}
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: {NAMESPACE}
  labels: {{app.kubernetes.io/part-of: argocd}}
stringData:
  server.secretkey: not-a-secret-no-api-server-runs
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: default
  namespace: {NAMESPACE}
spec:
  sourceRepos: ["*"]
  destinations: [{{server: "*", namespace: "*"}}]
  clusterResourceWhitelist: [{{group: "*", kind: "*"}}]
"#
    )
}

/// A running Argo CD (redis, repo-server, application-controller); dropping it stops them.
pub struct ArgoCd {
    children: Vec<Child>,
}

impl ArgoCd {
    /// CRDs established, settings in place, redis answering, repo-server and controller up
    /// (their /healthz answers).
    pub fn start(plane: &Plane) -> Result<ArgoCd, PlaneError> {
        let d = ensure_built()?;
        // the repo-server renders Helm charts with `helm` from PATH, as its image has it
        let helm = crate::tools::tool("helm")?;
        let mut dirs = vec![d.join("bin")];
        dirs.extend(helm.parent().map(Path::to_path_buf));
        let path = std::env::var_os("PATH").unwrap_or_default();
        dirs.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(dirs).unwrap_or(path);
        install_crds(
            plane,
            &d.join("crds"),
            &["applications.argoproj.io", "appprojects.argoproj.io"],
        )?;
        plane.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"),
        )?;
        plane.kubectl_stdin(&["apply", "-f", "-"], &settings())?;

        // everything Argo CD writes outside the cluster goes under the plane's directory:
        // the repo-server's clones (TMPDIR) and its askpass socket
        let home = plane.dir().join("argocd");
        let tmp = home.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io("creating Argo CD's directory"))?;
        let mut children = Vec::new();

        let redis = free_port()?;
        children.push(start_redis(plane, &home, redis)?);
        let redis_addr = format!("127.0.0.1:{redis}");

        let (repo, repo_metrics) = (free_port()?, free_port()?);
        let mut cmd = argocd(&d, &home, &path, "argocd-repo-server");
        cmd.arg(format!("--redis={redis_addr}"))
            .arg("--disable-tls")
            // its default names a mounted Secret's file, refused beside --disable-tls
            .arg("--client-ca-path=")
            .arg("--address=127.0.0.1")
            .arg(format!("--port={repo}"))
            .arg("--metrics-address=127.0.0.1")
            .arg(format!("--metrics-port={repo_metrics}"));
        let mut started = ArgoCd { children };
        started.children.push(start(
            plane,
            &mut cmd,
            "argocd-repo-server",
            repo_metrics,
            "/healthz",
        )?);

        let metrics = free_port()?;
        let mut cmd = argocd(&d, &home, &path, "argocd-application-controller");
        cmd.env("ARGOCD_FAKE_IN_CLUSTER", "true")
            .env("KUBECONFIG", plane.kubeconfig())
            .arg(format!("--namespace={NAMESPACE}"))
            .arg(format!("--redis={redis_addr}"))
            .arg(format!("--repo-server=127.0.0.1:{repo}"))
            .arg("--repo-server-plaintext")
            .arg(format!("--metrics-port={metrics}"));
        started.children.push(start(
            plane,
            &mut cmd,
            "argocd-application-controller",
            metrics,
            "/healthz",
        )?);
        Ok(started)
    }
}

/// The multi-call binary as `name` (it picks its part by `ARGOCD_BINARY_NAME`), logging as
/// text, with the environment both parts share: `path` as PATH (its `bin/` first, for the
/// repo-server's git-verify-wrapper.sh, then helm's).
fn argocd(d: &Path, home: &Path, path: &std::ffi::OsStr, name: &str) -> Command {
    let mut cmd = Command::new(d.join("bin/argocd"));
    cmd.env("ARGOCD_BINARY_NAME", name)
        .env("PATH", path)
        .env("ARGOCD_RECONCILIATION_TIMEOUT", RECONCILIATION)
        .env("ARGOCD_RECONCILIATION_JITTER", "0s")
        .env("ARGOCD_GPG_ENABLED", "false")
        .env("ARGOCD_ASK_PASS_SOCK", home.join("askpass.sock"))
        .env("TMPDIR", home.join("tmp"))
        .env("HOME", home)
        .arg("--logformat=text")
        .arg("--loglevel=info");
    cmd
}

/// redis-server on `port`, loopback only, keeping nothing on disk; waits (30 s at most)
/// until it takes connections.
fn start_redis(plane: &Plane, home: &Path, port: u16) -> Result<Child, PlaneError> {
    let log = plane.dir().join("logs/argocd-redis.log");
    let out = std::fs::File::create(&log).map_err(io("creating redis's log"))?;
    let err = out.try_clone().map_err(io("cloning the log"))?;
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut child = plane.spawn_in_group(&mut cmd)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(PlaneError::Exited {
                what: "redis-server".into(),
                status: status.to_string(),
                logs: log.display().to_string(),
                tail: std::fs::read_to_string(&log).unwrap_or_default(),
            });
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    Err(PlaneError::NotReady {
        what: "redis-server".into(),
        secs: 30,
        logs: log.display().to_string(),
        tail: std::fs::read_to_string(&log).unwrap_or_default(),
    })
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        // the controller first, then what it talks to
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
