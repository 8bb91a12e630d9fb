//! The routing snapshot: an immutable table from (host, path prefix) to function,
//! swapped atomically as a whole when anything in `functions/` changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::function::Function;

/// Every function that serves, ordered for matching. Never mutated: a change builds
/// a new snapshot, and requests keep the one they started with.
#[derive(Default)]
pub struct Snapshot {
    /// Longest prefix first; at equal length, host-specific routes first.
    routes: Vec<Arc<Function>>,
    /// The same functions by name, for the admin API and for reloads.
    by_name: BTreeMap<Arc<str>, Arc<Function>>,
}

/// Two functions claim the same route.
#[derive(Debug, thiserror::Error)]
#[error("route `{route}`{} of `{second}` is already taken by `{first}`", host.as_ref().map(|h| format!(" on host `{h}`")).unwrap_or_default())]
pub struct RouteClash {
    /// The route both claim.
    pub route: String,
    /// Host both claim, if any.
    pub host: Option<String>,
    /// The function that keeps the route.
    pub first: String,
    /// The function refused.
    pub second: String,
}

impl Snapshot {
    /// Builds a snapshot, refusing any function whose route another one has.
    /// Functions are taken in the given order; a clash refuses the later one.
    pub fn build(functions: Vec<Arc<Function>>) -> (Self, Vec<RouteClash>) {
        let mut clashes = Vec::new();
        let mut by_name = BTreeMap::new();
        let mut routes: Vec<Arc<Function>> = Vec::with_capacity(functions.len());
        for f in functions {
            if let Some(existing) = routes
                .iter()
                .find(|r| r.route == f.route && r.host == f.host)
            {
                clashes.push(RouteClash {
                    route: f.route.clone(),
                    host: f.host.clone(),
                    first: existing.name.to_string(),
                    second: f.name.to_string(),
                });
                continue;
            }
            by_name.insert(f.name.clone(), f.clone());
            routes.push(f);
        }
        routes.sort_by(|a, b| {
            b.route
                .len()
                .cmp(&a.route.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        (Self { routes, by_name }, clashes)
    }

    /// The function serving `path` on `host`: the longest route that is a prefix of
    /// the path on a segment boundary.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Function>> {
        self.routes.iter().find(|f| {
            prefix_matches(&f.route, path)
                && f.host
                    .as_deref()
                    .is_none_or(|h| host.is_some_and(|req| req.eq_ignore_ascii_case(h)))
        })
    }

    /// A function by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Function>> {
        self.by_name.get(name)
    }

    /// All functions, by name.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.by_name.values()
    }
}

/// `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`.
pub fn prefix_matches(route: &str, path: &str) -> bool {
    if route == "/" {
        return true;
    }
    match path.strip_prefix(route) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || route.ends_with('/'),
        None => false,
    }
}

/// `/foo/` and `/foo` are the same route; `/` stays `/`.
pub fn normalize_route(route: &str) -> String {
    let trimmed = route.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/foo", "/foo"));
        assert!(prefix_matches("/foo", "/foo/"));
        assert!(prefix_matches("/foo", "/foo/bar"));
        assert!(!prefix_matches("/foo", "/foobar"));
        assert!(!prefix_matches("/foo/bar", "/foo"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn routes_normalize() {
        assert_eq!(normalize_route("/foo/"), "/foo");
        assert_eq!(normalize_route("/"), "/");
        assert_eq!(normalize_route("/a/b"), "/a/b");
    }
}
