//! hashroll as users run it, on a real node (kubelet, containerd, runc, CNI): the image
//! `make image` builds is what the Dockerfile's final stage says and runs on a read-only
//! root with no shell; `helm install` of the chart with that image (self-managed
//! certificates, 2 replicas, HA, the chart's probes, security context, PDB and RBAC as
//! rendered) passes the blog post's walk-through with `kubectl edit` and `kubectl exec` into
//! the new pods; a killed leader is replaced and the next edit rolls once; `helm upgrade`
//! to a new image tag and `helm uninstall` roll no workload and leave nothing behind.

mod support;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use hashroll_harness::node::RealNode;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::node::*;
use support::{DEADLINE, SETTLE, root};

const IMAGE: &str = "ghcr.io/hashroll/hashroll";
/// A file of the OCI archive, by path or by blob digest.
fn archive_file(archive: &std::path::Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn blob(archive: &std::path::Path, digest: &str) -> Vec<u8> {
    archive_file(
        archive,
        &format!("./blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

/// The paths in a gzipped layer.
fn layer_paths(layer: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tzf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tar");
    let mut stdin = child.stdin.take().unwrap();
    let data = layer.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = writer.join();
    assert!(child.wait().unwrap().success());
    text.lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// The value of instruction `op` in the Dockerfile's final stage.
fn final_stage(op: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/Dockerfile", root())).unwrap();
    let last = text.rsplit("\nFROM ").next().unwrap();
    last.lines()
        .find_map(|l| l.strip_prefix(&format!("{op} ")))
        .unwrap_or_else(|| panic!("no {op} in the Dockerfile's final stage"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_image_is_the_dockerfiles_and_runs_read_only_without_a_shell() {
    let archive = image_archive();
    let index: Value = serde_json::from_slice(&archive_file(&archive, "./index.json")).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION"))
    );
    let manifest: Value =
        serde_json::from_slice(&blob(&archive, m["digest"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&blob(
        &archive,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let c = &config["config"];
    // what the Dockerfile's final stage says, read from the image
    assert_eq!(c["User"], final_stage("USER"));
    assert_eq!(c["User"], "65532:65532", "non-root");
    let entrypoint: Value = serde_json::from_str(&final_stage("ENTRYPOINT")).unwrap();
    assert_eq!(c["Entrypoint"], entrypoint);
    let cmd: Value = serde_json::from_str(&final_stage("CMD")).unwrap();
    assert_eq!(c["Cmd"], cmd);
    assert!(c["ExposedPorts"].get("9443/tcp").is_some(), "{c}");
    let labels = &c["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or("");
    assert!(
        revision.len() >= 40 && revision != "unknown",
        "revision label {revision:?}"
    );
    // distroless-like: the binary, libc, CA roots, time zones; no shell, no tools
    let mut paths = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        paths.extend(layer_paths(&blob(
            &archive,
            layer["digest"].as_str().unwrap(),
        )));
    }
    for want in [
        "usr/local/bin/hashroll",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        "usr/share/zoneinfo/Europe/Berlin",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} in the image");
    }
    for unwanted in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "usr/bin/apt",
        "usr/bin/dpkg",
    ] {
        assert!(
            !paths.iter().any(|p| p == unwanted),
            "{unwanted} in the image"
        );
    }

    let Some(n) = real_node("the image test") else {
        return;
    };
    n.import_image(&archive, &[]).unwrap();
    // the image's user and entrypoint on a read-only root, nothing else given
    nk(n, &["create", "namespace", "image"]);
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"version","namespace":"image"}},
"spec":{{"restartPolicy":"Never","securityContext":{{"runAsNonRoot":true}},
"containers":[{{"name":"hashroll","image":"{IMAGE}:{}","args":["--version"],
"securityContext":{{"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"capabilities":{{"drop":["ALL"]}}}}}}]}}}}"#,
        env!("CARGO_PKG_VERSION")
    );
    n.plane()
        .kubectl_stdin(&["apply", "-f", "-"], &pod)
        .unwrap();
    node_wait(n, "the version pod to succeed", DEADLINE, || async {
        let phase = n
            .plane()
            .kubectl(&[
                "get",
                "pod",
                "version",
                "-n",
                "image",
                "-o",
                "jsonpath={.status.phase}",
            ])
            .ok()?;
        assert_ne!(
            phase.trim(),
            "Failed",
            "{}",
            nk(n, &["describe", "pod", "version", "-n", "image"])
        );
        (phase.trim() == "Succeeded").then_some(())
    })
    .await;
    let logs = nk(n, &["logs", "version", "-n", "image"]);
    assert!(logs.contains(env!("CARGO_PKG_VERSION")), "{logs}");
}

/// The newest ReplicaSet of `selector` (by creation, then by revision).
async fn newest_rs(client: &kube::Client, ns: &str, selector: &str) -> Option<ReplicaSet> {
    let rev = |r: &ReplicaSet| {
        r.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?
        .items
        .into_iter()
        .max_by_key(rev)
}

/// Waits until the Deployment's ReplicaSets number `count` and a pod of the newest is
/// Ready; its name.
async fn new_pod(n: &RealNode, client: &kube::Client, count: usize) -> String {
    node_wait(
        n,
        &format!("{count} ReplicaSet(s) of nginx"),
        DEADLINE,
        || async {
            (support::replicasets(client, "ns1", "app=nginx").await.len() == count).then_some(())
        },
    )
    .await;
    node_wait(
        n,
        "a Ready pod of the newest ReplicaSet",
        DEADLINE,
        || async {
            let rs = newest_rs(client, "ns1", "app=nginx").await?;
            let hash = rs
                .metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")?
                .clone();
            let pods = ready_pods(
                client,
                "ns1",
                &format!("app=nginx,pod-template-hash={hash}"),
            )
            .await;
            pods.first().and_then(|p| p.metadata.name.clone())
        },
    )
    .await
}

/// What `kubectl exec POD -- CMD` prints.
fn exec(n: &RealNode, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "-n", "ns1", pod, "--"];
    args.extend_from_slice(cmd);
    nk(n, &args)
}

/// The hashroll pod holding the Lease, once a Ready one does.
async fn leader(n: &RealNode, client: &kube::Client, not: Option<&str>) -> String {
    let leases = Api::<Lease>::namespaced(client.clone(), "hashroll");
    node_wait(n, "a hashroll leader", DEADLINE, || async {
        let ready = ready_pods(client, "hashroll", "app.kubernetes.io/name=hashroll").await;
        for l in leases.list(&ListParams::default()).await.ok()?.items {
            let holder = l.spec?.holder_identity?;
            if Some(holder.as_str()) != not
                && ready
                    .iter()
                    .any(|p| p.metadata.name.as_deref() == Some(holder.as_str()))
            {
                return Some(holder);
            }
        }
        None
    })
    .await
}

/// A Deployment `name` of wave `wave` on ConfigMap `mode` (envFrom), its container exiting
/// at once when `MODE` is `bad`, a pod available once ready for 5 s.
fn mode_app(name: &str, wave: u32) -> String {
    format!(
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{reloader.stakater.com/auto: "true", hashroll.dev/wave: "{wave}"}}
spec:
  replicas: 1
  progressDeadlineSeconds: 12
  # without it (or a readiness probe), a pod that starts and then exits counts as
  # available for a moment: its rollout completes, and the next wave rolls
  minReadySeconds: 5
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: docker.io/library/busybox:hashroll
        command: [sh, -c, 'if [ "$MODE" = bad ]; then echo bad config; exit 1; fi; trap "exit 0" TERM; while true; do sleep 1; done']
        envFrom: [{{configMapRef: {{name: mode}}}}]
"#
    )
}

/// Safe rollouts on real pods (issue 24): a bad change makes the canary's (wave 0) new pod
/// exit, its Deployment reports ProgressDeadlineExceeded, the wave after it is held (a
/// RolloutHeld Event, no new ReplicaSet over the settle period); the fix rolls the canary
/// again and then the rest, once.
async fn bad_change_held_on_real_pods(n: &RealNode, client: &kube::Client) {
    // on a timeout: what the namespace and hashroll say
    let tails = || {
        let get = |args: &[&str]| {
            n.plane()
                .kubectl(args)
                .unwrap_or_else(|e| format!("{args:?}: {e}"))
        };
        format!(
            "{}\n{}\n{}\n{}",
            get(&["get", "events", "-n", "safe"]),
            get(&["get", "rs,deploy,pods", "-n", "safe", "-o", "wide"]),
            get(&["get", "deploy", "-n", "safe", "-o", "yaml"]),
            get(&[
                "logs",
                "-n",
                "hashroll",
                "-l",
                "app.kubernetes.io/name=hashroll",
                "--tail=60",
                "--prefix"
            ]),
        )
    };
    let rs = |app: &'static str, want: usize| {
        let tails = &tails;
        async move {
            support::wait_for_then(
                &format!("{want} ReplicaSet(s) of {app}"),
                DEADLINE,
                tails,
                || async {
                    let sel = format!("app={app}");
                    (support::replicasets(client, "safe", &sel).await.len() == want).then_some(())
                },
            )
            .await
        }
    };
    nk(n, &["create", "namespace", "safe"]);
    support::wait_webhook_active_on(n.plane(), "safe").await;
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mode, namespace: safe}}\n\
         data: {{MODE: good}}\n{}{}",
        mode_app("canary", 0).replace("name: canary\n", "name: canary\n  namespace: safe\n"),
        mode_app("rest", 1).replace("name: rest\n", "name: rest\n  namespace: safe\n"),
    );
    n.plane()
        .kubectl_stdin(&["apply", "-f", "-"], &yaml)
        .unwrap();
    // every replica of `name` updated and available
    let available = |name: &'static str| {
        let tails = &tails;
        async move {
            support::wait_for_then(&format!("{name} available"), DEADLINE, tails, || async {
                let got = nk(
                    n,
                    &[
                        "get",
                        "deployment",
                        name,
                        "-n",
                        "safe",
                        "-o",
                        "jsonpath={.status.updatedReplicas}/{.status.availableReplicas}/\
                         {.status.replicas}",
                    ],
                );
                (got == "1/1/1").then_some(())
            })
            .await
        }
    };
    for name in ["canary", "rest"] {
        rs(name, 1).await;
        available(name).await;
    }
    let set_mode = |m: &str| {
        nk(
            n,
            &[
                "patch",
                "configmap",
                "mode",
                "-n",
                "safe",
                "--type=merge",
                "-p",
                &format!(r#"{{"data":{{"MODE":"{m}"}}}}"#),
            ],
        );
    };
    set_mode("bad");
    rs("canary", 2).await;
    support::wait_for_then("the rest held", DEADLINE, tails, || async {
        let reasons = nk(
            n,
            &[
                "get",
                "events",
                "-n",
                "safe",
                "-o",
                "jsonpath={.items[*].reason}",
            ],
        );
        reasons.contains("RolloutHeld").then_some(())
    })
    .await;
    // the canary's controller says it failed; a crash-looping pod that is ready for a
    // moment counts as progress and resets the condition until the next deadline, so the
    // condition is waited for, not read once
    support::wait_for_then(
        "the canary's ProgressDeadlineExceeded",
        DEADLINE,
        tails,
        || async {
            let reason = nk(
                n,
                &[
                    "get",
                    "deployment",
                    "canary",
                    "-n",
                    "safe",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
                ],
            );
            (reason == "ProgressDeadlineExceeded").then_some(())
        },
    )
    .await;
    support::assert_rs_count_stays(client, "safe", "app=rest", 1, SETTLE).await;
    // the fix (new data: a value seen before would bring back the first ReplicaSet): the
    // canary rolls again, then the rest, once
    set_mode("fixed");
    rs("canary", 3).await;
    rs("rest", 2).await;
    for name in ["canary", "rest"] {
        available(name).await;
    }
    support::assert_rs_count_stays(client, "safe", "app=rest", 2, SETTLE).await;
    assert_eq!(
        support::replicasets(client, "safe", "app=canary")
            .await
            .len(),
        3
    );
    nk(n, &["delete", "namespace", "safe", "--wait=false"]);
}

fn helm(n: &RealNode, args: &[&str]) -> String {
    support::helm::helm(n.plane().kubeconfig(), args).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn helm_install_on_a_real_node_runs_the_seed_walk_through() {
    let Some(n) = real_node("the chart on a real node") else {
        return;
    };
    let client = node_client(n.plane()).await;
    let version = env!("CARGO_PKG_VERSION");
    let upgrade_tag = format!("{version}-upgrade");
    n.import_image(&image_archive(), &[&format!("{IMAGE}:{upgrade_tag}")])
        .unwrap();
    let chart = format!("{}/charts/hashroll", root());
    let t0 = Instant::now();
    let out = helm(
        n,
        &[
            "install",
            "hashroll",
            &chart,
            "-n",
            "hashroll",
            "--create-namespace",
            "--wait",
            "--timeout=3m",
        ],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    eprintln!("helm install --wait: {:.1}s", t0.elapsed().as_secs_f64());
    let first_leader = leader(n, &client, None).await;

    // the blog post: its two files, the image a local one that shows the file and the env
    nk(n, &["create", "namespace", "ns1"]);
    support::wait_webhook_active_on(n.plane(), "ns1").await;
    let deploy = std::fs::read_to_string(format!("{}/examples/nginx-deploy.yaml", root()))
        .unwrap()
        .replace(
            "        image: nginx\n",
            "        image: docker.io/library/busybox:hashroll\n        command: [sh, -c, 'cat /etc/foo/info.yaml; echo CITY=$CITY; trap \"exit 0\" TERM; while true; do sleep 1; done']\n",
        );
    assert!(
        deploy.contains("busybox:hashroll"),
        "the example's image line moved"
    );
    // in the blog post's order: the ConfigMaps, then the Deployment
    let cm = std::fs::read_to_string(format!("{}/examples/cm.yaml", root())).unwrap();
    n.plane()
        .kubectl_stdin(&["apply", "-f", "-"], &format!("{cm}\n---\n{deploy}"))
        .unwrap();
    let pod = new_pod(n, &client, 1).await;
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 1, SETTLE).await;
    assert!(exec(n, &pod, &["cat", "/etc/foo/info.yaml"]).contains("user=aliens"));

    // kubectl edit of the file's ConfigMap: one new ReplicaSet, the new pod reads the file
    kubectl_edit(
        n,
        &["configmap", "test-config-file", "-n", "ns1"],
        "s/user=aliens/user=ted/",
    );
    let pod = new_pod(n, &client, 2).await;
    let file = exec(n, &pod, &["cat", "/etc/foo/info.yaml"]);
    assert!(file.contains("user=ted"), "{file}");
    eprintln!("$ kubectl exec {pod} -- cat /etc/foo/info.yaml\n{file}");
    // kubectl edit of the env's ConfigMap: one more, the new pod has the new env
    kubectl_edit(
        n,
        &["configmap", "test-config-env", "-n", "ns1"],
        "s/CITY: beijing/CITY: shenzhen/",
    );
    let pod = new_pod(n, &client, 3).await;
    let env = exec(n, &pod, &["env"]);
    assert!(env.lines().any(|l| l == "CITY=shenzhen"), "{env}");
    assert!(exec(n, &pod, &["cat", "/etc/foo/info.yaml"]).contains("user=ted"));
    eprintln!("$ kubectl exec {pod} -- env | grep CITY\nCITY=shenzhen");
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 3, SETTLE).await;
    let logs = nk(n, &["logs", "-n", "hashroll", &first_leader]);
    let rolled: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("rolled") && l.contains("nginx"))
        .collect();
    assert_eq!(
        rolled.len(),
        2,
        "kubectl logs of the leader shows each roll:\n{logs}"
    );

    // the leader's pod killed: the other replica takes over and nothing rolls for it
    nk(
        n,
        &[
            "delete",
            "pod",
            &first_leader,
            "-n",
            "hashroll",
            "--grace-period=0",
            "--force",
        ],
    );
    let second = leader(n, &client, Some(&first_leader)).await;
    eprintln!("leader {first_leader} killed; {second} leads");
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 3, SETTLE).await;
    kubectl_edit(
        n,
        &["configmap", "test-config-file", "-n", "ns1"],
        "s/user=ted/user=bob/",
    );
    let pod = new_pod(n, &client, 4).await;
    assert!(exec(n, &pod, &["cat", "/etc/foo/info.yaml"]).contains("user=bob"));
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 4, SETTLE).await;

    bad_change_held_on_real_pods(n, &client).await;

    // helm upgrade to a new image tag: hashroll's pods are replaced, no workload rolls
    let tag = format!("image.tag={upgrade_tag}");
    helm(
        n,
        &[
            "upgrade",
            "hashroll",
            &chart,
            "-n",
            "hashroll",
            "--set",
            &tag,
            "--wait",
            "--timeout=3m",
        ],
    );
    node_wait(n, "hashroll's pods on the new tag", DEADLINE, || async {
        let images = nk(
            n,
            &[
                "get",
                "pods",
                "-n",
                "hashroll",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ],
        );
        let all: Vec<&str> = images.split_whitespace().collect();
        (all.len() == 2 && all.iter().all(|i| i.ends_with(&upgrade_tag))).then_some(())
    })
    .await;
    leader(n, &client, None).await;
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 4, SETTLE).await;

    // helm uninstall: no workload rolls, nothing of hashroll is left
    helm(
        n,
        &[
            "uninstall",
            "hashroll",
            "-n",
            "hashroll",
            "--wait",
            "--timeout=3m",
        ],
    );
    support::assert_rs_count_stays(&client, "ns1", "app=nginx", 4, SETTLE).await;
    node_wait(n, "nothing of hashroll left", Duration::from_secs(60), || async {
        let cluster = nk(n, &["get", "mutatingwebhookconfigurations,clusterroles,clusterrolebindings", "-o", "name"]);
        let ns = nk(n, &["get", "all,secrets,configmaps,leases,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies", "-n", "hashroll", "-o", "name"]);
        let left: Vec<&str> = cluster
            .lines()
            .chain(ns.lines())
            .filter(|l| l.contains("hashroll") && !l.contains("hashroll-harness"))
            .collect();
        left.is_empty().then_some(()).or_else(|| {
            eprintln!("still there: {left:?}");
            None
        })
    })
    .await;
}
