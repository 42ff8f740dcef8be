//! The admission client of the webhook benches: TLS connections, review bodies, closed
//! and open load loops, percentiles.

use super::*;

pub(crate) fn admission_body() -> Bytes {
    review_body("ns1", json!({"reloader.stakater.com/auto": "true"}), 0)
}

/// An AdmissionReview (CREATE of a Deployment) in `ns` with these workload annotations;
/// `pad` bytes of filler in a container env value make it as large as asked.
pub(crate) fn review_body(ns: &str, annotations: serde_json::Value, pad: usize) -> Bytes {
    let mut env = vec![
        json!({"name": "COUNTRY", "valueFrom": {"configMapKeyRef": {"name": "test-config-env", "key": "COUNTRY"}}}),
        json!({"name": "CITY", "valueFrom": {"configMapKeyRef": {"name": "test-config-env", "key": "CITY"}}}),
    ];
    if pad > 0 {
        env.push(json!({"name": "PAD", "value": "p".repeat(pad)}));
    }
    let deploy: serde_json::Value = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": ns, "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": "nginx"}}, "replicas": 1, "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx",
                "env": env,
                "volumeMounts": [{"name": "foo", "mountPath": "/etc/foo", "readOnly": true}]}],
                "volumes": [{"name": "foo", "configMap": {"name": "test-config-file"}}]}}}
    });
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "nginx", "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
            "object": deploy, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"}
        }
    });
    Bytes::from(serde_json::to_vec(&review).expect("json"))
}

pub(crate) async fn connect(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, AnyErr> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

pub(crate) async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: &Bytes,
) -> Result<Bytes, AnyErr> {
    sender.ready().await?;
    let req = hyper::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(format!("{path}: HTTP {}", resp.status()).into());
    }
    Ok(resp.into_body().collect().await?.to_bytes())
}

pub(crate) struct Sample {
    pub(crate) requests: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub(crate) fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    }
}

pub(crate) async fn closed_loop(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    body: Bytes,
    conns: usize,
    dur: Duration,
) -> Result<Sample, AnyErr> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + dur;
    for _ in 0..conns {
        let mut s = connect(addr, tls.clone()).await?;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < end {
                let t = Instant::now();
                if call(&mut s, path, &body).await.is_err() {
                    break;
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    Ok(Sample {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

pub(crate) async fn open_loop(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    body: Bytes,
    rate: u32,
    dur: Duration,
) -> Result<Sample, AnyErr> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut s = connect(addr, tls.clone()).await?;
        let rx = rx.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let intended = { rx.lock().await.recv().await };
                let Some(intended) = intended else { break };
                if call(&mut s, path, &body).await.is_err() {
                    break;
                }
                // from the moment it was due: queueing counts (no coordinated omission)
                lat.push(intended.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let total = (rate as f64 * dur.as_secs_f64()) as u64;
    let step = Duration::from_secs_f64(1.0 / rate as f64);
    // the schedule runs on a thread of its own with std's fine-grained sleep: tokio's timer
    // has millisecond ticks, which would add up to 1 ms of its own to every latency
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + step * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(due).is_err() {
                break;
            }
        }
    });
    tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| "pacer thread panicked")?;
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    Ok(Sample {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The bench's webhook server in a process of its own (so its RSS is its own), with a
/// client TLS configuration that trusts it.
pub(crate) async fn start_server()
-> Result<(Process, std::net::SocketAddr, Arc<rustls::ClientConfig>), AnyErr> {
    let dir = tempfile::tempdir()?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::default();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = p.signed_by(&key, &issuer)?;
    std::fs::write(dir.path().join("tls.crt"), cert.pem())?;
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let server = Process::new(
        Command::new(std::env::current_exe()?)
            .args([
                "serve",
                &dir.path().join("tls.crt").display().to_string(),
                &dir.path().join("tls.key").display().to_string(),
                &addr.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.take_stdout().ok_or("no stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err("the bench server did not start".into());
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    Ok((server, addr, tls))
}
