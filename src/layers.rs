//! The crate's layering, as tests that read the `use` lines: the core runs one way, and the
//! commands (`cmd`'s modules with `telemetry`, `key` and `k8s`) never reach back to one that
//! uses them; the root of `src/` holds no loose module. A module named in code (tests aside) is a use.

use std::collections::BTreeMap;
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// A module file's code, its tests left out.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a module");
    text.split("\n#[cfg(test)]\nmod ")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The words after each `prefix` in `code` (`crate::x::y` → `x::y` when `depth` is 2).
fn named(code: &str, prefix: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let mut rest = &code[at + prefix.len()..];
        let mut parts = Vec::new();
        while parts.len() < depth {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            parts.push(&rest[..end]);
            match rest[end..].strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if !parts.is_empty() {
            out.push(parts.join("::"));
        }
    }
    out
}

/// Panics with the cycle when the graph has one.
fn assert_acyclic(graph: &BTreeMap<String, Vec<String>>, what: &str) {
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, Vec<String>>,
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
        what: &str,
    ) {
        if done.contains(&m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            panic!("import cycle in {what}: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m);
        for u in graph.get(m).into_iter().flatten() {
            visit(u, graph, path, done, what);
        }
        path.pop();
        done.push(m);
    }
    let mut done = Vec::new();
    for m in graph.keys() {
        visit(m, graph, &mut Vec::new(), &mut done, what);
    }
}

/// Each core module and the core modules it names. A module that is a directory is its
/// `mod.rs` (where `super::` is the core) and the files under it (where `super::` is the
/// module itself, so only `crate::core::` counts).
fn core_graph() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("{SRC}/core")).expect("src/core") {
        let path = entry.expect("an entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if name == "mod" {
            continue;
        }
        let (top, inner) = if path.is_dir() {
            let mut inner = String::new();
            for f in std::fs::read_dir(&path).expect("a module directory") {
                let f = f.expect("an entry").path();
                if f.file_name().is_some_and(|n| n != "mod.rs") {
                    inner.push_str(&code_of(&f));
                }
            }
            (code_of(&path.join("mod.rs")), inner)
        } else {
            (code_of(&path), String::new())
        };
        let mut uses: Vec<String> = named(&top, "super::", 1);
        uses.extend(named(&top, "crate::core::", 1));
        uses.extend(named(&inner, "crate::core::", 1));
        uses.retain(|u| u != name);
        uses.sort();
        uses.dedup();
        out.insert(name.to_string(), uses);
    }
    out
}

#[test]
fn the_core_has_no_import_cycle() {
    let graph = core_graph();
    assert!(graph.len() >= 15 && graph["stamp"].contains(&"policy".to_string()));
    assert_acyclic(&graph, "src/core");
}

/// The module path of a file under `src/` (`cmd/cli/mod.rs` → `cmd::cli`).
fn module_of(file: &str) -> String {
    let path = file.trim_end_matches(".rs").trim_end_matches("/mod");
    path.replace('/', "::")
}

/// The commands and what they build on: each node's files, and what it names of the others.
#[test]
fn the_commands_have_no_import_cycle() {
    let nodes: [(&str, &[&str]); 13] = [
        ("cmd::cli", &["cmd/cli/mod.rs"]),
        ("cmd::cli::args", &["cmd/cli/args.rs"]),
        ("cmd::cli::reloader", &["cmd/cli/reloader.rs"]),
        ("cmd::migrate_values", &["cmd/migrate_values.rs"]),
        ("cmd::cli::run_args", &["cmd/cli/run_args.rs"]),
        ("cmd::config", &["cmd/config.rs"]),
        (
            "cmd::explain",
            &[
                "cmd/explain/mod.rs",
                "cmd/explain/render.rs",
                "cmd/explain/safe.rs",
            ],
        ),
        ("cmd::migrate", &["cmd/migrate.rs"]),
        ("cmd::objects", &["cmd/objects.rs"]),
        ("services::telemetry", &["services/telemetry.rs"]),
        ("services::key", &["services/key.rs"]),
        ("cmd::app", &["cmd/app.rs"]),
        ("k8s", &["k8s/mod.rs", "k8s/api.rs", "k8s/watch.rs"]),
    ];
    let node_of = |named: &str| -> Option<&str> {
        // the longest node the name starts with (`cmd::cli::args::X` is `cmd::cli::args`)
        nodes
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| named == *n || named.starts_with(&format!("{n}::")))
            .max_by_key(|n| n.len())
    };
    let mut graph = BTreeMap::new();
    for (node, files) in nodes {
        let mut uses = Vec::new();
        for f in files {
            let code = code_of(&Path::new(SRC).join(f));
            let mut names = named(&code, "crate::", 3);
            // `super::x` names a sibling of the file's module
            let module = module_of(f);
            let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
            names.extend(named(&code, "super::", 2).iter().map(|n| {
                if parent.is_empty() {
                    n.clone()
                } else {
                    format!("{parent}::{n}")
                }
            }));
            for n in names {
                if let Some(m) = node_of(&n).filter(|m| *m != node) {
                    uses.push(m.to_string());
                }
            }
        }
        uses.sort();
        uses.dedup();
        graph.insert(node.to_string(), uses);
    }
    assert!(
        graph["cmd::cli"].contains(&"cmd::app".to_string()),
        "{graph:?}"
    );
    assert!(
        graph["cmd::config"].contains(&"cmd::cli::run_args".to_string()),
        "{graph:?}"
    );
    assert!(
        graph["cmd::cli::run_args"].contains(&"cmd::cli::args".to_string()),
        "{graph:?}"
    );
    assert_acyclic(&graph, "the commands");
}

/// The root of `src/` holds the crate's entry points and the layers' directories only.
#[test]
fn the_root_holds_no_loose_module() {
    let mut loose: Vec<String> = std::fs::read_dir(SRC)
        .expect("src")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.is_file())
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .filter(|n| !["lib.rs", "main.rs", "layers.rs"].contains(&n.as_str()))
        .collect();
    loose.sort();
    assert!(loose.is_empty(), "{loose:?}");
}
