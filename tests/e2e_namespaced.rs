//! The namespaced install, as a team that is admin of its own two namespaces and nothing
//! more: `helm install --set namespaced=true` with that user's kubeconfig succeeds and makes
//! no cluster-scoped object; hashroll, run on the chart's ServiceAccount, stamps without a
//! webhook (a workload gets its record and no roll), rolls on a change, and leaves a third
//! namespace alone. And `--namespaced` refuses what needs the cluster, naming why.

mod support;

use std::time::Duration;

use support::*;

fn chart() -> String {
    format!("{}/charts/hashroll", root())
}

/// A ServiceAccount `team-a/alice` bound to the built-in `admin` ClusterRole in `team-a`
/// and `team-b` only (RoleBindings), and a kubeconfig with its token.
fn namespace_admin(dir: &std::path::Path) -> std::path::PathBuf {
    for ns in ["team-a", "team-b", "team-c"] {
        kubectl(&["create", "namespace", ns]);
    }
    kubectl(&["create", "serviceaccount", "alice", "-n", "team-a"]);
    for ns in ["team-a", "team-b"] {
        kubectl(&[
            "create",
            "rolebinding",
            "alice-admin",
            "--clusterrole=admin",
            "--serviceaccount=team-a:alice",
            "-n",
            ns,
        ]);
    }
    // the built-in `admin` is aggregated by kube-controller-manager: wait until it is
    plane()
        .wait_until(
            "the admin ClusterRole aggregated",
            Duration::from_secs(60),
            |p| {
                p.kubectl(&[
                    "get",
                    "clusterrole",
                    "admin",
                    "-o",
                    "jsonpath={.rules[*].resources}",
                ])
                .is_ok_and(|r| r.contains("rolebindings") && r.contains("deployments"))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let user = dir.join("alice");
    std::fs::create_dir_all(&user).unwrap();
    service_account_kubeconfig(&user, "alice", "team-a")
}

/// `kubectl auth can-i` as the given kubeconfig's user (the last `--kubeconfig` wins).
fn can_i(kubeconfig: &std::path::Path, args: &[&str]) -> bool {
    let user = format!("--kubeconfig={}", kubeconfig.display());
    let mut all = vec![user.as_str(), "auth", "can-i"];
    all.extend_from_slice(args);
    // "no" exits 1: an error
    match plane().kubectl(&all) {
        Ok(out) => out.trim() == "yes",
        Err(e) => {
            eprintln!("can-i {args:?}: {e}");
            false
        }
    }
}

#[tokio::test]
async fn a_namespace_admin_installs_it_and_the_watcher_alone_stamps_and_rolls() {
    let client = client().await;
    let mut h = Hashroll::prepare(&[]);
    let alice = namespace_admin(&h.dir);
    // the user really is no more than an admin of two namespaces
    assert!(can_i(&alice, &["create", "roles", "-n", "team-b"]));
    assert!(!can_i(&alice, &["create", "clusterroles"]));
    assert!(!can_i(&alice, &["create", "mutatingwebhookconfigurations"]));
    assert!(!can_i(&alice, &["get", "configmaps", "-n", "team-c"]));

    let out = support::helm::helm(
        &alice,
        &[
            "install",
            "hashroll",
            &chart(),
            "-n",
            "team-a",
            "--wait=false",
            "--set",
            "replicaCount=0",
            "--set",
            "namespaced=true",
            "--set",
            "namespaces={team-a,team-b}",
        ],
    )
    .unwrap_or_else(|e| panic!("a namespace admin's helm install: {e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    // nothing cluster-scoped came with it
    let manifest = support::helm::helm(&alice, &["get", "manifest", "hashroll", "-n", "team-a"])
        .unwrap_or_else(|e| panic!("{e}"));
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
    ] {
        assert!(
            !manifest.contains(&format!("kind: {kind}\n")),
            "{kind} in the namespaced install:\n{manifest}"
        );
    }
    for ns in ["team-a", "team-b"] {
        kubectl(&["get", "role", "hashroll-watch", "-n", ns]);
        kubectl(&["get", "rolebinding", "hashroll-watch", "-n", ns]);
    }

    // hashroll outside the plane, on the chart's ServiceAccount, as the chart runs it
    h.kubeconfig = Some(service_account_kubeconfig(&h.dir, "hashroll", "team-a"));
    h.hmac_from_secret = true;
    h.args = vec![
        "--namespace=team-a".into(),
        "--namespaced".into(),
        "--namespaces=team-a,team-b".into(),
        "--enable-ha".into(),
        "--lease-duration=4s".into(),
    ];
    h.restart().await;
    let m = h.metrics().await;
    assert!(
        m.contains(r#"hashroll_mode{scope="namespaced",webhook="off"} 1"#),
        "{m}"
    );

    for ns in ["team-a", "team-b", "team-c"] {
        apply(ns, &cfg_and_app("1", &["web"]));
    }
    // no webhook: the watcher gives each watched workload its record, with no roll
    for ns in ["team-a", "team-b"] {
        wait_for(
            &format!("the record on {ns}/web"),
            Duration::from_secs(60),
            || async move { (!deployment_record(ns, "web").is_empty()).then_some(()) },
        )
        .await;
        wait_rs(&client, ns, "app=web", 1).await;
    }
    assert_rs_count_stays(&client, "team-a", "app=web", 1, SETTLE).await;
    // a change rolls the watched ones once; the third namespace is never touched
    for ns in ["team-a", "team-b", "team-c"] {
        set_cfg(ns, "2");
    }
    for ns in ["team-a", "team-b"] {
        wait_rs(&client, ns, "app=web", 2).await;
    }
    assert_rs_count_stays(&client, "team-a", "app=web", 2, SETTLE).await;
    assert_rs_count_stays(&client, "team-b", "app=web", 2, Duration::ZERO).await;
    assert_rs_count_stays(&client, "team-c", "app=web", 1, Duration::ZERO).await;
    assert!(deployment_record("team-c", "web").is_empty());

    // explain, as the namespace admin, says the watcher alone stamps here
    let (code, text, err) = h.explain_with(
        &alice,
        &[
            "deployment/web",
            "-n",
            "team-a",
            "--hashroll-namespace=team-a",
        ],
    );
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("  mode: unknown: you cannot read"), "{text}");
    let text = h.explain(&[
        "deployment/web",
        "-n",
        "team-a",
        "--hashroll-namespace=team-a",
    ]);
    assert!(text.contains("  mode: watcher only"), "{text}");

    let out = support::helm::helm(&alice, &["uninstall", "hashroll", "-n", "team-a"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("uninstalled"), "{out}");
}

#[tokio::test]
async fn namespaced_refuses_what_needs_the_cluster_naming_why() {
    for (flag, says) in [
        ("--webhook=true", "MutatingWebhookConfiguration"),
        ("--namespace-selector=team=a", "Role cannot grant"),
        ("--enable-csi-integration", "cluster-wide"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashroll"))
            .args(["run", "--namespaced", "--namespaces=team-x", flag])
            .env("KUBECONFIG", plane().kubeconfig())
            .output()
            .expect("run hashroll");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains("--namespaced") && err.contains(says),
            "{flag}: {err}"
        );
    }
}
