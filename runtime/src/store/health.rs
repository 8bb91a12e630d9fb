//! Whether the key-value store can take writes, as `/readyz` and the metrics
//! report it: set when a storage error is seen, cleared when the store has
//! recovered and a write has been made durable again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The store's health.
#[derive(Debug)]
pub struct StoreHealth {
    ready: AtomicBool,
    /// Storage errors since start.
    errors: AtomicU64,
    /// Why the store is not ready, while it is not.
    problem: Mutex<Option<String>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            ready: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            problem: Mutex::new(None),
        }
    }
}

impl StoreHealth {
    /// Whether writes can succeed, as far as the store knows.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the store is not ready, while it is not.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Storage errors since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Counts a storage error and marks the store not ready.
    pub fn failed(&self, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        self.ready.store(false, Ordering::Release);
    }

    /// Counts a storage error that does not change readiness (one seen while
    /// the store is already recovering).
    pub fn counted(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The store takes writes again.
    pub fn recovered(&self) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.ready.store(true, Ordering::Release);
    }
}
