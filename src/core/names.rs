//! Every annotation name hashroll reads or writes on a workload or a source: Reloader's
//! (each overridable by a flag of Reloader's name), hashroll's record and token, and
//! hashroll's own (`hashroll.dev/…`). [`reads`] is the one answer to "which of a workload's
//! annotations does hashroll read": the watcher's store keeps exactly those, so a name added
//! here and read by the core can never be missing from what the watcher checks with (the
//! property test in `core::stamp` holds the two paths equal).
//!
//! The core reads annotations through [`Annotations`], which a map (the webhook's object)
//! and the watcher's compact store both implement: no check builds a map.

use std::collections::BTreeMap;

use super::refs::SourceKind;

/// A workload's wave (default 0).
pub(crate) const WAVE: &str = "hashroll.dev/wave";
/// The workloads a workload follows, `kind/name` comma-separated, in its namespace.
pub(crate) const AFTER: &str = "hashroll.dev/after";
/// `"true"` on a workload, a source or (in hashroll's switch ConfigMap) for a namespace.
pub(crate) const PAUSED: &str = "hashroll.dev/paused";
/// On a source: the change whose failed rollout no longer holds the later waves.
pub(crate) const RELEASE: &str = "hashroll.dev/release";
/// How long a workload's rollout may take before it counts as failed.
pub(crate) const ROLLOUT_TIMEOUT: &str = "hashroll.dev/rollout-timeout";
/// When a workload's rolls may happen (`core::window`).
pub(crate) const ROLL_WINDOW: &str = "hashroll.dev/roll-window";
/// The workload annotations the gate reads.
pub(crate) const GATE_KEYS: [&str; 5] = [WAVE, AFTER, PAUSED, ROLLOUT_TIMEOUT, ROLL_WINDOW];

/// On a Deployment hashroll paused (`pause-period`): when it did (the default of
/// [`AnnotationNames::paused_at`]).
pub(crate) const PAUSED_AT: &str = "deployment.reloader.stakater.com/paused-at";
/// The flap breaker's: a workload's own minimum interval between rolls.
pub(crate) const MIN_ROLL_INTERVAL: &str = "hashroll.dev/min-roll-interval";
/// The flap breaker's: when hashroll last rolled the workload (written in the roll patch
/// while an interval applies).
pub(crate) const LAST_ROLL: &str = "hashroll.dev/last-roll";
/// Reloader's, on an Argo Rollout: `restart` rolls it by `spec.restartAt` instead of a new
/// template.
pub(crate) const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";
/// Reloader's mark on a pod template it rolled (its annotations strategy): `migrate` removes
/// it.
pub(crate) const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";

/// Reloader's annotation names (each overridable by a flag of Reloader's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationNames {
    pub auto: String,
    pub configmap_auto: String,
    pub secret_auto: String,
    pub search: String,
    pub search_match: String,
    pub configmap_reload: String,
    pub secret_reload: String,
    pub configmap_exclude: String,
    pub secret_exclude: String,
    pub ignore: String,
    pub pause_period: String,
    /// on a Deployment paused by `pause_period`: when (`--pause-deployment-time-annotation`)
    pub paused_at: String,
    pub secretproviderclass_auto: String,
    pub secretproviderclass_reload: String,
    pub secretproviderclass_exclude: String,
}

impl Default for AnnotationNames {
    fn default() -> Self {
        AnnotationNames {
            auto: "reloader.stakater.com/auto".into(),
            configmap_auto: "configmap.reloader.stakater.com/auto".into(),
            secret_auto: "secret.reloader.stakater.com/auto".into(),
            search: "reloader.stakater.com/search".into(),
            search_match: "reloader.stakater.com/match".into(),
            configmap_reload: "configmap.reloader.stakater.com/reload".into(),
            secret_reload: "secret.reloader.stakater.com/reload".into(),
            configmap_exclude: "configmaps.exclude.reloader.stakater.com/reload".into(),
            secret_exclude: "secrets.exclude.reloader.stakater.com/reload".into(),
            ignore: "reloader.stakater.com/ignore".into(),
            pause_period: "deployment.reloader.stakater.com/pause-period".into(),
            paused_at: PAUSED_AT.into(),
            secretproviderclass_auto: "secretproviderclass.reloader.stakater.com/auto".into(),
            secretproviderclass_reload: "secretproviderclass.reloader.stakater.com/reload".into(),
            secretproviderclass_exclude:
                "secretproviderclasses.exclude.reloader.stakater.com/reload".into(),
        }
    }
}

impl AnnotationNames {
    /// `<kind>.reloader.stakater.com/auto`: auto for one kind of source.
    pub fn auto_of(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_auto,
            SourceKind::Secret => &self.secret_auto,
            SourceKind::SecretProviderClass => &self.secretproviderclass_auto,
        }
    }
    /// `<kind>.reloader.stakater.com/reload`: the reload list of one kind.
    pub fn reload_of(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_reload,
            SourceKind::Secret => &self.secret_reload,
            SourceKind::SecretProviderClass => &self.secretproviderclass_reload,
        }
    }
    /// `<kinds>.exclude.reloader.stakater.com/reload`: the exclude list of one kind.
    pub fn exclude_of(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_exclude,
            SourceKind::Secret => &self.secret_exclude,
            SourceKind::SecretProviderClass => &self.secretproviderclass_exclude,
        }
    }

    /// The keys whose presence on the workload's metadata means "read the metadata, not the
    /// pod template".
    pub fn opt_in_keys(&self) -> impl Iterator<Item = &str> {
        SourceKind::ALL
            .into_iter()
            .flat_map(|k| [self.auto_of(k), self.reload_of(k), self.exclude_of(k)])
            .chain([self.auto.as_str(), self.search.as_str()])
    }

    /// Every Reloader name the policy reads on a workload.
    fn workload_keys(&self) -> impl Iterator<Item = &str> {
        self.opt_in_keys()
            .chain([self.pause_period.as_str(), self.paused_at.as_str()])
    }
}

/// The names of hashroll's record (on the workload's metadata) and roll token (on its pod
/// template); `--record-annotation` and `--token-annotation` can change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordNames {
    /// on the workload's metadata
    pub record: String,
    /// on the pod template
    pub token: String,
}

impl Default for RecordNames {
    fn default() -> Self {
        RecordNames {
            record: "hashroll.dev/sources".into(),
            token: "hashroll.dev/config-hash".into(),
        }
    }
}

/// What hashroll does with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// read, never written
    Reads,
    /// written by hashroll (and read back)
    Writes,
    /// removed by `hashroll migrate --from-reloader`
    Removes,
}

/// One annotation hashroll reads or writes, under its default name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    pub name: &'static str,
    /// the objects it sits on
    pub on: &'static str,
    pub access: Access,
    /// the `hashroll run` flag that renames it (Reloader's name for the flag)
    pub flag: Option<&'static str>,
    /// what its value means
    pub about: &'static str,
}

/// Every annotation hashroll reads or writes: the reference page is rendered from this
/// list, and the tests hold it to the names above and to the flags' defaults.
pub const EVERY: &[Described] = &[
    Described {
        name: "reloader.stakater.com/auto",
        on: "workload",
        access: Access::Reads,
        flag: Some("auto-annotation"),
        about: "`\"true\"`: track every ConfigMap and Secret the pod template uses; `\"false\"`: track nothing, also under `--auto-reload-all`",
    },
    Described {
        name: "configmap.reloader.stakater.com/auto",
        on: "workload",
        access: Access::Reads,
        flag: Some("configmap-auto-annotation"),
        about: "`\"true\"`: track every ConfigMap the pod template uses",
    },
    Described {
        name: "secret.reloader.stakater.com/auto",
        on: "workload",
        access: Access::Reads,
        flag: Some("secret-auto-annotation"),
        about: "`\"true\"`: track every Secret the pod template uses",
    },
    Described {
        name: "secretproviderclass.reloader.stakater.com/auto",
        on: "workload",
        access: Access::Reads,
        flag: Some("secretproviderclass-auto-annotation"),
        about: "`\"true\"`: track every SecretProviderClass the pod template's CSI volumes use (`--enable-csi-integration`)",
    },
    Described {
        name: "configmap.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("configmap-annotation"),
        about: "comma list of ConfigMap names (each an anchored regex) to track, used by the pod template or not",
    },
    Described {
        name: "secret.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("secret-annotation"),
        about: "comma list of Secret names (each an anchored regex) to track, used by the pod template or not",
    },
    Described {
        name: "secretproviderclass.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("secretproviderclass-annotation"),
        about: "comma list of SecretProviderClass names to track (`--enable-csi-integration`)",
    },
    Described {
        name: "configmaps.exclude.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("configmap-exclude-annotation"),
        about: "comma list of ConfigMap names `auto` leaves out",
    },
    Described {
        name: "secrets.exclude.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("secret-exclude-annotation"),
        about: "comma list of Secret names `auto` leaves out",
    },
    Described {
        name: "secretproviderclasses.exclude.reloader.stakater.com/reload",
        on: "workload",
        access: Access::Reads,
        flag: Some("secretproviderclass-exclude-annotation"),
        about: "comma list of SecretProviderClass names `auto` leaves out",
    },
    Described {
        name: "reloader.stakater.com/search",
        on: "workload",
        access: Access::Reads,
        flag: Some("auto-search-annotation"),
        about: "`\"true\"`: track the sources the pod template uses that carry the match annotation",
    },
    Described {
        name: "reloader.stakater.com/match",
        on: "ConfigMap, Secret",
        access: Access::Reads,
        flag: Some("search-match-annotation"),
        about: "`\"true\"`: a source for the workloads in `search` mode",
    },
    Described {
        name: "reloader.stakater.com/ignore",
        on: "ConfigMap, Secret",
        access: Access::Reads,
        flag: Some("ignore-annotation"),
        about: "`\"true\"`: a change to this source rolls nothing",
    },
    Described {
        name: "deployment.reloader.stakater.com/pause-period",
        on: "Deployment",
        access: Access::Reads,
        flag: Some("pause-deployment-annotation"),
        about: "a duration (`5m`): after a roll, keep the Deployment paused that long so further changes land in the same rollout",
    },
    Described {
        name: PAUSED_AT,
        on: "Deployment",
        access: Access::Writes,
        flag: Some("pause-deployment-time-annotation"),
        about: "when hashroll paused the Deployment for its `pause-period`",
    },
    Described {
        name: ROLLOUT_STRATEGY,
        on: "Argo Rollout",
        access: Access::Reads,
        flag: None,
        about: "`restart`: roll by `spec.restartAt` instead of a new pod template",
    },
    Described {
        name: "hashroll.dev/sources",
        on: "workload",
        access: Access::Writes,
        flag: Some("record-annotation"),
        about: "the record: each tracked source and its keyed digest (never the data)",
    },
    Described {
        name: "hashroll.dev/config-hash",
        on: "pod template",
        access: Access::Writes,
        flag: Some("token-annotation"),
        about: "the roll token: changes only when a tracked source does, which rolls the workload",
    },
    Described {
        name: WAVE,
        on: "workload",
        access: Access::Reads,
        flag: None,
        about: "a number (default 0, at most 1000): within one change, roll once every lower wave tracking the source has rolled and completed",
    },
    Described {
        name: AFTER,
        on: "workload",
        access: Access::Reads,
        flag: None,
        about: "`kind/name` comma list of workloads of its namespace to roll after, as waves do",
    },
    Described {
        name: PAUSED,
        on: "workload, ConfigMap, Secret, Namespace",
        access: Access::Reads,
        flag: None,
        about: "`\"true\"`: hold the rolls of this workload, of this source's changes, or of this namespace; removing it rolls what is due once",
    },
    Described {
        name: RELEASE,
        on: "ConfigMap, Secret",
        access: Access::Reads,
        flag: None,
        about: "a change (the 16 hex digits the Events print) whose failed rollout no longer holds the later waves",
    },
    Described {
        name: ROLLOUT_TIMEOUT,
        on: "workload",
        access: Access::Reads,
        flag: None,
        about: "a duration: a rollout not complete that long after the roll counts as failed (default `--rollout-timeout`)",
    },
    Described {
        name: ROLL_WINDOW,
        on: "workload",
        access: Access::Reads,
        flag: None,
        about: "when rolls may happen, e.g. `Mon-Fri 02:00-05:00 Europe/Berlin`; a change outside waits for the next window",
    },
    Described {
        name: MIN_ROLL_INTERVAL,
        on: "workload",
        access: Access::Reads,
        flag: None,
        about: "a duration (at most 24h): at least this long between two rolls of the workload (default `--min-roll-interval`)",
    },
    Described {
        name: LAST_ROLL,
        on: "workload",
        access: Access::Writes,
        flag: None,
        about: "when hashroll last rolled the workload, written while a minimum interval applies",
    },
    Described {
        name: LAST_RELOADED_FROM,
        on: "pod template",
        access: Access::Removes,
        flag: None,
        about: "Reloader's mark of its last reload, removed by `migrate --from-reloader`",
    },
];

/// Whether hashroll reads the workload annotation `name` (the policy, the record, the
/// gate, the breaker, pause-period, Argo's restart strategy): what the watcher keeps.
pub(crate) fn reads(names: &AnnotationNames, record: &RecordNames, name: &str) -> bool {
    names.workload_keys().any(|n| n == name)
        || name == record.record
        || name == record.token
        || GATE_KEYS.contains(&name)
        || [ROLLOUT_STRATEGY, MIN_ROLL_INTERVAL, LAST_ROLL].contains(&name)
}

/// Annotations as the core reads them: by name, one value each.
pub trait Annotations {
    /// The value of annotation `name`.
    fn value(&self, name: &str) -> Option<&str>;
    /// Whether annotation `name` is there.
    fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }
}

impl Annotations for BTreeMap<String, String> {
    fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<A: Annotations + ?Sized> Annotations for &A {
    fn value(&self, name: &str) -> Option<&str> {
        (**self).value(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_name_hashroll_acts_on_and_nothing_else() {
        let (n, r) = (AnnotationNames::default(), RecordNames::default());
        for k in SourceKind::ALL {
            for name in [n.auto_of(k), n.reload_of(k), n.exclude_of(k)] {
                assert!(reads(&n, &r, name), "{name}");
            }
        }
        for name in [&n.auto, &n.search, &n.pause_period, &r.record, &r.token] {
            assert!(reads(&n, &r, name), "{name}");
        }
        for name in
            GATE_KEYS
                .into_iter()
                .chain([PAUSED_AT, ROLLOUT_STRATEGY, MIN_ROLL_INTERVAL, LAST_ROLL])
        {
            assert!(reads(&n, &r, name), "{name}");
        }
        // a source's annotations and everything else are not a workload's to keep
        for name in [
            &n.search_match,
            &n.ignore,
            RELEASE,
            "app",
            "",
            "hashroll.dev/x",
        ] {
            assert!(!reads(&n, &r, name), "{name}");
        }
        // renamed by a flag: the new name is read, the old one no longer
        let renamed = AnnotationNames {
            auto: "example.com/auto".into(),
            ..AnnotationNames::default()
        };
        assert!(reads(&renamed, &r, "example.com/auto"));
        assert!(!reads(&renamed, &r, "reloader.stakater.com/auto"));
        let renamed = AnnotationNames {
            paused_at: "example.com/paused-at".into(),
            ..AnnotationNames::default()
        };
        assert!(reads(&renamed, &r, "example.com/paused-at"));
        assert!(!reads(&renamed, &r, PAUSED_AT));
    }

    #[test]
    fn every_lists_each_name_once_with_its_flag() {
        let AnnotationNames {
            auto,
            configmap_auto,
            secret_auto,
            search,
            search_match,
            configmap_reload,
            secret_reload,
            configmap_exclude,
            secret_exclude,
            ignore,
            pause_period,
            paused_at,
            secretproviderclass_auto,
            secretproviderclass_reload,
            secretproviderclass_exclude,
        } = AnnotationNames::default();
        let RecordNames { record, token } = RecordNames::default();
        let flagged = [
            (auto, "auto-annotation"),
            (configmap_auto, "configmap-auto-annotation"),
            (secret_auto, "secret-auto-annotation"),
            (search, "auto-search-annotation"),
            (search_match, "search-match-annotation"),
            (configmap_reload, "configmap-annotation"),
            (secret_reload, "secret-annotation"),
            (configmap_exclude, "configmap-exclude-annotation"),
            (secret_exclude, "secret-exclude-annotation"),
            (ignore, "ignore-annotation"),
            (pause_period, "pause-deployment-annotation"),
            (paused_at, "pause-deployment-time-annotation"),
            (
                secretproviderclass_auto,
                "secretproviderclass-auto-annotation",
            ),
            (secretproviderclass_reload, "secretproviderclass-annotation"),
            (
                secretproviderclass_exclude,
                "secretproviderclass-exclude-annotation",
            ),
            (record, "record-annotation"),
            (token, "token-annotation"),
        ];
        for (name, flag) in &flagged {
            let found: Vec<_> = EVERY.iter().filter(|d| d.name == name).collect();
            assert_eq!(found.len(), 1, "{name}");
            assert_eq!(found[0].flag, Some(*flag), "{name}");
        }
        let own = GATE_KEYS.into_iter().chain([
            RELEASE,
            MIN_ROLL_INTERVAL,
            LAST_ROLL,
            ROLLOUT_STRATEGY,
            LAST_RELOADED_FROM,
        ]);
        for name in own {
            let found: Vec<_> = EVERY.iter().filter(|d| d.name == name).collect();
            assert_eq!(found.len(), 1, "{name}");
            assert_eq!(found[0].flag, None, "{name}");
        }
        // nothing else: each entry is one of the names above
        assert_eq!(EVERY.len(), flagged.len() + GATE_KEYS.len() + 5);
        // every workload annotation hashroll reads is listed (the watcher keeps the same)
        let (n, r) = (AnnotationNames::default(), RecordNames::default());
        for d in EVERY {
            if d.on.contains("workload") || d.on == "Deployment" || d.on == "Argo Rollout" {
                assert!(
                    reads(&n, &r, d.name) || d.access == Access::Removes,
                    "{} is listed as a workload's but not read",
                    d.name
                );
            }
        }
    }
}
