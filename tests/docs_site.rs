//! The documentation site's checks, without a control plane (`make docs` runs them after
//! building the site): every relative link and `#anchor` in `docs/src/**/*.md`, `README.md`
//! and `CONTRIBUTING.md` resolves, every `{{#include}}` names a file, every page is in
//! `SUMMARY.md` and every `SUMMARY.md` entry is a page, every YAML block a page shows is an
//! include of a file under `examples/` and every file there is shown, every alert rule's
//! `runbook_url` names its runbook page, and no sentence names a development session, an
//! issue number or the date of a past run (outside the benchmark history).
//!
//! Own code rather than mdbook-linkcheck: that preprocessor is unmaintained, pulls in a
//! large dependency tree of its own and needs a matching mdBook version; what the site needs
//! is a hundred lines of reading Markdown links and headings, done the way mdBook makes its
//! anchors (lowercase, whitespace to `-`, other punctuation dropped).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn src() -> PathBuf {
    root().join("docs/src")
}

/// Every file under `dir` whose name ends with `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The pages the checks read: the book's, the README and CONTRIBUTING.
fn pages() -> Vec<PathBuf> {
    let mut p = files(&src(), ".md");
    p.push(root().join("README.md"));
    p.push(root().join("CONTRIBUTING.md"));
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The lines of a page outside fenced code blocks, with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// A line without its inline code spans (links inside them are not links).
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a line.
fn links(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// The text of a heading as mdBook renders it: links reduced to their text, code and
/// emphasis marks dropped later by the id rule.
fn heading_text(h: &str) -> String {
    let mut out = String::new();
    let mut rest = h;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match (after.find("]("), after.find(']')) {
            (Some(j), Some(k)) if j == k => {
                out.push_str(&after[..j]);
                let tail = &after[j + 2..];
                rest = tail.find(')').map_or("", |e| &tail[e + 1..]);
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// mdBook's id of a heading: alphanumerics, `_` and `-` kept (lowercased), whitespace to
/// `-`, everything else dropped.
fn anchor_of(h: &str) -> String {
    heading_text(h.trim())
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a page's headings, with mdBook's `-1`, `-2` for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose(text) {
        let t = line.trim_start();
        if !t.starts_with('#') {
            continue;
        }
        let h = t.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let id = anchor_of(h);
        let n = seen.entry(id.clone()).or_insert(0);
        out.insert(if *n == 0 {
            id.clone()
        } else {
            format!("{id}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn anchors_follow_mdbooks_rule() {
    assert_eq!(
        anchor_of(" `hashroll explain` first"),
        "hashroll-explain-first"
    );
    assert_eq!(
        anchor_of(" GitOps: Argo CD and Flux"),
        "gitops-argo-cd-and-flux"
    );
    assert_eq!(
        anchor_of(" The NetworkPolicy under `helm template`"),
        "the-networkpolicy-under-helm-template"
    );
    assert_eq!(
        anchor_of(" See [Install](install.md) now"),
        "see-install-now"
    );
    let a = anchors("# A\n\n```\n# not a heading\n```\n## A\n#nohead\n");
    assert_eq!(a, BTreeSet::from(["a".to_string(), "a-1".to_string()]));
    assert_eq!(
        links("[a](x.md#y) and `[b](not.md)` [c](https://e.org)"),
        ["x.md#y", "https://e.org"]
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut bad = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (n, line) in prose(&text) {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(path)
                };
                if !file.exists() {
                    bad.push(format!("{}:{n}: {target}: no such file", rel(&page)));
                    continue;
                }
                if let Some(a) = anchor {
                    if !file.to_string_lossy().ends_with(".md") {
                        continue;
                    }
                    if !anchors(&read(&file)).contains(a) {
                        bad.push(format!("{}:{n}: {target}: no such heading", rel(&page)));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

/// The paths of the `{{#include PATH}}` lines of a page (a `:anchor` or line range cut).
fn includes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.find("{{#include ") {
            let rest = &line[i + "{{#include ".len()..];
            let end = rest.find("}}").expect("an include closes on its line");
            let spec = rest[..end].trim();
            out.push(spec.split(':').next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn every_include_names_a_file_and_every_example_is_shown() {
    let mut bad = Vec::new();
    let mut shown = BTreeSet::new();
    for page in files(&src(), ".md") {
        for inc in includes(&read(&page)) {
            let file = page.parent().unwrap().join(&inc);
            match file.canonicalize() {
                Ok(f) => {
                    shown.insert(f);
                }
                Err(_) => bad.push(format!(
                    "{}: {{{{#include {inc}}}}}: no such file",
                    rel(&page)
                )),
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let examples = root().join("examples");
    let not_shown: Vec<String> = files(&examples, ".yaml")
        .into_iter()
        .filter(|f| !shown.contains(&f.canonicalize().unwrap()))
        .map(|f| rel(&f))
        .collect();
    assert!(
        not_shown.is_empty(),
        "examples no page includes (show them, or remove them): {not_shown:?}"
    );
}

#[test]
fn every_yaml_block_of_a_page_is_an_included_example() {
    let mut bad = Vec::new();
    for page in files(&src(), ".md") {
        // the generated reference pages are checked against the code by their own test
        if page.starts_with(src().join("reference")) {
            continue;
        }
        let text = read(&page);
        let mut in_yaml = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("```") {
                in_yaml = !in_yaml && t.trim_start_matches('`').trim() == "yaml";
                continue;
            }
            if in_yaml && !t.is_empty() && !t.starts_with("{{#include ../") {
                bad.push(format!("{}:{}: {line}", rel(&page), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "YAML written into a page instead of included from examples/:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_page_is_in_the_summary_and_every_entry_is_a_page() {
    let summary_path = src().join("SUMMARY.md");
    let summary = read(&summary_path);
    let listed: BTreeSet<PathBuf> = summary
        .lines()
        .flat_map(links)
        .map(|l| src().join(l))
        .collect();
    let missing: Vec<String> = listed
        .iter()
        .filter(|p| !p.exists())
        .map(|p| rel(p))
        .collect();
    assert!(
        missing.is_empty(),
        "SUMMARY.md lists missing pages: {missing:?}"
    );
    let unlisted: Vec<String> = files(&src(), ".md")
        .into_iter()
        .filter(|p| *p != summary_path && !listed.contains(p))
        .map(|p| rel(&p))
        .collect();
    assert!(unlisted.is_empty(), "pages not in SUMMARY.md: {unlisted:?}");
}

/// `YYYY-MM-DD` anywhere in a line.
fn has_date(line: &str) -> bool {
    let b = line.as_bytes();
    b.windows(10).any(|w| {
        let d = |i: usize| w[i].is_ascii_digit();
        d(0) && d(1) && d(2) && d(3) && w[4] == b'-' && d(5) && d(6) && w[7] == b'-' && d(8) && d(9)
    })
}

/// "issue 4", "issue #4", "issues 3 and 4".
fn names_an_issue(line: &str) -> bool {
    let l = line.to_lowercase();
    l.match_indices("issue").any(|(i, _)| {
        let rest = l[i + "issue".len()..].trim_start_matches('s').trim_start();
        let rest = rest.trim_start_matches('#');
        rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[test]
fn no_page_reads_as_a_development_log() {
    assert!(has_date("on 2026-11-27 it") && !has_date("v1.37.2"));
    assert!(names_an_issue("see issue 4's note") && names_an_issue("Issue #12"));
    assert!(!names_an_issue("an issue with TLS"));
    let history = src().join("contributing/benchmarks.md");
    let mut bad = Vec::new();
    let mut docs = files(&root().join("docs"), ".md");
    docs.retain(|p| !p.starts_with(root().join("docs/book")));
    docs.push(root().join("README.md"));
    docs.push(root().join("CONTRIBUTING.md"));
    for page in docs.into_iter().filter(|p| *p != history) {
        for (i, line) in read(&page).lines().enumerate() {
            let l = line.to_lowercase();
            if l.contains("session") || names_an_issue(line) || has_date(line) {
                bad.push(format!("{}:{}: {line}", rel(&page), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "development-log sentences (sessions, issue numbers, dates of past runs) belong in \
         contributing/benchmarks.md or a commit message:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_alert_rule_links_its_runbook_page() {
    let rules = read(&root().join("charts/hashroll/files/alerts.yaml"));
    let runbooks = src().join("operations/runbooks");
    let mut alerts = Vec::new();
    let mut current: Option<String> = None;
    let mut bad = Vec::new();
    for line in rules.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("- alert:") {
            if let Some(prev) = current.take() {
                bad.push(format!("{prev}: no runbook_url"));
            }
            current = Some(a.trim().to_string());
            alerts.push(a.trim().to_string());
        } else if let Some(url) = t.strip_prefix("runbook_url:") {
            let alert = current.take().expect("a runbook_url inside a rule");
            let want = format!("/docs/src/operations/runbooks/{alert}.md");
            let url = url.trim();
            if !url.starts_with("https://") || !url.ends_with(&want) {
                bad.push(format!(
                    "{alert}: runbook_url {url} does not end with {want}"
                ));
            }
            if !runbooks.join(format!("{alert}.md")).exists() {
                bad.push(format!("{alert}: no page {alert}.md"));
            }
        }
    }
    if let Some(prev) = current {
        bad.push(format!("{prev}: no runbook_url"));
    }
    assert!(alerts.len() >= 7, "{alerts:?}");
    let pages: BTreeSet<String> = files(&runbooks, ".md")
        .into_iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|p| p != "index")
        .collect();
    let rules: BTreeSet<String> = alerts.into_iter().collect();
    assert_eq!(
        pages, rules,
        "one runbook page per alert rule, named as the rule"
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
