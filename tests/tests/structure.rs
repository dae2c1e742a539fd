//! The shape of the product crates, as ARCHITECTURE.md promises it (issue 26): no import cycle
//! between the modules of guard-userspace (at the top level, and between siblings one level
//! down), and no source file of guard-common, guard-ebpf or guard-userspace longer than
//! [`MAX_LINES`] without a stated reason (a line `//! Length: <why>` near its top).
//!
//! The import graph is read from the source: every `crate::a::b` path, inside or outside a
//! `use crate::{...}` group, is an edge from the file's module to the longest module prefix that
//! exists. Test modules (`#[cfg(test)] mod tests`) are left out: a test may reach anywhere.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `n3/controller/tick.rs` → `n3::controller::tick`; `n3/mod.rs` → `n3`; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The source without comments and without a trailing `#[cfg(test)] mod tests { ... }`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every module path named after `crate::` in `code`, groups flattened (`crate::{a::b, c::{d, e}}`
/// names `a`, `a::b`, `c`, `c::d`, `c::e`).
fn crate_paths(code: &str) -> BTreeSet<String> {
    let c: Vec<char> = code.chars().collect();
    let pat: Vec<char> = "crate::".chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + pat.len() <= c.len() {
        if c[i..i + pat.len()] == pat[..] {
            let (paths, end) = parse_tree(&c, i + pat.len(), String::new());
            out.extend(paths);
            i = end.max(i + pat.len());
        } else {
            i += 1;
        }
    }
    out
}

/// A use tree at `i` under `prefix`: the paths it names and where it ends.
fn parse_tree(c: &[char], mut i: usize, prefix: String) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut path = prefix;
    loop {
        if c.get(i) == Some(&'{') {
            i += 1;
            loop {
                while i < c.len() && c[i].is_whitespace() {
                    i += 1;
                }
                if i >= c.len() || c[i] == '}' {
                    return (out, i + 1);
                }
                let (sub, end) = parse_tree(c, i, path.clone());
                out.extend(sub);
                i = end.max(i + 1);
                while i < c.len() && c[i] != ',' && c[i] != '}' {
                    i += 1;
                }
                if c.get(i) == Some(&',') {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
            i += 1;
        }
        if i == start {
            return (out, i);
        }
        let seg: String = c[start..i].iter().collect();
        path = if path.is_empty() { seg } else { format!("{path}::{seg}") };
        out.push(path.clone());
        if c.get(i) == Some(&':') && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            return (out, i);
        }
    }
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        idx: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T, v: &str) {
        let n = t.idx.len();
        t.idx.insert(v.into(), n);
        t.low.insert(v.into(), n);
        t.stack.push(v.into());
        t.on.insert(v.into());
        for w in t.g.get(v).into_iter().flatten() {
            if !t.idx.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.idx[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.idx[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t =
        T { g, idx: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.idx.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn guard_userspace_has_no_import_cycle() {
    let src = root().join("guard-userspace/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .filter(|(m, _)| m.last().map(String::as_str) != Some("tests"))
        .collect();
    assert!(modules.contains_key(&vec!["n3".to_owned(), "controller".to_owned()]), "the walk found the modules");
    let resolve = |p: &str| -> Option<Vec<String>> {
        let segs: Vec<String> = p.split("::").map(str::to_owned).collect();
        (1..=segs.len()).rev().map(|n| segs[..n].to_vec()).find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for (m, f) in &modules {
        let text = fs::read_to_string(f).expect("read source");
        for p in crate_paths(&code(&text)) {
            if let Some(t) = resolve(&p) {
                if &t != m {
                    edges.insert((m.clone(), t));
                }
            }
        }
    }
    assert!(edges.len() > 50, "the import graph was read ({} edges)", edges.len());
    let mut found = Vec::new();
    for depth in [1usize, 2] {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in &edges {
            if a.len() < depth || b.len() < depth || a[..depth - 1] != b[..depth - 1] || a[..depth] == b[..depth] {
                continue;
            }
            g.entry(a[..depth].join("::")).or_default().insert(b[..depth].join("::"));
        }
        for c in cycles(&g) {
            let why: Vec<String> = edges
                .iter()
                .filter(|(a, b)| {
                    a.len() >= depth
                        && b.len() >= depth
                        && c.contains(&a[..depth].join("::"))
                        && c.contains(&b[..depth].join("::"))
                        && a[..depth] != b[..depth]
                })
                .map(|(a, b)| format!("{} -> {}", a.join("::"), b.join("::")))
                .collect();
            found.push(format!("cycle {c:?}: {}", why.join(", ")));
        }
    }
    assert!(found.is_empty(), "import cycles in guard-userspace:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    // The check above must be able to fail: a planted cycle a → b → c → a, and a path group.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    let c = cycles(&g);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].iter().collect::<BTreeSet<_>>(),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>().iter().collect()
    );
    let p = crate_paths("use crate::{bpf::{maps::X, pins}, n3::load};\nlet x = crate::n2::engine::f();");
    for want in ["bpf", "bpf::maps", "bpf::maps::X", "bpf::pins", "n3::load", "n2::engine::f"] {
        assert!(p.contains(want), "{want} in {p:?}");
    }
}

#[test]
fn no_product_source_file_is_long_without_a_reason() {
    let mut long = Vec::new();
    for krate in ["guard-common/src", "guard-ebpf/src", "guard-userspace/src"] {
        let mut files = Vec::new();
        rust_files(&root().join(krate), &mut files);
        assert!(!files.is_empty(), "{krate} has sources");
        for f in files {
            let text = fs::read_to_string(&f).expect("read source");
            let n = text.lines().count();
            let test_file =
                f.file_name().is_some_and(|n| n == "tests.rs") || f.components().any(|c| c.as_os_str() == "tests");
            let reason = text.lines().take(40).any(|l| l.starts_with("//! Length:"));
            if n > MAX_LINES && !test_file && !reason {
                long.push(format!("{} ({n} lines)", f.strip_prefix(root()).unwrap_or(&f).display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines without a `//! Length:` reason:\n{}",
        long.join("\n")
    );
}
