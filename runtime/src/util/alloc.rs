//! Giving memory back: each serving lane asks the allocator, once a second, to
//! return what its thread has freed.
//!
//! wedge allocates with mimalloc, whose per-thread heaps return freed pages to
//! the system lazily, on that thread's later allocations. A lane that has just
//! dropped large responses (a client that stopped reading, cut off by
//! `write_timeout`) and then goes quiet would otherwise keep them resident.

use libmimalloc_sys::mi_collect;

/// Returns the calling thread's freed memory to the system, without forcing
/// the collection of memory other threads still use.
pub fn collect_thread() {
    // SAFETY: asks the allocator to release this thread's free pages; it
    // touches no live allocation.
    #[allow(unsafe_code)]
    unsafe {
        mi_collect(false)
    };
}
