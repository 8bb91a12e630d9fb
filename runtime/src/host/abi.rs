//! The `wedge` host module's ABI: its version and the status codes every one
//! of its functions returns (documented in `docs/abi.md`).

use crate::store::KvError;

/// Version of the `wedge` module's ABI, returned by `wedge.abi_version`: 2
/// added the `http_*` functions of outbound HTTP.
pub const ABI_VERSION: i32 = 2;

/// Status codes the guest sees, from every function of the `wedge` module.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// The key does not exist.
    pub const NOT_FOUND: i32 = 1;
    /// The store is not declared in `kv`.
    pub const ACCESS_DENIED: i32 = 2;
    /// `add` would leave its bounds.
    pub const OUT_OF_RANGE: i32 = 3;
    /// A key or value over the limits.
    pub const TOO_LARGE: i32 = 4;
    /// A bad argument: pointer out of bounds, unknown handle, empty key...
    pub const INVALID: i32 = 5;
    /// The storage failed, or an outbound connection broke mid-exchange.
    pub const IO: i32 = 6;
    /// An outbound call ran out of time: connecting, TLS, or the call.
    pub const TIMEOUT: i32 = 7;
    /// An outbound call found no address or no address took the connection.
    pub const CONNECT: i32 = 8;
    /// An outbound TLS handshake failed.
    pub const TLS: i32 = 9;
    /// Too many outbound calls open, in the request or on the node.
    pub const BUSY: i32 = 10;
}

impl KvError {
    /// The status code for the guest.
    pub fn code(&self) -> i32 {
        match self {
            Self::NotFound => status::NOT_FOUND,
            Self::AccessDenied => status::ACCESS_DENIED,
            Self::OutOfRange(_) => status::OUT_OF_RANGE,
            Self::TooLarge => status::TOO_LARGE,
            Self::Invalid(_) => status::INVALID,
            Self::Io(_) => status::IO,
        }
    }
}
