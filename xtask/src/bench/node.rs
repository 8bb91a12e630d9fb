//! A wedge node for a scenario: a release build (or a baseline binary) over
//! the examples, in its own folder under `target/bench`, on free ports,
//! returned once every function serves on optimized code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::admin::wait_optimized;
use super::server::{Server, free_port};
use crate::{lay_out_examples, root};

/// The wedge the bench builds.
pub fn wedge_binary() -> PathBuf {
    root().join("target/release/wedge")
}

/// Starts a release wedge over the examples with `durability`; returns it
/// and its port.
pub fn start_wedge(name: &str, durability: &str) -> Result<(Server, u16), String> {
    start_wedge_with(name, durability, |_| Ok(()))
}

/// Like [`start_wedge`], with `extra` adding to the functions directory first.
pub fn start_wedge_with(
    name: &str,
    durability: &str,
    extra: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_binary(&wedge_binary(), name, durability, extra)
}

/// Starts `binary` as a wedge over the examples, as [`start_wedge_with`] does.
pub fn start_binary(
    binary: &Path,
    name: &str,
    durability: &str,
    extra: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_configured(
        binary,
        name,
        "",
        &format!("durability = \"{durability}\"\n"),
        "",
        extra,
    )
}

/// Starts `binary` over the examples with `server` and `store` lines added to
/// `[server]` and `[store]`, and `tables` appended to `wedge.toml`.
pub fn start_configured(
    binary: &Path,
    name: &str,
    server: &str,
    store: &str,
    tables: &str,
    extra: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_with_admin(binary, name, server, store, tables, extra).map(|(s, port, _)| (s, port))
}

/// Like [`start_configured`]; also returns the admin API's port.
pub fn start_with_admin(
    binary: &Path,
    name: &str,
    server: &str,
    store: &str,
    tables: &str,
    extra: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(Server, u16, u16), String> {
    let port = free_port()?;
    let dir = root().join("target/bench").join(name);
    let _ = std::fs::remove_dir_all(dir.join("data"));
    let config = lay_out_examples(&dir, &format!("127.0.0.1:{port}"))?;
    let admin = free_port()?;
    extra(&dir.join("functions"))?;
    let mut text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    text = text.replace("[store]\n", &format!("[store]\n{store}"));
    text = text.replace("[server]\n", &format!("[server]\n{server}"));
    // Each wedge of the run has its own admin port.
    text.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"));
    text.push_str(tables);
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let server = Server(
        Command::new(binary)
            .arg("serve")
            .arg("-c")
            .arg(&config)
            // Default logging, access events included: what an operator runs.
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start wedge: {e}"))?,
    );
    wait_optimized(&format!("127.0.0.1:{admin}"))?;
    Ok((server, port, admin))
}
