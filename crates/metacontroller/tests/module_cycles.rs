//! No import cycles between the modules of any crate in the workspace.
//!
//! Each source file is a module (`a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`). A module
//! depends on another when it names it through a path (`crate::a::b::Item`, `super::x`, or a
//! child module by its bare name), in a `use` or in code. Inline modules (such as `mod tests`)
//! count as part of their file. A module naming one of its ancestors (`super::Type`, the crate
//! root) is not an edge: a parent is the namespace of its children, which may use what it
//! declares for them. Any strongly connected group of two or more modules fails the test, with
//! the files named.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// One crate's module files: module path → file.
struct CrateModules {
    name: String,
    files: BTreeMap<ModPath, PathBuf>,
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src`, or `None` for files that are crate roots of their
/// own (`src/bin/*.rs`).
fn module_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.trim_end_matches(".rs");
    match stem {
        "lib" | "main" if parts.is_empty() => {}
        "mod" => {}
        _ => parts.push(stem.to_string()),
    }
    Some(parts)
}

fn load_crates() -> Vec<CrateModules> {
    let mut crates = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(crates_dir())
        .expect("crates directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut modules = BTreeMap::new();
        for file in files {
            if let Some(path) = module_path(&src, &file) {
                modules.insert(path, file);
            }
        }
        crates.push(CrateModules {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            files: modules,
        });
    }
    crates
}

/// Source text with comments, string and character literals blanked out.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
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
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
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
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
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
            'raw: while j < chars.len() {
                if chars[j] == '"' {
                    let closes = (1..=hashes).all(|k| chars.get(j + k) == Some(&'#'));
                    if closes {
                        j += 1 + hashes;
                        break 'raw;
                    }
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`crate::{a::{B, C}, d}`) into its paths.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    fn split_top(s: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
    // Drop renames (`a::B as C`), then white space.
    let mut words = Vec::new();
    let mut tokens = tree.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if token == "as" {
            // The alias may carry the separator that follows it (`C,` or `C}`).
            if let Some(alias) = tokens.next() {
                words.push(alias.trim_start_matches(is_ident_char).to_string());
            }
        } else {
            words.push(token.to_string());
        }
    }
    let tree: String = words.concat();
    let mut out = Vec::new();
    let tree = tree.trim_start_matches("::");
    if let Some(brace) = tree.find('{') {
        let prefix: Vec<String> = tree[..brace]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[brace + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top(inner) {
            if part.is_empty() {
                continue;
            }
            for rest in expand_use(part) {
                let mut path = prefix.clone();
                path.extend(rest.into_iter().filter(|s| s != "self"));
                out.push(path);
            }
        }
    } else {
        out.push(
            tree.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path of two or more segments in code, and every `use` tree expanded, each with the
/// inline module it appears in (relative to the file).
fn paths_in(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let word_at = |i: usize| -> Option<(String, usize)> {
        if i > 0 && is_ident_char(chars[i - 1]) {
            return None;
        }
        let mut j = i;
        while j < chars.len() && is_ident_char(chars[j]) {
            j += 1;
        }
        (j > i).then(|| (chars[i..j].iter().collect(), j))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        let Some((word, end)) = (if is_ident_char(c) { word_at(i) } else { None }) else {
            i += 1;
            continue;
        };
        let here: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
        if word == "mod" {
            // `mod name {` opens an inline module; `mod name;` declares a file.
            let rest: String = chars[end..].iter().take(200).collect();
            let rest = rest.trim_start();
            let name: String = rest.chars().take_while(|c| is_ident_char(*c)).collect();
            let after = rest[name.len()..].trim_start();
            if !name.is_empty() && after.starts_with('{') {
                inline.push((name, depth));
            }
            i = end;
            continue;
        }
        if word == "use" {
            let stop = chars[end..]
                .iter()
                .position(|c| *c == ';')
                .map_or(chars.len(), |p| end + p);
            let tree: String = chars[end..stop].iter().collect();
            for path in expand_use(&tree) {
                out.push((here.clone(), path));
            }
            i = stop;
            continue;
        }
        // A path in code: word(::word)+
        let mut path = vec![word];
        let mut j = end;
        while chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            match word_at(j + 2) {
                Some((w, e)) => {
                    path.push(w);
                    j = e;
                }
                None => break,
            }
        }
        if path.len() > 1 {
            out.push((here, path));
        }
        i = j;
    }
    out
}

/// The file module a path names, from module `from` (the file's module plus inline modules).
fn resolve(
    modules: &BTreeMap<ModPath, PathBuf>,
    file_mod: &ModPath,
    inline: &[String],
    path: &[String],
) -> Option<ModPath> {
    let mut current: Vec<String> = file_mod.iter().chain(inline).cloned().collect();
    let mut segs = path.iter().peekable();
    let mut base: Vec<String> = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            current.clone()
        }
        Some("super") => {
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                current.pop();
            }
            current.clone()
        }
        Some(first) => {
            // A bare name is relative only when it is a child module of this module.
            let mut child = current.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
            current.clone()
        }
        None => return None,
    };
    for seg in segs {
        let mut next = base.clone();
        next.push(seg.clone());
        if !modules.contains_key(&next) && !inline_prefix(file_mod, inline, &next) {
            break;
        }
        base = next;
    }
    // Reduce to the deepest prefix that is a file module.
    while !modules.contains_key(&base) {
        base.pop();
    }
    Some(base)
}

fn inline_prefix(file_mod: &ModPath, inline: &[String], path: &[String]) -> bool {
    let full: Vec<&String> = file_mod.iter().chain(inline).collect();
    path.len() <= full.len() && path.iter().zip(&full).all(|(a, b)| a == *b)
}

fn module_edges(krate: &CrateModules) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, file) in &krate.files {
        let code = strip(&fs::read_to_string(file).expect("read source"));
        let targets = edges.entry(module.clone()).or_default();
        for (inline, path) in paths_in(&code) {
            if let Some(target) = resolve(&krate.files, module, &inline, &path) {
                if !module.starts_with(&target) {
                    targets.insert(target);
                }
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(targets) = s.edges.get(v) {
            for w in targets {
                let Some((w, _)) = s.edges.get_key_value(w) else {
                    continue;
                };
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

fn show(krate: &CrateModules, group: &[ModPath]) -> String {
    let names: Vec<String> = group
        .iter()
        .map(|m| {
            krate.files[m]
                .strip_prefix(crates_dir())
                .unwrap_or(&krate.files[m])
                .display()
                .to_string()
        })
        .collect();
    format!("{}: {}", krate.name, names.join(" ⇄ "))
}

#[test]
fn no_module_import_cycles() {
    let mut found = Vec::new();
    for krate in load_crates() {
        let edges = module_edges(&krate);
        for group in cycles(&edges) {
            found.push(show(&krate, &group));
        }
    }
    assert!(
        found.is_empty(),
        "module import cycles (break them by moving the shared concept into one module):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut files = BTreeMap::new();
    files.insert(vec![], PathBuf::from("lib.rs"));
    files.insert(vec!["a".to_string()], PathBuf::from("a.rs"));
    files.insert(vec!["b".to_string()], PathBuf::from("b.rs"));
    let krate = CrateModules {
        name: "t".into(),
        files,
    };
    let a = "use crate::b::{Thing, other::X};\nfn f() { let _ = \"crate::c::D\"; }";
    let b = "// use crate::a;\nmod tests { use super::*; }\nfn g() { crate::a::call(); }";
    let resolve_all = |code: &str, module: &ModPath| -> BTreeSet<ModPath> {
        paths_in(&strip(code))
            .into_iter()
            .filter_map(|(inline, p)| resolve(&krate.files, module, &inline, &p))
            .filter(|t| !module.starts_with(t))
            .collect()
    };
    let mut edges = BTreeMap::new();
    edges.insert(
        vec!["a".to_string()],
        resolve_all(a, &vec!["a".to_string()]),
    );
    edges.insert(
        vec!["b".to_string()],
        resolve_all(b, &vec!["b".to_string()]),
    );
    assert_eq!(
        edges[&vec!["a".to_string()]],
        BTreeSet::from([vec!["b".to_string()]])
    );
    assert_eq!(
        edges[&vec!["b".to_string()]],
        BTreeSet::from([vec!["a".to_string()]])
    );
    assert_eq!(
        cycles(&edges),
        vec![vec![vec!["a".to_string()], vec!["b".to_string()]]]
    );
    // Without b's call into a, there is no cycle.
    edges.insert(vec!["b".to_string()], BTreeSet::new());
    assert!(cycles(&edges).is_empty());
}
