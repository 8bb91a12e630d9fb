//! Compiled code shared between nodes: a node whose engine matches another's
//! (the same wasmtime and settings) takes the code that node compiled instead
//! of compiling the module again, and offers what it compiles itself. The
//! fleet ([`crate::control::fleet`]) keeps it in the OCI registry.
//!
//! Compiled code is native code, loaded without a check that it came from the
//! module: sharing it trusts the place it is shared through as much as the
//! wedge binary (`[cluster] share_compiled = false` turns it off).

/// Where compiled code is shared.
#[async_trait::async_trait]
pub trait SharedCode: Send + Sync {
    /// The code `engine` (a [`super::cache::engine_dir_name`]) compiled from
    /// the module whose sha256 is `sha256` (hex), if some node offered it.
    async fn fetch(&self, sha256: &str, engine: &str) -> Option<Vec<u8>>;

    /// Offers the code this node's `engine` compiled from module `sha256`.
    async fn offer(&self, sha256: &str, engine: &str, code: Vec<u8>);
}
