//! Which module uses which, folder by folder: a child of a folder uses a
//! sibling when code under the child names the sibling (or anything inside
//! it) by a path from `crate::` or through `super::`.

use std::collections::BTreeMap;
use std::path::Path;

use proc_macro2::TokenStream;

use super::graph::Edges;
use super::tree::Tree;
use super::uses::named_paths;

/// Each folder's edges among its children, by the folder's module (the crate
/// root's top-level modules under the empty path).
pub fn edges(src: &Path, tree: &Tree) -> Result<BTreeMap<Vec<String>, Edges>, String> {
    let mut all: BTreeMap<Vec<String>, Edges> = tree
        .folders
        .iter()
        .map(|(folder, children)| {
            let empty = children.iter().map(|c| (c.clone(), BTreeMap::new()));
            (folder.clone(), empty.collect())
        })
        .collect();
    for file in &tree.files {
        let mut named = Vec::new();
        named_paths(tokens(&src.join(&file.path))?, &file.module, &mut named);
        let at = file.path.display().to_string();
        for path in named {
            // The folders `file` and `path` share: in the deepest one, the
            // child holding `file` uses the child `path` goes into.
            let shared = file.module.iter().zip(&path).take_while(|(a, b)| a == b);
            let depth = shared.count();
            let (Some(from), Some(to)) = (file.module.get(depth), path.get(depth)) else {
                continue;
            };
            let folder = &file.module[..depth];
            let is_child = tree.folders.get(folder).is_some_and(|c| c.contains(to));
            if let Some(edges) = all.get_mut(folder).filter(|_| is_child) {
                let out = edges.entry(from.clone()).or_default();
                out.entry(to.clone()).or_insert_with(|| at.clone());
            }
        }
    }
    Ok(all)
}

/// The file at `path` as Rust tokens.
fn tokens(path: &Path) -> Result<TokenStream, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .parse()
        .map_err(|e| format!("{}: not Rust: {e:?}", path.display()))
}
