//! The crate's layering, as tests that read the source: the folders of `src/` rank (see
//! [`RANKS`] and the crate doc) and every file names only folders below its own; the core
//! runs one way; the commands (`cmd`'s modules with `telemetry`, `key` and `k8s`) never reach
//! back to one that uses them; the root of `src/` holds no loose module. A module named in
//! code (`crate::x`, `use crate::{x, y::z}`, a `super::` that leaves the folder) is a use;
//! a file's inline test module (`#[cfg(test)]` then `mod tests {`) is not read, what
//! follows it is. `testing` ranks above all, so production code never names it; a test
//! module of its own file (`#[cfg(test)] mod tests;`) may.

use std::collections::BTreeMap;
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// A module file's code, its inline test module (`#[cfg(test)]` then `mod tests {`, to the
/// `}` that closes it at the start of a line: rustfmt's layout) left out. A
/// `#[cfg(test)] mod tests;` line only declares the tests' file and cuts nothing.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    without_tests(&text)
}

fn without_tests(text: &str) -> String {
    const TESTS: &str = "\n#[cfg(test)]\nmod tests {";
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(TESTS) {
        code.push_str(&rest[..at]);
        let after = &rest[at + TESTS.len()..];
        rest = after.find("\n}").map_or("", |end| &after[end + 2..]);
    }
    code.push_str(rest);
    code
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

/// The folders of `src/`, lowest first (the crate doc says why this order). A file may name
/// its own folder and the folders of a lower rank; folders of one rank name each other not.
/// The root's items (`crate::Error`, which names the commands' errors) are `cmd`'s to name.
const RANKS: &[&[&str]] = &[
    &["core"],
    &["k8s"],
    &["cache"],
    &["services"],
    &["webhook", "watcher"],
    &["cmd"],
    &["testing"],
];

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The path written at the start of `s`: identifiers and `::`, up to a group or the end.
fn path_at(s: &str) -> &str {
    let mut end = 0;
    let mut rest = s;
    loop {
        let n = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        end += n;
        rest = &rest[n..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with(is_ident) => {
                end += 2;
                rest = r;
            }
            _ => break,
        }
    }
    &s[..end]
}

/// The items of the group `{...}` at the start of `s`, split at its top-level commas, each
/// with its spaces taken out.
fn group_items(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .map(|i| i.split_whitespace().collect::<String>())
        .filter(|i| !i.is_empty())
        .collect()
}

/// The paths from the crate's root that `code` (the file of module `module`, as
/// `["webhook", "admit"]`) names: each `crate::` path, each item of a `crate::{...}` group,
/// and each `super::` path that climbs to the root, written from the root.
fn root_paths(code: &str, module: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut read = |rest: &str| {
        if rest.starts_with('{') {
            out.extend(group_items(rest));
        } else {
            out.push(path_at(rest).to_string());
        }
    };
    for (at, _) in code.match_indices("crate::") {
        if !code[..at].ends_with(is_ident) {
            read(&code[at + "crate::".len()..]);
        }
    }
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with(is_ident) || code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        // `super::` in `cache/watch.rs` (module `cache::watch`) is `cache`: only a climb
        // to the root leaves the folder
        if up == module.len() {
            read(rest);
        }
    }
    out.retain(|p| !p.is_empty() && p != "self" && !p.starts_with("self::"));
    out
}

/// Whether a file of the folder of rank `own` may name `path` (from the root): a folder
/// of a lower rank, or the root's items (its `Error`) from `cmd`.
fn may_name(own: usize, path: &str) -> bool {
    let first = path.split("::").next().unwrap_or_default();
    match RANKS.iter().position(|r| r.contains(&first)) {
        Some(rank) => rank < own,
        None => RANKS[own].contains(&"cmd"),
    }
}

/// Whether `file` (from `src/`) is a test module of its own, declared `#[cfg(test)] mod x;`
/// by its parent: test code, which alone may name `testing` from below it.
fn test_only(file: &str) -> bool {
    let module = module_of(file);
    let Some((parent, name)) = module.rsplit_once("::") else {
        return false;
    };
    let parent = parent.replace("::", "/");
    [format!("{parent}.rs"), format!("{parent}/mod.rs")]
        .iter()
        .filter_map(|f| std::fs::read_to_string(Path::new(SRC).join(f)).ok())
        .any(|text| {
            ["mod", "pub(crate) mod"]
                .iter()
                .any(|m| text.contains(&format!("#[cfg(test)]\n{m} {name};")))
        })
}

/// Every `.rs` file under `dir`, as its path from `src/`.
fn files_under(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(SRC).expect("under src");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// What the files of each folder name of the other folders and the root, against the
/// ranks: the uses that go up or across (as `file: crate::path`), and how many go down.
fn uses_against_ranks() -> (Vec<String>, usize) {
    let mut up = Vec::new();
    let mut down = 0;
    for entry in std::fs::read_dir(SRC).expect("src") {
        let dir = entry.expect("an entry").path();
        if !dir.is_dir() {
            continue;
        }
        let folder = dir.file_name().and_then(|n| n.to_str()).expect("a name");
        let Some(own) = RANKS.iter().position(|r| r.contains(&folder)) else {
            up.push(format!("src/{folder}/ is in no rank of RANKS"));
            continue;
        };
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        for file in files {
            let module = module_of(&file);
            let module: Vec<&str> = module.split("::").collect();
            let code = code_of(&Path::new(SRC).join(&file));
            for path in root_paths(&code, &module) {
                if path.split("::").next() == Some(folder) {
                    continue;
                }
                let fixture = path.split("::").next() == Some("testing") && test_only(&file);
                if may_name(own, &path) || fixture {
                    down += 1;
                } else {
                    up.push(format!("src/{file}: crate::{path}"));
                }
            }
        }
    }
    up.sort();
    up.dedup();
    (up, down)
}

#[test]
fn the_reader_reads_groups_and_climbs_and_skips_only_inline_tests() {
    let code = "use crate::{cache, watcher::queue::{Due, Queue}, self};\n\
                use super::super::k8s::watch;\nuse super::sibling;\n\
                fn f() { crate::core::names::PAUSED; my_crate::x; }";
    assert_eq!(
        root_paths(code, &["webhook", "admit"]),
        [
            "cache",
            "watcher::queue::{Due,Queue}",
            "core::names::PAUSED",
            "k8s::watch",
        ]
    );
    assert_eq!(root_paths("use super::x;", &["cache"]), ["x"]);
    assert!(may_name(5, "watcher::queue::{Due,Queue}") && !may_name(4, "watcher::queue"));
    assert!(may_name(5, "Error") && !may_name(4, "Error") && !may_name(6, "Error"));
    assert!(test_only("watcher/writer/tests.rs") && !test_only("watcher/writer/mod.rs"));
    let text = "a\n#[cfg(test)]\nmod tests;\nb\n#[cfg(test)]\nmod tests {\n    c {\n    }\n}\nd\n";
    assert_eq!(without_tests(text), "a\n#[cfg(test)]\nmod tests;\nb\nd\n");
}

/// Every use of one folder by another goes down the ranks.
#[test]
fn the_folders_import_down_their_ranks() {
    let (up, down) = uses_against_ranks();
    assert!(
        down > 50,
        "the reader found only {down} uses between folders"
    );
    assert!(
        up.is_empty(),
        "uses that go up or across the ranks (core < k8s < cache < services < \
         webhook, watcher < cmd < testing):\n{}",
        up.join("\n")
    );
}
