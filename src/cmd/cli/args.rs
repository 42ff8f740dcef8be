//! The clap types of `explain` and `migrate`, the flags they share with `run`, and the
//! value parsers.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

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
pub(super) fn parse_label_key(v: &str) -> Result<String, String> {
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

impl KeyArgs {
    /// Where these flags put the keys: the files when one is given, else the Secret.
    pub(crate) fn place(&self) -> crate::services::key::KeyPlace<'_> {
        match &self.hmac_key_file {
            Some(current) => crate::services::key::KeyPlace::Files {
                current,
                previous: self.hmac_previous_key_file.as_deref(),
            },
            None => crate::services::key::KeyPlace::Secret(&self.hmac_key_secret),
        }
    }
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
    /// as the running hashroll's: whether this MutatingWebhookConfiguration exists says
    /// whether workloads are stamped at admission (none: a namespaced, watcher-only install)
    #[arg(long, env = "HASHROLL_WEBHOOK_CONFIG", default_value = "hashroll")]
    pub webhook_config: String,
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
    /// print hashroll's chart values that do what the running Reloader does (its
    /// Deployment, found by its image, or --reloader-deployment; or --values); changes
    /// nothing
    #[arg(long)]
    pub chart_values: bool,
    /// with --chart-values: read this Reloader chart values file instead of the cluster
    #[arg(long, value_name = "FILE", requires = "chart_values")]
    pub values: Option<PathBuf>,
    /// with --chart-values: Reloader's Deployment, NAMESPACE/NAME
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        requires = "chart_values",
        conflicts_with = "values"
    )]
    pub reloader_deployment: Option<String>,
}

pub(super) fn parse_bool_str(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

/// A listen address: `HOST:PORT`, or Go's `:PORT` (every IPv4 address, as Reloader's
/// `--metrics-addr=:9090`).
pub(super) fn parse_listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse()
        .map_err(|_| format!("expected HOST:PORT or :PORT, got {s:?}"))
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::core::syntax::parse_go_duration(s)
        .ok_or_else(|| format!("expected a duration such as 500ms, 1s or 2m, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::cli::{Cli, Command};
    use clap::Parser;

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
    fn listen_addresses_take_gos_port_only_form() {
        assert_eq!(
            parse_listen_addr(":9090").map(|a| a.to_string()).as_deref(),
            Ok("0.0.0.0:9090")
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:6060").map(|a| a.port()),
            Ok(6060)
        );
        assert!(parse_listen_addr("localhost").is_err());
        assert!(parse_listen_addr(":").is_err());
    }

    #[test]
    fn bool_strings_follow_go_parse_bool() {
        assert_eq!(parse_bool_str("True"), Ok(true));
        assert_eq!(parse_bool_str("0"), Ok(false));
        assert!(parse_bool_str("yes").is_err());
    }
}
