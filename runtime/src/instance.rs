//! One request's run of a guest: a fresh `Store` from the pre-linked module, its
//! limits and deadline, its entry point (`_start`, or a reactor's
//! `wedge_handle`), and what the run came to.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wasmtime::{PoolConcurrencyLimitError, Store};
use wasmtime_wasi::I32Exit;

use crate::engine::{Host, Tier, WasmEngine};
use crate::function::{Settings, WagiCode};
use crate::guest_io::{CStrings, GuestIo};
use crate::kv::KvCtx;
use crate::limits::{GuestLimits, MemoryCapExceeded};
use crate::outbound::OutboundCtx;
use crate::stdio::{GuestLog, ResponseBuffer, ResponseTooLarge};
use crate::telemetry::TrapKind;
use crate::wagi::{self, GuestResponse, MalformedResponse};

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

/// Why a run produced no response to send.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The guest trapped, ran out of time or memory, or exited non-zero.
    #[error("guest {}: {message}", kind.as_str())]
    Failed {
        /// What kind of failure.
        kind: TrapKind,
        /// Details for the log.
        message: String,
    },
    /// The guest's output is not a CGI response.
    #[error("malformed guest response: {0}")]
    Malformed(#[from] MalformedResponse),
    /// The guest wrote more than `max_response`.
    #[error(transparent)]
    TooLarge(#[from] ResponseTooLarge),
    /// A component sent no complete response: it set none, or its body
    /// broke off.
    #[error("no response: {0}")]
    NoResponse(String),
    /// No instance slot was free.
    #[error("no instance slot free: {0}")]
    Capacity(String),
}

/// Where the time of a run went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// Creating the instance.
    pub instantiate: Duration,
    /// Running `_start`, outbound calls included.
    pub guest: Duration,
    /// Waiting on outbound calls.
    pub outbound: Duration,
}

/// Runs a WAGI module, whose code is of `tier`, for one request in a fresh instance.
pub async fn run(
    engine: &WasmEngine,
    (compiled, tier): (&WagiCode, Tier),
    settings: &Settings,
    inv: Invocation,
) -> (Result<GuestResponse, RunError>, Timing) {
    let io = GuestIo {
        args: inv.args,
        env: inv.env,
        stdin: inv.stdin,
        stdin_read: 0,
        stdout: ResponseBuffer::new(settings.max_response),
        stderr: inv.log,
        memory: None,
        initializing: false,
    };
    let mut store = Store::new(
        engine.engine_for(tier),
        Host::new(io, GuestLimits::new(settings.memory), inv.kv, inv.outbound),
    );
    store.limiter(|host| &mut host.limits);
    // Every tick the guest yields to the executor; the timeout below does the rest.
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);

    let mut timing = Timing::default();
    let started = Instant::now();
    let outcome = tokio::time::timeout_at(inv.deadline, async {
        let instance = compiled.pre.instantiate_async(&mut store).await?;
        timing.instantiate = started.elapsed();
        // The WASI calls reach guest memory through this handle rather than
        // looking the export up by name on every call.
        store.data_mut().io.memory = compiled
            .memory
            .as_ref()
            .and_then(|m| instance.get_module_export(&mut store, m))
            .and_then(|e| e.into_memory());
        let entry = instance
            .get_module_export(&mut store, &compiled.entry)
            .and_then(|e| e.into_func())
            .ok_or_else(|| wasmtime::format_err!("the module's entry point is not a function"))?
            .typed::<(), ()>(&store)?;
        entry.call_async(&mut store, ()).await
    })
    .await;
    timing.guest = started.elapsed().saturating_sub(timing.instantiate);
    let host = store.into_data();
    timing.outbound = host.outbound.spent();
    let memory_exceeded = host.limits.exceeded();
    let overflowed = host.io.stdout.overflowed();
    let output = host.io.stdout.into_bytes();

    let result = match outcome {
        Err(_elapsed) => Err(RunError::Failed {
            kind: TrapKind::Timeout,
            message: format!("no response within {:?}", settings.timeout),
        }),
        Ok(Ok(())) => finish(output),
        Ok(Err(error)) => {
            if overflowed {
                Err(RunError::TooLarge(ResponseTooLarge {
                    cap: settings.max_response,
                }))
            } else if let Some(exit) = error.downcast_ref::<I32Exit>() {
                classify_exit(exit.0, output)
            } else {
                Err(failure(&error, memory_exceeded))
            }
        }
    };
    (result, timing)
}

/// What a guest's error (a trap, the memory cap, no instance slot) comes to,
/// in either handler format.
pub fn failure(error: &wasmtime::Error, memory_exceeded: bool) -> RunError {
    if memory_exceeded || error.is::<MemoryCapExceeded>() {
        RunError::Failed {
            kind: TrapKind::Memory,
            message: one_line(error),
        }
    } else if error.is::<PoolConcurrencyLimitError>() {
        RunError::Capacity(one_line(error))
    } else {
        RunError::Failed {
            kind: TrapKind::Trap,
            message: one_line(error),
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

/// The cause of a trap on one line, without the wasm backtrace wasmtime attaches.
fn one_line(error: &wasmtime::Error) -> String {
    error.root_cause().to_string().replace('\n', " ")
}
