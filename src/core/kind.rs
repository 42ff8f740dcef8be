//! The kinds hashroll handles: the built-in table, the kinds named by `--workload-kind`,
//! and where each kind's pod template lives and how it is rolled.
//!
//! The kinds by flag are registered once, before any kind is used, into a static: a
//! [`WorkloadKind`] is a `Copy` index used as a key by every store, queue and log line, and
//! each asks it for its row; passing the table along instead would thread it through all
//! of them for a list that never changes after start-up.

use std::fmt;

/// A kind hashroll handles: a row of [`KINDS`], or of the kinds named by
/// `--workload-kind` (registered once at start-up, see [`register_custom`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKind(u16);

#[allow(non_upper_case_globals)]
impl WorkloadKind {
    pub const Deployment: WorkloadKind = WorkloadKind(0);
    pub const DaemonSet: WorkloadKind = WorkloadKind(1);
    pub const StatefulSet: WorkloadKind = WorkloadKind(2);
    pub const CronJob: WorkloadKind = WorkloadKind(3);
    pub const Job: WorkloadKind = WorkloadKind(4);
    pub const ArgoRollout: WorkloadKind = WorkloadKind(5);
}

/// How a kind is rolled once its record and token are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// the new token in the pod template is the roll (its controller replaces the pods)
    Template,
    /// the token updates the template of later runs; a Job is also created from the
    /// CronJob at once (unless `--cronjob-run-on-change=false`)
    TemplateAndRun,
    /// a Job's template cannot change: the Job is deleted and created again with the new
    /// token (only for a Job that opts in with its own annotations)
    Recreate,
}

/// Where a kind lives in the API, the words that name it, and where it keeps its pod
/// template. Everything kind-specific in hashroll reads this table: a new kind is a row.
#[derive(Debug)]
pub struct KindRow {
    pub kind: WorkloadKind,
    pub group: &'static str,
    pub version: &'static str,
    /// the kind as the API spells it
    pub name: &'static str,
    pub plural: &'static str,
    /// what `explain` accepts besides the name and the plural
    pub short: &'static str,
    /// the path of the pod template in the object
    pub template: &'static [&'static str],
    /// how a roll is done
    pub rollout: Rollout,
    /// whether `--auto-reload-all` opts this kind in (not for Jobs: deleting and creating a
    /// Job again must be asked for by the Job itself)
    pub auto_reload_all: bool,
    /// the word of `--ignored-workload-types` that turns this kind off (Reloader's words)
    pub ignore_word: Option<&'static str>,
    /// a custom resource that may not be installed: watched once discovery finds it
    pub optional: bool,
}

/// The kinds hashroll handles, in the order of [`WorkloadKind`].
pub(crate) const KINDS: [KindRow; 6] = [
    KindRow {
        kind: WorkloadKind::Deployment,
        group: "apps",
        version: "v1",
        name: "Deployment",
        plural: "deployments",
        short: "deploy",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::DaemonSet,
        group: "apps",
        version: "v1",
        name: "DaemonSet",
        plural: "daemonsets",
        short: "ds",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::StatefulSet,
        group: "apps",
        version: "v1",
        name: "StatefulSet",
        plural: "statefulsets",
        short: "sts",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::CronJob,
        group: "batch",
        version: "v1",
        name: "CronJob",
        plural: "cronjobs",
        short: "cj",
        template: &["spec", "jobTemplate", "spec", "template"],
        rollout: Rollout::TemplateAndRun,
        auto_reload_all: true,
        ignore_word: Some("cronjobs"),
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::Job,
        group: "batch",
        version: "v1",
        name: "Job",
        plural: "jobs",
        short: "job",
        template: &["spec", "template"],
        rollout: Rollout::Recreate,
        auto_reload_all: false,
        ignore_word: Some("jobs"),
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::ArgoRollout,
        group: "argoproj.io",
        version: "v1alpha1",
        name: "Rollout",
        plural: "rollouts",
        short: "ro",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: true,
    },
];

/// The kinds named by `--workload-kind`, after the built-in ones.
static CUSTOM: std::sync::OnceLock<Vec<KindRow>> = std::sync::OnceLock::new();

/// A kind named by `--workload-kind GROUP/VERSION/KIND=PATH` (`PATH` the pod template, dot
/// separated; `GROUP` empty for the core group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub template: Vec<String>,
}

/// At most this many kinds by flag.
pub(crate) const MAX_CUSTOM_KINDS: usize = 32;

impl std::str::FromStr for CustomKind {
    type Err = String;
    fn from_str(s: &str) -> Result<CustomKind, String> {
        let (gvk, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected GROUP/VERSION/KIND=PATH"))?;
        let parts: Vec<&str> = gvk.split('/').collect();
        let [group, version, kind] = parts[..] else {
            return Err(format!("{gvk:?}: expected GROUP/VERSION/KIND"));
        };
        let word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        if !word(version) || !word(kind) || !(group.is_empty() || word(group)) {
            return Err(format!("{gvk:?}: not a group, version and kind"));
        }
        let template: Vec<String> = path.split('.').map(str::to_string).collect();
        if template.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{path:?}: expected a dotted path such as spec.template"
            ));
        }
        Ok(CustomKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            template,
        })
    }
}

/// The plural kubectl would guess for a kind (the API's own is found by discovery when
/// the kind is installed; this names it before).
pub(crate) fn guess_plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") || k.ends_with("sh") {
        format!("{k}es")
    } else if k.ends_with('y') && !k.ends_with("ay") && !k.ends_with("ey") && !k.ends_with("oy") {
        format!("{}ies", &k[..k.len() - 1])
    } else {
        format!("{k}s")
    }
}

/// Registers the kinds named by flag; once, before any kind is used. A kind that is
/// already a row (built in or named twice) is an error.
pub(crate) fn register_custom(kinds: &[CustomKind]) -> Result<(), String> {
    if kinds.len() > MAX_CUSTOM_KINDS {
        return Err(format!("at most {MAX_CUSTOM_KINDS} kinds by flag"));
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let mut rows: Vec<KindRow> = Vec::new();
    for (i, c) in kinds.iter().enumerate() {
        let taken = KINDS
            .iter()
            .chain(&rows)
            .any(|r| r.group == c.group && r.name == c.kind);
        if taken {
            return Err(format!("{}/{} is named twice", c.group, c.kind));
        }
        let template: Vec<&'static str> = c.template.iter().map(|p| leak(p)).collect();
        rows.push(KindRow {
            kind: WorkloadKind((KINDS.len() + i) as u16),
            group: leak(&c.group),
            version: leak(&c.version),
            name: leak(&c.kind),
            plural: leak(&guess_plural(&c.kind)),
            short: "",
            template: Box::leak(template.into_boxed_slice()),
            rollout: Rollout::Template,
            auto_reload_all: true,
            ignore_word: None,
            optional: true,
        });
    }
    CUSTOM
        .set(rows)
        .map_err(|_| "the kinds by flag are registered once".to_string())
}

/// For the crate's tests: the custom kinds every test sees (a Widget with its template deep
/// in its spec, and OpenShift's DeploymentConfig as `--is-openshift` adds it), registered
/// once whichever test asks first (the registry is set once per process).
#[cfg(test)]
pub(crate) fn register_test_kinds() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let kinds: Vec<CustomKind> = [
            "example.dev/v1/Widget=spec.workload.podTemplate",
            "apps.openshift.io/v1/DeploymentConfig=spec.template",
        ]
        .iter()
        .map(|k| k.parse().expect("a kind"))
        .collect();
        register_custom(&kinds).expect("registered once");
    });
}

fn custom() -> &'static [KindRow] {
    CUSTOM.get().map(Vec::as_slice).unwrap_or_default()
}

impl WorkloadKind {
    /// Every kind: the built-in ones, then those named by flag.
    pub fn all() -> impl Iterator<Item = WorkloadKind> {
        KINDS.iter().chain(custom()).map(|r| r.kind)
    }
    /// This kind's row.
    pub fn row(self) -> &'static KindRow {
        let i = self.0 as usize;
        KINDS
            .get(i)
            .or_else(|| custom().get(i - KINDS.len()))
            .expect("a WorkloadKind is made from a row")
    }
    pub fn as_str(self) -> &'static str {
        self.row().name
    }
    /// From a CLI word: the kind, its plural or its short name, in any case.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        let s = s.to_ascii_lowercase();
        KINDS
            .iter()
            .chain(custom())
            .find(|r| {
                r.name.eq_ignore_ascii_case(&s)
                    || r.plural == s
                    || (!r.short.is_empty() && r.short == s)
            })
            .map(|r| r.kind)
    }
    /// From an AdmissionReview's `kind` (its group and kind name).
    pub fn from_group_kind(group: &str, kind: &str) -> Option<WorkloadKind> {
        KINDS
            .iter()
            .chain(custom())
            .find(|r| r.group == group && r.name == kind)
            .map(|r| r.kind)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
