//! The certificate a webhook port serves, as a client trusting a CA bundle sees it.

use std::sync::Arc;

/// The certificate served on 127.0.0.1:`port` (DER), when a client trusting `ca_pem` can
/// connect; `None` when it cannot.
pub async fn served_cert(port: u16, ca_pem: &[u8]) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(c.ok()?).ok()?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].as_ref().to_vec())
}

/// The first certificate of a PEM (DER).
pub fn first_der(pem: &[u8]) -> Vec<u8> {
    rustls_pemfile::certs(&mut &pem[..])
        .next()
        .expect("a certificate")
        .expect("a readable certificate")
        .as_ref()
        .to_vec()
}
