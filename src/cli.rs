//! The command line: flags (Reloader's names where Reloader has one), the subcommands, and
//! the one path from an error to an exit code (2: bad flags or files, 1: failed at run time).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::config::Settings;

/// The binary's entry: parse, then run the command; every error leaves through one place.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // installed as `kubectl-hashroll`, kubectl runs it as `kubectl hashroll ...`: the help
    // and errors say so
    let as_plugin = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kubectl-"));
    let mut cmd = <Cli as clap::CommandFactory>::command();
    if as_plugin {
        cmd = cmd.bin_name("kubectl hashroll");
    }
    let parsed = cmd
        .try_get_matches_from(argv)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // one crypto provider, installed explicitly, before any TLS is set up
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("hashroll: a rustls crypto provider was already installed");
    }
    // the kinds named by flag join the kind table before anything reads it
    let custom = match &cli.command {
        Command::Explain(a) => &a.workload_kinds,
        Command::Run(a) => &a.workload_kinds,
        Command::Migrate(a) => &a.workload_kinds,
    };
    if let Err(why) = crate::core::kind::register_custom(custom) {
        eprintln!("hashroll: --workload-kind: {why}");
        return ExitCode::from(2);
    }
    let (who, result) = match cli.command {
        Command::Explain(args) => ("hashroll explain", explain(*args)),
        Command::Migrate(args) => ("hashroll migrate", migrate(*args)),
        Command::Run(args) => ("hashroll", run(*args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().map_err(Error::Runtime)
}

fn explain(args: ExplainArgs) -> Result<(), Error> {
    let text = runtime(false)?.block_on(crate::explain::command(args))?;
    print!("{text}");
    Ok(())
}

fn migrate(args: MigrateArgs) -> Result<(), Error> {
    let text = runtime(false)?.block_on(crate::migrate::command(args))?;
    print!("{text}");
    Ok(())
}

fn run(args: RunArgs) -> Result<(), Error> {
    // everything that can be checked before starting is checked here: exit code 2
    let check = args.check;
    let settings = Settings::from_args(args)?;
    if check {
        println!("hashroll: flags and files are good");
        return Ok(());
    }
    crate::telemetry::init(&settings.args.log_format, &settings.args.log_level)?;
    let res = runtime(true)?.block_on(crate::app::run(settings));
    if let Err(e) = &res {
        tracing::error!(error = %e, "hashroll stopped");
    }
    res
}

#[derive(Debug, Parser)]
#[command(
    name = "hashroll",
    version,
    about = "Rolls workloads when the ConfigMaps and Secrets they use change (Reloader-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook and the watcher.
    Run(Box<RunArgs>),
    /// Explain what a workload tracks and why, or what a change to a source would roll.
    Explain(Box<ExplainArgs>),
    /// Remove what Reloader left in pod templates (a dry run unless --apply).
    Migrate(Box<MigrateArgs>),
}

/// Flags of safe rollouts `run` and `explain` share.
#[derive(Debug, Args, Clone)]
pub struct GateArgs {
    /// a rollout of an earlier wave not complete within this counts as failed and holds
    /// the later waves (a workload sets its own with hashroll.dev/rollout-timeout)
    #[arg(long, env = "HASHROLL_ROLLOUT_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub rollout_timeout: Duration,
    /// the ConfigMap in hashroll's namespace whose `paused: "true"` pauses every roll and
    /// whose `paused-namespaces: "a,b"` pauses those namespaces' rolls ("": no switch)
    #[arg(
        long,
        env = "HASHROLL_SWITCH_CONFIGMAP",
        default_value = "hashroll-switches"
    )]
    pub switch_configmap: String,
    /// the Namespace label whose value names the roll window, `window.<value>` in the
    /// switch ConfigMap, of the namespace's workloads that set none ("": no namespace
    /// windows)
    #[arg(
        long,
        env = "HASHROLL_WINDOW_NAMESPACE_LABEL",
        default_value = "",
        value_parser = parse_label_key
    )]
    pub window_namespace_label: String,
}

/// A label key (`[prefix/]name`: a DNS subdomain of at most 253 characters, a name of at
/// most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric), or "".
fn parse_label_key(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Ok(String::new());
    }
    let (prefix, name) = match v.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    let alnum_ends = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let name_ok = name.len() <= 63
        && alnum_ends(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|l| {
                l.len() <= 63
                    && alnum_ends(l)
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if name_ok && prefix_ok {
        Ok(v.to_string())
    } else {
        Err(format!("{v:?} is not a label key ([prefix/]name)"))
    }
}

/// Flags `run` and `explain` share: where the key is, and the names of what is written.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// file holding the installation's HMAC key (else the Secret --hmac-key-secret in
    /// hashroll's namespace)
    #[arg(long, env = "HASHROLL_HMAC_KEY_FILE")]
    pub hmac_key_file: Option<PathBuf>,
    /// file holding the key --hmac-key-file replaced, while records made with it are
    /// re-recorded (key rotation; with the Secret, its `previous` field)
    #[arg(
        long,
        env = "HASHROLL_HMAC_PREVIOUS_KEY_FILE",
        requires = "hmac_key_file"
    )]
    pub hmac_previous_key_file: Option<PathBuf>,
    /// name of the Secret holding the HMAC key when no file is given
    #[arg(
        long,
        env = "HASHROLL_HMAC_KEY_SECRET",
        default_value = "hashroll-hmac-key"
    )]
    pub hmac_key_secret: String,
    /// annotation on the workload holding the record
    #[arg(
        long,
        env = "HASHROLL_RECORD_ANNOTATION",
        default_value = "hashroll.dev/sources"
    )]
    pub record_annotation: String,
    /// annotation on the pod template holding the roll token
    #[arg(
        long,
        env = "HASHROLL_TOKEN_ANNOTATION",
        default_value = "hashroll.dev/config-hash"
    )]
    pub token_annotation: String,
}

/// A value that is a secret (a webhook URL): `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// deployment/NAME, daemonset/NAME, statefulset/NAME, configmap/NAME or secret/NAME
    pub target: String,
    /// the namespace of the target
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
    /// text or json
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// hashroll's own namespace (where the HMAC-key Secret lives)
    #[arg(long, env = "HASHROLL_NAMESPACE", default_value = "hashroll")]
    pub hashroll_namespace: String,
    /// as the running hashroll's flag
    #[arg(long, env = "HASHROLL_AUTO_RELOAD_ALL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub auto_reload_all: bool,
    /// as the running hashroll's flag
    #[arg(long, env = "HASHROLL_ENABLE_CSI_INTEGRATION", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub enable_csi_integration: bool,
    /// as the running hashroll's flag
    #[arg(long = "workload-kind", value_name = "GROUP/VERSION/KIND=PATH")]
    pub workload_kinds: Vec<crate::core::kind::CustomKind>,
    /// as the running hashroll's flag (when the next roll may happen)
    #[arg(long, env = "HASHROLL_MIN_ROLL_INTERVAL", default_value = "0s", value_parser = parse_duration)]
    pub min_roll_interval: Duration,
    /// as the running hashroll's (explain reads the switches in --hashroll-namespace)
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Debug, Args, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// what to migrate from (the only one today): remove Reloader's STAKATER_* variables
    /// and last-reloaded-from annotations from pod templates
    #[arg(long)]
    pub from_reloader: bool,
    /// only this namespace (default: every namespace)
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// change the workloads (default: a dry run that lists what would change)
    #[arg(long)]
    pub apply: bool,
    /// at most this many workloads patched (so rolled) per second
    #[arg(long, default_value = "200")]
    pub max_rollouts_per_second: f64,
    /// hashroll's own namespace (where the HMAC-key Secret lives)
    #[arg(long, env = "HASHROLL_NAMESPACE", default_value = "hashroll")]
    pub hashroll_namespace: String,
    /// as the running hashroll's flag
    #[arg(long, env = "HASHROLL_AUTO_RELOAD_ALL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub auto_reload_all: bool,
    /// as the running hashroll's flag
    #[arg(long = "workload-kind", value_name = "GROUP/VERSION/KIND=PATH")]
    pub workload_kinds: Vec<crate::core::kind::CustomKind>,
}

pub(crate) fn parse_bool_str(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::core::syntax::parse_go_duration(s)
        .ok_or_else(|| format!("expected a duration such as 500ms, 1s or 2m, got {s:?}"))
}

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
    #[arg(long, env = "HASHROLL_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// plain-HTTP address of /metrics, /healthz, /readyz
    #[arg(long, env = "HASHROLL_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// hashroll's own namespace (default: $POD_NAMESPACE, else "hashroll")
    #[arg(long, env = "HASHROLL_NAMESPACE")]
    pub namespace: Option<String>,
    /// hashroll's own Deployment (in its namespace): the Secrets and the Lease hashroll
    /// creates are owned by it, so deleting it (`helm uninstall`) deletes them too
    #[arg(long, env = "HASHROLL_OWNER_DEPLOYMENT")]
    pub owner_deployment: Option<String>,

    /// configMaps or secrets: never react to this kind
    #[arg(long, env = "HASHROLL_RESOURCES_TO_IGNORE", value_parser = ["configMaps", "configmaps", "secrets"])]
    pub resources_to_ignore: Option<String>,
    /// comma list of namespaces to ignore
    #[arg(long, env = "HASHROLL_NAMESPACES_TO_IGNORE", default_value = "")]
    pub namespaces_to_ignore: String,
    /// comma list of namespaces to watch (all when empty)
    #[arg(long, env = "HASHROLL_NAMESPACES", default_value = "")]
    pub namespaces: String,
    /// label selector of namespaces to watch
    #[arg(long, env = "HASHROLL_NAMESPACE_SELECTOR", default_value = "")]
    pub namespace_selector: String,
    /// label selector of ConfigMaps/Secrets to react to
    #[arg(long, env = "HASHROLL_RESOURCE_LABEL_SELECTOR", default_value = "")]
    pub resource_label_selector: String,
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
    #[arg(long, env = "HASHROLL_IGNORED_WORKLOAD_TYPES", default_value = "")]
    pub ignored_workload_types: String,
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
    #[arg(long = "workload-kind", value_name = "GROUP/VERSION/KIND=PATH")]
    pub workload_kinds: Vec<crate::core::kind::CustomKind>,
    /// send a message on each rollout (Reloader's `ALERT_ON_RELOAD`)
    #[arg(long, env = "ALERT_ON_RELOAD", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub alert_on_reload: bool,
    /// `slack`, `teams`, `gchat`; anything else posts plain JSON (Reloader's `ALERT_SINK`)
    #[arg(long, env = "ALERT_SINK", default_value = "webhook")]
    pub alert_sink: String,
    /// where alerts go (Reloader's `ALERT_WEBHOOK_URL`); a secret, never logged
    #[arg(long, env = "ALERT_WEBHOOK_URL", hide_env_values = true)]
    pub alert_webhook_url: Option<Secret>,
    /// an HTTP(S) proxy for alerts (Reloader's `ALERT_WEBHOOK_PROXY`)
    #[arg(long, env = "ALERT_WEBHOOK_PROXY", hide_env_values = true)]
    pub alert_webhook_proxy: Option<Secret>,
    /// added to every message, e.g. the cluster's name (Reloader's `ALERT_ADDITIONAL_INFO`)
    #[arg(long, env = "ALERT_ADDITIONAL_INFO", default_value = "")]
    pub alert_additional_info: String,
    /// Reloader's `--webhook-url`: on a change, POST it here (plain JSON) instead of
    /// rolling; the record is still written, so the change is posted once
    #[arg(long, env = "HASHROLL_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<Secret>,
    /// text or json
    #[arg(long, env = "HASHROLL_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// a tracing filter: info, debug, hashroll=debug,kube=info, ...
    #[arg(long, env = "HASHROLL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// only the holder of a Lease writes
    #[arg(long, env = "HASHROLL_ENABLE_HA", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = parse_bool_str)]
    pub enable_ha: bool,
    /// after SIGTERM: how long the webhook still answers (not ready, so the Service's
    /// endpoints drop it meanwhile) before it closes its port; 0: at once
    #[arg(long, env = "HASHROLL_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// how long a Lease holder stays the writer without renewing (--enable-ha)
    #[arg(long, env = "HASHROLL_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// name of the Lease in hashroll's namespace (--enable-ha)
    #[arg(long, env = "HASHROLL_LEASE_NAME", default_value = "hashroll-leader")]
    pub lease_name: String,
    /// how often the HMAC keys (file or Secret) are read again, so a rotation needs no
    /// restart (0: only at start); a record made with a key not held reads them at once
    #[arg(long, env = "HASHROLL_KEY_RELOAD_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub key_reload_interval: Duration,
    /// changes reaching one workload within this window end in one patch (0 turns it off)
    #[arg(long, env = "HASHROLL_COALESCE_WINDOW", default_value = "1s", value_parser = parse_duration)]
    pub coalesce_window: Duration,
    /// how long a roll refused for good (403, 400, 405, 422: RBAC, a policy) waits before it
    /// is tried again; transient errors (409, 429, 5xx, timeouts) back off from 100 ms to 30 s
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
    #[command(flatten)]
    pub gate: GateArgs,
    /// global limit on roll patches per second
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_label_is_a_label_key() {
        for ok in ["", "rolls", "example.com/roll-window", "a.b-c/x_y.z"] {
            assert_eq!(parse_label_key(ok).as_deref(), Ok(ok));
        }
        let long = "a".repeat(64);
        let long_prefix = format!("{}/x", "a.".repeat(130));
        for bad in [
            "-x",
            "x-",
            "a b",
            "Example.com/x",
            "/x",
            "x/",
            &long,
            &long_prefix,
        ] {
            assert!(parse_label_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reloader_boolean_flag_forms_parse() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["hashroll", "run", "--tls-cert-file=c", "--tls-key-file=k"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).expect("parses").command {
                Command::Run(a) => *a,
                Command::Explain(_) | Command::Migrate(_) => unreachable!("run was parsed"),
            }
        };
        let a = parse(&[]);
        assert!(a.reload_on_create && a.reload_on_delete && !a.auto_reload_all && !a.enable_ha);
        let a = parse(&[
            "--reload-on-create=false",
            "--reload-on-delete",
            "false",
            "--auto-reload-all",
            "--enable-ha=true",
        ]);
        assert!(!a.reload_on_create && !a.reload_on_delete && a.auto_reload_all && a.enable_ha);
        let a = parse(&["--auto-reload-all=false"]);
        assert!(!a.auto_reload_all);
        // Argo Rollouts: unset (discovery decides), Reloader's spelling, ours
        assert_eq!(a.is_argo_rollouts, None);
        assert_eq!(
            parse(&["--is-Argo-Rollouts=true"]).is_argo_rollouts,
            Some(true)
        );
        assert_eq!(
            parse(&["--is-argo-rollouts=false"]).is_argo_rollouts,
            Some(false)
        );
        assert_eq!(parse(&["--is-argo-rollouts"]).is_argo_rollouts, Some(true));
        assert!(
            Cli::try_parse_from([
                "hashroll",
                "run",
                "--tls-cert-file=c",
                "--tls-key-file=k",
                "--reload-on-create=maybe"
            ])
            .is_err()
        );
    }

    #[test]
    fn bool_strings_follow_go_parse_bool() {
        assert_eq!(parse_bool_str("True"), Ok(true));
        assert_eq!(parse_bool_str("0"), Ok(false));
        assert!(parse_bool_str("yes").is_err());
    }
}
