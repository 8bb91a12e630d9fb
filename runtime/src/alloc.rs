//! Where compile memory comes from: the allocator's controls that keep an idle
//! node's memory small after it has compiled modules.
//!
//! wedge allocates with mimalloc (v3). Its arenas keep memory a compile freed
//! resident (measured: an idle node that had just compiled the examples held
//! 50 MiB against 24 MiB after a restart that read them from the cache). While a
//! load compiles, new allocator pages therefore come straight from the system,
//! and go back to it when the compile frees them.

use libmimalloc_sys::{mi_collect, mi_option_set_enabled, mi_option_t};

/// mimalloc v3's `mi_option_disallow_arena_alloc` (`mimalloc.h`), which the
/// bindings do not name.
const DISALLOW_ARENA_ALLOC: mi_option_t = 26;

/// From now until [`end_compile`], new allocator pages are the system's own.
pub fn begin_compile() {
    // SAFETY: sets a process-wide allocator option; touches no allocation.
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set_enabled(DISALLOW_ARENA_ALLOC, true)
    };
}

/// Returns this thread's free memory to the system and lets serving allocate
/// from the arenas again.
pub fn end_compile() {
    // SAFETY: asks the allocator to return this thread's free memory and sets a
    // process-wide option; touches no live allocation.
    #[allow(unsafe_code)]
    unsafe {
        mi_collect(true);
        mi_option_set_enabled(DISALLOW_ARENA_ALLOC, false);
    };
}
