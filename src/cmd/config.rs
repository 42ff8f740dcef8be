//! Flags validated once into [`Settings`]: every start-up check (certificate files,
//! selectors, the key file, names) happens here, so a bad value is one error before anything
//! starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cmd::cli::run_args::RunArgs;
use crate::core::digest::KeyRing;
use crate::core::kind::{KINDS, WorkloadKind};
use crate::core::names::{AnnotationNames, RecordNames};
use crate::core::policy::PolicyConfig;
use crate::core::record::RollOptions;
use crate::core::selector::LabelSelector;
use crate::webhook::tls::CertReloader;

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Splits a selector on the commas outside parentheses (`a=b,tier in (x,y)`).
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Translates Reloader's selector forms (`k=v`, `k:v`, `k=*`, `k:*`) into a Kubernetes label
/// selector; anything else a label selector accepts passes through as it is.
pub(crate) fn label_selector(s: &str) -> String {
    // Reloader's chart passes `--namespace-selector="k=v"`, quotes and all
    let s = s
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(s);
    split_terms(s)
        .into_iter()
        .map(|term| {
            if let Some(k) = term.strip_suffix("=*").or_else(|| term.strip_suffix(":*")) {
                k.trim().to_string()
            } else if !term.contains('=')
                && !term.contains('!')
                && !term.contains(" in ")
                && !term.contains(" notin ")
                && let Some((k, v)) = term.split_once(':')
            {
                format!("{}={}", k.trim(), v.trim())
            } else {
                term
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything `run` needs, validated and typed: nothing downstream reads a flag.
pub(crate) struct Settings {
    /// hashroll's own namespace
    pub namespace: String,
    pub policy: PolicyConfig,
    pub names: RecordNames,
    pub roll: RollOptions,
    pub scope: Scope,
    pub webhook: WebhookSettings,
    pub keys: KeySettings,
    /// `--enable-ha`: the Lease, else one replica writes alone
    pub lease: Option<LeaseSettings>,
    /// the watcher's settings (its alert senders are started by `app`, on the runtime)
    pub watcher: crate::watcher::WatcherConfig,
    pub alerts: AlertSettings,
    pub log: LogSettings,
    pub extra: ExtraListeners,
    /// `--owner-deployment`
    pub owner_deployment: Option<String>,
}

/// Which namespaces and sources hashroll acts on.
pub(crate) struct Scope {
    /// where the watches look: the cluster, or (`--namespaced`) each of `namespaces`
    pub watch: crate::k8s::scope::WatchScope,
    pub namespaces: Vec<String>,
    pub namespaces_to_ignore: Vec<String>,
    pub namespace_selector: Option<String>,
    /// --resource-label-selector, parsed
    pub selector: LabelSelector,
}

/// The webhook and metrics servers.
pub(crate) struct WebhookSettings {
    /// whether the webhook is served (off: `--webhook=false` or `--namespaced`)
    pub serve: bool,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub max_body_bytes: usize,
    /// `--admission-*`: the slow lane's threads and queue bounds
    pub lane: crate::webhook::LaneConfig,
    pub shutdown_delay: Duration,
    pub certs: Certs,
    /// --client-ca-file: the verifier of the apiserver's client certificate
    pub client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// Where the serving certificate comes from.
pub(crate) enum Certs {
    /// the files, loaded (and watched)
    Files(Arc<CertReloader>),
    /// `--self-managed-certs`: made and kept in a Secret once a client exists
    SelfManaged(SelfManaged),
}

/// What `--self-managed-certs` needs.
pub(crate) struct SelfManaged {
    pub secret: String,
    pub service_name: String,
    pub extra_sans: Vec<String>,
    pub validity: Duration,
    /// the MutatingWebhookConfiguration whose caBundle is kept
    pub webhook_config: String,
}

/// The installation's HMAC key.
pub(crate) struct KeySettings {
    /// from `--hmac-key-file` (and its previous): the key and the files it is reloaded from
    pub files: Option<(KeyRing, PathBuf, Option<PathBuf>)>,
    /// else the Secret of this name in hashroll's namespace
    pub secret: String,
    pub reload_interval: Duration,
}

/// The Lease of `--enable-ha`.
#[derive(Debug, Clone)]
pub(crate) struct LeaseSettings {
    pub name: String,
    /// `--leader-election-namespace`, else hashroll's own
    pub namespace: String,
    pub duration: Duration,
    /// how long a holder writes after a renewal was sent (below `duration`)
    pub renew_deadline: Duration,
    /// how often the Lease is renewed or tried (below `renew_deadline`)
    pub retry_period: Duration,
    /// SIGTERM hands the Lease back
    pub release_on_cancel: bool,
}

impl LeaseSettings {
    /// The Lease flags, checked: Reloader's leader-election timings keep client-go's order
    /// (retry period < renew deadline < lease duration); unset ones are hashroll's
    /// defaults, 2/3 and 1/4 of the duration.
    fn from_args(args: &RunArgs, namespace: &str) -> Result<LeaseSettings, ConfigError> {
        let duration = args.lease_duration;
        let renew_deadline = args.lease_renew_deadline.unwrap_or(duration * 2 / 3);
        let retry_period = args.lease_retry_period.unwrap_or(duration / 4);
        if duration < Duration::from_secs(1)
            || renew_deadline >= duration
            || retry_period.is_zero()
            || retry_period >= renew_deadline
        {
            return Err(ConfigError::Invalid {
                what: "--leader-election-* / --lease-duration",
                why: format!(
                    "need 0 < retry period ({retry_period:?}) < renew deadline \
                     ({renew_deadline:?}) < lease duration ({duration:?}), the duration at least 1s"
                ),
            });
        }
        Ok(LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| namespace.to_string()),
            duration,
            renew_deadline,
            retry_period,
            release_on_cancel: args.lease_release_on_cancel,
        })
    }
}

/// Reloader's extra listeners: v2's health address and the profile endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraListeners {
    /// `--health-addr`: /healthz and /readyz (and /metrics) here too
    pub health: Option<SocketAddr>,
    /// `--enable-pprof`: the CPU profile endpoint's address
    pub pprof: Option<SocketAddr>,
}

/// Where messages go: `ALERT_ON_RELOAD`'s sink, and Reloader's `--webhook-url`.
#[derive(Debug, Default)]
pub(crate) struct AlertSettings {
    pub on_reload: Option<crate::services::alert::Target>,
    pub post_instead: Option<crate::services::alert::Target>,
}

/// Logging.
pub(crate) struct LogSettings {
    pub format: String,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {what} {path}: {source}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error(transparent)]
    Tls(#[from] crate::webhook::tls::TlsError),
    #[error(transparent)]
    Key(#[from] crate::services::key::KeyError),
}

/// `--max-rollouts-per-second` bounds: one roll per 1,000 s at the least, and no more
/// than a million a second (beyond any apiserver).
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1e6;

/// What `--namespaced` and `--webhook` make of a run: whether the webhook is served, and
/// the flags that cannot go with `--namespaced` (each needs a cluster-scoped read).
fn serves_webhook(args: &RunArgs) -> Result<bool, ConfigError> {
    if !args.namespaced {
        return Ok(args.webhook.unwrap_or(true));
    }
    let refused = [
        (
            args.webhook == Some(true),
            "--webhook",
            "the webhook needs a MutatingWebhookConfiguration, a cluster-scoped object: drop --webhook (the watcher stamps alone) or --namespaced",
        ),
        (
            !args.namespace_selector.is_empty(),
            "--namespace-selector",
            "it reads Namespaces, which a Role cannot grant: list the namespaces in --namespaces",
        ),
        (
            args.enable_csi_integration,
            "--enable-csi-integration",
            "the CSI driver's pod statuses are read cluster-wide: not with --namespaced",
        ),
    ];
    match refused.into_iter().find(|(bad, ..)| *bad) {
        Some((_, what, why)) => Err(ConfigError::Invalid {
            what,
            why: format!("not with --namespaced: {why}"),
        }),
        None => Ok(false),
    }
}

impl Settings {
    pub(crate) fn from_args(args: RunArgs) -> Result<Settings, ConfigError> {
        let serve_webhook = serves_webhook(&args)?;
        check_args(&args, serve_webhook)?;
        let namespace = args
            .namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "hashroll".to_string());
        let lease = if args.enable_ha {
            Some(LeaseSettings::from_args(&args, &namespace)?)
        } else {
            None
        };
        Ok(Settings {
            policy: policy_of(&args, &namespace)?,
            names: RecordNames {
                record: args.key.record_annotation.clone(),
                token: args.key.token_annotation.clone(),
            },
            roll: RollOptions {
                on_create: args.reload_on_create,
                on_delete: args.reload_on_delete,
            },
            scope: scope_of(&args, &namespace)?,
            webhook: webhook_of(&args, serve_webhook)?,
            keys: keys_of(&args)?,
            lease,
            watcher: watcher_of(&args, &namespace),
            alerts: alerts_of(&args),
            log: LogSettings {
                format: if args.log_format.is_empty() {
                    "text".into()
                } else {
                    args.log_format.clone()
                },
                level: crate::cmd::cli::reloader::log_level(&args.log_level),
            },
            extra: ExtraListeners {
                health: args.health_addr.filter(|a| *a != args.metrics_addr),
                pprof: args.enable_pprof.then_some(args.pprof_addr),
            },
            owner_deployment: args.owner_deployment.clone(),
            namespace,
        })
    }
}

/// What the flags say that no type holds: the certificate's files given (and readable), the
/// URLs (never printed: secrets), the rate, the annotation names, the certificate validity.
fn check_args(args: &RunArgs, serve_webhook: bool) -> Result<(), ConfigError> {
    if serve_webhook
        && !args.self_managed_certs
        && (args.tls_cert_file.is_none() || args.tls_key_file.is_none())
    {
        return Err(ConfigError::Invalid {
            what: "serving certificate",
            why: "give --tls-cert-file and --tls-key-file, or --self-managed-certs".into(),
        });
    }
    for (what, path) in [
        ("--tls-cert-file", args.tls_cert_file.as_ref()),
        ("--tls-key-file", args.tls_key_file.as_ref()),
        ("--client-ca-file", args.client_ca_file.as_ref()),
        ("--hmac-key-file", args.key.hmac_key_file.as_ref()),
        (
            "--hmac-previous-key-file",
            args.key.hmac_previous_key_file.as_ref(),
        ),
    ] {
        if let Some(path) = path {
            std::fs::File::open(path).map_err(|source| ConfigError::Unreadable {
                what,
                path: path.clone(),
                source,
            })?;
        }
    }
    // alert and --webhook-url URLs: checked here, never printed (they are secrets)
    if args.alert_on_reload
        && args
            .alert_webhook_url
            .as_ref()
            .is_none_or(|u| u.0.is_empty())
    {
        return Err(ConfigError::Invalid {
            what: "ALERT_ON_RELOAD",
            why: "alerts are on but ALERT_WEBHOOK_URL (--alert-webhook-url) is empty".into(),
        });
    }
    for (what, url) in [
        ("ALERT_WEBHOOK_URL", args.alert_webhook_url.as_ref()),
        ("ALERT_WEBHOOK_PROXY", args.alert_webhook_proxy.as_ref()),
        ("--webhook-url", args.webhook_url.as_ref()),
    ] {
        if let Some(u) = url.filter(|u| !u.0.is_empty()) {
            let ok =
                reqwest::Url::parse(&u.0).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
            if !ok {
                return Err(ConfigError::Invalid {
                    what,
                    why: "not an http(s) URL (the value is a secret: not shown)".into(),
                });
            }
        }
    }
    // the rate limit's interval is 1/rate: a tiny rate is an interval no Duration holds
    if !(MIN_RATE..=MAX_RATE).contains(&args.max_rollouts_per_second) {
        return Err(ConfigError::Invalid {
            what: "--max-rollouts-per-second",
            why: format!("must be between {MIN_RATE} and {MAX_RATE}"),
        });
    }
    for (what, v) in [
        ("--record-annotation", &args.key.record_annotation),
        ("--token-annotation", &args.key.token_annotation),
    ] {
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                what,
                why: format!("{v:?} is not an annotation name"),
            });
        }
    }
    if args.self_managed_cert_validity < Duration::from_secs(20) {
        return Err(ConfigError::Invalid {
            what: "--self-managed-cert-validity",
            why: "at least 20s".into(),
        });
    }
    Ok(())
}

fn opt_selector(s: &str) -> Option<String> {
    let s = label_selector(s);
    (!s.is_empty()).then_some(s)
}

/// Which annotations and kinds hashroll reads.
fn policy_of(args: &RunArgs, namespace: &str) -> Result<PolicyConfig, ConfigError> {
    let ignore = args.resources_to_ignore.as_deref().map(str::to_lowercase);
    let policy = PolicyConfig {
        names: AnnotationNames {
            auto: args.auto_annotation.clone(),
            configmap_auto: args.configmap_auto_annotation.clone(),
            secret_auto: args.secret_auto_annotation.clone(),
            search: args.auto_search_annotation.clone(),
            search_match: args.search_match_annotation.clone(),
            configmap_reload: args.configmap_annotation.clone(),
            secret_reload: args.secret_annotation.clone(),
            configmap_exclude: args.configmap_exclude_annotation.clone(),
            secret_exclude: args.secret_exclude_annotation.clone(),
            ignore: args.ignore_annotation.clone(),
            pause_period: args.pause_deployment_annotation.clone(),
            paused_at: args.pause_deployment_time_annotation.clone(),
            secretproviderclass_auto: args.secretproviderclass_auto_annotation.clone(),
            secretproviderclass_reload: args.secretproviderclass_annotation.clone(),
            secretproviderclass_exclude: args.secretproviderclass_exclude_annotation.clone(),
        },
        auto_reload_all: args.auto_reload_all,
        csi_integration: args.enable_csi_integration,
        auto_all_skips: PolicyConfig::auto_all_skips_with(namespace),
        ignore_configmaps: ignore.as_deref() == Some("configmaps"),
        ignore_secrets: ignore.as_deref() == Some("secrets"),
        ignored_kinds: {
            let mut k = ignored_kinds(&args.ignored_workload_types.join(","))?;
            if args.is_argo_rollouts == Some(false) {
                k.push(WorkloadKind::ArgoRollout);
            }
            k
        },
    };
    Ok(policy)
}

/// Which namespaces and sources hashroll acts on, and where it watches.
fn scope_of(args: &RunArgs, namespace: &str) -> Result<Scope, ConfigError> {
    let resource_label_selector = opt_selector(&args.resource_label_selector.join(","));
    let selector =
        LabelSelector::parse(resource_label_selector.as_deref().unwrap_or("")).map_err(|why| {
            ConfigError::Invalid {
                what: "--resource-label-selector",
                why: why.to_string(),
            }
        })?;
    let mut watched = comma_list(&args.namespaces.join(","));
    if args.namespaced && watched.is_empty() {
        // none given: hashroll's own namespace, as Reloader's one-namespace mode
        watched.push(namespace.to_string());
    }
    Ok(Scope {
        watch: if args.namespaced {
            crate::k8s::scope::WatchScope::Namespaces(watched.clone())
        } else {
            crate::k8s::scope::WatchScope::Cluster
        },
        namespaces: watched,
        namespaces_to_ignore: comma_list(&args.namespaces_to_ignore.join(",")),
        namespace_selector: opt_selector(&args.namespace_selector.join(",")),
        selector,
    })
}

/// The webhook's server: whether it is served, its certificate, its client verifier.
fn webhook_of(args: &RunArgs, serve_webhook: bool) -> Result<WebhookSettings, ConfigError> {
    // the files now (a start-up error); self-managed certificates once the client exists
    let certs = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(c), Some(k)) if !args.self_managed_certs && serve_webhook => {
            Certs::Files(CertReloader::load(c, k)?)
        }
        _ => Certs::SelfManaged(SelfManaged {
            secret: args.tls_secret.clone(),
            service_name: args.service_name.clone(),
            extra_sans: args.tls_san.clone(),
            validity: args.self_managed_cert_validity,
            webhook_config: args.webhook_config.clone(),
        }),
    };
    let client_verifier = match &args.client_ca_file {
        Some(p) => Some(crate::webhook::tls::client_verifier(p)?),
        None => None,
    };
    Ok(WebhookSettings {
        serve: serve_webhook,
        addr: args.webhook_addr,
        metrics_addr: args.metrics_addr,
        max_body_bytes: args.max_body_bytes,
        lane: crate::webhook::LaneConfig {
            threads: args.admission_threads.into(),
            queue_per_namespace: args.admission_queue_per_namespace.into(),
            queue_total: args.admission_queue_total.into(),
        },
        shutdown_delay: args.shutdown_delay,
        certs,
        client_verifier,
    })
}

/// The HMAC keys: their files, loaded now (a start-up error), or the Secret's name.
fn keys_of(args: &RunArgs) -> Result<KeySettings, ConfigError> {
    let files = match &args.key.hmac_key_file {
        Some(p) => Some((
            crate::services::key::from_files(p, args.key.hmac_previous_key_file.as_deref())?,
            p.clone(),
            args.key.hmac_previous_key_file.clone(),
        )),
        None => None,
    };
    Ok(KeySettings {
        files,
        secret: args.key.hmac_key_secret.clone(),
        reload_interval: args.key_reload_interval,
    })
}

/// Where alerts go, and `--webhook-url`'s posts instead of rolls.
fn alerts_of(args: &RunArgs) -> AlertSettings {
    let target = |url: &crate::cmd::cli::args::Secret, sink| crate::services::alert::Target {
        sink,
        url: url.0.clone(),
        proxy: args
            .alert_webhook_proxy
            .clone()
            .map(|p| p.0)
            .filter(|p| !p.is_empty()),
        additional_info: args.alert_additional_info.clone(),
    };
    AlertSettings {
        on_reload: args
            .alert_webhook_url
            .as_ref()
            .filter(|_| args.alert_on_reload)
            .map(|u| target(u, crate::services::alert::Sink::parse(&args.alert_sink))),
        post_instead: args
            .webhook_url
            .as_ref()
            .filter(|u| !u.0.is_empty())
            .map(|u| target(u, crate::services::alert::Sink::Raw)),
    }
}

/// The watcher's settings (its alert senders are started by `run`).
fn watcher_of(args: &RunArgs, namespace: &str) -> crate::watcher::WatcherConfig {
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("hashroll-{}", std::process::id()));
    let gate = &args.gate;
    crate::watcher::WatcherConfig {
        coalesce_window: args.coalesce_window,
        max_rollouts_per_second: args.max_rollouts_per_second,
        cronjob_run_on_change: args.cronjob_run_on_change,
        permanent_error_retry: args.permanent_error_retry,
        min_roll_interval: args.min_roll_interval,
        paused: args.paused,
        max_concurrent_rollouts: args.max_concurrent_rollouts,
        rollout_timeout: gate.rollout_timeout.clamp(
            crate::core::gate::MIN_ROLLOUT_TIMEOUT,
            crate::core::gate::MAX_ROLLOUT_TIMEOUT,
        ),
        switch: (!gate.switch_configmap.is_empty())
            .then(|| (namespace.to_string(), gate.switch_configmap.clone())),
        window_namespace_label: Some(gate.window_namespace_label.clone()).filter(|l| !l.is_empty()),
        instance,
        alerts: None,
        post_instead: None,
    }
}

/// `--ignored-workload-types` (Reloader's words: `jobs`, `cronjobs`, comma-separated).
fn ignored_kinds(value: &str) -> Result<Vec<WorkloadKind>, ConfigError> {
    let mut out = Vec::new();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let kind = KINDS
            .iter()
            .find(|r| r.ignore_word == Some(word))
            .map(|r| r.kind)
            .ok_or_else(|| ConfigError::Invalid {
                what: "--ignored-workload-types",
                why: format!("{word:?} is not one of jobs, cronjobs"),
            })?;
        out.push(kind);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloader_selector_forms_become_label_selectors() {
        let cases = [
            ("app=web", "app=web"),
            ("app:web", "app=web"),
            ("app=*", "app"),
            ("app:*", "app"),
            ("a=b, c:d ,e:*", "a=b,c=d,e"),
            ("tier in (a,b)", "tier in (a,b)"),
            ("\"env=prod\"", "env=prod"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(label_selector(input), want, "input {input:?}");
        }
    }

    #[test]
    fn a_rollout_rate_out_of_range_is_an_error_not_a_panic() {
        let settings = |rate: &str| {
            let flag = format!("--max-rollouts-per-second={rate}");
            let argv = ["hashroll", "run", "--self-managed-certs", flag.as_str()];
            let cli = <crate::cmd::cli::Cli as clap::Parser>::try_parse_from(argv).expect("parses");
            match cli.command {
                crate::cmd::cli::Command::Run(a) => Settings::from_args(*a),
                _ => unreachable!("run was parsed"),
            }
        };
        for bad in ["1e-300", "0", "-1", "NaN", "inf", "1e7"] {
            match settings(bad) {
                Err(ConfigError::Invalid { what, .. }) => {
                    assert_eq!(what, "--max-rollouts-per-second", "{bad}")
                }
                Err(e) => panic!("{bad}: another error {e}"),
                Ok(_) => panic!("{bad}: accepted"),
            }
        }
        for good in ["0.001", "0.5", "200", "1000000"] {
            assert!(settings(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn ignored_workload_types_take_reloaders_words() {
        assert_eq!(ignored_kinds("").unwrap(), vec![]);
        assert_eq!(
            ignored_kinds("jobs, cronjobs").unwrap(),
            vec![WorkloadKind::Job, WorkloadKind::CronJob]
        );
        assert!(ignored_kinds("deployments").is_err());
    }
}
