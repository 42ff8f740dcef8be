//! The scenarios the three apps/v1 kinds pass, written once and run for every other kind
//! (CronJob, Job, Argo Rollout with the real Argo controller, and a custom kind named by
//! `--workload-kind`): auto, search/match and a reload list roll on a change; a source
//! marked `ignore` rolls nothing; creating and deleting a missing optional source each roll
//! once; a restart of hashroll rolls nothing. Rolls are counted by what the kind's
//! controller made (Jobs, ReplicaSets) or, with no controller, by the objects and tokens seen.

mod support;

use std::sync::OnceLock;

use hashroll_harness::argo::ArgoRollouts;
use support::kinds::{
    Kind, Versions, WIDGET_FLAG, add_widget_rule, install_widget_crd, wait_widget_rule_active,
};
use support::*;

const AUTO: &str = r#"reloader.stakater.com/auto: "true""#;

/// `(name, annotations, envFrom)` of each workload the scenarios make.
const WORKLOADS: [(&str, &str, &str); 5] = [
    ("auto", AUTO, "[{configMapRef: {name: cfg}}]"),
    (
        "search",
        r#"reloader.stakater.com/search: "true""#,
        "[{configMapRef: {name: cfg}}]",
    ),
    (
        "list",
        r#"configmap.reloader.stakater.com/reload: "cfg""#,
        "[]",
    ),
    ("ign", AUTO, "[{configMapRef: {name: ign}}]"),
    (
        "opt",
        AUTO,
        "[{configMapRef: {name: later, optional: true}}]",
    ),
];

const SOURCES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, annotations: {reloader.stakater.com/match: "true"}}
data: {k: '1'}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ign, annotations: {reloader.stakater.com/ignore: "true"}}
data: {k: '1'}
"#;

static ARGO: OnceLock<ArgoRollouts> = OnceLock::new();

async fn scenarios(kind: Kind) {
    let client = client().await;
    let ns = namespace(&format!("kind-{}", kind.plural()));
    let mut flags = vec![];
    match kind {
        Kind::Rollout => {
            ARGO.get_or_init(|| {
                ArgoRollouts::start(plane())
                    .unwrap_or_else(|e| panic!("cannot start Argo Rollouts: {e}"))
            });
        }
        Kind::Widget => {
            install_widget_crd().await;
            flags.push(WIDGET_FLAG);
        }
        _ => {}
    }
    let mut h = Hashroll::for_namespace(&ns, &flags).await;
    if kind == Kind::Widget {
        add_widget_rule(&ns);
        wait_widget_rule_active(&ns).await;
    }
    let mut yaml = SOURCES.to_string();
    for (name, ann, env) in WORKLOADS {
        yaml.push_str("---\n");
        yaml.push_str(&kind.yaml(name, ann, env));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    // every one stamped at admission (but `ign`: it tracks nothing)
    for (name, _, _) in WORKLOADS.iter().filter(|w| w.0 != "ign") {
        assert!(
            kind.token(&client, &ns, name).await.is_some(),
            "{}/{name}: no token",
            kind.plural()
        );
    }
    let mut v = Versions::new(kind, &client, &ns);
    for (name, _, _) in WORKLOADS {
        v.wait(name, 1).await;
    }
    let all = |auto: usize, opt: usize| {
        [
            ("auto", auto),
            ("search", auto),
            ("list", auto),
            ("ign", 1),
            ("opt", opt),
        ]
    };
    v.stay(&all(1, 1)).await;

    // auto, search/match and the list roll; the ignored source rolls nothing
    set_cfg(&ns, "2");
    patch_cm(&ns, "ign", r#"{"k":"2"}"#);
    for name in ["auto", "search", "list"] {
        v.wait(name, 2).await;
    }
    v.stay(&all(2, 1)).await;

    // a missing optional source: created, then deleted, one roll each
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {k: v}\n",
    );
    v.wait("opt", 2).await;
    v.stay(&all(2, 2)).await;
    kubectl(&["delete", "configmap", "later", "-n", &ns]);
    v.wait("opt", 3).await;
    v.stay(&all(2, 3)).await;

    // a restart rolls nothing
    h.restart().await;
    v.stay(&all(2, 3)).await;
    // explain reads the kind: what it tracks, nothing pending
    let target = format!("{}/auto", kind.word());
    let mut args = vec![target.as_str(), "-n", &ns];
    args.extend(flags.iter().copied());
    let out = h.explain(&args);
    assert!(
        out.contains("configmap/cfg") && out.contains("roll pending: no"),
        "{out}"
    );
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn cronjob_scenarios() {
    scenarios(Kind::CronJob).await;
}

#[tokio::test]
async fn job_scenarios() {
    scenarios(Kind::Job).await;
}

#[tokio::test]
async fn argo_rollout_scenarios() {
    scenarios(Kind::Rollout).await;
}

#[tokio::test]
async fn custom_kind_scenarios() {
    scenarios(Kind::Widget).await;
}
