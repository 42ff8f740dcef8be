//! Reloader's opt-in rules: which of a workload's references (and which listed sources) it
//! tracks, and why.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::kind::WorkloadKind;
use super::limits::{MAX_PAUSE_PERIOD, MAX_TRACKED, REGEX_COMPILE_BUDGET};
use super::lists::{exclude_set, parse_list};
use super::names::{AnnotationNames, Annotations};
use super::refs::{Keys, Reference, SourceKind, SourceRef};
use super::source::SourceView;
use super::syntax::{parse_bool, parse_go_duration};

/// The flags that shape the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    pub names: AnnotationNames,
    pub auto_reload_all: bool,
    pub ignore_configmaps: bool,
    pub ignore_secrets: bool,
    /// namespaces `--auto-reload-all` does not reach (the cluster's own, kube-system and
    /// kube-public and kube-node-lease, and hashroll's): a workload there rolls only when its
    /// own annotations ask, on both paths (the webhook's configuration skips kube-system
    /// too; the watcher then records what such a workload asks for without a roll)
    pub auto_all_skips: Vec<String>,
    /// `--enable-csi-integration`: SecretProviderClasses are sources (off: not tracked)
    pub csi_integration: bool,
    /// kinds turned off by `--ignored-workload-types`: not watched, not stamped
    pub ignored_kinds: Vec<WorkloadKind>,
}

impl PolicyConfig {
    /// Whether hashroll stamps and rolls workloads of `kind` under these flags.
    pub fn handles(&self, kind: WorkloadKind) -> bool {
        !self.ignored_kinds.contains(&kind)
    }
    /// The namespaces `--auto-reload-all` never reaches, with hashroll's own.
    pub fn auto_all_skips_with(own_namespace: &str) -> Vec<String> {
        let mut v: Vec<String> = ["kube-system", "kube-public", "kube-node-lease"]
            .map(String::from)
            .into();
        if !v.iter().any(|n| n == own_namespace) {
            v.push(own_namespace.to_string());
        }
        v
    }

    /// Whether sources of `kind` are tracked at all under these flags.
    pub fn tracks_kind(&self, kind: SourceKind) -> bool {
        match kind {
            SourceKind::ConfigMap => !self.ignore_configmaps,
            SourceKind::Secret => !self.ignore_secrets,
            SourceKind::SecretProviderClass => self.csi_integration,
        }
    }
}

/// Why a source is tracked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// `auto: "true"` (annotation name given)
    Auto(String),
    /// `--auto-reload-all`
    AutoReloadAll,
    /// `search: "true"` and the source carries `match: "true"`
    Search,
    /// `search: "true"` and the referenced source does not exist: its absence is part of the
    /// record, so creating it with `match: "true"` rolls (`--reload-on-create`), as deleting
    /// a matched one does (`--reload-on-delete`)
    SearchAbsent,
    /// named by this entry of this reload list annotation
    ReloadList { annotation: String, entry: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Auto(a) => write!(f, "{a}: \"true\""),
            Reason::AutoReloadAll => write!(f, "--auto-reload-all"),
            Reason::Search => write!(f, "search: \"true\" and the source has match: \"true\""),
            Reason::SearchAbsent => write!(
                f,
                "search: \"true\" and the source does not exist (created with match: \"true\", it rolls)"
            ),
            Reason::ReloadList { annotation, entry } => write!(f, "{annotation} lists {entry:?}"),
        }
    }
}

/// A tracked source: which keys matter and why it is tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub keys: Keys,
    pub optional: bool,
    pub reasons: Vec<Reason>,
}

/// The annotations the policy reads: the workload's own when any opt-in key is there,
/// else the pod template's (no merging).
pub(crate) fn effective_annotations<'a>(
    names: &AnnotationNames,
    metadata: &'a dyn Annotations,
    template: &'a dyn Annotations,
) -> &'a dyn Annotations {
    if names.opt_in_keys().any(|k| metadata.has(k)) {
        metadata
    } else {
        template
    }
}

/// Does this workload opt in to anything at all (under these flags)?
pub(crate) fn opted_in(
    cfg: &PolicyConfig,
    metadata: &dyn Annotations,
    template: &dyn Annotations,
) -> bool {
    let names = &cfg.names;
    let ann = effective_annotations(names, metadata, template);
    let auto = ann.value(&names.auto).and_then(parse_bool);
    cfg.auto_reload_all && auto != Some(false)
        || auto == Some(true)
        || SourceKind::ALL
            .into_iter()
            .filter(|k| cfg.tracks_kind(*k))
            .any(|k| {
                ann.value(names.auto_of(k)).and_then(parse_bool) == Some(true)
                    || ann
                        .value(names.reload_of(k))
                        .is_some_and(|v| !v.trim().is_empty())
            })
        || ann.value(&names.search) == Some("true")
}

/// Which sources a workload tracks, and why. `refs` are the pod template's references.
pub fn tracked(
    cfg: &PolicyConfig,
    metadata: &dyn Annotations,
    template: &dyn Annotations,
    refs: &[Reference],
    sources: &dyn SourceView,
) -> BTreeMap<SourceRef, Tracked> {
    tracking(cfg, metadata, template, refs, sources).sources
}

/// What [`tracking`] finds: the tracked sources, and what was wrong with the tenant's
/// annotations (each past a bound of `core::limits`, or malformed).
#[derive(Debug, Clone, Default)]
pub struct Tracking {
    pub sources: BTreeMap<SourceRef, Tracked>,
    pub problems: Vec<String>,
}

/// [`tracked`], with the problems found on the way.
pub fn tracking(
    cfg: &PolicyConfig,
    metadata: &dyn Annotations,
    template: &dyn Annotations,
    refs: &[Reference],
    sources: &dyn SourceView,
) -> Tracking {
    let mut problems = Vec::new();
    pause_problem(cfg, metadata, &mut problems);
    let ann = effective_annotations(&cfg.names, metadata, template);
    let mut found = Found::default();
    found.by_reference(cfg, ann, refs, sources);
    found.by_reload_lists(cfg, ann, refs, sources, &mut problems);
    Tracking {
        sources: found.kept(cfg, ann, sources, &mut problems),
        problems,
    }
}

/// The sources found so far, each with every reason it is tracked for.
#[derive(Default)]
struct Found(BTreeMap<SourceRef, Tracked>);

impl Found {
    fn add(&mut self, source: &SourceRef, keys: Keys, optional: bool, reason: Reason) {
        self.0
            .entry(source.clone())
            .and_modify(|t| {
                if !t.reasons.contains(&reason) {
                    t.reasons.push(reason.clone());
                }
            })
            .or_insert(Tracked {
                keys,
                optional,
                reasons: vec![reason],
            });
    }

    /// Auto, typed auto and search: over the template's references.
    fn by_reference(
        &mut self,
        cfg: &PolicyConfig,
        ann: &dyn Annotations,
        refs: &[Reference],
        sources: &dyn SourceView,
    ) {
        let names = &cfg.names;
        let get_bool = |k: &str| ann.value(k).and_then(parse_bool);
        let auto = get_bool(&names.auto);
        let auto_all = auto == Some(true) || (cfg.auto_reload_all && auto != Some(false));
        let auto_reason = if auto == Some(true) {
            Reason::Auto(names.auto.clone())
        } else {
            Reason::AutoReloadAll
        };
        let typed_auto = |kind: SourceKind| -> Option<Reason> {
            if auto_all {
                return Some(auto_reason.clone());
            }
            let key = names.auto_of(kind);
            (get_bool(key) == Some(true)).then(|| Reason::Auto(key.to_string()))
        };
        let search = ann.value(&names.search) == Some("true");
        for r in refs {
            if let Some(reason) = typed_auto(r.source.kind) {
                self.add(&r.source, r.keys.clone(), r.optional, reason);
            } else if search {
                let reason = match sources.info(&r.source) {
                    Some(i) if i.matched => Reason::Search,
                    Some(_) => continue,
                    None => Reason::SearchAbsent,
                };
                self.add(&r.source, r.keys.clone(), r.optional, reason);
            }
        }
    }

    /// The explicit reload lists, in addition to auto.
    fn by_reload_lists(
        &mut self,
        cfg: &PolicyConfig,
        ann: &dyn Annotations,
        refs: &[Reference],
        sources: &dyn SourceView,
        problems: &mut Vec<String>,
    ) {
        let mut compile_budget = REGEX_COMPILE_BUDGET;
        for kind in SourceKind::ALL.into_iter().filter(|k| cfg.tracks_kind(*k)) {
            let key = cfg.names.reload_of(kind);
            let entries = parse_list(key, ann.value(key), &mut compile_budget, problems);
            for entry in &entries {
                let Some(re) = &entry.regex else { continue };
                let reason = Reason::ReloadList {
                    annotation: key.to_string(),
                    entry: entry.text.clone(),
                };
                // referenced sources: with the keys the template uses
                for r in refs.iter().filter(|r| r.source.kind == kind) {
                    if re.is_match(r.source.name.as_bytes()) {
                        self.add(&r.source, r.keys.clone(), r.optional, reason.clone());
                    }
                }
                // unreferenced existing sources the entry matches: the whole source (a plain
                // name without a dot matches only itself: added below, with no scan of the
                // namespace, so a long list of names costs lookups, not scans)
                let plain = entry.literal && !entry.text.contains('.');
                if !plain {
                    for name in sources.names_matching(kind, &|n| re.is_match(n.as_bytes())) {
                        let s = SourceRef::new(kind, name);
                        self.add(&s, Keys::All, false, reason.clone());
                    }
                }
                // with room left for the absent plain names of the other entries
                if self.0.len() >= MAX_TRACKED {
                    break;
                }
                // a plain name that exists nowhere yet: tracked as absent, so creating it
                // rolls
                if entry.literal {
                    let s = SourceRef::new(kind, entry.text.clone());
                    self.add(&s, Keys::All, false, reason.clone());
                }
            }
        }
    }

    /// What is left after exclusions, ignore annotations and flags, at most [`MAX_TRACKED`].
    fn kept(
        self,
        cfg: &PolicyConfig,
        ann: &dyn Annotations,
        sources: &dyn SourceView,
        problems: &mut Vec<String>,
    ) -> BTreeMap<SourceRef, Tracked> {
        let mut out = self.0;
        let excludes: Vec<Vec<String>> = SourceKind::ALL
            .into_iter()
            .map(|k| {
                let key = cfg.names.exclude_of(k);
                exclude_set(key, ann.value(key), problems)
            })
            .collect();
        out.retain(|s, _| {
            let excluded = !cfg.tracks_kind(s.kind) || excludes[s.kind.index()].contains(&s.name);
            let info = sources.info(s);
            !excluded && !info.is_some_and(|i| i.ignored || !i.selected)
        });
        if out.len() > MAX_TRACKED {
            problems.push(format!(
                "{} sources match; only the first {MAX_TRACKED} are tracked",
                out.len()
            ));
            out = out.into_iter().take(MAX_TRACKED).collect();
        }
        out
    }
}

/// The `pause-period` of a Deployment, when it sets a valid one; at most
/// [`MAX_PAUSE_PERIOD`].
pub(crate) fn pause_period(cfg: &PolicyConfig, metadata: &dyn Annotations) -> Option<Duration> {
    metadata
        .value(&cfg.names.pause_period)
        .and_then(parse_go_duration)
        .filter(|d| !d.is_zero())
        .map(|d| d.min(MAX_PAUSE_PERIOD))
}

/// A `pause-period` that is malformed or past [`MAX_PAUSE_PERIOD`].
fn pause_problem(cfg: &PolicyConfig, metadata: &dyn Annotations, out: &mut Vec<String>) {
    let key = &cfg.names.pause_period;
    let Some(v) = metadata.value(key) else { return };
    match parse_go_duration(v) {
        None => out.push(format!(
            "{key}: {:?} is not a duration such as 5m; ignored",
            v.chars().take(64).collect::<String>()
        )),
        Some(d) if d > MAX_PAUSE_PERIOD => out.push(format!(
            "{key}: {v:?} is longer than {}h; taken as {}h",
            MAX_PAUSE_PERIOD.as_secs() / 3600,
            MAX_PAUSE_PERIOD.as_secs() / 3600
        )),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::{MAX_ENTRY_LEN, MAX_LIST_ENTRIES};
    use crate::core::refs::Keys;
    use crate::core::source::SourceInfo;
    use crate::testing::FakeSources;
    use std::collections::BTreeSet;

    fn plain() -> SourceInfo {
        SourceInfo {
            selected: true,
            ..Default::default()
        }
    }
    fn matched() -> SourceInfo {
        SourceInfo {
            matched: true,
            selected: true,
            ..Default::default()
        }
    }
    fn ignored() -> SourceInfo {
        SourceInfo {
            ignored: true,
            selected: true,
            ..Default::default()
        }
    }
    fn unselected() -> SourceInfo {
        SourceInfo::default()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refs(list: &[SourceRef]) -> Vec<Reference> {
        list.iter()
            .map(|s| Reference {
                source: s.clone(),
                keys: Keys::All,
                optional: false,
            })
            .collect()
    }

    const AUTO: &str = "reloader.stakater.com/auto";
    const CM_AUTO: &str = "configmap.reloader.stakater.com/auto";
    const SECRET_AUTO: &str = "secret.reloader.stakater.com/auto";
    const SEARCH: &str = "reloader.stakater.com/search";
    const CM_LIST: &str = "configmap.reloader.stakater.com/reload";
    const SECRET_LIST: &str = "secret.reloader.stakater.com/reload";
    const CM_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";

    struct Case {
        name: &'static str,
        cfg: PolicyConfig,
        metadata: Vec<(&'static str, &'static str)>,
        template: Vec<(&'static str, &'static str)>,
        refs: Vec<SourceRef>,
        sources: Vec<(SourceRef, SourceInfo)>,
        want: Vec<SourceRef>,
    }

    fn cm(n: &str) -> SourceRef {
        SourceRef::configmap(n)
    }
    fn sec(n: &str) -> SourceRef {
        SourceRef::secret(n)
    }

    fn base() -> Case {
        Case {
            name: "",
            cfg: PolicyConfig::default(),
            metadata: vec![],
            template: vec![],
            refs: vec![cm("a"), sec("s")],
            sources: vec![(cm("a"), plain()), (sec("s"), plain())],
            want: vec![],
        }
    }

    #[test]
    fn policy_table() {
        let all_cfg = PolicyConfig {
            auto_reload_all: true,
            ..Default::default()
        };
        let cases = vec![
            Case {
                name: "no_annotation_tracks_nothing",
                ..base()
            },
            Case {
                name: "auto_tracks_every_reference",
                metadata: vec![(AUTO, "true")],
                want: vec![cm("a"), sec("s")],
                ..base()
            },
            Case {
                name: "auto_accepts_go_booleans",
                metadata: vec![(AUTO, "T")],
                want: vec![cm("a"), sec("s")],
                ..base()
            },
            Case {
                name: "auto_false_tracks_nothing",
                metadata: vec![(AUTO, "false")],
                ..base()
            },
            Case {
                name: "auto_garbage_tracks_nothing",
                metadata: vec![(AUTO, "yes please")],
                ..base()
            },
            Case {
                name: "typed_auto_configmap_only",
                metadata: vec![(CM_AUTO, "true")],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "typed_auto_secret_only",
                metadata: vec![(SECRET_AUTO, "true")],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "auto_false_with_typed_true_tracks_that_type",
                metadata: vec![(AUTO, "false"), (SECRET_AUTO, "true")],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "search_with_match_tracks_matched_only",
                metadata: vec![(SEARCH, "true")],
                sources: vec![(cm("a"), matched()), (sec("s"), plain())],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                // its absence is recorded, so creating it with match rolls, as deleting a
                // matched one does; created without match, it leaves the record
                name: "search_tracks_a_referenced_source_that_does_not_exist",
                metadata: vec![(SEARCH, "true")],
                sources: vec![(sec("s"), plain())],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "search_without_match_does_not_track",
                metadata: vec![(SEARCH, "true")],
                ..base()
            },
            Case {
                name: "search_must_be_exactly_true",
                metadata: vec![(SEARCH, "True")],
                sources: vec![(cm("a"), matched())],
                ..base()
            },
            Case {
                name: "match_without_search_does_not_track",
                sources: vec![(cm("a"), matched()), (sec("s"), matched())],
                ..base()
            },
            Case {
                name: "auto_covers_search",
                metadata: vec![(AUTO, "true"), (SEARCH, "true")],
                sources: vec![(cm("a"), matched()), (sec("s"), plain())],
                want: vec![cm("a"), sec("s")],
                ..base()
            },
            Case {
                name: "list_with_spaces_tracks_named",
                metadata: vec![(CM_LIST, " a , b ")],
                refs: vec![cm("a"), cm("b"), cm("c")],
                sources: vec![(cm("a"), plain()), (cm("b"), plain()), (cm("c"), plain())],
                want: vec![cm("a"), cm("b")],
                ..base()
            },
            Case {
                name: "list_entries_are_anchored_regexes",
                metadata: vec![(CM_LIST, "app-.*")],
                refs: vec![cm("app-one"), cm("my-app-two")],
                sources: vec![(cm("app-one"), plain()), (cm("my-app-two"), plain())],
                want: vec![cm("app-one")],
                ..base()
            },
            Case {
                name: "list_entry_does_not_match_a_longer_name",
                metadata: vec![(CM_LIST, "a")],
                refs: vec![cm("ab")],
                sources: vec![(cm("ab"), plain())],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "bad_regex_entry_is_skipped",
                metadata: vec![(CM_LIST, "a,(unclosed")],
                refs: vec![cm("a")],
                sources: vec![(cm("a"), plain())],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "list_tracks_unreferenced_existing_source",
                metadata: vec![(SECRET_LIST, "other")],
                sources: vec![(sec("other"), plain())],
                want: vec![sec("other")],
                ..base()
            },
            Case {
                name: "list_tracks_absent_plain_name",
                metadata: vec![(SECRET_LIST, "not-yet")],
                sources: vec![],
                want: vec![sec("not-yet")],
                ..base()
            },
            Case {
                name: "auto_plus_list_naming_unreferenced_source",
                metadata: vec![(AUTO, "true"), (CM_LIST, "extra")],
                sources: vec![
                    (cm("a"), plain()),
                    (sec("s"), plain()),
                    (cm("extra"), plain()),
                ],
                want: vec![cm("a"), cm("extra"), sec("s")],
                ..base()
            },
            Case {
                name: "list_applies_under_auto_false",
                metadata: vec![(AUTO, "false"), (CM_LIST, "a")],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "exclude_list_removes_exact_names",
                metadata: vec![(AUTO, "true"), (CM_EXCLUDE, "a, z")],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "ignore_annotation_on_source_removes_it",
                metadata: vec![(AUTO, "true")],
                sources: vec![(cm("a"), ignored()), (sec("s"), plain())],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "label_selector_miss_removes_source",
                metadata: vec![(AUTO, "true")],
                sources: vec![(cm("a"), unselected()), (sec("s"), plain())],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "pod_template_fallback",
                template: vec![(AUTO, "true")],
                want: vec![cm("a"), sec("s")],
                ..base()
            },
            Case {
                name: "metadata_wins_over_template_without_merging",
                metadata: vec![(SECRET_AUTO, "true")],
                template: vec![(AUTO, "true")],
                want: vec![sec("s")],
                ..base()
            },
            Case {
                name: "auto_reload_all_tracks_everything",
                cfg: all_cfg.clone(),
                want: vec![cm("a"), sec("s")],
                ..base()
            },
            Case {
                name: "auto_reload_all_respects_auto_false",
                cfg: all_cfg.clone(),
                metadata: vec![(AUTO, "false")],
                ..base()
            },
            Case {
                name: "resources_to_ignore_secrets",
                cfg: PolicyConfig {
                    ignore_secrets: true,
                    ..Default::default()
                },
                metadata: vec![(AUTO, "true")],
                want: vec![cm("a")],
                ..base()
            },
            Case {
                name: "optional_missing_source_is_tracked",
                metadata: vec![(AUTO, "true")],
                refs: vec![cm("missing")],
                sources: vec![],
                want: vec![cm("missing")],
                ..base()
            },
            Case {
                name: "annotation_name_override",
                cfg: PolicyConfig {
                    names: AnnotationNames {
                        auto: "example.com/roll".into(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                metadata: vec![("example.com/roll", "true"), (AUTO, "false")],
                want: vec![cm("a"), sec("s")],
                ..base()
            },
        ];
        for case in cases {
            let sources = FakeSources(case.sources.into_iter().collect());
            let got = tracked(
                &case.cfg,
                &map(&case.metadata),
                &map(&case.template),
                &refs(&case.refs),
                &sources,
            );
            let got: BTreeSet<SourceRef> = got.into_keys().collect();
            let want: BTreeSet<SourceRef> = case.want.into_iter().collect();
            assert_eq!(got, want, "case {}", case.name);
        }
    }

    #[test]
    fn secret_provider_classes_follow_reloaders_csi_rules() {
        let spc = |n: &str| SourceRef::new(SourceKind::SecretProviderClass, n);
        let csi = PolicyConfig {
            csi_integration: true,
            ..Default::default()
        };
        let with =
            |cfg: &PolicyConfig, metadata: &[(&str, &str)], sources: &[(SourceRef, SourceInfo)]| {
                let refs = refs(&[cm("a"), spc("vault")]);
                let sources = FakeSources(sources.iter().cloned().collect());
                let got = tracked(cfg, &map(metadata), &map(&[]), &refs, &sources);
                got.into_keys().collect::<Vec<_>>()
            };
        let mounted = [
            (cm("a"), plain()),
            (spc("vault"), plain()),
            (spc("other"), plain()),
        ];
        let spc_auto = "secretproviderclass.reloader.stakater.com/auto";
        let spc_list = "secretproviderclass.reloader.stakater.com/reload";
        let spc_exclude = "secretproviderclasses.exclude.reloader.stakater.com/reload";
        // off (the default): never tracked, whatever the annotations say
        let off = PolicyConfig::default();
        assert_eq!(with(&off, &[(AUTO, "true")], &mounted), vec![cm("a")]);
        assert_eq!(with(&off, &[(spc_list, "vault")], &mounted), vec![]);
        assert!(!opted_in(&off, &map(&[(spc_auto, "true")]), &map(&[])));
        // on: the generic auto and the typed auto take the csi volume's class
        assert_eq!(
            with(&csi, &[(AUTO, "true")], &mounted),
            vec![cm("a"), spc("vault")]
        );
        assert_eq!(
            with(&csi, &[(spc_auto, "true")], &mounted),
            vec![spc("vault")]
        );
        assert!(opted_in(&csi, &map(&[(spc_auto, "true")]), &map(&[])));
        // by name or regex, mounted or not
        assert_eq!(
            with(&csi, &[(spc_list, "oth.*")], &mounted),
            vec![spc("other")]
        );
        // excluded by name; ignored by its object's annotation
        assert_eq!(
            with(&csi, &[(AUTO, "true"), (spc_exclude, "vault")], &mounted),
            vec![cm("a")]
        );
        let ignored_class = [(cm("a"), plain()), (spc("vault"), ignored())];
        assert_eq!(with(&csi, &[(AUTO, "true")], &ignored_class), vec![cm("a")]);
        // search + match on the class; not mounted yet: tracked as absent
        let matched_class = [(cm("a"), plain()), (spc("vault"), matched())];
        assert_eq!(
            with(&csi, &[(SEARCH, "true")], &matched_class),
            vec![spc("vault")]
        );
        assert_eq!(
            with(&csi, &[(SEARCH, "true")], &[]),
            vec![cm("a"), spc("vault")]
        );
    }

    #[test]
    fn keyref_keys_survive_policy_and_list_adds_whole_source() {
        let r = vec![Reference {
            source: cm("a"),
            keys: Keys::Some(BTreeSet::from(["k".to_string()])),
            optional: true,
        }];
        let sources = FakeSources([(cm("a"), plain())].into_iter().collect());
        let got = tracked(
            &PolicyConfig::default(),
            &map(&[(AUTO, "true")]),
            &map(&[]),
            &r,
            &sources,
        );
        let t = &got[&cm("a")];
        assert_eq!(t.keys, Keys::Some(BTreeSet::from(["k".to_string()])));
        assert!(t.optional);
        assert_eq!(t.reasons, vec![Reason::Auto(AUTO.into())]);
    }

    #[test]
    fn tenant_values_are_bounded_and_reported() {
        let cfg = PolicyConfig::default();
        let none = FakeSources(BTreeMap::new());
        let run = |meta: &[(&str, &str)]| tracking(&cfg, &map(meta), &map(&[]), &[], &none);
        let pause = "deployment.reloader.stakater.com/pause-period";
        // an absurd pause-period is the maximum, and said so
        let absurd = map(&[(pause, "3000000000000000h")]);
        assert_eq!(pause_period(&cfg, &absurd), Some(MAX_PAUSE_PERIOD));
        let t = run(&[(pause, "3000000000000000h")]);
        assert!(t.problems[0].contains("taken as 24h"), "{:?}", t.problems);
        assert!(run(&[(pause, "soon")]).problems[0].contains("not a duration"));
        assert!(run(&[(pause, "5m")]).problems.is_empty());
        // a thousand names: only the first entries are read
        let many: Vec<String> = (0..1000).map(|i| format!("missing-{i}")).collect();
        let t = run(&[(CM_LIST, &many.join(","))]);
        assert_eq!(t.sources.len(), MAX_LIST_ENTRIES);
        assert!(
            t.problems.iter().any(|p| p.contains("only the first")),
            "{:?}",
            t.problems
        );
        // a regex past the size limit, a bad one, and an over-long entry: skipped, reported
        let huge = "(a{1000}){1000}";
        let long = "x".repeat(MAX_ENTRY_LEN + 1);
        let t = run(&[(CM_LIST, &format!("{huge},(unclosed,{long},ok"))]);
        assert_eq!(t.sources.into_keys().collect::<Vec<_>>(), vec![cm("ok")]);
        assert_eq!(t.problems.len(), 3, "{:?}", t.problems);
        assert!(
            t.problems.iter().any(|p| p.contains("too large")),
            "{:?}",
            t.problems
        );
    }

    #[test]
    fn list_regexes_read_names_as_gos_regexp_does() {
        let sources = FakeSources(
            ["app-1", "app-x", "web.cfg", "APP-2"]
                .into_iter()
                .map(|n| (cm(n), plain()))
                .collect(),
        );
        let names = |list: &str| -> Vec<String> {
            let t = tracking(
                &PolicyConfig::default(),
                &map(&[(CM_LIST, list)]),
                &map(&[]),
                &[],
                &sources,
            );
            t.sources.into_keys().map(|s| s.name.to_string()).collect()
        };
        // ASCII classes and word boundaries, as Go's \d, \w, \b
        assert_eq!(names(r"app-\d"), ["app-1"]);
        assert_eq!(names(r"app-\w"), ["app-1", "app-x"]);
        assert_eq!(names(r"web\b.*"), ["web.cfg"]);
        assert_eq!(names(r"(?i)app-\d"), ["APP-2", "app-1"]);
        // a Unicode class cannot match a name: refused as a problem, not a crash
        let t = tracking(
            &PolicyConfig::default(),
            &map(&[(CM_LIST, r"\p{Greek}+")]),
            &map(&[]),
            &[],
            &sources,
        );
        assert!(
            t.sources.is_empty() && !t.problems.is_empty(),
            "{:?}",
            t.problems
        );
    }

    #[test]
    fn one_check_compiles_within_its_budget() {
        let cfg = PolicyConfig::default();
        let none = FakeSources(BTreeMap::new());
        let costly: Vec<String> = (0..40).map(|i| format!("x{{{}}}", 4000 + i)).collect();
        let t = tracking(
            &cfg,
            &map(&[(CM_LIST, &costly.join(","))]),
            &map(&[]),
            &[],
            &none,
        );
        let spent: Vec<_> = t
            .problems
            .iter()
            .filter(|p| p.contains("compile past"))
            .collect();
        assert_eq!(spent.len(), 1, "{:?}", t.problems);
        // a literal entry after the spent budget is still read
        let mut list = costly.clone();
        list.push("plain-name".to_string());
        let t = tracking(
            &cfg,
            &map(&[(CM_LIST, &list.join(","))]),
            &map(&[]),
            &[],
            &none,
        );
        assert!(t.sources.contains_key(&cm("plain-name")), "{:?}", t.sources);
    }

    #[test]
    fn a_regex_matching_thousands_tracks_a_bounded_set() {
        let names: BTreeMap<SourceRef, SourceInfo> = (0..(MAX_TRACKED + 500))
            .map(|i| (cm(&format!("cm-{i}")), plain()))
            .collect();
        let sources = FakeSources(names);
        let t = tracking(
            &PolicyConfig::default(),
            &map(&[(CM_LIST, ".*")]),
            &map(&[]),
            &[],
            &sources,
        );
        assert_eq!(t.sources.len(), MAX_TRACKED);
        assert!(t.problems.iter().any(|p| p.contains("only the first")));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn opted_in_follows_the_rules() {
        let cfg = PolicyConfig::default();
        assert!(opted_in(&cfg, &map(&[(AUTO, "true")]), &map(&[])));
        assert!(!opted_in(&cfg, &map(&[(AUTO, "false")]), &map(&[])));
        assert!(opted_in(&cfg, &map(&[]), &map(&[(CM_LIST, "x")])));
        assert!(!opted_in(&cfg, &map(&[]), &map(&[])));
        let all = PolicyConfig {
            auto_reload_all: true,
            ..Default::default()
        };
        assert!(opted_in(&all, &map(&[]), &map(&[])));
    }
}
