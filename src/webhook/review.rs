//! The wire types of an AdmissionReview: the request read into a lean type of its own,
//! borrowed from the body (the object stays raw JSON text until `admit` reads only the
//! fields the stamp needs), and the review sent back.

use std::borrow::Cow;

use crate::core::kind::WorkloadKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A body that is not an AdmissionReview v1: HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("body is not an AdmissionReview: {0}")]
    Json(String),
    #[error("unsupported AdmissionReview version {0:?}: hashroll speaks admission.k8s.io/v1")]
    Version(String),
    #[error("AdmissionReview carries no request")]
    NoRequest,
}

/// The result label of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Patched,
    Unchanged,
    Skipped,
    Warning,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Warning => "warning",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(default, borrow)]
    api_version: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    request: Option<Request<'a>>,
}

/// `group`/`version`/`kind` of the request.
#[derive(Debug, Deserialize, Default)]
pub struct Gvk<'a> {
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
}

/// What hashroll reads of an AdmissionRequest, borrowed from the body. The objects stay
/// raw JSON text here: only the fields the stamp needs are read out of them later.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(default, borrow)]
    pub kind: Gvk<'a>,
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub operation: Cow<'a, str>,
    #[serde(default, borrow)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub object: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub old_object: Option<&'a RawValue>,
}

pub fn parse(body: &[u8]) -> Result<Request<'_>, BadRequest> {
    let review: ReviewIn =
        serde_json::from_slice(body).map_err(|e| BadRequest::Json(e.to_string()))?;
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err(BadRequest::Version(format!(
            "{}/{}",
            review.api_version, review.kind
        )));
    }
    review.request.ok_or(BadRequest::NoRequest)
}

/// The pod template of an object of `kind`, for the UPDATE comparison (nothing else is
/// built).
pub(super) fn template_of(
    kind: WorkloadKind,
    raw: &RawValue,
) -> Result<Option<Value>, serde_json::Error> {
    crate::core::workload::template_value(kind, raw.get())
}

/// A raw object that is there and not `null`.
pub(super) fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get().trim() != "null")
}

/// The AdmissionReview sent back: the patch as base64, as the API defines `[]byte` in JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewOut {
    pub api_version: String,
    pub kind: String,
    pub response: ResponseOut,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseOut {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl ResponseOut {
    pub(super) fn allow(uid: &str) -> ResponseOut {
        ResponseOut {
            uid: uid.to_string(),
            allowed: true,
            patch: None,
            patch_type: None,
            warnings: None,
        }
    }
}

/// The value of the first string field `key` in `body`, without reading the review: at
/// most `max` bytes, each one `ok` allows; `None` when the first such field is not one.
/// For what must be known before a review is read (its namespace, to queue it; its uid, to
/// answer it when it is refused): the apiserver writes `request.uid` and
/// `request.namespace` before the objects, so their first occurrences are these fields. A
/// client writing its own reviews (a port open without `--client-ca-file`) can name any
/// namespace here, as it can in the review itself.
pub(super) fn peek_str<'a>(
    body: &'a [u8],
    key: &str,
    max: usize,
    ok: fn(u8) -> bool,
) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let at = memchr::memmem::find(body, quoted.as_bytes())? + quoted.len();
    let rest = &body[at..];
    let skip_ws = |b: &[u8]| -> usize { b.iter().take_while(|c| c.is_ascii_whitespace()).count() };
    let mut i = skip_ws(rest);
    if rest.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    i += skip_ws(&rest[i..]);
    if rest.get(i) != Some(&b'"') {
        return None;
    }
    let value = &rest[i + 1..];
    let len = value.iter().take(max + 1).take_while(|c| ok(**c)).count();
    if len > max || value.get(len) != Some(&b'"') {
        return None;
    }
    std::str::from_utf8(&value[..len]).ok()
}

/// A namespace's name: DNS label characters.
pub(super) fn namespace_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

/// A uid's characters (a UUID, or what a client sends in its place).
pub(super) fn uid_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'
}

#[cfg(test)]
mod peek_tests {
    use super::*;

    #[test]
    fn the_first_field_of_a_name_is_read_without_reading_the_review() {
        let body = br#"{"kind":"AdmissionReview","request":{"uid":"705ab4f5-63","name":"web","namespace" : "team-a","object":{"metadata":{"namespace":"team-b"}}}}"#;
        assert_eq!(
            peek_str(body, "namespace", 63, namespace_byte),
            Some("team-a")
        );
        assert_eq!(peek_str(body, "uid", 128, uid_byte), Some("705ab4f5-63"));
        assert_eq!(peek_str(body, "missing", 63, namespace_byte), None);
    }

    #[test]
    fn a_value_too_long_or_of_other_characters_is_none() {
        let long = format!(r#"{{"namespace":"{}"}}"#, "a".repeat(64));
        assert_eq!(
            peek_str(long.as_bytes(), "namespace", 63, namespace_byte),
            None
        );
        let exact = format!(r#"{{"namespace":"{}"}}"#, "a".repeat(63));
        assert!(peek_str(exact.as_bytes(), "namespace", 63, namespace_byte).is_some());
        for bad in [
            r#"{"namespace":"Team"}"#,
            r#"{"namespace":"a\"b"}"#,
            r#"{"namespace":null}"#,
            r#"{"namespace":"unterminated"#,
            r#"{"namespace""#,
        ] {
            assert_eq!(
                peek_str(bad.as_bytes(), "namespace", 63, namespace_byte),
                None,
                "{bad}"
            );
        }
    }
}
