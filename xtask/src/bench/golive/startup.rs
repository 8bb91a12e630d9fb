//! Start-up with [`FUNCTIONS`] functions: first none compiled, then all
//! cached, with the idle process's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::timing::{READ_TIMEOUT, ms, wait_for};
use crate::bench::http::{get, status};
use crate::bench::server::{Server, free_port};
use crate::root;

/// Functions in the start-up scenario.
const FUNCTIONS: usize = 1000;

/// A node over [`FUNCTIONS`] distinct hello modules.
struct Node {
    wedge: PathBuf,
    config: PathBuf,
    addr: String,
    admin: String,
}

/// Starts wedge over [`FUNCTIONS`] copies of `hello`, none compiled, then
/// again with all cached; returns a line for each start.
pub fn measure(wedge: &Path, hello: &[u8]) -> Result<Vec<String>, String> {
    let node = lay_out(wedge, hello)?;
    println!("start-up with {FUNCTIONS} distinct functions:");
    let uncompiled = node.uncompiled()?;
    let cached = node.cached()?;
    Ok(vec![uncompiled, cached])
}

/// Writes the functions, each a distinct copy of `hello`, and the node's
/// `wedge.toml` under `target/bench/startup`.
fn lay_out(wedge: &Path, hello: &[u8]) -> Result<Node, String> {
    let dir = root().join("target/bench/startup");
    let _ = std::fs::remove_dir_all(&dir);
    let functions = dir.join("functions");
    for i in 0..FUNCTIONS {
        let f = functions.join(format!("f{i:04}"));
        std::fs::create_dir_all(&f).map_err(|e| e.to_string())?;
        std::fs::write(f.join("v1.wasm"), wedge_wasmgen::padded(hello, i as u32, 0))
            .map_err(|e| e.to_string())?;
    }
    let (port, admin) = (free_port()?, free_port()?);
    let config = dir.join("wedge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[functions]\ndir = \"functions\"\n\n[store]\ndir = \"data\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(Node {
        wedge: wedge.to_path_buf(),
        config,
        addr: format!("127.0.0.1:{port}"),
        admin: format!("127.0.0.1:{admin}"),
    })
}

impl Node {
    /// Starts the node; returns it and when it started.
    fn start(&self) -> Result<(Server, Instant), String> {
        let started = Instant::now();
        let child = Command::new(&self.wedge)
            .arg("serve")
            .arg("-c")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start wedge: {e}"))?;
        Ok((Server(child), started))
    }

    /// Whether the admin API says every function serves.
    fn all_ready(&self) -> bool {
        get(&self.admin, "/readyz?all=1", READ_TIMEOUT).and_then(|r| status(&r)) == Some(200)
    }

    /// The first start, nothing compiled: to the first request served, to
    /// every function serving and to every function on optimized code.
    fn uncompiled(&self) -> Result<String, String> {
        let (server, started) = self.start()?;
        let first = wait_for(
            "the first request",
            started,
            Duration::from_millis(1),
            || get(&self.addr, "/f0000", READ_TIMEOUT).and_then(|r| status(&r)) == Some(200),
        )?;
        let all = wait_for("every function", started, Duration::from_millis(10), || {
            self.all_ready()
        })?;
        let optimized_all = wait_for(
            "optimized code",
            started,
            Duration::from_millis(200),
            || {
                get(&self.admin, "/v1/functions", READ_TIMEOUT)
                    .is_some_and(|b| b.matches("\"tier\":\"optimized\"").count() == FUNCTIONS)
            },
        )?;
        drop(server);
        Ok(format!(
            "{FUNCTIONS} uncompiled: first request served after {:.0} ms, all serving after {:.0} ms, all on optimized code after {:.0} ms",
            ms(first),
            ms(all),
            ms(optimized_all)
        ))
    }

    /// A restart with every function cached: to every function serving, and
    /// the idle process's RSS and anonymous RSS.
    fn cached(&self) -> Result<String, String> {
        let (server, started) = self.start()?;
        let ready = wait_for("every function", started, Duration::from_millis(1), || {
            self.all_ready()
        })?;
        if get(&self.addr, "/f0999", READ_TIMEOUT).and_then(|r| status(&r)) != Some(200) {
            return Err("f0999 does not serve after the restart".into());
        }
        std::thread::sleep(Duration::from_secs(1));
        let status_file = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
            .map_err(|e| e.to_string())?;
        let kib = |field: &str| {
            status_file
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        drop(server);
        Ok(format!(
            "{FUNCTIONS} cached: all serving after {:.0} ms; idle RSS {:.0} MiB, of it anonymous {:.0} MiB",
            ms(ready),
            kib("VmRSS:") as f64 / 1024.0,
            kib("RssAnon:") as f64 / 1024.0
        ))
    }
}
