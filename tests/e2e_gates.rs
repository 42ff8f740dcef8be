//! Safe rollouts' other gates on the real control plane: pause switches on the workload,
//! the source, the namespace and hashroll's switch ConfigMap hold rolls until they are off;
//! `--max-concurrent-rollouts` caps what rolls at once; a roll window, the workload's own
//! or the one its namespace's label names, holds a change until it opens. (Waves and stop on failure: e2e_safe.rs.)

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::*;

#[tokio::test]
async fn pause_switches_hold_rolls_until_they_are_off_then_roll_once() {
    let client = client().await;
    let ns = namespace("pause");
    let home = format!("{ns}-home");
    kubectl(&["create", "namespace", &home]);
    let h = Hashroll::for_namespace(
        &ns,
        &["--coalesce-window=0", &format!("--namespace={home}")],
    )
    .await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    let mut rs = 1;
    // (pause, unpause) for the workload, the source, the namespace, the cluster
    let switch = |data: &str| {
        kubectl_stdin(
            &["apply", "-n", &home, "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hashroll-switches}}\ndata: {data}\n"
            ),
        );
    };
    type Switch<'a> = Box<dyn Fn() + 'a>;
    // `kubectl annotate KIND NAME` with `hashroll.dev/paused=true` or its removal
    let annotate = |kind: &'static str, name: &'static str, on: bool| -> Switch<'_> {
        let ns = ns.clone();
        Box::new(move || {
            let value = if on {
                "hashroll.dev/paused=true"
            } else {
                "hashroll.dev/paused-"
            };
            kubectl(&["annotate", kind, name, "-n", &ns, value]);
        })
    };
    let cases: [(&str, Switch, Switch); 5] = [
        (
            "workload",
            annotate("deployment", "web", true),
            annotate("deployment", "web", false),
        ),
        (
            "source",
            annotate("configmap", "cfg", true),
            annotate("configmap", "cfg", false),
        ),
        (
            "namespace",
            Box::new(|| switch(&format!("{{paused-namespaces: 'other,{ns}'}}"))),
            Box::new(|| switch("{paused-namespaces: other}")),
        ),
        (
            "namespace annotation",
            Box::new(|| {
                kubectl(&["annotate", "namespace", &ns, "hashroll.dev/paused=true"]);
            }),
            Box::new(|| {
                kubectl(&["annotate", "namespace", &ns, "hashroll.dev/paused-"]);
            }),
        ),
        (
            "cluster",
            Box::new(|| switch("{paused: 'true'}")),
            Box::new(|| switch("{paused: 'false'}")),
        ),
    ];
    // hashroll has seen a pause when it logs the workload's new version (the workload) or
    // the switches changing (hashroll's switch ConfigMap); a source's pause comes in the
    // same watch as its later changes, so before them
    let seen = |what: &str, before: usize| match what {
        "workload" => {
            let rv = resource_version(&ns, "deployment", "web");
            format!("resource_version={rv}")
        }
        "source" => String::new(),
        "namespace annotation" => format!("namespace={ns} paused=true"),
        _ => format!("pause switches changed#{}", before + 1),
    };
    for (i, (what, pause, unpause)) in cases.iter().enumerate() {
        let switched = h.log().matches("pause switches changed").count();
        pause();
        let marker = seen(what, switched);
        wait_for(
            &format!("hashroll to see the {what} pause"),
            DEADLINE,
            || async {
                let log = h.log();
                let ok = match marker.split_once('#') {
                    Some((line, n)) => log.matches(line).count() >= n.parse::<usize>().unwrap(),
                    None => log.contains(&marker),
                };
                ok.then_some(())
            },
        )
        .await;
        // two changes while paused
        set_cfg(&ns, &format!("{i}-a"));
        set_cfg(&ns, &format!("{i}-b"));
        assert_rs_count_stays(&client, &ns, "app=web", rs, SETTLE).await;
        unpause();
        rs += 1;
        wait_rs(&client, &ns, "app=web", rs).await;
        assert_rs_count_stays(&client, &ns, "app=web", rs, SETTLE).await;
        let env = kubectl(&[
            "get",
            "configmap",
            "cfg",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data.k}",
        ]);
        assert_eq!(
            env,
            format!("{i}-b"),
            "{what}: the latest data is what rolled"
        );
    }
}

/// A ring of `after` lists (a after c, b after a, c after b) would hold all three for ever;
/// none of them waits, so a change rolls each once.
#[tokio::test]
async fn a_ring_of_after_lists_rolls_every_member_once() {
    let client = client().await;
    let ns = namespace("ring");
    let _h = Hashroll::for_namespace(&ns, &["--coalesce-window=0"]).await;
    let mut yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n".to_string();
    for (me, after) in [("a", "c"), ("b", "a"), ("c", "b")] {
        yaml.push_str(&app_with(
            me,
            "cfg",
            &format!(r#", hashroll.dev/after: "deployment/{after}""#),
            "",
            "",
        ));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    for app in ["a", "b", "c"] {
        wait_rs(&client, &ns, &format!("app={app}"), 1).await;
    }
    set_cfg(&ns, "2");
    for app in ["a", "b", "c"] {
        wait_rs(&client, &ns, &format!("app={app}"), 2).await;
    }
    for app in ["a", "b", "c"] {
        assert_rs_count_stays(&client, &ns, &format!("app={app}"), 2, SETTLE).await;
    }
}

/// Deployments of `ns` whose rollout is under way, as their controller reports it.
async fn rolling(client: &kube::Client, ns: &str) -> usize {
    let deps = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items;
    deps.iter()
        .filter(|d| {
            let want = d.spec.replicas.unwrap_or(1);
            let s = d.status.clone().unwrap_or_default();
            s.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0)
                || s.updated_replicas.unwrap_or(0) < want
                || s.available_replicas.unwrap_or(0) < want
                || s.replicas.unwrap_or(0) > want
        })
        .count()
}

#[tokio::test]
async fn at_most_the_cap_roll_at_once_and_all_roll_in_the_end() {
    let client = client().await;
    let ns = namespace("cap");
    let h =
        Hashroll::for_namespace(&ns, &["--coalesce-window=0", "--max-concurrent-rollouts=3"]).await;
    let names: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
    let mut yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n".to_string();
    for n in &names {
        // wave 0 for all: no order, only the cap
        yaml.push_str(&waved_app(n, 0, "progressDeadlineSeconds: 15"));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    wait_all_rs(&client, &ns, &names, 1).await;
    wait_for("every first rollout to complete", DEADLINE, || async {
        (rolling(&client, &ns).await == 0).then_some(())
    })
    .await;
    patch_cm(&ns, "cfg", r#"{"k":"2"}"#);
    let most = std::sync::atomic::AtomicUsize::new(0);
    wait_for(
        "all 12 to roll, sampling how many roll at once",
        Duration::from_secs(180),
        || async {
            let n = rolling(&client, &ns).await;
            most.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
            assert!(n <= 3, "{n} Deployments rolling at once");
            let t = rs_times(&client, &ns).await;
            names
                .iter()
                .all(|d| t.get(d).map_or(0, Vec::len) == 2)
                .then_some(())
        },
    )
    .await;
    assert!(
        most.into_inner() >= 1,
        "the sampling saw rollouts under way"
    );
    let want: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 2)).collect();
    counts_stay(&client, &ns, &want).await;
    let m = h.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.contains("max_concurrent_rollouts") && !l.starts_with('#')),
        "rolls waited for a slot:\n{m}"
    );
}

#[tokio::test]
async fn a_change_outside_the_window_rolls_once_when_it_opens() {
    let client = client().await;
    let ns = namespace("window");
    let home = format!("{ns}-home");
    kubectl(&["create", "namespace", &home]);
    let h = Hashroll::for_namespace(
        &ns,
        &[
            "--coalesce-window=0",
            &format!("--namespace={home}"),
            "--window-namespace-label=example.com/rolls",
        ],
    )
    .await;
    // web has a window of its own; api the one its namespace's label names
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web", "api"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    wait_rs(&client, &ns, "app=api", 1).await;
    // a window of two minutes opening at the next full minute (UTC) at least 30 s away:
    // time for the changes and the settle period before it opens
    let now = k8s_openapi::jiff::Timestamp::now();
    let minute = now
        .round(
            k8s_openapi::jiff::TimestampRound::new()
                .smallest(k8s_openapi::jiff::Unit::Minute)
                .mode(k8s_openapi::jiff::RoundMode::Trunc),
        )
        .unwrap();
    let mut open = minute + std::time::Duration::from_secs(60);
    if open.duration_since(now) < k8s_openapi::jiff::SignedDuration::from_secs(30) {
        open += std::time::Duration::from_secs(60);
    }
    let close = open + std::time::Duration::from_secs(120);
    let hm = |t: k8s_openapi::jiff::Timestamp| t.strftime("%H:%M").to_string();
    let window = format!("{}-{} UTC", hm(open), hm(close));
    kubectl(&[
        "annotate",
        "deployment",
        "web",
        "-n",
        &ns,
        &format!("hashroll.dev/roll-window={window}"),
    ]);
    kubectl_stdin(
        &["apply", "-n", &home, "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hashroll-switches}}\n\
             data: {{window.night: '{window}'}}\n"
        ),
    );
    kubectl(&["label", "namespace", &ns, "example.com/rolls=night"]);
    let rv = resource_version(&ns, "deployment", "web");
    wait_for("hashroll to see the windows", DEADLINE, || async {
        let log = h.log();
        (log.contains(&format!("resource_version={rv}"))
            && log.contains("pause switches changed")
            && log.contains(&format!(
                "namespace={ns} paused=false window=Some(\"night\")"
            )))
        .then_some(())
    })
    .await;
    set_cfg(&ns, "2");
    set_cfg(&ns, "3");
    assert_rs_count_stays(&client, &ns, "app=web", 1, SETTLE).await;
    assert_eq!(
        replicasets(&client, &ns, "app=api").await.len(),
        1,
        "api rolled outside its namespace's window"
    );
    assert!(
        k8s_openapi::jiff::Timestamp::now() < open,
        "the settle period ended before the window opened"
    );
    assert!(h.log().contains("roll waits for its window"), "{}", h.log());
    let out = h.explain(&["deployment/web", "-n", &ns]);
    assert!(
        out.contains(&format!("roll window: {window} (closed; next opening")),
        "{out}"
    );
    assert!(
        out.contains("the pending roll: outside its roll window"),
        "{out}"
    );
    let out = h.explain(&[
        "deployment/api",
        "-n",
        &ns,
        &format!("--hashroll-namespace={home}"),
        "--window-namespace-label=example.com/rolls",
    ]);
    assert!(
        out.contains("the pending roll: outside its roll window"),
        "{out}"
    );
    for app in ["app=web", "app=api"] {
        wait_for(
            "the roll when the window opens",
            Duration::from_secs(240),
            || async { (replicasets(&client, &ns, app).await.len() == 2).then_some(()) },
        )
        .await;
        let newest = replicasets(&client, &ns, app)
            .await
            .into_iter()
            .filter_map(|r| r.metadata.creation_timestamp)
            .map(|t| t.0)
            .max()
            .unwrap();
        assert!(
            newest >= open,
            "{app} rolled at {newest}, before the window opened ({window})"
        );
    }
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=api", 2, Duration::ZERO).await;
}
