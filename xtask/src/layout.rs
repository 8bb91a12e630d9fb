//! `cargo xtask layout`: the runtime's top-level modules must depend on each
//! other without a cycle, and `lib.rs`'s Layout section must name each one.
//!
//! A module depends on another when its code (tests aside) names it through
//! `crate::` or through enough `super::` to reach the crate root. Comments and
//! doc links do not count. The files are read as Rust tokens, so a path in a
//! string or a comment is never mistaken for a use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Where one module's code names another: the first file that does.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// Checks the crate whose `lib.rs` is in `src`.
pub fn check(src: &Path) -> Result<(), String> {
    let lib = read(&src.join("lib.rs"))?;
    let modules = declared_modules(&lib)?;
    let mut problems = Vec::new();
    let layout = layout_section(&lib);
    for m in &modules {
        if !layout.contains(&format!("[`{m}`]")) {
            problems.push(format!(
                "lib.rs's Layout section does not name module `{m}` as [`{m}`]"
            ));
        }
    }
    let edges = edges(src, &modules)?;
    for (component, cycle) in cycles(&modules, &edges) {
        let mut text = format!(
            "modules in one cycle: {}\n  for one: {}",
            component.join(", "),
            cycle.join(" → ")
        );
        for pair in cycle.windows(2) {
            text.push_str(&format!(
                "\n    {} → {} in {}",
                pair[0], pair[1], edges[&pair[0]][&pair[1]]
            ));
        }
        problems.push(text);
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn tokens(path: &Path) -> Result<TokenStream, String> {
    read(path)?
        .parse()
        .map_err(|e| format!("{}: not Rust: {e:?}", path.display()))
}

/// The `mod` items of `lib.rs`, in order.
fn declared_modules(lib: &str) -> Result<Vec<String>, String> {
    let stream: TokenStream = lib.parse().map_err(|e| format!("lib.rs: {e:?}"))?;
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut found = Vec::new();
    for w in trees.windows(3) {
        if let (TokenTree::Ident(kw), TokenTree::Ident(name), TokenTree::Punct(semi)) =
            (&w[0], &w[1], &w[2])
            && kw == "mod"
            && semi.as_char() == ';'
        {
            found.push(name.to_string());
        }
    }
    Ok(found)
}

/// The lines of `lib.rs`'s `# Layout` section.
fn layout_section(lib: &str) -> String {
    lib.lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .skip_while(|l| l.trim() != "# Layout")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module's files with how deep each file's module sits below the crate
/// root (`src/a.rs` and `src/a/mod.rs` are 1, `src/a/b.rs` is 2).
fn files(src: &Path, module: &str) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        out.push((file, 1));
    }
    let mut dirs = vec![(src.join(module), 1)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push((path, depth + 1));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let own = path.file_stem().is_some_and(|s| s == "mod");
                out.push((path, if own { depth } else { depth + 1 }));
            }
        }
    }
    out.sort();
    out
}

fn edges(src: &Path, modules: &[String]) -> Result<Edges, String> {
    let known: BTreeSet<&str> = modules.iter().map(String::as_str).collect();
    let mut edges = Edges::new();
    for m in modules {
        let out = edges.entry(m.clone()).or_default();
        for (path, depth) in files(src, m) {
            let mut uses = Vec::new();
            paths_to_root(tokens(&path)?, depth, &mut uses);
            for target in uses {
                if target != *m && known.contains(target.as_str()) {
                    let at = path
                        .strip_prefix(src)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    out.entry(target).or_insert(at);
                }
            }
        }
    }
    Ok(edges)
}

/// Collects the first segment after the crate root of every path in `stream`
/// that starts at `crate::` or climbs there with `super::`.
/// Items under `#[cfg(test)]` are skipped.
fn paths_to_root(stream: TokenStream, depth: usize, out: &mut Vec<String>) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        if is_cfg_test(&trees, i) {
            i = skip_item(&trees, i + 2);
            continue;
        }
        match &trees[i] {
            TokenTree::Group(g) => paths_to_root(g.stream(), depth, out),
            TokenTree::Ident(id)
                if (id == "crate" || id == "super") && !after_colons(&trees, i) =>
            {
                // How far the path climbs, and where the `::` after it is.
                let (climbed, j) = match id == "crate" {
                    true => (depth, i + 1),
                    false => {
                        let (mut climbed, mut j) = (1, i);
                        while colons(&trees, j + 1)
                            && matches!(trees.get(j + 3), Some(TokenTree::Ident(s)) if s == "super")
                        {
                            climbed += 1;
                            j += 3;
                        }
                        (climbed, j + 1)
                    }
                };
                if climbed == depth && colons(&trees, j) {
                    match trees.get(j + 2) {
                        Some(TokenTree::Ident(next)) => out.push(next.to_string()),
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                            first_segments(g.stream(), out);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The first segment of each comma-separated path in a `use` group.
fn first_segments(stream: TokenStream, out: &mut Vec<String>) {
    let mut at_start = true;
    for tree in stream {
        match &tree {
            TokenTree::Ident(id) if at_start => {
                out.push(id.to_string());
                at_start = false;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
            _ => at_start = false,
        }
    }
}

/// Whether `::` starts at `i`.
fn colons(trees: &[TokenTree], i: usize) -> bool {
    matches!(
        (trees.get(i), trees.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && b.as_char() == ':'
    )
}

/// Whether the token at `i` follows `::` (a `super` inside a longer path).
fn after_colons(trees: &[TokenTree], i: usize) -> bool {
    i >= 2 && colons(trees, i - 2)
}

/// Whether `#[cfg(test)]` starts at `i`.
fn is_cfg_test(trees: &[TokenTree], i: usize) -> bool {
    let (Some(TokenTree::Punct(hash)), Some(TokenTree::Group(attr))) =
        (trees.get(i), trees.get(i + 1))
    else {
        return false;
    };
    let text: String = attr.stream().to_string().split_whitespace().collect();
    hash.as_char() == '#' && attr.delimiter() == Delimiter::Bracket && text == "cfg(test)"
}

/// Where the item starting at `i` ends: after its body or its `;`, skipping
/// further attributes.
fn skip_item(trees: &[TokenTree], mut i: usize) -> usize {
    while i < trees.len() {
        match &trees[i] {
            TokenTree::Punct(p) if p.as_char() == '#' => i += 2,
            TokenTree::Punct(p) if p.as_char() == ';' => return i + 1,
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Each strongly connected component of more than one module, with a closed
/// path through it (`a → b → a`).
fn cycles(modules: &[String], edges: &Edges) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for m in modules {
        if seen.contains(m) {
            continue;
        }
        let reach = reachable(m, edges);
        let component: BTreeSet<String> = reach
            .iter()
            .filter(|n| reachable(n, edges).contains(m))
            .cloned()
            .collect();
        seen.extend(component.iter().cloned());
        if component.len() > 1 {
            let path = closed_path(m, &component, edges);
            found.push((component.into_iter().collect(), path));
        }
    }
    found
}

fn reachable(from: &str, edges: &Edges) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        for next in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// A shortest path from `start` back to itself inside `component`.
fn closed_path(start: &str, component: &BTreeSet<String>, edges: &Edges) -> Vec<String> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(n) = queue.pop_front() {
        for next in edges[&n].keys().filter(|k| component.contains(*k)) {
            if next == start {
                let mut path = vec![start.to_string(), n.clone()];
                while let Some(p) = parent.get(path.last().unwrap()) {
                    path.push(p.clone());
                }
                path.reverse();
                path.push(start.to_string());
                path.dedup();
                return path;
            }
            if !parent.contains_key(next) {
                parent.insert(next.clone(), n.clone());
                queue.push_back(next.clone());
            }
        }
    }
    vec![start.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const LIB: &str = "//! A crate.\n//!\n//! # Layout\n//!\n//! - [`a`], [`b`], [`c`].\n\npub mod a;\npub mod b;\nmod c;\n";

    #[test]
    fn a_cycle_through_a_submodule_is_named_with_where_it_starts() {
        let dir = crate_with(&[
            ("lib.rs", LIB),
            ("a.rs", "use crate::b::Thing;\n"),
            ("b/mod.rs", "mod inner;\n"),
            ("b/inner.rs", "fn f() { super::super::c::g() }\n"),
            ("c.rs", "use crate::{\n    a::X,\n};\n"),
        ]);
        let err = check(dir.path()).unwrap_err();
        assert!(err.contains("modules in one cycle: a, b, c"), "{err}");
        assert!(err.contains("for one: a → b → c → a"), "{err}");
        assert!(
            err.contains("b → c in ") && err.contains("b/inner.rs"),
            "{err}"
        );
        assert!(err.contains("c → a in ") && err.contains("c.rs"), "{err}");
    }

    #[test]
    fn comments_strings_tests_and_inner_paths_are_not_uses() {
        let dir = crate_with(&[
            ("lib.rs", LIB),
            ("a.rs", "use crate::b::Thing;\nuse super::c as _;\n"),
            (
                "b.rs",
                "//! See [`crate::a`].\nconst S: &str = \"crate::a\";\nuse self::x::super::a;\n\
                 #[cfg(test)]\nmod tests { use crate::a::X; }\n",
            ),
            ("c.rs", "// crate::a\n"),
        ]);
        assert_eq!(check(dir.path()), Ok(()));
    }

    #[test]
    fn a_module_missing_from_the_layout_section_is_named() {
        let lib = LIB.replace("[`c`]", "c");
        let dir = crate_with(&[("lib.rs", &lib), ("a.rs", ""), ("b.rs", ""), ("c.rs", "")]);
        let err = check(dir.path()).unwrap_err();
        assert!(err.contains("does not name module `c`"), "{err}");
    }

    #[test]
    fn the_runtime_is_a_dag() {
        assert_eq!(check(&crate::root().join("runtime/src")), Ok(()));
    }
}
