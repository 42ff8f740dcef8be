//! The Secrets Store CSI Driver's CRDs against a plane, for the tests of hashroll's CSI
//! integration: copied out of the driver's Go module by `hack/fetch-csi-crds.sh` (run here
//! when the cache lacks them) and applied. The driver itself is a node plugin that mounts
//! volumes; the tests write its `SecretProviderClassPodStatus` objects as it does.

use std::path::PathBuf;
use std::process::Command;

use crate::plane::{Plane, PlaneError, version};

/// Where the script puts the CRDs.
pub fn dir() -> PathBuf {
    crate::plane::cache_dir()
        .join("secrets-store-csi")
        .join(version("SECRETS_STORE_CSI_VERSION"))
}

/// Copies the CRDs unless the cache has them.
pub fn ensure_fetched() -> Result<PathBuf, PlaneError> {
    let d = dir();
    if !d.join(".complete").exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/fetch-csi-crds.sh");
        let st = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|source| PlaneError::Io {
                context: "running hack/fetch-csi-crds.sh".into(),
                source,
            })?;
        if !st.success() || !d.join(".complete").exists() {
            return Err(PlaneError::MissingBinary(d.join("crds")));
        }
    }
    Ok(d.join("crds"))
}

/// Applies the CRDs and waits until both are established.
pub fn install(plane: &Plane) -> Result<(), PlaneError> {
    let crds = ensure_fetched()?;
    crate::controller::install_crds(
        plane,
        &crds,
        &[
            "secretproviderclasses.secrets-store.csi.x-k8s.io",
            "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io",
        ],
    )
}
