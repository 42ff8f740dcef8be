//! Third-party command-line tools the tests check hashroll's artifacts with (`helm` for
//! the chart, `promtool` for the alert rules), each built from its Go module by
//! `hack/build-tools.sh` (run here when the cache lacks it) into the plane's cache.

use std::path::PathBuf;
use std::process::Command;

use crate::plane::PlaneError;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/build-tools.sh")
}

/// The path of `name` (`helm` or `promtool`), built first if the cache lacks it.
pub fn tool(name: &str) -> Result<PathBuf, PlaneError> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| PlaneError::Io { context, source }
    };
    let out = Command::new("bash")
        .arg(script())
        .args(["path", name])
        .output()
        .map_err(io("running hack/build-tools.sh path"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let marker = path
        .parent()
        .and_then(|bin| bin.parent())
        .map(|d| d.join(".complete"));
    if !marker.as_ref().is_some_and(|m| m.exists()) {
        let st = Command::new("bash")
            .arg(script())
            .arg(name)
            .status()
            .map_err(io("running hack/build-tools.sh"))?;
        if !st.success() {
            return Err(PlaneError::MissingBinary(path));
        }
    }
    if !path.exists() {
        return Err(PlaneError::MissingBinary(path));
    }
    Ok(path)
}
