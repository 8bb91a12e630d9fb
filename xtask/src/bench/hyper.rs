//! The raw hyper hello-world (`bench/hyper-hello`), the baseline every
//! target is measured against, and the origin of the `origin` scenario.

use std::process::{Command, Stdio};

use super::lineup::Lineup;
use super::server::{Server, free_port};
use super::wrk::wait_ready;
use crate::root;

/// Starts the release hyper-hello on a free port as the lineup's first
/// target; returns its port.
pub fn start(lineup: &mut Lineup) -> Result<u16, String> {
    let (server, port) = spawn()?;
    lineup.keep(server);
    let url = format!("http://127.0.0.1:{port}/");
    wait_ready(&url)?;
    lineup.add("raw hyper hello", url, None);
    Ok(port)
}

/// Starts the release hyper-hello on a free port; returns it and its port.
pub fn spawn() -> Result<(Server, u16), String> {
    let port = free_port()?;
    let server = Server(
        Command::new(root().join("target/release/hyper-hello"))
            .arg(format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start hyper-hello: {e}"))?,
    );
    Ok((server, port))
}
