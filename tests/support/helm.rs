//! Helm, built from its Go module by the harness, with its own homes (nothing read from or
//! written to the user's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `helm ARGS` against the plane of `kubeconfig`: stdout, or the error with both outputs.
pub fn helm(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    static HELM: OnceLock<(PathBuf, tempfile::TempDir)> = OnceLock::new();
    let (bin, home) = HELM.get_or_init(|| {
        let bin = hashroll_harness::tools::tool("helm")
            .unwrap_or_else(|e| panic!("cannot build helm: {e}"));
        (bin, tempfile::tempdir().unwrap())
    });
    let out = Command::new(bin)
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run helm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "helm {args:?}: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `helm template RELEASE CHART -n NAMESPACE` for the plane's Kubernetes version (offline,
/// Helm would take v1.20.0), with `--set`s and values files; no cluster is read.
pub fn template(
    release: &str,
    chart: &str,
    namespace: &str,
    sets: &[&str],
    files: &[&Path],
) -> Result<String, String> {
    let kv = hashroll_harness::plane::version("KUBERNETES_VERSION");
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec![
        "template",
        release,
        chart,
        "-n",
        namespace,
        "--kube-version",
        kv,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    for f in &files {
        args.extend(["--values", f.as_str()]);
    }
    helm(Path::new("/dev/null"), &args)
}
