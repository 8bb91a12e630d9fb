//! Group commit: writers that finish while a flush is running share the next
//! one, so `durability = "sync"` costs one fsync per batch of concurrent writes
//! instead of one per write.
//!
//! A writer applies its change in memory, takes a ticket, and waits until a flush
//! that *started* after its ticket has completed. One thread runs the flushes; no
//! queue grows with load: the state is two counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Durability;
use crate::store::backend::KvError;

/// The outcome of the latest flush: every ticket up to `done` is on disk, unless
/// the flush failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flushed {
    done: u64,
    failed: bool,
}

struct Shared {
    /// Tickets handed out; a ticket is taken after the write it covers.
    tickets: AtomicU64,
    /// Highest ticket a writer is waiting on, and whether to stop.
    wanted: Mutex<(u64, bool)>,
    /// Wakes the flusher.
    wake: Condvar,
    /// Published after each flush.
    flushed: watch::Sender<Flushed>,
}

/// The flusher thread and the handle writers wait on.
pub struct GroupCommit {
    shared: Arc<Shared>,
    mode: Durability,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher. In `sync` mode it flushes whenever a writer waits; in
    /// `periodic` mode every `interval`, and writers do not wait.
    pub fn start(
        mode: Durability,
        interval: Duration,
        flush: impl Fn() -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            tickets: AtomicU64::new(0),
            wanted: Mutex::new((0, false)),
            wake: Condvar::new(),
            flushed: watch::Sender::new(Flushed {
                done: 0,
                failed: false,
            }),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wedge-kv-flush".into())
            .spawn(move || match mode {
                Durability::Sync => flush_on_demand(&worker, &flush),
                Durability::Periodic => flush_every(&worker, interval, &flush),
            })?;
        Ok(Self {
            shared,
            mode,
            thread: Some(thread),
        })
    }

    /// Waits until every write made before this call is durable.
    pub async fn durable(&self) -> Result<(), KvError> {
        if self.mode == Durability::Periodic {
            return Ok(());
        }
        let ticket = self.shared.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let mut rx = self.shared.flushed.subscribe();
        {
            let mut wanted = self.shared.wanted.lock().unwrap_or_else(|p| p.into_inner());
            wanted.0 = wanted.0.max(ticket);
        }
        self.shared.wake.notify_one();
        let outcome = *rx
            .wait_for(|f| f.done >= ticket)
            .await
            .map_err(|_| KvError::Io("the flusher stopped".into()))?;
        if outcome.failed {
            return Err(KvError::Io("flush to disk failed".into()));
        }
        Ok(())
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1 = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn flush_on_demand(shared: &Shared, flush: &dyn Fn() -> Result<(), String>) {
    let mut done = 0;
    loop {
        let target = {
            let mut wanted = shared.wanted.lock().unwrap_or_else(|p| p.into_inner());
            while wanted.0 <= done && !wanted.1 {
                wanted = shared.wake.wait(wanted).unwrap_or_else(|p| p.into_inner());
            }
            if wanted.1 {
                return;
            }
            wanted.0
        };
        let failed = match flush() {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(target: "wedge::kv", "flush failed: {e}");
                true
            }
        };
        done = target;
        shared.flushed.send_replace(Flushed { done, failed });
    }
}

fn flush_every(shared: &Shared, interval: Duration, flush: &dyn Fn() -> Result<(), String>) {
    loop {
        {
            let wanted = shared.wanted.lock().unwrap_or_else(|p| p.into_inner());
            let (wanted, _) = shared
                .wake
                .wait_timeout_while(wanted, interval, |w| !w.1)
                .unwrap_or_else(|p| p.into_inner());
            if wanted.1 {
                return;
            }
        }
        if let Err(e) = flush() {
            tracing::error!(target: "wedge::kv", "periodic flush failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_flushes() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counter = flushes.clone();
        let commit = Arc::new(
            GroupCommit::start(Durability::Sync, Duration::ZERO, move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            })
            .unwrap(),
        );
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let c = commit.clone();
                tokio::spawn(async move { c.durable().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "{n} flushes for 64 writers");
    }

    #[tokio::test]
    async fn a_failed_flush_is_an_io_error() {
        let commit =
            GroupCommit::start(Durability::Sync, Duration::ZERO, || Err("disk full".into()))
                .unwrap();
        assert!(matches!(commit.durable().await, Err(KvError::Io(_))));
    }

    #[tokio::test]
    async fn periodic_writers_do_not_wait() {
        let commit =
            GroupCommit::start(Durability::Periodic, Duration::from_secs(3600), || Ok(())).unwrap();
        commit.durable().await.unwrap();
    }
}
