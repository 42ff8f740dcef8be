//! Self-managed serving certificate (`--self-managed-certs`): hashroll makes a CA and a
//! serving certificate, keeps them in a Secret of its namespace, and keeps the webhook
//! configuration's caBundle pointing at that CA.
//!
//! The Secret is the one truth replicas share; the first writer wins every time. Made with
//! create-if-absent (a replica that loses the race uses the winner's), also when the Secret
//! was deleted; renewed when a quarter of `--self-managed-cert-validity` is left, with a
//! replace conditioned on the resourceVersion read (a replica that loses reads the winner's).
//! Every replica re-reads the Secret on each round and serves and bundles what it holds, so
//! no replica keeps writing a CA of its own. A renewal makes a new CA and certificate; the
//! bundle holds the new CA and the one before, so the apiserver trusts a replica that still
//! serves the old certificate until it reads the Secret again.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SelfCertError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read or create the Secret {0}: {1}")]
    Secret(String, kube::Error),
    #[error("the certificate's validity is out of range")]
    Validity,
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

/// The Secret's annotation saying when its certificate ends (RFC 3339). One without it was
/// made before renewals, valid until 2036-01-01.
const NOT_AFTER: &str = "hashroll.dev/not-after";

/// What a Secret made before renewals holds: valid until 2036.
const LEGACY_NOT_AFTER: &str = "2036-01-01T00:00:00Z";

fn offset(t: k8s_openapi::jiff::Timestamp) -> Result<time::OffsetDateTime, SelfCertError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|_| SelfCertError::Validity)
}

/// A new CA and serving certificate valid from an hour ago for `validity`; the bundle is the
/// new CA and `previous` (the CA before it), and when it ends.
fn generate(
    sans: &[String],
    validity: Duration,
    previous: Option<&str>,
) -> Result<(Pems, k8s_openapi::jiff::Timestamp), SelfCertError> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let span = |d: Duration| k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or_default();
    let not_before = offset(
        now.saturating_sub(span(Duration::from_secs(3600)))
            .unwrap_or(now),
    )?;
    let end = now.saturating_add(span(validity)).unwrap_or(now);
    let not_after = offset(end)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "hashroll-webhook-ca");
    ca.distinguished_name = dn;
    ca.not_before = not_before;
    ca.not_after = not_after;
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
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.signed_by(&key, &issuer)?;
    let mut bundle = ca_cert.pem();
    if let Some(prev) = previous {
        bundle.push_str(prev);
    }
    Ok((
        Pems {
            cert: cert.pem(),
            key: key.serialize_pem(),
            ca: bundle,
        },
        end,
    ))
}

/// The first certificate of a PEM bundle (the current CA of a bundle we wrote).
fn first_pem(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = bundle.find(END)? + END.len();
    Some(format!("{}\n", bundle[..end].trim_start()))
}

/// When the Secret's certificate ends.
fn not_after(s: &Secret) -> Option<k8s_openapi::jiff::Timestamp> {
    let text = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NOT_AFTER))
        .map_or(LEGACY_NOT_AFTER, String::as_str);
    text.parse().ok()
}

/// Whether the Secret's certificate has less than a quarter of `validity` left (or says
/// nothing readable about its end).
fn due(s: &Secret, validity: Duration, now: k8s_openapi::jiff::Timestamp) -> bool {
    let Some(end) = not_after(s) else {
        return true;
    };
    let left = now.duration_until(end);
    left < k8s_openapi::jiff::SignedDuration::try_from(validity / 4).unwrap_or_default()
}

fn secret_object(
    name: &str,
    namespace: &str,
    owner: Option<&OwnerReference>,
    pems: &Pems,
    end: k8s_openapi::jiff::Timestamp,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                "hashroll".into(),
            )])),
            annotations: Some(BTreeMap::from([(NOT_AFTER.to_string(), end.to_string())])),
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
    }
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

/// Where the self-managed certificate lives and how it is made.
#[derive(Clone)]
pub(crate) struct Place {
    pub namespace: String,
    pub secret: String,
    pub sans: Vec<String>,
    pub owner: Option<OwnerReference>,
    pub validity: Duration,
}

impl Place {
    fn what(&self) -> String {
        format!("{}/{}", self.namespace, self.secret)
    }
}

/// The serving certificate of this installation: the Secret's (renewed first when due), or
/// a new one stored there first (another replica that was faster wins, and we use its).
///
/// `held`: the CA bundle this replica serves under now; a Secret made again (deleted
/// meanwhile) bundles its first CA too, so the apiserver keeps trusting the replicas that
/// serve the old certificate until they read the new one.
pub(crate) async fn ensure(
    client: &Client,
    place: &Place,
    held: Option<&str>,
) -> Result<Pems, SelfCertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &place.namespace);
    let what = place.what();
    let secret_err = |e| SelfCertError::Secret(what.clone(), e);
    let Some(s) = api.get_opt(&place.secret).await.map_err(secret_err)? else {
        let previous = held.and_then(first_pem);
        let (pems, end) = generate(&place.sans, place.validity, previous.as_deref())?;
        let obj = secret_object(
            &place.secret,
            &place.namespace,
            place.owner.as_ref(),
            &pems,
            end,
        );
        return match api.create(&crate::k8s::api::post_params(), &obj).await {
            Ok(_) => {
                tracing::info!(secret = %what, not_after = %end, "created the webhook's CA and serving certificate");
                Ok(pems)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let s = api.get(&place.secret).await.map_err(secret_err)?;
                read(&what, &s)
            }
            Err(e) => Err(secret_err(e)),
        };
    };
    let current = read(&what, &s)?;
    if !due(&s, place.validity, k8s_openapi::jiff::Timestamp::now()) {
        return Ok(current);
    }
    // renewed, conditioned on the version read: the first replica to write wins
    let (pems, end) = generate(
        &place.sans,
        place.validity,
        first_pem(&current.ca).as_deref(),
    )?;
    let mut obj = secret_object(
        &place.secret,
        &place.namespace,
        place.owner.as_ref(),
        &pems,
        end,
    );
    obj.metadata.resource_version = s.metadata.resource_version.clone();
    obj.metadata.owner_references = s.metadata.owner_references.clone();
    match api
        .replace(&place.secret, &crate::k8s::api::post_params(), &obj)
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %what, not_after = %end, "renewed the webhook's CA and serving certificate");
            Ok(pems)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api.get(&place.secret).await.map_err(secret_err)?;
            read(&what, &s)
        }
        Err(e) => Err(secret_err(e)),
    }
}

/// Keeps serving and bundling what the Secret holds: made again when deleted, renewed
/// when due, the caBundle set before this replica serves a new certificate. Every
/// `every` (the configuration may be applied after hashroll starts, or re-applied without
/// its caBundle by a GitOps tool).
pub(crate) async fn keep(
    client: Client,
    place: Place,
    config: String,
    serving: std::sync::Arc<super::tls::CertReloader>,
    held: String,
    every: Duration,
) {
    let mut held = Some(held);
    loop {
        tokio::time::sleep(every).await;
        let pems = match ensure(&client, &place, held.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(secret = %place.what(), error = %e, "cannot read the self-managed certificate; serving the current one");
                continue;
            }
        };
        match set_ca_bundle(&client, &config, &pems.ca).await {
            Ok(true) => tracing::info!(webhook = %config, "set the webhook's caBundle"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(webhook = %config, error = %e, "cannot set the webhook's caBundle");
                continue;
            }
        }
        held = Some(pems.ca.clone());
        match serving.set_pems(&pems.cert, &pems.key) {
            Ok(true) => {
                tracing::info!(secret = %place.what(), "serving the Secret's new certificate")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(secret = %place.what(), error = %e, "the Secret's certificate is unusable; serving the current one")
            }
        }
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
    api.patch(
        config,
        &crate::k8s::api::patch_params(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_serves_the_service_names() {
        let (pems, _) = generate(
            &sans("hashroll", "hashroll", &["127.0.0.1".into()]),
            Duration::from_secs(3600),
            None,
        )
        .unwrap();
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

    /// Audit 15: the certificate ended on a fixed date and was never renewed. Now it ends
    /// `validity` from its making, is due with a quarter left, and a renewal's bundle keeps
    /// the CA before it.
    #[test]
    fn renewal_is_due_with_a_quarter_left_and_keeps_the_previous_ca() {
        let validity = Duration::from_secs(400 * 24 * 3600);
        let (first, end) = generate(&sans("h", "ns", &[]), validity, None).unwrap();
        let now = k8s_openapi::jiff::Timestamp::now();
        let days = now.duration_until(end).as_secs() / 86_400;
        assert!((399..=400).contains(&days), "{days}");
        let with_end = |end: &str| Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(NOT_AFTER.to_string(), end.to_string())])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(!due(&with_end(&end.to_string()), validity, now));
        let soon = now
            .saturating_add(k8s_openapi::jiff::SignedDuration::from_hours(24 * 99))
            .unwrap();
        assert!(due(&with_end(&soon.to_string()), validity, now));
        assert!(due(&with_end("not a time"), validity, now));
        // made before renewals: valid until 2036, not due today
        assert!(!due(&Secret::default(), validity, now));
        // the renewal's bundle: the new CA first, then the one before
        let previous = first_pem(&first.ca).unwrap();
        let (second, _) = generate(&sans("h", "ns", &[]), validity, Some(&previous)).unwrap();
        let cas: Vec<_> = rustls_pemfile::certs(&mut second.ca.as_bytes())
            .map(Result::unwrap)
            .collect();
        assert_eq!(cas.len(), 2);
        let first_der = rustls_pemfile::certs(&mut first.ca.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(cas[1], first_der);
        assert_eq!(
            first_pem(&second.ca).map(|p| p.len()),
            Some(second.ca.len() - previous.len())
        );
    }
}
