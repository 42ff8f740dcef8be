//! AdmissionReview → response: reads the workload, stamps it with the one core function,
//! answers with the JSON patch. Never denies. The glue between the wire types (`review`)
//! and the core (`core::stamp`); the decisions are the core's.

use serde_json::value::RawValue;

use super::review::{
    BadRequest, Outcome, Request, ResponseOut, ReviewOut, parse, present, template_of,
};

use crate::core::kind::WorkloadKind;
use crate::core::limits::MAX_ANNOTATIONS_BYTES;
use crate::core::names::RecordNames;
use crate::core::patch::json_patch;
use crate::core::record::{Mode, Stored};
use crate::core::stamp::{OldObject, Stamp, keep_from_old, stamp};
use crate::core::template::templates_differ;
use crate::core::workload::Workload;
use crate::services::state::State;

/// Room left under the annotations limit for the token and what others add after us.
const ANNOTATIONS_MARGIN: usize = 4 * 1024;

fn warn(mut resp: ResponseOut, message: String) -> (ResponseOut, Outcome) {
    tracing::warn!(%message, "admitted without a patch");
    resp.patch = None;
    resp.patch_type = None;
    resp.warnings
        .get_or_insert_with(Vec::new)
        .push(format!("hashroll: {message}"));
    (resp, Outcome::Warning)
}

/// Answers one request. Never denies.
pub async fn admit(state: &State, req: &Request<'_>) -> (ResponseOut, Outcome) {
    let span = tracing::info_span!(
        "admission",
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = %req.name,
        operation = %req.operation,
    );
    // synchronous: the span is entered for the call alone
    let _in = span.enter();
    admit_inner(state, req)
}

/// Reads the request: what it is about, and whether hashroll stamps it at all.
fn admit_inner(state: &State, req: &Request<'_>) -> (ResponseOut, Outcome) {
    let resp = ResponseOut::allow(&req.uid);
    let kind = match WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) {
        Some(k) => k,
        None => {
            return warn(
                resp,
                format!(
                    "{}/{} is not a kind hashroll handles",
                    req.kind.group, req.kind.kind
                ),
            );
        }
    };
    if !state.policy.handles(kind) {
        return (resp, Outcome::Skipped);
    }
    let update = match req.operation.as_ref() {
        "CREATE" => false,
        "UPDATE" => true,
        _ => return (resp, Outcome::Skipped),
    };
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return (resp, Outcome::Skipped);
    }
    let Some(new) = present(req.object) else {
        return warn(resp, "the request carries no object".into());
    };
    let namespace = req.namespace.as_deref().unwrap_or_default();
    if !state.cache.namespaces().allows(namespace) {
        return (resp, Outcome::Skipped);
    }
    let workload = match Workload::from_json(kind, namespace, new.get()) {
        Ok(w) => w,
        Err(e) => return warn(resp, format!("cannot read the {kind}: {e}")),
    };
    // a review is answered for the namespace it was asked in: an object naming another gets
    // no lookup and no patch (a forged review must not learn about other namespaces)
    if workload.namespace != namespace {
        return warn(
            resp,
            "the object's namespace differs from the request's; not stamped".into(),
        );
    }
    stamp_review(state, req, (kind, update, namespace), new, &workload, resp)
}

/// The stamp of a workload the request carries, as the review's patch.
fn stamp_review(
    state: &State,
    req: &Request<'_>,
    (kind, update, namespace): (WorkloadKind, bool, &str),
    new: &RawValue,
    workload: &Workload,
    resp: ResponseOut,
) -> (ResponseOut, Outcome) {
    let names = &state.names;
    let sent = Stored::of(workload, names);
    let old = present(req.old_object).filter(|_| update).map(|old| {
        let templates = template_of(kind, old).and_then(|o| Ok((o, template_of(kind, new)?)));
        OldObject {
            stored: Workload::from_json(kind, namespace, old.get())
                .map(|w| Stored::of(&w, names))
                .unwrap_or_default(),
            template_changed: match templates {
                Ok((o, n)) => templates_differ(o.as_ref(), n.as_ref(), &names.token),
                Err(_) => true,
            },
        }
    });
    let (mode, stored) = keep_from_old(sent, old);
    let keys = state.keys.get();
    let run = |w: &Workload| {
        stamp(
            &state.policy,
            &keys,
            w,
            &state.cache.view(namespace),
            &stored,
            mode,
            state.roll,
        )
    };
    // a source the cache lacks is recorded `unseen`, never looked up here: the watcher
    // does that for the workload the apiserver then holds (see `digest::UNSEEN`)
    let result: Stamp = run(workload);
    let patch = json_patch(workload, names, &result.decision);
    let mut resp = resp;
    if !result.problems.is_empty() {
        for p in &result.problems {
            tracing::warn!(problem = %p, "bad annotation value");
        }
        resp.warnings = Some(
            result
                .problems
                .iter()
                .take(8)
                .map(|p| format!("hashroll: {p}"))
                .collect(),
        );
    }
    if patch.0.is_empty() {
        return (resp, Outcome::Unchanged);
    }
    with_patch(resp, workload, names, &result, mode, &patch)
}

/// The review's answer with `patch`, unless the record would take the annotations past the
/// apiserver's limit.
fn with_patch(
    resp: ResponseOut,
    workload: &Workload,
    names: &RecordNames,
    result: &Stamp,
    mode: Mode,
    patch: &json_patch::Patch,
) -> (ResponseOut, Outcome) {
    // the record replaces the one there; the annotations must stay under the apiserver's
    // limit, or the tenant's own apply would be refused after us
    let record_len = result
        .decision
        .record_text()
        .map(|r| names.record.len() + r.len())
        .unwrap_or(0);
    let others: usize = workload
        .annotations
        .iter()
        .filter(|(k, _)| **k != names.record)
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if others + record_len > MAX_ANNOTATIONS_BYTES - ANNOTATIONS_MARGIN {
        return warn(
            resp,
            "the record would take the annotations past the apiserver's limit; not stamped".into(),
        );
    }
    // routine (every apply of an opted-in workload): debug; rolls are logged by the watcher
    tracing::debug!(
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
    match serde_json::to_vec(patch) {
        Ok(bytes) => {
            use base64::Engine;
            let mut resp = resp;
            resp.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            resp.patch_type = Some("JSONPatch".into());
            (resp, Outcome::Patched)
        }
        Err(e) => warn(resp, format!("cannot serialize the patch: {e}")),
    }
}

/// The whole exchange: body bytes → the review to send back.
pub async fn handle(state: &State, body: &[u8]) -> Result<(ReviewOut, Outcome), BadRequest> {
    let req = parse(body)?;
    let (response, outcome) = admit(state, &req).await;
    Ok((
        ReviewOut {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
            response,
        },
        outcome,
    ))
}

#[cfg(test)]
mod tests;
