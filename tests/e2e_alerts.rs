//! Alerts on reload with Reloader's settings (ALERT_* environment), against a local HTTP
//! receiver per sink: one message per rollout in the sink's payload shape; a receiver that
//! hangs or answers 500 holds up no rollout and its drop is counted; the URL is never
//! logged. And Reloader's `--webhook-url`: the change is posted once, nothing rolls.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use support::*;

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Fail,
    Hang,
}

/// A local receiver: keeps each JSON body posted to it.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = Router::new()
            .route(
                "/{*path}",
                post(
                    |State((got, answer)): State<(Arc<Mutex<Vec<Value>>>, Answer)>,
                     body: String| async move {
                        got.lock()
                            .unwrap()
                            .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                        match answer {
                            Answer::Ok => StatusCode::OK,
                            Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                            Answer::Hang => {
                                std::future::pending::<()>().await;
                                StatusCode::OK
                            }
                        }
                    },
                ),
            )
            .with_state((got.clone(), answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, got }
    }

    /// A URL whose path is a secret, as a Slack hook's is.
    fn url(&self) -> String {
        format!("http://{}/services/T0/SECRET-HOOK-TOKEN", self.addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

/// hashroll for `ns` with `env`, `cfg` and an auto Deployment `app` applied and stamped.
async fn with_env(ns: &str, env: &[(&str, String)], flags: &[&str]) -> Hashroll {
    let client = client().await;
    let mut h = Hashroll::for_namespace(ns, flags).await;
    h.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    h.restart().await;
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &cfg_and_app("1", &["app"]));
    wait_rs(&client, ns, "app=app", 1).await;
    h
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn one_message_per_rollout(sink: &str) -> Value {
    let client = client().await;
    let r = Receiver::start(Answer::Ok).await;
    let ns = namespace(&format!("alert-{sink}"));
    let h = with_env(
        &ns,
        &[
            ("ALERT_ON_RELOAD", "true".into()),
            ("ALERT_SINK", sink.into()),
            ("ALERT_WEBHOOK_URL", r.url()),
            ("ALERT_ADDITIONAL_INFO", "cluster eu-1".into()),
        ],
        &[],
    )
    .await;
    // a stamp at admission is no rollout: no message
    assert!(r.bodies().is_empty(), "{:?}", r.bodies());
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=app", 2).await;
    let got = wait_for("the alert", DEADLINE, || async {
        let b = r.bodies();
        (!b.is_empty()).then_some(b)
    })
    .await;
    // one per rollout: a no-op edit adds none
    kubectl(&["label", "configmap", "cfg", "-n", &ns, "touched=yes"]);
    assert_rs_count_stays(&client, &ns, "app=app", 2, SETTLE).await;
    assert_eq!(r.bodies().len(), 1, "{got:?}");
    let m = h.metrics().await;
    assert_eq!(metric(&m, "hashroll_alerts_sent_total"), 1.0, "{m}");
    let log = h.log();
    assert!(
        !log.contains("SECRET-HOOK-TOKEN"),
        "the URL is logged:\n{log}"
    );
    got[0].clone()
}

fn text_of(v: &Value) -> String {
    v["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn slack_gets_one_text_message_per_rollout() {
    let v = one_message_per_rollout("slack").await;
    let t = text_of(&v);
    assert!(
        t.contains("Deployment") && t.contains("/app") && t.contains("configmap/cfg"),
        "{v}"
    );
    assert!(t.contains("cluster eu-1"), "{v}");
}

#[tokio::test]
async fn teams_gets_a_message_card() {
    let v = one_message_per_rollout("teams").await;
    assert_eq!(v["@type"], "MessageCard", "{v}");
    assert!(v["title"].as_str().unwrap().ends_with("/app"), "{v}");
    assert!(text_of(&v).contains("configmap/cfg"), "{v}");
}

#[tokio::test]
async fn google_chat_gets_a_text_message() {
    let v = one_message_per_rollout("gchat").await;
    assert!(text_of(&v).contains("configmap/cfg"), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1, "only text: {v}");
}

#[tokio::test]
async fn any_other_sink_gets_plain_json() {
    let v = one_message_per_rollout("webhook").await;
    assert_eq!(v["kind"], "Deployment", "{v}");
    assert_eq!(v["name"], "app", "{v}");
    assert_eq!(v["sources"], serde_json::json!(["configmap/cfg"]), "{v}");
    assert_eq!(v["rolled"], true);
    assert_eq!(v["additionalInfo"], "cluster eu-1");
}

async fn a_bad_sink_delays_nothing(answer: Answer, prefix: &str) {
    let client = client().await;
    let r = Receiver::start(answer).await;
    let ns = namespace(prefix);
    let h = with_env(
        &ns,
        &[
            ("ALERT_ON_RELOAD", "true".into()),
            ("ALERT_SINK", "slack".into()),
            ("ALERT_WEBHOOK_URL", r.url()),
        ],
        &["--coalesce-window=0"],
    )
    .await;
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=app", 2).await;
    set_cfg(&ns, "3");
    wait_rs(&client, &ns, "app=app", 3).await;
    if answer == Answer::Hang {
        // both rolls landed while the first message still waits on the receiver (it gives
        // up only after 3 tries of 5 s): the roll path never waited for the sink
        let m = h.metrics().await;
        assert_eq!(metric(&m, "hashroll_alerts_sent_total"), 0.0, "{m}");
        assert_eq!(
            metric(&m, "hashroll_alerts_dropped_total{reason=\"failed\"}"),
            0.0,
            "{m}"
        );
    }
    // the message that cannot be delivered is dropped, and counted
    wait_for("the drop counted", DEADLINE, || async {
        let m = h.metrics().await;
        (metric(&m, "hashroll_alerts_dropped_total{reason=\"failed\"}") >= 1.0).then_some(())
    })
    .await;
    assert!(!r.bodies().is_empty(), "the receiver was tried");
    assert!(!h.log().contains("SECRET-HOOK-TOKEN"), "{}", h.log());
}

#[tokio::test]
async fn a_hanging_sink_delays_no_rollout_and_its_drop_is_counted() {
    a_bad_sink_delays_nothing(Answer::Hang, "alert-hang").await;
}

#[tokio::test]
async fn a_failing_sink_delays_no_rollout_and_its_drop_is_counted() {
    a_bad_sink_delays_nothing(Answer::Fail, "alert-500").await;
}

#[tokio::test]
async fn webhook_url_posts_the_change_once_instead_of_rolling() {
    let client = client().await;
    let r = Receiver::start(Answer::Ok).await;
    let ns = namespace("posturl");
    let url = format!("--webhook-url={}", r.url());
    let mut h = with_env(&ns, &[], &[&url]).await;
    let record = || deployment_record(&ns, "app");
    let before = record();
    set_cfg(&ns, "2");
    let got = wait_for("the POST", DEADLINE, || async {
        let b = r.bodies();
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(got[0]["rolled"], false, "{got:?}");
    assert_eq!(got[0]["sources"], serde_json::json!(["configmap/cfg"]));
    // nothing rolled; the record says the change was handled, so it is posted once
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    assert_ne!(record(), before, "the record is written");
    h.restart().await;
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
    assert_eq!(r.bodies().len(), 1, "posted once: {:?}", r.bodies());
}
