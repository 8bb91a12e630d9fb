//! A real OCI registry for the fleet tests: Distribution, as Debian ships it
//! (`docker-registry`), on a free loopback port with its own storage, killed
//! when dropped.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the registry may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A registry on this machine.
pub struct OciRegistry {
    addr: SocketAddr,
    config: std::path::PathBuf,
    process: Option<Child>,
    _dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts a registry and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wedge-registry-")
            .tempdir()
            .unwrap();
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut registry = Self {
            addr,
            config,
            process: None,
            _dir: dir,
        };
        registry.restart();
        registry
    }

    /// `[cluster]` lines naming this registry (plain HTTP).
    pub fn cluster_lines(&self) -> String {
        format!(
            "registry = \"{}/wedge\"\nregistry_insecure = true\n",
            self.addr
        )
    }

    /// Stops the registry; its storage stays.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Starts the registry again over the same storage and waits for it.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run docker-registry ({e}); install it: apt-get install docker-registry"
                )
            });
        self.process = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.answers() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut out = String::new();
        stream.write_all(req.as_bytes()).is_ok()
            && stream.read_to_string(&mut out).is_ok()
            && out.starts_with("HTTP/1.1 200")
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}
