//! Small helpers every part of the node uses, with no knowledge of functions
//! or requests.
//!
//! - [`alloc`]: the allocator call that hands a thread's freed memory back.
//! - [`clock`]: wall-clock milliseconds, as the stores and the fleet record them.
//! - [`fs`]: crash-safe file writes.
//! - [`natural`]: version labels in natural order (`v2` before `v10`).

pub mod alloc;
pub mod clock;
pub mod fs;
pub mod natural;
