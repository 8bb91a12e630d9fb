//! The wasmtime engine and the single linker every handler is instantiated against.
//!
//! One [`Engine`] per compiler tier per process (Winch's baseline code and
//! Cranelift's optimized code, see [`Tier`]): the pooling allocator with
//! copy-on-write memory images, epoch interruption driven by a ticker thread,
//! and async support so a guest runs right on the hyper task that serves its
//! request. Host interfaces are added to the linkers here and nowhere else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, OptLevel, PoolingAllocationConfig,
    Strategy,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::config::MAX_MEMORY;
use crate::host::limits::GuestLimits;
use crate::host::outbound::{self, OutboundCtx};
use crate::host::store::{self, KvCtx};
use crate::host::wasi_http::{self, ProxyHost};
use crate::host::wasip1::{self, GuestIo};

/// How often the epoch advances. A running guest yields to the async executor at
/// every tick, so a busy guest holds a worker thread for at most this long.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instance slots kept beyond `max_inflight`, so the admission limit, not the
/// pool, is what turns requests away.
const POOL_HEADROOM: u32 = 16;

/// Core instances (and tables) pooled per request slot: a component is
/// several (Rust's wasi:http hello 3, componentize-js's 4, componentize-py's 14).
const CORE_INSTANCES_PER_SLOT: u32 = 16;

/// Linear memories pooled per request slot: a component may have more than one.
const MEMORIES_PER_SLOT: u32 = 2;

/// Most core instances (and tables) one component may have; one with more
/// is refused at load rather than taking the pool's slots from every other
/// request.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Most linear memories one component may have.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

/// Per-request state inside a wasmtime `Store`.
pub struct Host {
    /// argv, environment and standard streams, served by [`guest_io`].
    pub io: GuestIo,
    /// wasmtime-wasi's context for every other WASI call, built on the first.
    wasi: Option<WasiP1Ctx>,
    /// The memory cap of the function being served.
    pub limits: GuestLimits,
    /// The key-value stores this request may open.
    pub kv: KvCtx,
    /// The request's calls to its origins.
    pub outbound: OutboundCtx,
}

impl Host {
    /// The state of one request.
    pub fn new(io: GuestIo, limits: GuestLimits, kv: KvCtx, outbound: OutboundCtx) -> Self {
        Self {
            io,
            wasi: None,
            limits,
            kv,
            outbound,
        }
    }

    /// wasmtime-wasi's context: no preopens, stdin closed, stdout and stderr
    /// discarded (the calls that reach a request's streams are [`guest_io`]'s).
    fn wasi(&mut self) -> &mut WasiP1Ctx {
        self.wasi
            .get_or_insert_with(|| WasiCtxBuilder::new().build_p1())
    }
}

/// Which compiler produced a module's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch, wasmtime's baseline compiler: a module compiles in a fraction
    /// of Cranelift's time into slower code. A new module serves from it
    /// while Cranelift works.
    Baseline,
    /// Cranelift, wasmtime's optimizing compiler: what the module cache holds.
    Optimized,
}

impl Tier {
    /// The tier's name in logs and `wedge compile-module --tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

/// The process-wide engines and linkers, one per [`Tier`] (code from one
/// compiler does not load into the other's engine), plus the epoch ticker
/// that drives both engines' deadlines.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<Host>,
    /// Built when the first component loads: a node serving only WAGI
    /// modules does not hold (or, in a debug build, page in) the few
    /// hundred WASI 0.2 host functions.
    components: OnceLock<component::Linker<ProxyHost>>,
    baseline: Engine,
    baseline_linker: Linker<Host>,
    baseline_components: OnceLock<component::Linker<ProxyHost>>,
    ticker_stop: Arc<AtomicBool>,
}

impl WasmEngine {
    /// Builds the engines, each with room for `max_inflight` concurrent instances.
    pub fn new(max_inflight: u32) -> anyhow::Result<Self> {
        let (engine, linker) = serving_engine(Tier::Optimized, max_inflight)?;
        let (baseline, baseline_linker) = serving_engine(Tier::Baseline, max_inflight)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker([engine.clone(), baseline.clone()], ticker_stop.clone())?;
        Ok(Self {
            engine,
            linker,
            components: OnceLock::new(),
            baseline,
            baseline_linker,
            baseline_components: OnceLock::new(),
            ticker_stop,
        })
    }

    /// The engine of optimized code: the module cache's.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine of `tier`'s code.
    pub fn engine_for(&self, tier: Tier) -> &Engine {
        match tier {
            Tier::Baseline => &self.baseline,
            Tier::Optimized => &self.engine,
        }
    }

    /// The linker holding every host interface a handler may import, for
    /// code of `tier`.
    pub fn linker(&self, tier: Tier) -> &Linker<Host> {
        match tier {
            Tier::Baseline => &self.baseline_linker,
            Tier::Optimized => &self.linker,
        }
    }

    /// The linker holding every interface a wasi:http component may
    /// import, for code of `tier`; built on first use.
    pub fn component_linker(&self, tier: Tier) -> wasmtime::Result<&component::Linker<ProxyHost>> {
        let (cell, engine) = match tier {
            Tier::Baseline => (&self.baseline_components, &self.baseline),
            Tier::Optimized => (&self.components, &self.engine),
        };
        if let Some(linker) = cell.get() {
            return Ok(linker);
        }
        let mut linker = component::Linker::new(engine);
        wasi_http::add_to_linker(&mut linker)?;
        Ok(cell.get_or_init(|| linker))
    }
}

/// One tier's serving engine and its WAGI linker.
fn serving_engine(tier: Tier, max_inflight: u32) -> anyhow::Result<(Engine, Linker<Host>)> {
    let slots = max_inflight.saturating_add(POOL_HEADROOM);
    let mut pool = PoolingAllocationConfig::new();
    // A component instance is several core instances (a language runtime,
    // its WASI adapter, shims), usually with two memories and a few tables.
    // A slot of each kind is a reservation of address space, not memory.
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_SLOT))
        .total_memories(slots.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(slots.saturating_mul(CORE_INSTANCES_PER_SLOT))
        .total_stacks(slots)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_tables_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_memory_size(MAX_MEMORY.as_usize())
        // Resetting the start of each slot by scanning the page map for dirty
        // pages avoids madvise and page faults on every request. A Rust guest's
        // 1 MiB stack grows down from 1 MiB with the heap above it, so the pages
        // a request dirties lie in the first 2 MiB: measured 31 µs of CPU per
        // hello request at 2 MiB against 37 µs at 128 KiB.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut config = compile_config(tier);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;

    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, Host::wasi)?;
    wasip1::add_to_linker(&mut linker, |host: &mut Host| &mut host.io)?;
    store::add_to_linker(&mut linker, |host: &mut Host| &mut host.kv)?;
    outbound::wasip1::add_to_linker(&mut linker, |host: &mut Host| &mut host.outbound)?;
    Ok((engine, linker))
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The code-generation settings of `tier`, which every engine of wedge for
/// that tier shares: the serving engine, and the compiling one in `wedge
/// compile-module`, whose output the serving engine loads. wasmtime refuses
/// compiled code whose settings differ.
fn compile_config(tier: Tier) -> Config {
    let mut config = Config::new();
    config.memory_init_cow(true).epoch_interruption(true);
    match tier {
        // Winch compiles the functions; Cranelift still compiles the
        // trampoline through which the host calls each function a guest's
        // table holds, 7,000 of them in a Go module. Unoptimized, those
        // take less time: a 7 MB Go reactor's baseline compile took 0.95 s
        // of CPU instead of 1.05 s.
        Tier::Baseline => {
            config
                .strategy(Strategy::Winch)
                .cranelift_opt_level(OptLevel::None);
        }
        // Explicit bounds checks instead of guard pages: a guest's memory then
        // grows without an `mprotect`, and the next instance in its slot
        // needs none to shrink it back. With guard pages every request of a
        // guest whose allocator grows memory (wasi-libc's does, on its first
        // malloc) made two, each a TLB shootdown across the serving threads'
        // cores: a C hello took 33 µs per request at 31k req/s, and 8 µs at
        // 46k req/s without (`wrk -t1 -c4`, one core's worth of load).
        // Winch needs signals-based traps, and its code serves only briefly.
        Tier::Optimized => {
            config.signals_based_traps(false).memory_guard_size(0);
        }
    }
    config
}

/// An engine that only compiles `tier`'s code, for `wedge compile-module`:
/// its output loads into that tier's serving engine of [`WasmEngine::new`].
pub fn compiling_engine(tier: Tier) -> anyhow::Result<Engine> {
    let mut config = compile_config(tier);
    config.parallel_compilation(true);
    Ok(Engine::new(&config)?)
}

fn spawn_epoch_ticker(engines: [Engine; 2], stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("wedge-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                for engine in &engines {
                    engine.increment_epoch();
                }
            }
        })?;
    Ok(())
}
