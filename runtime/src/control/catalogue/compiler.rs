//! Compiling modules in a child process: `wedge compile-module` reads the wasm
//! on stdin and writes wasmtime's compiled code to stdout, which is a file in
//! the module cache, with Winch for the quick baseline code a new module
//! serves from first or with Cranelift for the optimized code that replaces
//! it (see [`Tier`]).
//!
//! A compile cannot be interrupted inside Cranelift, but a process can be
//! killed: a compile that runs past `functions.compile_timeout` is abandoned
//! that way, and nothing it did remains; so is one whose module no function
//! names any more (a version replaced while it compiled). An optimized
//! compile runs only on idle cores; the baseline compile a new version waits
//! for runs a few nice levels below the serving threads, a guaranteed share
//! of the CPU, so a node at full load still takes a fix in bounded time. The memory the compiler uses is
//! the child's and goes with it, so a big or hostile module costs the node
//! no resident memory afterwards. At most
//! [`Compiler::slots`] compiles run at once (more wait for a slot); each
//! function's compile is independent of the others'.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::control::catalogue::LoadError;
use crate::guest::engine::Tier;

/// The hidden subcommand of the `wedge` binary that compiles one module.
pub const SUBCOMMAND: &str = "compile-module";

/// Exit status of the child when the module itself is invalid (as opposed to
/// the compiler failing).
pub const EXIT_INVALID: i32 = 2;

/// Exit status of the child when a reactor's `_initialize` failed; stderr's
/// last line says why.
pub const EXIT_INIT: i32 = 3;

/// How often a running compile asks whether it is still wanted.
const RECHECK: Duration = Duration::from_millis(250);

/// Most bytes of the child's stderr kept for the error message.
const MAX_STDERR: usize = 16 << 10;

/// Runs compiles in child processes.
pub struct Compiler {
    /// The `wedge` binary, started as `wedge compile-module`.
    exe: PathBuf,
    /// Baseline compiles running at once: apart from the optimized ones, so
    /// a queue of slow compiles never holds up a new module's quick one.
    baseline_slots: Arc<Semaphore>,
    /// Optimized compiles running at once.
    slots: Arc<Semaphore>,
    /// How long one compile may take.
    timeout: Duration,
}

impl Compiler {
    /// Compiles with `exe compile-module`, at most `slots` at once per tier,
    /// each within `timeout`.
    pub fn new(exe: PathBuf, slots: usize, timeout: Duration) -> Self {
        Self {
            exe,
            baseline_slots: Arc::new(Semaphore::new(slots.max(1))),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            timeout,
        }
    }

    /// How many compiles may run at once: two per core, and at least four,
    /// so a few long compiles never hold up every other function. Optimized
    /// compiles run at idle priority, so serving goes first however many
    /// there are.
    pub fn slots() -> usize {
        std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
    }

    /// Compiles `wasm` to `tier`'s code into the file `dest`, and a reactor's
    /// snapshot into `snapshot_out` when given. On any error both are removed.
    /// `go_on` says whether the compile is still wanted: asked once a slot is
    /// free, and every [`RECHECK`] while the child runs. When it says no,
    /// nothing runs or the child is killed, and the result is
    /// [`LoadError::Superseded`].
    pub async fn compile(
        &self,
        wasm: Arc<[u8]>,
        dest: &Path,
        tier: Tier,
        snapshot_out: Option<&Path>,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), LoadError> {
        let slots = match tier {
            Tier::Baseline => &self.baseline_slots,
            Tier::Optimized => &self.slots,
        };
        let _slot = slots
            .acquire()
            .await
            .map_err(|_| LoadError::Compiler("the compiler is shutting down".into()))?;
        if !go_on() {
            let _ = std::fs::remove_file(dest);
            return Err(LoadError::Superseded);
        }
        let result = self.run(wasm, dest, tier, snapshot_out, go_on).await;
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
            if let Some(path) = snapshot_out {
                let _ = std::fs::remove_file(path);
            }
        }
        result
    }

    async fn run(
        &self,
        wasm: Arc<[u8]>,
        dest: &Path,
        tier: Tier,
        snapshot_out: Option<&Path>,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), LoadError> {
        let failed = |what: &str, e: std::io::Error| LoadError::Compiler(format!("{what}: {e}"));
        let out = std::fs::File::create(dest).map_err(|e| failed("cannot create the output", e))?;
        let mut command = Command::new(&self.exe);
        command.arg(SUBCOMMAND);
        if tier == Tier::Baseline {
            command.arg("--baseline");
        }
        if let Some(path) = snapshot_out {
            command.arg("--snapshot-out").arg(path);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(&format!("cannot start {}", self.exe.display()), e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let feed = tokio::spawn(async move {
            // A child that dies early closes its end; its status says why.
            let _ = stdin.write_all(&wasm).await;
        });
        let mut stderr = child.stderr.take().expect("piped");
        let read_stderr = tokio::spawn(async move {
            // The end of what it says, where the error is; the rest is drained
            // so the child never blocks on a full pipe.
            let mut kept = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > MAX_STDERR {
                    kept.drain(..kept.len() - MAX_STDERR);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        let now = tokio::time::Instant::now();
        let deadline = now + self.timeout;
        let mut recheck = tokio::time::interval_at(now + RECHECK, RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = loop {
            tokio::select! {
                status = child.wait() => {
                    break Ok(status.map_err(|e| failed("cannot wait for the compiler", e))?);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    break Err(LoadError::CompileTimeout(self.timeout));
                }
                _ = recheck.tick() => {
                    if !go_on() {
                        break Err(LoadError::Superseded);
                    }
                }
            }
        };
        let status = match stopped {
            Ok(status) => status,
            Err(e) => {
                let _ = child.kill().await;
                feed.abort();
                read_stderr.abort();
                return Err(e);
            }
        };
        let _ = feed.await;
        let message = read_stderr.await.unwrap_or_default();
        let message = message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        match status.code() {
            Some(0) => {
                let synced = std::fs::File::open(dest).and_then(|f| f.sync_all());
                synced.map_err(|e| failed("cannot sync the compiled module", e))
            }
            Some(EXIT_INVALID) => Err(LoadError::Invalid(message)),
            Some(EXIT_INIT) => Err(LoadError::Init(message)),
            Some(code) => Err(LoadError::Compiler(format!(
                "exited with status {code}: {message}"
            ))),
            None => Err(LoadError::Compiler(format!(
                "the compiler process died ({status})"
            ))),
        }
    }
}
