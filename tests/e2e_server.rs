//! The webhook server against bad input and certificate rotation, running as the real
//! binary against the real plane.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::tls::{first_der, served_cert};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn https(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn review(object: Value, kind: &str, group: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-uid",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "name": "web", "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": object, "dryRun": false
        }
    })
}

/// Waits until the process ends on its own; its exit status.
async fn exited(h: &Hashroll) -> std::process::ExitStatus {
    wait_for("hashroll to exit", DEADLINE, || async { h.exited() }).await
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "envFrom": [{"configMapRef": {"name": "nope"}}]}]}}}})
}

async fn assert_serving(http: &reqwest::Client, h: &Hashroll) {
    let r = http
        .post(h.url("/mutate"))
        .json(&review(deployment(), "Deployment", "apps"))
        .send()
        .await
        .expect("the server still answers");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], json!(true));
    assert!(
        body["response"]["patch"].is_string(),
        "a stamped answer: {body}"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_answers_and_the_server_keeps_serving() {
    let h = Hashroll::start(&[]).await;
    let http = https(plane().ca_pem());
    assert_serving(&http, &h).await;

    // invalid JSON
    let r = http
        .post(h.url("/mutate"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not an AdmissionReview"));
    // wrong apiVersion
    let mut v = review(deployment(), "Deployment", "apps");
    v["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = http.post(h.url("/mutate")).json(&v).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("admission.k8s.io/v1"));
    // unknown kind: allowed, no patch, a warning
    let r = http
        .post(h.url("/mutate"))
        .json(&review(json!({"metadata": {"name": "p"}}), "Pod", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], json!(true));
    assert!(body["response"].get("patch").is_none());
    assert!(
        body["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not a kind hashroll handles")
    );
    // missing object: allowed with a warning
    let r = http
        .post(h.url("/mutate"))
        .json(&review(Value::Null, "Deployment", "apps"))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], json!(true));
    assert!(
        body["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no object")
    );
    // a body above the limit is refused cleanly
    let huge = vec![b' '; 5 * 1024 * 1024];
    let r = http.post(h.url("/mutate")).body(huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // ...on a connection the server then closes, and says so
    assert_eq!(
        r.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    assert_serving(&http, &h).await;

    // plain HTTP on the TLS port
    let mut s = TcpStream::connect(("127.0.0.1", h.webhook_port))
        .await
        .unwrap();
    s.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("HTTPS"));

    // slow clients: one that connects and says nothing, one that starts a handshake and
    // stalls; others are served meanwhile
    let _silent = TcpStream::connect(("127.0.0.1", h.webhook_port))
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(("127.0.0.1", h.webhook_port))
        .await
        .unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
    assert_serving(&http, &h).await;
    // the stalled handshake is dropped by the server's deadline
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(30), stalled.read(&mut b))
        .await
        .expect("the server closes a stalled handshake");
    assert!(matches!(n, Ok(0) | Err(_)));

    assert_serving(&http, &h).await;
    assert!(h.exited().is_none(), "still running");
    let log = h.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn rotated_certificate_files_are_served_to_new_connections() {
    let h = Hashroll::start(&[]).await;
    let first = std::fs::read_to_string(h.dir.join("tls.crt")).unwrap();
    assert_eq!(
        served_cert(h.webhook_port, plane().ca_pem().as_bytes()).await,
        Some(first_der(first.as_bytes()))
    );

    // swap both files the way cert-manager does: new content, renamed into place
    let (cert, key) = plane()
        .issue_serving_cert(&["127.0.0.1", "hashroll.hashroll.svc"])
        .unwrap();
    std::fs::write(h.dir.join("tls.key.new"), &key).unwrap();
    std::fs::write(h.dir.join("tls.crt.new"), &cert).unwrap();
    std::fs::rename(h.dir.join("tls.key.new"), h.dir.join("tls.key")).unwrap();
    std::fs::rename(h.dir.join("tls.crt.new"), h.dir.join("tls.crt")).unwrap();
    let want = Some(first_der(cert.as_bytes()));
    assert_ne!(want, Some(first_der(first.as_bytes())));
    wait_for(
        "a new connection to see the new certificate",
        Duration::from_secs(30),
        || async {
            (served_cert(h.webhook_port, plane().ca_pem().as_bytes()).await == want).then_some(())
        },
    )
    .await;
    assert!(h.log().contains("serving certificate reloaded"));
}

#[tokio::test]
async fn sigterm_answers_the_admission_in_flight_then_stops() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = Hashroll::start(&[]).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut plane().ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(("127.0.0.1", h.webhook_port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let body = serde_json::to_vec(&review(deployment(), "Deployment", "apps")).unwrap();
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // half the request, then SIGTERM, then the rest: the admission in flight is answered
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    s.flush().await.unwrap();
    // the headers are read: the request is in flight (an idle connection would close at once)
    wait_for("the admission to be in flight", DEADLINE, || async {
        h.metrics()
            .await
            .contains("hashroll_webhook_requests_in_flight 1")
            .then_some(())
    })
    .await;
    let pid = h.process.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // the rest only once the stop has begun
    wait_for("hashroll to take the SIGTERM", DEADLINE, || async {
        h.log().contains("terminated; stopping").then_some(())
    })
    .await;
    s.write_all(&body[body.len() / 2..]).await.unwrap();
    s.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"allowed\":true"), "{text}");
    // then it stops, on its own, with success
    let status = exited(&h).await;
    assert!(status.success(), "{status:?}: {}", h.log());
    assert!(
        h.log().contains("every admission in flight was answered"),
        "{}",
        h.log()
    );
}

#[tokio::test]
async fn sigterm_keeps_answering_while_not_ready_for_the_shutdown_delay() {
    const DELAY: Duration = Duration::from_secs(10);
    let h = Hashroll::start(&["--shutdown-delay=10s"]).await;
    assert_serving(&https(plane().ca_pem()), &h).await;
    let pid = h.process.id().unwrap();
    let signalled = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // not ready at once (the Service's endpoints drop it) ...
    let port = h.metrics_port;
    wait_for("/readyz to say not ready", DEADLINE, || async move {
        let ready = tokio::task::spawn_blocking(move || hashroll_harness::launch::readyz(port))
            .await
            .unwrap_or(true);
        (!ready).then_some(())
    })
    .await;
    // ... and still answering, on a new connection, while the delay runs
    assert!(
        signalled.elapsed() < DELAY,
        "the machine was too slow to check"
    );
    assert_serving(&https(plane().ca_pem()), &h).await;
    let status = exited(&h).await;
    assert!(status.success(), "{status:?}: {}", h.log());
    assert!(
        signalled.elapsed() >= DELAY,
        "closed {:?} after SIGTERM, before the delay",
        signalled.elapsed()
    );
}
