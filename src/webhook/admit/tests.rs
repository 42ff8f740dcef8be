//! Admission on a state without a cluster: stamps, what an UPDATE keeps, the bounds.

use super::*;
use serde_json::Value;

/// The decoded JSON patch of a response, if any.
fn decoded_patch(r: &ResponseOut) -> Option<json_patch::Patch> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.patch.as_ref()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}
use crate::cache::SourceCache;
use crate::cache::filter::NamespaceFilter;
use crate::core::digest::{DigestKey, KeyRing};
use crate::core::names::AnnotationNames;
use crate::core::patch::merge_patch;
use crate::core::record::{self, Decision, parse_record};
use crate::core::refs::SourceRef;
use crate::core::selector::LabelSelector;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde_json::json;
use std::sync::Arc;

fn state() -> State {
    let cache = Arc::new(SourceCache::new(
        AnnotationNames::default(),
        LabelSelector::default(),
        NamespaceFilter::default(),
    ));
    crate::testing::offline_state(
        KeyRing::single(DigestKey::new(b"review-test-key-0123456789".to_vec()).unwrap()),
        cache,
    )
}

fn put_cm(state: &State, name: &str, value: &str) {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), value.to_string())].into()),
        ..Default::default()
    };
    let e = state.cache.configmap_entry(&cm);
    state.cache.upsert("ns", &SourceRef::configmap(name), e);
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}
        }}
    })
}

fn review(op: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "ns", "operation": op,
            "userInfo": {"username": "test"},
            "object": object, "oldObject": old, "dryRun": false,
            "options": null
        }
    }))
    .unwrap()
}

/// Runs the admission and applies its patch to `object`.
async fn admit_apply(
    state: &State,
    op: &str,
    object: &Value,
    old: Option<&Value>,
) -> (Value, Outcome) {
    let (resp, outcome) = handle(state, &review(op, object, old))
        .await
        .expect("valid review");
    let resp = resp.response;
    assert!(resp.allowed, "never denies");
    let mut out = object.clone();
    if resp.patch.is_some() {
        let patch = decoded_patch(&resp).expect("a base64 JSON patch");
        json_patch::patch(&mut out, &patch).unwrap();
    }
    (out, outcome)
}

fn stamp_of(v: &Value) -> (Option<String>, Option<String>) {
    (
        str_at(v, "/metadata/annotations/hashroll.dev~1sources").map(String::from),
        str_at(
            v,
            "/spec/template/metadata/annotations/hashroll.dev~1config-hash",
        )
        .map(String::from),
    )
}

#[tokio::test]
async fn create_is_stamped_and_reapply_changes_nothing() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let (created, outcome) = admit_apply(&s, "CREATE", &deployment(), None).await;
    assert_eq!(outcome, Outcome::Patched);
    let (record, token) = stamp_of(&created);
    let record = parse_record(&record.unwrap()).unwrap();
    assert_eq!(
        record
            .iter()
            .map(|(e, _)| e.to_string())
            .collect::<Vec<_>>(),
        ["configmap/cfg"]
    );
    assert!(token.is_some());
    // re-applying the manifest as written (no stamp) onto the stamped object
    let (again, outcome) = admit_apply(&s, "UPDATE", &deployment(), Some(&created)).await;
    assert_eq!(outcome, Outcome::Patched, "the dropped stamp is restored");
    assert_eq!(stamp_of(&again), stamp_of(&created));
    let (again, outcome) = admit_apply(&s, "UPDATE", &created, Some(&created)).await;
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(again, created);
}

#[tokio::test]
async fn the_watchers_patch_survives_admission_on_a_lagging_replica() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let (created, _) = admit_apply(&s, "CREATE", &deployment(), None).await;
    // the watcher (another replica, with a newer cache) writes a new record and token
    let mut newer_record = parse_record(&stamp_of(&created).0.unwrap()).unwrap();
    newer_record.insert(
        SourceRef::configmap("cfg").into(),
        record::State::parse("00000000000000ff".into()).unwrap(),
    );
    let decision = Decision {
        record: Some(newer_record.clone()),
        token: Some("feedfacefeedface".into()),
        roll: true,
        changed: vec![SourceRef::configmap("cfg").into()],
        key_id: s.keys.get().current.id().to_string(),
    };
    let mut patched = created.clone();
    json_patch::merge(
        &mut patched,
        &merge_patch(WorkloadKind::Deployment, None, &s.names, &decision),
    );
    // this replica's cache still has the old data
    let (after, _) = admit_apply(&s, "UPDATE", &patched, Some(&created)).await;
    let (record, token) = stamp_of(&after);
    assert_eq!(parse_record(&record.unwrap()).unwrap(), newer_record);
    assert_eq!(token.as_deref(), Some("feedfacefeedface"));
}

#[tokio::test]
async fn opting_in_records_without_a_token() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let mut plain = deployment();
    plain["metadata"]["annotations"] = json!({});
    let (old, outcome) = admit_apply(&s, "CREATE", &plain, None).await;
    assert_eq!(
        outcome,
        Outcome::Unchanged,
        "not opted in: nothing to write"
    );
    let (after, _) = admit_apply(&s, "UPDATE", &deployment(), Some(&old)).await;
    let (record, token) = stamp_of(&after);
    assert!(record.is_some());
    assert_eq!(token, None);
}

#[tokio::test]
async fn bad_bodies_are_bad_requests_and_odd_requests_are_allowed() {
    let s = state();
    assert!(matches!(
        handle(&s, b"{not json").await,
        Err(BadRequest::Json(_))
    ));
    assert!(matches!(
        handle(
            &s,
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#
        )
        .await,
        Err(BadRequest::Version(_))
    ));
    assert!(matches!(
        handle(
            &s,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#
        )
        .await,
        Err(BadRequest::NoRequest)
    ));
    // no object: allowed, with a warning
    let mut v: Value = serde_json::from_slice(&review("CREATE", &deployment(), None)).unwrap();
    v["request"]["object"] = Value::Null;
    let (resp, outcome) = handle(&s, &serde_json::to_vec(&v).unwrap()).await.unwrap();
    assert_eq!(outcome, Outcome::Warning);
    let resp = resp.response;
    assert!(resp.allowed && resp.patch.is_none() && resp.warnings.is_some());
    // a pod template that is not a PodSpec: allowed, with a warning
    let mut bad = deployment();
    bad["spec"]["template"]["spec"]["containers"] = json!("nope");
    let (resp, outcome) = handle(&s, &review("CREATE", &bad, None)).await.unwrap();
    assert_eq!(outcome, Outcome::Warning);
    assert!(resp.response.allowed);
    // an unknown kind: allowed, with a warning
    let mut v: Value = serde_json::from_slice(&review("CREATE", &deployment(), None)).unwrap();
    v["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let (resp, outcome) = handle(&s, &serde_json::to_vec(&v).unwrap()).await.unwrap();
    assert_eq!(outcome, Outcome::Warning);
    assert!(resp.response.allowed);
}

#[tokio::test]
async fn a_review_for_another_namespace_gets_no_lookup_and_no_patch() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let mut forged = deployment();
    forged["metadata"]["namespace"] = json!("victim");
    let (resp, outcome) = handle(&s, &review("CREATE", &forged, None)).await.unwrap();
    assert_eq!(outcome, Outcome::Warning);
    assert!(resp.response.allowed && resp.response.patch.is_none());
    let w = resp.response.warnings.unwrap().join(" ");
    assert!(w.contains("namespace differs"), "{w}");
}

#[tokio::test]
async fn bad_values_are_warnings_and_the_apply_still_goes_through() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let mut d = deployment();
    d["metadata"]["annotations"]["deployment.reloader.stakater.com/pause-period"] =
        json!("3000000000000000h");
    d["metadata"]["annotations"]["configmap.reloader.stakater.com/reload"] = json!("(unclosed");
    let (resp, outcome) = handle(&s, &review("CREATE", &d, None)).await.unwrap();
    assert_eq!(outcome, Outcome::Patched, "stamped all the same");
    let w = resp.response.warnings.unwrap().join(" ");
    assert!(w.contains("taken as 24h") && w.contains("unclosed"), "{w}");
}

#[tokio::test]
async fn a_stamp_that_would_pass_the_annotations_limit_is_not_made() {
    let s = state();
    put_cm(&s, "cfg", "1");
    let mut d = deployment();
    d["metadata"]["annotations"]["example.com/blob"] =
        json!("x".repeat(MAX_ANNOTATIONS_BYTES - 1024));
    let (resp, outcome) = handle(&s, &review("CREATE", &d, None)).await.unwrap();
    assert_eq!(outcome, Outcome::Warning);
    assert!(resp.response.allowed && resp.response.patch.is_none());
    // a record of thousands of long-named sources stays small: compact
    let s = state();
    for i in 0..3000 {
        put_cm(&s, &format!("{}-{i}", "n".repeat(200)), "1");
    }
    let mut d = deployment();
    d["metadata"]["annotations"]["configmap.reloader.stakater.com/reload"] = json!("n+-.*");
    let (out, outcome) = admit_apply(&s, "CREATE", &d, None).await;
    assert_eq!(outcome, Outcome::Patched);
    let record = stamp_of(&out).0.unwrap();
    assert!(record.len() < 2048, "{} bytes", record.len());
}

mod any_annotations {
    use super::*;
    use proptest::prelude::*;

    /// Values a tenant might write: regex syntax, commas, durations, junk, long runs.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.*+?(){}|,\\[\\] ^$-]{0,80}",
            "[0-9]{1,30}(ns|us|ms|s|m|h)",
            proptest::collection::vec("[a-z.*()+{}0-9]{1,12}", 0..300).prop_map(|v| v.join(",")),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_annotation_values_are_allowed_with_a_patch_that_applies(
            keys in proptest::collection::vec(0usize..8, 1..6),
            values in proptest::collection::vec(value(), 6),
            update in any::<bool>(),
        ) {
            let names = [
                "reloader.stakater.com/auto",
                "reloader.stakater.com/search",
                "configmap.reloader.stakater.com/reload",
                "secret.reloader.stakater.com/reload",
                "configmaps.exclude.reloader.stakater.com/reload",
                "deployment.reloader.stakater.com/pause-period",
                "hashroll.dev/sources",
                "configmap.reloader.stakater.com/auto",
            ];
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let s = state();
            put_cm(&s, "cfg", "1");
            let mut d = deployment();
            for (k, v) in keys.iter().zip(&values) {
                d["metadata"]["annotations"][names[*k]] = json!(v);
            }
            let old = update.then(deployment);
            let (resp, _) = rt
                .block_on(handle(&s, &review(if update { "UPDATE" } else { "CREATE" }, &d, old.as_ref())))
                .expect("a valid review");
            prop_assert!(resp.response.allowed);
            if resp.response.patch.is_some() {
                let patch = decoded_patch(&resp.response).expect("a base64 JSON patch");
                let mut out = d.clone();
                json_patch::patch(&mut out, &patch).expect("the patch applies");
                let record = stamp_of(&out).0.unwrap_or_default();
                prop_assert!(record.len() <= 16 * 1024, "record of {} bytes", record.len());
            }
        }
    }
}
