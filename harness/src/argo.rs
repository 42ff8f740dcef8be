//! The Argo Rollouts controller against a plane, for the tests that need it: built from its
//! Go module by `hack/build-argo-rollouts.sh` (run here when the cache lacks it), its CRDs
//! applied server-side (the Rollout CRD is too big for client-side apply's annotation), the
//! controller run out of cluster without leader election, in the plane's process group.

use std::path::PathBuf;
use std::process::{Child, Command};

use crate::controller::{free_port, install_crds, io, start};
use crate::plane::{Plane, PlaneError, version};

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
        install_crds(plane, &d.join("crds"), &["rollouts.argoproj.io"])?;
        let (health, metrics) = (free_port()?, free_port()?);
        let mut cmd = Command::new(d.join("bin/rollouts-controller"));
        cmd.arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
            .arg("--leader-elect=false")
            .arg(format!("--healthzPort={health}"))
            .arg(format!("--metricsPort={metrics}"));
        let child = start(plane, &mut cmd, "argo-rollouts", health, "/healthz")?;
        Ok(ArgoRollouts { child })
    }
}

impl Drop for ArgoRollouts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
