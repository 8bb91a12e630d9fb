//! One request's run of a guest: a fresh `Store` from the pre-linked module, its
//! limits and deadline, its entry point (`_start`, or a reactor's
//! `wedge_handle`), and what the run came to.

use bytes::Bytes;
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime_wasi::I32Exit;

use crate::guest::engine::{Host, Tier, WasmEngine};
use crate::host::limits::GuestLimits;
use crate::host::outbound::OutboundCtx;
use crate::host::stdio::{GuestLog, ResponseBuffer, ResponseTooLarge};
use crate::host::store::KvCtx;
use crate::host::wasip1::{CStrings, GuestIo};
use crate::node::function::{Settings, WagiCode};
use crate::request::outcome::{GuestResponse, RunError, Timing, failure};
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
