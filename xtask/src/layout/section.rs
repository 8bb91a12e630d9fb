//! The `# Layout` section of a crate root's `//!` docs: its layers, one
//! top-level bullet each from the top layer down, and the module paths it
//! links to.

/// What a Layout section declares.
pub struct Section {
    /// Each layer's modules, top layer first.
    pub layers: Vec<Vec<String>>,
    /// The text of every ``[`link`]`` in the section, each once, in order.
    pub links: Vec<String>,
}

impl Section {
    /// The Layout section of the crate root whose source is `root`.
    ///
    /// A layer is a top-level bullet (``//! - ``) whose text starts with
    /// links to top-level modules, separated by commas or `and`, before its
    /// first `:`: ``//! - [`util`], [`config`]: helpers`` declares a layer
    /// of `util` and `config`. Its indented lines and sub-bullets
    /// (``//!   - ``) belong to it and declare nothing.
    pub fn parse(root: &str) -> Self {
        let lines = lines(root);
        let mut layers = Vec::new();
        let mut bullet: Option<String> = None;
        for line in &lines {
            let top = line.starts_with(" - ");
            let ends = top || line.trim().is_empty() || line.trim_start().starts_with("- ");
            if ends && let Some(text) = bullet.take() {
                layers.push(leading_modules(&text));
            }
            if top {
                bullet = Some(line[3..].to_string());
            } else if let Some(text) = bullet.as_mut().filter(|_| !ends) {
                text.push(' ');
                text.push_str(line.trim());
            }
        }
        layers.extend(bullet.map(|text| leading_modules(&text)));
        layers.retain(|layer| !layer.is_empty());
        let mut links: Vec<String> = Vec::new();
        for link in lines.iter().flat_map(|l| links_in(l)) {
            if !links.contains(&link) {
                links.push(link);
            }
        }
        Self { layers, links }
    }
}

/// The segments of `link` when it is a lowercase module path (`request`,
/// `request::handler`, `crate::request`), else `None`: a link to an item
/// has an uppercase letter or another character.
pub fn module_path(link: &str) -> Option<Vec<&str>> {
    let path = link.strip_prefix("crate::").unwrap_or(link);
    let segments: Vec<&str> = path.split("::").collect();
    let lowercase = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    segments.iter().all(lowercase).then_some(segments)
}

/// The section's lines, each without its `//!`.
fn lines(root: &str) -> Vec<&str> {
    root.lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .skip_while(|l| l.trim() != "# Layout")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("# "))
        .collect()
}

/// The top-level modules a bullet's text starts with.
fn leading_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if let Some(after) = rest.strip_prefix("and ") {
            rest = after;
            continue;
        }
        let Some((name, after)) = rest.strip_prefix("[`").and_then(|r| r.split_once("`]")) else {
            break;
        };
        if module_path(name).is_some_and(|segments| segments.len() == 1) {
            found.push(name.trim_start_matches("crate::").to_string());
        }
        rest = after;
    }
    found
}

/// The texts of the ``[`links`]`` in `line`; a link with a target of its own
/// (`[`x`](…)`, `[`x`][…]`) is not a path.
fn links_in(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("[`") {
        let after = &rest[at + 2..];
        let Some(end) = after.find("`]") else {
            break;
        };
        let (text, next) = (&after[..end], &after[end + 2..]);
        if !text.contains('`') && !next.starts_with(['(', '[']) {
            found.push(text.to_string());
        }
        rest = next;
    }
    found
}
