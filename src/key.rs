//! The installation's HMAC key: from `--hmac-key-file`, else a Secret in hashroll's
//! namespace, created once if absent (create-if-absent, so replicas agree). Never logged.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::RngCore;

use crate::core::digest::DigestKey;

const FIELD: &str = "key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the HMAC key file {0}: {1}")]
    File(String, std::io::Error),
    #[error("the HMAC key must be at least 16 bytes")]
    TooShort,
    #[error("cannot read or create the HMAC key Secret {0}: {1}")]
    Secret(String, kube::Error),
    #[error("the HMAC key Secret {0} has no usable `key` field")]
    Malformed(String),
}

pub(crate) fn from_file(path: &Path) -> Result<DigestKey, KeyError> {
    let mut bytes =
        std::fs::read(path).map_err(|e| KeyError::File(path.display().to_string(), e))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    DigestKey::new(bytes).ok_or(KeyError::TooShort)
}

pub(crate) async fn from_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<DigestKey, KeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{name}");
    let read = |s: Secret| {
        s.data
            .and_then(|d| d.get(FIELD).cloned())
            .and_then(|b| DigestKey::new(b.0))
            .ok_or_else(|| KeyError::Malformed(what.clone()))
    };
    if let Some(s) = api
        .get_opt(name)
        .await
        .map_err(|e| KeyError::Secret(what.clone(), e))?
    {
        return read(s);
    }
    let mut bytes = vec![0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                "hashroll".into(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(FIELD.to_string(), ByteString(bytes))])),
        immutable: Some(true),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(s) => {
            tracing::info!(secret = %what, "created the HMAC key Secret");
            read(s)
        }
        // another replica was first: use its key
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api
                .get(name)
                .await
                .map_err(|e| KeyError::Secret(what.clone(), e))?;
            read(s)
        }
        Err(e) => Err(KeyError::Secret(what, e)),
    }
}
