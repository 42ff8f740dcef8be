//! `hashroll run`: builds the parts from the settings and starts them. Each watch is one
//! line; the logic lives in the modules this wires together.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::Error;
use crate::cache::SourceCache;
use crate::cache::filter::NamespaceFilter;
use crate::cmd::config::{Certs, SelfManaged, Settings};
use crate::core::refs::SourceKind;
use crate::services::state::State;
use crate::services::{health, key, lease, metrics, namespaces};
use crate::webhook::selfcert;
use crate::webhook::tls::CertReloader;
use crate::{watcher, webhook};

/// How long a stop waits for the writes under way.
const WRITE_GRACE: Duration = Duration::from_secs(5);

/// The client from the kubeconfig or the pod's service account, counting each request it
/// sends by verb (`hashroll_api_requests_total`).
async fn counted_client(
    requests: prometheus_client::metrics::family::Family<
        crate::services::metrics::ByVerb,
        prometheus_client::metrics::counter::Counter,
    >,
) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let count = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let verb = metrics::api_verb(req.method(), req.uri());
        requests.get_or_create(&metrics::ByVerb { verb }).inc();
        req
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

/// Runs until SIGTERM or Ctrl-C, or until a server fails.
pub(crate) async fn run(settings: Settings) -> Result<(), Error> {
    let metrics = metrics::Metrics::new();
    metrics.set_mode(settings.scope.watch.as_str(), settings.webhook.serve);
    // Reloader's switch for its per-namespace counter
    metrics.count_by_namespace(
        std::env::var("METRICS_COUNT_BY_NAMESPACE").as_deref() == Ok("enabled"),
    );
    let client = counted_client(metrics.api_requests.clone())
        .await
        .map_err(Error::Client)?;
    let owner = own_deployment(&client, &settings).await;
    crate::k8s::watch::probe_streaming(&client, settings.scope.watch.probe()).await;
    let keys = live_keys(&client, &settings, owner.as_ref()).await?;
    let (cache, selected) = source_cache(&settings);
    let lease_cfg = lease_config(&settings, owner.as_ref());
    let writer = match &lease_cfg {
        Some(cfg) => lease::start(client.clone(), cfg.clone()),
        None => lease::Leadership::always(),
    };
    let state = Arc::new(State {
        policy: settings.policy.clone(),
        names: settings.names.clone(),
        roll: settings.roll,
        keys,
        cache,
        metrics,
        watcher_ready: AtomicBool::new(false),
        writer,
        scope: settings.scope.watch.clone(),
    });
    let live = health::Liveness::default();
    start_watches(&state, &client, &settings, selected, &live)?;

    let web = &settings.webhook;
    let webhook_l = match web.serve {
        true => Some(webhook_listener(&client, &settings, &live, owner.as_ref()).await?),
        false => None,
    };
    let metrics_l = bind(web.metrics_addr).await?;
    start_side_servers(&state, &settings, &live).await?;
    say_started(&settings, webhook_l.as_ref().map(|(l, _)| l), &metrics_l);
    let router = webhook::router_with(state.clone(), web.max_body_bytes, web.lane);
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let release = settings.lease.as_ref().is_some_and(|l| l.release_on_cancel);
    let hand_over = hand_over(
        state.clone(),
        client.clone(),
        lease_cfg.filter(|_| release),
        stopping_rx,
    );
    let stop = stop_signal(state.clone(), stopping_tx, web.shutdown_delay)?;
    let metrics_server = health::serve(metrics_l, state.clone(), live.clone());
    match webhook_l {
        Some((l, tls)) => tokio::select! {
            _ = webhook::serve_tls_until(l, tls, router, stop) => {}
            r = metrics_server => r.map_err(|e| Error::Serve("metrics server", e))?,
        },
        None => tokio::select! {
            _ = stop => {}
            r = metrics_server => r.map_err(|e| Error::Serve("metrics server", e))?,
        },
    }
    if tokio::time::timeout(WRITE_GRACE * 2, hand_over)
        .await
        .is_err()
    {
        tracing::warn!("the hand-over (last write, Lease release) did not end in time");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Listen(addr, e))
}

/// The HMAC keys: from their files, or from (or into) the key Secret.
async fn live_keys(
    client: &kube::Client,
    settings: &Settings,
    owner: Option<&OwnerReference>,
) -> Result<key::LiveKeys, Error> {
    Ok(match settings.keys.files.clone() {
        Some((ring, current, previous)) => {
            key::LiveKeys::new(ring, key::KeySource::Files { current, previous })
        }
        None => {
            let secret = &settings.keys.secret;
            let ring = key::from_secret(client, &settings.namespace, secret, owner).await?;
            key::LiveKeys::new(
                ring,
                key::KeySource::Secret {
                    client: client.clone(),
                    namespace: settings.namespace.clone(),
                    name: secret.clone(),
                },
            )
        }
    })
}

/// The digests' cache with its namespace filter, and the selected set that
/// `--namespace-selector`'s watch fills (none without the flag).
fn source_cache(settings: &Settings) -> (Arc<SourceCache>, Option<crate::cache::filter::Selected>) {
    let scope = &settings.scope;
    let selected = scope
        .namespace_selector
        .as_ref()
        .map(|_| crate::cache::filter::Selected::default());
    let cache = Arc::new(SourceCache::new(
        settings.policy.names.clone(),
        scope.selector.clone(),
        NamespaceFilter {
            only: scope.namespaces.clone(),
            ignore: scope.namespaces_to_ignore.clone(),
            selected: selected.clone(),
        },
    ));
    (cache, selected)
}

fn lease_config(settings: &Settings, owner: Option<&OwnerReference>) -> Option<lease::LeaseConfig> {
    settings.lease.as_ref().map(|l| lease::LeaseConfig {
        namespace: l.namespace.clone(),
        name: l.name.clone(),
        identity: settings.watcher.instance.clone(),
        duration: l.duration,
        renew_deadline: l.renew_deadline,
        retry_period: l.retry_period,
        owner: owner.cloned(),
    })
}

/// Every watch (sources per kind and watched namespace, the CSI classes, Namespaces with
/// `--namespace-selector`), the key reload, and the watcher, each under `live`.
fn start_watches(
    state: &Arc<State>,
    client: &kube::Client,
    settings: &Settings,
    selected: Option<crate::cache::filter::Selected>,
    live: &health::Liveness,
) -> Result<(), Error> {
    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    state.cache.announce_to(changes_tx.clone());
    let watches = settings.scope.watch.watches();
    state.cache.watches_per_kind(watches.len());
    for kind in [SourceKind::ConfigMap, SourceKind::Secret] {
        for ns in &watches {
            let watch = crate::cache::watch(
                state.cache.clone(),
                state.clone(),
                client.clone(),
                kind,
                ns.clone(),
                changes_tx.clone(),
            );
            live.spawn(kind.as_str(), watch);
        }
    }
    if state.policy.csi_integration {
        let watch = crate::cache::csi::run(
            state.cache.clone(),
            state.clone(),
            client.clone(),
            changes_tx.clone(),
        );
        live.spawn(SourceKind::SecretProviderClass.as_str(), watch);
    } else {
        state.cache.mark_synced(SourceKind::SecretProviderClass);
    }
    drop(changes_tx);
    let (st, every) = (state.clone(), settings.keys.reload_interval);
    live.spawn(
        "key reload",
        async move { st.keys.reload_every(every).await },
    );
    let (ns_tx, ns_rx) = tokio::sync::mpsc::unbounded_channel();
    if let (Some(sel), Some(set)) = (settings.scope.namespace_selector.clone(), selected) {
        live.spawn(
            "namespaces",
            namespaces::watch(client.clone(), sel, set, ns_tx),
        );
    }
    // the alert senders: started here, on the runtime
    let start = |t: &Option<crate::services::alert::Target>, what| {
        t.clone()
            .map(|t| crate::services::alert::Alerts::start(t, state.metrics.alerts.clone(), what))
            .transpose()
    };
    let watcher_cfg = watcher::WatcherConfig {
        alerts: start(&settings.alerts.on_reload, "alerts")?,
        post_instead: start(&settings.alerts.post_instead, "webhook-url")?,
        ..settings.watcher.clone()
    };
    let watch = watcher::run(
        state.clone(),
        client.clone(),
        watcher_cfg,
        changes_rx,
        ns_rx,
        live.clone(),
    );
    live.spawn("watcher", watch);
    Ok(())
}

/// `--health-addr` and `--enable-pprof`'s servers, when asked for.
async fn start_side_servers(
    state: &Arc<State>,
    settings: &Settings,
    live: &health::Liveness,
) -> Result<(), Error> {
    if let Some(a) = settings.extra.health {
        let l = bind(a).await?;
        let (st, lv) = (state.clone(), live.clone());
        live.spawn("health server", async move {
            if let Err(e) = health::serve(l, st, lv).await {
                tracing::error!(error = %e, "health server stopped");
            }
        });
    }
    if let Some(a) = settings.extra.pprof {
        let l = bind(a).await?;
        tracing::warn!(addr = %addr(&l), "serving CPU profiles (--enable-pprof): /debug/pprof/profile?seconds=N");
        live.spawn("pprof server", crate::services::pprof::serve(l));
    }
    Ok(())
}

/// The start-up line: where it listens, what it watches, which mode.
fn say_started(
    settings: &Settings,
    webhook_l: Option<&tokio::net::TcpListener>,
    metrics_l: &tokio::net::TcpListener,
) {
    let scope = &settings.scope.watch;
    tracing::info!(
        webhook = %webhook_l.map_or("off".to_string(), addr),
        metrics = %addr(metrics_l),
        namespace = %settings.namespace,
        mode = scope.as_str(),
        watched = ?scope.watches().into_iter().flatten().collect::<Vec<_>>(),
        "hashroll started"
    );
    if !settings.webhook.serve {
        tracing::info!(
            "no webhook: the watcher alone stamps, so a new workload's first pods start without the roll token (its first change still rolls it)"
        );
    }
}

/// Once a stop begins (or the servers end): the write under way lands (or
/// [`WRITE_GRACE`] passes), then the Lease goes back (`lease`: with
/// `--leader-election-release-on-cancel`), so the other replica takes over at once.
fn hand_over(
    state: Arc<State>,
    client: kube::Client,
    lease: Option<lease::LeaseConfig>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // a send, or the server ending without one (the sender dropped)
        let _ = stopping.changed().await;
        if !state.writer.stop(WRITE_GRACE).await {
            tracing::warn!("a write was still under way after {WRITE_GRACE:?}; stopping anyway");
        }
        if let Some(cfg) = &lease {
            lease::release(client, cfg).await;
        }
    })
}

/// The stop, on SIGTERM or Ctrl-C: no longer ready (the Service stops sending) and no new
/// roll at once; the webhook still answers for `delay` (`--shutdown-delay`), while the
/// endpoints drop this pod (closing the port at once meant refused connections until
/// then); the server then takes no new connection and answers the admissions in flight.
/// 5 s of delay + 10 s of admissions fit in the manifests' terminationGracePeriodSeconds
/// (30).
fn stop_signal(
    state: Arc<State>,
    stopping: tokio::sync::watch::Sender<bool>,
    delay: Duration,
) -> Result<impl std::future::Future<Output = ()>, Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Serve("cannot handle SIGTERM", e))?;
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = term.recv() => tracing::info!("terminated; stopping"),
        }
        state
            .watcher_ready
            .store(false, std::sync::atomic::Ordering::Release);
        // no new roll from now on (the write under way is waited for by the hand-over)
        state.writer.stop(Duration::ZERO).await;
        let _ = stopping.send(true);
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "not ready; still answering admissions until the endpoints drop this replica");
            tokio::time::sleep(delay).await;
        }
    })
}

/// The webhook's port, bound, and its TLS configuration: the certificate from its files
/// (watched) or self-managed.
async fn webhook_listener(
    client: &kube::Client,
    settings: &Settings,
    live: &health::Liveness,
    owner: Option<&OwnerReference>,
) -> Result<(tokio::net::TcpListener, Arc<rustls::ServerConfig>), Error> {
    let web = &settings.webhook;
    let certs = match &web.certs {
        Certs::Files(c) => {
            live.spawn(
                "certificate reload",
                c.clone().watch(Duration::from_secs(2)),
            );
            c.clone()
        }
        Certs::SelfManaged(m) => {
            self_managed_certs(client, &settings.namespace, m, live, owner).await?
        }
    };
    if web.client_verifier.is_none() {
        tracing::info!(
            "the webhook port takes reviews from any client (--client-ca-file verifies the apiserver's certificate)"
        );
    }
    let tls = certs.server_config(web.client_verifier.clone())?;
    Ok((bind(web.addr).await?, tls))
}

/// `--owner-deployment`: the owner reference the objects hashroll creates carry, so that
/// deleting hashroll's Deployment deletes them. Without the flag, or when the Deployment
/// cannot be read (logged), they have no owner and stay.
async fn own_deployment(client: &kube::Client, settings: &Settings) -> Option<OwnerReference> {
    let name = settings.owner_deployment.as_deref()?;
    let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &settings.namespace);
    match api.get(name).await {
        Ok(d) => Some(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.to_string(),
            uid: d.metadata.uid.unwrap_or_default(),
            ..Default::default()
        })
        .filter(|o| !o.uid.is_empty()),
        Err(e) => {
            tracing::warn!(deployment = %name, namespace = %settings.namespace, error = %e,
                "cannot read --owner-deployment; the Secrets and Lease hashroll creates get no owner");
            None
        }
    }
}

/// `--self-managed-certs`: the certificate from (or into) its Secret, and the caBundle kept.
async fn self_managed_certs(
    client: &kube::Client,
    namespace: &str,
    args: &SelfManaged,
    live: &health::Liveness,
    owner: Option<&OwnerReference>,
) -> Result<Arc<CertReloader>, Error> {
    let place = selfcert::Place {
        namespace: namespace.to_string(),
        secret: args.secret.clone(),
        sans: selfcert::sans(&args.service_name, namespace, &args.extra_sans),
        owner: owner.cloned(),
        validity: args.validity,
    };
    let pems = selfcert::ensure(client, &place, None).await?;
    if let Err(e) = selfcert::set_ca_bundle(client, &args.webhook_config, &pems.ca).await {
        tracing::warn!(webhook = %args.webhook_config, error = %e, "cannot set the webhook's caBundle yet");
    }
    let serving = CertReloader::from_pems(&pems.cert, &pems.key)?;
    // a round every 30 s, more often for a validity so short (tests) that 30 s matters
    let every = (args.validity / 16).clamp(Duration::from_secs(1), Duration::from_secs(30));
    live.spawn(
        "self-managed certificate",
        selfcert::keep(
            client.clone(),
            place,
            args.webhook_config.clone(),
            serving.clone(),
            pems.ca.clone(),
            every,
        ),
    );
    Ok(serving)
}

fn addr(l: &tokio::net::TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}
