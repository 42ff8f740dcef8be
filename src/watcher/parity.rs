//! The project's first rule, as a property: the webhook and the watcher stamp a workload
//! alike. For any workload object, the webhook's path (the object's JSON text read by
//! `Workload::from_json`, its record parsed off the map) and the watcher's (the same object
//! as a watch event, kept as a [`WorkloadEntry`] with only the annotations
//! `core::names::reads` accepts) give the same [`Stamp`] in every mode. A name the core
//! starts reading without `reads` knowing, or a change to either path alone, fails here.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::workloads::WorkloadEntry;
use crate::core::digest::{DigestKey, KeyRing};
use crate::core::kind::WorkloadKind;
use crate::core::names::{
    self, AnnotationNames, Annotations, GATE_KEYS, LAST_ROLL, MIN_ROLL_INTERVAL, PAUSED_AT,
    RecordNames, reads,
};
use crate::core::policy::PolicyConfig;
use crate::core::record::Stored;
use crate::core::record::{Mode, RollOptions};
use crate::core::refs::SourceRef;
use crate::core::source::SourceInfo;
use crate::core::stamp::{StampInput, stamp, stamp_refs};
use crate::core::workload::Workload;
use crate::testing::FakeSources;

const NS: &str = "team-a";

/// Every name hashroll acts on, and some it does not.
fn annotation_names() -> Vec<String> {
    let (n, r) = (AnnotationNames::default(), RecordNames::default());
    let mut v: Vec<String> = [
        &n.auto,
        &n.configmap_auto,
        &n.secret_auto,
        &n.search,
        &n.search_match,
        &n.configmap_reload,
        &n.secret_reload,
        &n.configmap_exclude,
        &n.secret_exclude,
        &n.ignore,
        &n.pause_period,
        &n.secretproviderclass_auto,
        &n.secretproviderclass_reload,
        &n.secretproviderclass_exclude,
        &r.record,
        &r.token,
    ]
    .into_iter()
    .cloned()
    .collect();
    v.extend(
        GATE_KEYS
            .into_iter()
            .chain([PAUSED_AT, MIN_ROLL_INTERVAL, LAST_ROLL, names::RELEASE])
            .map(String::from),
    );
    v.extend(["app", "example.com/auto", "hashroll.dev/other"].map(String::from));
    v
}

const VALUES: &[&str] = &[
    "true",
    "false",
    "True",
    "1",
    "",
    "cm-a",
    "cm-a,cm-b",
    "cm-.*",
    "s-a,cm-c",
    "(",
    "5m",
    "1000h",
    "nonsense",
    r#"{"configmap/cm-a":"absent"}"#,
    r#"{"@key":"0123abcd","configmap/cm-a":"absent","secret/s-a":"absent"}"#,
    "t1",
];

fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    let names = annotation_names();
    prop::collection::btree_map(
        prop::sample::select(names),
        prop::sample::select(VALUES).prop_map(String::from),
        0..6,
    )
}

/// A container's or the pod's use of a source, as JSON.
fn uses() -> impl Strategy<Value = Vec<(u8, &'static str, bool)>> {
    prop::collection::vec(
        (
            0u8..6,
            prop::sample::select(&["cm-a", "cm-b", "cm-c", "s-a", "s-b"][..]),
            any::<bool>(),
        ),
        0..5,
    )
}

fn pod_spec(uses: &[(u8, &str, bool)]) -> Value {
    let (mut env, mut env_from, mut volumes) = (vec![], vec![], vec![]);
    for (i, (how, name, optional)) in uses.iter().enumerate() {
        match how {
            0 => env.push(json!({"name": format!("E{i}"),
                "valueFrom": {"configMapKeyRef": {"name": name, "key": "k1", "optional": optional}}})),
            1 => env.push(json!({"name": format!("E{i}"),
                "valueFrom": {"secretKeyRef": {"name": name, "key": "k2"}}})),
            2 => env_from.push(json!({"configMapRef": {"name": name, "optional": optional}})),
            3 => env_from.push(json!({"secretRef": {"name": name}})),
            4 => volumes.push(json!({"name": format!("v{i}"), "configMap": {"name": name}})),
            _ => volumes.push(json!({"name": format!("v{i}"), "secret": {"secretName": name}})),
        }
    }
    json!({"containers": [{"name": "c", "image": "x", "env": env, "envFrom": env_from}],
        "volumes": volumes})
}

/// Every kind row: the built-in ones, Argo Rollouts and DeploymentConfig included, and any
/// custom kind registered in this process.
fn kinds() -> Vec<WorkloadKind> {
    crate::core::kind::register_test_kinds();
    WorkloadKind::all().collect()
}

/// The whole object as the apiserver holds it.
fn object(
    kind: WorkloadKind,
    meta: &BTreeMap<String, String>,
    template: &BTreeMap<String, String>,
    spec: Value,
    controlled: bool,
) -> Value {
    let row = kind.row();
    let mut template = json!({"metadata": {"annotations": template}, "spec": spec});
    for seg in row.template.iter().rev() {
        template = json!({ *seg: template });
    }
    let mut obj = template;
    obj["apiVersion"] = json!(if row.group.is_empty() {
        row.version.to_string()
    } else {
        format!("{}/{}", row.group, row.version)
    });
    obj["kind"] = json!(row.name);
    obj["metadata"] = json!({"name": "w", "namespace": NS, "uid": "u-1",
        "resourceVersion": "7", "annotations": meta});
    if controlled {
        obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1",
            "kind": "CronJob", "name": "cron", "uid": "u-0", "controller": true}]);
    }
    obj
}

fn sources() -> FakeSources {
    let info = |matched| SourceInfo {
        matched,
        selected: true,
        ..Default::default()
    };
    FakeSources(
        [
            (SourceRef::configmap("cm-a"), info(true)),
            (SourceRef::configmap("cm-b"), info(false)),
            (SourceRef::secret("s-a"), info(true)),
        ]
        .into(),
    )
}

fn keys() -> KeyRing {
    KeyRing::single(DigestKey::new(b"0123456789abcdef-parity-key".to_vec()).expect("a key"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn webhook_and_watcher_stamp_alike(
        kind in prop::sample::select(kinds()),
        meta in annotations(),
        template in annotations(),
        uses in uses(),
        controlled in any::<bool>(),
        flags in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let cfg = PolicyConfig {
            auto_reload_all: flags.0,
            ignore_configmaps: flags.1,
            csi_integration: flags.2,
            auto_all_skips: PolicyConfig::auto_all_skips_with("hashroll"),
            ..Default::default()
        };
        let record = RecordNames::default();
        let obj = object(kind, &meta, &template, pod_spec(&uses), controlled);
        let (keys, view) = (keys(), sources());

        // the webhook: the object's text, as a review carries it
        let text = serde_json::to_string(&obj).expect("json");
        let w = Workload::from_json(kind, NS, &text).expect("a workload");
        // the watcher: the object as a watch event brings it, kept compact
        let dynamic: kube::api::DynamicObject = serde_json::from_value(obj).expect("an object");
        let entry = WorkloadEntry::from_object(kind, &dynamic, &cfg.names, &record)
            .expect("an entry");
        prop_assert_eq!(entry.controlled, w.controlled);

        for mode in [Mode::Fresh, Mode::Keep, Mode::Reconcile] {
            let webhook = stamp(
                &cfg, &keys, &w, &view, &Stored::of(&w, &record), mode,
                RollOptions::default(),
            );
            let watcher = stamp_refs(
                &cfg, &keys, &entry.input(), &view, &entry.stored(&record), mode,
                RollOptions::default(),
            );
            prop_assert_eq!(&webhook, &watcher, "{:?}", mode);
        }
        // what the watcher decides without the core: pause-period, the gate's settings
        prop_assert_eq!(
            crate::core::policy::pause_period(&cfg, &w.annotations),
            crate::core::policy::pause_period(&cfg, &entry.annotations)
        );
        let from_map = crate::core::gate::settings(|k| {
            w.annotations.value(k).or_else(|| w.template_annotations.value(k))
        });
        let from_entry = crate::core::gate::settings(|k| {
            entry.annotations.get(k).or_else(|| entry.template_annotations.get(k))
        });
        prop_assert_eq!(format!("{from_map:?}"), format!("{from_entry:?}"));
    }
}

/// Annotations that remember every name asked for.
struct Spy<'a> {
    inner: &'a BTreeMap<String, String>,
    asked: RefCell<Vec<String>>,
}

impl Annotations for Spy<'_> {
    fn value(&self, name: &str) -> Option<&str> {
        self.asked.borrow_mut().push(name.to_string());
        self.inner.value(name)
    }
}

/// The structural half: every name the core asks a workload for is one the watcher keeps
/// (were one missing, the watcher would decide without it and the two paths part).
#[test]
fn every_name_the_core_asks_for_is_kept() {
    let (record, view, keys) = (RecordNames::default(), sources(), keys());
    let empty = BTreeMap::new();
    let spec = pod_spec(&[(0, "cm-a", false), (3, "s-a", true), (4, "cm-c", false)]);
    for names in [AnnotationNames::default(), renamed()] {
        let cfg = PolicyConfig {
            names: names.clone(),
            csi_integration: true,
            ..Default::default()
        };
        for kind in kinds() {
            let (meta, template) = (
                Spy {
                    inner: &empty,
                    asked: RefCell::default(),
                },
                Spy {
                    inner: &empty,
                    asked: RefCell::default(),
                },
            );
            let refs = crate::core::refs::references(
                &Workload::from_value(kind, NS, &object(kind, &empty, &empty, spec.clone(), false))
                    .expect("a workload")
                    .pod,
            );
            let input = StampInput {
                kind,
                controlled: false,
                namespace: NS,
                annotations: &meta,
                template_annotations: &template,
                refs: &refs,
            };
            let s = stamp_refs(
                &cfg,
                &keys,
                &input,
                &view,
                &Default::default(),
                Mode::Reconcile,
                RollOptions::default(),
            );
            assert!(s.tracked.is_empty());
            let _ = crate::core::policy::pause_period(&cfg, &meta);
            let _ = crate::core::gate::settings(|k| meta.value(k).or_else(|| template.value(k)));
            let asked: Vec<String> = meta
                .asked
                .into_inner()
                .into_iter()
                .chain(template.asked.into_inner())
                .collect();
            assert!(
                asked.len() >= 10,
                "the spy sees the core's reads: {asked:?}"
            );
            for name in asked {
                assert!(
                    reads(&names, &record, &name),
                    "{kind}: the core reads {name:?} but the watcher does not keep it"
                );
            }
        }
    }
}

fn renamed() -> AnnotationNames {
    AnnotationNames {
        auto: "example.com/auto".into(),
        search: "example.com/search".into(),
        configmap_reload: "example.com/cm-reload".into(),
        pause_period: "example.com/pause".into(),
        ..AnnotationNames::default()
    }
}

#[test]
fn the_parity_property_covers_every_built_in_kind_row() {
    let k = kinds();
    for want in [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
        WorkloadKind::ArgoRollout,
    ] {
        assert!(k.contains(&want), "{want:?} left out");
    }
    assert!(k.iter().any(|w| w.as_str() == "DeploymentConfig"), "{k:?}");
}
