//! `cargo xtask layout`: a crate's modules are layered, as its root file's
//! `# Layout` section declares, and no modules depend on each other in a
//! cycle. It checks the runtime ([`check_runtime`]) and xtask itself.
//!
//! - **Layers.** The Layout section lists the top-level modules (the root
//!   file's `mod x;` items, tests aside) as top-level bullets, one per
//!   layer, from the top layer down. A bullet's layer is the links at its
//!   start, before its first `:`: ``//! - [`util`], [`config`]: helpers``
//!   is one layer of `util` and `config`. Indented lines and sub-bullets
//!   (``//!   - ``) belong to the bullet above and declare nothing. A module
//!   may use modules of its own layer and of the layers below; a use of one
//!   in a higher layer fails, as does a module in no layer or in two.
//! - **Cycles.** The top-level modules, and the child modules of every
//!   folder (its `x.rs` files and `x/` folders), use each other without a
//!   cycle.
//! - **Names.** Every link in the Layout section that is a lowercase module
//!   path (``[`request`]``, ``[`request::handler`]``) names a module that
//!   exists: a top-level module, then a `seg.rs` or `seg/mod.rs` in the
//!   folder of the segment before. Links to items (with an uppercase letter,
//!   ``[`request::App`]``) are not checked.
//!
//! A module uses another when its code (tests aside) names it, or anything
//! inside it, by a path from `crate::` or climbing with `super::`: `super::b`
//! in `x/a.rs` is `x/a` using its sibling `x/b`. A folder's `mod.rs` naming
//! its own children is no use between siblings. Comments and doc links do
//! not count ([`uses`]).

mod edges;
mod graph;
mod section;
mod tree;
mod uses;

use std::collections::BTreeMap;
use std::path::Path;

use graph::Edges;
use section::Section;
use tree::Tree;

/// Checks the runtime crate (`runtime/src`, rooted at `lib.rs`).
pub fn check_runtime() -> Result<(), String> {
    check(&crate::root().join("runtime/src"), "lib.rs")
}

/// Checks xtask itself (`xtask/src`, rooted at `main.rs`).
pub fn check_xtask() -> Result<(), String> {
    check(&crate::root().join("xtask/src"), "main.rs")
}

/// Checks the runtime and xtask; the error names each crate that fails.
pub fn check_all() -> Result<(), String> {
    let results = [
        ("runtime", "runtime/src/lib.rs", check_runtime()),
        ("xtask", "xtask/src/main.rs", check_xtask()),
    ];
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, root, result)| {
            let problems = result.err()?;
            Some(format!(
                "the {name} crate ({root}) fails layout:\n{problems}"
            ))
        })
        .collect();
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("\n")),
    }
}

/// Checks the crate whose sources are in `src`, with root file `root_file`
/// (`lib.rs` or `main.rs`) there.
pub fn check(src: &Path, root_file: &str) -> Result<(), String> {
    let root_path = src.join(root_file);
    let root =
        std::fs::read_to_string(&root_path).map_err(|e| format!("{}: {e}", root_path.display()))?;
    let tokens = root
        .parse()
        .map_err(|e| format!("{}: not Rust: {e:?}", root_path.display()))?;
    let modules = tree::declared_modules(tokens);
    let section = Section::parse(&root);
    let mut problems = section_problems(src, root_file, &modules, &section);
    let tree = Tree::read(src, &modules);
    let edges = edges::edges(src, &tree)?;
    if let Some(top) = edges.get(&[][..]) {
        problems.extend(upward_uses(&section, top));
    }
    for (folder, edges) in &edges {
        problems.extend(cycles(folder, edges));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

/// Modules in no layer or in two, and links to modules that do not exist.
fn section_problems(
    src: &Path,
    root_file: &str,
    modules: &[String],
    section: &Section,
) -> Vec<String> {
    let mut problems = Vec::new();
    for m in modules {
        match section.layers.iter().filter(|l| l.contains(m)).count() {
            0 => problems.push(format!(
                "{root_file}'s Layout section does not name module `{m}` in a layer \
                 (a bullet starting `//! - [`{m}`]`)"
            )),
            1 => {}
            _ => problems.push(format!(
                "{root_file}'s Layout section puts module `{m}` in more than one layer"
            )),
        }
    }
    for link in &section.links {
        let Some(segments) = section::module_path(link) else {
            continue;
        };
        if !is_module(src, modules, &segments) {
            problems.push(format!(
                "{root_file}'s Layout section names `{link}`, which is not a module"
            ));
        }
    }
    problems
}

/// Whether `segments` name a module: a declared top-level module, then a
/// `seg.rs` or `seg/mod.rs` in the folder of the one before.
fn is_module(src: &Path, modules: &[String], segments: &[&str]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return false;
    };
    if !modules.iter().any(|m| m == first) {
        return false;
    }
    let mut dir = src.join(first);
    for segment in rest {
        let file = dir.join(format!("{segment}.rs"));
        dir = dir.join(segment);
        if !file.is_file() && !dir.join("mod.rs").is_file() {
            return false;
        }
    }
    true
}

/// Each use of a top-level module from one in a lower layer.
fn upward_uses(section: &Section, top: &Edges) -> Vec<String> {
    let layer: BTreeMap<&str, usize> = section
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, modules)| modules.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut problems = Vec::new();
    for (from, uses) in top {
        for (to, at) in uses {
            if let (Some(f), Some(t)) = (layer.get(from.as_str()), layer.get(to.as_str()))
                && t < f
            {
                problems.push(format!(
                    "upward use: {from} → {to} in {at} ({to} is in a higher layer than {from})"
                ));
            }
        }
    }
    problems
}

/// Each cycle among the children of `folder` (the empty path: the crate
/// root's top-level modules), with a closed path and where each use is.
fn cycles(folder: &[String], edges: &Edges) -> Vec<String> {
    let inside = match folder.is_empty() {
        true => String::new(),
        false => format!(" inside {}/", folder.join("/")),
    };
    let mut problems = Vec::new();
    for (component, cycle) in graph::cycles(edges) {
        let mut text = format!(
            "modules in one cycle{inside}: {}\n  for one: {}",
            component.join(", "),
            cycle.join(" → ")
        );
        for pair in cycle.windows(2) {
            if let Some(at) = edges.get(&pair[0]).and_then(|e| e.get(&pair[1])) {
                text.push_str(&format!("\n    {} → {} in {at}", pair[0], pair[1]));
            }
        }
        problems.push(text);
    }
    problems
}

#[cfg(test)]
mod tests;
