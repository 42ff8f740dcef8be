//! hashroll started against a plane, the one way the e2e tests and the bench do it: a
//! folder with a serving certificate from the plane's CA and an HMAC key file, two free
//! loopback ports, the `hashroll run` command line, and the readiness probe.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
