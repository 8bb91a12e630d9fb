//! The routing snapshot: an immutable table from (host, path prefix) to function,
//! swapped atomically as a whole when anything in `functions/` changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::node::function::Function;

/// Every function that serves, ordered for matching. Never mutated: a change builds
/// a new snapshot, and requests keep the one they started with.
#[derive(Default)]
pub struct Snapshot {
    /// Longest prefix first; at equal length, host-specific routes first.
    routes: Vec<Arc<Function>>,
    /// The same functions by name, for the admin API and for reloads.
    by_name: BTreeMap<Arc<str>, Arc<Function>>,
    /// Functions that serve nothing yet, their first code still compiling,
    /// in the same order as `routes`: a request for one is told to retry
    /// (503) instead of that no such function exists (404).
    starting: Vec<Starting>,
}

/// A function in the functions directory that serves nothing yet: no version
/// its deployment names has compiled code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starting {
    /// The function's name.
    pub name: Arc<str>,
    /// Its route, normalized.
    pub route: String,
    /// Its host, if its route is host-specific.
    pub host: Option<String>,
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
    /// `starting` lists the functions that serve nothing yet.
    pub fn build(
        functions: Vec<Arc<Function>>,
        mut starting: Vec<Starting>,
    ) -> (Self, Vec<RouteClash>) {
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
        routes.sort_by(|a, b| match_order((&a.route, &a.host), (&b.route, &b.host)));
        starting.retain(|s| !by_name.contains_key(&s.name));
        starting.sort_by(|a, b| match_order((&a.route, &a.host), (&b.route, &b.host)));
        (
            Self {
                routes,
                by_name,
                starting,
            },
            clashes,
        )
    }

    /// The function serving `path` on `host`: the longest route that is a prefix of
    /// the path on a segment boundary.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Function>> {
        self.routes
            .iter()
            .find(|f| serves(&f.route, f.host.as_deref(), host, path))
    }

    /// The function that will serve `path` on `host` once its first code has
    /// compiled, when no serving function matches it.
    pub fn starting(&self, host: Option<&str>, path: &str) -> Option<&Starting> {
        self.starting
            .iter()
            .find(|s| serves(&s.route, s.host.as_deref(), host, path))
    }

    /// The functions that serve nothing yet.
    pub fn starting_functions(&self) -> &[Starting] {
        &self.starting
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

/// Longest route first; at equal length, host-specific routes first.
fn match_order(
    (a_route, a_host): (&String, &Option<String>),
    (b_route, b_host): (&String, &Option<String>),
) -> std::cmp::Ordering {
    b_route
        .len()
        .cmp(&a_route.len())
        .then(b_host.is_some().cmp(&a_host.is_some()))
}

/// Whether a function at `route` (on `route_host`, if any) serves `path` on
/// the request's `host`.
fn serves(route: &str, route_host: Option<&str>, host: Option<&str>, path: &str) -> bool {
    prefix_matches(route, path)
        && route_host.is_none_or(|h| host.is_some_and(|req| req.eq_ignore_ascii_case(h)))
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

    fn starting(name: &str, route: &str, host: Option<&str>) -> Starting {
        Starting {
            name: name.into(),
            route: route.into(),
            host: host.map(str::to_string),
        }
    }

    #[test]
    fn starting_functions_match_as_routes_do() {
        let (snapshot, clashes) = Snapshot::build(
            Vec::new(),
            vec![
                starting("site", "/", None),
                starting("api", "/api", None),
                starting("shop", "/api", Some("shop.example")),
            ],
        );
        assert!(clashes.is_empty());
        assert!(snapshot.route(None, "/api/x").is_none());
        let name = |host, path| snapshot.starting(host, path).map(|s| &*s.name);
        assert_eq!(name(None, "/api/x"), Some("api"));
        assert_eq!(name(Some("SHOP.example"), "/api"), Some("shop"));
        assert_eq!(name(None, "/apix"), Some("site"));
        assert_eq!(snapshot.starting_functions().len(), 3);
    }

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
