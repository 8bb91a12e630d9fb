//! The `inventory` scenario: durable reservations,
//! `POST /inventory/sku-N/reserve?qty=1` across 1000 SKUs, once with
//! `durability = "sync"` and once `"periodic"`, and on a baseline wedge
//! (`sync`) when one is given.

use std::path::Path;
use std::time::{Duration, Instant};

use super::http::put;
use super::lineup::Lineup;
use super::node::{start_binary, start_wedge};
use crate::root;

/// wrk's request generator for reservations across 1000 SKUs.
const RESERVE_LUA: &str = r#"
wrk.method = "POST"
request = function()
  return wrk.format(nil, "/inventory/sku-" .. math.random(1, 1000) .. "/reserve?qty=1")
end
"#;

/// Starts the scenario's nodes, seeds their inventories and adds their
/// targets.
pub fn start(lineup: &mut Lineup, baseline: Option<&Path>) -> Result<(), String> {
    let script = root().join("target/bench/reserve.lua");
    std::fs::create_dir_all(root().join("target/bench")).map_err(|e| e.to_string())?;
    std::fs::write(&script, RESERVE_LUA).map_err(|e| e.to_string())?;
    for durability in ["sync", "periodic"] {
        let (server, port) = start_wedge(&format!("inventory-{durability}"), durability)?;
        lineup.keep(server);
        seed(port)?;
        lineup.add(
            &format!("wedge reserve ({durability})"),
            format!("http://127.0.0.1:{port}"),
            Some(script.clone()),
        );
    }
    if let Some(baseline) = baseline {
        let (server, port) = start_binary(baseline, "inventory-baseline", "sync", |_| Ok(()))?;
        lineup.keep(server);
        seed(port)?;
        lineup.add(
            "baseline wedge, reserve (sync)",
            format!("http://127.0.0.1:{port}"),
            Some(script),
        );
    }
    Ok(())
}

/// Seeds sku-1..=sku-1000 with more stock than any run can take.
fn seed(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for sku in 1..=1000 {
        loop {
            match put(port, &format!("/inventory/sku-{sku}"), "1000000000000") {
                Ok(200) => break,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => return Err(format!("seeding sku-{sku} failed: {other:?}")),
            }
        }
    }
    Ok(())
}
