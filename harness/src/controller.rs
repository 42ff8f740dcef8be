//! A third-party controller run outside the plane for the tests that need one (Argo
//! Rollouts, Flux's kustomize-controller): its CRDs applied server-side and waited for, a free
//! port for its probes, the process in the plane's process group with its output in the
//! plane's logs, and a wait until its probe answers.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::launch::http_ok;
use crate::plane::{Plane, PlaneError};

pub(crate) fn io(context: &str) -> impl FnOnce(std::io::Error) -> PlaneError + '_ {
    move |source| PlaneError::Io {
        context: context.to_string(),
        source,
    }
}

/// Applies the CRDs in `dir` server-side (some are too big for client-side apply's
/// annotation) and waits until each of `names` is Established.
pub(crate) fn install_crds(plane: &Plane, dir: &Path, names: &[&str]) -> Result<(), PlaneError> {
    plane.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &dir.display().to_string(),
    ])?;
    for crd in names {
        // polled, not `kubectl wait`: that fails at once while the CRD has no conditions yet
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
        plane.wait_until(
            &format!("the CRD {crd} established"),
            Duration::from_secs(60),
            established,
        )?;
    }
    Ok(())
}

/// A free loopback port.
pub(crate) fn free_port() -> Result<u16, PlaneError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("picking a port"))?
        .port())
}

/// Starts `cmd` with its output in the plane's `logs/<what>.log`, and waits (90 s at most)
/// until `http://127.0.0.1:<port><path>` answers 200; an exit first is an error with the
/// log's text.
pub(crate) fn start(
    plane: &Plane,
    cmd: &mut Command,
    what: &str,
    port: u16,
    path: &str,
) -> Result<Child, PlaneError> {
    let log = plane.dir().join(format!("logs/{what}.log"));
    let out = std::fs::File::create(&log).map_err(io("creating the controller's log"))?;
    let err = out.try_clone().map_err(io("cloning the log"))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = plane.spawn_in_group(cmd)?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(PlaneError::Exited {
                what: what.into(),
                status: status.to_string(),
                logs: log.display().to_string(),
                tail: std::fs::read_to_string(&log).unwrap_or_default(),
            });
        }
        if http_ok(port, path) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    Err(PlaneError::NotReady {
        what: format!("{what} {path}"),
        secs: 90,
        logs: log.display().to_string(),
        tail: std::fs::read_to_string(&log).unwrap_or_default(),
    })
}
