//! The `fleet` bench scenario's parts: an etcd cluster of three members and
//! wedge nodes sharing one hot SKU through it, next to one sled node.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{Server, free_port, put, start_configured};
use crate::root;

/// The SKU every buyer of the scenario reserves from.
pub const HOT_SKU: &str = "/inventory/hot";

/// wrk's script: `POST /inventory/hot/reserve?qty=1`.
pub const HOT_LUA: &str = r#"wrk.method = "POST"
wrk.path = "/inventory/hot/reserve?qty=1"
"#;

/// Starts three etcd members in `target/bench/etcd`, on free ports; returns
/// them and their client endpoints once they have a leader.
pub fn start_etcd() -> Result<(Vec<Server>, Vec<String>), String> {
    let dir = root().join("target/bench/etcd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_, String>>()?;
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let child = Command::new("etcd")
            .arg(format!("--name=m{i}"))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("m{i}")).display()
            ))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster={initial}"))
            .args(["--initial-cluster-state=new", "--log-level=warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run etcd ({e}): apt-get install etcd-server"))?;
        members.push(Server(child));
    }
    let endpoints: Vec<String> = ports
        .iter()
        .map(|(client, _)| format!("http://127.0.0.1:{client}"))
        .collect();
    Ok((members, endpoints))
}

/// Units a node takes at a time in the escrowed fleet.
pub const BLOCK: u32 = 1000;

/// Starts wedge node `name` of the fleet, its stores in etcd at `endpoints`;
/// with `escrow`, the inventory's counters in blocks of [`BLOCK`] (and under
/// their own prefix).
pub fn start_node(name: &str, endpoints: &[String], escrow: bool) -> Result<(Server, u16), String> {
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
        &root().join("target/release/wedge"),
        &dir,
        "workers = 1\n",
        "backend = \"etcd\"\n",
        &cluster,
        |_| Ok(()),
    )
}

/// Seeds the hot SKU through `port` once the node's store answers.
pub fn seed_hot(port: u16) -> Result<(), String> {
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
pub fn hot_script() -> Result<std::path::PathBuf, String> {
    let script = Path::new(&root()).join("target/bench/hot.lua");
    std::fs::write(&script, HOT_LUA).map_err(|e| e.to_string())?;
    Ok(script)
}
