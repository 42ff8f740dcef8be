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
pub const WAVE: &str = "hashroll.dev/wave";
/// The workloads a workload follows, `kind/name` comma-separated, in its namespace.
pub const AFTER: &str = "hashroll.dev/after";
/// `"true"` on a workload, a source or (in hashroll's switch ConfigMap) for a namespace.
pub const PAUSED: &str = "hashroll.dev/paused";
/// On a source: the change whose failed rollout no longer holds the later waves.
pub const RELEASE: &str = "hashroll.dev/release";
/// How long a workload's rollout may take before it counts as failed.
pub const ROLLOUT_TIMEOUT: &str = "hashroll.dev/rollout-timeout";
/// When a workload's rolls may happen (`core::window`).
pub const ROLL_WINDOW: &str = "hashroll.dev/roll-window";
/// The workload annotations the gate reads.
pub const GATE_KEYS: [&str; 5] = [WAVE, AFTER, PAUSED, ROLLOUT_TIMEOUT, ROLL_WINDOW];

/// On a Deployment hashroll paused (`pause-period`): when it did (the default of
/// [`AnnotationNames::paused_at`]).
pub const PAUSED_AT: &str = "deployment.reloader.stakater.com/paused-at";
/// The flap breaker's: a workload's own minimum interval between rolls.
pub const MIN_ROLL_INTERVAL: &str = "hashroll.dev/min-roll-interval";
/// The flap breaker's: when hashroll last rolled the workload (written in the roll patch
/// while an interval applies).
pub const LAST_ROLL: &str = "hashroll.dev/last-roll";
/// Reloader's, on an Argo Rollout: `restart` rolls it by `spec.restartAt` instead of a new
/// template.
pub const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";

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
pub struct RecordNames {
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

/// Whether hashroll reads the workload annotation `name` (the policy, the record, the
/// gate, the breaker, pause-period, Argo's restart strategy): what the watcher keeps.
pub fn reads(names: &AnnotationNames, record: &RecordNames, name: &str) -> bool {
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
}
