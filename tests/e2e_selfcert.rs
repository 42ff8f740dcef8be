//! Self-managed serving certificate: hashroll makes the CA and serving certificate once,
//! keeps them in a Secret (replicas agree on one), and sets the webhook's caBundle; the real
//! apiserver then calls it over TLS.

mod support;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::tls::{first_der, served_cert};
use support::*;

/// One installation's places: the namespace it serves, its own, its webhook configuration,
/// and the flags of its replicas.
struct Install {
    ns: String,
    own: String,
    config: String,
    flags: Vec<String>,
}

impl Install {
    fn new(prefix: &str, extra: &[&str]) -> Install {
        let ns = namespace(prefix);
        let own = namespace(&format!("{prefix}-home"));
        let config = format!("hashroll-{ns}");
        let mut flags = vec![
            "--self-managed-certs".to_string(),
            "--tls-san=127.0.0.1".to_string(),
            format!("--namespace={own}"),
            format!("--webhook-config={config}"),
            format!("--namespaces={ns}"),
        ];
        flags.extend(extra.iter().map(|f| f.to_string()));
        Install {
            ns,
            own,
            config,
            flags,
        }
    }

    /// A replica, not started.
    fn replica(&self) -> Hashroll {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        Hashroll::prepare(&flags)
    }

    /// The first replica, started after its configuration exists without a caBundle
    /// (hashroll fills it in), once the apiserver calls it.
    async fn first(&self) -> Hashroll {
        let mut a = self.replica();
        let url = a.url("/mutate");
        let cfg = hashroll_harness::webhook_config::WebhookConfig {
            name: &self.config,
            url: &url,
            ca_pem: None,
            scope: hashroll_harness::webhook_config::Scope::Only(&self.ns),
        };
        kubectl_stdin(&["apply", "-f", "-"], &cfg.yaml());
        a.restart().await;
        wait_webhook_active(&self.ns).await;
        a
    }
}

#[tokio::test]
async fn self_managed_certificate_is_made_once_shared_and_trusted_by_the_apiserver() {
    let client = client().await;
    let install = Install::new("selfcert", &[]);
    let a = install.first().await;
    let (crt, ca) = secret_pems(&client, &install.own).await.unwrap();
    assert_eq!(
        ca_bundle(&client, &install.config).await,
        Some(ca.clone()),
        "caBundle is the Secret's CA"
    );
    assert_eq!(
        served_cert(a.webhook_port, &ca).await,
        Some(first_der(&crt))
    );

    // a second replica uses the same Secret: same certificate, nothing regenerated
    let mut b = install.replica();
    b.restart().await;
    assert_eq!(
        served_cert(b.webhook_port, &ca).await,
        Some(first_der(&crt))
    );
    assert_eq!(secret_pems(&client, &install.own).await.unwrap().0, crt);
}

/// The Secret's (tls.crt, ca.crt).
async fn secret_pems(client: &kube::Client, ns: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt("hashroll-tls")
        .await
        .ok()??;
    let d = s.data?;
    Some((d.get("tls.crt")?.0.clone(), d.get("ca.crt")?.0.clone()))
}

async fn ca_bundle(client: &kube::Client, config: &str) -> Option<Vec<u8>> {
    let mwc = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(config)
        .await
        .ok()?;
    Some(mwc.webhooks?.first()?.client_config.ca_bundle.clone()?.0)
}

/// Audit 15: the certificate is renewed before it ends (the bundle keeps the CA before,
/// so the apiserver trusts both meanwhile), and when the Secret is deleted under two
/// replicas they settle on one CA instead of writing theirs in turn.
#[tokio::test]
async fn self_managed_certificate_is_renewed_and_replicas_agree_after_a_delete() {
    let client = client().await;
    let install = Install::new("certroll", &["--self-managed-cert-validity=40s"]);
    let (ns, own, config) = (&install.ns, &install.own, &install.config);
    let a = install.first().await;
    let (crt1, ca1) = secret_pems(&client, own).await.unwrap();

    // renewed with a quarter (10 s) left: a new certificate, the old CA still bundled
    let (crt2, ca2) = wait_for("the certificate renewed", DEADLINE * 2, || async {
        secret_pems(&client, own).await.filter(|(c, _)| *c != crt1)
    })
    .await;
    let bundled = rustls_pemfile::certs(&mut &ca2[..]).count();
    assert_eq!(bundled, 2, "the new CA and the one before");
    let ca1_der = first_der(&ca1);
    assert!(
        rustls_pemfile::certs(&mut &ca2[..]).any(|c| c.unwrap().as_ref() == ca1_der.as_slice()),
        "the CA before is still bundled"
    );
    wait_for("the caBundle renewed", DEADLINE, || async {
        ca_bundle(&client, config).await.filter(|b| *b == ca2)
    })
    .await;
    wait_for("the renewed certificate served", DEADLINE, || async {
        served_cert(a.webhook_port, &ca2)
            .await
            .filter(|c| *c == first_der(&crt2))
    })
    .await;
    // the apiserver still calls it
    wait_webhook_active(ns).await;

    // deleted under two replicas: they settle on one CA and keep to it
    let mut b = install.replica();
    b.restart().await;
    kubectl(&["delete", "secret", "-n", own, "hashroll-tls"]);
    let (crt3, ca3) = wait_for("the Secret made again", DEADLINE, || async {
        secret_pems(&client, own).await.filter(|(c, _)| *c != crt2)
    })
    .await;
    wait_for("the caBundle to be the Secret's", DEADLINE, || async {
        let now = secret_pems(&client, own).await?;
        (ca_bundle(&client, config).await? == now.1).then_some(())
    })
    .await;
    // over a settle period: one CA, the Secret's, however often the replicas look
    holds_for(SETTLE, || async {
        let (crt, ca) = secret_pems(&client, own).await.unwrap();
        let bundle = ca_bundle(&client, config).await.unwrap();
        // a renewal meanwhile moves all three together; never two CAs fighting
        if crt == crt3 {
            assert_eq!(ca, ca3);
        }
        assert!(
            bundle == ca || rustls_pemfile::certs(&mut &bundle[..]).count() <= 2,
            "caBundle apart from the Secret"
        );
    })
    .await;
    let (crt, ca) = secret_pems(&client, own).await.unwrap();
    for port in [a.webhook_port, b.webhook_port] {
        wait_for(
            "both replicas to serve the Secret's certificate",
            DEADLINE,
            || async {
                served_cert(port, &ca)
                    .await
                    .filter(|c| *c == first_der(&crt))
            },
        )
        .await;
    }
    assert!(!a.log().contains("panicked") && !b.log().contains("panicked"));
}
