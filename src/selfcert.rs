//! Self-managed serving certificate (`--self-managed-certs`): hashroll makes a CA and a
//! serving certificate once, keeps them in a Secret of its namespace (create-if-absent, so
//! replicas agree on one), and keeps the webhook configuration's caBundle pointing at that CA.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum SelfCertError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read or create the Secret {0}: {1}")]
    Secret(String, kube::Error),
    #[error("the Secret {0} lacks {1}")]
    Incomplete(String, &'static str),
}

/// The PEMs a replica serves with.
#[derive(Clone)]
pub(crate) struct Pems {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// SANs of the serving certificate: the Service's names, plus `extra`.
pub(crate) fn sans(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    v.extend(extra.iter().cloned());
    v
}

fn generate(sans: &[String]) -> Result<Pems, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "hashroll-webhook-ca");
    ca.distinguished_name = dn;
    ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    for s in sans {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) => p.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => p
                .subject_alt_names
                .push(SanType::DnsName(s.clone().try_into()?)),
        }
    }
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        sans.first().cloned().unwrap_or_default(),
    );
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pems {
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca: ca_cert.pem(),
    })
}

fn read(name: &str, s: &Secret) -> Result<Pems, SelfCertError> {
    let field = |k: &'static str| -> Result<String, SelfCertError> {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| SelfCertError::Incomplete(name.to_string(), k))
    };
    Ok(Pems {
        cert: field("tls.crt")?,
        key: field("tls.key")?,
        ca: field("ca.crt")?,
    })
}

/// The serving certificate of this installation: the Secret's, or a new one stored there
/// first (another replica that was faster wins, and we use its).
pub(crate) async fn ensure(
    client: &Client,
    namespace: &str,
    secret: &str,
    sans: &[String],
    owner: Option<&OwnerReference>,
) -> Result<Pems, SelfCertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{secret}");
    if let Some(s) = api
        .get_opt(secret)
        .await
        .map_err(|e| SelfCertError::Secret(what.clone(), e))?
    {
        return read(&what, &s);
    }
    let pems = generate(sans)?;
    let obj = Secret {
        metadata: ObjectMeta {
            name: Some(secret.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                "hashroll".into(),
            )])),
            owner_references: owner.map(|o| vec![o.clone()]),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_string(),
                ByteString(pems.cert.clone().into_bytes()),
            ),
            (
                "tls.key".to_string(),
                ByteString(pems.key.clone().into_bytes()),
            ),
            (
                "ca.crt".to_string(),
                ByteString(pems.ca.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {
            tracing::info!(secret = %what, "created the webhook's CA and serving certificate");
            Ok(pems)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api
                .get(secret)
                .await
                .map_err(|e| SelfCertError::Secret(what.clone(), e))?;
            read(&what, &s)
        }
        Err(e) => Err(SelfCertError::Secret(what, e)),
    }
}

/// Sets `caBundle` of every webhook of the configuration; returns whether it changed anything.
pub(crate) async fn set_ca_bundle(
    client: &Client,
    config: &str,
    ca_pem: &str,
) -> Result<bool, kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mwc) = api.get_opt(config).await? else {
        return Ok(false);
    };
    let want = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut ops = Vec::new();
    for (i, w) in mwc.webhooks.iter().flatten().enumerate() {
        let have = w
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(&b.0));
        if have.as_deref() != Some(want.as_str()) {
            ops.push(serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": want}));
        }
    }
    if ops.is_empty() {
        return Ok(false);
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).expect("valid JSON patch");
    api.patch(config, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(true)
}

/// Keeps the caBundle right (the configuration may be applied after hashroll starts, or
/// re-applied without it by a GitOps tool).
pub(crate) async fn keep_ca_bundle(
    client: Client,
    config: String,
    ca_pem: String,
    every: Duration,
) {
    loop {
        match set_ca_bundle(&client, &config, &ca_pem).await {
            Ok(true) => tracing::info!(webhook = %config, "set the webhook's caBundle"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(webhook = %config, error = %e, "cannot set the webhook's caBundle")
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_serves_the_service_names() {
        let pems = generate(&sans("hashroll", "hashroll", &["127.0.0.1".into()])).unwrap();
        assert!(pems.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pems.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(pems.cert, pems.ca);
        // the pair loads as a rustls certified key
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c"), &pems.cert).unwrap();
        std::fs::write(dir.path().join("k"), &pems.key).unwrap();
        crate::webhook::tls::CertReloader::load(&dir.path().join("c"), &dir.path().join("k"))
            .unwrap();
    }
}
