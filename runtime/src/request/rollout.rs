//! Gray release: which version serves a request, and how each version is doing.
//!
//! Version choice, in order: the `x-wedge-version` override when it names a
//! version of the deployment; else, when `sticky` is set and the request carries
//! the key, a stable hash of the key against `canary_percent`; else a random
//! draw. A key's bucket is fixed, so a key on the canary stays there while the
//! percentage only grows.

use std::sync::Arc;

use http::HeaderMap;

use crate::node::function::{Function, Version};

/// The header that pins a request to a version of the deployment.
pub const OVERRIDE_HEADER: &str = "x-wedge-version";

/// Picks the version that serves a request, or `None` when the function has no
/// loadable version.
pub fn choose<'f>(function: &'f Function, headers: &HeaderMap) -> Option<&'f Arc<Version>> {
    let canary = function.canary();
    if let Some(wanted) = headers.get(OVERRIDE_HEADER).and_then(|v| v.to_str().ok()) {
        let pinned = match (function.stable(), canary) {
            (Some(s), _) if *s.label == *wanted => Some(s),
            (_, Some(c)) if *c.label == *wanted => Some(c),
            _ => None,
        };
        if pinned.is_some() {
            return pinned;
        }
    }
    let percent = function.deployment.canary_percent;
    let Some(canary) = canary.filter(|_| percent > 0) else {
        return function.stable();
    };
    let bucket = function
        .rollout
        .sticky
        .as_deref()
        .and_then(|sticky| sticky_key(sticky, headers))
        .map(|key| bucket(&function.name, key))
        .unwrap_or_else(|| fastrand::u8(0..100));
    if bucket < percent || function.stable().is_none() {
        Some(canary)
    } else {
        function.stable()
    }
}

/// The request's sticky key: `header:<name>` or `cookie:<name>`.
fn sticky_key<'h>(sticky: &str, headers: &'h HeaderMap) -> Option<&'h str> {
    let (kind, name) = sticky.split_once(':')?;
    match kind {
        "header" => headers.get(name).and_then(|v| v.to_str().ok()),
        "cookie" => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v),
        _ => None,
    }
    .filter(|k| !k.is_empty())
}

/// A key's bucket, 0 to 99: FNV-1a over the function name and the key, so it is
/// the same on every node and across restarts.
pub fn bucket(function: &str, key: &str) -> u8 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in function.bytes().chain([0u8]).chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("f", "user-1"), bucket("f", "user-1"));
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[usize::from(bucket("f", &format!("user-{i}")) / 10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn sticky_keys_come_from_headers_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", "42".parse().unwrap());
        h.insert("cookie", "a=1; uid=abc".parse().unwrap());
        assert_eq!(sticky_key("header:x-user-id", &h), Some("42"));
        assert_eq!(sticky_key("cookie:uid", &h), Some("abc"));
        assert_eq!(sticky_key("cookie:missing", &h), None);
    }
}
