//! The installation's HMAC keys: from `--hmac-key-file` (and `--hmac-previous-key-file`),
//! else a Secret in hashroll's namespace, created once if absent (create-if-absent, so
//! replicas agree). Never logged.
//!
//! The Secret's `key` is the current key; an optional `previous` is the key it replaced.
//! Records name the key they were made with, so a record made with the previous key is
//! checked with it and re-recorded with the current one without a roll (`core::record::
//! carry_over`). Keys are read at start: a rotation takes effect when hashroll restarts.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::RngCore;

use crate::core::digest::{DigestKey, KeyRing};

const FIELD: &str = "key";
const PREVIOUS: &str = "previous";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the HMAC key file {0}: {1}")]
    File(String, std::io::Error),
    #[error("the HMAC key in {0} must be at least 16 bytes")]
    TooShort(String),
    #[error("cannot read or create the HMAC key Secret {0}: {1}")]
    Secret(String, kube::Error),
    #[error("the HMAC key Secret {0} has no usable `key` field (at least 16 bytes)")]
    Malformed(String),
    #[error("the HMAC key Secret {0} has a `previous` field under 16 bytes")]
    MalformedPrevious(String),
    #[error("the previous HMAC key is the current one ({0}): nothing to rotate from")]
    SameKeys(String),
}

fn key_file(path: &Path) -> Result<DigestKey, KeyError> {
    let mut bytes =
        std::fs::read(path).map_err(|e| KeyError::File(path.display().to_string(), e))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    DigestKey::new(bytes).ok_or_else(|| KeyError::TooShort(path.display().to_string()))
}

fn ring(current: DigestKey, previous: Option<DigestKey>) -> Result<KeyRing, KeyError> {
    if previous.as_ref().is_some_and(|p| p.id() == current.id()) {
        return Err(KeyError::SameKeys(current.id().to_string()));
    }
    Ok(KeyRing { current, previous })
}

/// The keys from files: the current one and, while rotating, the previous one.
pub(crate) fn from_files(current: &Path, previous: Option<&Path>) -> Result<KeyRing, KeyError> {
    ring(key_file(current)?, previous.map(key_file).transpose()?)
}

/// The keys a key Secret holds (`key`, and `previous` while rotating).
pub(crate) fn from_secret_data(s: &Secret, what: &str) -> Result<KeyRing, KeyError> {
    let field = |f: &str| s.data.as_ref().and_then(|d| d.get(f)).map(|b| b.0.clone());
    let current = field(FIELD)
        .and_then(DigestKey::new)
        .ok_or_else(|| KeyError::Malformed(what.to_string()))?;
    let previous = match field(PREVIOUS) {
        Some(b) => {
            Some(DigestKey::new(b).ok_or_else(|| KeyError::MalformedPrevious(what.to_string()))?)
        }
        None => None,
    };
    ring(current, previous)
}

pub(crate) async fn from_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<KeyRing, KeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{name}");
    let read = |s: Secret| from_secret_data(&s, &what);
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
