//! HA: two hashroll processes, one Lease. kill -9 the holder while sources change: the
//! other takes over within the lease duration plus 2 s, and every change is applied
//! exactly once (counted in ReplicaSets); a leader killed in the middle of a wave: the new
//! one waits for that wave's rollouts and rolls the rest, each once.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::*;

const LEASE_SECONDS: u64 = 4;

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("hashroll-leader")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn the_other_replica_takes_over_and_every_change_lands_once() {
    let client = client().await;
    let ns = namespace("ha");
    let lease = format!("--lease-duration={LEASE_SECONDS}s");
    let own = format!("--namespace={ns}");
    let flags = ["--enable-ha", lease.as_str(), own.as_str()];
    let a = Hashroll::for_namespace(&ns, &flags).await;
    let scoped = format!("--namespaces={ns}");
    let mut b_flags = flags.to_vec();
    b_flags.push(scoped.as_str());
    let b = Hashroll::start(&b_flags).await;

    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    let first = wait_for("a lease holder", DEADLINE, || holder(&client, &ns)).await;
    assert!(
        first == a.identity() || first == b.identity(),
        "holder {first}"
    );

    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=web", 2).await;

    // kill -9 the holder, and change the source while nobody writes
    let (leader, other) = if first == a.identity() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    leader.kill();
    let killed_at = Instant::now();
    set_cfg(&ns, "3");
    let next = wait_for("the other replica to take the lease", DEADLINE, || async {
        holder(&client, &ns).await.filter(|h| *h != first)
    })
    .await;
    let took = killed_at.elapsed();
    assert_eq!(next, other.identity());
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 2),
        "took over after {took:?}, more than the lease duration plus 2 s"
    );
    eprintln!("takeover after {took:?}");
    wait_rs(&client, &ns, "app=web", 3).await;
    set_cfg(&ns, "4");
    wait_rs(&client, &ns, "app=web", 4).await;
    assert_rs_count_stays(&client, &ns, "app=web", 4, SETTLE).await;
}
/// Two replicas of `ns` with a 4 s lease; the one holding it first.
async fn pair(ns: &str, extra: &[&str]) -> (Hashroll, Hashroll, String) {
    let client = client().await;
    let lease = format!("--lease-duration={LEASE_SECONDS}s");
    let own = format!("--namespace={ns}");
    let mut flags = vec!["--enable-ha", lease.as_str(), own.as_str()];
    flags.extend_from_slice(extra);
    let a = Hashroll::for_namespace(ns, &flags).await;
    let scoped = format!("--namespaces={ns}");
    flags.push(scoped.as_str());
    let b = Hashroll::start(&flags).await;
    let first = wait_for("a lease holder", DEADLINE, || holder(&client, ns)).await;
    if first == a.identity() {
        (a, b, first)
    } else {
        (b, a, first)
    }
}

/// The lines of `h`'s log after its first `skip` bytes.
fn log_after(h: &Hashroll, skip: usize) -> String {
    h.log().get(skip..).unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_frozen_leader_writes_nothing_when_it_wakes_after_a_takeover() {
    let client = client().await;
    let ns = namespace("ha-frozen");
    // a change waits 3 s in the leader's queue: it is frozen holding it
    let (leader, other, first) = pair(&ns, &["--coalesce-window=3s"]).await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    let mark = leader.log().len();
    set_cfg(&ns, "2");
    // the leader has the change in its queue (it logs each source change it queues)
    wait_for("the leader to queue the change", DEADLINE, || async {
        log_after(&leader, mark)
            .contains("source changed")
            .then_some(())
    })
    .await;
    assert!(leader.signal("-STOP"), "signal -STOP");
    let next = wait_for("the other replica to take the lease", DEADLINE, || async {
        holder(&client, &ns).await.filter(|h| *h != first)
    })
    .await;
    assert_eq!(next, other.identity());
    wait_rs(&client, &ns, "app=web", 2).await;
    // woken: its queued check is long due and its leadership long lapsed
    let mark = leader.log().len();
    assert!(leader.signal("-CONT"), "signal -CONT");
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    let after = log_after(&leader, mark);
    for never in ["rolled", "conflicted", "write failed", "record updated"] {
        assert!(
            !after.contains(never),
            "the woken replica wrote ({never}):\n{after}"
        );
    }
    assert!(after.contains("stopped writing"), "{after}");
    assert_eq!(holder(&client, &ns).await, Some(other.identity()));
    // and the one that leads now rolls the next change, once
    set_cfg(&ns, "3");
    wait_rs(&client, &ns, "app=web", 3).await;
    assert_rs_count_stays(&client, &ns, "app=web", 3, SETTLE).await;
}

#[tokio::test]
async fn sigterm_hands_the_lease_back() {
    let client = client().await;
    let ns = namespace("ha-term");
    let (leader, other, _) = pair(&ns, &[]).await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    assert!(leader.signal("-TERM"), "signal -TERM");
    let status = wait_for("the leader to exit", DEADLINE, || async { leader.exited() }).await;
    assert!(status.success(), "{status}");
    let log = leader.log();
    assert!(log.contains("released the lease"), "{log}");
    // given back before it exited: no wait for it to expire
    let h = holder(&client, &ns).await;
    assert!(h.as_deref() != Some(leader.identity().as_str()), "{h:?}");
    wait_for("the other replica to take the lease", DEADLINE, || async {
        holder(&client, &ns)
            .await
            .filter(|h| *h == other.identity())
    })
    .await;
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=web", 2).await;
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
}

#[tokio::test]
async fn a_new_leader_carries_on_a_wave_where_the_old_one_died() {
    let client = client().await;
    let ns = namespace("ha-waves");
    let (leader, other, first) = pair(&ns, &["--coalesce-window=0"]).await;
    let mut yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n".to_string();
    let apps = [
        ("w0a", 0),
        ("w0b", 0),
        ("w1a", 1),
        ("w1b", 1),
        ("w2a", 2),
        ("w2b", 2),
    ];
    for (name, wave) in apps {
        // 6 s before a rollout counts as available
        yaml.push_str(&waved_app(name, wave, "minReadySeconds: 6"));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    for (name, _) in apps {
        wait_rs(&client, &ns, &format!("app={name}"), 1).await;
    }
    set_cfg(&ns, "2");
    // wave 0 rolled, and its rollouts still under way (6 s before they count as available)
    for name in ["w0a", "w0b"] {
        wait_rs(&client, &ns, &format!("app={name}"), 2).await;
    }
    leader.kill();
    assert_eq!(
        replicasets(&client, &ns, "app=w1a").await.len(),
        1,
        "wave 1 rolled before wave 0 completed"
    );
    wait_for("the other replica to take the lease", DEADLINE, || async {
        holder(&client, &ns).await.filter(|h| *h != first)
    })
    .await;
    // the new leader waits for wave 0, then rolls waves 1 and 2, each once
    for (name, _) in apps {
        wait_rs(&client, &ns, &format!("app={name}"), 2).await;
    }
    for (name, _) in apps {
        assert_rs_count_stays(
            &client,
            &ns,
            &format!("app={name}"),
            2,
            Duration::from_secs(1),
        )
        .await;
    }
    assert_rs_count_stays(&client, &ns, "waved=yes", 12, SETTLE).await;
    // the new leader waited for wave 0's rollouts to complete (6 s of minReadySeconds)
    let deps = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns);
    let rolled = |d: k8s_openapi::api::apps::v1::Deployment| {
        d.metadata.annotations.unwrap()["hashroll.dev/last-roll"]
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
    };
    let w0 = rolled(deps.get("w0a").await.unwrap()).max(rolled(deps.get("w0b").await.unwrap()));
    let w1 = rolled(deps.get("w1a").await.unwrap()).min(rolled(deps.get("w1b").await.unwrap()));
    let gap = w1.duration_since(w0);
    assert!(
        gap >= k8s_openapi::jiff::SignedDuration::from_secs(5),
        "wave 1 rolled {gap:?} after wave 0"
    );
    assert!(
        other.log().contains("roll waits") || other.log().contains("rolled"),
        "{}",
        other.log()
    );
}
