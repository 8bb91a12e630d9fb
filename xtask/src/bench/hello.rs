//! The `hello` scenario: `GET /<name>?name=edge` from `examples/hello` (Rust
//! SDK), `examples/c-hello` (C, a reactor) and `examples/go-hello` (the Go
//! SDK, a reactor), and from a baseline wedge when one is given.

use std::path::Path;

use super::lineup::Lineup;
use super::node::{start_binary, start_wedge};
use super::wrk::wait_ready;

/// Starts the scenario's node (and the baseline's) and adds its targets.
pub fn start(lineup: &mut Lineup, baseline: Option<&Path>) -> Result<(), String> {
    let (server, port) = start_wedge("hello", "sync")?;
    lineup.keep(server);
    for (name, path) in [
        ("wedge examples/hello (Rust SDK)", "hello"),
        ("wedge examples/c-hello (C reactor)", "c-hello"),
        ("wedge examples/go-hello (Go SDK reactor)", "go-hello"),
    ] {
        let url = format!("http://127.0.0.1:{port}/{path}?name=edge");
        wait_ready(&url)?;
        lineup.add(name, url, None);
    }
    if let Some(baseline) = baseline {
        let (server, port) = start_binary(baseline, "hello-baseline", "sync", |_| Ok(()))?;
        lineup.keep(server);
        let url = format!("http://127.0.0.1:{port}/hello");
        wait_ready(&url)?;
        lineup.add("baseline wedge, hello", url, None);
    }
    Ok(())
}
