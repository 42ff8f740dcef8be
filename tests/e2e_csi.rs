//! SecretProviderClasses of the Secrets Store CSI Driver as sources, on the real plane with
//! the driver's CRDs from its Go module and its status objects written as it writes them
//! (`support::csi`): Reloader's annotations by their names, one roll per rotation however
//! it reaches the pods, none for new pods, polls or restarts.

mod support;

use support::csi::*;
use support::*;

const CSI: &str = "--enable-csi-integration";

/// Pods of `app` mount `class` at `v` (one status each).
fn mount_all(ns: &str, pods: &[PodOf], class: &str, v: &str) {
    for p in pods {
        status(ns, p, class, &[("db-password", v), ("db-user", "1")]);
    }
}

#[tokio::test]
async fn a_named_class_rolls_once_per_rotation_and_never_for_new_pods_or_polls() {
    install_crds();
    let client = client().await;
    let ns = namespace("csi-named");
    let mut h = Hashroll::for_namespace(&ns, &[CSI]).await;
    class(&ns, "vault-db", "{}");
    app(
        &ns,
        "web",
        r#"{secretproviderclass.reloader.stakater.com/reload: vault-db}"#,
        &["vault-db"],
        2,
    );
    // stamped at admission: tracked, not mounted yet
    // `unseen` at admission, then `absent` from the watcher (no pod mounted it yet)
    wait_for(
        "web's record to name the class absent",
        DEADLINE,
        || async { recorded(&ns, "web", "vault-db").filter(|v| v == "absent") },
    )
    .await;
    // the pods mount it one by one: recorded, no roll
    let pods = wait_pods(&ns, "web", 2, None).await;
    mount_all(&ns, &pods, "vault-db", "1");
    let first = wait_recorded(&ns, "web", "vault-db").await;
    assert_rs_count_stays(&client, &ns, "app=web", 1, SETTLE).await;
    // the driver's poll: written again, no version changed
    let t = std::time::SystemTime::now();
    next_second(t).await;
    status_with(
        &ns,
        &pods[0],
        "vault-db",
        &[("db-password", "1"), ("db-user", "1")],
        "polled",
    );
    assert_rs_count_stays(&client, &ns, "app=web", 1, SETTLE).await;
    assert_eq!(recorded(&ns, "web", "vault-db"), Some(first.clone()));
    // a rotation reaches the first pod: one roll
    status(
        &ns,
        &pods[0],
        "vault-db",
        &[("db-password", "2"), ("db-user", "1")],
    );
    wait_rs(&client, &ns, "app=web", 2).await;
    let rotated = wait_recorded(&ns, "web", "vault-db").await;
    assert_ne!(rotated, first);
    // ... then the second: nothing more
    status(
        &ns,
        &pods[1],
        "vault-db",
        &[("db-password", "2"), ("db-user", "1")],
    );
    // the new pods mount the new version: nothing more
    let new_rs = replicasets(&client, &ns, "app=web")
        .await
        .into_iter()
        .filter_map(|rs| rs.metadata.labels?.get("pod-template-hash").cloned())
        .collect::<Vec<_>>();
    let fresh = wait_for("the new ReplicaSet's pods", DEADLINE, || async {
        let p: Vec<PodOf> = support::csi::pods(&ns, "web")
            .into_iter()
            .filter(|p| !pods.iter().any(|old| old.name == p.name))
            .filter(|p| new_rs.contains(&p.hash))
            .collect();
        (!p.is_empty()).then_some(p)
    })
    .await;
    mount_all(&ns, &fresh, "vault-db", "2");
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    assert_eq!(recorded(&ns, "web", "vault-db"), Some(rotated.clone()));
    // a restart of hashroll rolls nothing
    h.restart().await;
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    assert_eq!(recorded(&ns, "web", "vault-db"), Some(rotated));
}

#[tokio::test]
async fn auto_search_exclude_and_ignore_pick_the_classes_reloader_would() {
    install_crds();
    let client = client().await;
    let ns = namespace("csi-rules");
    let h = Hashroll::for_namespace(&ns, &[CSI]).await;
    class(&ns, "cls-a", "{}");
    class(&ns, "cls-m", r#"{reloader.stakater.com/match: "true"}"#);
    class(&ns, "cls-n", "{}");
    class(&ns, "cls-i", r#"{reloader.stakater.com/ignore: "true"}"#);
    let apps: [(&str, &str, &[&str]); 5] = [
        (
            "auto",
            r#"{reloader.stakater.com/auto: "true"}"#,
            &["cls-a"],
        ),
        (
            "spc-auto",
            r#"{secretproviderclass.reloader.stakater.com/auto: "true"}"#,
            &["cls-a"],
        ),
        (
            "excluded",
            r#"{reloader.stakater.com/auto: "true", secretproviderclasses.exclude.reloader.stakater.com/reload: cls-a}"#,
            &["cls-a"],
        ),
        (
            "search",
            r#"{reloader.stakater.com/search: "true"}"#,
            &["cls-m", "cls-n"],
        ),
        (
            "ignored",
            r#"{reloader.stakater.com/auto: "true"}"#,
            &["cls-i"],
        ),
    ];
    for (name, annotations, classes) in &apps {
        app(&ns, name, annotations, classes, 1);
    }
    // every pod mounts its classes at version 1
    let mut mounted = Vec::new();
    for (name, _, classes) in &apps {
        let pods = wait_pods(&ns, name, 1, None).await;
        for c in *classes {
            mount_all(&ns, &pods, c, "1");
            mounted.push((name.to_string(), c.to_string(), pods.clone()));
        }
    }
    // what is tracked is recorded (without a roll); what is not, not
    wait_recorded(&ns, "auto", "cls-a").await;
    wait_recorded(&ns, "spc-auto", "cls-a").await;
    wait_recorded(&ns, "search", "cls-m").await;
    wait_unrecorded(&ns, "excluded", "cls-a").await;
    wait_unrecorded(&ns, "search", "cls-n").await;
    wait_unrecorded(&ns, "ignored", "cls-i").await;
    let rotate = |which: &[&str]| {
        for (_, c, pods) in &mounted {
            if which.contains(&c.as_str()) {
                mount_all(&ns, pods, c, "2");
            }
        }
    };
    // the untracked classes rotate: nothing rolls
    rotate(&["cls-n", "cls-i"]);
    for (name, _, _) in &apps {
        assert_rs_count_stays(&client, &ns, &format!("app={name}"), 1, SETTLE / 2).await;
    }
    // the tracked ones: each workload that tracks them rolls once, the others not
    rotate(&["cls-a", "cls-m"]);
    for name in ["auto", "spc-auto", "search"] {
        wait_rs(&client, &ns, &format!("app={name}"), 2).await;
    }
    for (name, want) in [
        ("auto", 2),
        ("spc-auto", 2),
        ("search", 2),
        ("excluded", 1),
        ("ignored", 1),
    ] {
        assert_rs_count_stays(&client, &ns, &format!("app={name}"), want, SETTLE / 2).await;
    }
    // explain shows the class like any source
    let out = h.explain(&["secretproviderclass/cls-a", "-n", &ns, CSI]);
    assert!(out.contains("deployment/auto"), "{out}");
    assert!(out.contains("deployment/spc-auto"), "{out}");
    assert!(!out.contains("deployment/excluded"), "{out}");
}

#[tokio::test]
async fn a_rotation_while_hashroll_was_down_rolls_once_after_it_starts() {
    install_crds();
    let client = client().await;
    let ns = namespace("csi-down");
    let mut h = Hashroll::for_namespace(&ns, &[CSI]).await;
    class(&ns, "kv", "{}");
    app(
        &ns,
        "api",
        r#"{secretproviderclass.reloader.stakater.com/auto: "true"}"#,
        &["kv"],
        2,
    );
    let pods = wait_pods(&ns, "api", 2, None).await;
    mount_all(&ns, &pods, "kv", "1");
    let digest = wait_recorded(&ns, "api", "kv").await;
    // a workload created now is stamped with the class's digest at admission
    app(
        &ns,
        "late",
        r#"{secretproviderclass.reloader.stakater.com/auto: "true"}"#,
        &["kv"],
        1,
    );
    assert_eq!(recorded(&ns, "late", "kv"), Some(digest));
    let late = wait_pods(&ns, "late", 1, None).await;
    mount_all(&ns, &late, "kv", "1");
    assert_rs_count_stays(&client, &ns, "app=late", 1, SETTLE).await;
    h.kill();
    // while it is down the rotation reaches one pod (a later second than the mounts)
    next_second(std::time::SystemTime::now()).await;
    status(
        &ns,
        &pods[1],
        "kv",
        &[("db-password", "2"), ("db-user", "1")],
    );
    h.restart().await;
    wait_rs(&client, &ns, "app=api", 2).await;
    // and the other pod's rotation, after the start, rolls nothing more
    status(
        &ns,
        &pods[0],
        "kv",
        &[("db-password", "2"), ("db-user", "1")],
    );
    assert_rs_count_stays(&client, &ns, "app=api", 2, SETTLE).await;
}

#[tokio::test]
async fn without_the_flag_classes_are_not_sources() {
    install_crds();
    let client = client().await;
    let ns = namespace("csi-off");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    class(&ns, "kv", "{}");
    app(
        &ns,
        "api",
        r#"{reloader.stakater.com/auto: "true"}"#,
        &["kv"],
        1,
    );
    let pods = wait_pods(&ns, "api", 1, None).await;
    mount_all(&ns, &pods, "kv", "1");
    assert_rs_count_stays(&client, &ns, "app=api", 1, SETTLE).await;
    mount_all(&ns, &pods, "kv", "2");
    assert_rs_count_stays(&client, &ns, "app=api", 1, SETTLE).await;
    assert_eq!(recorded(&ns, "api", "kv"), None);
}
