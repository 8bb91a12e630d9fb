//! Gray release: which version serves a request, and how each version is doing.
//!
//! Version choice, in order: the `x-wedge-version` override when it names a
//! version of the deployment; else, when `sticky` is set and the request carries
//! the key, a stable hash of the key against `canary_percent`; else a random
//! draw. A key's bucket is fixed, so a key on the canary stays there while the
//! percentage only grows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::registry::{Function, Version};

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

/// Seconds since the process started, the clock of the error windows.
fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Longest window kept, in one-second buckets.
const MAX_WINDOW_SECS: u64 = 3600;

/// Requests and errors of one version: in total, and per second for the
/// rollback window.
#[derive(Default)]
pub struct VersionStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// `(second, requests, errors)`, oldest first.
    window: Mutex<VecDeque<(u64, u64, u64)>>,
    /// When this version started taking canary traffic, for `promote_after`.
    canary_since: Mutex<Option<Instant>>,
}

impl VersionStats {
    /// Counts one request; `error` for 5xx, traps and timeouts.
    pub fn record(&self, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let now = now_secs();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        match window.back_mut() {
            Some(last) if last.0 == now => {
                last.1 += 1;
                last.2 += u64::from(error);
            }
            _ => window.push_back((now, 1, u64::from(error))),
        }
        while window.front().is_some_and(|f| f.0 + MAX_WINDOW_SECS < now) {
            window.pop_front();
        }
    }

    /// Requests and errors since the process started.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Requests and errors over the last `window`.
    pub fn recent(&self, window: Duration) -> (u64, u64) {
        let (now, span) = (now_secs(), window.as_secs().max(1));
        let buckets = self.window.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .iter()
            .filter(|b| b.0 + span > now)
            .fold((0, 0), |(r, e), b| (r + b.1, e + b.2))
    }

    /// How long this version has been a canary with traffic; starts the clock
    /// on first call.
    pub fn canary_age(&self) -> Duration {
        self.canary_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now)
            .elapsed()
    }

    /// Stops the canary clock (the version was rolled back or promoted).
    pub fn reset_canary_clock(&self) {
        *self.canary_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
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

    #[test]
    fn window_counts_recent_requests() {
        let s = VersionStats::default();
        s.record(false);
        s.record(true);
        assert_eq!(s.totals(), (2, 1));
        assert_eq!(s.recent(Duration::from_secs(60)), (2, 1));
    }
}
