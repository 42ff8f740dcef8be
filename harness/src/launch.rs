//! hashroll started against a plane, the one way the e2e tests and the bench do it: a
//! folder with a serving certificate from the plane's CA and an HMAC key file, two free
//! loopback ports, the `hashroll run` command line, the process (killed when dropped), and
//! the wait for its readiness.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::plane::{Plane, PlaneError};
use crate::webhook_config::{Scope, WebhookConfig};

/// The HMAC key the harness gives hashroll (a test reads digests with it).
pub const HMAC_KEY: &str = "e2e-hmac-key-0123456789abcdef";

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Files and ports of one hashroll process.
#[derive(Debug)]
pub struct Launch {
    /// the hashroll binary
    pub bin: PathBuf,
    /// certificate, key files and log live here (kept after the run, for its log)
    pub dir: PathBuf,
    pub webhook_port: u16,
    pub metrics_port: u16,
}

impl Launch {
    /// A fresh folder with the HMAC key file, and two free ports; no certificate yet.
    pub fn prepare(bin: &Path) -> Result<Launch, PlaneError> {
        let io = |e: std::io::Error| PlaneError::Io {
            context: "preparing hashroll's folder".into(),
            source: e,
        };
        let dir = tempfile::Builder::new()
            .prefix("hashroll-run-")
            .tempdir()
            .map_err(io)?
            .keep();
        std::fs::write(dir.join("hmac.key"), HMAC_KEY).map_err(io)?;
        Ok(Launch {
            bin: bin.to_path_buf(),
            dir,
            webhook_port: free_port().map_err(io)?,
            metrics_port: free_port().map_err(io)?,
        })
    }

    /// Writes a serving certificate for 127.0.0.1 and localhost, issued by the plane's CA.
    pub fn issue_cert(&self, plane: &Plane) -> Result<(), PlaneError> {
        let (cert, key) = plane.issue_serving_cert(&["127.0.0.1", "localhost"])?;
        let write = |name: &str, text: &str| {
            std::fs::write(self.dir.join(name), text).map_err(|e| PlaneError::Io {
                context: format!("writing {name}"),
                source: e,
            })
        };
        write("tls.crt", &cert)?;
        write("tls.key", &key)
    }

    /// The `hashroll run` command against `kubeconfig`: the certificate files if issued
    /// (else no files: `--self-managed-certs` in `extra`), the key file unless
    /// `hmac_from_secret`, the two ports, then `extra`. Output goes to `hashroll.log`.
    pub fn command(
        &self,
        kubeconfig: &Path,
        log_level: &str,
        hmac_from_secret: bool,
        extra: &[String],
    ) -> std::io::Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run");
        if self.dir.join("tls.crt").exists() {
            cmd.arg(format!(
                "--tls-cert-file={}",
                self.dir.join("tls.crt").display()
            ))
            .arg(format!(
                "--tls-key-file={}",
                self.dir.join("tls.key").display()
            ));
        }
        cmd.arg(format!("--webhook-addr=127.0.0.1:{}", self.webhook_port))
            .arg(format!("--metrics-addr=127.0.0.1:{}", self.metrics_port))
            .arg(format!("--log-level={log_level}"))
            .args(extra)
            .env("POD_NAME", self.identity())
            .env("KUBECONFIG", kubeconfig)
            .stdout(log.try_clone()?)
            .stderr(log);
        if !hmac_from_secret {
            cmd.arg(format!(
                "--hmac-key-file={}",
                self.dir.join("hmac.key").display()
            ));
        }
        Ok(cmd)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("hashroll.log")
    }

    /// The name this process goes by (its Lease identity).
    pub fn identity(&self) -> String {
        format!("hashroll-{}", self.webhook_port)
    }

    /// `https://127.0.0.1:PORT{path}` of the webhook.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.webhook_port)
    }

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        readyz(self.metrics_port)
    }

    /// Starts `command` in the plane's process group (stopped with the plane).
    pub fn start(&self, plane: &Plane, command: &mut Command) -> Result<Process, PlaneError> {
        Ok(Process::new(plane.spawn_in_group(command)?))
    }

    /// Waits until `/readyz` answers 200; an error with the log's tail when `process`
    /// exits first or `within` passes.
    pub async fn wait_ready(&self, process: &Process, within: Duration) -> Result<(), PlaneError> {
        let started = Instant::now();
        let tail = || {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        loop {
            if let Some(status) = process.exited() {
                return Err(PlaneError::Exited {
                    what: "hashroll".into(),
                    status: status.to_string(),
                    logs: self.log_path().display().to_string(),
                    tail: tail(),
                });
            }
            let port = self.metrics_port;
            if tokio::task::spawn_blocking(move || readyz(port))
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            if started.elapsed() >= within {
                return Err(PlaneError::NotReady {
                    what: "hashroll /readyz".into(),
                    secs: within.as_secs(),
                    logs: self.log_path().display().to_string(),
                    tail: tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The webhook configuration that makes the plane call this process.
    pub fn webhook_config(&self, plane: &Plane, name: &str, scope: Scope<'_>) -> String {
        WebhookConfig {
            name,
            url: &self.url("/mutate"),
            ca_pem: Some(plane.ca_pem()),
            scope,
        }
        .yaml()
    }
}

/// A started process: killed (SIGKILL) and reaped when dropped, so nothing a test or a
/// bench starts outlives it; started again in place by [`Process::replace`].
#[derive(Debug, Default)]
pub struct Process(Mutex<Option<Child>>);

impl Process {
    pub fn new(child: Child) -> Process {
        Process(Mutex::new(Some(child)))
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the one running, if any, and holds `child` instead.
    pub fn replace(&self, child: Child) {
        self.kill();
        *self.child() = Some(child);
    }

    /// Its pid while it is held.
    pub fn id(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// How it ended, once it has (without waiting); `None` while it runs or none is held.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child()
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `sig` (`-STOP`, `-CONT`, `-TERM`...); false when none is held.
    pub fn signal(&self, sig: &str) -> bool {
        self.id().is_some_and(|pid| {
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Its stdout, when it was started with a pipe there (once).
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        self.child().as_mut().and_then(|c| c.stdout.take())
    }

    /// kill -9 and reap; nothing when none is held.
    pub fn kill(&self) {
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether hashroll's `/readyz` on `metrics_port` answers 200 now (a plain HTTP/1.0 GET, no
/// client library). Blocking, with a 2 s read timeout.
pub fn readyz(metrics_port: u16) -> bool {
    http_ok(metrics_port, "/readyz")
}

/// Whether a plain-HTTP GET of `path` on 127.0.0.1:`port` answers 200.
pub fn http_ok(port: u16, path: &str) -> bool {
    let probe = || -> std::io::Result<bool> {
        let addr = ("127.0.0.1", port);
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.ends_with(b"200"))
    };
    probe().unwrap_or(false)
}
