//! `cargo xtask bench [scenario] [options]`: wrk against wedge and against
//! the raw hyper hello-world, in the same run, with the ratio between them.
//!
//! The scenarios, one file each:
//!
//! - `hello` ([`hello`]): the Rust, C and Go hello examples.
//! - `inventory` ([`inventory`]): durable reservations across 1000 SKUs,
//!   `sync` and `periodic`.
//! - `components` ([`components`]): a wasi:http component served by wedge
//!   and by `wasmtime serve`.
//! - `fifty` ([`fifty`]): hello with 50 functions loaded.
//! - `fleet` ([`fleet`]): one hot SKU from one sled node and from three
//!   nodes on etcd, without and with escrow.
//! - `origin` ([`origin`]): a cache in front of hyper as its origin, hits and
//!   misses.
//! - `golive` ([`golive`]): how soon new code serves, what a swap costs, and
//!   start-up with 1,000 functions. `speed` is `hello` and `golive`.
//! - `deploy` ([`deploy`], not in `all`): fleet deploys timed to the last
//!   node serving, with and without compiled code shared.
//! - `swaps` ([`swaps`], not in `all`): the p99 of hello, quiet and while a
//!   5 MB Go module lands every 2 s, for this build and `--baseline` in
//!   turn, `--rounds` times.
//! - `stream` ([`stream`], not in `all`): 1 GiB streamed to one client by
//!   a component through wedge and by raw hyper, MiB/s and the ratio.
//!
//! `all` is every scenario but `deploy`; without a scenario, `hello`.
//!
//! Every target runs for the whole run; each round measures all of them in
//! turn, hyper first ([`lineup`]). The machine's speed drifts between minutes
//! (hyper alone has measured 103k–160k req/s here), so a ratio is taken
//! within each round and the table reports the median round ([`report`]).
//!
//! Options: `--duration 10s`, `--connections 32`, `--threads 2`, `--rounds 3`
//! (5 for `components`, 20 deploys for `deploy`), and `--baseline <wedge
//! binary>`: a build of an earlier commit, measured on the hello scenario
//! (and on reservations with `sync`) in the same rounds, to compare a change
//! with what it changes (`git worktree add ../base <commit>` and build it
//! there).
//!
//! This file reads the options and runs the scenarios; below the scenarios
//! are the parts they share: the run's targets and rounds ([`lineup`],
//! [`report`]), wrk ([`wrk`]), wedge nodes ([`node`], [`admin`]), the other
//! servers ([`hyper`], [`etcd`], [`registry`], [`wasmtime`], [`server`]) and
//! the bench's own requests ([`http`]).

mod components;
mod deploy;
mod fifty;
mod fleet;
mod golive;
mod hello;
mod inventory;
mod origin;
mod stream;
mod swaps;

mod admin;
mod etcd;
mod http;
mod hyper;
mod lineup;
mod node;
mod registry;
mod report;
mod server;
mod wasmtime;
mod wrk;

use std::path::PathBuf;

use crate::{WASM_TARGET_DIR, cargo, root, run};
use lineup::Lineup;
use wrk::Load;

/// What `cargo xtask bench` was asked for.
#[derive(Debug, PartialEq)]
struct Options {
    scenario: String,
    load: Load,
    rounds: usize,
    baseline: Option<PathBuf>,
}

/// Every scenario `all` runs, in the order they start.
const ALL: &[&str] = &[
    "hello",
    "components",
    "inventory",
    "fifty",
    "fleet",
    "origin",
    "golive",
];

/// Runs `cargo xtask bench` with `args`.
pub fn bench(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    if options.scenario == "deploy" {
        run(cargo().args(["build", "--locked", "--release", "--package", "wedge"]))?;
        return deploy::bench(options.rounds);
    }
    if options.scenario == "stream" {
        build_wedge_and_hyper()?;
        return stream::bench(options.rounds);
    }
    if options.scenario == "swaps" {
        wrk::ensure_installed()?;
        run(cargo().args(["build", "--locked", "--release", "--package", "wedge"]))?;
        let modules = root().join(WASM_TARGET_DIR).join("wasm32-wasip1/release");
        return swaps::bench(
            &options.load,
            options.rounds,
            options.baseline.as_deref(),
            &modules,
        );
    }
    let scenarios = scenarios(&options.scenario)?;
    wrk::ensure_installed()?;
    build_wedge_and_hyper()?;
    let mut lineup = Lineup::default();
    let hyper_port = hyper::start(&mut lineup)?;
    // Every server is started (and the inventory seeded) before the first
    // round, so the rounds only measure.
    for scenario in scenarios {
        let baseline = options.baseline.as_deref();
        match *scenario {
            "hello" => hello::start(&mut lineup, baseline)?,
            "components" => components::start(&mut lineup)?,
            "inventory" => inventory::start(&mut lineup, baseline)?,
            "fifty" => fifty::start(&mut lineup)?,
            "fleet" => fleet::start(&mut lineup)?,
            "origin" => origin::start(&mut lineup, hyper_port)?,
            // Not wrk rounds: measured after them, below.
            "golive" => {}
            other => return Err(format!("no scenario {other} to start")),
        }
    }
    lineup.measure(&options.load, options.rounds)?;
    report::print(&lineup);
    drop(lineup);
    if scenarios.contains(&"golive") {
        let modules = root().join(WASM_TARGET_DIR).join("wasm32-wasip1/release");
        golive::bench(&options.load, &modules)?;
    }
    Ok(())
}

/// Builds the release wedge and the raw hyper server it is measured against.
fn build_wedge_and_hyper() -> Result<(), String> {
    run(cargo().args([
        "build",
        "--locked",
        "--release",
        "--package",
        "wedge",
        "--package",
        "hyper-hello",
    ]))
}

/// The scenarios `name` stands for, in the order they start.
fn scenarios(name: &str) -> Result<&'static [&'static str], String> {
    match name {
        "speed" => Ok(&["hello", "golive"]),
        "all" => Ok(ALL),
        one => ALL
            .iter()
            .position(|s| *s == one)
            .map(|i| &ALL[i..=i])
            .ok_or_else(|| {
                format!(
                    "unknown scenario {one} (hello, components, inventory, fifty, fleet, origin, golive, speed, all, deploy, swaps, stream)"
                )
            }),
    }
}

/// Reads `[scenario] [--option value]...`.
fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter().peekable();
    let scenario = match it.next_if(|first| !first.starts_with("--")) {
        Some(first) => first.clone(),
        None => "hello".into(),
    };
    // Deploys are timed one by one, not by wrk: twenty of them by default.
    // `components` judges wedge against another server, whose rounds swing
    // as much as the node's: five rounds give its median room.
    let rounds = match scenario.as_str() {
        "deploy" => 20,
        "components" => 5,
        _ => 3,
    };
    let mut o = Options {
        scenario,
        load: Load {
            duration: "10s".into(),
            connections: "32".into(),
            threads: "2".into(),
        },
        rounds,
        baseline: None,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--duration" => o.load.duration = value,
            "--connections" => o.load.connections = value,
            "--threads" => o.load.threads = value,
            "--baseline" => {
                let path = PathBuf::from(&value);
                if !path.is_file() {
                    return Err(format!("--baseline {value}: no such wedge binary"));
                }
                o.baseline = Some(path);
            }
            "--rounds" => {
                o.rounds = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--rounds needs a positive count, not {value}"))?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests;
