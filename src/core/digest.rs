//! Keyed digests. A source is remembered as a short SHA-256 per key (never its data); the
//! record's digest of a source is an HMAC-SHA256, keyed per installation, over a canonical
//! encoding of kind, namespace, name, existence and the digests of the keys used. The roll
//! token is the HMAC of the whole record.

use std::fmt;
use std::sync::Arc;

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
pub(crate) type KeyDigest = [u8; 16];

/// What the cache remembers of one source's data: key → digest of its value, sorted.
/// `data` and `binaryData` keys share one map (Kubernetes keeps them disjoint); the
/// map tag is part of each digest.
///
/// The cache holds one of these per ConfigMap and Secret in the cluster, so it is one
/// shared allocation, not a vector of boxed names (four allocations a source): `n` (u32,
/// little-endian), the `n` digests (16 bytes each), the `n` end offsets of the names
/// (u32 each, into the names that follow), the names concatenated in sorted order. A
/// clone shares it; a source without keys allocates nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceDigests {
    enc: Option<Arc<[u8]>>,
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

/// The u32 at `at` of `buf` (0 past its end: the encoding is ours, so never).
fn u32_at(buf: &[u8], at: usize) -> usize {
    buf.get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize)
}

impl SourceDigests {
    /// From a source's string data (`data`) and binary data (`binaryData`, or a Secret's
    /// decoded `data`), in any order.
    pub fn from_data<'a>(
        data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        binary: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> SourceDigests {
        let mut keys: Vec<(&str, KeyDigest)> = data
            .into_iter()
            .map(|(k, v)| (k, value_digest(b's', v)))
            .chain(binary.into_iter().map(|(k, v)| (k, value_digest(b'b', v))))
            .collect();
        if keys.is_empty() {
            return SourceDigests::default();
        }
        keys.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        keys.dedup_by(|a, b| a.0 == b.0);
        // offsets are u32: a source's key names are bounded by the size of an object
        // (MiBs), and a length past that saturates instead of wrapping
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let names: usize = keys.iter().map(|(k, _)| k.len()).sum();
        let mut enc = Vec::with_capacity(4 + keys.len() * 20 + names);
        enc.extend_from_slice(&to_u32(keys.len()));
        for (_, d) in &keys {
            enc.extend_from_slice(d);
        }
        let mut end = 0usize;
        for (k, _) in &keys {
            end = end.saturating_add(k.len());
            enc.extend_from_slice(&to_u32(end));
        }
        for (k, _) in &keys {
            enc.extend_from_slice(k.as_bytes());
        }
        SourceDigests {
            enc: Some(Arc::from(enc)),
        }
    }

    fn enc(&self) -> &[u8] {
        self.enc.as_deref().unwrap_or_default()
    }

    /// The name and digest of key `i` (sorted order), if there is one.
    fn entry(&self, i: usize) -> Option<(&[u8], &KeyDigest)> {
        let enc = self.enc();
        let n = self.len();
        if i >= n {
            return None;
        }
        let digest = enc.get(4 + i * 16..4 + (i + 1) * 16)?.try_into().ok()?;
        let offsets = 4 + n * 16;
        let names = offsets + n * 4;
        let start = if i == 0 {
            0
        } else {
            u32_at(enc, offsets + (i - 1) * 4)
        };
        let end = u32_at(enc, offsets + i * 4);
        let name = enc.get(names.checked_add(start)?..names.checked_add(end)?)?;
        Some((name, digest))
    }

    /// Every key (as bytes) with its digest, in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &KeyDigest)> {
        (0..self.len()).filter_map(|i| self.entry(i))
    }

    /// The digest of `key`, if the source has it.
    pub fn get(&self, key: &str) -> Option<&KeyDigest> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (name, digest) = self.entry(mid)?;
            match name.cmp(key.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(digest),
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        u32_at(self.enc(), 0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Heap bytes held (the shared encoding and its two counts).
    pub fn heap_bytes(&self) -> usize {
        self.enc.as_ref().map_or(0, |e| e.len() + 16)
    }
}

impl fmt::Debug for SourceDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, d)| (String::from_utf8_lossy(k), short_hex(d))),
            )
            .finish()
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

/// Keyed digest of a source as a workload uses it (16 hex chars).
pub(crate) fn source_digest(
    key: &DigestKey,
    namespace: &str,
    source: &SourceRef,
    data: &SourceDigests,
    keys: &Keys,
) -> String {
    let mut mac = key.mac();
    put(&mut mac, b"hashroll/source/v1");
    put(&mut mac, source.kind.as_str().as_bytes());
    put(&mut mac, namespace.as_bytes());
    put(&mut mac, source.name.as_bytes());
    put(&mut mac, b"present");
    match keys {
        Keys::All => {
            put(&mut mac, b"all");
            for (k, d) in data.iter() {
                put(&mut mac, k);
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

/// A keyed digest (16 hex chars) over a sequence of fields, each hashed as its length and
/// its bytes, so no two sequences run together; a field may be given in parts.
pub(crate) struct FieldMac(HmacSha256);

impl FieldMac {
    /// Starts with `domain`, the first field, which names what is digested.
    pub(crate) fn new(key: &DigestKey, domain: &str) -> FieldMac {
        let mut mac = key.mac();
        put(&mut mac, domain.as_bytes());
        FieldMac(mac)
    }
    /// One field, the concatenation of `parts`.
    pub(crate) fn field(&mut self, parts: &[&str]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.0.update(&(len as u64).to_be_bytes());
        for p in parts {
            self.0.update(p.as_bytes());
        }
    }
    pub(crate) fn finish(self) -> String {
        short_hex(&self.0.finalize().into_bytes()[..8])
    }
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
        let x = source_digest(&key(), "ns", &s, &d, &Keys::All);
        assert_eq!(x.len(), 16);
        assert!(x.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(source_digest(&key(), "ns", &s, &d, &Keys::All), x);
        // namespace, name, kind and key all count
        assert_ne!(x, source_digest(&key(), "ns2", &s, &d, &Keys::All));
        assert_ne!(
            x,
            source_digest(&key(), "ns", &SourceRef::secret("cm"), &d, &Keys::All)
        );
        let other = DigestKey::new(b"another-key-of-16+bytes".to_vec()).unwrap();
        assert_ne!(x, source_digest(&other, "ns", &s, &d, &Keys::All));
        // an empty source is present, not absent
        let empty = digests(&[]);
        assert_ne!(source_digest(&key(), "ns", &s, &empty, &Keys::All), x);
    }

    #[test]
    fn used_keys_only() {
        let s = SourceRef::configmap("cm");
        let used = Keys::Some(BTreeSet::from(["a".to_string()]));
        let d1 = digests(&[("a".into(), b"1".to_vec()), ("b".into(), b"x".to_vec())]);
        let d2 = digests(&[("a".into(), b"1".to_vec()), ("b".into(), b"y".to_vec())]);
        let d3 = digests(&[("a".into(), b"2".to_vec()), ("b".into(), b"x".to_vec())]);
        let d4 = digests(&[("b".into(), b"x".to_vec())]);
        let f = |d| source_digest(&key(), "ns", &s, d, &used);
        assert_eq!(f(&d1), f(&d2));
        assert_ne!(f(&d1), f(&d3));
        assert_ne!(f(&d1), f(&d4));
        // the whole source sees the change of b
        assert_ne!(
            source_digest(&key(), "ns", &s, &d1, &Keys::All),
            source_digest(&key(), "ns", &s, &d2, &Keys::All)
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
                source_digest(&key(), "ns", &s, &d, &Keys::All),
                source_digest(&key(), "ns", &s, &d, &used),
                source_digest(&key(), "ns", &s, &empty, &Keys::All),
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

    #[test]
    fn lookup_of_the_encoded_digests() {
        let d = SourceDigests::from_data(
            [
                ("beta", b"2".as_slice()),
                ("a", b"1".as_slice()),
                ("ccc.long-name", b"".as_slice()),
            ],
            [("bin", [1u8].as_slice())],
        );
        assert_eq!(d.len(), 4);
        let names: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(names, [b"a".as_slice(), b"beta", b"bin", b"ccc.long-name"]);
        assert_eq!(d.get("beta"), Some(&value_digest(b's', b"2")));
        assert_eq!(d.get("bin"), Some(&value_digest(b'b', &[1])));
        assert_eq!(d.get("ccc.long-name"), Some(&value_digest(b's', b"")));
        for absent in ["", "b", "bet", "betaa", "zzz"] {
            assert_eq!(d.get(absent), None, "{absent}");
        }
        // a clone shares the encoding; no keys, no allocation
        assert_eq!(d.clone(), d);
        let empty = SourceDigests::from_data([], []);
        assert!(empty.is_empty() && empty.get("a").is_none() && empty.heap_bytes() == 0);
        assert_eq!(format!("{empty:?}"), "{}");
    }

    proptest! {
        #[test]
        fn every_key_is_found_and_no_other(
            map in proptest::collection::btree_map("[a-zA-Z0-9._-]{1,20}", proptest::collection::vec(any::<u8>(), 0..16), 0..40),
            probe in "[a-zA-Z0-9._-]{0,21}",
        ) {
            let pairs: Vec<(String, Vec<u8>)> = map.clone().into_iter().collect();
            let d = digests(&pairs);
            prop_assert_eq!(d.len(), map.len());
            for (k, v) in &map {
                prop_assert_eq!(d.get(k), Some(&value_digest(b's', v)));
            }
            prop_assert_eq!(d.get(&probe).is_some(), map.contains_key(&probe));
            let listed: Vec<Vec<u8>> = d.iter().map(|(k, _)| k.to_vec()).collect();
            let want: Vec<Vec<u8>> = map.keys().map(|k| k.as_bytes().to_vec()).collect();
            prop_assert_eq!(listed, want);
        }

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
            let a = source_digest(&key(), "ns", &src, &digests(&pairs), &Keys::All);
            let b = source_digest(&key(), "ns", &src, &digests(&shuffled), &Keys::All);
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
                let a = source_digest(&key(), "ns", &src, &digests(&pairs), &keys);
                let b = source_digest(&key(), "ns", &src, &digests(&changed), &keys);
                prop_assert_ne!(a, b);
            }
        }
    }
}
