//! Keyed digests. A source is remembered as a short SHA-256 per key (never its data); the
//! record's digest of a source is an HMAC-SHA256, keyed per installation, over a canonical
//! encoding of kind, namespace, name, existence and the digests of the keys used. The roll
//! token is the HMAC of the whole record.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use super::refs::{Keys, SourceRef};

type HmacSha256 = Hmac<Sha256>;

/// The installation's HMAC key (kept as the keyed state, ready to clone) and its id. Its
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct DigestKey {
    mac: HmacSha256,
    len: usize,
    id: String,
}

impl DigestKey {
    /// Keys shorter than 16 bytes are refused.
    pub fn new(bytes: Vec<u8>) -> Option<DigestKey> {
        if bytes.len() < 16 {
            return None;
        }
        let mac = <HmacSha256 as KeyInit>::new_from_slice(&bytes)
            .expect("HMAC takes a key of any length");
        let mut probe = mac.clone();
        put(&mut probe, b"hashroll/key-id/v1");
        let id = short_hex(&probe.finalize().into_bytes()[..4]);
        Some(DigestKey {
            mac,
            len: bytes.len(),
            id,
        })
    }
    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
    /// The key's id (8 hex chars), which records carry: an HMAC of a fixed text under the
    /// key, so it names the key without saying anything of it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys digests are made with: the current one, and the previous one while records
/// made with it are re-recorded (key rotation).
#[derive(Clone, Debug)]
pub struct KeyRing {
    pub current: DigestKey,
    pub previous: Option<DigestKey>,
}

impl KeyRing {
    /// One key, nothing to rotate from.
    pub fn single(current: DigestKey) -> KeyRing {
        KeyRing {
            current,
            previous: None,
        }
    }
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DigestKey(id {}, <{} bytes, redacted>)",
            self.id, self.len
        )
    }
}

/// Short digest of one value (the first 16 bytes of its SHA-256).
pub type KeyDigest = [u8; 16];

/// What the cache remembers of one source's data: key → digest of its value, sorted.
/// `data` and `binaryData` keys share one map (Kubernetes keeps them disjoint); the
/// map tag is part of each digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDigests {
    keys: Vec<(Box<str>, KeyDigest)>,
}

fn value_digest(tag: u8, value: &[u8]) -> KeyDigest {
    let mut h = Sha256::new();
    h.update([tag]);
    h.update((value.len() as u64).to_be_bytes());
    h.update(value);
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl SourceDigests {
    /// From a source's string data (`data`) and binary data (`binaryData`, or a Secret's
    /// decoded `data`), in any order.
    pub fn from_data<'a>(
        data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        binary: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> SourceDigests {
        let mut keys: Vec<(Box<str>, KeyDigest)> = data
            .into_iter()
            .map(|(k, v)| (Box::from(k), value_digest(b's', v)))
            .chain(
                binary
                    .into_iter()
                    .map(|(k, v)| (Box::from(k), value_digest(b'b', v))),
            )
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        keys.dedup_by(|a, b| a.0 == b.0);
        keys.shrink_to_fit();
        SourceDigests { keys }
    }

    /// The digest of `key`, if the source has it.
    pub fn get(&self, key: &str) -> Option<&KeyDigest> {
        self.keys
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.keys[i].1)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<(Box<str>, KeyDigest)>()
            + self.keys.iter().map(|(k, _)| k.len()).sum::<usize>()
    }
}

fn put(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

/// Lower-case hex of a short digest (what `hex::encode` gives, without a char iterator).
fn short_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// The value a record keeps for a source: 16 hex chars, or `"absent"`.
pub const ABSENT: &str = "absent";

/// Keyed digest of a source as a workload uses it (16 hex chars), or [`ABSENT`].
pub fn source_digest(
    key: &DigestKey,
    namespace: &str,
    source: &SourceRef,
    data: Option<&SourceDigests>,
    keys: &Keys,
) -> String {
    let Some(data) = data else {
        return ABSENT.to_string();
    };
    let mut mac = key.mac();
    put(&mut mac, b"hashroll/source/v1");
    put(&mut mac, source.kind.as_str().as_bytes());
    put(&mut mac, namespace.as_bytes());
    put(&mut mac, source.name.as_bytes());
    put(&mut mac, b"present");
    match keys {
        Keys::All => {
            put(&mut mac, b"all");
            for (k, d) in &data.keys {
                put(&mut mac, k.as_bytes());
                put(&mut mac, d);
            }
        }
        Keys::Some(used) => {
            put(&mut mac, b"some");
            for k in used {
                put(&mut mac, k.as_bytes());
                match data.get(k) {
                    Some(d) => put(&mut mac, d),
                    None => put(&mut mac, b"missing"),
                }
            }
        }
    }
    short_hex(&mac.finalize().into_bytes()[..8])
}

/// The roll token: keyed digest of a whole record (16 hex chars).
pub fn record_digest(key: &DigestKey, record: &BTreeMap<String, String>, salt: &str) -> String {
    let mut mac = key.mac();
    put(&mut mac, b"hashroll/record/v1");
    for (k, v) in record {
        put(&mut mac, k.as_bytes());
        put(&mut mac, v.as_bytes());
    }
    put(&mut mac, salt.as_bytes());
    short_hex(&mac.finalize().into_bytes()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn key() -> DigestKey {
        DigestKey::new(b"0123456789abcdef-test-key".to_vec()).unwrap()
    }

    fn digests(pairs: &[(String, Vec<u8>)]) -> SourceDigests {
        SourceDigests::from_data(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            std::iter::empty(),
        )
    }

    #[test]
    fn short_hex_is_hex() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff, 0x10, 0x7e, 0x01, 0x9b];
        assert_eq!(short_hex(&bytes), hex::encode(bytes));
    }

    #[test]
    fn key_debug_is_redacted() {
        let s = format!("{:?}", key());
        assert!(!s.contains("0123"), "{s}");
        assert!(DigestKey::new(vec![1; 8]).is_none());
    }

    #[test]
    fn digest_shape_and_identity() {
        let d = digests(&[("a".into(), b"1".to_vec())]);
        let s = SourceRef::configmap("cm");
        let x = source_digest(&key(), "ns", &s, Some(&d), &Keys::All);
        assert_eq!(x.len(), 16);
        assert!(x.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(source_digest(&key(), "ns", &s, None, &Keys::All), ABSENT);
        // namespace, name, kind and key all count
        assert_ne!(x, source_digest(&key(), "ns2", &s, Some(&d), &Keys::All));
        assert_ne!(
            x,
            source_digest(&key(), "ns", &SourceRef::secret("cm"), Some(&d), &Keys::All)
        );
        let other = DigestKey::new(b"another-key-of-16+bytes".to_vec()).unwrap();
        assert_ne!(x, source_digest(&other, "ns", &s, Some(&d), &Keys::All));
        // an empty source is present, not absent
        let empty = digests(&[]);
        assert_ne!(
            source_digest(&key(), "ns", &s, Some(&empty), &Keys::All),
            ABSENT
        );
    }

    #[test]
    fn used_keys_only() {
        let s = SourceRef::configmap("cm");
        let used = Keys::Some(BTreeSet::from(["a".to_string()]));
        let d1 = digests(&[("a".into(), b"1".to_vec()), ("b".into(), b"x".to_vec())]);
        let d2 = digests(&[("a".into(), b"1".to_vec()), ("b".into(), b"y".to_vec())]);
        let d3 = digests(&[("a".into(), b"2".to_vec()), ("b".into(), b"x".to_vec())]);
        let d4 = digests(&[("b".into(), b"x".to_vec())]);
        let f = |d| source_digest(&key(), "ns", &s, Some(d), &used);
        assert_eq!(f(&d1), f(&d2));
        assert_ne!(f(&d1), f(&d3));
        assert_ne!(f(&d1), f(&d4));
        // the whole source sees the change of b
        assert_ne!(
            source_digest(&key(), "ns", &s, Some(&d1), &Keys::All),
            source_digest(&key(), "ns", &s, Some(&d2), &Keys::All)
        );
    }

    /// Records written by earlier releases stay valid: the digest of a source is pinned
    /// (a change of its encoding would roll every workload in the cluster on upgrade).
    #[test]
    fn digests_are_stable_across_releases() {
        let d = SourceDigests::from_data(
            [("b", b"2".as_slice()), ("a", b"1".as_slice())],
            [("z.bin", [0u8, 255, 7].as_slice())],
        );
        let s = SourceRef::secret("creds");
        let used = Keys::Some(BTreeSet::from(["a".to_string(), "missing".to_string()]));
        let empty = SourceDigests::from_data([], []);
        assert_eq!(
            [
                source_digest(&key(), "ns", &s, Some(&d), &Keys::All),
                source_digest(&key(), "ns", &s, Some(&d), &used),
                source_digest(&key(), "ns", &s, Some(&empty), &Keys::All),
            ],
            ["3e410b93fcb8a36f", "6890430b5622a9d1", "7811fcf222602c9a"]
        );
    }

    #[test]
    fn string_and_binary_data_differ() {
        let a = SourceDigests::from_data([("k", b"v".as_slice())], []);
        let b = SourceDigests::from_data([], [("k", b"v".as_slice())]);
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn digest_ignores_map_order(
            map in proptest::collection::btree_map("[a-z0-9._-]{1,12}", proptest::collection::vec(any::<u8>(), 0..64), 0..12),
            seed in any::<u64>(),
        ) {
            let pairs: Vec<(String, Vec<u8>)> = map.into_iter().collect();
            let mut shuffled = pairs.clone();
            // a deterministic permutation from the seed
            let n = shuffled.len();
            if n > 1 {
                let mut s = seed;
                for i in (1..n).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    shuffled.swap(i, (s >> 33) as usize % (i + 1));
                }
            }
            let src = SourceRef::secret("s");
            let a = source_digest(&key(), "ns", &src, Some(&digests(&pairs)), &Keys::All);
            let b = source_digest(&key(), "ns", &src, Some(&digests(&shuffled)), &Keys::All);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn digest_changes_when_any_used_byte_changes(
            map in proptest::collection::btree_map("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 1..64), 1..8),
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let pairs: Vec<(String, Vec<u8>)> = map.into_iter().collect();
            let i = pick.index(pairs.len());
            let mut changed = pairs.clone();
            let j = byte.index(changed[i].1.len());
            changed[i].1[j] ^= flip;
            let src = SourceRef::configmap("c");
            let used_one = Keys::Some(BTreeSet::from([pairs[i].0.clone()]));
            for keys in [Keys::All, used_one] {
                let a = source_digest(&key(), "ns", &src, Some(&digests(&pairs)), &keys);
                let b = source_digest(&key(), "ns", &src, Some(&digests(&changed)), &keys);
                prop_assert_ne!(a, b);
            }
        }
    }
}
