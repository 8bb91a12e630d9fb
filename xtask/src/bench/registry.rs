//! Distribution, an OCI registry, on this machine: where the `deploy`
//! scenario's fleet pushes modules and compiled code.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::http::get_body;
use super::server::{Server, free_port};
use crate::root;

/// Starts Distribution on a free port over `target/bench/registry`; returns
/// it and its address.
pub fn start() -> Result<(Server, String), String> {
    let dir = root().join("target/bench/registry");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot run docker-registry ({e}): apt-get install docker-registry")
        })?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_body(&addr, "/v2/").map(|(status, _)| status) != Some(200) {
        if Instant::now() > deadline {
            return Err("the registry did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((server, addr))
}
