//! Real etcd members for the tests of the etcd store: each on free loopback
//! ports with its own data directory, killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster may take to elect its first leader.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One member: its name, ports and process.
struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
    process: Option<Child>,
}

/// A cluster of etcd members on this machine.
pub struct EtcdCluster {
    members: Vec<Member>,
    initial: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl EtcdCluster {
    /// Starts `size` members and waits until they have a leader. Elections
    /// are tuned short (50 ms heartbeats, 500 ms election timeout), so a
    /// killed leader is replaced within about a second.
    pub fn start(size: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wedge-etcd-")
            .tempdir()
            .unwrap();
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                data: dir.path().join(format!("m{i}")),
                process: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members,
            initial,
            _dir: dir,
        };
        for i in 0..size {
            cluster.start_member(i);
        }
        cluster.wait_leader();
        cluster
    }

    fn start_member(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::File::create(m.data.with_extension("log")).unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data)
            .arg(format!("--listen-client-urls=http://{}", m.client))
            .arg(format!("--advertise-client-urls=http://{}", m.client))
            .arg(format!("--listen-peer-urls=http://{}", m.peer))
            .arg(format!("--initial-advertise-peer-urls=http://{}", m.peer))
            .arg(format!("--initial-cluster={}", self.initial))
            .args([
                "--initial-cluster-state=new",
                "--initial-cluster-token=wedge-test",
            ])
            .args(["--heartbeat-interval=50", "--election-timeout=500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run etcd ({e}); install it: apt-get install etcd-server")
            });
        self.members[i].process = Some(child);
    }

    /// The client endpoints, as `[cluster] etcd` takes them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}", m.client))
            .collect()
    }

    /// `[cluster]` and `[store]` lines for a wedge node called `node`.
    pub fn cluster_table(&self, node: &str) -> String {
        let endpoints: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!(
            "[cluster]\nnode = \"{node}\"\netcd = [{}]\nprefix = \"/wedge-test\"\n",
            endpoints.join(", ")
        )
    }

    /// The index of the member that is leader now, as the running members see it.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().enumerate().find_map(|(i, m)| {
            m.process.as_ref()?;
            let status = post_json(m.client, "/v3/maintenance/status")?;
            let member = json_field(&status, "member_id")?;
            let leader = json_field(&status, "leader")?;
            (member == leader).then_some(i)
        })
    }

    /// Waits until some member is leader.
    pub fn wait_leader(&self) -> usize {
        let start = Instant::now();
        loop {
            if let Some(i) = self.leader() {
                return i;
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "etcd elected no leader in {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every member: etcd is gone.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_member(i);
    }

    /// Starts every stopped member again and waits for a leader.
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].process.is_none() {
                self.start_member(i);
            }
        }
        self.wait_leader();
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// POSTs `{}` to etcd's JSON gateway; the response body, if any came.
fn post_json(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200")
        .then(|| out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))?
}

/// The string value of `"name":"..."` in a JSON text.
fn json_field(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}
