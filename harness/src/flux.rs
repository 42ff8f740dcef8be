//! Flux's kustomize-controller against a plane, for the GitOps tests: built from its Go
//! module by `hack/build-flux.sh` (run here when the cache lacks it), its CRDs and the source
//! kinds' applied server-side, the controller run out of cluster with the ExternalArtifact
//! feature gate (a test serves the artifact itself, so no source-controller runs), without
//! leader election, in the plane's process group.

use std::path::PathBuf;
use std::process::{Child, Command};

use crate::controller::{free_port, install_crds, io, start};
use crate::plane::{Plane, PlaneError, version};

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
}

impl Flux {
    /// CRDs applied and established, controller up (its /readyz answers).
    pub fn start(plane: &Plane) -> Result<Flux, PlaneError> {
        let d = ensure_built()?;
        install_crds(
            plane,
            &d.join("crds"),
            &[
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "externalartifacts.source.toolkit.fluxcd.io",
            ],
        )?;
        let (health, metrics) = (free_port()?, free_port()?);
        let mut cmd = Command::new(d.join("bin/kustomize-controller"));
        cmd.env("KUBECONFIG", plane.kubeconfig())
            .env("RUNTIME_NAMESPACE", "default")
            .arg("--enable-leader-election=false")
            .arg("--feature-gates=ExternalArtifact=true")
            .arg(format!("--health-addr=127.0.0.1:{health}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .arg("--log-level=debug");
        let child = start(plane, &mut cmd, "kustomize-controller", health, "/readyz")?;
        Ok(Flux { child })
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
