//! The installation's HMAC keys: from `--hmac-key-file` (and `--hmac-previous-key-file`),
//! else a Secret in hashroll's namespace, created once if absent (create-if-absent, so
//! replicas agree). Never logged.
//!
//! The Secret's `key` is the current key; an optional `previous` is the key it replaced.
//! Records name the key they were made with, so a record made with the previous key is
//! checked with it and re-recorded with the current one without a roll (`core::record::
//! carry_over`).
//!
//! Keys are read again while hashroll runs ([`LiveKeys`]): every `--key-reload-interval`,
//! and at once (at most every [`LOST_KEY_RELOAD`]) when the watcher meets a record made
//! with a key it does not hold, which is what another replica that already took a new key
//! writes. A rotation needs no restart, and replicas side by side agree within seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ObjectMeta};
use rand::RngCore;

use crate::core::digest::{DigestKey, KeyRing};
use crate::core::sync::Recover;

const FIELD: &str = "key";
const PREVIOUS: &str = "previous";

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
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

/// Where a command (`explain`, `migrate`) finds the keys, as its flags say.
pub(crate) enum KeyPlace<'a> {
    /// `--hmac-key-file` and, while rotating, `--hmac-previous-key-file`
    Files {
        current: &'a Path,
        previous: Option<&'a Path>,
    },
    /// `--hmac-key-secret`: the key Secret's name in hashroll's namespace
    Secret(&'a str),
}

/// The keys a command (`explain`, `migrate`) checks with: the files, else the Secret (read,
/// never created: only `hashroll run` makes the key).
pub(crate) async fn for_command(
    client: &kube::Client,
    place: KeyPlace<'_>,
    ns: &str,
) -> Result<KeyRing, KeyError> {
    let name = match place {
        KeyPlace::Files { current, previous } => return from_files(current, previous),
        KeyPlace::Secret(name) => name,
    };
    let what = format!("{ns}/{name}");
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| KeyError::Secret(what.clone(), e))?;
    from_secret_data(&s, &what)
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
    owner: Option<&OwnerReference>,
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
            owner_references: owner.map(|o| vec![o.clone()]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(FIELD.to_string(), ByteString(bytes))])),
        immutable: Some(true),
        ..Default::default()
    };
    match api.create(&crate::k8s::api::post_params(), &secret).await {
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

/// How soon after a reload a record made with an unknown key may cause another.
pub(crate) const LOST_KEY_RELOAD: Duration = Duration::from_secs(10);

/// Where the keys are read from.
pub(crate) enum KeySource {
    /// given once (tests, benches): never re-read
    Fixed,
    Files {
        current: PathBuf,
        previous: Option<PathBuf>,
    },
    /// the key Secret `namespace/name`, which start-up made if it was absent
    Secret {
        client: Client,
        namespace: String,
        name: String,
    },
}

/// The keys in use, read again while hashroll runs. Readers take a snapshot ([`get`]):
/// a stamp is made with one ring from start to end.
///
/// [`get`]: LiveKeys::get
pub(crate) struct LiveKeys {
    ring: RwLock<Arc<KeyRing>>,
    source: KeySource,
    /// one reload at a time, and when the last one ran
    reloading: tokio::sync::Mutex<Option<Instant>>,
    /// the key Secret was found gone (said once until it is back)
    gone_said: AtomicBool,
    /// counts the changes of keys: the watcher re-checks every workload on one
    changed: tokio::sync::watch::Sender<u64>,
}

impl LiveKeys {
    pub(crate) fn new(ring: KeyRing, source: KeySource) -> LiveKeys {
        LiveKeys {
            ring: RwLock::new(Arc::new(ring)),
            source,
            reloading: tokio::sync::Mutex::new(None),
            gone_said: AtomicBool::new(false),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Marks each change of keys seen by [`reload`](Self::reload).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Keys that are never re-read.
    pub(crate) fn fixed(ring: KeyRing) -> LiveKeys {
        LiveKeys::new(ring, KeySource::Fixed)
    }

    /// The keys now.
    pub(crate) fn get(&self) -> Arc<KeyRing> {
        self.ring.read().recover().clone()
    }

    /// The keys as the source holds them now (`None`: nothing to read, or the Secret gone).
    async fn read(&self) -> Result<Option<KeyRing>, KeyError> {
        match &self.source {
            KeySource::Fixed => Ok(None),
            KeySource::Files { current, previous } => {
                let (current, previous) = (current.clone(), previous.clone());
                tokio::task::spawn_blocking(move || from_files(&current, previous.as_deref()))
                    .await
                    .map_err(|e| KeyError::File("(reload task)".into(), std::io::Error::other(e)))?
                    .map(Some)
            }
            KeySource::Secret {
                client,
                namespace,
                name,
            } => {
                let what = format!("{namespace}/{name}");
                let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                match api
                    .get_opt(name)
                    .await
                    .map_err(|e| KeyError::Secret(what.clone(), e))?
                {
                    Some(s) => {
                        self.gone_said.store(false, Ordering::Relaxed);
                        from_secret_data(&s, &what).map(Some)
                    }
                    None => {
                        if !self.gone_said.swap(true, Ordering::Relaxed) {
                            tracing::warn!(secret = %what, "the HMAC key Secret is gone; keeping the keys in use (a restart would make a new key)");
                        }
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Reads the keys again; takes them if they changed. A source that cannot be read
    /// leaves the keys in use (logged).
    pub(crate) async fn reload(&self) {
        let mut last = self.reloading.lock().await;
        self.reload_locked(&mut last).await;
    }

    /// [`reload`](Self::reload), unless one ran within `within`.
    pub(crate) async fn reload_unless_recent(&self, within: Duration) {
        let mut last = self.reloading.lock().await;
        if last.is_some_and(|at| at.elapsed() < within) {
            return;
        }
        self.reload_locked(&mut last).await;
    }

    async fn reload_locked(&self, last: &mut Option<Instant>) {
        *last = Some(Instant::now());
        let ring = match self.read().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the HMAC keys again; keeping the keys in use");
                return;
            }
        };
        let now = self.get();
        let same_previous =
            now.previous.as_ref().map(DigestKey::id) == ring.previous.as_ref().map(DigestKey::id);
        if now.current.id() == ring.current.id() && same_previous {
            return;
        }
        tracing::info!(
            current_key = %ring.current.id(),
            previous_key = ?ring.previous.as_ref().map(DigestKey::id),
            replaced_key = %now.current.id(),
            "the HMAC keys changed; records are re-made with the current key"
        );
        *self.ring.write().recover() = Arc::new(ring);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Reloads every `every` forever (`every` zero: never).
    pub(crate) async fn reload_every(&self, every: Duration) {
        if every.is_zero() || matches!(self.source, KeySource::Fixed) {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.reload().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_read_again_and_a_bad_file_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (cur, prev) = (dir.path().join("key"), dir.path().join("previous"));
        std::fs::write(&cur, b"first-key-of-16-bytes-or-more").unwrap();
        let first = from_files(&cur, None).unwrap();
        let first_id = first.current.id().to_string();
        let keys = LiveKeys::new(
            first,
            KeySource::Files {
                current: cur.clone(),
                previous: Some(prev.clone()),
            },
        );
        // the previous file missing: unreadable, the keys in use stay
        keys.reload().await;
        assert_eq!(keys.get().current.id(), first_id);
        // rotated: a new current, the old one as previous
        std::fs::write(&prev, b"first-key-of-16-bytes-or-more").unwrap();
        std::fs::write(&cur, b"second-key-of-16-bytes-or-more").unwrap();
        let before = keys.get();
        let mut changes = keys.subscribe();
        keys.reload().await;
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        let after = keys.get();
        assert_ne!(after.current.id(), first_id);
        assert_eq!(
            after.previous.as_ref().map(|k| k.id()),
            Some(first_id.as_str())
        );
        // a snapshot taken before stays what it was
        assert_eq!(before.current.id(), first_id);
        // too short: kept
        std::fs::write(&cur, b"short").unwrap();
        keys.reload().await;
        assert_eq!(keys.get().current.id(), after.current.id());
        assert!(!changes.has_changed().unwrap());
        // a reload right after another is skipped when asked
        std::fs::write(&cur, b"third-key-of-16-bytes-or-more").unwrap();
        keys.reload_unless_recent(Duration::from_secs(3600)).await;
        assert_eq!(keys.get().current.id(), after.current.id());
        keys.reload().await;
        assert_ne!(keys.get().current.id(), after.current.id());
    }
}
