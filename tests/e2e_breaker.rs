//! The flap breaker: with `--min-roll-interval`, a burst of changes right after a roll is
//! held (nothing rolls inside the interval), and the latest lands in exactly one roll when
//! the interval ends; the held rolls are counted and `explain` says when the next may
//! happen.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn changes_inside_the_interval_are_held_and_the_latest_lands_once() {
    let client = client().await;
    let ns = namespace("breaker");
    let h = Hashroll::for_namespace(&ns, &["--min-roll-interval=12s", "--coalesce-window=0"]).await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;
    // the first change rolls at once: no roll before it
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=web", 2).await;
    // a burst right after: held
    for v in ["3", "4", "5"] {
        set_cfg(&ns, v);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    let out = h.explain(&["deployment/web", "-n", &ns, "--min-roll-interval=12s"]);
    assert!(out.contains("minimum interval between rolls: 12s"), "{out}");
    assert!(out.contains("next roll: not before"), "{out}");
    assert!(out.contains("roll pending: yes"), "{out}");
    let m = h.metrics().await;
    let held = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("hashroll_held_rolls_total ")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(held >= 1.0, "{m}");
    // the interval ends: one roll, with the latest data
    wait_rs(&client, &ns, "app=web", 3).await;
    assert_rs_count_stays(&client, &ns, "app=web", 3, SETTLE).await;
    let out = h.explain(&["deployment/web", "-n", &ns]);
    assert!(
        out.contains("roll pending: no"),
        "the latest landed:\n{out}"
    );
    assert!(!h.log().contains("panicked"), "{}", h.log());
}
