//! A connection's timeouts, judged from its [`ConnState`] at every tick:
//!
//! - **header read**: a new connection must deliver its first request head
//!   within `header_read_timeout`, and so must any later head once its first
//!   bytes (HTTP/1) or its HEADERS frame (HTTP/2) have arrived;
//! - **idle**: a connection with no request in flight for `idle_timeout` is
//!   closed gracefully (HTTP/2 gets a GOAWAY);
//! - **write**: a connection with a response to send that accepts no bytes
//!   for `write_timeout` is dropped, and the responses it held are freed.
//!
//! The request path only bumps counters; the watchdog reads the clock once a
//! tick, a tick being an eighth of the shortest timeout (at most a second), so
//! every timeout fires within an eighth of its length.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::state::ConnState;

/// The connection timeouts, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request head, once begun, and for the first one.
    pub header_read: Duration,
    /// With no request in flight.
    pub idle: Duration,
    /// With a response waiting and no byte accepted.
    pub write: Duration,
}

impl Timeouts {
    fn tick(&self) -> Duration {
        let shortest = self.header_read.min(self.idle).min(self.write);
        (shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No request in flight for `idle_timeout`: close gracefully.
    Idle,
    /// A request head was not complete in time: drop.
    HeaderTimeout,
    /// The client accepted no response bytes for `write_timeout`: drop.
    WriteStalled,
}

/// Watches one connection.
pub struct Watchdog {
    state: Arc<ConnState>,
    timeouts: Timeouts,
    http2: bool,
    ticks: Interval,
    /// `requests` at the last tick, and since when there has been nothing active.
    seen_requests: u64,
    idle_since: Instant,
    /// `bytes_written` at the last tick, and since when no byte went out while
    /// a response was waiting.
    seen_written: u64,
    write_since: Instant,
    /// Since when a request head has been arriving.
    head_since: Option<Instant>,
}

impl Watchdog {
    /// A watchdog for a connection that starts now.
    pub fn new(state: Arc<ConnState>, timeouts: Timeouts, http2: bool, opened: Instant) -> Self {
        let mut ticks = tokio::time::interval_at(opened + timeouts.tick(), timeouts.tick());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            state,
            timeouts,
            http2,
            ticks,
            seen_requests: 0,
            idle_since: opened,
            seen_written: 0,
            write_since: opened,
            // The first request's head is due from the moment the client connects.
            head_since: Some(opened),
        }
    }

    /// Resolves when the connection must end, and why.
    pub async fn expire(&mut self) -> Verdict {
        loop {
            let now = self.ticks.tick().await;
            if let Some(verdict) = self.judge(now) {
                return verdict;
            }
        }
    }

    /// Resolves only when the client stops accepting response bytes: for a
    /// connection that is already closing.
    pub async fn stalled(&mut self) {
        loop {
            let now = self.ticks.tick().await;
            if self.judge(now) == Some(Verdict::WriteStalled) {
                return;
            }
        }
    }

    fn judge(&mut self, now: Instant) -> Option<Verdict> {
        let s = &self.state;
        let active = s.active.load(Relaxed);
        let requests = s.requests.load(Relaxed);
        let written = s.bytes_written.load(Relaxed);
        let waiting = s.write_blocked.load(Relaxed) || s.sending.load(Relaxed) > 0;

        if !waiting || written != self.seen_written {
            self.write_since = now;
        }
        self.seen_written = written;
        if waiting && now - self.write_since >= self.timeouts.write {
            return Some(Verdict::WriteStalled);
        }

        let head_arriving = if self.http2 {
            s.header_block.load(Relaxed)
        } else {
            active == 0 && s.bytes_read.load(Relaxed) > s.read_mark.load(Relaxed)
        };
        if requests == 0 || head_arriving {
            self.head_since.get_or_insert(now);
        } else {
            self.head_since = None;
        }
        if self
            .head_since
            .is_some_and(|t| now - t >= self.timeouts.header_read)
        {
            return Some(Verdict::HeaderTimeout);
        }

        if active > 0 || waiting || requests != self.seen_requests {
            self.idle_since = now;
        }
        self.seen_requests = requests;
        if now - self.idle_since >= self.timeouts.idle {
            return Some(Verdict::Idle);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        write: Duration::from_secs(30),
    };

    fn watchdog(http2: bool) -> (Arc<ConnState>, Watchdog, Instant) {
        let state = Arc::new(ConnState::default());
        let start = Instant::now();
        (state.clone(), Watchdog::new(state, T, http2, start), start)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test]
    async fn a_silent_new_connection_gets_the_header_timeout() {
        let (_, mut w, t0) = watchdog(false);
        assert_eq!(w.judge(t0 + secs(5)), None);
        assert_eq!(w.judge(t0 + secs(10)), Some(Verdict::HeaderTimeout));
    }

    #[tokio::test]
    async fn between_requests_the_idle_timeout_applies() {
        let (s, mut w, t0) = watchdog(false);
        s.bytes_read.store(80, Relaxed);
        drop(s.begin_request());
        assert_eq!(w.judge(t0 + secs(1)), None);
        assert_eq!(w.judge(t0 + secs(30)), None, "idle, not a head");
        assert_eq!(w.judge(t0 + secs(61)), Some(Verdict::Idle));
    }

    #[tokio::test]
    async fn a_begun_http1_head_must_finish() {
        let (s, mut w, t0) = watchdog(false);
        drop(s.begin_request());
        assert_eq!(w.judge(t0 + secs(1)), None);
        s.bytes_read.fetch_add(10, Relaxed);
        assert_eq!(w.judge(t0 + secs(2)), None);
        assert_eq!(w.judge(t0 + secs(12)), Some(Verdict::HeaderTimeout));
    }

    #[tokio::test]
    async fn an_open_http2_header_block_must_finish() {
        let (s, mut w, t0) = watchdog(true);
        drop(s.begin_request());
        assert_eq!(w.judge(t0 + secs(1)), None);
        s.header_block.store(true, Relaxed);
        assert_eq!(w.judge(t0 + secs(2)), None);
        assert_eq!(w.judge(t0 + secs(12)), Some(Verdict::HeaderTimeout));
    }

    #[tokio::test]
    async fn a_reader_that_stops_is_dropped_but_a_slow_one_is_not() {
        let (s, mut w, t0) = watchdog(false);
        let _request = s.begin_request();
        s.write_blocked.store(true, Relaxed);
        assert_eq!(w.judge(t0 + secs(1)), None);
        s.bytes_written.fetch_add(1000, Relaxed);
        assert_eq!(w.judge(t0 + secs(25)), None, "progress restarts the clock");
        assert_eq!(w.judge(t0 + secs(50)), None);
        assert_eq!(w.judge(t0 + secs(56)), Some(Verdict::WriteStalled));
    }

    #[tokio::test]
    async fn a_long_guest_is_neither_idle_nor_stalled() {
        let (s, mut w, t0) = watchdog(false);
        let _request = s.begin_request();
        assert_eq!(w.judge(t0 + secs(1)), None);
        assert_eq!(w.judge(t0 + secs(120)), None);
    }
}
