//! Another server of the same wasi:http component, for the `components`
//! scenario: wasmtime's own `wasmtime serve`, installed from crates.io
//! (`wasmtime-cli`, the same wasmtime release wedge embeds) when it is
//! missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::server::{Server, free_port};
use crate::{cargo, root, run};

/// The wasmtime CLI release compared with: the one wedge embeds.
const WASMTIME_CLI: &str = "48.0.8";

/// The `wasmtime` binary: `$WASMTIME` when set, else the one `cargo install`
/// put under `target/wasmtime-cli`, installed now if it is not there (a
/// first install compiles wasmtime: about 15 minutes on two cores).
pub fn cli() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return Ok(path.into());
    }
    let install = root().join("target/wasmtime-cli");
    let binary = install.join("bin/wasmtime");
    let wanted = format!("wasmtime {WASMTIME_CLI}");
    let installed = Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with(&wanted));
    if !installed {
        eprintln!("xtask: installing wasmtime-cli {WASMTIME_CLI} from crates.io (once)");
        run(cargo()
            .args(["install", "--locked", "wasmtime-cli", "--version"])
            .arg(format!("={WASMTIME_CLI}"))
            .arg("--root")
            .arg(&install))?;
    }
    Ok(binary)
}

/// `wasmtime serve` of `component` on a free port: with the WASI CLI
/// imports a Rust component brings (`-S cli`), and with wasmtime's pooling
/// allocator when `pooling`. Returns the server and the URL to load.
pub fn serve(wasmtime: &Path, component: &Path, pooling: bool) -> Result<(Server, String), String> {
    let port = free_port()?;
    let mut cmd = Command::new(wasmtime);
    cmd.arg("serve")
        .arg(format!("--addr=127.0.0.1:{port}"))
        .args(["-S", "cli"]);
    if pooling {
        cmd.args(["-O", "pooling-allocator"]);
    }
    let child = cmd
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", wasmtime.display()))?;
    Ok((
        Server(child),
        format!("http://127.0.0.1:{port}/http-hello?name=edge"),
    ))
}
