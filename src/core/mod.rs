//! The pure core: no I/O, no async. What a workload uses, what it tracks, what its record
//! and roll token are, and the patch that writes them.

pub mod digest;
pub mod gate;
pub mod health;
pub mod kind;
pub mod limits;
pub mod lists;
pub mod names;
pub mod patch;
pub mod policy;
pub mod record;
pub mod refs;
pub mod selector;
pub mod source;
pub mod stamp;
pub mod syntax;
pub mod template;
pub mod window;
pub mod workload;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Each core module and the core modules its code (tests aside) names.
    fn core_uses() -> BTreeMap<String, Vec<String>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/core");
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).expect("src/core") {
            let path = entry.expect("an entry").path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if name == "mod" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a module");
            let code = text
                .split("\n#[cfg(test)]\nmod ")
                .next()
                .unwrap_or_default();
            let mut uses: Vec<String> = Vec::new();
            for prefix in ["super::", "crate::core::"] {
                for (at, _) in code.match_indices(prefix) {
                    let rest = &code[at + prefix.len()..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let m = &rest[..end];
                    if !m.is_empty() && m != name && !uses.iter().any(|u| u == m) {
                        uses.push(m.to_string());
                    }
                }
            }
            out.insert(name.to_string(), uses);
        }
        out
    }

    /// The core runs one way (refs, limits, syntax, digest, names, source → kind, workload →
    /// policy → record → stamp → patch): a module never reaches back to one that uses it.
    #[test]
    fn the_core_has_no_import_cycle() {
        let uses = core_uses();
        assert!(uses.len() >= 15 && uses["stamp"].contains(&"policy".to_string()));
        // depth-first; a module met again while still on the path closes a cycle
        fn visit<'a>(
            m: &'a str,
            uses: &'a BTreeMap<String, Vec<String>>,
            path: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) {
            if done.contains(&m) {
                return;
            }
            if let Some(i) = path.iter().position(|p| *p == m) {
                panic!(
                    "import cycle in src/core: {} -> {m}",
                    path[i..].join(" -> ")
                );
            }
            path.push(m);
            for u in uses.get(m).into_iter().flatten() {
                visit(u, uses, path, done);
            }
            path.pop();
            done.push(m);
        }
        let mut done = Vec::new();
        for m in uses.keys() {
            visit(m, &uses, &mut Vec::new(), &mut done);
        }
    }
}
