//! The record's types and its annotation text. The text is parsed once, here, into a
//! [`Record`] of typed entries ([`Entry`] → [`State`]) and rendered back from it; nothing
//! else reads or writes the record as strings. The format is the one hashroll has always
//! written: a JSON object, `"@key"` (the id of the digest key) first, then each entry's
//! `"<kind>/<name>"` or `"group/NN"` with its digest, `"absent"` or `"unseen"`, keys sorted.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::core::limits::{MAX_RECORD_BYTES, MAX_RECORD_SOURCES, RECORD_GROUPS};
use crate::core::refs::{SourceKind, SourceRef};

/// The record's entry that names the key its digests were made with (sorts before every
/// entry, never a source's kind).
const KEY_ID_FIELD: &str = "@key";

/// Keys of a compact record's groups start with this (never a source's kind).
const GROUP_PREFIX: &str = "group/";

// a group's index is written with two digits, which sort as the numbers do
const _: () = assert!(RECORD_GROUPS <= 100);

/// What a record entry is about: a tracked source, or one group of a compact record (see
/// [`super::compact`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    Source(SourceRef),
    Group(u8),
}

impl Entry {
    /// From an entry's text (`configmap/a`, `group/03`); `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Entry> {
        if let Some(n) = text.strip_prefix(GROUP_PREFIX) {
            let i = (n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u8>().ok())
                .flatten()?;
            return (usize::from(i) < RECORD_GROUPS).then_some(Entry::Group(i));
        }
        // the kind's own name (its aliases are for annotations, not for records)
        let (kind, name) = text.split_once('/')?;
        let kind = SourceKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        (!name.is_empty()).then(|| Entry::Source(SourceRef::new(kind, name)))
    }

    /// The source, unless a group.
    pub(crate) fn source(&self) -> Option<&SourceRef> {
        match self {
            Entry::Source(s) => Some(s),
            Entry::Group(_) => None,
        }
    }

    /// The entry's text in pieces (the digests hash them without building the string).
    pub(crate) fn parts(&self) -> [&str; 3] {
        const DIGITS: [&str; 100] = two_digits();
        match self {
            Entry::Source(s) => [s.kind.as_str(), "/", &s.name],
            Entry::Group(i) => [GROUP_PREFIX, DIGITS[usize::from(*i)], ""],
        }
    }

    /// What sorts first: the entry's text up to its name.
    fn prefix(&self) -> &str {
        match self {
            Entry::Source(s) => s.kind.as_str(),
            Entry::Group(_) => "group",
        }
    }
}

const fn two_digits() -> [&'static str; 100] {
    const D: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839\
                     40414243444546474849505152535455565758596061626364656667686970717273747576777879\
                     8081828384858687888990919293949596979899";
    let mut out = [""; 100];
    let mut i = 0;
    while i < 100 {
        let (_, rest) = D.split_at(2 * i);
        let (two, _) = rest.split_at(2);
        out[i] = two;
        i += 1;
    }
    out
}

/// Entries sort as their texts do (what the JSON object and the digests over a record
/// have always been ordered by): kinds and `group` by name, then the source's name or the
/// group's index. A prefix that is another's start sorts first, as `secret/` before
/// `secretproviderclass/`, since `/` sorts before every letter.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Entry::Group(a), Entry::Group(b)) => a.cmp(b),
            (Entry::Source(a), Entry::Source(b)) if a.kind == b.kind => a.name.cmp(&b.name),
            _ => self.prefix().cmp(other.prefix()),
        }
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts().iter().try_for_each(|p| f.write_str(p))
    }
}

impl From<SourceRef> for Entry {
    fn from(s: SourceRef) -> Entry {
        Entry::Source(s)
    }
}

/// Entries as a log line or an Event names them: `configmap/a, group/03`.
pub(crate) fn entry_list(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A keyed digest as a record holds it: 16 hex chars for a source, `COUNT:DIGEST` for a
/// group (at most 32 chars of hex digits and `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);

impl Digest {
    /// `None` unless 1 to 32 chars of lower-case hex digits and `:`.
    pub(crate) fn new(text: impl Into<String>) -> Option<Digest> {
        let text = text.into();
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b':');
        ok.then_some(Digest(text))
    }
    /// A digest hashroll just made (hex, or a group's `COUNT:DIGEST`).
    pub(crate) fn of_hex(hex: String) -> Digest {
        debug_assert!(Digest::new(hex.as_str()).is_some(), "{hex}");
        Digest(hex)
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a record says of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// the keyed digest of what the workload reads of it
    Digest(Digest),
    /// no such source (for a SecretProviderClass: not mounted yet, or no longer)
    Absent,
    /// the webhook's cache had not seen it: the watcher fills it in without a roll (a
    /// review never makes hashroll GET a source: a review may be forged, an oracle of
    /// other namespaces' Secrets paid for with our GETs)
    Unseen,
}

impl State {
    /// From a state's text (a digest keeps it).
    pub(crate) fn parse(text: String) -> Option<State> {
        match text.as_str() {
            "absent" => Some(State::Absent),
            "unseen" => Some(State::Unseen),
            _ => Digest::new(text).map(State::Digest),
        }
    }
    pub(crate) fn as_str(&self) -> &str {
        match self {
            State::Digest(d) => d.as_str(),
            State::Absent => "absent",
            State::Unseen => "unseen",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Each tracked source (or, compact, each group) and what the workload's pods read of it.
///
/// A SecretProviderClass's [`State::Absent`] means "not mounted yet" (or no longer by any
/// pod): its first digest fills in without a roll, and so does its going. In the compact
/// form (past [`MAX_RECORD_SOURCES`] sources) the groups cannot tell that from a change, so
/// a class first mounted by a workload that tracks that many sources rolls it once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record(BTreeMap<Entry, State>);

impl Record {
    pub(crate) fn new() -> Record {
        Record::default()
    }
    pub(crate) fn get(&self, entry: &Entry) -> Option<&State> {
        self.0.get(entry)
    }
    /// What the record holds for `source` (never found in a compact record).
    pub(crate) fn get_source(&self, source: &SourceRef) -> Option<&State> {
        self.0.get(&Entry::Source(source.clone()))
    }
    pub(crate) fn insert(&mut self, entry: Entry, state: State) -> Option<State> {
        self.0.insert(entry, state)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Entry, &State)> {
        self.0.iter()
    }
    /// Each entry's text and its state's, as the annotation says them (for reports).
    pub(crate) fn texts(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(e, s)| (e.to_string(), s.to_string()))
            .collect()
    }
    /// The sources it names (none when compact).
    pub(crate) fn sources(&self) -> impl Iterator<Item = &SourceRef> {
        self.0.keys().filter_map(Entry::source)
    }
}

impl FromIterator<(Entry, State)> for Record {
    fn from_iter<I: IntoIterator<Item = (Entry, State)>>(iter: I) -> Record {
        Record(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Record {
    type Item = (&'a Entry, &'a State);
    type IntoIter = std::collections::btree_map::Iter<'a, Entry, State>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Parses the record annotation; `None` when it is not one hashroll writes.
///
/// The annotation is the tenant's to write, so only what hashroll itself writes is taken: at
/// most [`MAX_RECORD_BYTES`] of text and [`MAX_RECORD_SOURCES`] entries, each a source or a
/// group with a digest, `absent` or `unseen`, and the key id. Anything else counts as no
/// record.
pub fn parse_record(text: &str) -> Option<Record> {
    parse_record_with_id(text).map(|(r, _)| r)
}

/// [`parse_record`] and the id of the key the record was made with (`None`: a record
/// written before records carried one).
pub(crate) fn parse_record_with_id(text: &str) -> Option<(Record, Option<String>)> {
    if text.len() > MAX_RECORD_BYTES {
        return None;
    }
    let Parsed(record, id) = serde_json::from_str(text).ok()?;
    let id_ok = |v: &str| {
        v.len() == 8
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    id.as_deref().is_none_or(id_ok).then_some((record, id))
}

/// The annotation's object read straight into typed entries. A key given twice: the last
/// value stands, as in any JSON object read into a map; an entry or value hashroll never
/// writes (that no later value of its key replaces), or more than [`MAX_RECORD_SOURCES`]
/// entries, fail the whole read.
struct Parsed(Record, Option<String>);

impl<'de> serde::Deserialize<'de> for Parsed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Parsed, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record: an object of strings")
            }
            fn visit_map<A>(self, mut map: A) -> Result<Parsed, A::Error>
            where
                A: serde::de::MapAccess<'de>,
            {
                use serde::de::Error;
                let (mut record, mut id) = (Record::new(), None);
                // keys whose last value so far is not one hashroll writes
                let mut bad: std::collections::BTreeSet<String> = Default::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: String = map.next_value()?;
                    if k == KEY_ID_FIELD {
                        id = Some(v);
                        continue;
                    }
                    match (Entry::parse(&k), State::parse(v)) {
                        (Some(entry), Some(state)) => {
                            if !bad.is_empty() {
                                bad.remove(k.as_ref());
                            }
                            record.insert(entry, state);
                        }
                        _ => {
                            bad.insert(k.into_owned());
                        }
                    }
                    if record.len() > MAX_RECORD_SOURCES {
                        return Err(A::Error::custom("too many entries"));
                    }
                }
                if !bad.is_empty() {
                    return Err(A::Error::custom("an entry hashroll never writes"));
                }
                Ok(Parsed(record, id))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A key of the object, borrowed from the text when it holds no escape.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// The record annotation's text (compact JSON, keys sorted, the key id first).
pub(crate) fn render_record(record: &Record, key_id: &str) -> String {
    serde_json::to_string(&Rendered { record, key_id }).expect("a map of strings serializes")
}

/// The length of [`render_record`]'s text, counted without building it.
pub(crate) fn rendered_len(record: &Record, key_id: &str) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, &Rendered { record, key_id })
        .expect("a map of strings serializes");
    n.0
}

/// The annotation's object written straight from the record: the key id, then each entry in
/// order (which is the order of their texts).
struct Rendered<'a> {
    record: &'a Record,
    key_id: &'a str,
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// An entry's text, written through the serializer's escaping without a String.
        struct Text<'a>(&'a Entry);
        impl serde::Serialize for Text<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self.0)
            }
        }
        let mut m = s.serialize_map(Some(self.record.len() + 1))?;
        m.serialize_entry(KEY_ID_FIELD, self.key_id)?;
        for (entry, state) in self.record {
            m.serialize_entry(&Text(entry), state.as_str())?;
        }
        m.end()
    }
}

/// A record from `(entry, state)` texts, for tests; panics on one that does not parse.
#[cfg(test)]
pub(crate) fn record_of(pairs: &[(&str, &str)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Tests write records as texts; one that does not parse is a mistake in the test.
#[cfg(test)]
impl FromIterator<(String, String)> for Record {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Record {
        iter.into_iter()
            .map(|(k, v)| {
                let e = Entry::parse(&k).unwrap_or_else(|| panic!("entry {k}"));
                let s = State::parse(v.clone()).unwrap_or_else(|| panic!("state {v}"));
                (e, s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::refs::SOURCE_KINDS;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            (0..SOURCE_KINDS.len(), "[a-z0-9.\"\\\\/\u{1}-]{1,40}")
                .prop_map(|(k, name)| { Entry::Source(SourceRef::new(SourceKind::ALL[k], name)) }),
            (0..RECORD_GROUPS as u8).prop_map(Entry::Group),
        ]
    }

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Absent),
            Just(State::Unseen),
            "[0-9a-f:]{1,32}".prop_map(|d| State::Digest(Digest::new(d).unwrap())),
        ]
    }

    proptest! {
        /// parse ∘ render is the identity on every record hashroll can hold, and the text
        /// lists the entries in the record's order.
        #[test]
        fn parse_after_render_is_the_identity(
            entries in proptest::collection::vec((entry(), state()), 0..40),
            id in "[0-9a-f]{8}",
        ) {
            let record: Record = entries.into_iter().collect();
            let text = render_record(&record, &id);
            // the text is what a map of strings serializes to (how hashroll wrote it before
            // the record was typed), escapes included
            let strings: BTreeMap<String, String> = std::iter::once((KEY_ID_FIELD.to_string(), id.clone()))
                .chain(record.iter().map(|(e, s)| (e.to_string(), s.to_string())))
                .collect();
            prop_assert_eq!(&text, &serde_json::to_string(&strings).unwrap());
            prop_assert_eq!(rendered_len(&record, &id), text.len());
            prop_assert_eq!(parse_record_with_id(&text), Some((record.clone(), Some(id))));
            let raw: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                .unwrap()
                .keys()
                .skip(1)
                .cloned()
                .collect();
            let typed: Vec<String> = record.iter().map(|(e, _)| e.to_string()).collect();
            prop_assert_eq!(raw, typed);
        }

        /// Entries order as their texts do.
        #[test]
        fn entries_sort_as_their_texts(a in entry(), b in entry()) {
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        }
    }

    /// Annotations as hashroll wrote them (full, compact, before records named their key)
    /// parse to what they say, and render back to the same text.
    #[test]
    fn todays_annotations_parse() {
        let written = [
            r#"{"@key":"0123abcd","configmap/a":"1111111111111111","secret/x":"absent"}"#,
            r#"{"@key":"0123abcd","configmap/a":"unseen","secretproviderclass/spc":"0123456789abcdef"}"#,
            r#"{"@key":"0123abcd","group/00":"4:6f84948bc05d5e7d","group/15":"12:0123456789abcdef"}"#,
        ];
        for text in written {
            let (r, id) = parse_record_with_id(text).expect(text);
            assert_eq!(render_record(&r, id.as_deref().unwrap()), text);
        }
        // a key given twice: the last value stands, whatever the first was
        let twice = r#"{"configmap/a":"zz","configmap/a":"absent"}"#;
        assert_eq!(
            parse_record(twice).and_then(|r| r.get_source(&SourceRef::configmap("a")).cloned()),
            Some(State::Absent)
        );
        let unnamed = r#"{"configmap/a":"1111111111111111","secret/x":"absent"}"#;
        let (r, id) = parse_record_with_id(unnamed).unwrap();
        assert_eq!(id, None);
        assert_eq!(r.get_source(&SourceRef::secret("x")), Some(&State::Absent));
        assert_eq!(
            r.get_source(&SourceRef::configmap("a")).map(State::as_str),
            Some("1111111111111111")
        );
        // what hashroll never writes counts as no record
        for text in [
            r#"{"pod/a":"absent"}"#,
            r#"{"configmap/":"absent"}"#,
            r#"{"group/16":"1:00"}"#,
            r#"{"group/3":"1:00"}"#,
            r#"{"configmap/a":"ABSENT"}"#,
            r#"{"configmap/a":""}"#,
            r#"{"cm/a":"absent"}"#,
            r#"{"configmap/a":"absent","configmap/a":"zz"}"#,
        ] {
            assert_eq!(parse_record(text), None, "{text}");
        }
    }
}
