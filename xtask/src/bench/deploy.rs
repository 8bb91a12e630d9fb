//! The `deploy` scenario (not in `all`): how long a fleet deploy takes to
//! reach the last node. Three nodes, a three-member etcd and a Distribution
//! registry on this machine; a 3 MB module of real code, deployed `--rounds`
//! times (20 by default), each time with a new custom section so every
//! deploy is new bytes to pull and compile. The clock starts when `wedge
//! deploy --fleet` returns and stops when the last node serves the version.
//! It runs once with `share_compiled` on (the node the deploy goes through
//! compiles while checking the module and pushes the code; the others take
//! it from the registry) and once with it off (every node compiles).

use std::process::Command;
use std::time::{Duration, Instant};

use super::admin::serves;
use super::http::get_body;
use super::node::{start_with_admin, wedge_binary};
use super::server::Server;
use super::{etcd, registry};
use crate::root;

/// The module's size: about the size of a rule engine or a small Go program.
const MODULE_BYTES: usize = 3 << 20;

/// How long one deploy may take to reach every node.
const PATIENCE: Duration = Duration::from_secs(120);

/// The scenario: `rounds` deploys each way.
pub fn bench(rounds: usize) -> Result<(), String> {
    let (etcd, endpoints) = etcd::start()?;
    let (registry_server, registry) = registry::start()?;
    let base = wedge_wasmgen::slow_to_compile(MODULE_BYTES, 200);
    println!(
        "fleet deploys of a {:.1} MB module to 3 nodes, {rounds} each way (2 cores: etcd, registry and nodes share them)",
        base.len() as f64 / (1 << 20) as f64
    );
    let mut results = Vec::new();
    for share in [true, false] {
        let fleet = start_fleet(&endpoints, &registry, share)?;
        let mut times = measure(&fleet, &base, rounds, share)?;
        let name = match share {
            true => "compiled code shared through the registry",
            false => "every node compiles (share_compiled off)",
        };
        results.push(summary(name, &mut times));
    }
    for line in results {
        println!("{line}");
    }
    drop((etcd, registry_server));
    Ok(())
}

/// One fleet: three nodes, with or without compiled-code sharing.
struct Fleet {
    _servers: Vec<Server>,
    admins: Vec<String>,
}

fn start_fleet(endpoints: &[String], registry: &str, share: bool) -> Result<Fleet, String> {
    let list: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let mut servers = Vec::new();
    let mut admins = Vec::new();
    for node in ["n0", "n1", "n2"] {
        let tables = format!(
            "\n[cluster]\nnode = \"{node}\"\netcd = [{}]\nprefix = \"/wedge-bench-deploy-{share}\"\nregistry = \"{registry}/deploy-{share}\"\nregistry_insecure = true\nshare_compiled = {share}\n",
            list.join(", ")
        );
        let name = format!("deploy-{share}-{node}");
        let (server, _, admin) = start_with_admin(
            &wedge_binary(),
            &name,
            "workers = 1\n",
            "",
            &tables,
            // A fresh node: nothing left from an earlier run to compile at start.
            |functions| match std::fs::remove_dir_all(functions.join("big")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
        )?;
        servers.push(server);
        admins.push(format!("127.0.0.1:{admin}"));
    }
    for admin in &admins {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get_body(admin, "/healthz").map(|(s, _)| s) != Some(200) {
            if Instant::now() > deadline {
                return Err(format!("node at {admin} did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(Fleet {
        _servers: servers,
        admins,
    })
}

/// Deploys `rounds` new versions through the first node; the time from each
/// deploy returning to the last node serving it.
fn measure(
    fleet: &Fleet,
    base: &[u8],
    rounds: usize,
    share: bool,
) -> Result<Vec<Duration>, String> {
    let dir = root().join("target/bench/deploy-modules");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for i in 0..rounds {
        let label = format!("v{}", i + 1);
        let module = dir.join(format!("{share}-{label}.wasm"));
        let bytes = wedge_wasmgen::padded(base, (i as u32) + u32::from(share) * 1000, 16);
        std::fs::write(&module, bytes).map_err(|e| e.to_string())?;
        let out = Command::new(wedge_binary())
            .args(["deploy", "big", &module.to_string_lossy(), "--fleet"])
            .args(["--version", &label])
            .arg("--admin")
            .arg(format!("http://{}", fleet.admins[0]))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "wedge deploy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let returned = Instant::now();
        let mut waiting: Vec<&String> = fleet.admins.iter().collect();
        while !waiting.is_empty() {
            waiting.retain(|admin| !serves(admin, "big", &label));
            if returned.elapsed() > PATIENCE {
                return Err(format!("{label} did not reach every node in {PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let time = returned.elapsed();
        times.push(time);
        println!(
            "  deploy {label} ({} compiled code): last node serving after {:.0} ms",
            if share { "shared" } else { "no shared" },
            time.as_secs_f64() * 1000.0
        );
    }
    Ok(times)
}

fn summary(name: &str, times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{name:<40} median {:>7.0} ms   min {:>7.0} ms   max {:>7.0} ms   ({} deploys)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    )
}
