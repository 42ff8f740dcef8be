//! HA: two hashroll processes, one Lease. kill -9 the holder while sources change: the
//! other takes over within the lease duration plus 2 s, and every change is applied
//! exactly once (counted in ReplicaSets).

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
