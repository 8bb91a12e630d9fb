//! The `fleet` scenario: reservations on one hot SKU, from one node on sled
//! (`sync`) and from three nodes sharing it through a three-member etcd,
//! without and with escrow (blocks of [`BLOCK`]), each node loaded by its
//! own wrk; each fleet against the single sled node in the same rounds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::etcd;
use super::http::put;
use super::lineup::Lineup;
use super::node::{start_configured, start_wedge, wedge_binary};
use super::server::Server;
use super::wrk::wait_ready;
use crate::root;

/// The SKU every buyer of the scenario reserves from.
const HOT_SKU: &str = "/inventory/hot";

/// wrk's script: `POST /inventory/hot/reserve?qty=1`.
const HOT_LUA: &str = r#"wrk.method = "POST"
wrk.path = "/inventory/hot/reserve?qty=1"
"#;

/// Units a node takes at a time in the escrowed fleet.
const BLOCK: u32 = 1000;

/// Starts the sled node, the etcd members and both fleets, seeds the hot SKU
/// on each and adds their targets.
pub fn start(lineup: &mut Lineup) -> Result<(), String> {
    let script = hot_script()?;
    let (server, port) = start_wedge("hot-sled", "sync")?;
    lineup.keep(server);
    seed_hot(port)?;
    let single = lineup.add(
        "1 node, sled sync, hot SKU",
        format!("http://127.0.0.1:{port}"),
        Some(script.clone()),
    );
    let (members, endpoints) = etcd::start()?;
    for member in members {
        lineup.keep(member);
    }
    for (escrow, name) in [
        (false, "3 nodes on etcd, hot SKU"),
        (true, "3 nodes, etcd + escrow"),
    ] {
        let mut ports = Vec::new();
        for node in ["n0", "n1", "n2"] {
            let (server, port) = start_node(node, &endpoints, escrow)?;
            lineup.keep(server);
            ports.push(port);
        }
        seed_hot(ports[0])?;
        let urls: Vec<String> = ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
        for url in &urls {
            wait_ready(&format!("{url}{HOT_SKU}"))?;
        }
        let fleet = lineup.add_fleet(name, urls, Some(script.clone()));
        lineup.compare(fleet, single);
    }
    Ok(())
}

/// Starts wedge node `name` of the fleet, its stores in etcd at `endpoints`;
/// with `escrow`, the inventory's counters in blocks of [`BLOCK`] (and under
/// their own prefix).
fn start_node(name: &str, endpoints: &[String], escrow: bool) -> Result<(Server, u16), String> {
    let list: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let (prefix, tables) = match escrow {
        true => (
            "/wedge-bench-escrow",
            format!("\n[store.escrow]\ninventory = {{ block = {BLOCK} }}\n"),
        ),
        false => ("/wedge-bench", String::new()),
    };
    let cluster = format!(
        "{tables}\n[cluster]\nnode = \"{name}\"\netcd = [{}]\nprefix = \"{prefix}\"\n",
        list.join(", ")
    );
    let dir = format!("fleet-{}{name}", if escrow { "escrow-" } else { "" });
    // Three nodes share the machine's cores: one serving thread each, as an
    // operator would run several nodes on one small machine.
    start_configured(
        &wedge_binary(),
        &dir,
        "workers = 1\n",
        "backend = \"etcd\"\n",
        &cluster,
        |_| Ok(()),
    )
}

/// Seeds the hot SKU through `port` once the node's store answers.
fn seed_hot(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match put(port, HOT_SKU, "1000000000000") {
            Ok(200) => return Ok(()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => return Err(format!("seeding {HOT_SKU} failed: {other:?}")),
        }
    }
}

/// Writes wrk's script for the hot SKU; returns its path.
fn hot_script() -> Result<PathBuf, String> {
    let script = root().join("target/bench/hot.lua");
    std::fs::create_dir_all(root().join("target/bench")).map_err(|e| e.to_string())?;
    std::fs::write(&script, HOT_LUA).map_err(|e| e.to_string())?;
    Ok(script)
}
