//! A test of the crate's shape: the graph of which top-level module uses which has no circle,
//! and the layout in `lib.rs` names every module.
//!
//! Edges are read from the sources the way a reader sees them: every `crate::x` path, in `use`
//! lines and inline alike, and `super::x` in a top-level module (its parent is the crate). A
//! directory module (`sessions/…`) is one node. Test code (`tests.rs` files and everything
//! after a `#[cfg(test)]` line, where this crate keeps its test modules) is left out, as
//! `cargo modules` does by default. Strongly connected components (Tarjan) with more than one
//! module are circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` with its top-level module and its depth below `src/`.
fn files(dir: &Path, out: &mut Vec<(PathBuf, String, usize)>) {
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src()).expect("under src");
            let parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            let top = parts[0].clone();
            let depth = match parts.last().map(String::as_str) {
                Some("mod") => parts.len() - 1,
                _ => parts.len(),
            };
            out.push((path, top, depth));
        }
    }
}

/// Identifiers after `prefix` in `code` (`crate::a`, `crate::{a, b::c}`).
fn targets(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The module graph: module → modules it uses.
pub(crate) fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeSet<String> = all
        .iter()
        .map(|(_, top, _)| top.clone())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (path, top, depth) in &all {
        if !modules.contains(top) || path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut used = targets(code, "crate::");
        if *depth == 1 {
            used.extend(targets(code, "super::"));
        }
        for m in used {
            if modules.contains(&m) && &m != top {
                edges.get_mut(top).expect("node").insert(m);
            }
        }
    }
    edges
}

/// Strongly connected components with more than one node.
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.g[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("low");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("low");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let g = graph();
    for (m, uses) in &g {
        eprintln!(
            "{m} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        g.contains_key("sessions") && g["sessions"].contains("catalog"),
        "{g:?}"
    );
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "import circles among bridge modules: {found:?}"
    );
}

#[test]
fn the_checker_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        targets(
            "use crate::{a, b::C};\nlet x = crate::d::f(); notcrate::e",
            "crate::"
        ),
        ["a", "b", "d"].into_iter().map(str::to_owned).collect()
    );
}

#[test]
fn the_layout_in_lib_rs_names_every_module() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let layout = lib.split("pub mod").next().unwrap_or_default();
    for m in graph().keys().filter(|m| *m != "module_graph") {
        assert!(
            layout.contains(&format!("[`{m}`]")),
            "lib.rs layout does not mention {m}"
        );
    }
}
