//! AdmissionReview → response: reads the workload, stamps it with the one core function,
//! answers with the JSON patch. Never denies.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;
use tracing::Instrument;

use crate::core::digest::ABSENT;
use crate::core::patch::json_patch;
use crate::core::record::{Mode, Stamp, Stored, stamp};
use crate::core::refs::SourceRef;
use crate::core::workload::{Workload, WorkloadKind, stored_of, template_changed};
use crate::state::State;

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

pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, BadRequest> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| BadRequest::Json(e.to_string()))?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(BadRequest::Version(format!(
            "{}/{}",
            review.types.api_version, review.types.kind
        )));
    }
    review.try_into().map_err(|_| BadRequest::NoRequest)
}

fn warn(resp: AdmissionResponse, message: String) -> (AdmissionResponse, Outcome) {
    tracing::warn!(%message, "admitted without a patch");
    let mut resp = resp;
    resp.warnings = Some(vec![format!("hashroll: {message}")]);
    (resp, Outcome::Warning)
}

/// Answers one request. Never denies.
pub async fn admit(
    state: &State,
    req: &AdmissionRequest<DynamicObject>,
) -> (AdmissionResponse, Outcome) {
    let span = tracing::info_span!(
        "admission",
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = %req.name,
        operation = ?req.operation,
    );
    admit_inner(state, req).instrument(span).await
}

async fn admit_inner(
    state: &State,
    req: &AdmissionRequest<DynamicObject>,
) -> (AdmissionResponse, Outcome) {
    let resp = AdmissionResponse::from(req);
    let kind = match (req.kind.group.as_str(), WorkloadKind::parse(&req.kind.kind)) {
        ("apps", Some(k)) => k,
        _ => {
            return warn(
                resp,
                format!(
                    "{}/{} is not a kind hashroll handles",
                    req.kind.group, req.kind.kind
                ),
            );
        }
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) || req.sub_resource.is_some()
    {
        return (resp, Outcome::Skipped);
    }
    let Some(obj) = &req.object else {
        return warn(resp, "the request carries no object".into());
    };
    let namespace = req.namespace.clone().unwrap_or_default();
    if !state.cache.namespaces().allows(&namespace) {
        return (resp, Outcome::Skipped);
    }
    let new = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => return warn(resp, format!("cannot read the object: {e}")),
    };
    let workload = match Workload::from_value(kind, &namespace, &new) {
        Ok(w) => w,
        Err(e) => return warn(resp, format!("cannot read the {kind}: {e}")),
    };
    let names = &state.names;
    let sent = stored_of(&new, &names.record, &names.token);
    let (mode, stored) = match (&req.operation, &req.old_object) {
        (Operation::Update, Some(old_obj)) => {
            let old = match serde_json::to_value(old_obj) {
                Ok(v) => v,
                Err(e) => return warn(resp, format!("cannot read the old object: {e}")),
            };
            if template_changed(&old, &new, &names.token) {
                (Mode::Fresh, sent)
            } else {
                // what the request carries stands; what it dropped comes back from the old object
                let before = stored_of(&old, &names.record, &names.token);
                (
                    Mode::Keep,
                    Stored {
                        record: sent.record.or(before.record),
                        token: sent.token.or(before.token),
                    },
                )
            }
        }
        _ => (Mode::Fresh, sent),
    };
    let run = |w: &Workload| {
        stamp(
            &state.policy,
            &state.key,
            w,
            &state.cache.view(&namespace),
            &stored,
            mode,
            state.roll,
        )
    };
    let mut result: Stamp = run(&workload);
    // a miss may only mean the source is newer than the cache: one GET each decides
    if let Some(client) = &state.client {
        let missing: Vec<SourceRef> = result
            .current
            .iter()
            .filter(|(_, v)| v.as_str() == ABSENT)
            .filter_map(|(k, _)| SourceRef::from_record_key(k))
            .collect();
        let mut found = false;
        for s in &missing {
            match state.cache.confirm_miss(client, &namespace, s).await {
                Ok(exists) => found |= exists,
                Err(e) => return warn(resp, format!("cannot confirm that {s} is absent: {e}")),
            }
        }
        if found {
            result = run(&workload);
        }
    }
    let patch = json_patch(&new, names, &result.decision);
    if patch.0.is_empty() {
        return (resp, Outcome::Unchanged);
    }
    tracing::info!(
        ?mode,
        sources = result
            .decision
            .record
            .as_ref()
            .map(|r| r.len())
            .unwrap_or(0),
        token = result.decision.token.as_deref().unwrap_or(""),
        "stamped"
    );
    match resp.clone().with_patch(patch) {
        Ok(r) => (r, Outcome::Patched),
        Err(e) => warn(resp, format!("cannot serialize the patch: {e}")),
    }
}

/// The whole exchange: body bytes → (status, response body).
pub async fn handle(
    state: &State,
    body: &[u8],
) -> Result<(AdmissionReview<DynamicObject>, Outcome), BadRequest> {
    let req = parse(body)?;
    let (resp, outcome) = admit(state, &req).await;
    Ok((resp.into_review(), outcome))
}

/// A JSON value's pointer as a string, for tests and logs.
pub fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}
