//! The `components` scenario: `examples/http-hello`, a wasi:http component,
//! served by wedge and by `wasmtime serve` (with its defaults, and with its
//! pooling allocator), the WAGI `examples/hello` beside them; wedge against
//! each `wasmtime serve` in the same rounds.

use super::lineup::Lineup;
use super::node::start_wedge;
use super::wasmtime;
use super::wrk::wait_ready;
use crate::{WASM_TARGET_DIR, root};

/// Starts wedge and both `wasmtime serve`s and adds their targets.
pub fn start(lineup: &mut Lineup) -> Result<(), String> {
    let wasmtime = wasmtime::cli()?;
    let (server, port) = start_wedge("components", "sync")?;
    lineup.keep(server);
    // The component's target, the first added here.
    let component = lineup.targets.len();
    for (name, path) in [
        ("wedge examples/http-hello (wasi:http)", "http-hello"),
        ("wedge examples/hello (WAGI)", "hello"),
    ] {
        let url = format!("http://127.0.0.1:{port}/{path}?name=edge");
        wait_ready(&url)?;
        lineup.add(name, url, None);
    }
    let module = root()
        .join(WASM_TARGET_DIR)
        .join("wasm32-wasip1/release/http-hello.wasm");
    for (name, pooling) in [
        ("wasmtime serve, defaults", false),
        ("wasmtime serve, pooling", true),
    ] {
        let (server, url) = wasmtime::serve(&wasmtime, &module, pooling)?;
        lineup.keep(server);
        wait_ready(&url)?;
        let other = lineup.add(name, url, None);
        lineup.compare(component, other);
    }
    Ok(())
}
