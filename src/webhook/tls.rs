//! The serving certificate, reloaded when the content of its files changes (cert-manager
//! and the kubelet swap symlinks, so content is compared, not file events).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::core::sync::Recover;

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
    #[error("unusable client CA: {0}")]
    Verifier(String),
}

/// The verifier of `--client-ca-file`: a client must present a certificate chained to one
/// of its CAs (rustls-webpki's checks: validity, signature, client-auth usage).
pub fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let pem = read(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]).filter_map(Result::ok) {
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(ring::default_provider()))
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
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
            let cur = self.current.read().recover();
            if cur.cert_pem == cert_pem && cur.key_pem == key_pem {
                return Ok(false);
            }
        }
        let key = certified(&self.cert_path, &cert_pem, &self.key_path, &key_pem)?;
        *self.current.write().recover() = Loaded {
            cert_pem,
            key_pem,
            key,
        };
        Ok(true)
    }

    /// Serves this pair from now on when it differs from the current one and is valid
    /// (self-managed certificates, renewed in their Secret). `Ok(true)` when it swapped.
    pub fn set_pems(&self, cert_pem: &str, key_pem: &str) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = (cert_pem.as_bytes().to_vec(), key_pem.as_bytes().to_vec());
        {
            let cur = self.current.read().recover();
            if cur.cert_pem == cert_pem && cur.key_pem == key_pem {
                return Ok(false);
            }
        }
        let memory = Path::new("<memory>");
        let key = certified(memory, &cert_pem, memory, &key_pem)?;
        *self.current.write().recover() = Loaded {
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

    /// A rustls server config (TLS 1.2 and 1.3, ring) serving this certificate; with
    /// `clients`, only to clients whose certificate it verifies.
    pub fn server_config(
        self: &Arc<Self>,
        clients: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match clients {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_cert_resolver(self.clone());
        // HTTP/1.1 only: what the apiserver speaks to webhooks
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().recover().key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA and a client certificate it signed (PEMs: CA, client cert, client key).
    fn client_pki() -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["kube-apiserver".into()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).unwrap();
        (ca_cert.pem(), cert.pem(), key.serialize_pem())
    }

    /// One TLS exchange over an in-memory pipe; whether a byte made it through.
    async fn exchange(server: Arc<ServerConfig>, client: rustls::ClientConfig) -> bool {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let serve = tokio::spawn(async move {
            let mut s = acceptor.accept(a).await.ok()?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.ok()?;
            Some(byte[0])
        });
        let name = ServerName::try_from("localhost").unwrap();
        // the client stays open until the server is done (it writes tickets after the
        // handshake)
        let _client = match connector.connect(name, b).await {
            Ok(mut c) => {
                let _ = c.write_all(b"x").await;
                let _ = c.flush().await;
                Some(c)
            }
            Err(_) => None,
        };
        serve.await.unwrap() == Some(b'x')
    }

    /// Audit 11: with --client-ca-file the port serves only the apiserver (a client whose
    /// certificate the CA signed); without it, anyone.
    #[tokio::test]
    async fn a_client_ca_shuts_out_clients_without_its_certificate() {
        let server_ca_key = KeyPair::generate().unwrap();
        let mut server_ca = CertificateParams::default();
        server_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let server_ca_cert = server_ca.self_signed(&server_ca_key).unwrap();
        let server_issuer = Issuer::new(server_ca, &server_ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&server_key, &server_issuer)
            .unwrap();
        let serving =
            CertReloader::from_pems(&server_cert.pem(), &server_key.serialize_pem()).unwrap();
        let (ca, client_cert, client_key) = client_pki();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca"), &ca).unwrap();
        let verifier = client_verifier(&dir.path().join("ca")).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(server_ca_cert.der().clone()).unwrap();
        let provider = Arc::new(ring::default_provider());
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
        };
        let anonymous = builder().with_no_client_auth();
        let certs: Vec<_> = rustls_pemfile::certs(&mut client_cert.as_bytes())
            .map(Result::unwrap)
            .collect();
        let key = rustls_pemfile::private_key(&mut client_key.as_bytes())
            .unwrap()
            .unwrap();
        let apiserver = builder().with_client_auth_cert(certs, key).unwrap();
        // another CA's client is as anonymous as none
        let (_, other_cert, other_key) = client_pki();
        let other = builder()
            .with_client_auth_cert(
                rustls_pemfile::certs(&mut other_cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                rustls_pemfile::private_key(&mut other_key.as_bytes())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();

        let open = serving.server_config(None).unwrap();
        assert!(exchange(open, anonymous.clone()).await);
        let verified = serving.server_config(Some(verifier)).unwrap();
        assert!(!exchange(verified.clone(), anonymous).await);
        assert!(!exchange(verified.clone(), other).await);
        assert!(exchange(verified, apiserver).await);
        // a file with no certificate is a start-up error
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert!(client_verifier(&dir.path().join("empty")).is_err());
    }
}
