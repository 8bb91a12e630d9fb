//! A three-member etcd cluster on this machine, for the nodes of the `fleet`
//! and `deploy` scenarios.

use std::process::{Command, Stdio};

use super::server::{Server, free_port};
use crate::root;

/// Starts three etcd members in `target/bench/etcd`, on free ports; returns
/// them and their client endpoints.
pub fn start() -> Result<(Vec<Server>, Vec<String>), String> {
    let dir = root().join("target/bench/etcd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_, String>>()?;
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let child = Command::new("etcd")
            .arg(format!("--name=m{i}"))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("m{i}")).display()
            ))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster={initial}"))
            .args(["--initial-cluster-state=new", "--log-level=warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run etcd ({e}): apt-get install etcd-server"))?;
        members.push(Server(child));
    }
    let endpoints: Vec<String> = ports
        .iter()
        .map(|(client, _)| format!("http://127.0.0.1:{client}"))
        .collect();
    Ok((members, endpoints))
}
