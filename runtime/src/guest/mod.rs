//! A handler's code: the wasmtime engines it is compiled and run with, its two
//! formats, and what is done to a module before it is compiled.
//!
//! - [`engine`]: the engines, one per compiler tier (pooling, epochs,
//!   copy-on-write memory), and their linkers.
//! - [`code`]: the two handler formats, told apart by their bytes, and their
//!   compiled code.
//! - [`preinit`]: reactor handlers: `_initialize` run once at load and
//!   snapshotted with `wasmtime-wizer`, `wedge_handle` per request.
//! - [`segments`]: a module's data segments joined into few, so instantiating
//!   it does not walk thousands (Go emits one per symbol).

pub mod code;
pub mod engine;
pub mod preinit;
pub mod segments;
