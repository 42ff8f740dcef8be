//! Alerts on reload, with Reloader's settings (`ALERT_ON_RELOAD`, `ALERT_SINK`,
//! `ALERT_WEBHOOK_URL`, `ALERT_WEBHOOK_PROXY`, `ALERT_ADDITIONAL_INFO`), and Reloader's
//! `--webhook-url` (a POST instead of a roll).
//!
//! One message per rollout, in the sink's own payload (`payload`, pure and unit-tested).
//! Sending is off the roll path: the writer hands a [`Notice`] to a bounded queue with
//! `try_send` and goes on; one task sends them with a per-request timeout and a few
//! retries. A full queue or a message that still fails is dropped and counted
//! (`hashroll_alerts_dropped_total{reason}`), never waited for. The URL is a secret: it is
//! never logged (errors are logged without it) and `Debug` hides it.
//!
//! HTTP through `reqwest` (rustls, the system's roots, an optional proxy): a solved problem.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::services::metrics::AlertCounters;

/// Where messages go, in whose format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    Slack,
    Teams,
    GoogleChat,
    /// anything else: a plain JSON body
    Raw,
}

impl Sink {
    /// Reloader's `ALERT_SINK` words; anything else is the plain JSON webhook.
    pub(crate) fn parse(s: &str) -> Sink {
        match s.trim().to_ascii_lowercase().as_str() {
            "slack" => Sink::Slack,
            "teams" => Sink::Teams,
            "gchat" => Sink::GoogleChat,
            _ => Sink::Raw,
        }
    }
}

/// One rollout, as a message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// the sources whose change rolled it (`configmap/NAME`, `secret/NAME`)
    pub(crate) sources: Vec<String>,
    /// false: posted instead of rolled (`--webhook-url`)
    pub(crate) rolled: bool,
    /// not rolled: held after a failed rollout of an earlier wave (what holds it)
    pub(crate) held: Option<String>,
}

impl Notice {
    fn text(&self, info: &str) -> String {
        if let Some(why) = &self.held {
            let mut t = format!(
                "hashroll holds the roll of {} {}/{}: {why}",
                self.kind, self.namespace, self.name
            );
            if !info.is_empty() {
                t.push_str(&format!(" ({info})"));
            }
            return t;
        }
        let verb = if self.rolled {
            "rolled"
        } else {
            "would roll (posted instead)"
        };
        let mut t = format!(
            "hashroll {verb} {} {}/{}: {} changed",
            self.kind,
            self.namespace,
            self.name,
            self.sources.join(", ")
        );
        if !info.is_empty() {
            t.push_str(&format!(" ({info})"));
        }
        t
    }
}

/// The body posted to `sink` for `n`, with the cluster's `info` (`ALERT_ADDITIONAL_INFO`).
pub(crate) fn payload(sink: Sink, n: &Notice, info: &str) -> Value {
    let text = n.text(info);
    match sink {
        // incoming webhooks: Slack and Google Chat take `text`
        Sink::Slack | Sink::GoogleChat => json!({ "text": text }),
        Sink::Teams => json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "summary": format!("hashroll: {} {}/{}", n.kind, n.namespace, n.name),
            "themeColor": "0076D7",
            "title": format!("{} {}/{}", n.kind, n.namespace, n.name),
            "text": text,
        }),
        Sink::Raw => json!({
            "kind": n.kind,
            "namespace": n.namespace,
            "name": n.name,
            "sources": n.sources,
            "rolled": n.rolled,
            "additionalInfo": info,
            "message": text,
        }),
    }
}

/// Where and how to send.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) sink: Sink,
    /// secret: never logged
    pub(crate) url: String,
    pub(crate) proxy: Option<String>,
    pub(crate) additional_info: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("sink", &self.sink)
            .field("url", &"<hidden>")
            .field("proxy", &self.proxy.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// How many messages wait at most; beyond, a message is dropped and counted.
pub(crate) const QUEUE: usize = 256;
/// Each POST's deadline, and how many times one is tried.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const ATTEMPTS: u32 = 3;

/// The roll path's handle: hands notices to the sending task.
#[derive(Clone)]
pub(crate) struct Alerts {
    tx: mpsc::Sender<Notice>,
    counters: AlertCounters,
    what: &'static str,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("what", &self.what).finish()
    }
}

/// Why a sender cannot be made (a bad URL or proxy): exit code 2 at start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AlertConfigError(String);

impl Alerts {
    /// Starts the sending task (on the current runtime). `what` names it in logs.
    pub(crate) fn start(
        target: Target,
        counters: AlertCounters,
        what: &'static str,
    ) -> Result<Alerts, AlertConfigError> {
        let url = reqwest::Url::parse(&target.url)
            .map_err(|e| AlertConfigError(format!("{what}: the URL does not parse: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AlertConfigError(format!("{what}: the URL is not http(s)")));
        }
        let mut b = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("hashroll/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &target.proxy {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|_| AlertConfigError(format!("{what}: the proxy URL does not parse")))?;
            b = b.proxy(proxy);
        }
        let client = b
            .build()
            .map_err(|e| AlertConfigError(format!("{what}: {e}")))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        // made at 0, so a rate() over them is never over an absent series
        for r in ["queue_full", "failed"] {
            counters
                .dropped
                .get_or_create(&crate::services::metrics::ByReason { reason: r })
                .inc_by(0);
        }
        tokio::spawn(send_all(client, url, target, rx, counters.clone(), what));
        Ok(Alerts { tx, counters, what })
    }

    /// Queues one message; never waits. A full queue drops it (counted, logged).
    pub(crate) fn notify(&self, n: Notice) {
        if let Err(e) = self.tx.try_send(n) {
            self.counters.drop_one("queue_full");
            let n = match e {
                mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
            };
            tracing::warn!(sender = self.what, workload = %format!("{}/{}/{}", n.kind, n.namespace, n.name), "alert queue full; message dropped");
        }
    }
}

async fn send_all(
    client: reqwest::Client,
    url: reqwest::Url,
    target: Target,
    mut rx: mpsc::Receiver<Notice>,
    counters: AlertCounters,
    what: &'static str,
) {
    while let Some(n) = rx.recv().await {
        let body = payload(target.sink, &n, &target.additional_info);
        let mut last = String::new();
        let mut sent = false;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match client.post(url.clone()).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    sent = true;
                    break;
                }
                Ok(r) => last = format!("answered {}", r.status()),
                // without the URL: reqwest puts it in its errors
                Err(e) => last = describe(&e),
            }
        }
        let workload = format!("{}/{}/{}", n.kind, n.namespace, n.name);
        if sent {
            counters.sent.inc();
            tracing::debug!(sender = what, workload = %workload, "alert sent");
        } else {
            counters.drop_one("failed");
            tracing::warn!(sender = what, workload = %workload, error = %last, attempts = ATTEMPTS, "alert not delivered; dropped");
        }
    }
}

/// A reqwest error in words, without the URL it carries.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_request() {
        "request failed".into()
    } else {
        "failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            sources: vec!["configmap/cfg".into(), "secret/db".into()],
            rolled: true,
            held: None,
        }
    }

    #[test]
    fn each_sink_has_its_own_payload() {
        let n = notice();
        let slack = payload(Sink::parse("slack"), &n, "prod-eu");
        assert_eq!(
            slack,
            json!({"text": "hashroll rolled Deployment shop/web: configmap/cfg, secret/db changed (prod-eu)"})
        );
        assert_eq!(payload(Sink::parse("GChat"), &n, "prod-eu"), slack);
        let teams = payload(Sink::parse("teams"), &n, "");
        assert_eq!(teams["@type"], "MessageCard");
        assert_eq!(teams["title"], "Deployment shop/web");
        assert!(!teams["text"].as_str().unwrap().contains('('));
        let raw = payload(Sink::parse("webhook"), &n, "prod-eu");
        assert_eq!(raw["sources"], json!(["configmap/cfg", "secret/db"]));
        assert_eq!(raw["additionalInfo"], "prod-eu");
        assert_eq!(raw["rolled"], true);
        let posted = payload(Sink::Raw, &Notice { rolled: false, ..n }, "");
        assert!(
            posted["message"]
                .as_str()
                .unwrap()
                .contains("posted instead")
        );
    }

    #[test]
    fn the_url_is_not_in_debug() {
        let t = Target {
            sink: Sink::Slack,
            url: "https://hooks.example/T0/SECRET".into(),
            proxy: Some("http://user:pw@proxy:3128".into()),
            additional_info: String::new(),
        };
        let d = format!("{t:?}");
        assert!(!d.contains("SECRET") && !d.contains("pw"), "{d}");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let counters = AlertCounters::default();
        // a port nothing answers on: every message waits in the queue or fails
        let a = Alerts::start(
            Target {
                sink: Sink::Raw,
                url: "http://127.0.0.1:9/".into(),
                proxy: None,
                additional_info: String::new(),
            },
            counters.clone(),
            "test",
        )
        .unwrap();
        let t0 = std::time::Instant::now();
        for _ in 0..QUEUE + 50 {
            a.notify(notice());
        }
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "notify never waits"
        );
        let full = counters
            .dropped
            .get_or_create(&crate::services::metrics::ByReason {
                reason: "queue_full",
            })
            .get();
        assert!(full >= 49, "{full}");
    }

    #[test]
    fn a_bad_url_is_a_start_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        for url in ["not a url", "ftp://x/"] {
            let e = Alerts::start(
                Target {
                    sink: Sink::Slack,
                    url: url.into(),
                    proxy: None,
                    additional_info: String::new(),
                },
                AlertCounters::default(),
                "test",
            )
            .expect_err("refused");
            assert!(e.to_string().starts_with("test: "), "{e}");
        }
    }
}
