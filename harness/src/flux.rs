//! Flux's kustomize-controller against a plane, for the GitOps tests: built from its Go
//! module by `hack/build-flux.sh` (run here when the cache lacks it), its CRDs and the source
//! kinds' applied server-side, the controller run out of cluster with the ExternalArtifact
//! feature gate (a test serves the artifact itself, so no source-controller runs), without
//! leader election, in the plane's process group.

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
    crate::plane::cache_dir()
        .join("flux")
        .join(version("FLUX_KUSTOMIZE_CONTROLLER_VERSION"))
}

/// Builds the controller unless the cache has it.
pub fn ensure_built() -> Result<PathBuf, PlaneError> {
    let d = dir();
    if !d.join(".complete").exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/build-flux.sh");
        let st = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(io("running hack/build-flux.sh"))?;
        if !st.success() || !d.join(".complete").exists() {
            return Err(PlaneError::MissingBinary(
                d.join("bin/kustomize-controller"),
            ));
        }
    }
    Ok(d)
}

/// A running kustomize-controller; dropping it stops it.
pub struct Flux {
    child: Child,
    /// the controller's log
    pub log: PathBuf,
}

impl Flux {
    /// CRDs applied and established, controller up (its /readyz answers).
    pub fn start(plane: &Plane) -> Result<Flux, PlaneError> {
        let d = ensure_built()?;
        let crds = d.join("crds");
        plane.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crds.display().to_string(),
        ])?;
        for crd in [
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "externalartifacts.source.toolkit.fluxcd.io",
        ] {
            let established = |p: &Plane| {
                p.kubectl(&[
                    "get",
                    "crd",
                    crd,
                    "-o",
                    r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
                ])
                .is_ok_and(|s| s.trim() == "True")
            };
            plane.wait_until(crd, Duration::from_secs(60), established)?;
        }
        let free = || -> Result<u16, PlaneError> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("picking a port"))?
                .port())
        };
        let (health, metrics) = (free()?, free()?);
        let log = plane.dir().join("logs/kustomize-controller.log");
        let out = std::fs::File::create(&log).map_err(io("creating the controller's log"))?;
        let err = out.try_clone().map_err(io("cloning the log"))?;
        let mut cmd = Command::new(d.join("bin/kustomize-controller"));
        cmd.env("KUBECONFIG", plane.kubeconfig())
            .env("RUNTIME_NAMESPACE", "default")
            .arg("--enable-leader-election=false")
            .arg("--feature-gates=ExternalArtifact=true")
            .arg(format!("--health-addr=127.0.0.1:{health}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .arg("--log-level=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = plane.spawn_in_group(&mut cmd)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(PlaneError::Exited {
                    what: "kustomize-controller".into(),
                    status: status.to_string(),
                    logs: log.display().to_string(),
                    tail: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            if http_ok(health, "/readyz") {
                return Ok(Flux { child, log });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        Err(PlaneError::NotReady {
            what: "kustomize-controller /readyz".into(),
            secs: 90,
            logs: log.display().to_string(),
            tail: std::fs::read_to_string(&log).unwrap_or_default(),
        })
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
