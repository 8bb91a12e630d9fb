//! The module paths a file's code names: each path that starts at `crate::`
//! or climbs with `super::`, resolved to segments from the crate root.
//!
//! A file is read as Rust tokens, so a path in a string or a comment (doc
//! comments included: they are string attributes) is never mistaken for a
//! use. Items under `#[cfg(test)]` are skipped.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Collects every path that the code in `stream`, the code of module `here`
/// (segments from the crate root), names through `crate::` or `super::`,
/// each resolved to its segments from the crate root: `super::b::Thing` in
/// `a/c.rs` is `a::b::Thing`. A `use` group gives one path per item. An
/// inline `mod x { … }` is read as module `here::x`.
pub fn named_paths(stream: TokenStream, here: &[String], out: &mut Vec<Vec<String>>) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        if is_cfg_test(&trees, i) {
            i = skip_item(&trees, i + 2);
            continue;
        }
        if let Some((name, body)) = inline_module(&trees, i) {
            named_paths(body, &[here, &[name]].concat(), out);
            i += 3;
            continue;
        }
        match &trees[i] {
            TokenTree::Group(g) => named_paths(g.stream(), here, out),
            TokenTree::Ident(id)
                if (id == "crate" || id == "super") && !after_colons(&trees, i) =>
            {
                if let Some((base, last)) = start(&trees, i, here) {
                    tail(&trees, last, base, out);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Where the path starting at `i` (`crate` or `super`) starts from, and the
/// index of its last `crate` or `super`; `None` when it climbs above the
/// crate root.
fn start(trees: &[TokenTree], i: usize, here: &[String]) -> Option<(Vec<String>, usize)> {
    if matches!(&trees[i], TokenTree::Ident(id) if id == "crate") {
        return Some((Vec::new(), i));
    }
    let mut base = here.to_vec();
    base.pop()?;
    let mut last = i;
    while colons(trees, last + 1)
        && matches!(trees.get(last + 3), Some(TokenTree::Ident(s)) if s == "super")
    {
        base.pop()?;
        last += 3;
    }
    Some((base, last))
}

/// Follows `::segment`s after `last`, adding them to `path`; a `{…}` group
/// gives one path per item in it.
fn tail(trees: &[TokenTree], mut last: usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    while colons(trees, last + 1) {
        match trees.get(last + 3) {
            Some(TokenTree::Ident(id)) => {
                path.push(id.to_string());
                last += 3;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                return group(g.stream(), &path, out);
            }
            _ => break,
        }
    }
    out.push(path);
}

/// The paths of a `use` group after `prefix`: `{self, b::X, c::{d, e}}`.
fn group(stream: TokenStream, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    for item in trees.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
        match item.first() {
            Some(TokenTree::Ident(id)) if id == "self" => out.push(prefix.to_vec()),
            Some(TokenTree::Ident(id)) => {
                tail(item, 0, [prefix, &[id.to_string()]].concat(), out);
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                group(g.stream(), prefix, out);
            }
            Some(TokenTree::Punct(p)) if p.as_char() == '*' => out.push(prefix.to_vec()),
            _ => {}
        }
    }
}

/// `mod name { body }` starting at `i`: its name and body.
fn inline_module(trees: &[TokenTree], i: usize) -> Option<(String, TokenStream)> {
    match (trees.get(i), trees.get(i + 1), trees.get(i + 2)) {
        (
            Some(TokenTree::Ident(kw)),
            Some(TokenTree::Ident(name)),
            Some(TokenTree::Group(body)),
        ) if kw == "mod" && body.delimiter() == Delimiter::Brace => {
            Some((name.to_string(), body.stream()))
        }
        _ => None,
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
pub fn is_cfg_test(trees: &[TokenTree], i: usize) -> bool {
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
pub fn skip_item(trees: &[TokenTree], mut i: usize) -> usize {
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
