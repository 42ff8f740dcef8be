//! GitOps beside a real Argo CD: its application-controller and repo-server (built from its
//! Go module by hack/build-argocd.sh) sync the Application the GitOps page shows
//! (examples/gitops/argocd-workload.yaml: automated sync, prune and self-heal) of a ConfigMap
//! and a Deployment that opts in, from a `file://` Git repository this test commits to, in
//! each of Argo CD's three ways of writing: the default (client-side apply),
//! `ServerSideApply=true` (which also diffs server-side) and `Replace=true`. Git never holds
//! hashroll's record or token, so in every mode
//! (1) the first sync is Synced and Healthy, stamped, one ReplicaSet;
//! (2) a commit that changes the ConfigMap's data rolls the Deployment exactly once, and over
//!     a settle period the application stays Synced, self-heal syncs nothing and the
//!     Deployment is not written again;
//! (3) a commit that changes the Deployment's own template rolls once, record and token
//!     there (a template change is admitted afresh, with the token of its record);
//! (4) a hard refresh, then a sync that re-applies (or replaces) every object, roll nothing.
//! The three modes run side by side, each in its own namespace, Git repository and
//! Application, with one hashroll each.
//!
//! And hashroll's own install by the page's other Application
//! (examples/gitops/argocd-application.yaml): what a re-sync and a replace do to the caBundle
//! that hashroll patches in. The two tests run one after the other: that install's webhook
//! configuration is cluster-wide.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hashroll_harness::argocd::{ArgoCd, NAMESPACE};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;
use support::*;

/// Argo CD's first sync waits for its cache of the whole cluster.
const WAIT: Duration = Duration::from_secs(120);
/// Longer than two of the controller's 5 s reconciliations, so that a comparison that
/// would find drift, and the self-heal after it, fall inside it.
const SETTLE_ARGO: Duration = Duration::from_secs(12);
const TOKEN: &str = "hashroll.dev/config-hash";

/// The binary's tests one after the other: the install test's webhook configuration is
/// cluster-wide.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// One Argo CD for the binary's tests.
fn argocd() -> &'static ArgoCd {
    static ARGOCD: std::sync::OnceLock<ArgoCd> = std::sync::OnceLock::new();
    ARGOCD.get_or_init(|| ArgoCd::start(plane()).expect("Argo CD starts"))
}

/// A Git repository on disk, served to Argo CD as `file://`.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        Repo { dir }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Copies directory `from` to `to` in the repository and commits it; the commit's hash.
    fn commit_dir(&self, from: &Path, to: &str) -> String {
        let dest = self.dir.path().join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let st = Command::new("cp")
            .arg("-R")
            .arg(from)
            .arg(&dest)
            .status()
            .expect("run cp");
        assert!(st.success(), "cp -R {}", from.display());
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", to]);
        git(self.dir.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }

    /// Writes `files` under `app/` and commits them; the commit's hash.
    fn commit(&self, files: &[(&str, String)], message: &str) -> String {
        let app = self.dir.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        for (name, text) in files {
            std::fs::write(app.join(name), text).unwrap();
        }
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", message]);
        git(self.dir.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@localhost")
        .env("GIT_COMMITTER_NAME", "e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@localhost")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Application the GitOps page shows (examples/gitops/argocd-workload.yaml), named
/// `name`, of `repo` into `ns`, with `extra` added to its sync options: its JSON and its
/// sync options.
fn application(name: &str, repo: &str, ns: &str, extra: &[&str]) -> (String, Vec<String>) {
    let example =
        std::fs::read_to_string(format!("{}/examples/gitops/argocd-workload.yaml", root()))
            .unwrap();
    let mut app = items(&as_list(&example)).remove(0);
    app["metadata"]["name"] = name.into();
    app["spec"]["source"]["repoURL"] = repo.into();
    app["spec"]["destination"]["namespace"] = ns.into();
    let options = &mut app["spec"]["syncPolicy"]["syncOptions"];
    let list = options.as_array_mut().expect("the example has syncOptions");
    list.extend(extra.iter().map(|o| Value::from(*o)));
    let options = list
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    (app.to_string(), options)
}

/// The Application `name` as JSON.
fn status_of(name: &str) -> Value {
    let out = kubectl(&["get", "application", name, "-n", NAMESPACE, "-o", "json"]);
    serde_json::from_str(&out).unwrap()
}

/// What the tests read of an Application's status.
struct Seen {
    sync: String,
    revision: String,
    health: String,
    /// the last operation's phase and start
    phase: String,
    started: String,
    /// how many syncs have completed
    history: usize,
    app: Value,
}

fn seen(name: &str) -> Seen {
    let app = status_of(name);
    let s = &app["status"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Seen {
        sync: text(&s["sync"]["status"]),
        revision: text(&s["sync"]["revision"]),
        health: text(&s["health"]["status"]),
        phase: text(&s["operationState"]["phase"]),
        started: text(&s["operationState"]["startedAt"]),
        history: s["history"].as_array().map_or(0, Vec::len),
        app,
    }
}

/// One sync mode's run: its namespace, repository, Application, and what was seen.
struct Mode {
    label: &'static str,
    /// the mode's sync option (none for the default)
    options: &'static [&'static str],
    /// the Application's sync options: the example's and the mode's
    sync_options: Vec<String>,
    ns: String,
    repo: Repo,
    name: String,
    client: kube::Client,
    /// the sync statuses seen over the settle periods
    statuses: BTreeSet<String>,
    /// the ReplicaSet count after each step
    counts: Vec<(&'static str, usize)>,
}

impl Mode {
    /// Waits until the application is Synced and Healthy at `rev`, its last sync done.
    async fn synced_at(&self, rev: &str) -> Seen {
        wait_for(
            &format!("{}: {} Synced and Healthy at {rev}", self.label, self.name),
            WAIT,
            || {
                let s = seen(&self.name);
                async move {
                    (s.sync == "Synced"
                        && s.revision == rev
                        && s.health == "Healthy"
                        && s.phase == "Succeeded")
                        .then_some(s)
                }
            },
        )
        .await
    }

    async fn deployment(&self) -> Deployment {
        kube::Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .get("web")
            .await
            .unwrap()
    }

    /// The Deployment carries a record and a token.
    async fn stamped(&self) -> Deployment {
        let d = self.deployment().await;
        assert!(
            record_of(d.metadata.annotations.as_ref()).is_some(),
            "{}: web has no record: {:?}",
            self.label,
            d.metadata.annotations
        );
        assert!(token(&d).is_some(), "{}: web has no roll token", self.label);
        d
    }

    /// Waits until web's rollout is over (its newest of `rs` ReplicaSets runs the one
    /// replica, the others none), so that its status stops changing.
    async fn rolled_out(&self, rs: usize) {
        wait_for(
            &format!("{}: web rolled out on {rs} ReplicaSet(s)", self.label),
            WAIT,
            || async {
                let d = self.deployment().await;
                let st = d.status.clone().unwrap_or_default();
                let current = st.observed_generation == d.metadata.generation
                    && st.replicas == Some(1)
                    && st.updated_replicas == Some(1)
                    && st.available_replicas == Some(1);
                let mut sets = replicasets(&self.client, &self.ns, "app=web").await;
                sets.sort_by_key(|r| {
                    r.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                        .and_then(|v| v.parse::<u64>().ok())
                });
                let old_empty = sets.len() == rs
                    && sets[..rs - 1]
                        .iter()
                        .all(|r| r.status.as_ref().is_some_and(|s| s.replicas == 0));
                (current && old_empty).then_some(())
            },
        )
        .await
    }

    /// `syncs` syncs done so far (none but the ones the test caused: no self-heal since),
    /// then over the settle period: Synced at `rev`, no sync started, the Deployment not
    /// written again (its resourceVersion), `rs` ReplicaSets.
    async fn stays(&mut self, step: &'static str, rev: &str, rs: usize, syncs: usize) {
        self.rolled_out(rs).await;
        let before = self.synced_at(rev).await;
        assert_eq!(
            before.history, syncs,
            "{}: syncs after {step} (a self-heal?): {}",
            self.label, before.app["status"]["history"]
        );
        let rv = self.deployment().await.metadata.resource_version;
        let mut statuses = BTreeSet::new();
        holds_for(SETTLE_ARGO, || {
            let s = seen(&self.name);
            statuses.insert(s.sync.clone());
            let label = self.label;
            let client = self.client.clone();
            let ns = self.ns.clone();
            let before = &before;
            let rv = rv.clone();
            async move {
                assert!(
                    s.sync == "Synced" && s.revision == rev,
                    "{label}: the application left Synced at {rev}: {}",
                    s.app["status"]
                );
                assert_eq!(
                    (s.started.as_str(), s.history),
                    (before.started.as_str(), before.history),
                    "{label}: a sync started (self-heal?): {}",
                    s.app["status"]["operationState"]
                );
                let d = kube::Api::<Deployment>::namespaced(client.clone(), &ns)
                    .get("web")
                    .await
                    .unwrap();
                assert_eq!(
                    d.metadata.resource_version, rv,
                    "{label}: web was written during the settle period"
                );
                assert_eq!(
                    replicasets(&client, &ns, "app=web").await.len(),
                    rs,
                    "{label}: ReplicaSets of web"
                );
            }
        })
        .await;
        self.statuses.extend(statuses);
        self.counts.push((step, rs));
    }

    /// How Argo CD wrote the Deployment in its last sync (`configured`, `replaced`,
    /// `serverside-applied`...).
    fn last_write(&self) -> String {
        let s = status_of(&self.name);
        s["status"]["operationState"]["syncResult"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == "Deployment")
            .and_then(|r| r["message"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

fn token(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(TOKEN))
        .cloned()
}

/// Steps (1) to (4) for one sync mode; a summary line for the report.
async fn run_mode(label: &'static str, options: &'static [&'static str]) -> String {
    let client = client().await;
    let ns = namespace(&format!("argocd-{label}"));
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    let repo = Repo::new();
    let mut m = Mode {
        label,
        options,
        sync_options: Vec::new(),
        name: ns.clone(),
        ns,
        repo,
        client,
        statuses: BTreeSet::new(),
        counts: Vec::new(),
    };
    let r1 = m.repo.commit(&gitops_app("1", "busybox:1"), "first");
    let (yaml, options) = application(&m.name, &m.repo.url(), &m.ns, m.options);
    m.sync_options = options;
    apply(NAMESPACE, &yaml);

    // (1) synced and healthy, stamped at admission, one ReplicaSet
    m.synced_at(&r1).await;
    wait_rs(&m.client, &m.ns, "app=web", 1).await;
    let first = m.stamped().await;
    let first_write = m.last_write();
    m.stays("first sync", &r1, 1, 1).await;

    // (2) the ConfigMap's data changes: Argo CD syncs it, hashroll rolls once, nothing more
    let r2 = m
        .repo
        .commit(&gitops_app("2", "busybox:1"), "the ConfigMap changes");
    m.synced_at(&r2).await;
    wait_rs(&m.client, &m.ns, "app=web", 2).await;
    let second = m.stamped().await;
    assert_ne!(
        token(&first),
        token(&second),
        "{label}: the roll changed the token"
    );
    assert!(
        managers(&second.metadata)
            .iter()
            .any(|(n, _)| n == "hashroll"),
        "{label}: the roll's patch names the field manager hashroll: {:?}",
        managers(&second.metadata)
    );
    m.stays("ConfigMap changed", &r2, 2, 2).await;

    // (3) the Deployment's own template changes: one rollout, record and token there
    let r3 = m
        .repo
        .commit(&gitops_app("2", "busybox:2"), "the image changes");
    m.synced_at(&r3).await;
    wait_rs(&m.client, &m.ns, "app=web", 3).await;
    // stamped again: a template change is admitted afresh, its token the digest of its
    // record whatever the request carries; it rolls nothing more than the image does
    let third = m.stamped().await;
    let image_token = if token(&second) == token(&third) {
        "kept"
    } else {
        "made anew"
    };
    let image_write = m.last_write();
    m.stays("image changed", &r3, 3, 3).await;

    // (4) a hard refresh compares afresh with Git: nothing to do
    kubectl(&[
        "annotate",
        "--overwrite",
        "application",
        &m.name,
        "-n",
        NAMESPACE,
        "argocd.argoproj.io/refresh=hard",
    ]);
    wait_for(&format!("{label}: the hard refresh handled"), WAIT, || {
        let a = status_of(&m.name);
        let pending = a["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_string();
        async move { (!pending).then_some(()) }
    })
    .await;
    m.stays("hard refresh", &r3, 3, 3).await;

    // ... and a sync that re-applies (or replaces) every object rolls nothing either
    let options: Vec<&str> = m.sync_options.iter().map(String::as_str).collect();
    sync_now(&m.name, &r3, &options).await;
    let resync_write = m.last_write();
    let last = m.stamped().await;
    assert_eq!(
        token(&third),
        token(&last),
        "{label}: the re-sync kept the token"
    );
    m.stays("re-sync", &r3, 3, 4).await;

    format!(
        "{label} {:?}: sync status over the settle periods {:?}; ReplicaSets after each step {:?}; \
         Argo CD wrote web: first {first_write:?}, image {image_write:?} (token {image_token}), \
         re-sync {resync_write:?}; managers {:?}",
        m.options,
        m.statuses,
        m.counts,
        managers(&last.metadata)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_syncs_and_hashroll_rolls_once_in_every_sync_mode() {
    let _one = one_at_a_time().await;
    argocd();
    let modes: [(&'static str, &'static [&'static str]); 3] = [
        ("apply", &[]),
        ("ssa", &["ServerSideApply=true"]),
        ("replace", &["Replace=true"]),
    ];
    let mut runs = tokio::task::JoinSet::new();
    for (label, options) in modes {
        runs.spawn(run_mode(label, options));
    }
    // the first mode to fail ends the test (its panic says which), the others stopped
    while let Some(run) = runs.join_next().await {
        match run {
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => {
                runs.abort_all();
                match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => panic!("a mode did not finish: {e}"),
                }
            }
        }
    }
}

/// Asks Argo CD for a sync of `name` at `rev` with `options`, and waits until it is done.
async fn sync_now(name: &str, rev: &str, options: &[&str]) -> Seen {
    let before = seen(name);
    let op = serde_json::json!({"operation": {
        "initiatedBy": {"username": "e2e"},
        "sync": {"revision": rev, "syncOptions": options},
    }});
    kubectl(&[
        "patch",
        "application",
        name,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        &op.to_string(),
    ]);
    wait_for(
        &format!("the sync of {name} with {options:?}"),
        WAIT,
        || {
            let s = seen(name);
            let done = s.history > before.history && s.phase == "Succeeded";
            async move { done.then_some(s) }
        },
    )
    .await
}

/// Takes the install test's Application and webhook configuration away when it ends, so
/// that nothing is left calling a hashroll that no longer runs.
struct Uninstall(&'static str);

impl Drop for Uninstall {
    fn drop(&mut self) {
        let p = plane();
        // the Application first (it has no finalizer: its objects stay), or self-heal
        // would put the webhook configuration back
        let _ = p.kubectl(&["delete", "application", self.0, "-n", NAMESPACE, "--wait"]);
        let _ = p.kubectl(&["delete", "mutatingwebhookconfiguration", self.0]);
    }
}

/// hashroll installed by Argo CD with the Application of the GitOps page
/// (examples/gitops/argocd-application.yaml: the chart from Git, rendered by Argo CD,
/// `ignoreDifferences` on the caBundle, `RespectIgnoreDifferences=true`), pointed at a
/// `file://` copy of the chart and with no replicas (hashroll runs here as the chart's
/// ServiceAccount, self-managed certificates). Once hashroll has set the caBundle: a hard
/// refresh finds nothing out of sync and self-heal does nothing; a forced sync keeps the
/// caBundle (the webhook configuration's generation does not move) and writes none of the
/// chart's objects; a sync with `Replace=true` takes the caBundle out even so, and hashroll
/// puts it back.
#[tokio::test(flavor = "multi_thread")]
async fn argocd_installs_hashroll_and_keeps_its_ca_bundle() {
    let _one = one_at_a_time().await;
    argocd();
    let example = std::fs::read_to_string(format!(
        "{}/examples/gitops/argocd-application.yaml",
        root()
    ))
    .unwrap();
    let mut app = items(&as_list(&example)).remove(0);
    let name = app["metadata"]["name"].as_str().unwrap().to_string();
    let ns = app["spec"]["destination"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let webhook = app["spec"]["ignoreDifferences"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let options: Vec<String> = app["spec"]["syncPolicy"]["syncOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    assert_eq!((name.as_str(), webhook.as_str()), ("hashroll", "hashroll"));
    let _gone = Uninstall("hashroll");

    let repo = Repo::new();
    let path = app["spec"]["source"]["path"].as_str().unwrap().to_string();
    let rev = repo.commit_dir(&Path::new(root()).join("charts/hashroll"), &path);
    app["spec"]["source"]["repoURL"] = repo.url().into();
    app["spec"]["source"]["helm"]["valuesObject"]["replicaCount"] = 0.into();
    apply(NAMESPACE, &app.to_string());
    let synced = |what: &'static str| {
        let name = name.clone();
        let rev = rev.clone();
        wait_for_owned(what, move || {
            let s = seen(&name);
            (s.sync == "Synced" && s.revision == rev && s.phase == "Succeeded").then_some(s)
        })
    };
    let first = synced("Argo CD installed hashroll's chart").await;
    assert_eq!(first.history, 1, "{}", first.app["status"]["history"]);

    // hashroll as the chart runs it, on the chart's ServiceAccount, keeping the caBundle
    let h = Hashroll::as_the_chart_runs_it(&ns, &webhook).await;
    let webhook_field = |path: &str| {
        kubectl(&[
            "get",
            "mutatingwebhookconfiguration",
            &webhook,
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    };
    let ca_bundle = || webhook_field(".webhooks[0].clientConfig.caBundle");
    let generation = || webhook_field(".metadata.generation");
    let bundle = wait_for("hashroll set the caBundle", WAIT, || {
        let b = ca_bundle();
        async move { (!b.trim().is_empty()).then_some(b) }
    })
    .await;
    let r#gen = generation();
    let objects = serde_json::json!({"items": first.app["status"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!({"kind": r["kind"], "metadata": {"name": r["name"], "namespace": r["namespace"]}}))
        .collect::<Vec<_>>()});
    let versions_before = versions(&objects, &ns);

    // a hard refresh compares the caBundle no more than anything else: still Synced, and
    // self-heal syncs nothing
    kubectl(&[
        "annotate",
        "--overwrite",
        "application",
        &name,
        "-n",
        NAMESPACE,
        "argocd.argoproj.io/refresh=hard",
    ]);
    wait_for("the hard refresh handled", WAIT, || {
        let a = status_of(&name);
        let pending = a["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_string();
        async move { (!pending).then_some(()) }
    })
    .await;
    holds_for(SETTLE_ARGO, || {
        let s = seen(&name);
        async move {
            assert_eq!(
                (s.sync.as_str(), s.history),
                ("Synced", 1),
                "after the hard refresh: {}",
                s.app["status"]
            );
        }
    })
    .await;
    assert_eq!(ca_bundle(), bundle);

    // a forced sync with the Application's options re-applies every object: the caBundle
    // stays, nothing of the chart's is written
    sync_now(&name, &rev, &options).await;
    assert_eq!(ca_bundle(), bundle, "the forced sync kept the caBundle");
    assert_eq!(generation(), r#gen, "the forced sync never took it out");
    assert_eq!(
        versions(&objects, &ns),
        versions_before,
        "the forced sync wrote none of the chart's objects"
    );

    // Replace=true sends every object as Git has it, RespectIgnoreDifferences=true or not:
    // the caBundle goes, and hashroll puts it back (why the page says not to replace
    // hashroll's own Application)
    let set_lines = || h.log().matches("set the webhook's caBundle").count();
    let sets = set_lines();
    let mut replace = options.clone();
    replace.push("Replace=true");
    sync_now(&name, &rev, &replace).await;
    wait_for("hashroll put the caBundle back", WAIT, || {
        let (b, g, n) = (ca_bundle(), generation(), set_lines());
        let back = b == bundle && g != r#gen && n > sets;
        async move { back.then_some(()) }
    })
    .await;
}

/// [`wait_for`] of a closure that owns what it reads.
async fn wait_for_owned<T>(what: &str, f: impl Fn() -> Option<T>) -> T {
    wait_for(what, WAIT, || {
        let v = f();
        async move { v }
    })
    .await
}
