//! The watcher on the real plane: data changes of tracked sources roll the workloads that
//! track them, once; nothing else rolls. Each test runs its own hashroll, scoped to its
//! namespace and registered as that namespace's webhook, as in production.

mod support;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use support::*;
fn deployment(name: &str, annotations: &str, containers_extra: &str, volumes: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: nginx
{containers_extra}
      volumes: {volumes}
"#
    )
}

#[tokio::test]
async fn seed_walkthrough_rolls_once_per_edit() {
    let client = client().await;
    kubectl(&["create", "namespace", "ns1"]);
    let h = Hashroll::for_namespace("ns1", &[]).await;
    let root = env!("CARGO_MANIFEST_DIR");
    kubectl(&[
        "apply",
        "-f",
        &format!("{root}/examples/cm.yaml"),
        "-f",
        &format!("{root}/examples/nginx-deploy.yaml"),
    ]);
    wait_rs(&client, "ns1", "app=nginx", 1).await;
    assert_rs_count_stays(&client, "ns1", "app=nginx", 1, SETTLE).await;

    // kubectl edit cm test-config-file: user=ted
    patch_cm(
        "ns1",
        "test-config-file",
        r#"{"info.yaml":"user=ted\nage=22\n"}"#,
    );
    wait_rs(&client, "ns1", "app=nginx", 2).await;
    assert_rs_count_stays(&client, "ns1", "app=nginx", 2, SETTLE).await;

    // kubectl edit cm test-config-env: CITY=shenzhen
    patch_cm("ns1", "test-config-env", r#"{"CITY":"shenzhen"}"#);
    wait_rs(&client, "ns1", "app=nginx", 3).await;
    assert_rs_count_stays(&client, "ns1", "app=nginx", 3, SETTLE).await;

    // the Reloaded events name the sources; the counter Reloader users scrape counts both
    let events = Api::<Event>::namespaced(client.clone(), "ns1");
    let notes = wait_for("two Reloaded events", DEADLINE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Reloaded"))
            .filter_map(|e| e.note.clone())
            .collect();
        (notes.len() >= 2).then_some(notes)
    })
    .await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("configmap/test-config-file")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("configmap/test-config-env")),
        "{notes:?}"
    );
    let m = h.metrics().await;
    assert!(
        m.contains("reloader_reload_executed_total{success=\"true\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn metadata_edits_and_unused_keys_roll_nothing() {
    let client = client().await;
    let ns = namespace("quiet");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{used: a, unused: b, file: c, other: d}}\n---\n{}",
            deployment(
                "app",
                "reloader.stakater.com/auto: \"true\"",
                "        env: [{name: U, valueFrom: {configMapKeyRef: {name: cfg, key: used}}}]\n        volumeMounts: [{name: v, mountPath: /etc/v}]",
                "[{name: v, configMap: {name: cfg, items: [{key: file, path: f}]}}]"
            )
        ),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    kubectl(&["label", "configmap", "cfg", "-n", &ns, "team=x"]);
    kubectl(&["annotate", "configmap", "cfg", "-n", &ns, "note=hello"]);
    patch_cm(&ns, "cfg", r#"{"unused":"changed"}"#);
    patch_cm(&ns, "cfg", r#"{"other":"changed too"}"#);
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    // a used key (through items) does roll
    patch_cm(&ns, "cfg", r#"{"file":"new"}"#);
    wait_rs(&client, &ns, "app=app", 2).await;
    // and the keyRef's key
    patch_cm(&ns, "cfg", r#"{"used":"new"}"#);
    wait_rs(&client, &ns, "app=app", 3).await;
    assert_rs_count_stays(&client, &ns, "app=app", 3, SETTLE).await;
}

#[tokio::test]
async fn only_the_tracking_workload_rolls() {
    let client = client().await;
    let ns = namespace("two");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    let env_from = |cm: &str| format!("        envFrom: [{{configMapRef: {{name: {cm}}}}}]");
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{k: '1'}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b}}\ndata: {{k: '1'}}\n---\n{}\n---\n{}",
            deployment(
                "one",
                "reloader.stakater.com/auto: \"true\"",
                &env_from("a"),
                "[]"
            ),
            deployment(
                "two",
                "reloader.stakater.com/auto: \"true\"",
                &env_from("b"),
                "[]"
            ),
        ),
    );
    wait_rs(&client, &ns, "app=one", 1).await;
    wait_rs(&client, &ns, "app=two", 1).await;
    patch_cm(&ns, "a", r#"{"k":"2"}"#);
    wait_rs(&client, &ns, "app=one", 2).await;
    assert_rs_count_stays(&client, &ns, "app=two", 1, SETTLE).await;
    assert_rs_count_stays(
        &client,
        &ns,
        "app=one",
        2,
        std::time::Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn three_sources_changed_within_the_window_make_one_rollout() {
    let client = client().await;
    let ns = namespace("window");
    let _h = Hashroll::for_namespace(&ns, &["--coalesce-window=3s"]).await;
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-x}}\ndata: {{k: '1'}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-y}}\ndata: {{k: '1'}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: sec-z}}\nstringData: {{k: '1'}}\n---\n{}",
            deployment(
                "app",
                "reloader.stakater.com/auto: \"true\"",
                "        envFrom: [{configMapRef: {name: cm-x}}, {configMapRef: {name: cm-y}}, {secretRef: {name: sec-z}}]",
                "[]"
            ),
        ),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    // all three in one go
    apply(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-x}\ndata: {k: '2'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-y}\ndata: {k: '2'}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: sec-z}\nstringData: {k: '2'}\n",
    );
    wait_rs(&client, &ns, "app=app", 2).await;
    assert_rs_count_stays(&client, &ns, "app=app", 2, SETTLE).await;
}

const OPTIONAL_REF: &str = "        envFrom: [{configMapRef: {name: later, optional: true}}]";

async fn create_then_delete(
    ns: &str,
    flags: &[&str],
    rolls_on_create: bool,
    rolls_on_delete: bool,
) {
    let client = client().await;
    let _h = Hashroll::for_namespace(ns, flags).await;
    apply(
        ns,
        &deployment(
            "app",
            "reloader.stakater.com/auto: \"true\"",
            OPTIONAL_REF,
            "[]",
        ),
    );
    wait_rs(&client, ns, "app=app", 1).await;
    apply(
        ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {k: v}\n",
    );
    let mut n = 1;
    if rolls_on_create {
        n += 1;
        wait_rs(&client, ns, "app=app", n).await;
    }
    assert_rs_count_stays(&client, ns, "app=app", n, SETTLE).await;
    kubectl(&["delete", "configmap", "later", "-n", ns]);
    if rolls_on_delete {
        n += 1;
        wait_rs(&client, ns, "app=app", n).await;
    }
    assert_rs_count_stays(&client, ns, "app=app", n, SETTLE).await;
}

#[tokio::test]
async fn creating_and_deleting_a_missing_source_rolls() {
    create_then_delete(&namespace("create"), &[], true, true).await;
}

#[tokio::test]
async fn reload_on_create_and_delete_false_roll_nothing() {
    create_then_delete(
        &namespace("nocreate"),
        &["--reload-on-create=false", "--reload-on-delete=false"],
        false,
        false,
    )
    .await;
}

/// What the two edits of a flag case roll.
#[derive(Debug, Clone, Copy)]
enum Rolls {
    /// this many rollouts, and no more over a settle period
    Exactly(usize),
    /// at least this many (two edits a moment apart may end in one rollout or two)
    AtLeast(usize),
}

/// A flag case: hashroll's flags (`{ns}` stands for the case's namespace), the
/// Deployment's annotations and the ConfigMap's labels; both sources are edited once.
struct FlagCase {
    name: &'static str,
    flags: &'static [&'static str],
    annotations: &'static str,
    cm_labels: &'static str,
    rolls: Rolls,
    why: &'static str,
}

const AUTO: &str = "reloader.stakater.com/auto: \"true\"";

/// With coalescing off, each tracked edit is a rollout of its own.
const FLAG_CASES: &[FlagCase] = &[
    FlagCase {
        name: "ign-secrets",
        flags: &["--coalesce-window=0", "--resources-to-ignore=secrets"],
        annotations: AUTO,
        cm_labels: "",
        rolls: Rolls::Exactly(1),
        why: "only the ConfigMap edit rolls",
    },
    FlagCase {
        name: "auto-all",
        flags: &["--coalesce-window=0", "--auto-reload-all"],
        annotations: "",
        cm_labels: "",
        rolls: Rolls::AtLeast(1),
        why: "an unannotated workload rolls under --auto-reload-all",
    },
    FlagCase {
        name: "auto-all-off",
        flags: &["--auto-reload-all"],
        annotations: "reloader.stakater.com/auto: \"false\"",
        cm_labels: "",
        rolls: Rolls::Exactly(0),
        why: "auto: false opts out even under --auto-reload-all",
    },
    FlagCase {
        name: "label-sel",
        flags: &[
            "--coalesce-window=0",
            "--resource-label-selector=reload:yes",
        ],
        annotations: AUTO,
        cm_labels: "reload: 'yes'",
        rolls: Rolls::Exactly(1),
        why: "only the labelled ConfigMap's edit rolls",
    },
    FlagCase {
        name: "ns-ignored",
        flags: &["--namespaces-to-ignore={ns}"],
        annotations: AUTO,
        cm_labels: "",
        rolls: Rolls::Exactly(0),
        why: "an ignored namespace rolls nothing",
    },
];

/// A ConfigMap and a Secret used by one Deployment under `case`'s flags; both edited; the
/// rollouts checked against the case.
async fn edits_under_flags(case: &FlagCase) {
    let client = client().await;
    let ns = namespace(case.name);
    let flags: Vec<String> = case.flags.iter().map(|f| f.replace("{ns}", &ns)).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ignored = flags
        .iter()
        .any(|f| f.starts_with("--namespaces-to-ignore"));
    let _h = Hashroll::for_namespace_opts(&ns, &flags, !ignored).await;
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, labels: {{{}}}}}\ndata: {{k: '1'}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{k: '1'}}\n---\n{}",
            case.cm_labels,
            deployment(
                "app",
                case.annotations,
                "        envFrom: [{configMapRef: {name: c}}, {secretRef: {name: s}}]",
                "[]"
            ),
        ),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    patch_cm(&ns, "c", r#"{"k":"2"}"#);
    kubectl(&[
        "patch",
        "secret",
        "s",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"stringData":{"k":"2"}}"#,
    ]);
    let what = format!("{}: {}", case.name, case.why);
    match case.rolls {
        Rolls::Exactly(n) => {
            wait_rs(&client, &ns, "app=app", n + 1).await;
            // an edit that rolls does so within a second or two; 6 s of nothing more
            let settle = SETTLE.max(std::time::Duration::from_secs(6));
            assert_rs_count_stays(&client, &ns, "app=app", n + 1, settle).await;
        }
        Rolls::AtLeast(n) => {
            wait_for(&what, DEADLINE, || async {
                (replicasets(&client, &ns, "app=app").await.len() > n).then_some(())
            })
            .await;
        }
    }
}

/// The flags that change what a source edit rolls, as a table; the cases run side by side,
/// each with its own namespace and hashroll.
#[tokio::test]
async fn flags_decide_what_an_edit_rolls() {
    futures::future::join_all(FLAG_CASES.iter().map(edits_under_flags)).await;
}

#[tokio::test]
async fn flag_namespace_selector() {
    let client = client().await;
    let ns = namespace("ns-sel");
    let _h = Hashroll::for_namespace_opts(
        &ns,
        &[
            "--coalesce-window=0",
            "--namespace-selector=hashroll-e2e:on",
        ],
        false,
    )
    .await;
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: '1'}}\n---\n{}",
            deployment(
                "app",
                "reloader.stakater.com/auto: \"true\"",
                "        envFrom: [{configMapRef: {name: c}}]",
                "[]"
            ),
        ),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    patch_cm(&ns, "c", r#"{"k":"2"}"#);
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    // selected now: recorded (no roll), then the next change rolls
    kubectl(&["label", "namespace", &ns, "hashroll-e2e=on"]);
    let api = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns);
    wait_for(
        "a record once the namespace is selected",
        DEADLINE,
        || async {
            let d = api.get("app").await.ok()?;
            d.metadata.annotations?.get("hashroll.dev/sources").cloned()
        },
    )
    .await;
    assert_rs_count_stays(
        &client,
        &ns,
        "app=app",
        1,
        std::time::Duration::from_secs(2),
    )
    .await;
    patch_cm(&ns, "c", r#"{"k":"3"}"#);
    wait_rs(&client, &ns, "app=app", 2).await;
}

#[tokio::test]
async fn pause_period_batches_changes_into_one_rollout() {
    let client = client().await;
    let ns = namespace("pause");
    let _h = Hashroll::for_namespace(&ns, &["--coalesce-window=0"]).await;
    let yaml = cfg_and_app("1", &["app"]).replace(
        "annotations: {reloader.stakater.com/auto: \"true\"}",
        "annotations: {reloader.stakater.com/auto: \"true\", deployment.reloader.stakater.com/pause-period: 6s}",
    );
    apply(&ns, &yaml);
    wait_rs(&client, &ns, "app=app", 1).await;
    let api = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns);
    set_cfg(&ns, "2");
    wait_for("the Deployment paused by the roll", DEADLINE, || async {
        (api.get("app").await.ok()?.spec.paused == Some(true)).then_some(())
    })
    .await;
    set_cfg(&ns, "3");
    // paused: the template changes, no rollout yet
    assert_rs_count_stays(
        &client,
        &ns,
        "app=app",
        1,
        std::time::Duration::from_secs(2),
    )
    .await;
    wait_for(
        "the Deployment resumed after the period",
        DEADLINE,
        || async { (api.get("app").await.ok()?.spec.paused != Some(true)).then_some(()) },
    )
    .await;
    wait_rs(&client, &ns, "app=app", 2).await;
    assert_rs_count_stays(&client, &ns, "app=app", 2, SETTLE).await;
}

#[tokio::test]
async fn flag_namespaces_limits_where_it_acts() {
    let client = client().await;
    let watched = namespace("ns-only");
    let other = namespace("ns-other");
    // watches `watched` only, but is the webhook of `other` too
    let h = Hashroll::for_namespace(&watched, &["--coalesce-window=0"]).await;
    h.register_webhook_for(&format!("hashroll-{other}"), Some(&other));
    for ns in [&watched, &other] {
        apply(ns, &cfg_and_app("1", &["app"]));
        wait_rs(&client, ns, "app=app", 1).await;
        set_cfg(ns, "2");
    }
    wait_rs(&client, &watched, "app=app", 2).await;
    assert_rs_count_stays(&client, &other, "app=app", 1, SETTLE).await;
}

#[tokio::test]
async fn flag_auto_annotation_override() {
    let client = client().await;
    let ns = namespace("override");
    let _h = Hashroll::for_namespace_opts(
        &ns,
        &["--coalesce-window=0", "--auto-annotation=example.com/roll"],
        false,
    )
    .await;
    let yaml = cfg_and_app("1", &["reloader-name", "own-name"]);
    // the second Deployment uses the overriding name instead of Reloader's
    let (a, b) = yaml.split_at(yaml.find("name: own-name").unwrap());
    let b = b.replacen("reloader.stakater.com/auto", "example.com/roll", 1);
    apply(&ns, &format!("{a}{b}"));
    wait_rs(&client, &ns, "app=own-name", 1).await;
    wait_rs(&client, &ns, "app=reloader-name", 1).await;
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=own-name", 2).await;
    assert_rs_count_stays(&client, &ns, "app=reloader-name", 1, SETTLE).await;
}

#[tokio::test]
async fn flag_max_rollouts_per_second_spaces_the_patches() {
    let client = client().await;
    let ns = namespace("rate");
    let _h = Hashroll::for_namespace(
        &ns,
        &["--coalesce-window=0", "--max-rollouts-per-second=0.5"],
    )
    .await;
    apply(&ns, &cfg_and_app("1", &["a", "b", "c"]));
    for app in ["a", "b", "c"] {
        wait_rs(&client, &ns, &format!("app={app}"), 1).await;
    }
    let t0 = std::time::Instant::now();
    set_cfg(&ns, "2");
    // one patch every 2 s: all three rolled only after about 4 s, each once
    wait_for("all three rolled", DEADLINE, || async {
        let mut n = 0;
        for app in ["a", "b", "c"] {
            if replicasets(&client, &ns, &format!("app={app}")).await.len() == 2 {
                n += 1;
            }
        }
        (n == 3).then_some(())
    })
    .await;
    let all = t0.elapsed();
    assert!(
        all >= std::time::Duration::from_millis(3500),
        "three patches at 0.5/s took only {all:?}"
    );
    for app in ["a", "b", "c"] {
        assert_rs_count_stays(
            &client,
            &ns,
            &format!("app={app}"),
            2,
            std::time::Duration::ZERO,
        )
        .await;
    }
}

/// Only workloads that opt in are kept; one that opts in later by an edit the webhook never
/// saw is recorded by the watcher, and rolls on the next change; one that opts out is left.
#[tokio::test]
async fn a_workload_that_opts_in_later_is_picked_up_without_the_webhook() {
    let client = client().await;
    let ns = namespace("late");
    // no webhook for this namespace: only the watcher sees the edits
    let _h = Hashroll::start(&[&format!("--namespaces={ns}")]).await;
    apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{k: '1'}}\n---\n{}",
            deployment(
                "app",
                "",
                "        envFrom: [{configMapRef: {name: cfg}}]",
                "[]"
            )
        ),
    );
    wait_rs(&client, &ns, "app=app", 1).await;
    set_cfg(&ns, "2");
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    kubectl(&[
        "annotate",
        "deployment",
        "app",
        "-n",
        &ns,
        "reloader.stakater.com/auto=true",
    ]);
    // recorded by the watcher (a record joins without a roll)
    wait_for("the watcher's record", DEADLINE, || async {
        let out = deployment_record(&ns, "app");
        out.contains("configmap/cfg").then_some(())
    })
    .await;
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    set_cfg(&ns, "3");
    wait_rs(&client, &ns, "app=app", 2).await;
    // opted out: its record is taken back, and changes roll nothing
    kubectl(&[
        "annotate",
        "deployment",
        "app",
        "-n",
        &ns,
        "reloader.stakater.com/auto-",
    ]);
    wait_for("the record taken back", DEADLINE, || async {
        let out = deployment_record(&ns, "app");
        out.is_empty().then_some(())
    })
    .await;
    set_cfg(&ns, "4");
    assert_rs_count_stays(&client, &ns, "app=app", 2, SETTLE).await;
}

/// A Deployment `name` using ConfigMap `cfg` (envFrom), with no annotation of its own.
fn plain_app(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg-{name}}}
data: {{k: "1"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cfg-{name}}}}}]}}]
"#
    )
}

#[tokio::test]
async fn auto_reload_all_leaves_kube_system_and_its_own_namespace_alone() {
    let client = client().await;
    let team = namespace("autoall-team");
    let own = namespace("autoall-own");
    // the watcher path (no webhook registered), over a tenant's, kube-system and its own
    let _h = Hashroll::start(&[
        &format!("--namespaces={team},{own},kube-system"),
        &format!("--namespace={own}"),
        "--auto-reload-all",
    ])
    .await;
    let sys = format!("hr-{}", std::process::id() % 100000);
    for ns in [team.as_str(), own.as_str(), "kube-system"] {
        apply(ns, &plain_app(&sys));
    }
    // the tenant's workload is recorded; the others not
    wait_for("the tenant's workload recorded", DEADLINE, || async {
        (!deployment_record(&team, &sys).is_empty()).then_some(())
    })
    .await;
    let sel = format!("app={sys}");
    for ns in [team.as_str(), own.as_str(), "kube-system"] {
        patch_cm(ns, &format!("cfg-{sys}"), r#"{"k":"2"}"#);
    }
    wait_rs(&client, &team, &sel, 2).await;
    for ns in [own.as_str(), "kube-system"] {
        assert_rs_count_stays(&client, ns, &sel, 1, SETTLE).await;
        assert_eq!(deployment_record(ns, &sys), "", "{ns}: recorded");
    }
    for ns in [own.as_str(), "kube-system"] {
        kubectl(&["delete", "deployment", &sys, "-n", ns]);
        kubectl(&["delete", "configmap", &format!("cfg-{sys}"), "-n", ns]);
    }
}

#[tokio::test]
async fn a_roll_names_hashroll_as_the_field_manager() {
    let client = client().await;
    let ns = namespace("manager");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    apply(&ns, &cfg_and_app("1", &["app"]));
    wait_rs(&client, &ns, "app=app", 1).await;
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=app", 2).await;
    // the roll's patch is recorded under hashroll's name, owning the token it wrote into
    // the pod template (and the record); no write of hashroll goes in without a name
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, &ns);
    let d = deployments.get("app").await.unwrap();
    let fields = d.metadata.managed_fields.unwrap_or_default();
    let ours: Vec<_> = fields
        .iter()
        .filter(|f| f.manager.as_deref() == Some("hashroll"))
        .collect();
    let owned = serde_json::to_string(&ours).unwrap();
    assert!(
        owned.contains("f:hashroll.dev/config-hash") && owned.contains("f:hashroll.dev/sources"),
        "no hashroll entry owning the token and the record: {fields:?}"
    );
    assert!(
        fields
            .iter()
            .all(|f| f.manager.as_deref().is_some_and(|m| !m.is_empty())),
        "{fields:?}"
    );
}
