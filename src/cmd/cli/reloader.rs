//! Reloader's configuration, read by `hashroll run`: every flag of Reloader v1.4 and of its
//! v2 (controller-runtime) branch, and v2's unprefixed environment names, so a Deployment
//! that ran Reloader with its flags and environment starts hashroll as it is.
//!
//! [`RELOADER_FLAGS`] is the one list of Reloader's flag names: each is a flag of `run` (its
//! long name or an alias), which a unit test checks. Reloader v2 reads every flag from the
//! environment too, named as the flag in upper case with `_` for `-` (`RELOAD_ON_CREATE`);
//! [`with_reloader_env`] gives each such flag that name as its environment variable when
//! neither the flag nor hashroll's own `HASHROLL_*` variable is set (precedence: the flag,
//! then `HASHROLL_*`, then Reloader's name). Reloader v1's own environment names
//! ([`LEGACY_ENV`]) are read the same way. Only Reloader's names are read unprefixed: a
//! hashroll-only flag never takes a generic name such as `PAUSED` from the environment.
//!
//! Where hashroll's way replaces a Reloader flag, the flag is accepted and
//! [`replaced_notices`] gives the start-up line that says what hashroll does instead.

use clap::Command;

use super::run_args::RunArgs;

/// Every flag of Reloader v1.4.21 and v2, by its name there.
pub(crate) const RELOADER_FLAGS: &[&str] = &[
    "auto-reload-all",
    "configmap-annotation",
    "secret-annotation",
    "auto-annotation",
    "ignore-annotation",
    "configmap-auto-annotation",
    "secret-auto-annotation",
    "auto-search-annotation",
    "search-match-annotation",
    "configmap-exclude-annotation",
    "secret-exclude-annotation",
    "secretproviderclass-auto-annotation",
    "secretproviderclass-annotation",
    "secretproviderclass-exclude-annotation",
    "pause-deployment-annotation",
    "pause-deployment-time-annotation",
    "log-format",
    "log-level",
    "webhook-url",
    "resources-to-ignore",
    "ignored-workload-types",
    "namespaces",
    "namespaces-to-ignore",
    "namespace-selector",
    "resource-label-selector",
    "is-Argo-Rollouts",
    "is-openshift",
    "reload-strategy",
    "reload-on-create",
    "reload-on-delete",
    "enable-ha",
    "sync-after-restart",
    "enable-pprof",
    "pprof-addr",
    "enable-csi-integration",
    "leader-election-id",
    "leader-election-namespace",
    "leader-election-lease-duration",
    "leader-election-renew-deadline",
    "leader-election-retry-period",
    "leader-election-release-on-cancel",
    "metrics-addr",
    "health-addr",
    "alert-on-reload",
    "alert-webhook-url",
    "alert-sink",
    "alert-proxy",
    "alert-additional-info",
    "alert-structured",
];

/// Reloader's environment names that are not a flag's name: (variable, the flag of `run`
/// it sets). `KUBERNETES_NAMESPACE` is Reloader's one-namespace mode.
pub(crate) const LEGACY_ENV: &[(&str, &str)] = &[
    ("ALERT_WEBHOOK_PROXY", "alert-proxy"),
    ("KUBERNETES_NAMESPACE", "namespaces"),
    ("RELOADER_NAMESPACE", "namespace"),
    ("RELOADER_DEPLOYMENT_NAME", "owner-deployment"),
];

/// Reloader v2's environment name of a flag: `is-Argo-Rollouts` → `IS_ARGO_ROLLOUTS`.
pub(crate) fn env_name(flag: &str) -> String {
    flag.to_ascii_uppercase().replace('-', "_")
}

/// Each of Reloader's environment names hashroll reads, with the flag of `run` it sets,
/// in order of precedence per flag (a flag's own name first, then the legacy ones).
pub(crate) fn env_names() -> Vec<(String, &'static str)> {
    RELOADER_FLAGS
        .iter()
        .map(|f| (env_name(f), *f))
        .chain(LEGACY_ENV.iter().map(|(e, f)| (e.to_string(), *f)))
        .collect()
}

/// The id of the argument of `run` whose long name or alias is `flag`.
fn arg_id(run: &Command, flag: &str) -> Option<clap::Id> {
    run.get_arguments()
        .find(|a| {
            a.get_long() == Some(flag) || a.get_all_aliases().is_some_and(|v| v.contains(&flag))
        })
        .map(|a| a.get_id().clone())
}

/// `cmd` with Reloader's environment names in force where they apply (see the module doc);
/// also returns which were taken, as (variable, flag), for the start-up log.
pub(crate) fn with_reloader_env(
    cmd: Command,
    env: impl Fn(&str) -> Option<String>,
) -> (Command, Vec<(String, &'static str)>) {
    let Some(run) = cmd.find_subcommand("run") else {
        return (cmd, Vec::new());
    };
    let mut taken: Vec<(String, &'static str)> = Vec::new();
    let mut set: Vec<(clap::Id, String)> = Vec::new();
    for (var, flag) in env_names() {
        let Some(id) = arg_id(run, flag) else {
            continue;
        };
        let Some(arg) = run.get_arguments().find(|a| a.get_id() == &id) else {
            continue;
        };
        // hashroll's own variable wins; of Reloader's names, the first set wins
        let ours_set = arg
            .get_env()
            .and_then(|e| e.to_str())
            .is_some_and(|e| env(e).is_some());
        if ours_set || set.iter().any(|(i, _)| i == &id) || env(&var).is_none() {
            continue;
        }
        set.push((id, var.clone()));
        taken.push((var, flag));
    }
    let cmd = cmd.mut_subcommand("run", |mut run| {
        for (id, var) in set {
            run = run.mut_arg(id, |a| a.env(var));
        }
        run
    });
    (cmd, taken)
}

/// Of the names [`with_reloader_env`] put in force, those whose value the parse took from
/// the environment (a flag on the command line wins over them).
pub(crate) fn taken_from_env(
    cmd: &Command,
    run: &clap::ArgMatches,
    in_force: Vec<(String, &'static str)>,
) -> Vec<(String, &'static str)> {
    in_force
        .into_iter()
        .filter(|(_, flag)| {
            cmd.find_subcommand("run")
                .and_then(|r| arg_id(r, flag))
                .is_some_and(|id| {
                    run.value_source(id.as_str()) == Some(clap::parser::ValueSource::EnvVariable)
                })
        })
        .collect()
}

/// The start-up lines for Reloader's flags that hashroll's way replaces, when set.
pub(crate) fn replaced_notices(args: &RunArgs) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &args.reload_strategy {
        out.push(format!(
            "--reload-strategy={s}: hashroll always rolls by one pod-template annotation, the roll \
             token ({}), which changes only when a tracked source's data does; it adds no \
             environment variable, and a GitOps re-apply that drops it gets it back from the \
             webhook, so nothing rolls twice and the manifest stays in sync",
            args.key.token_annotation
        ));
    }
    if args.sync_after_restart.is_some() {
        out.push(
            "--sync-after-restart: hashroll always catches up at start: a workload whose \
             sources changed while it was down rolls once, the rest are left alone"
                .to_string(),
        );
    }
    if args.alert_structured.is_some() {
        out.push(
            "--alert-structured: hashroll's raw alert sink and --webhook-url always post \
             structured JSON"
                .to_string(),
        );
    }
    if args.is_openshift == Some(false) {
        out.push("--is-openshift=false: DeploymentConfigs are not watched".to_string());
    }
    out
}

/// The kind `--is-openshift` adds: DeploymentConfig, its pod template at `spec.template`.
pub(crate) fn openshift_kind() -> crate::core::kind::CustomKind {
    "apps.openshift.io/v1/DeploymentConfig=spec.template"
        .parse()
        .unwrap_or_else(|e| unreachable!("a fixed, valid kind: {e}"))
}

/// Reloader's log levels in tracing's words: `warning` → `warn`, `fatal`/`panic` → `error`
/// (a filter with targets is left as it is).
pub(crate) fn log_level(level: &str) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        "warning" => "warn".into(),
        "fatal" | "panic" => "error".into(),
        _ => level.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::cli::Cli;
    use clap::CommandFactory;
    use std::collections::BTreeMap;

    #[test]
    fn every_reloader_flag_is_a_flag_of_run() {
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").expect("run");
        for flag in RELOADER_FLAGS {
            assert!(arg_id(run, flag).is_some(), "--{flag} is not a flag of run");
        }
        for (var, flag) in LEGACY_ENV {
            assert!(
                arg_id(run, flag).is_some(),
                "{var}: --{flag} is not a flag of run"
            );
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn reloader_env_names_apply_below_ours() {
        let (_, taken) = with_reloader_env(
            Cli::command(),
            env_of(&[
                ("RELOAD_ON_CREATE", "false"),
                ("NAMESPACES_TO_IGNORE", "kube-system"),
                ("IS_ARGO_ROLLOUTS", "true"),
                // ours is set: Reloader's is not taken
                ("HASHROLL_LOG_LEVEL", "debug"),
                ("LOG_LEVEL", "error"),
                // a flag's own name before the legacy one
                ("ALERT_PROXY", "http://a"),
                ("ALERT_WEBHOOK_PROXY", "http://b"),
                // not a Reloader name: never read
                ("PAUSED", "true"),
            ]),
        );
        let mut vars: Vec<&str> = taken.iter().map(|(v, _)| v.as_str()).collect();
        vars.sort();
        assert_eq!(
            vars,
            [
                "ALERT_PROXY",
                "IS_ARGO_ROLLOUTS",
                "NAMESPACES_TO_IGNORE",
                "RELOAD_ON_CREATE"
            ]
        );
    }

    #[test]
    fn log_levels_of_reloader_read_as_tracing_levels() {
        assert_eq!(log_level("warning"), "warn");
        assert_eq!(log_level("Fatal"), "error");
        assert_eq!(log_level("panic"), "error");
        assert_eq!(log_level("hashroll=debug"), "hashroll=debug");
    }

    #[test]
    fn env_names_are_reloader_v2s() {
        assert_eq!(env_name("is-Argo-Rollouts"), "IS_ARGO_ROLLOUTS");
        assert_eq!(
            env_name("leader-election-lease-duration"),
            "LEADER_ELECTION_LEASE_DURATION"
        );
        assert_eq!(openshift_kind().kind, "DeploymentConfig");
    }
}
