//! Pre-initialized snapshots of reactor handlers.
//!
//! A reactor handler exports [`HANDLER`] (and usually `_initialize`) instead
//! of `_start`. wedge runs its `_initialize` once, when the module loads, and
//! snapshots the result with `wasmtime-wizer`, the engine's own
//! pre-initializer: the memory and globals after initialization become the
//! module's data. Every request then instantiates that snapshot
//! (copy-on-write) and calls [`HANDLER`] under the WAGI contract, so a
//! runtime's start-up (Go's, a C library's constructors) is paid once per
//! load instead of once per request.
//!
//! Initialization runs without a request. The environment and argv are empty,
//! reading stdin or writing stdout traps (that is the request and the
//! response), and every function of the `wedge` module traps (stores and
//! origins belong to requests). Clocks and random work; whatever the
//! initializer draws from them is in the snapshot, the same for every
//! request.

use wasmparser::{ExternalKind, Parser, Payload};
use wasmtime::{Caller, Engine, Instance, Linker, Module, Store, Val};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::config::MAX_MEMORY;
use crate::host::limits::GuestLimits;
use crate::host::stdio::{GuestLog, Stdout};
use crate::host::wasip1::{CStrings, GuestIo};

/// The export a reactor handler serves each request with: `() -> ()`.
pub const HANDLER: &str = "wedge_handle";

/// The export that initializes a reactor, run once before the snapshot.
pub const INITIALIZE: &str = "_initialize";

/// The export a WASI command runs per request.
pub const START: &str = "_start";

/// How a module serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A WASI command: `_start` runs per request.
    Command,
    /// A reactor: [`HANDLER`] runs per request, after `_initialize` (if it
    /// exports one) ran once at load.
    Reactor {
        /// Whether it exports `_initialize`, which must run before a snapshot.
        initialize: bool,
    },
    /// Neither: no way to serve a request.
    Neither,
}

impl Shape {
    /// The shape of the module in `bytes`, from its export section. A
    /// module that exports `_start` is a command even if it also exports
    /// [`HANDLER`].
    pub fn of(bytes: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        let (mut start, mut handler, mut initialize) = (false, false, false);
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export?;
                        if export.kind == ExternalKind::Func {
                            match export.name {
                                START => start = true,
                                HANDLER => handler = true,
                                INITIALIZE => initialize = true,
                                _ => {}
                            }
                        }
                    }
                }
                Payload::CodeSectionStart { .. } => break,
                _ => {}
            }
        }
        Ok(match (start, handler) {
            (true, _) => Shape::Command,
            (false, true) => Shape::Reactor { initialize },
            (false, false) => Shape::Neither,
        })
    }

    /// What `wedge check` calls it.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Command => "WASI command (`_start` per request)",
            Shape::Reactor { initialize: true } => {
                "reactor (`_initialize` once at load, snapshotted; `wedge_handle` per request)"
            }
            Shape::Reactor { initialize: false } => "reactor (`wedge_handle` per request)",
            Shape::Neither => "neither a command nor a reactor",
        }
    }
}

/// Why initialization did not produce a snapshot.
#[derive(Debug, thiserror::Error)]
#[error("pre-initializing the reactor failed: {0}")]
pub struct InitError(pub String);

/// The state of the one instance that runs `_initialize`.
struct InitHost {
    io: GuestIo,
    wasi: WasiP1Ctx,
    limits: GuestLimits,
}

/// Runs a reactor's `_initialize` and returns the snapshot: a module with the
/// initialized memory and globals as its data and no `_initialize` export.
/// The code that runs it comes from the first of `engines` that compiles the
/// module (Winch first: initialization runs once, so a quick compile beats
/// quick code). Runs guest code to completion (no deadline): call it where a
/// runaway initializer can be stopped, as the compile child is.
pub fn snapshot(engines: &[&Engine], wasm: &[u8]) -> Result<Vec<u8>, InitError> {
    let fail = |e: wasmtime::Error| InitError(format!("{e:#}").replace('\n', " "));
    let mut wizer = Wizer::new();
    wizer.init_func(INITIALIZE);
    let (cx, instrumented) = wizer.instrument(wasm).map_err(fail)?;
    let mut compiled = Err(InitError("no engine to initialize with".into()));
    for engine in engines {
        compiled = Module::new(engine, &instrumented).map_err(fail);
        if compiled.is_ok() {
            break;
        }
    }
    let module = compiled?;
    let engine = module.engine().clone();
    let engine = &engine;
    let linker = init_linker(engine, &module).map_err(fail)?;
    let host = InitHost {
        io: GuestIo {
            args: CStrings::default(),
            env: CStrings::default(),
            stdin: bytes::Bytes::new(),
            stdin_read: 0,
            stdout: Stdout::new(0),
            stderr: GuestLog::new("init".into(), "init".into(), "init".into()),
            memory: None,
            initializing: true,
        },
        wasi: WasiCtxBuilder::new().build_p1(),
        limits: GuestLimits::new(MAX_MEMORY.as_usize()),
    };
    // Guest calls are async (the host functions are); a thread of its own
    // with a runtime of its own makes this callable from anywhere.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| InitError(format!("cannot start a runtime: {e}")))?;
                runtime.block_on(async {
                    let mut store = Store::new(engine, host);
                    store.limiter(|host| &mut host.limits);
                    // The compile child's timeout bounds initialization.
                    store.set_epoch_deadline(u64::MAX / 2);
                    let instance = linker
                        .instantiate_async(&mut store, &module)
                        .await
                        .map_err(fail)?;
                    let init = instance
                        .get_typed_func::<(), ()>(&mut store, INITIALIZE)
                        .map_err(fail)?;
                    init.call_async(&mut store, ()).await.map_err(|e| {
                        InitError(format!(
                            "`_initialize` failed: {}",
                            e.root_cause().to_string().replace('\n', " ")
                        ))
                    })?;
                    wizer
                        .snapshot(&cx, &mut Snapshotting { store, instance })
                        .await
                        .map_err(fail)
                })
            })
            .join()
            .map_err(|_| InitError("initialization panicked".into()))?
    })
}

/// WASI, the request's calls in their initializing form, and every `wedge`
/// function the module imports as a trap that says why.
fn init_linker(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<InitHost>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut InitHost| &mut h.wasi)?;
    crate::host::wasip1::add_to_linker(&mut linker, |h: &mut InitHost| &mut h.io)?;
    for import in module.imports() {
        if import.module() != "wedge" {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        let name = import.name().to_string();
        linker.func_new(
            "wedge",
            import.name(),
            ty,
            move |_: Caller<'_, InitHost>, _: &[Val], _: &mut [Val]| {
                Err(wasmtime::format_err!(
                    "`wedge::{name}` was called during initialization: stores and \
                     origins are there only while the handler serves a request"
                ))
            },
        )?;
    }
    Ok(linker)
}

/// What wizer reads the initialized state through.
struct Snapshotting {
    store: Store<InitHost>,
    instance: Instance,
}

impl InstanceState for Snapshotting {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut self.store, name)
            .expect("wizer names only globals it exported");
        match global.get(&mut self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("wizer refuses globals of type {:?}", other.ty(&self.store)),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut self.store, name)
            .expect("wizer names only memories it exported");
        contents(memory.data(&self.store))
    }
}
