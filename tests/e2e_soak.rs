//! The chaos soak: two replicas in HA (a 4 s lease) and workloads of three kinds
//! (Deployments, StatefulSets, DaemonSets) over several namespaces, each opted in one of
//! four ways (auto, named reload lists, search/match, per-kind auto) to its own ConfigMap and
//! Secret. Random writes hit them: data changes, no-op writes, label-only edits, deletes and
//! re-creates of the referenced sources, pod-template edits; while at random moments a
//! replica is killed -9 and restarted, frozen with SIGSTOP then woken, and kube-apiserver is
//! killed and restarted (every watch cut).
//!
//! Afterwards, from the objects themselves:
//! - nothing lost: every workload's record is what it should be (`explain`: the record it
//!   carries equals the one it should carry, no roll pending), and every workload whose
//!   sources changed has a rollout (ReplicaSet or ControllerRevision) made at or after the
//!   last change;
//! - nothing twice: no workload has more rollouts than the changes to its sources plus the
//!   edits of its template.
//!
//! `make test` runs a short variant (4 namespaces, 40 workloads, 80 writes, 3 kills, 1
//! freeze, 1 apiserver restart); `make soak` the full one (20 namespaces, 200 workloads,
//! 1,000 writes, 10 kills, 3 freezes, 2 apiserver restarts). The seed is printed, and
//! `HASHROLL_SOAK_SEED` replays one.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, ListParams};
use support::*;

/// Workloads per namespace.
const PER_NS: usize = 10;
const KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
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

/// Annotations that opt workload `i` in (four styles), and those its sources carry.
fn opt_in(i: usize) -> (&'static str, String) {
    match i % 4 {
        0 => (r#"reloader.stakater.com/auto: "true""#, String::new()),
        1 => (
            "",
            format!(
                r#"configmap.reloader.stakater.com/reload: "cm-{i}", secret.reloader.stakater.com/reload: "s-{i}""#
            ),
        ),
        2 => (r#"reloader.stakater.com/search: "true""#, String::new()),
        _ => (
            r#"configmap.reloader.stakater.com/auto: "true", secret.reloader.stakater.com/auto: "true""#,
            String::new(),
        ),
    }
}

/// ConfigMap or Secret `name` (search/match sources carry the match annotation).
fn source(kind: &str, name: &str, value: u64) -> String {
    let data = if kind == "Secret" {
        "stringData"
    } else {
        "data"
    };
    format!(
        "---\napiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations: {{reloader.stakater.com/match: \"true\"}}\n{data}: {{v: '{value}'}}\n"
    )
}

fn workload(i: usize) -> String {
    let kind = KINDS[i % 3];
    let (fixed, listed) = opt_in(i);
    let annotations = [fixed, listed.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let extra = match kind {
        "Deployment" => "  replicas: 0\n",
        "StatefulSet" => "  replicas: 0\n  serviceName: w\n",
        // no node matches: revisions without pods
        _ => "",
    };
    let selector = if kind == "DaemonSet" {
        "      nodeSelector: {nowhere: \"true\"}\n"
    } else {
        ""
    };
    format!(
        r#"---
apiVersion: apps/v1
kind: {kind}
metadata:
  name: w-{i}
  annotations: {{{annotations}}}
spec:
{extra}  revisionHistoryLimit: 1000
  selector: {{matchLabels: {{app: w-{i}}}}}
  template:
    metadata: {{labels: {{app: w-{i}}}}}
    spec:
{selector}      containers:
      - name: c
        image: nginx
        envFrom: [{{configMapRef: {{name: cm-{i}}}}}]
        volumeMounts: [{{name: s, mountPath: /s}}]
      volumes: [{{name: s, secret: {{secretName: s-{i}}}}}]
"#
    )
}

fn namespace_yaml() -> String {
    let mut out = String::new();
    for i in 0..PER_NS {
        out.push_str(&source("ConfigMap", &format!("cm-{i}"), 0));
        out.push_str(&source("Secret", &format!("s-{i}"), 0));
        out.push_str(&workload(i));
    }
    out
}
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One workload's part of the soak.
#[derive(Default, Debug, Clone)]
struct Tally {
    /// data changes, deletes and creates of its sources
    changes: usize,
    /// edits of its pod template
    edits: usize,
    /// when its sources last changed (seconds since the epoch)
    last_change: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Freeze,
    Apiserver,
}

/// The rollouts of workload `w-i` in `ns`, with their creation times (epoch seconds).
async fn rollouts(client: &kube::Client, ns: &str, i: usize) -> Vec<u64> {
    let secs = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| t.0.as_second() as u64).unwrap_or(0)
    };
    if KINDS[i % 3] == "Deployment" {
        return replicasets(client, ns, &format!("app=w-{i}"))
            .await
            .iter()
            .map(|r| secs(r.metadata.creation_timestamp.as_ref()))
            .collect();
    }
    let owner = format!("w-{i}");
    Api::<ControllerRevision>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list controllerrevisions")
        .items
        .iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.name == owner && o.controller == Some(true))
        })
        .map(|r| secs(r.metadata.creation_timestamp.as_ref()))
        .collect()
}

#[tokio::test]
async fn random_writes_and_faults_lose_nothing_and_roll_nothing_twice() {
    let namespaces = env_or("HASHROLL_SOAK_NAMESPACES", 4) as usize;
    let writes = env_or("HASHROLL_SOAK_WRITES", 80);
    let kills = env_or("HASHROLL_SOAK_KILLS", 3) as usize;
    let freezes = env_or("HASHROLL_SOAK_FREEZES", 1) as usize;
    let restarts = env_or("HASHROLL_SOAK_APISERVER_RESTARTS", 1) as usize;
    let seed = env_or(
        "HASHROLL_SOAK_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    eprintln!(
        "soak: {namespaces} namespaces × {PER_NS} workloads, {writes} writes, HASHROLL_SOAK_SEED={seed}"
    );
    let mut rng = Rng(seed);
    let client = client().await;
    let nss: Vec<String> = (0..namespaces).map(|_| namespace("soak")).collect();
    let own = format!("--namespace={}", nss[0]);
    let scoped = format!("--namespaces={}", nss.join(","));
    let flags = [
        "--enable-ha",
        "--lease-duration=4s",
        "--coalesce-window=0",
        own.as_str(),
        scoped.as_str(),
    ];
    let mut a = Hashroll::start(&flags).await;
    let mut b = Hashroll::start(&flags).await;
    a.register_webhook("hashroll-soak");
    wait_webhook_active(&nss[0]).await;
    for ns in &nss {
        kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &namespace_yaml());
    }
    for ns in &nss {
        for i in 0..PER_NS {
            wait_for(&format!("w-{i} in {ns} to roll out"), DEADLINE, || async {
                (!rollouts(&client, ns, i).await.is_empty()).then_some(())
            })
            .await;
        }
    }

    // the faults, at random writes
    let mut plan: BTreeMap<u64, Fault> = BTreeMap::new();
    for (fault, n) in [
        (Fault::Kill, kills),
        (Fault::Freeze, freezes),
        (Fault::Apiserver, restarts),
    ] {
        let mut placed = 0;
        while placed < n {
            let at = 1 + rng.below(writes.max(2) - 1);
            if let std::collections::btree_map::Entry::Vacant(e) = plan.entry(at) {
                e.insert(fault);
                placed += 1;
            }
        }
    }

    let mut tally: BTreeMap<(usize, usize), Tally> = BTreeMap::new();
    let mut exists: BTreeMap<(usize, String), bool> = BTreeMap::new();
    let mut values: BTreeMap<(usize, String), u64> = BTreeMap::new();
    let mut done = BTreeMap::<&str, usize>::new();
    let mut value = 0u64;
    for w in 0..writes {
        let n = rng.below(namespaces as u64) as usize;
        let i = rng.below(PER_NS as u64) as usize;
        let ns = &nss[n];
        let (kind, name) = if rng.below(2) == 0 {
            ("ConfigMap", format!("cm-{i}"))
        } else {
            ("Secret", format!("s-{i}"))
        };
        let key = (n, name.clone());
        let present = *exists.get(&key).unwrap_or(&true);
        let t = tally.entry((n, i)).or_default();
        let what = match rng.below(100) {
            0..45 if present => {
                value += 1;
                values.insert(key.clone(), value);
                kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &source(kind, &name, value));
                t.changes += 1;
                t.last_change = Some(now_secs());
                "data"
            }
            45..60 if present => {
                // the same data again
                let v = *values.get(&key).unwrap_or(&0);
                kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &source(kind, &name, v));
                "no-op"
            }
            60..75 if present => {
                let label = format!("touched={}", rng.below(1000));
                kubectl(&[
                    "label",
                    "--overwrite",
                    "-n",
                    ns,
                    &kind.to_lowercase(),
                    &name,
                    &label,
                ]);
                "label"
            }
            75..85 => {
                if present {
                    kubectl(&["delete", "-n", ns, &kind.to_lowercase(), &name]);
                } else {
                    value += 1;
                    values.insert(key.clone(), value);
                    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &source(kind, &name, value));
                }
                exists.insert(key, !present);
                t.changes += 1;
                t.last_change = Some(now_secs());
                "delete/create"
            }
            _ => {
                let patch = format!(
                    r#"{{"spec":{{"template":{{"metadata":{{"labels":{{"edit":"{w}"}}}}}}}}}}"#
                );
                kubectl(&[
                    "patch",
                    "-n",
                    ns,
                    &KINDS[i % 3].to_lowercase(),
                    &format!("w-{i}"),
                    "--type=merge",
                    "-p",
                    &patch,
                ]);
                t.edits += 1;
                "template edit"
            }
        };
        *done.entry(what).or_default() += 1;
        if let Some(fault) = plan.get(&w) {
            let which = if rng.below(2) == 0 { &mut a } else { &mut b };
            match fault {
                Fault::Kill => which.restart().await,
                Fault::Freeze => {
                    which.signal("-STOP");
                    tokio::time::sleep(Duration::from_millis(2000 + rng.below(4000))).await;
                    which.signal("-CONT");
                }
                Fault::Apiserver => {
                    tokio::task::spawn_blocking(|| plane().restart("kube-apiserver"))
                        .await
                        .unwrap()
                        .expect("kube-apiserver starts again");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(200))).await;
    }
    let faults = |f: Fault| plan.values().filter(|v| **v == f).count();
    eprintln!(
        "soak: writes {writes} {done:?}; kills {}, freezes {}, apiserver restarts {}",
        faults(Fault::Kill),
        faults(Fault::Freeze),
        faults(Fault::Apiserver)
    );

    // nothing lost: every record is what it should be, with no roll pending
    let mut lost = Vec::new();
    for (n, ns) in nss.iter().enumerate() {
        for i in 0..PER_NS {
            let target = format!("{}/w-{i}", KINDS[i % 3].to_lowercase());
            wait_for(
                &format!("{target} in {ns} up to date"),
                DEADLINE,
                || async {
                    let out = a.explain(&[&target, "-n", ns, "-o", "json"]);
                    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
                    (v["roll_pending"] == false && v["record"] == v["should_be"]).then_some(())
                },
            )
            .await;
            // and the last change was rolled out, not just recorded: the controller makes
            // the ReplicaSet or ControllerRevision after the record lands (seconds later
            // when the apiserver has just restarted), so it is waited for
            if let Some(t) = tally.get(&(n, i)).and_then(|t| t.last_change) {
                let deadline = std::time::Instant::now() + DEADLINE;
                loop {
                    let newest = rollouts(&client, ns, i)
                        .await
                        .into_iter()
                        .max()
                        .unwrap_or(0);
                    if newest + 1 >= t {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        lost.push(format!("{ns}/w-{i}"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
    // nothing twice: at most one rollout per change or edit (fewer when they came together)
    let mut double = Vec::new();
    for (n, ns) in nss.iter().enumerate() {
        for i in 0..PER_NS {
            let t = tally.get(&(n, i)).cloned().unwrap_or_default();
            let r = rollouts(&client, ns, i).await.len();
            if r > 1 + t.changes + t.edits {
                double.push(format!(
                    "{ns}/w-{i}: {r} rollouts for {} changes and {} edits",
                    t.changes, t.edits
                ));
            }
        }
    }
    eprintln!(
        "soak: lost updates {}, double rolls {} (seed {seed})",
        lost.len(),
        double.len()
    );
    assert!(lost.is_empty(), "lost updates: {lost:?} (seed {seed})");
    assert!(double.is_empty(), "double rolls: {double:?} (seed {seed})");
    for h in [&a, &b] {
        assert!(!h.log().contains("panicked"), "{}", h.log());
    }
}
