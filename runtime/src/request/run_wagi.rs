//! One request's run of a guest: a fresh `Store` from the pre-linked module, its
//! limits and deadline, its entry point (`_start`, or a reactor's
//! `wedge_handle`), and what the run came to: a whole response, or one that
//! streams while the guest goes on writing.

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wasmtime::{Store, TypedFunc};
use wasmtime_wasi::I32Exit;

use crate::guest::engine::{Host, Tier, WasmEngine};
use crate::host::limits::GuestLimits;
use crate::host::outbound::OutboundCtx;
use crate::host::stdio::{GuestLog, ResponseTooLarge, Stdout};
use crate::host::store::KvCtx;
use crate::host::wasip1::{CStrings, GuestIo};
use crate::node::function::{Settings, WagiCode};
use crate::request::outcome::{
    GuestResponse, MalformedResponse, RunError, Source, Timing, failure,
};
use crate::request::stream::{self, Running};
use crate::request::wagi;
use crate::telemetry::TrapKind;

/// Everything the guest gets for one request.
pub struct Invocation {
    /// The guest's environment.
    pub env: CStrings,
    /// The guest's argv.
    pub args: CStrings,
    /// The request body, read on stdin.
    pub stdin: Bytes,
    /// Tags the guest's stderr lines.
    pub log: GuestLog,
    /// When the request's time is up.
    pub deadline: Instant,
    /// The key-value stores the function may open.
    pub kv: KvCtx,
    /// The request's calls to its origins.
    pub outbound: OutboundCtx,
}

/// What the guest's run came to, its store gone.
struct WagiEnd {
    result: wasmtime::Result<()>,
    memory_exceeded: bool,
    outbound: Duration,
}

/// How far the run got before the request path answers.
enum Phase {
    /// The guest ended: the response is whole.
    Ended(WagiEnd),
    /// The guest waits with a header block written: the response streams.
    Head(Result<usize, MalformedResponse>),
    /// The request's time ran out first.
    TimedOut,
}

/// Runs a WAGI module, whose code is of `tier`, for one request in a fresh
/// instance. A guest that ends before it waits on anything gets its whole
/// stdout sent in one write; one that waits (a sleep, an outbound call, a
/// client that is behind) with its header block written streams the rest.
pub async fn run(
    engine: &WasmEngine,
    (compiled, tier): (&WagiCode, Tier),
    settings: &Settings,
    inv: Invocation,
) -> (Result<GuestResponse, RunError>, Timing) {
    let stdout = Stdout::new(settings.max_response);
    let io = GuestIo {
        args: inv.args,
        env: inv.env,
        stdin: inv.stdin,
        stdin_read: 0,
        stdout: stdout.clone(),
        stderr: inv.log,
        memory: None,
        initializing: false,
    };
    let mut store = Store::new(
        engine.engine_for(tier),
        Host::new(io, GuestLimits::new(settings.memory), inv.kv, inv.outbound),
    );
    store.limiter(|host| &mut host.limits);
    // Every tick the guest yields to the executor; the deadline does the rest.
    let yielded = stream::yield_at_ticks(&mut store);

    let mut timing = Timing::default();
    let started = Instant::now();
    let timed_out = || RunError::timed_out(settings.timeout);
    let entry = match tokio::time::timeout_at(inv.deadline, instantiate(compiled, &mut store)).await
    {
        Ok(Ok(entry)) => entry,
        Ok(Err(e)) => return (Err(failure(&e, store.data().limits.exceeded())), timing),
        Err(_elapsed) => return (Err(timed_out()), timing),
    };
    timing.instantiate = started.elapsed();

    let mut running = Running::new(
        Box::pin(async move {
            let result = entry.call_async(&mut store, ()).await;
            let host = store.into_data();
            WagiEnd {
                result,
                memory_exceeded: host.limits.exceeded(),
                outbound: host.outbound.spent(),
            }
        }),
        yielded,
    );
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(inv.deadline));
    let phase = std::future::poll_fn(|cx| {
        if let Poll::Ready(end) = running.poll(cx) {
            return Poll::Ready(Phase::Ended(end));
        }
        if let Some(head) = stdout.peek(wagi::head_len)
            && (head.is_err() || running.head_due())
        {
            return Poll::Ready(Phase::Head(head));
        }
        deadline.as_mut().poll(cx).map(|()| Phase::TimedOut)
    })
    .await;
    timing.guest = started.elapsed().saturating_sub(timing.instantiate);

    let result = match phase {
        Phase::TimedOut => Err(timed_out()),
        Phase::Head(Err(malformed)) => Err(malformed.into()),
        Phase::Head(Ok(len)) => wagi::parse_response(stdout.take(len))
            .map(|mut response| {
                response.body = stdout.take_all();
                response.stream = Some(Box::new(WagiSource {
                    running: Some(running),
                    stdout,
                    failure: None,
                }));
                response
            })
            .map_err(RunError::from),
        Phase::Ended(end) => {
            timing.outbound = end.outbound;
            let output = stdout.take_all();
            match end_of(end, &stdout) {
                End::Exit(code) => classify_exit(code, output),
                End::Failed(failed) => Err(failed),
            }
        }
    };
    (result, timing)
}

/// Creates the instance and finds its entry point.
async fn instantiate(
    compiled: &WagiCode,
    store: &mut Store<Host>,
) -> wasmtime::Result<TypedFunc<(), ()>> {
    let instance = compiled.pre.instantiate_async(&mut *store).await?;
    // The WASI calls reach guest memory through this handle rather than
    // looking the export up by name on every call.
    store.data_mut().io.memory = compiled
        .memory
        .as_ref()
        .and_then(|m| instance.get_module_export(&mut *store, m))
        .and_then(|e| e.into_memory());
    instance
        .get_module_export(&mut *store, &compiled.entry)
        .and_then(|e| e.into_func())
        .ok_or_else(|| wasmtime::format_err!("the module's entry point is not a function"))?
        .typed::<(), ()>(&*store)
}

/// How a run ended, its store gone.
enum End {
    /// It returned (as `exit(0)`) or exited with this status.
    Exit(i32),
    /// It failed: a trap, its memory cap, output past `max_response`.
    Failed(RunError),
}

/// What `end` came to, the output having gone to `stdout`.
fn end_of(end: WagiEnd, stdout: &Stdout) -> End {
    let Err(error) = end.result else {
        return End::Exit(0);
    };
    if stdout.overflowed() {
        return End::Failed(RunError::TooLarge(ResponseTooLarge { cap: stdout.cap() }));
    }
    match error.downcast_ref::<I32Exit>() {
        Some(I32Exit(code)) => End::Exit(*code),
        None => End::Failed(failure(&error, end.memory_exceeded)),
    }
}

/// The rest of a WAGI module's stdout, as the guest writes it.
struct WagiSource {
    running: Option<Running<WagiEnd>>,
    stdout: Stdout,
    failure: Option<RunError>,
}

impl Source for WagiSource {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RunError>>> {
        // Set once the guest has paused in this poll: what it wrote before
        // pausing is taken once more, then the poll ends.
        let mut paused = false;
        loop {
            // What the guest wrote goes first, even from a guest that then failed.
            let held = self.stdout.take_all();
            if !held.is_empty() {
                return Poll::Ready(Some(Ok(held)));
            }
            if paused {
                return Poll::Pending;
            }
            let Some(running) = self.running.as_mut() else {
                return Poll::Ready(self.failure.take().map(Err));
            };
            match running.poll(cx) {
                Poll::Ready(end) => {
                    self.running = None;
                    // After the head, any exit but `exit(0)` cuts the stream.
                    self.failure = match end_of(end, &self.stdout) {
                        End::Exit(0) => None,
                        End::Exit(code) => Some(RunError::Failed {
                            kind: TrapKind::Exit,
                            message: format!(
                                "exited with status {code} in the middle of its response"
                            ),
                        }),
                        End::Failed(failed) => Some(failed),
                    };
                }
                Poll::Pending => paused = true,
            }
        }
    }
}

fn finish(output: Bytes) -> Result<GuestResponse, RunError> {
    Ok(wagi::parse_response(output)?)
}

/// `exit(0)` is a normal end; a non-zero exit is a failure unless the guest
/// already wrote a complete response.
fn classify_exit(code: i32, output: Bytes) -> Result<GuestResponse, RunError> {
    if code == 0 {
        return finish(output);
    }
    wagi::parse_response(output).map_err(|_| RunError::Failed {
        kind: TrapKind::Exit,
        message: format!("exited with status {code} without a response"),
    })
}
