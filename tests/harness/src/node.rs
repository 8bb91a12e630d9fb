//! A running `wedge serve` process with its own directory, address and log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a node may take to compile its functions and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Sets up a node's files before starting it.
pub struct NodeBuilder {
    binary: PathBuf,
    dir: tempfile::TempDir,
    server: Vec<String>,
    store: Vec<String>,
    functions: Vec<String>,
    tables: Vec<String>,
    extra_args: Vec<String>,
    token: Option<String>,
    wrapper: Vec<String>,
    in_its_directory: bool,
}

impl NodeBuilder {
    /// A node run from `binary` (pass `env!("CARGO_BIN_EXE_wedge")`).
    pub fn new(binary: &str) -> Self {
        Self {
            binary: binary.into(),
            dir: tempfile::Builder::new()
                .prefix("wedge-e2e-")
                .tempdir()
                .unwrap(),
            server: Vec::new(),
            store: Vec::new(),
            functions: Vec::new(),
            tables: Vec::new(),
            extra_args: Vec::new(),
            token: None,
            wrapper: Vec::new(),
            in_its_directory: false,
        }
    }

    /// Runs `wedge serve` as a new user does: in the node's directory, with
    /// no `-c`, so it reads `./wedge.toml` and every path in it is relative
    /// to the working directory.
    pub fn in_its_directory(mut self) -> Self {
        self.in_its_directory = true;
        self
    }

    /// Adds a `key = value` line to `[functions]`.
    pub fn functions_setting(mut self, line: &str) -> Self {
        self.functions.push(line.to_string());
        self
    }

    /// Appends a whole table to `wedge.toml`, such as `[server.per_ip]` with its keys.
    pub fn table(mut self, text: &str) -> Self {
        self.tables.push(text.to_string());
        self
    }

    /// Starts the binary through `program args...`, which must end by running
    /// its last argument list (`unshare ... sh -c '...; exec "$@"' sh`, say):
    /// the node's command line is appended.
    pub fn wrapper(mut self, program_and_args: &[&str]) -> Self {
        self.wrapper = program_and_args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The node's directory, before it starts (to write certificates, say).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a `key = value` line to `[server]` (the listener is always `127.0.0.1:0`).
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_string());
        self
    }

    /// Adds an argument after `serve -c <config>`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    /// Installs `wasm` as `functions/<name>/v1.wasm`.
    pub fn function(self, name: &str, wasm: &str) -> Self {
        self.version(name, "v1", wasm)
    }

    /// Installs `wasm` as `functions/<name>/<label>.wasm`.
    pub fn version(self, name: &str, label: &str, wasm: &str) -> Self {
        let dir = self.functions_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(wasm, dir.join(format!("{label}.wasm"))).unwrap();
        self
    }

    /// Installs example `name` as `functions/<name>/v1.wasm`, with the
    /// `function.toml` it ships in `examples/<name>/`.
    pub fn example(self, name: &str) -> Self {
        let wasm = crate::examples::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no example {name}"))
            .1;
        let toml = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name)
            .join("function.toml");
        let builder = self.function(name, wasm);
        match std::fs::read_to_string(toml) {
            Ok(text) => builder.function_toml(name, &text),
            Err(_) => builder,
        }
    }

    /// Protects the admin API with `token` (written to a token file).
    pub fn admin_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Adds a line to `[store]`.
    pub fn store(mut self, line: &str) -> Self {
        self.store.push(line.to_string());
        self
    }

    /// Writes `functions/<name>/function.toml`.
    pub fn function_toml(self, name: &str, toml: &str) -> Self {
        let dir = self.functions_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("function.toml"), toml).unwrap();
        self
    }

    /// The functions directory the node will serve.
    pub fn functions_dir(&self) -> PathBuf {
        self.dir.path().join("functions")
    }

    /// Writes `wedge.toml` and the functions directory; returns the config's path.
    pub fn write_config(&self) -> PathBuf {
        let config_path = self.dir.path().join("wedge.toml");
        let mut config = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
        for line in &self.server {
            config += line;
            config.push('\n');
        }
        config += "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        if let Some(token) = &self.token {
            std::fs::write(self.dir.path().join("admin.token"), format!("{token}\n")).unwrap();
            config += "token_file = \"admin.token\"\n";
        }
        config += "\n[store]\n";
        for line in &self.store {
            config += line;
            config.push('\n');
        }
        config += "\n[functions]\n";
        for line in &self.functions {
            config += line;
            config.push('\n');
        }
        for table in &self.tables {
            config.push('\n');
            config += table;
            config.push('\n');
        }
        std::fs::write(&config_path, config).unwrap();
        std::fs::create_dir_all(self.functions_dir()).unwrap();
        config_path
    }

    /// Starts the node and waits until it reports ready.
    pub fn start(self) -> Node {
        let node = self.start_serving();
        node.wait_until_nothing_pending();
        node
    }

    /// Starts the node and returns once it serves, while functions the
    /// module cache lacked may still be compiling.
    pub fn start_serving(self) -> Node {
        self.write_config();
        let mut node = Node {
            process: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            token: self.token,
            log: Arc::new(Log::default()),
            binary: self.binary,
            args: self.extra_args,
            wrapper: self.wrapper,
            in_its_directory: self.in_its_directory,
            dir: self.dir,
        };
        node.spawn();
        node
    }
}

/// Pulls `name=value` out of a text log line or `"name":"value"` out of a JSON one.
pub fn field(line: &str, name: &str) -> Option<String> {
    if let Some(i) = line.find(&format!("\"{name}\":")) {
        let rest = line[i + name.len() + 3..].trim_start_matches('"');
        let end = rest.find(['"', ',', '}']).unwrap_or(rest.len());
        return Some(rest[..end].to_string());
    }
    let i = line.find(&format!(" {name}="))?;
    let rest = &line[i + name.len() + 2..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// A running node; killed when dropped.
pub struct Node {
    process: Option<Child>,
    addr: SocketAddr,
    admin: SocketAddr,
    pub(crate) token: Option<String>,
    log: Arc<Log>,
    binary: PathBuf,
    args: Vec<String>,
    wrapper: Vec<String>,
    in_its_directory: bool,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts the binary on this node's directory and waits until it is ready.
    fn spawn(&mut self) {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        command.arg("serve");
        match self.in_its_directory {
            true => command.current_dir(self.dir.path()),
            false => command.arg("-c").arg(self.dir.path().join("wedge.toml")),
        };
        let mut child = command
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start wedge");
        let log = Arc::new(Log::default());
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    log.push(line);
                }
                log.close();
            });
        }
        let ready = log
            .wait_for(START_TIMEOUT, |l| l.contains("wedge ready"))
            .unwrap_or_else(|| panic!("wedge did not become ready; log:\n{}", log.text()));
        let addr = field(&ready, "addr").expect("ready line names the address");
        self.addr = addr.parse().expect("address");
        let admin = log
            .wait_for(START_TIMEOUT, |l| l.contains("admin ready"))
            .and_then(|l| field(&l, "addr"))
            .expect("admin address logged");
        self.admin = admin.parse().expect("admin address");
        self.log = log;
        self.process = Some(child);
    }

    /// Waits until `/readyz` says no function is still compiling before it
    /// first serves: the node serves at once, and each function goes live
    /// when it is compiled.
    pub fn wait_until_nothing_pending(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + START_TIMEOUT;
        let auth = match &self.token {
            Some(t) => format!("Authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(self.admin) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let request = format!(
                    "GET /readyz HTTP/1.1\r\nHost: wedge\r\n{auth}Connection: close\r\n\r\n"
                );
                last.clear();
                if s.write_all(request.as_bytes()).is_ok() && s.read_to_string(&mut last).is_ok() {
                    if last.contains("\npending: 0\n") {
                        return;
                    }
                    // A node whose readiness says nothing of pending
                    // functions (an earlier build) is as ready as it gets.
                    if !last.contains("pending: ") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("functions still compiling after {START_TIMEOUT:?}: {last}");
    }

    fn child(&mut self) -> &mut Child {
        self.process.as_mut().expect("the node is running")
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill(&mut self) {
        let child = self.child();
        child.kill().unwrap();
        child.wait().unwrap();
        self.process = None;
    }

    /// Starts the node again on the same directory (after [`kill`](Self::kill)
    /// or an exit); its address may change.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
        self.wait_until_nothing_pending();
    }

    /// The public listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin API's listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Runs the `wedge` CLI pointed at this node's admin API (with its token).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .env("WEDGE_ADMIN", format!("http://{}", self.admin))
            .env_remove("WEDGE_ADMIN_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = &self.token {
            cmd.env("WEDGE_ADMIN_TOKEN", token);
        }
        cmd.output().expect("cannot run the wedge CLI")
    }

    /// The node's directory (config, functions, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().clone()
    }

    /// Waits for a log line matching `pred`.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.log.wait_for_from(0, timeout, pred)
    }

    /// Waits for a matching log line among those after the first `seen` (from
    /// [`log_lines`](Self::log_lines)`().len()`).
    pub fn wait_for_log_after(
        &self,
        seen: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.log.wait_for_from(seen, timeout, pred)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.process.as_ref().expect("running").id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child().try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").id()
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the node is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Waits for the process to exit; panics with the end of its log if it does not.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(status) => status,
            None => {
                let lines = self.log_lines();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                panic!("wedge did not exit within {timeout:?}; last log lines:\n{tail}");
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child().try_wait().unwrap().is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Log {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.changed.notify_all();
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_for_from(0, timeout, pred)
    }

    fn wait_for_from(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        let mut seen = from.min(lines.len());
        loop {
            if let Some(l) = lines[seen..].iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            seen = lines.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }
}
