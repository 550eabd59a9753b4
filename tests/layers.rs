//! The layers hold: no cycle between the top-level modules of any crate of
//! the workspace.
//!
//! For each crate, every `.rs` file under its `src/` belongs to the
//! top-level module it sits in (`src/machine.rs` and `src/machine/**` to
//! `machine`); each path it names through `crate::` (or through `super::`
//! up to the crate root) is an edge from that module to the top-level
//! module the path goes through. A name the crate root re-exports
//! (`crate::Error`, from `pub use error::Error;` in `lib.rs`) is an edge to
//! the module it comes from. Test code counts: a test that needs a module
//! above its own is a dependency like any other. Comments, doc comments and
//! string literals do not count.
//!
//! A cycle fails the test, printing each edge of it with the places that
//! make it, so the one to cut is plain to see. `ARCHITECTURE.md` draws the
//! layers this keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates checked: the directory that holds each one's `src/`.
const CRATES: &[&str] = &[
    ".",
    "core",
    "engine",
    "backend-tokio",
    "backend-smol",
    "bench",
    "cli",
];

/// Where an edge comes from: a file and a line.
type Places = Vec<String>;

#[test]
fn no_cycle_between_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for krate in CRATES {
        let src = root.join(krate).join("src");
        let Some(lib) = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.is_file())
        else {
            continue;
        };
        checked += 1;
        let graph = Graph::of_crate(&src, &lib);
        for cycle in graph.cycles() {
            failures.push(graph.describe(krate, &cycle));
        }
    }
    assert!(checked >= 3, "found only {checked} crates under {root:?}");
    assert!(
        failures.is_empty(),
        "top-level modules depend on each other in a loop:\n\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_checker_sees_use_trees_super_paths_and_re_exports() {
    let code = strip(
        "use crate::{a::X, b::{c, d}};\n\
         // crate::commented\n\
         let s = \"crate::quoted\";\n\
         fn f() { super::super::e::g(); crate::Reexported::new(); }\n",
    );
    let modules: BTreeSet<String> = ["a", "b", "e", "h", "own"].map(String::from).into();
    let exports: BTreeMap<String, String> = [("Reexported".to_owned(), "h".to_owned())].into();
    let found: BTreeSet<String> = references(&code, &["own".to_owned(), "sub".to_owned()])
        .into_iter()
        .filter_map(|(path, _)| resolve(&path, &modules, &exports))
        .collect();
    assert_eq!(found, ["a", "b", "e", "h"].map(String::from).into());
}

/// The top-level modules of one crate and the edges between them.
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Places>>,
}

impl Graph {
    fn of_crate(src: &Path, lib: &Path) -> Self {
        let lib_code = strip(&read(lib));
        let modules = declared_modules(&lib_code);
        let exports = re_exports(&lib_code, &modules);
        let mut edges: BTreeMap<String, BTreeMap<String, Places>> = BTreeMap::new();
        for file in rust_files(src) {
            let relative = file.strip_prefix(src).unwrap_or(&file);
            let module_path = module_path(relative);
            let Some(top) = module_path.first().cloned() else {
                continue; // the crate root itself
            };
            let code = strip(&read(&file));
            for (path, line) in references(&code, &module_path) {
                let Some(to) = resolve(&path, &modules, &exports) else {
                    continue;
                };
                if to == top {
                    continue;
                }
                let place = format!("{}:{line}", relative.display());
                let places = edges.entry(top.clone()).or_default().entry(to);
                let places = places.or_default();
                if !places.contains(&place) {
                    places.push(place);
                }
            }
        }
        Self { edges }
    }

    /// Every strongly connected group of more than one module (Tarjan).
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Walk<'a> {
            graph: &'a Graph,
            next: usize,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            found: Vec<Vec<String>>,
        }
        impl<'a> Walk<'a> {
            fn visit(&mut self, v: &'a str) {
                self.index.insert(v, self.next);
                self.low.insert(v, self.next);
                self.next += 1;
                self.stack.push(v);
                for w in self.graph.edges.get(v).into_iter().flat_map(|e| e.keys()) {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.stack.contains(&w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut group = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        group.push(w.to_owned());
                        if w == v {
                            break;
                        }
                    }
                    if group.len() > 1 {
                        group.sort();
                        self.found.push(group);
                    }
                }
            }
        }
        let mut walk = Walk {
            graph: self,
            next: 0,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !walk.index.contains_key(v.as_str()) {
                walk.visit(v);
            }
        }
        walk.found
    }

    fn describe(&self, krate: &str, cycle: &[String]) -> String {
        let mut text = format!("crate {krate}: {}\n", cycle.join(", "));
        for from in cycle {
            for (to, places) in self.edges.get(from).into_iter().flatten() {
                if cycle.contains(to) {
                    let shown: Vec<_> = places.iter().take(4).cloned().collect();
                    let more = places.len().saturating_sub(shown.len());
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    text.push_str(&format!("  {from} -> {to}: {}{more}\n", shown.join(", ")));
                }
            }
        }
        text
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module path of a file relative to `src/`: `machine/model.rs` is
/// `machine::model`, `engine/mod.rs` is `engine`, `lib.rs` is the root.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code without comments, string and char literals (each replaced by
/// spaces, so line numbers hold).
fn strip(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            out.extend(chars[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(j) => {
                    out.extend(chars[i..=j].iter().map(|&c| blank(c)));
                    i = j + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The `mod` items of the crate root.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let words: Vec<&str> = lib
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|w| w[0] == "mod")
        .map(|w| w[1].to_owned())
        .collect()
}

/// What the crate root re-exports from its own modules: name → module.
fn re_exports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("use ") else {
            continue;
        };
        for path in flatten(statement[at + 4..].trim()) {
            let path: Vec<&str> = path
                .iter()
                .map(String::as_str)
                .skip_while(|s| *s == "self" || *s == "crate")
                .collect();
            if let (Some(first), Some(last)) = (path.first(), path.last()) {
                if path.len() > 1 && modules.contains(*first) {
                    exports.insert(last.to_string(), first.to_string());
                }
            }
        }
    }
    exports
}

/// Flattens a use tree (`a::{b, c::{d, e as f}}`) into its paths; an
/// alias names the path by its alias.
fn flatten(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    if let Some(open) = top_level_brace(tree) {
        let prefix: Vec<String> = segments(&tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut out = Vec::new();
        for part in split_top_level(inner) {
            for rest in flatten(part) {
                let mut path = prefix.clone();
                path.extend(rest);
                out.push(path);
            }
        }
        out
    } else {
        let (path, alias) = match tree.split_once(" as ") {
            Some((path, alias)) => (path, Some(alias.trim())),
            None => (tree, None),
        };
        let mut path = segments(path);
        if let (Some(alias), Some(last)) = (alias, path.last_mut()) {
            *last = alias.to_owned();
        }
        if path.is_empty() {
            Vec::new()
        } else {
            vec![path]
        }
    }
}

fn top_level_brace(tree: &str) -> Option<usize> {
    tree.find('{')
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn split_top_level(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Every path from the crate root that `code` (of the module at
/// `module_path`) names, with its line: `crate::` paths (and use trees),
/// and `super::` chains that climb to the root.
fn references(code: &str, module_path: &[String]) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    let mut line = 1;
    while i < code.len() {
        let rest = &code[i..];
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if bytes[i] == b'\n' {
            line += 1;
        }
        if word_start && rest.starts_with("crate::") {
            let tail = &rest["crate::".len()..];
            found.extend(paths_at(tail).into_iter().map(|p| (p, line)));
            i += "crate::".len();
        } else if word_start && rest.starts_with("super::") {
            // Climb: each `super` leaves one module; a file's own module
            // is its path (a `mod.rs` file is the module itself).
            let mut depth = module_path.len();
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("super::") {
                depth = depth.saturating_sub(1);
                tail = after.trim_start();
            }
            let consumed = rest.len() - tail.len();
            if depth == 0 {
                found.extend(paths_at(tail).into_iter().map(|p| (p, line)));
            }
            i += consumed;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// The paths at the start of `tail`: one path (`a::b`), or a use tree
/// (`{a, b::c}`).
fn paths_at(tail: &str) -> Vec<Vec<String>> {
    if tail.starts_with('{') {
        let mut depth = 0;
        let end = tail
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => {}
                }
                None
            })
            .unwrap_or(tail.len().saturating_sub(1));
        flatten(&format!("x::{}", &tail[..=end.min(tail.len() - 1)]))
            .into_iter()
            .map(|p| p.into_iter().skip(1).collect())
            .collect()
    } else {
        let ident: String = tail
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            Vec::new()
        } else {
            vec![vec![ident]]
        }
    }
}

/// The top-level module a path from the crate root goes through.
fn resolve(
    path: &[String],
    modules: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> Option<String> {
    let first = path.first()?;
    if modules.contains(first) {
        Some(first.clone())
    } else {
        exports.get(first).cloned()
    }
}
