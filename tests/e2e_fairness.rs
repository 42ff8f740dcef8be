//! Fair admission on the real plane: one namespace floods the webhook port with costly
//! reload-list reviews (64 regexes over its 2,500 sources) on many connections; another
//! namespace's plain reload-list reviews keep their time (p99 within twice their p99 alone,
//! or [`FLOOR`], whichever is larger, both measured here), its own costly reviews are served in
//! its turn (p99 within 1 s, or 4 times alone: first come first served they waited for the
//! whole flood), and every Deployment it creates through the apiserver meanwhile is stamped
//! at admission.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::*;

/// Connections the flood is sent on (as in the measure: 96 ms at p50 first come
/// first served in a release build).
const FLOOD_CONNECTIONS: usize = 32;
/// The floor of the bound on the calm namespace's p99: 10 ms is the target in a release
/// build (met in `make bench BENCH=fair`); this test runs the debug build, whose TLS alone is
/// several times slower, on a shared 2-core machine, where the flood's reviews on the nice-19
/// lane also hold for a while the locks the workers share (the regex memo) when the kernel
/// preempts them: single reviews of 20-70 ms were seen there. First come first served the
/// same p99 is seconds (each of the flood's reviews takes 150-250 ms in this build).
const FLOOR: Duration = Duration::from_millis(100);
/// Sources in the flooding namespace.
const FLOOD_SOURCES: usize = 2_500;
/// Plain reviews timed, alone and beside the flood, one every [`PACE`].
const SAMPLES: usize = 300;
const PACE: Duration = Duration::from_millis(20);

fn https() -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(plane().ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An AdmissionReview (CREATE of a Deployment) in `ns` whose workload names `reload`.
fn review(ns: &str, uid: &str, reload: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "tenant"},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": ns,
                    "annotations": {"configmap.reloader.stakater.com/reload": reload}},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x",
                        "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}},
            "oldObject": null, "dryRun": false
        }
    })
}

/// Sends `body` paced every [`PACE`], [`SAMPLES`] times; each answer must carry a patch.
/// The latencies, sorted.
async fn timed_reviews(http: &reqwest::Client, url: &str, body: &Value) -> Vec<Duration> {
    let mut tick = tokio::time::interval(PACE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        tick.tick().await;
        let t = Instant::now();
        let answer: Value = http
            .post(url)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        lat.push(t.elapsed());
        assert!(
            answer["response"]["patch"].is_string(),
            "a plain review not stamped: {answer}"
        );
    }
    lat.sort();
    lat
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The flood: `body` from [`FLOOD_CONNECTIONS`] connections, each sending again as soon as
/// it is answered, on a runtime of its own (so its client work does not delay the timed
/// client's tasks) until `stop`. (answered with a patch, answered refused, failed).
fn flood(
    url: String,
    body: Value,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize, usize)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let http = https();
            let mut tasks = Vec::new();
            for _ in 0..FLOOD_CONNECTIONS {
                let (http, url, body, stop) =
                    (http.clone(), url.clone(), body.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut stamped, mut refused, mut failed) = (0, 0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let answer = match http.post(&url).json(&body).send().await {
                            Ok(r) => r.json::<Value>().await.ok(),
                            Err(_) => None,
                        };
                        match answer {
                            Some(a) if a["response"]["patch"].is_string() => stamped += 1,
                            Some(a) if a["response"]["allowed"] == true => refused += 1,
                            _ => failed += 1,
                        }
                    }
                    (stamped, refused, failed)
                }));
            }
            let mut sum = (0, 0, 0);
            for t in tasks {
                let (s, r, f) = t.await.unwrap();
                sum = (sum.0 + s, sum.1 + r, sum.2 + f);
            }
            sum
        })
    })
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name,
            "annotations": {"configmap.reloader.stakater.com/reload": "cfg"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_flooding_costly_reviews_delays_no_other_namespace() {
    let client = client().await;
    let calm = namespace("calm");
    let loud = namespace("loud");
    let h = Hashroll::start(&[&format!("--namespaces={calm},{loud}")]).await;
    h.register_webhook_for(&format!("hashroll-{calm}"), Some(&calm));

    // the flooding namespace's sources, which each of its reviews' regexes is matched against
    let mut many = String::new();
    for i in 0..FLOOD_SOURCES {
        many.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}-{i}}}\ndata: {{k: '0'}}\n",
            "l".repeat(60)
        ));
    }
    kubectl_stdin(&["create", "-n", &loud, "-f", "-"], &many);
    apply(
        &calm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '0'}\n",
    );
    wait_webhook_active(&calm).await;
    wait_for("the sources in hashroll's cache", DEADLINE, || async {
        (metric(&h.metrics().await, "hashroll_sources_cached") > FLOOD_SOURCES as f64).then_some(())
    })
    .await;

    let url = h.url("/mutate");
    let http = https();
    let plain = review(&calm, "plain", "cfg");
    let regexes: Vec<String> = (0..64).map(|i| format!("l+-{i}.*")).collect();
    let costly = review(&loud, "costly", &regexes.join(","));
    // a costly review is answered, stamped, when nothing else waits
    let t = Instant::now();
    let answer: Value = http
        .post(&url)
        .json(&costly)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["response"]["patch"].is_string(), "{answer}");
    eprintln!("one costly review alone: {:?}", t.elapsed());

    // a reload-list regex: a costly review by its text (cheap here: one source), answered
    // on the slow lane in the calm namespace's turn
    let regex = review(&calm, "regex", "cf.*");
    // warm, then both alone
    timed_reviews(&http, &url, &plain).await;
    let (alone, regex_alone) = tokio::join!(
        timed_reviews(&http, &url, &plain),
        timed_reviews(&http, &url, &regex)
    );

    // beside the flood: the same plain reviews, and Deployments created through the
    // apiserver, each of which must come back with its record
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(url.clone(), costly, stop.clone());
    // the flood under way on all its connections (their handshakes done) before the timing
    wait_for(
        "the flood refused on every connection",
        DEADLINE,
        || async {
            let m = h.metrics().await;
            (metric(&m, "hashroll_webhook_requests_total{result=\"throttled\"}")
                >= 2.0 * FLOOD_CONNECTIONS as f64)
                .then_some(())
        },
    )
    .await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &calm);
    let creates = {
        let deps = deps.clone();
        tokio::spawn(async move {
            let mut unstamped = Vec::new();
            let mut took = Vec::new();
            for i in 0..20 {
                let name = format!("app-{i}");
                let t = Instant::now();
                let made = deps
                    .create(&PostParams::default(), &deployment(&name))
                    .await
                    .unwrap();
                took.push(t.elapsed());
                if record_of(made.metadata.annotations.as_ref()).is_none() {
                    unstamped.push(name);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (unstamped, took)
        })
    };
    let (under, regex_under) = tokio::join!(
        timed_reviews(&http, &url, &plain),
        timed_reviews(&http, &url, &regex)
    );
    let (unstamped, took) = creates.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (stamped, refused, failed) = flooding.join().unwrap();

    let (p50_alone, p99_alone) = (pct(&alone, 0.5), pct(&alone, 0.99));
    let (p50_under, p99_under) = (pct(&under, 0.5), pct(&under, 0.99));
    let bound = (p99_alone * 2).max(FLOOR);
    let (regex_p99_alone, regex_p99_under) = (pct(&regex_alone, 0.99), pct(&regex_under, 0.99));
    // first come first served, each waited for the flood's queue: seconds
    let regex_bound = (regex_p99_alone * 4).max(Duration::from_secs(1));
    eprintln!(
        "reload-list regex reviews (slow lane): alone p50 {:?} p99 {regex_p99_alone:?}; beside \
         the flood p50 {:?} p99 {regex_p99_under:?} (bound {regex_bound:?})",
        pct(&regex_alone, 0.5),
        pct(&regex_under, 0.5)
    );
    eprintln!(
        "plain reload-list reviews: alone p50 {p50_alone:?} p99 {p99_alone:?}; beside the flood \
         p50 {p50_under:?} p99 {p99_under:?} (bound {bound:?}); flood: {stamped} stamped, \
         {refused} refused, {failed} failed; creates took up to {:?}",
        took.iter().max()
    );
    // the flood was one: its reviews reached the lane and filled its namespace's queue
    assert!(stamped > 0, "no costly review of the flood was answered");
    assert!(
        refused > 0,
        "the flood never went over its namespace's bound"
    );
    assert!(
        metric(
            &h.metrics().await,
            "hashroll_webhook_requests_total{result=\"throttled\"}"
        ) > 0.0
    );
    assert!(
        p99_under <= bound,
        "the calm namespace's p99 beside the flood {p99_under:?} is over {bound:?} (alone \
         {p99_alone:?})"
    );
    assert!(
        regex_p99_under <= regex_bound,
        "the calm namespace's costly reviews waited for the flood: p99 {regex_p99_under:?}"
    );
    assert!(
        unstamped.is_empty(),
        "created without a record while the other namespace flooded: {unstamped:?}"
    );
    let exited = h.exited();
    assert!(exited.is_none(), "hashroll exited: {exited:?}");
    assert!(!h.log().contains("panicked"), "a panic in the log");
}
