//! The flags of `hashroll run` (Reloader's names where Reloader has one).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{GateArgs, KeyArgs, Secret, parse_bool_str, parse_duration, parse_listen_addr};

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// check every flag and file as a start would, say so and exit (0: good, 2: not);
    /// starts nothing (for a chart's values, or before a rollout of hashroll itself)
    #[arg(long)]
    pub check: bool,
    /// PEM serving certificate of the webhook (reloaded when its content changes)
    #[arg(long, env = "HASHROLL_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the webhook
    #[arg(long, env = "HASHROLL_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle: the webhook port then serves only clients with a certificate one of
    /// these CAs signed (the apiserver's, given to it through an AdmissionConfiguration's
    /// kubeconfig); without it anyone who reaches the port may send a review
    #[arg(long, env = "HASHROLL_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// make a CA and serving certificate once, keep them in --tls-secret, and keep the
    /// caBundle of --webhook-config pointing at the CA (instead of the two files)
    #[arg(long, env = "HASHROLL_SELF_MANAGED_CERTS", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub self_managed_certs: bool,
    /// how long a self-managed CA and certificate are valid; renewed (both) when a quarter
    /// is left, the previous CA kept in the caBundle meanwhile
    #[arg(long, env = "HASHROLL_SELF_MANAGED_CERT_VALIDITY", default_value = "8760h", value_parser = parse_duration)]
    pub self_managed_cert_validity: Duration,
    /// the Secret holding the self-managed certificate (in hashroll's namespace)
    #[arg(long, env = "HASHROLL_TLS_SECRET", default_value = "hashroll-tls")]
    pub tls_secret: String,
    /// the MutatingWebhookConfiguration whose caBundle self-managed mode keeps
    #[arg(long, env = "HASHROLL_WEBHOOK_CONFIG", default_value = "hashroll")]
    pub webhook_config: String,
    /// the Service in front of the webhook (the certificate's names)
    #[arg(long, env = "HASHROLL_SERVICE_NAME", default_value = "hashroll")]
    pub service_name: String,
    /// extra names or IPs of the self-managed certificate (comma list)
    #[arg(long, env = "HASHROLL_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// HTTPS address of the admission webhook
    #[arg(long, env = "HASHROLL_WEBHOOK_ADDR", default_value = "0.0.0.0:9443", value_parser = parse_listen_addr)]
    pub webhook_addr: SocketAddr,
    /// plain-HTTP address of /metrics, /healthz, /readyz (`:9090` means every address)
    #[arg(long, env = "HASHROLL_METRICS_ADDR", default_value = "0.0.0.0:9090", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,
    /// hashroll's own namespace (default: $POD_NAMESPACE, else "hashroll")
    #[arg(long, env = "HASHROLL_NAMESPACE")]
    pub namespace: Option<String>,
    /// hashroll's own Deployment (in its namespace): the Secrets and the Lease hashroll
    /// creates are owned by it, so deleting it (`helm uninstall`) deletes them too
    #[arg(long, env = "HASHROLL_OWNER_DEPLOYMENT")]
    pub owner_deployment: Option<String>,

    /// configMaps or secrets (any case): never react to this kind
    #[arg(long, env = "HASHROLL_RESOURCES_TO_IGNORE", value_parser = parse_resource_kind)]
    pub resources_to_ignore: Option<String>,
    /// comma list of namespaces to ignore (repeatable, as Reloader's)
    #[arg(long, env = "HASHROLL_NAMESPACES_TO_IGNORE", action = clap::ArgAction::Append)]
    pub namespaces_to_ignore: Vec<String>,
    /// comma list of namespaces to watch (all when empty; repeatable)
    #[arg(long, env = "HASHROLL_NAMESPACES", action = clap::ArgAction::Append)]
    pub namespaces: Vec<String>,
    /// label selector of namespaces to watch (repeatable: the terms are joined)
    #[arg(long, env = "HASHROLL_NAMESPACE_SELECTOR", action = clap::ArgAction::Append)]
    pub namespace_selector: Vec<String>,
    /// read and write only in --namespaces (default: hashroll's own), a watch in each, with
    /// nothing cluster-scoped: a Role per namespace is enough. The webhook is off (it needs a
    /// MutatingWebhookConfiguration): the watcher alone stamps, so a new workload's first
    /// pods start without the roll token; its first change is still caught
    #[arg(long, env = "HASHROLL_NAMESPACED", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub namespaced: bool,
    /// serve the admission webhook on --webhook-addr (`--webhook=false`: the watcher alone
    /// stamps; default: on, off with --namespaced)
    #[arg(long, env = "HASHROLL_WEBHOOK", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub webhook: Option<bool>,
    /// label selector of ConfigMaps/Secrets to react to (repeatable: the terms are joined)
    #[arg(long, env = "HASHROLL_RESOURCE_LABEL_SELECTOR", action = clap::ArgAction::Append)]
    pub resource_label_selector: Vec<String>,
    /// treat every workload as `reloader.stakater.com/auto: "true"` unless it says "false"
    #[arg(long, env = "HASHROLL_AUTO_RELOAD_ALL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub auto_reload_all: bool,
    /// track SecretProviderClasses of the Secrets Store CSI Driver (Reloader's flag): a
    /// workload rolls when the versions its class's pods mounted change
    #[arg(long, env = "HASHROLL_ENABLE_CSI_INTEGRATION", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub enable_csi_integration: bool,
    /// roll when a tracked source is created
    #[arg(long, env = "HASHROLL_RELOAD_ON_CREATE", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub reload_on_create: bool,
    /// roll when a tracked source is deleted
    #[arg(long, env = "HASHROLL_RELOAD_ON_DELETE", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub reload_on_delete: bool,
    /// comma list of workload types neither stamped nor rolled: jobs, cronjobs
    #[arg(long, env = "HASHROLL_IGNORED_WORKLOAD_TYPES", action = clap::ArgAction::Append)]
    pub ignored_workload_types: Vec<String>,
    /// on a change, also create a Job from a CronJob at once (as `kubectl create job
    /// --from=cronjob/NAME` does); false: only the CronJob's template is updated
    #[arg(long, env = "HASHROLL_CRONJOB_RUN_ON_CHANGE", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub cronjob_run_on_change: bool,
    /// Argo Rollouts: `true` watches them (waiting for the CRD), `false` never; unset: as
    /// soon as discovery shows the Rollout CRD (Reloader's spelling `--is-Argo-Rollouts`
    /// works too)
    #[arg(long = "is-argo-rollouts", alias = "is-Argo-Rollouts", env = "HASHROLL_IS_ARGO_ROLLOUTS", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool_str)]
    pub is_argo_rollouts: Option<bool>,
    /// another kind with a pod template, watched and stamped like the built-in ones, e.g.
    /// `apps.kruise.io/v1alpha1/CloneSet=spec.template` (repeatable; its webhook rule and
    /// RBAC are yours to add)
    #[arg(
        long = "workload-kind",
        env = "HASHROLL_WORKLOAD_KIND",
        value_name = "GROUP/VERSION/KIND=PATH",
        value_delimiter = ','
    )]
    pub workload_kinds: Vec<crate::core::kind::CustomKind>,
    /// send a message on each rollout (Reloader's `ALERT_ON_RELOAD`)
    #[arg(long, env = "HASHROLL_ALERT_ON_RELOAD", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub alert_on_reload: bool,
    /// `slack`, `teams`, `gchat`; anything else posts plain JSON (Reloader's `ALERT_SINK`)
    #[arg(long, env = "HASHROLL_ALERT_SINK", default_value = "webhook")]
    pub alert_sink: String,
    /// where alerts go (Reloader's `ALERT_WEBHOOK_URL`); a secret, never logged
    #[arg(long, env = "HASHROLL_ALERT_WEBHOOK_URL", hide_env_values = true)]
    pub alert_webhook_url: Option<Secret>,
    /// an HTTP(S) proxy for alerts (Reloader's `ALERT_WEBHOOK_PROXY`, v2's `--alert-proxy`)
    #[arg(
        long,
        alias = "alert-proxy",
        env = "HASHROLL_ALERT_WEBHOOK_PROXY",
        hide_env_values = true
    )]
    pub alert_webhook_proxy: Option<Secret>,
    /// added to every message, e.g. the cluster's name (Reloader's `ALERT_ADDITIONAL_INFO`)
    #[arg(long, env = "HASHROLL_ALERT_ADDITIONAL_INFO", default_value = "")]
    pub alert_additional_info: String,
    /// Reloader's `--webhook-url`: on a change, POST it here (plain JSON) instead of
    /// rolling; the record is still written, so the change is posted once
    #[arg(long, env = "HASHROLL_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<Secret>,
    /// text or json ("" is text, as in Reloader)
    #[arg(long, env = "HASHROLL_LOG_FORMAT", default_value = "text", value_parser = ["text", "json", ""])]
    pub log_format: String,
    /// a tracing filter: info, debug, hashroll=debug,kube=info, ... (Reloader's levels
    /// `warning`, `fatal` and `panic` read as warn, error, error)
    #[arg(long, env = "HASHROLL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// only the holder of a Lease writes
    #[arg(long, env = "HASHROLL_ENABLE_HA", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub enable_ha: bool,
    /// after SIGTERM: how long the webhook still answers (not ready, so the Service's
    /// endpoints drop it meanwhile) before it closes its port; 0: at once
    #[arg(long, env = "HASHROLL_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// how long another replica waits on a Lease not renewed before it takes over
    /// (--enable-ha; Reloader's `--leader-election-lease-duration`)
    #[arg(long, alias = "leader-election-lease-duration", env = "HASHROLL_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// name of the Lease (--enable-ha; Reloader's `--leader-election-id`)
    #[arg(
        long,
        alias = "leader-election-id",
        env = "HASHROLL_LEASE_NAME",
        default_value = "hashroll-leader"
    )]
    pub lease_name: String,
    /// how often the HMAC keys (file or Secret) are read again, so a rotation needs no
    /// restart (0: only at start); a record made with a key not held reads them at once
    #[arg(long, env = "HASHROLL_KEY_RELOAD_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub key_reload_interval: Duration,
    /// changes reaching one workload within this window end in one patch (0 turns it off)
    #[arg(long, env = "HASHROLL_COALESCE_WINDOW", default_value = "1s", value_parser = parse_duration)]
    pub coalesce_window: Duration,
    /// the longest wait before a refused write (403, 400, 405, 422: a quota, a policy, RBAC)
    /// is tried again: the waits start at 1 s and double up to this; transient errors (429,
    /// 5xx, timeouts) back off from 100 ms to 30 s
    #[arg(long, env = "HASHROLL_PERMANENT_ERROR_RETRY", default_value = "2m", value_parser = parse_duration)]
    pub permanent_error_retry: Duration,
    /// the flap breaker: at least this long between two rolls of one workload (0: off);
    /// changes inside it are held and the latest lands when it ends. A workload sets its
    /// own with the annotation hashroll.dev/min-roll-interval (at most 24h)
    #[arg(long, env = "HASHROLL_MIN_ROLL_INTERVAL", default_value = "0s", value_parser = parse_duration)]
    pub min_roll_interval: Duration,
    /// pause every roll (for an incident); what changed meanwhile rolls once, with the data
    /// then current, when hashroll runs without it (the switch ConfigMap does the same live)
    #[arg(long, env = "HASHROLL_PAUSED")]
    pub paused: bool,
    /// at most this many workloads rolling at once, cluster-wide (0: no limit): a roll counts
    /// until its controller reports the rollout complete or failed (or --rollout-timeout);
    /// the next waits its namespace's turn
    #[arg(long, env = "HASHROLL_MAX_CONCURRENT_ROLLOUTS", default_value_t = 0)]
    pub max_concurrent_rollouts: usize,
    // fair admission
    /// threads answering costly reviews (one naming a reload list, or a body above 64 KiB)
    /// at the lowest CPU priority, taken round robin across namespaces; one namespace holds
    /// at most half of them (at least one)
    #[arg(long, env = "HASHROLL_ADMISSION_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub admission_threads: u16,
    /// costly reviews of one namespace waiting at most; more are admitted at once without a
    /// record (a warning says so; the watcher adds the record)
    #[arg(long, env = "HASHROLL_ADMISSION_QUEUE_PER_NAMESPACE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub admission_queue_per_namespace: u16,
    /// costly reviews waiting at most, all namespaces together
    #[arg(long, env = "HASHROLL_ADMISSION_QUEUE_TOTAL", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=16384))]
    pub admission_queue_total: u16,
    #[command(flatten)]
    pub gate: GateArgs,
    /// global limit on the watcher's writes per second: rolls and record-only patches alike
    #[arg(
        long,
        env = "HASHROLL_MAX_ROLLOUTS_PER_SECOND",
        default_value_t = 200.0
    )]
    pub max_rollouts_per_second: f64,
    /// largest AdmissionReview body accepted, in bytes
    #[arg(long, env = "HASHROLL_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    #[arg(
        long,
        env = "HASHROLL_AUTO_ANNOTATION",
        default_value = "reloader.stakater.com/auto"
    )]
    pub auto_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_CONFIGMAP_AUTO_ANNOTATION",
        default_value = "configmap.reloader.stakater.com/auto"
    )]
    pub configmap_auto_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRET_AUTO_ANNOTATION",
        default_value = "secret.reloader.stakater.com/auto"
    )]
    pub secret_auto_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_CONFIGMAP_ANNOTATION",
        default_value = "configmap.reloader.stakater.com/reload"
    )]
    pub configmap_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRET_ANNOTATION",
        default_value = "secret.reloader.stakater.com/reload"
    )]
    pub secret_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_CONFIGMAP_EXCLUDE_ANNOTATION",
        default_value = "configmaps.exclude.reloader.stakater.com/reload"
    )]
    pub configmap_exclude_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRET_EXCLUDE_ANNOTATION",
        default_value = "secrets.exclude.reloader.stakater.com/reload"
    )]
    pub secret_exclude_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRETPROVIDERCLASS_AUTO_ANNOTATION",
        default_value = "secretproviderclass.reloader.stakater.com/auto"
    )]
    pub secretproviderclass_auto_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRETPROVIDERCLASS_ANNOTATION",
        default_value = "secretproviderclass.reloader.stakater.com/reload"
    )]
    pub secretproviderclass_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SECRETPROVIDERCLASS_EXCLUDE_ANNOTATION",
        default_value = "secretproviderclasses.exclude.reloader.stakater.com/reload"
    )]
    pub secretproviderclass_exclude_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_AUTO_SEARCH_ANNOTATION",
        default_value = "reloader.stakater.com/search"
    )]
    pub auto_search_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_SEARCH_MATCH_ANNOTATION",
        default_value = "reloader.stakater.com/match"
    )]
    pub search_match_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_IGNORE_ANNOTATION",
        default_value = "reloader.stakater.com/ignore"
    )]
    pub ignore_annotation: String,
    #[arg(
        long,
        env = "HASHROLL_PAUSE_DEPLOYMENT_ANNOTATION",
        default_value = "deployment.reloader.stakater.com/pause-period"
    )]
    pub pause_deployment_annotation: String,
    /// the annotation on a Deployment paused by `pause-period` that says when
    #[arg(
        long,
        env = "HASHROLL_PAUSE_DEPLOYMENT_TIME_ANNOTATION",
        default_value = crate::core::names::PAUSED_AT
    )]
    pub pause_deployment_time_annotation: String,

    // Reloader's flags that have no hashroll flag of their own (src/cmd/cli/reloader.rs)
    /// the namespace of the Lease (--enable-ha; default: hashroll's own)
    #[arg(long = "leader-election-namespace", env = "HASHROLL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// how long a Lease holder keeps writing after it sent a renewal, so it stops before
    /// anyone else may take over (default 2/3 of the lease duration; must be shorter)
    #[arg(long = "leader-election-renew-deadline", env = "HASHROLL_LEASE_RENEW_DEADLINE", value_parser = parse_duration)]
    pub lease_renew_deadline: Option<Duration>,
    /// how often the Lease is renewed or tried (default 1/4 of the lease duration; must be
    /// shorter than the renew deadline)
    #[arg(long = "leader-election-retry-period", env = "HASHROLL_LEASE_RETRY_PERIOD", value_parser = parse_duration)]
    pub lease_retry_period: Option<Duration>,
    /// hand the Lease back on SIGTERM so another replica takes over at once (false: it
    /// expires after the lease duration)
    #[arg(long = "leader-election-release-on-cancel", env = "HASHROLL_LEASE_RELEASE_ON_CANCEL", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub lease_release_on_cancel: bool,
    /// serve a CPU profile in pprof format at /debug/pprof/profile?seconds=N on
    /// --pprof-addr (off by default: the endpoint has no authentication)
    #[arg(long, env = "HASHROLL_ENABLE_PPROF", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub enable_pprof: bool,
    /// plain-HTTP address of the profile endpoint (--enable-pprof)
    #[arg(long, env = "HASHROLL_PPROF_ADDR", default_value = "127.0.0.1:6060", value_parser = parse_listen_addr)]
    pub pprof_addr: SocketAddr,
    /// OpenShift DeploymentConfigs (apps.openshift.io/v1): `true` watches and stamps them
    /// as a kind with its pod template at spec.template, as soon as discovery shows them
    #[arg(long, env = "HASHROLL_IS_OPENSHIFT", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool_str)]
    pub is_openshift: Option<bool>,
    /// Reloader's `env-vars` or `annotations`: accepted; hashroll always rolls by its one
    /// pod-template annotation, the roll token (a start-up line says so)
    #[arg(long, env = "HASHROLL_RELOAD_STRATEGY", value_parser = ["env-vars", "annotations"])]
    pub reload_strategy: Option<String>,
    /// Reloader's: accepted; hashroll always catches up at start (a start-up line says so)
    #[arg(long, env = "HASHROLL_SYNC_AFTER_RESTART", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool_str)]
    pub sync_after_restart: Option<bool>,
    /// Reloader v2's health address: hashroll serves /healthz and /readyz on this address
    /// too (they are always on --metrics-addr)
    #[arg(long, env = "HASHROLL_HEALTH_ADDR", value_parser = parse_listen_addr)]
    pub health_addr: Option<SocketAddr>,
    /// Reloader v2's: accepted; the raw sink (and --webhook-url) always posts structured
    /// JSON (a start-up line says so)
    #[arg(long, env = "HASHROLL_ALERT_STRUCTURED", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool_str)]
    pub alert_structured: Option<bool>,
}

/// `--resources-to-ignore`: Reloader's words in any case.
fn parse_resource_kind(v: &str) -> Result<String, String> {
    match v.to_ascii_lowercase().as_str() {
        "configmaps" => Ok("configmaps".into()),
        "secrets" => Ok("secrets".into()),
        _ => Err(format!("{v:?}: expected configMaps or secrets")),
    }
}
