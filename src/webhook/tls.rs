//! The serving certificate, reloaded when the content of its files changes (cert-manager
//! and the kubelet swap symlinks, so content is compared, not file events).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} holds no PEM certificate")]
    NoCert(PathBuf),
    #[error("{0} holds no PEM private key")]
    NoKey(PathBuf),
    #[error("unusable key or certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

struct Loaded {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    key: Arc<CertifiedKey>,
}

/// Serves whatever certificate the files held when last read.
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Loaded>,
}

impl std::fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish()
    }
}

fn read(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|e| TlsError::Read(p.to_path_buf(), e))
}

fn certified(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert_path.to_path_buf()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key_path.to_path_buf()))?;
    let signing = ring::sign::any_supported_type(&key)?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()?;
    Ok(Arc::new(ck))
}

impl CertReloader {
    /// Reads both files now; an error here is a start-up error.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertReloader>, TlsError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = certified(cert_path, &cert_pem, key_path, &key_pem)?;
        Ok(Arc::new(CertReloader {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Loaded {
                cert_pem,
                key_pem,
                key,
            }),
        }))
    }

    /// From PEMs held in memory (self-managed certificates): nothing to re-read.
    pub fn from_pems(cert_pem: &str, key_pem: &str) -> Result<Arc<CertReloader>, TlsError> {
        let memory = Path::new("<memory>");
        let key = certified(memory, cert_pem.as_bytes(), memory, key_pem.as_bytes())?;
        Ok(Arc::new(CertReloader {
            cert_path: memory.to_path_buf(),
            key_path: memory.to_path_buf(),
            current: RwLock::new(Loaded {
                cert_pem: cert_pem.as_bytes().to_vec(),
                key_pem: key_pem.as_bytes().to_vec(),
                key,
            }),
        }))
    }

    /// Re-reads the files; swaps the certificate when their content changed and is valid.
    /// `Ok(true)` when it swapped.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        {
            let cur = self.current.read().expect("cert lock");
            if cur.cert_pem == cert_pem && cur.key_pem == key_pem {
                return Ok(false);
            }
        }
        let key = certified(&self.cert_path, &cert_pem, &self.key_path, &key_pem)?;
        *self.current.write().expect("cert lock") = Loaded {
            cert_pem,
            key_pem,
            key,
        };
        Ok(true)
    }

    /// Polls the files forever.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut last_error = String::new();
        loop {
            tokio::time::sleep(every).await;
            match self.reload() {
                Ok(true) => {
                    last_error.clear();
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                }
                Ok(false) => last_error.clear(),
                // a half-written pair during a swap: keep serving the old one
                Err(e) => {
                    let msg = e.to_string();
                    if msg != last_error {
                        tracing::warn!(error = %msg, "cannot reload the serving certificate; keeping the current one");
                        last_error = msg;
                    }
                }
            }
        }
    }

    /// A rustls server config (TLS 1.2 and 1.3, ring) serving this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // HTTP/1.1 only: what the apiserver speaks to webhooks
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").key.clone())
    }
}
