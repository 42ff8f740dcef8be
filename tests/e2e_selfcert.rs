//! Self-managed serving certificate: hashroll makes the CA and serving certificate once,
//! keeps them in a Secret (replicas agree on one), and sets the webhook's caBundle; the real
//! apiserver then calls it over TLS.

mod support;

use std::sync::Arc;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::*;

async fn served_cert(port: u16, ca_pem: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("TLS with the Secret's CA");
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn self_managed_certificate_is_made_once_shared_and_trusted_by_the_apiserver() {
    let client = client().await;
    let ns = namespace("selfcert");
    let own = namespace("selfcert-home");
    let config = format!("hashroll-{ns}");
    let flags = [
        "--self-managed-certs".to_string(),
        "--tls-san=127.0.0.1".to_string(),
        format!("--namespace={own}"),
        format!("--webhook-config={config}"),
        format!("--namespaces={ns}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut a = Hashroll::prepare(&flags);
    // the configuration exists first, without a caBundle: hashroll fills it in
    let url = a.url("/mutate");
    let cfg = hashroll_harness::webhook_config::WebhookConfig {
        name: &config,
        url: &url,
        ca_pem: None,
        scope: hashroll_harness::webhook_config::Scope::Only(&ns),
    };
    kubectl_stdin(&["apply", "-f", "-"], &cfg.yaml());
    a.restart().await;
    wait_webhook_active(&ns).await;

    let secret = Api::<Secret>::namespaced(client.clone(), &own)
        .get("hashroll-tls")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let ca = data["ca.crt"].0.clone();
    let crt = data["tls.crt"].0.clone();
    let mwc = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&config)
        .await
        .unwrap();
    let bundle = mwc.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .unwrap()
        .0;
    assert_eq!(bundle, ca, "caBundle is the Secret's CA");
    let der = |pem: &[u8]| {
        rustls_pemfile::certs(&mut &pem[..])
            .next()
            .unwrap()
            .unwrap()
            .as_ref()
            .to_vec()
    };
    assert_eq!(served_cert(a.webhook_port, &ca).await, der(&crt));

    // a second replica uses the same Secret: same certificate, nothing regenerated
    let mut b = Hashroll::prepare(&flags);
    b.restart().await;
    assert_eq!(served_cert(b.webhook_port, &ca).await, der(&crt));
    let again = Api::<Secret>::namespaced(client.clone(), &own)
        .get("hashroll-tls")
        .await
        .unwrap();
    assert_eq!(again.data.unwrap()["tls.crt"].0, crt);
    let _ = base64::engine::general_purpose::STANDARD.encode(&ca);
}
