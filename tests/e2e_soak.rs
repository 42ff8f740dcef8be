//! The chaos soak: two replicas (HA, a 4 s lease) and 16 workloads, each on its own
//! ConfigMap, while random faults hit the replicas: kill -9 and restart, SIGSTOP for a few
//! seconds then SIGCONT, SIGTERM and restart; and random ConfigMaps change all along. At the
//! end nothing is lost (every workload's record matches its ConfigMap's latest data: `explain`
//! says no roll is pending) and nothing rolled twice (no workload has more ReplicaSets than
//! 1 + the changes made to its ConfigMap).
//!
//! `make test` runs it for 40 s; `make soak` for `SOAK_SECONDS` (default 1800). The seed is
//! printed, and `HASHROLL_SOAK_SEED` replays one.

mod support;

use std::time::{Duration, Instant};

use support::*;

const APPS: usize = 16;

fn yaml() -> String {
    let mut out = String::new();
    for i in 0..APPS {
        out.push_str(&format!(
            r#"---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cm-{i}}}
data: {{v: '0'}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  replicas: 0
  # every ReplicaSet kept, so each rollout is counted
  revisionHistoryLimit: 1000
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cm-{i}}}}}]}}]
"#
        ));
    }
    out
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn signal(h: &Hashroll, sig: &str) {
    if let Some(pid) = h.child.lock().unwrap().as_ref().map(|c| c.id()) {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    }
}

async fn exited(h: &Hashroll) {
    wait_for("the replica to exit", DEADLINE, || async {
        h.child
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    })
    .await;
}

#[tokio::test]
async fn random_faults_lose_nothing_and_roll_nothing_twice() {
    let seconds: u64 = std::env::var("HASHROLL_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("HASHROLL_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("soak: {seconds} s, HASHROLL_SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let client = client().await;
    let ns = namespace("soak");
    let own = format!("--namespace={ns}");
    let scoped = format!("--namespaces={ns}");
    let flags = [
        "--enable-ha",
        "--lease-duration=4s",
        "--coalesce-window=0",
        own.as_str(),
    ];
    let mut a = Hashroll::for_namespace(&ns, &flags).await;
    let mut b_flags = flags.to_vec();
    b_flags.push(scoped.as_str());
    let mut b = Hashroll::start(&b_flags).await;
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml());
    for i in 0..APPS {
        wait_rs(&client, &ns, &format!("app=app-{i}"), 1).await;
    }

    let mut changes = [0usize; APPS];
    let mut faults = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut value = 0u64;
    while Instant::now() < end {
        let roll = rng.below(100);
        let which = if rng.below(2) == 0 { &mut a } else { &mut b };
        match roll {
            0..70 => {
                let i = rng.below(APPS as u64) as usize;
                value += 1;
                patch_cm(&ns, &format!("cm-{i}"), &format!(r#"{{"v":"{value}"}}"#));
                changes[i] += 1;
            }
            70..80 => {
                faults.push("kill -9");
                which.restart().await;
            }
            80..90 => {
                faults.push("stop");
                signal(which, "-STOP");
                tokio::time::sleep(Duration::from_millis(2000 + rng.below(4000))).await;
                signal(which, "-CONT");
            }
            _ => {
                faults.push("term");
                signal(which, "-TERM");
                exited(which).await;
                which.restart().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200 + rng.below(500))).await;
    }
    eprintln!("soak: changes {changes:?}, faults {faults:?}");

    // nothing lost: every record catches up with its ConfigMap's latest data
    for i in 0..APPS {
        let app = format!("deployment/app-{i}");
        wait_for(
            &format!("{app} to carry its latest data"),
            DEADLINE,
            || async {
                let out = a.explain(&[&app, "-n", &ns]);
                out.contains("roll pending: no").then_some(())
            },
        )
        .await;
    }
    // nothing twice: at most one rollout per change (fewer when changes came together)
    for (i, &n) in changes.iter().enumerate() {
        let sel = format!("app=app-{i}");
        let rs = replicasets(&client, &ns, &sel).await.len();
        assert!(
            rs <= 1 + n,
            "app-{i}: {rs} ReplicaSets for {n} changes (seed {seed})"
        );
        if n > 0 {
            assert!(
                rs >= 2,
                "app-{i}: changed {n} times, never rolled (seed {seed})"
            );
        }
    }
    for h in [&a, &b] {
        assert!(!h.log().contains("panicked"), "{}", h.log());
    }
}
