//! Going live on a node whose cores are saturated by serving: a new version
//! still serves within a bounded time, and a module that comes back serves
//! again without a compile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wedge_test_harness::{Node, field, guests};

use crate::node;
use crate::swap::{body, replace_by_rename, replace_in_place, until_optimized, until_serving};

/// How long a swap may take to serve on a saturated node.
const GO_LIVE: Duration = Duration::from_millis(500);

/// Clients that keep both cores busy: each request computes for 5 ms.
const CLIENTS: usize = 8;

/// CPU seconds node `n` has used so far, user and system.
fn cpu_seconds(n: &Node) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", n.pid())).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// sha256 of the module in file `wasm`, as the node's log names it.
fn sha256(wasm: &str) -> String {
    let digest = Sha256::digest(std::fs::read(wasm).unwrap());
    hex::encode(digest)
}

/// The baseline compiles of module `sha` the node logged after line `seen`.
fn baseline_compiles(n: &Node, seen: usize, sha: &str) -> usize {
    n.log_lines()[seen..]
        .iter()
        .filter(|l| l.contains(": compiled ") || l.contains("\"message\":\"compiled\""))
        .filter(|l| field(l, "tier").as_deref() == Some("baseline"))
        .filter(|l| field(l, "sha256").as_deref() == Some(sha))
        .count()
}

/// Eight clients keep both cores busy with requests that compute for 5 ms
/// while the module is swapped 60 times between two builds, half by rename
/// and half by copying over the file in place: every swap serves within
/// 500 ms, no request fails, and going back to a module served before
/// compiles nothing first (its baseline code stays in the cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn go_live_under_saturation() {
    let n = node().function("swap", guests::SWAP_A).start();
    until_optimized(&n, "swap").await;
    let target = n.dir().join("functions/swap/v1.wasm");
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, served, addr) = (stop.clone(), served.clone(), n.addr());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match body(addr, "/swap?spin=5").await {
                        Ok(b) if b == "A" || b == "B" => served.fetch_add(1, Ordering::Relaxed),
                        other => panic!("a request failed during swaps: {other:?}"),
                    };
                }
            })
        })
        .collect();
    // Let the load take the cores before the first swap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (seen, cpu_before, started) = (n.log_lines().len(), cpu_seconds(&n), Instant::now());
    let mut took = Vec::new();
    for i in 0..60 {
        let (wasm, expected) = match i % 2 {
            0 => (guests::SWAP_B, "B"),
            _ => (guests::SWAP_A, "A"),
        };
        match i % 4 < 2 {
            true => replace_by_rename(&target, wasm),
            false => replace_in_place(&target, wasm),
        }
        took.push(until_serving(&n, "/swap", expected).await);
    }
    let cores = (cpu_seconds(&n) - cpu_before) / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let mut sorted = took.clone();
    sorted.sort();
    eprintln!(
        "60 swaps on a saturated node ({cores:.2} cores busy serving, {} requests): \
         median {:?}, max {:?}",
        served.load(Ordering::Relaxed),
        sorted[30],
        sorted[59]
    );
    assert!(cores > 1.0, "the load kept only {cores:.2} cores busy");
    let slow: Vec<_> = took
        .iter()
        .enumerate()
        .filter(|(_, t)| **t > GO_LIVE)
        .collect();
    assert!(slow.is_empty(), "swaps slower than {GO_LIVE:?}: {slow:?}");
    // A was compiled before the load; B once, on its first visit.
    assert_eq!(baseline_compiles(&n, seen, &sha256(guests::SWAP_A)), 0);
    assert_eq!(baseline_compiles(&n, seen, &sha256(guests::SWAP_B)), 1);
}
