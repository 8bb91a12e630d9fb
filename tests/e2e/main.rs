//! End-to-end tests: each starts the real `wedge` binary on `127.0.0.1:0` over a
//! functions directory of real wasm and talks HTTP to it.

mod admin;
mod compiles;
mod components;
mod connections;
mod crash;
mod disk;
mod escrow;
mod etcd;
mod fleet;
mod hostile;
mod kv;
mod languages;
mod limits;
mod loading;
mod observe;
mod outbound;
mod reactors;
mod requests;
mod rollout;
mod saturated;
mod sdks;
mod shutdown;
mod streams;
mod swap;
mod tls;
mod uploads;
mod wagi;

use wedge_test_harness::NodeBuilder;

/// A node run from the binary built with these tests.
pub fn node() -> NodeBuilder {
    NodeBuilder::new(env!("CARGO_BIN_EXE_wedge"))
}

/// The size of an attack: `small` in the suite, `full` with
/// `WEDGE_TEST_FULL_SCALE=1`, which the figures in docs/operations.md come
/// from (`cargo test --release -p wedge --test e2e <name> -- --nocapture`).
pub fn scale(small: usize, full: usize) -> usize {
    match std::env::var_os("WEDGE_TEST_FULL_SCALE") {
        Some(_) => full,
        None => small,
    }
}

/// Every guest program in tests/guests has a test of the same name; adding a
/// guest without one fails the build here.
mod tested {
    pub use crate::compiles::init_slow as c_init_slow;
    pub use crate::components::http_probe;
    pub use crate::connections::slow_readers_are_disconnected as big;
    pub use crate::hostile::{flood, hog, recurse, spin, wasi_abuse};
    pub use crate::kv::{kv_abuse, kv_probe};
    pub use crate::limits::sleepy;
    pub use crate::loading::forbidden;
    pub use crate::outbound::listed_origins_answer_and_nothing_else as fetch;
    pub use crate::reactors::{
        init_spin as c_init_spin, init_stdin as c_init_stdin, init_store as c_init_store,
        reactor as c_reactor,
    };
    pub use crate::sdks::{c_shop, go_shop};
    pub use crate::streams::{events, long_bodies_stream_in_bounded_memory as stream_bytes};
    pub use crate::swap::{swaps_under_load as swap_a, swaps_under_load as swap_b};
    pub use crate::wagi::{chatty, cookies, env_dump, exit_nonzero, trap, verbatim};
}

macro_rules! assert_tested {
    ($name:ident) => {
        #[allow(unused_imports)]
        use crate::tested::$name as _;
    };
}
wedge_test_harness::foreach_guest!(assert_tested);
