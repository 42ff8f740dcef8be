//! Fuzzes the admission handler with any bytes, and with AdmissionReviews built around the
//! input (every opt-in annotation set from it), and the annotation parsers on their own.
//! Asserts: no panic, never a denial, a patch that applies to the object and keeps the
//! record under 16 KiB, and a compiled-regex memo within its bound.
#![no_main]

use std::sync::{Arc, OnceLock};

use hashroll::cache::SourceCache;
use hashroll::core::digest::{DigestKey, KeyRing};
use hashroll::core::names::AnnotationNames;
use hashroll::core::policy::{PolicyConfig, tracking};
use hashroll::core::record::parse_record;
use hashroll::core::refs::SourceRef;
use hashroll::core::selector::LabelSelector;
use hashroll::core::syntax::parse_go_duration;
use hashroll::cache::filter::NamespaceFilter;
use hashroll::services::state::State;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const KEYS: [&str; 9] = [
    "reloader.stakater.com/auto",
    "reloader.stakater.com/search",
    "configmap.reloader.stakater.com/reload",
    "secret.reloader.stakater.com/reload",
    "configmaps.exclude.reloader.stakater.com/reload",
    "deployment.reloader.stakater.com/pause-period",
    "hashroll.dev/sources",
    "configmap.reloader.stakater.com/auto",
    "secret.reloader.stakater.com/auto",
];

/// Two keys, so records made with the previous one are carried over too.
fn keys() -> KeyRing {
    KeyRing {
        current: DigestKey::new(b"fuzz-key-0123456789abcdef".to_vec()).unwrap(),
        previous: DigestKey::new(b"fuzz-previous-key-0123456789".to_vec()),
    }
}

/// The state reviews are admitted on, a runtime, and the state's cache.
fn state() -> &'static (State, tokio::runtime::Runtime, Arc<SourceCache>) {
    static S: OnceLock<(State, tokio::runtime::Runtime, Arc<SourceCache>)> = OnceLock::new();
    S.get_or_init(|| {
        let cache = Arc::new(SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        ));
        for name in ["cfg", "a", "b-1", "secret-x"] {
            let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "ns"}, "data": {"k": name}}),
            )
            .unwrap();
            let e = cache.configmap_entry(&cm);
            cache.upsert("ns", &SourceRef::configmap(name), e);
        }
        let state = hashroll::testing::offline_state(keys(), cache.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (state, rt, cache)
    })
}

/// The kinds a review is made for: (group, version, kind, plural, pod template path).
const KINDS: [(&str, &str, &str, &str, &[&str]); 4] = [
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["spec", "template"],
    ),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        &["spec", "jobTemplate", "spec", "template"],
    ),
    ("batch", "v1", "Job", "jobs", &["spec", "template"]),
    (
        "argoproj.io",
        "v1alpha1",
        "Rollout",
        "rollouts",
        &["spec", "template"],
    ),
];

fn review(k: usize, op: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
    let (g, v, kind, plural, _) = KINDS[k];
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "kind": {"group": g, "version": v, "kind": kind},
            "resource": {"group": g, "version": v, "resource": plural},
            "name": "web", "namespace": "ns", "operation": op,
            "object": object, "oldObject": old
        }
    }))
    .unwrap()
}

fn check(body: &[u8], object: Option<&Value>) {
    let (state, rt, _) = state();
    let answer = rt.block_on(hashroll::webhook::admit::handle(state, body));
    // the compiled-regex memo stays within its bound, whatever the lists held
    let memo = hashroll::core::lists::regex_memo_bytes();
    assert!(
        memo <= hashroll::core::limits::REGEX_MEMO_BYTES,
        "regex memo at {memo} bytes"
    );
    let Ok((out, _)) = answer else {
        return; // a 400: fine
    };
    let resp = serde_json::to_value(&out).unwrap();
    assert_eq!(resp["response"]["allowed"], json!(true), "never a denial");
    if let (Some(p), Some(obj)) = (resp["response"]["patch"].as_str(), object) {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        let mut o = obj.clone();
        json_patch::patch(&mut o, &patch).expect("the patch applies");
        let record = o["metadata"]["annotations"]["hashroll.dev/sources"]
            .as_str()
            .unwrap_or("");
        assert!(
            record.len() <= 16 * 1024,
            "record of {} bytes",
            record.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. the bytes as a body
    check(data, None);
    // 2. the bytes as annotation values and pod-spec names of a well-formed review
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.split('\u{1}').collect();
    let mut ann = serde_json::Map::new();
    for (i, v) in parts.iter().enumerate().take(KEYS.len()) {
        let key = KEYS[(i + v.len()) % KEYS.len()];
        ann.insert(key.to_string(), json!(v));
    }
    let name = parts.last().copied().unwrap_or("cfg");
    // a record made with the current key, the previous one, or a key not held (rotation)
    if let Some(b) = data.get(2).filter(|b| *b & 3 != 0) {
        let keys = keys();
        let id = match b & 3 {
            1 => keys.current.id(),
            2 => keys.previous.as_ref().map_or("", |k| k.id()),
            _ => "0badc0de",
        };
        let record = json!({"@key": id, format!("configmap/{name}"): "0123456789abcdef",
            "secret/cfg": "absent"});
        ann.insert("hashroll.dev/sources".into(), json!(record.to_string()));
    }
    let template = json!({"metadata": {"annotations": {"x": name}},
        "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": name}}],
            "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": name, "key": name}}}]}],
            "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": name, "items": [{"key": name, "path": "p"}]}}]}}]}});
    let k = data.get(1).map_or(0, |b| *b as usize % KINDS.len());
    let path = KINDS[k].4;
    // the template at the kind's path, the rest of the object around it
    let mut obj = json!({"metadata": {"name": "web", "namespace": "ns", "annotations": ann}});
    {
        let mut at = &mut obj;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = template;
    }
    let op = if data.first().is_some_and(|b| b & 1 == 1) {
        "UPDATE"
    } else {
        "CREATE"
    };
    let old = (op == "UPDATE").then(|| {
        let mut o = obj.clone();
        let mut at = &mut o;
        for p in path {
            at = &mut at[*p];
        }
        at["metadata"]["annotations"]["x"] = json!("old");
        o
    });
    check(&review(k, op, &obj, old.as_ref()), Some(&obj));
    // 3. the parsers alone
    let _ = parse_go_duration(&text);
    let _ = parse_record(&text);
    let meta: std::collections::BTreeMap<String, String> = ann
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let (_, _, cache) = state();
    let _ = tracking(
        &PolicyConfig::default(),
        &meta,
        &meta,
        &[],
        &cache.view("ns"),
    );
});
