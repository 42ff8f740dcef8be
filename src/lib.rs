//! hashroll: rolls Kubernetes workloads when the ConfigMaps and Secrets they use change.
//!
//! The pure core (`core`) decides what a workload tracks and what its record and roll token
//! are; the shell (`webhook`, `watcher`, `cache`) talks to the world and calls into it.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod core;
pub mod explain;
pub mod key;
pub mod lease;
pub mod metrics;
#[cfg(feature = "plane")]
pub mod plane;
pub mod selfcert;
pub mod state;
pub mod watcher;
pub mod webhook;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{NamespaceFilter, SourceCache};
use crate::config::{Cli, Command, Settings};
use crate::core::patch::RecordNames;
use crate::core::record::RollOptions;
use crate::core::refs::SourceKind;
use crate::core::selector::LabelSelector;
use crate::state::State;
use crate::webhook::tls::CertReloader;

/// Logging as `hashroll run` sets it up (the bench server uses it too).
pub fn init_logging(format: &str, level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid --log-level {level:?}: {e}"))?;
    // colours only on a terminal: log files and collectors get plain text
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let res = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    res.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Runs the parsed command line; the process's exit code.
pub fn run_cli(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Explain(args) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hashroll: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(explain_cmd(args)) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hashroll explain: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(args) => {
            // everything that can be checked before starting is checked here: exit code 2
            let settings = match Settings::from_args(*args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("hashroll: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = init_logging(&settings.args.log_format, &settings.args.log_level) {
                eprintln!("hashroll: {e}");
                return ExitCode::from(2);
            }
            // the files now (a start-up error); self-managed certificates once the client exists
            let certs = match (&settings.args.tls_cert_file, &settings.args.tls_key_file) {
                (Some(c), Some(k)) if !settings.args.self_managed_certs => {
                    match CertReloader::load(c, k) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            eprintln!("hashroll: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
                _ => None,
            };
            let selector = match LabelSelector::parse(
                settings.resource_label_selector.as_deref().unwrap_or(""),
            ) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("hashroll: invalid --resource-label-selector: {e}");
                    return ExitCode::from(2);
                }
            };
            let file_key = match &settings.args.key.hmac_key_file {
                Some(p) => match key::from_file(p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        eprintln!("hashroll: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hashroll: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(run(settings, certs, selector, file_key)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "hashroll stopped");
                    eprintln!("hashroll: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

async fn explain_cmd(args: config::ExplainArgs) -> Result<String, explain::ExplainError> {
    use explain::{ExplainError, Target};
    let target = explain::parse_target(&args.target)?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| ExplainError::Cluster(e.to_string()))?;
    let key = explain::read_key(
        &client,
        args.key.hmac_key_file.as_deref(),
        &args.hashroll_namespace,
        &args.key.hmac_key_secret,
    )
    .await?;
    let cfg = core::policy::PolicyConfig {
        auto_reload_all: args.auto_reload_all,
        ..Default::default()
    };
    let names = RecordNames {
        record: args.key.record_annotation.clone(),
        token: args.key.token_annotation.clone(),
    };
    let json = args.output == "json";
    Ok(match target {
        Target::Workload(kind, name) => {
            let r = explain::explain_workload(
                &client,
                &cfg,
                &key,
                &names,
                &args.namespace,
                kind,
                &name,
            )
            .await?;
            if json {
                pretty(&r)
            } else {
                explain::render_workload(&r)
            }
        }
        Target::Source(source) => {
            let r = explain::explain_source(&client, &cfg, &key, &names, &args.namespace, &source)
                .await?;
            if json {
                pretty(&r)
            } else {
                explain::render_source(&r)
            }
        }
    })
}

/// `--namespace-selector`: keeps the set of selected namespaces; sends each newly selected
/// one so its workloads are reconciled.
async fn watch_namespaces(
    client: kube::Client,
    selector: String,
    set: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    added: tokio::sync::mpsc::UnboundedSender<String>,
) {
    use futures::{StreamExt, TryStreamExt};
    use kube::ResourceExt;
    use kube::runtime::watcher;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
    let mut listing = std::collections::HashSet::new();
    loop {
        match stream.try_next().await {
            Ok(Some(watcher::Event::Init)) => listing.clear(),
            Ok(Some(watcher::Event::InitApply(ns))) => {
                listing.insert(ns.name_any());
            }
            Ok(Some(watcher::Event::InitDone)) => {
                let new = std::mem::take(&mut listing);
                let mut cur = set.write().expect("namespace set lock");
                for n in new.difference(&cur) {
                    let _ = added.send(n.clone());
                }
                *cur = new;
            }
            Ok(Some(watcher::Event::Apply(ns))) => {
                if set
                    .write()
                    .expect("namespace set lock")
                    .insert(ns.name_any())
                {
                    tracing::info!(namespace = %ns.name_any(), "namespace selected");
                    let _ = added.send(ns.name_any());
                }
            }
            Ok(Some(watcher::Event::Delete(ns))) => {
                set.write()
                    .expect("namespace set lock")
                    .remove(&ns.name_any());
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "namespace watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Pretty JSON of a report, with a trailing newline.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

async fn run(
    settings: Settings,
    certs: Option<Arc<CertReloader>>,
    selector: LabelSelector,
    file_key: Option<core::digest::DigestKey>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let key = match file_key {
        Some(k) => k,
        None => {
            key::from_secret(
                &client,
                &settings.namespace,
                &settings.args.key.hmac_key_secret,
            )
            .await?
        }
    };
    let selected = settings
        .namespace_selector
        .as_ref()
        .map(|_| Arc::new(std::sync::RwLock::new(std::collections::HashSet::new())));
    let cache = Arc::new(SourceCache::new(
        settings.policy.names.clone(),
        selector,
        NamespaceFilter {
            only: settings.namespaces.clone(),
            ignore: settings.namespaces_to_ignore.clone(),
            selected: selected.clone(),
        },
    ));
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("hashroll-{}", std::process::id()));
    let writer = if settings.args.enable_ha {
        lease::start(
            client.clone(),
            lease::LeaseConfig {
                namespace: settings.namespace.clone(),
                name: settings.args.lease_name.clone(),
                identity: instance.clone(),
                duration: settings.args.lease_duration,
            },
        )
    } else {
        lease::Leadership::always()
    };
    let state = Arc::new(State {
        policy: settings.policy.clone(),
        names: RecordNames {
            record: settings.record_annotation.clone(),
            token: settings.token_annotation.clone(),
        },
        roll: RollOptions {
            on_create: settings.args.reload_on_create,
            on_delete: settings.args.reload_on_delete,
        },
        key,
        cache: cache.clone(),
        client: Some(client.clone()),
        metrics: metrics::Metrics::new(),
        watcher_ready: std::sync::atomic::AtomicBool::new(false),
        writer,
    });
    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    for kind in [SourceKind::ConfigMap, SourceKind::Secret] {
        let st = state.clone();
        tokio::spawn(cache.clone().run_watch(
            client.clone(),
            kind,
            Some(changes_tx.clone()),
            move || st.metrics.watch_restart(kind.as_str()),
        ));
    }
    drop(changes_tx);
    let watcher_cfg = watcher::WatcherConfig {
        coalesce_window: settings.args.coalesce_window,
        max_rollouts_per_second: settings.args.max_rollouts_per_second,
        instance,
    };
    let (ns_tx, ns_rx) = tokio::sync::mpsc::unbounded_channel();
    if let (Some(sel), Some(set)) = (settings.namespace_selector.clone(), selected) {
        tokio::spawn(watch_namespaces(client.clone(), sel, set, ns_tx));
    }
    tokio::spawn(watcher::run(
        state.clone(),
        client.clone(),
        watcher_cfg,
        changes_rx,
        ns_rx,
    ));

    let certs = match certs {
        Some(c) => {
            tokio::spawn(c.clone().watch(Duration::from_secs(2)));
            c
        }
        None => {
            let names = selfcert::sans(
                &settings.args.service_name,
                &settings.namespace,
                &settings.args.tls_san,
            );
            let pems = selfcert::ensure(
                &client,
                &settings.namespace,
                &settings.args.tls_secret,
                &names,
            )
            .await?;
            tokio::spawn(selfcert::keep_ca_bundle(
                client.clone(),
                settings.args.webhook_config.clone(),
                pems.ca.clone(),
                Duration::from_secs(30),
            ));
            CertReloader::from_pems(&pems.cert, &pems.key)?
        }
    };
    let tls = certs.server_config()?;
    let webhook = tokio::net::TcpListener::bind(settings.args.webhook_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.args.webhook_addr))?;
    let metrics_l = tokio::net::TcpListener::bind(settings.args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.args.metrics_addr))?;
    tracing::info!(
        webhook = %webhook.local_addr()?,
        metrics = %metrics_l.local_addr()?,
        namespace = %settings.namespace,
        "hashroll started"
    );
    let router = webhook::router(state.clone(), settings.args.max_body_bytes);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = webhook::serve_tls(webhook, tls, router) => {}
        r = webhook::serve_metrics(metrics_l, state.clone()) => r.context("metrics server")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = term.recv() => tracing::info!("terminated; stopping"),
    }
    Ok(())
}
