//! The layering rule of ARCHITECTURE.md, checked on every `cargo test`: modules import
//! only downward, and no two modules import each other, directly or around a circle.
//!
//! The check reads `src/` as text: every `crate::…`, `super::…` and `self::…` path (in
//! `use` trees and inline), and paths through a file's own `mod` children, resolved to
//! the file that defines the longest matching module. Comments, string literals and the
//! `#[cfg(test)] mod tests` at the end of a file are left out: unit tests may reach
//! anywhere.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A module may import modules of its own layer (without a
/// circle) or of a lower one; a module missing from this table fails the test, so every
/// new file is placed on purpose.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaf: no domain knowledge",
        &[
            "crypto",
            "config",
            "i18n",
            "metrics",
            "outbound",
            "telemetry",
            "storage",
        ],
    ),
    ("tenancy", &["tenants"]),
    ("tenant-wide services", &["audit", "rbac", "keys"]),
    (
        "registrations and guards",
        &[
            "clients",
            "api_keys",
            "dpop",
            "protection",
            "mail",
            "provider",
        ],
    ),
    ("people", &["accounts", "mfa", "passkeys", "sessions"]),
    ("grants", &["tokens", "authorization"]),
    ("flows", &["first_party", "federation"]),
    (
        "orchestration",
        &["provisioning", "user_admin", "platform_admins"],
    ),
    ("wiring", &["state", "jobs", "demo"]),
    ("transport", &["error", "http"]),
    ("entry points", &["startup", "cli", "crate"]),
];

/// Modules below transport must not speak HTTP.
const TRANSPORT_CRATES: &[&str] = &["actix_web", "actix_http", "askama"];
const FIRST_TRANSPORT_LAYER: &str = "transport";

struct Module {
    name: String,
    file: String,
    code: String,
}

/// The top-level module a module belongs to (`federation::saml` → `federation`).
fn top(name: &str) -> &str {
    name.split("::").next().unwrap_or(name)
}

fn layer_of(name: &str) -> Option<(usize, &'static str)> {
    let top = top(name);
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&top))
        .map(|(i, (label, _))| (i, *label))
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "main.rs" {
            // The binary crate: it sees the library only through `portcullis::`.
            continue;
        }
        let stem = rel.trim_end_matches(".rs");
        let name = if stem == "lib" {
            "crate".to_string()
        } else {
            stem.trim_end_matches("/mod").replace('/', "::")
        };
        let source = std::fs::read_to_string(&path).expect("source file is readable");
        out.push(Module {
            name,
            file: format!("src/{rel}"),
            code: strip(&source),
        });
    }
}

/// The code of a file without comments, string and char literals, and without its
/// trailing `#[cfg(test)] mod tests`.
fn strip(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(i) => &source[..i],
        None => source,
    };
    let b: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(prev(&b, i)) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            'raw: while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break 'raw;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&b, i) {
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev(b: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        b[i - 1]
    }
}

/// `'a'` or `'\n'` rather than a lifetime `'a`.
fn is_char_literal(b: &[char], i: usize) -> bool {
    match b.get(i + 1) {
        Some('\\') => true,
        Some(_) => b.get(i + 2) == Some(&'\''),
        None => false,
    }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path a use tree starting at `s` names, each as its segments.
fn use_tree(s: &[char], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        if s.get(i) == Some(&'{') {
            i += 1;
            loop {
                while i < s.len() && (s[i].is_whitespace() || s[i] == ',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == '}' {
                    return i + 1;
                }
                i = use_tree(s, i, path.clone(), out);
            }
        }
        let start = i;
        while i < s.len() && (ident_char(s[i]) || s[i] == '*') {
            i += 1;
        }
        let segment: String = s[start..i].iter().collect();
        if segment.is_empty() {
            out.push(path);
            return i;
        }
        if segment != "self" && segment != "*" {
            path.push(segment);
        }
        if s.get(i) == Some(&':') && s.get(i + 1) == Some(&':') {
            i += 2;
            continue;
        }
        out.push(path);
        // Skip `as name`.
        let rest: String = s[i..(i + 4).min(s.len())].iter().collect();
        if rest.trim_start().starts_with("as ") {
            while i < s.len() && s[i].is_whitespace() {
                i += 1;
            }
            i += 2;
            while i < s.len() && s[i].is_whitespace() {
                i += 1;
            }
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
        }
        return i;
    }
}

/// The absolute module paths a module's code refers to.
fn references(m: &Module) -> Vec<Vec<String>> {
    let s: Vec<char> = m.code.chars().collect();
    let own: Vec<String> = if m.name == "crate" {
        vec![]
    } else {
        m.name.split("::").map(str::to_string).collect()
    };
    let is_mod_rs = m.file.ends_with("/mod.rs") || m.file == "src/lib.rs";
    // A file's parent module: for `a/b.rs` it is `a`, for `a/b/mod.rs` it is `a` too.
    let parent: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
    let children: BTreeSet<String> = child_modules(&m.code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !ident_char(s[i]) || (i > 0 && (ident_char(s[i - 1]) || s[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && ident_char(s[i]) {
            i += 1;
        }
        let word: String = s[start..i].iter().collect();
        if s.get(i) != Some(&':') || s.get(i + 1) != Some(&':') {
            continue;
        }
        let base: Option<Vec<String>> = match word.as_str() {
            "crate" => Some(vec![]),
            "self" => Some(own.clone()),
            "super" => Some(parent.clone()),
            w if children.contains(w) => {
                let mut p = own.clone();
                p.push(w.to_string());
                Some(p)
            }
            _ => None,
        };
        let Some(mut base) = base else { continue };
        if word == "super" {
            // `super::super::…`
            let mut j = i + 2;
            while s[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                base.pop();
                j += 7;
            }
            i = j - 2;
        }
        if children.contains(&word) {
            // Parent to child is the normal direction; recorded all the same.
            let _ = is_mod_rs;
        }
        i = use_tree(&s, i + 2, base, &mut out);
    }
    out
}

/// The `mod x;` children a file declares.
fn child_modules(code: &str) -> BTreeSet<String> {
    code.lines()
        .map(str::trim)
        .filter_map(|l| {
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            let l = l.strip_prefix("pub(super) ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// The module (file) a path lands in: the longest prefix that is a module.
fn resolve<'a>(path: &[String], names: &'a BTreeSet<String>) -> Option<&'a String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find_map(|p| names.get(&p))
}

fn graph() -> (Vec<Module>, BTreeMap<String, BTreeSet<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = Vec::new();
    collect(&root, &root, &mut modules);
    let names: BTreeSet<String> = modules.iter().map(|m| m.name.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let targets = edges.entry(m.name.clone()).or_default();
        for path in references(m) {
            if let Some(t) = resolve(&path, &names) {
                if *t != m.name {
                    targets.insert(t.clone());
                }
            }
        }
    }
    (modules, edges)
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on_stack.insert(v);
        if let Some(targets) = t.edges.get(v) {
            for w in targets {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let low = t.low[v].min(t.low[w]);
                    t.low.insert(v, low);
                } else if t.on_stack.contains(w) {
                    let low = t.low[v].min(t.index[w]);
                    t.low.insert(v, low);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut component = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                t.out.push(component);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn every_module_has_a_layer() {
    let (modules, _) = graph();
    let missing: Vec<_> = modules
        .iter()
        .filter(|m| layer_of(&m.name).is_none())
        .map(|m| m.file.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "place these in LAYERS (tests/architecture.rs) and ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let (_, edges) = graph();
    let mut upward = Vec::new();
    for (from, targets) in &edges {
        let Some((lf, from_label)) = layer_of(from) else {
            continue;
        };
        for to in targets {
            let Some((lt, to_label)) = layer_of(to) else {
                continue;
            };
            if lt > lf {
                upward.push(format!("{from} ({from_label}) -> {to} ({to_label})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports running up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_below_transport_speaks_http() {
    let (modules, _) = graph();
    let transport = LAYERS
        .iter()
        .position(|(label, _)| *label == FIRST_TRANSPORT_LAYER)
        .unwrap();
    let mut found = Vec::new();
    for m in &modules {
        let Some((layer, _)) = layer_of(&m.name) else {
            continue;
        };
        if layer >= transport || m.name == "state" {
            // `AppState` is wiring for the transport layer: it may hold its types.
            continue;
        }
        for c in TRANSPORT_CRATES {
            if m.code.contains(&format!("{c}::")) {
                found.push(format!("{} uses {c}", m.file));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    let (_, edges) = graph();
    let found = circles(&edges);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            let inner: Vec<String> = c
                .iter()
                .flat_map(|from| {
                    edges[from]
                        .iter()
                        .filter(|to| c.contains(to))
                        .map(move |to| format!("  {from} -> {to}"))
                })
                .collect();
            format!("circle of {}: {:?}\n{}", c.len(), c, inner.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", report.join("\n\n"));
}

#[test]
fn the_check_sees_what_it_must() {
    let m = Module {
        name: "a::b".into(),
        file: "src/a/b.rs".into(),
        code: strip(
            "use crate::{x::{self, Y}, z as w};\nuse super::c::D;\n\
             // use crate::commented;\nlet s = \"crate::in_a_string\";\n\
             fn f() { crate::inline::call(); let _ = crate::s::T { a: 1 }; }\n\
             #[cfg(test)]\nmod tests { use crate::only_in_tests; }",
        ),
    };
    let found: BTreeSet<String> = references(&m).iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = ["x", "x::Y", "z", "a::c::D", "inline::call", "s::T"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(found, expected);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    edges.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&edges), vec![vec!["a", "b", "c"]]);
}
