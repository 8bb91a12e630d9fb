//! A big module going live: `examples/go-rules` landing [`ROUNDS`] times as
//! a new version, timed to serving and to optimized code.

use std::path::Path;
use std::time::Duration;

use super::timing::{READ_TIMEOUT, land, ms, spread, wait_for};
use crate::bench::admin::optimized;
use crate::bench::http::{get, header};

/// Big-module rounds.
const ROUNDS: usize = 10;

/// Lands `go_rules` in `functions/big/` on the node at `addr` (admin API at
/// `admin`) [`ROUNDS`] times, printing each; returns the summary lines.
pub fn measure(
    addr: &str,
    admin: &str,
    functions: &Path,
    go_rules: &[u8],
) -> Result<String, String> {
    println!(
        "a {:.1} MB Go module (examples/go-rules) landing {ROUNDS} times as a new version:",
        go_rules.len() as f64 / (1 << 20) as f64
    );
    let big = functions.join("big");
    std::fs::create_dir_all(&big).map_err(|e| e.to_string())?;
    let (mut serving, mut optimizing) = (Vec::new(), Vec::new());
    for i in 1..=ROUNDS {
        let label = format!("v{i}");
        if i > 1 {
            let _ = std::fs::remove_file(big.join(format!("v{}.wasm", i - 1)));
        }
        let bytes = wedge_wasmgen::padded(go_rules, 7000 + i as u32, 16);
        let landed = land(&big.join(format!("{label}.wasm")), &bytes)?;
        // Every 5 ms: each probe is a request the node serves, and probing
        // every 1 ms took about a tenth of the compile child's CPU from it.
        let served = wait_for("serving", landed, Duration::from_millis(5), || {
            get(addr, "/big/x", READ_TIMEOUT)
                .is_some_and(|r| header(&r, "x-wedge-version") == Some(&label))
        })?;
        let optimized_at = wait_for("optimized code", landed, Duration::from_millis(10), || {
            optimized(admin, "big", &label, READ_TIMEOUT)
        })?;
        println!(
            "  {label}: serving after {:.0} ms, on optimized code after {:.0} ms",
            ms(served),
            ms(optimized_at)
        );
        serving.push(served);
        optimizing.push(optimized_at);
    }
    let _ = std::fs::remove_dir_all(&big);
    Ok(format!(
        "file landing to serving: {}\nfile landing to optimized code: {}",
        spread(&mut serving),
        spread(&mut optimizing)
    ))
}
