//! The `golive` scenario (part of `speed` and `all`): how soon new code
//! serves, and what a swap costs the requests around it.
//!
//! - **A big module goes live** ([`landing`]): `examples/go-rules`, a Go
//!   reactor of about 7 MB, lands in `functions/big/` ten times, each time as
//!   a new label with a new custom section, so each is new bytes to
//!   initialize and compile. The clock starts at the rename that lands the
//!   file. It stops when a request to `/big` (one every 5 ms) is answered by
//!   the new version (its `x-wedge-version`), and again when the admin API
//!   shows that version on its optimized code.
//! - **Where the floor is** ([`floor`]): the same module through the compile
//!   child by itself, no node around it: the whole baseline compile
//!   (instrument, compile, initialize, snapshot, compile the snapshot), and
//!   one Winch compile of the snapshot alone, which nothing that compiles the
//!   landed module before serving it can go below.
//! - **Latency around swaps** ([`swaps`]): wrk on `/hello` for the run's
//!   duration with nothing else going on, then again while
//!   `examples/go-hello`, new bytes each time, replaces the module of another
//!   function every 2 s. The p99 of both.
//! - **Start-up** ([`startup`]): 1,000 distinct hello modules, none compiled.
//!   The time from starting wedge to the first request served (`/f0000`, the
//!   first in the compile queue), to every function serving
//!   (`/readyz?all=1`), and to every function on optimized code. Then a
//!   restart with all 1,000 cached: the time until all serve, and the
//!   process's RSS and anonymous RSS.

mod floor;
mod landing;
mod startup;
pub(super) mod swaps;
mod timing;

use std::path::Path;

use super::node::{start_with_admin, wedge_binary};
use super::wrk::Load;
use crate::root;

/// The scenario, with wrk loading `/hello` as `load` says. `modules` is
/// where the examples were built.
pub fn bench(load: &Load, modules: &Path) -> Result<(), String> {
    let wedge = wedge_binary();
    let read = |name: &str| std::fs::read(modules.join(name)).map_err(|e| e.to_string());
    let (go_rules, go_hello) = (read("go-rules.wasm")?, read("go-hello.wasm")?);
    let hello = read("hello.wasm")?;

    let floor_line = floor::measure(&wedge, &go_rules)?;
    println!("{floor_line}");

    let (server, port, admin) = start_with_admin(&wedge, "golive", "", "", "", |_| Ok(()))?;
    let (addr, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    // `start_with_admin` returned once every example serves on optimized
    // code: the Go ones' optimized compiles (seconds each) would otherwise
    // compete with the first landing.
    let functions = root().join("target/bench/golive/functions");
    let big_line = landing::measure(&addr, &admin, &functions, &go_rules)?;
    let p99_line = swaps::measure(load, &addr, &functions, &go_hello)?;
    drop(server);

    let startup_lines = startup::measure(&wedge, &hello)?;
    println!("{big_line}\n{floor_line}\n{p99_line}");
    for line in startup_lines {
        println!("{line}");
    }
    Ok(())
}
