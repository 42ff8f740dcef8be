//! The Argo Rollouts controller against a plane, for the tests that need it: built from its
//! Go module by `hack/build-argo-rollouts.sh` (run here when the cache lacks it), its CRDs
//! applied server-side (the Rollout CRD is too big for client-side apply's annotation), the
//! controller run out of cluster without leader election, in the plane's process group.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::launch::http_ok;
use crate::plane::{Plane, PlaneError, version};

fn io(context: &str) -> impl FnOnce(std::io::Error) -> PlaneError + '_ {
    move |source| PlaneError::Io {
        context: context.to_string(),
        source,
    }
}

/// Where the build script puts the controller and the CRDs.
pub fn dir() -> PathBuf {
    crate::plane::default_bin_dir()
        .parent()
        .and_then(|p| p.parent())
        .map(|cache| cache.join("argo-rollouts"))
        .unwrap_or_else(|| PathBuf::from("argo-rollouts"))
        .join(version("ARGO_ROLLOUTS_VERSION"))
}

/// Builds the controller unless the cache has it.
pub fn ensure_built() -> Result<PathBuf, PlaneError> {
    let d = dir();
    if !d.join(".complete").exists() {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/build-argo-rollouts.sh");
        let st = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(io("running hack/build-argo-rollouts.sh"))?;
        if !st.success() || !d.join(".complete").exists() {
            return Err(PlaneError::MissingBinary(d.join("bin/rollouts-controller")));
        }
    }
    Ok(d)
}

/// A running Argo Rollouts controller; dropping it stops it.
pub struct ArgoRollouts {
    child: Child,
}

impl ArgoRollouts {
    /// CRDs applied and established, controller up (its /healthz answers).
    pub fn start(plane: &Plane) -> Result<ArgoRollouts, PlaneError> {
        let d = ensure_built()?;
        let crds = d.join("crds");
        plane.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crds.display().to_string(),
        ])?;
        // polled, not `kubectl wait`: that fails at once while the CRD has no conditions yet
        let established = |p: &Plane| {
            p.kubectl(&[
                "get",
                "crd",
                "rollouts.argoproj.io",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
            ])
            .is_ok_and(|s| s.trim() == "True")
        };
        plane.wait_until(
            "the Rollout CRD established",
            Duration::from_secs(60),
            established,
        )?;
        let free = || -> Result<u16, PlaneError> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("picking a port"))?
                .port())
        };
        let (health, metrics) = (free()?, free()?);
        let log = plane.dir().join("logs/argo-rollouts.log");
        let out = std::fs::File::create(&log).map_err(io("creating the controller's log"))?;
        let err = out.try_clone().map_err(io("cloning the log"))?;
        let mut cmd = Command::new(d.join("bin/rollouts-controller"));
        cmd.arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
            .arg("--leader-elect=false")
            .arg(format!("--healthzPort={health}"))
            .arg(format!("--metricsPort={metrics}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = plane.spawn_in_group(&mut cmd)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(PlaneError::Exited {
                    what: "rollouts-controller".into(),
                    status: status.to_string(),
                    logs: log.display().to_string(),
                    tail: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            if http_ok(health, "/healthz") {
                return Ok(ArgoRollouts { child });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        Err(PlaneError::NotReady {
            what: "rollouts-controller /healthz".into(),
            secs: 90,
            logs: log.display().to_string(),
            tail: std::fs::read_to_string(&log).unwrap_or_default(),
        })
    }
}

impl Drop for ArgoRollouts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
