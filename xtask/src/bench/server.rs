//! The processes a bench run starts (wedge nodes, hyper, etcd members, a
//! registry, `wasmtime serve`), each killed when dropped, and the free ports
//! they listen on.

use std::net::TcpListener;
use std::process::Child;

/// Kills the server when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
