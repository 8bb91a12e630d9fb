//! The `origin` scenario: `examples/origin-fallback` in front of the raw
//! hyper server as its origin: hits served from the store, and misses (a
//! copy that is always too old) that call the origin and store its answer,
//! on a node with `durability = "periodic"` (a cache's writes need no fsync).

use std::path::Path;

use super::lineup::Lineup;
use super::node::{start_configured, wedge_binary};
use super::wrk::wait_ready;

/// Starts the node in front of hyper at `hyper_port` and adds its hit and
/// miss targets.
pub fn start(lineup: &mut Lineup, hyper_port: u16) -> Result<(), String> {
    let toml = |max_age: u32| {
        format!(
            "route = \"/{{}}\"\noutbound = [\"http://127.0.0.1:{hyper_port}\"]\nenv = {{ ORIGIN = \"http://127.0.0.1:{hyper_port}\", MAX_AGE_SECS = \"{max_age}\" }}\n"
        )
    };
    let (server, port) = start_configured(
        &wedge_binary(),
        "origin",
        "",
        "durability = \"periodic\"\n",
        "",
        |functions| {
            let hit = functions.join("origin-fallback");
            let miss = functions.join("origin-miss");
            std::fs::create_dir_all(&miss).map_err(|e| e.to_string())?;
            std::fs::copy(hit.join("v1.wasm"), miss.join("v1.wasm")).map_err(|e| e.to_string())?;
            let write = |dir: &Path, route: &str, max_age| {
                std::fs::write(
                    dir.join("function.toml"),
                    toml(max_age).replace("{}", route),
                )
                .map_err(|e| e.to_string())
            };
            write(&hit, "origin-fallback", 3600)?;
            // A copy is never fresh: every request calls the origin.
            write(&miss, "origin-miss", 0)
        },
    )?;
    lineup.keep(server);
    for (name, path) in [
        ("origin-fallback, hit", "origin-fallback/item"),
        ("origin-fallback, miss", "origin-miss/item"),
    ] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        wait_ready(&url)?;
        lineup.add(name, url, None);
    }
    Ok(())
}
