//! A guest's resource limits inside its store: the function's memory cap,
//! enforced as a trap that names itself, and the largest table it may grow.

use wasmtime::ResourceLimiter;

/// Largest table a guest may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Enforces a function's memory cap; growing past it is a trap, not a failed
/// grow. The cap covers all of an instance's linear memories together: a
/// component may have several (a language runtime's and its WASI adapter's).
pub struct GuestLimits {
    /// The function's `memory` setting in bytes.
    memory: usize,
    /// Bytes of linear memory the instance has now, all memories together.
    used: usize,
    /// Set when the guest tried to go over the cap, to name the trap.
    exceeded: bool,
}

impl GuestLimits {
    /// Limits for a function whose linear memory may not exceed `memory` bytes.
    pub fn new(memory: usize) -> Self {
        Self {
            memory,
            used: 0,
            exceeded: false,
        }
    }

    /// Whether the guest tried to grow past its cap.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// The trap raised when a guest's memory would exceed its cap.
#[derive(Debug, thiserror::Error)]
#[error("linear memory would grow to {desired} bytes, beyond the function's cap of {cap}")]
pub struct MemoryCapExceeded {
    /// Bytes the guest's memories would take, all together.
    pub desired: usize,
    /// The function's cap.
    pub cap: usize,
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the memory's own maximum the grow fails anyway: nothing to count.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let total = (self.used - current.min(self.used)).saturating_add(desired);
        if total > self.memory {
            self.exceeded = true;
            return Err(MemoryCapExceeded {
                desired: total,
                cap: self.memory,
            }
            .into());
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
