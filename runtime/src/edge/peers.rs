//! Per-client limits (`[server.per_ip]`): open connections and a request rate
//! per address, with IPv6 addresses counted per /64 (one customer's network is
//! one client, however many addresses it uses).
//!
//! Both tables are bounded whatever clients do. Connection counts exist only
//! for addresses with a connection open, so there are at most
//! `max_connections` of them. Rate buckets live in an LRU table of
//! [`MAX_BUCKETS`]: evicting a bucket can only make its client's next request
//! start from a full bucket, never refuse anyone wrongly, and a bucket that
//! has refilled is the same as no bucket at all.
//!
//! The rate is a token bucket in its GCRA form: each address has a
//! "theoretical arrival time"; a request moves it one interval (1/rate) into
//! the future, and is refused when that would put it more than `burst`
//! intervals ahead of now.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::PerIpConfig;

/// Most addresses whose rate is tracked at once.
pub const MAX_BUCKETS: usize = 65_536;

/// An address as the limits count it: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// An IPv4 address (also an IPv4-mapped IPv6 one).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl From<IpAddr> for PeerKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.into()),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The per-address limits of one node.
pub struct Peers {
    max_connections: u32,
    /// Open connections per address; an entry goes when its count reaches zero.
    connections: Mutex<HashMap<PeerKey, u32>>,
    rate: Option<RateLimit>,
}

struct RateLimit {
    /// Time between two requests at the sustained rate.
    interval: Duration,
    /// How far ahead of now an address's arrival time may run: `burst` intervals.
    tolerance: Duration,
    /// When the clock of the arrival times started.
    epoch: Instant,
    /// Theoretical arrival time per address, as time since `epoch`.
    buckets: Mutex<lru::LruCache<PeerKey, Duration>>,
}

impl Peers {
    /// The limits `[server.per_ip]` sets.
    pub fn new(config: &PerIpConfig) -> Self {
        let rate = (config.rate > 0).then(|| {
            let interval = Duration::from_secs(1) / config.rate;
            RateLimit {
                interval,
                tolerance: interval * config.burst.max(1),
                epoch: Instant::now(),
                buckets: Mutex::new(lru::LruCache::new(
                    NonZeroUsize::new(MAX_BUCKETS).expect("non-zero"),
                )),
            }
        });
        Self {
            max_connections: config.max_connections,
            connections: Mutex::default(),
            rate,
        }
    }

    /// Counts a new connection from `ip`; `None` when that address already has
    /// `max_connections` open (the caller closes the new one).
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Option<PeerConnection> {
        let key = PeerKey::from(ip);
        let mut open = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max_connections {
            return None;
        }
        *count += 1;
        Some(PeerConnection {
            peers: self.clone(),
            key,
        })
    }

    /// Takes one request from `ip`'s bucket; `Err(seconds)` to wait when it is
    /// empty. Always `Ok` when no rate is set.
    pub fn admit(&self, ip: IpAddr) -> Result<(), u32> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let now = rate.epoch.elapsed();
        let key = PeerKey::from(ip);
        let mut buckets = rate.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let arrival = buckets.get(&key).copied().unwrap_or(now).max(now);
        let next = arrival + rate.interval;
        if next - now > rate.tolerance {
            let wait = next - now - rate.tolerance;
            return Err(wait.as_secs_f64().ceil().max(1.0) as u32);
        }
        buckets.put(key, next);
        Ok(())
    }

    /// Addresses with a connection open now.
    pub fn connected_addresses(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// One open connection, counted against its address until dropped.
pub struct PeerConnection {
    peers: Arc<Peers>,
    key: PeerKey,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(max_connections: u32, rate: u32, burst: u32) -> Arc<Peers> {
        Arc::new(Peers::new(&PerIpConfig {
            max_connections,
            rate,
            burst,
        }))
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(PeerKey::from(a), PeerKey::from(b));
        assert_ne!(PeerKey::from(a), PeerKey::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(PeerKey::from(mapped), PeerKey::from(v4));
    }

    #[test]
    fn connections_are_capped_per_address_and_released() {
        let p = peers(2, 0, 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = p.connect(ip).unwrap();
        let _second = p.connect(ip).unwrap();
        assert!(p.connect(ip).is_none());
        assert!(p.connect("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(p.connect(ip).is_some());
        assert_eq!(
            p.connected_addresses(),
            1,
            "entries go with their last connection"
        );
    }

    #[test]
    fn a_burst_then_the_rate() {
        let p = peers(10, 1, 5);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            p.admit(ip).unwrap();
        }
        assert_eq!(p.admit(ip), Err(1));
        p.admit("10.0.0.2".parse().unwrap()).unwrap();
        assert!(peers(10, 0, 1).admit(ip).is_ok(), "no rate, no limit");
    }

    #[test]
    fn buckets_are_bounded() {
        let p = peers(10, 1, 1);
        for i in 0..(MAX_BUCKETS as u32 + 100) {
            let _ = p.admit(IpAddr::V4(i.into()));
        }
        let rate = p.rate.as_ref().unwrap();
        assert_eq!(rate.buckets.lock().unwrap().len(), MAX_BUCKETS);
    }
}
