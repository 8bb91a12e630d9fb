//! A crate's modules as files and folders: the top-level modules its root
//! file declares, the module each file holds, and each folder's children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};

use super::uses::{is_cfg_test, skip_item};

/// One source file and the module it holds, as segments from the crate root
/// (`a/b.rs` and `a/b/mod.rs` both hold `a::b`).
pub struct File {
    /// The file, relative to the crate's `src`.
    pub path: PathBuf,
    pub module: Vec<String>,
}

/// The crate's files and folders.
pub struct Tree {
    /// Every file of the declared modules, in path order.
    pub files: Vec<File>,
    /// Each folder's child modules, by the folder's module: the crate root's
    /// (the declared modules) under the empty path, and each module folder's
    /// (its `x.rs` files and `x/` folders).
    pub folders: BTreeMap<Vec<String>, BTreeSet<String>>,
}

/// The `mod x;` items of a crate root, in order, tests aside.
pub fn declared_modules(root: TokenStream) -> Vec<String> {
    mod_items(root).0
}

/// The `mod x;` items of a module's file: those for every build, and those
/// under `#[cfg(test)]`.
fn mod_items(file: TokenStream) -> (Vec<String>, Vec<String>) {
    let trees: Vec<TokenTree> = file.into_iter().collect();
    let (mut modules, mut tests) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < trees.len() {
        if is_cfg_test(&trees, i) {
            let end = skip_item(&trees, i + 2);
            tests.extend(trees[i + 2..end].windows(3).find_map(mod_item));
            i = end;
            continue;
        }
        modules.extend(mod_item(&trees[i..]));
        i += 1;
    }
    (modules, tests)
}

/// The name of the `mod x;` at the start of `trees`.
fn mod_item(trees: &[TokenTree]) -> Option<String> {
    match trees {
        [
            TokenTree::Ident(kw),
            TokenTree::Ident(name),
            TokenTree::Punct(semi),
            ..,
        ] if kw == "mod" && semi.as_char() == ';' => Some(name.to_string()),
        _ => None,
    }
}

impl Tree {
    /// Reads the files and folders of `modules` under `src`.
    pub fn read(src: &Path, modules: &[String]) -> Self {
        let mut tree = Tree {
            files: Vec::new(),
            folders: BTreeMap::from([(Vec::new(), modules.iter().cloned().collect())]),
        };
        for m in modules {
            let file = PathBuf::from(format!("{m}.rs"));
            if src.join(&file).is_file() {
                tree.files.push(File {
                    path: file,
                    module: vec![m.clone()],
                });
            }
            if src.join(m).is_dir() {
                tree.walk(src, Path::new(m), vec![m.clone()]);
            }
        }
        tree.files.sort_by(|a, b| a.path.cmp(&b.path));
        tree
    }

    /// Adds folder `dir` (relative to `src`), which holds `module`'s children,
    /// except those its file declares under `#[cfg(test)]`.
    fn walk(&mut self, src: &Path, dir: &Path, module: Vec<String>) {
        let tests = test_modules(src, dir);
        let mut children = BTreeSet::new();
        let Ok(entries) = std::fs::read_dir(src.join(dir)) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            let (child, folder) = match name.strip_suffix(".rs") {
                Some("mod") => {
                    let module = module.clone();
                    self.files.push(File { path, module });
                    continue;
                }
                Some(stem) if entry.path().is_file() => (stem.to_string(), false),
                _ if is_module_folder(&src.join(&path)) => (name, true),
                _ => continue,
            };
            if tests.contains(&child) {
                continue;
            }
            let inner = [module.as_slice(), std::slice::from_ref(&child)].concat();
            children.insert(child);
            match folder {
                true => self.walk(src, &path, inner),
                false => self.files.push(File {
                    path,
                    module: inner,
                }),
            }
        }
        self.folders.insert(module, children);
    }
}

/// Whether `path` is a module's folder: a folder with a `mod.rs`, or with a
/// file of its name beside it.
fn is_module_folder(path: &Path) -> bool {
    path.is_dir() && (path.join("mod.rs").is_file() || path.with_extension("rs").is_file())
}

/// The modules that the file of the module in `dir` (`dir/mod.rs` or
/// `dir.rs`) declares under `#[cfg(test)]`.
fn test_modules(src: &Path, dir: &Path) -> Vec<String> {
    let own = src.join(dir).join("mod.rs");
    let file = match own.is_file() {
        true => own,
        false => src.join(dir).with_extension("rs"),
    };
    let tokens = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.parse().ok());
    tokens.map(|t| mod_items(t).1).unwrap_or_default()
}
