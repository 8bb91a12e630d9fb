//! The `fifty` scenario: hello with 50 functions loaded, each on its own
//! route.

use super::lineup::Lineup;
use super::node::start_wedge_with;
use super::wrk::wait_ready;

/// Starts a node with 45 more copies of hello beside the examples and adds
/// its target, the last copy.
pub fn start(lineup: &mut Lineup) -> Result<(), String> {
    let (server, port) = start_wedge_with("fifty", "sync", |functions| {
        let hello = functions.join("hello/v1.wasm");
        for i in 1..=45 {
            let dir = functions.join(format!("hello{i:02}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::copy(&hello, dir.join("v1.wasm")).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    lineup.keep(server);
    let url = format!("http://127.0.0.1:{port}/hello45");
    wait_ready(&url)?;
    lineup.add("wedge hello, 50 functions", url, None);
    Ok(())
}
