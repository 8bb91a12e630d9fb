//! The `components` scenario: `examples/http-hello`, a wasi:http component,
//! served by wedge and by `wasmtime serve` (with its defaults, and with its
//! pooling allocator), the WAGI `examples/hello` beside them; wedge against
//! each `wasmtime serve` in the same rounds. Then the same for
//! `bench/plain-http-hello`, a minimal hello built as a team would build its
//! first one (cargo's default release profile), so that the comparison is
//! not of wedge's own tuned example alone.

use super::lineup::Lineup;
use super::node::start_wedge_with;
use super::wasmtime;
use super::wrk::wait_ready;
use crate::{WASM_TARGET_DIR, root};

/// Starts wedge and both `wasmtime serve`s and adds their targets.
pub fn start(lineup: &mut Lineup) -> Result<(), String> {
    let wasmtime = wasmtime::cli()?;
    let modules = root().join(WASM_TARGET_DIR).join("wasm32-wasip1/release");
    let plain = "plain_http_hello".to_string();
    wedge_toolchains::components::cargo_components(
        &root().join("bench/plain-http-hello/Cargo.toml"),
        std::slice::from_ref(&plain),
        &root().join(WASM_TARGET_DIR),
        &modules,
    )?;
    let plain_module = modules.join("plain_http_hello.wasm");
    let (server, port) = start_wedge_with("components", "sync", |functions| {
        let dir = functions.join("plain-http-hello");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::copy(&plain_module, dir.join("v1.wasm"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
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
    let url = format!("http://127.0.0.1:{port}/plain-http-hello");
    wait_ready(&url)?;
    let plain = lineup.add("wedge bench/plain-http-hello (wasi:http)", url, None);
    let (server, url) = wasmtime::serve(&wasmtime, &plain_module, true)?;
    lineup.keep(server);
    wait_ready(&url)?;
    let other = lineup.add("wasmtime serve, pooling, plain-http-hello", url, None);
    lineup.compare(plain, other);
    Ok(())
}
