//! What one bench run measures: the servers it started, the targets wrk
//! loads in every round (the raw hyper hello-world first), the pairs of
//! targets compared with each other, and the rounds themselves.

use std::path::PathBuf;

use super::server::Server;
use super::wrk::{Figures, Load, wrk_all};

/// One thing wrk measures, and its figures from each round. A target of
/// several nodes is measured by one wrk per node at once, the connections
/// split between them, and its figures added up.
pub struct Target {
    pub name: String,
    pub urls: Vec<String>,
    pub script: Option<PathBuf>,
    pub rounds: Vec<Figures>,
}

/// The servers and targets of a run; the servers are killed when it is
/// dropped.
#[derive(Default)]
pub struct Lineup {
    servers: Vec<Server>,
    pub targets: Vec<Target>,
    /// Pairs of targets compared with each other as well as with hyper.
    pub versus: Vec<(usize, usize)>,
}

impl Lineup {
    /// Keeps `server` running until the lineup is dropped.
    pub fn keep(&mut self, server: Server) {
        self.servers.push(server);
    }

    /// Adds a target of one URL; returns its index.
    pub fn add(&mut self, name: &str, url: String, script: Option<PathBuf>) -> usize {
        self.add_fleet(name, vec![url], script)
    }

    /// Adds a target of several nodes, loaded at once; returns its index.
    pub fn add_fleet(&mut self, name: &str, urls: Vec<String>, script: Option<PathBuf>) -> usize {
        self.targets.push(Target {
            name: name.into(),
            urls,
            script,
            rounds: Vec::new(),
        });
        self.targets.len() - 1
    }

    /// Compares target `a` with target `b` in the report.
    pub fn compare(&mut self, a: usize, b: usize) {
        self.versus.push((a, b));
    }

    /// Runs `rounds` rounds, each measuring every target in turn with `load`,
    /// printing each round's requests per second.
    pub fn measure(&mut self, load: &Load, rounds: usize) -> Result<(), String> {
        println!(
            "wrk -t{} -c{} -d{}, {} rounds, each measuring every target in turn \
             (same run, same machine: {} cores)",
            load.threads,
            load.connections,
            load.duration,
            rounds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        for round in 1..=rounds {
            let mut line = format!("round {round}:");
            for target in &mut self.targets {
                let figures = wrk_all(load, &target.urls, target.script.as_deref())?;
                line.push_str(&format!(" {:.0}", figures.requests_per_sec));
                target.rounds.push(figures);
            }
            println!("{line}");
        }
        Ok(())
    }
}
