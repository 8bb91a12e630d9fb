//! Latency around swaps: the p99 of `/hello`, quiet and while another
//! function's module is replaced every 2 s.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::timing::land;
use crate::bench::wrk::{Load, wrk};

/// Loads `/hello` on the node at `addr` with `load`, quiet and then while
/// `go_hello`, new bytes each time, lands in `functions/churn/` every 2 s;
/// returns the line comparing both.
pub fn measure(
    load: &Load,
    addr: &str,
    functions: &Path,
    go_hello: &[u8],
) -> Result<String, String> {
    println!(
        "p99 of /hello (wrk -t{} -c{} -d{}), quiet and while another function swaps every 2 s:",
        load.threads, load.connections, load.duration
    );
    let url = format!("http://{addr}/hello?name=edge");
    let quiet = wrk(load, &url, None)?;
    let churn = functions.join("churn");
    std::fs::create_dir_all(&churn).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, go_hello) = (stop.clone(), go_hello.to_vec());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let bytes = wedge_wasmgen::padded(&go_hello, 9000 + swaps, 16);
                if land(&churn.join("v1.wasm"), &bytes).is_ok() {
                    swaps += 1;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            swaps
        })
    };
    let busy = wrk(load, &url, None)?;
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().map_err(|_| "the swapping thread panicked")?;
    Ok(format!(
        "p99 of /hello: {} quiet ({:.0} req/s), {} with {swaps} swaps of a 5 MB Go module ({:.0} req/s)",
        quiet.p99, quiet.requests_per_sec, busy.p99, busy.requests_per_sec
    ))
}
