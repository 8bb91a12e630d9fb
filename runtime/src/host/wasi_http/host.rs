//! One request's store data for a wasi:http component.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::log::LogPipe;
use crate::host::limits::GuestLimits;
use crate::host::outbound::wit::{Outgoing, Sent};
use crate::host::stdio::GuestLog;
use crate::host::store::KvCtx;
use crate::host::store::wit::{KvHost, KvView};

/// Host resources (headers, bodies, streams, pollables, buckets) one
/// request may hold at once: each is host memory outside the guest's cap.
/// A handler holds a few dozen.
pub const MAX_RESOURCES: usize = 1024;

/// Largest header field a component may create: with [`MAX_RESOURCES`],
/// what its header maps can hold at most is 16 MiB.
pub const MAX_FIELD_SIZE: usize = 16 << 10;

/// A component's outgoing body is handed over in chunks of at most this
/// many bytes, one buffered at a time.
const BODY_CHUNK: usize = 64 << 10;

/// Per-request state inside a component's `Store`.
pub struct ProxyHost {
    /// WASI's context, built on the first call that needs it: a handler
    /// that reads no environment and prints nothing never pays for it.
    wasi: Option<WasiCtx>,
    env: Arc<[(String, String)]>,
    /// The request's log, until WASI's context takes it for stdout and stderr.
    log: Option<GuestLog>,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Hooks,
    /// The memory cap of the function being served.
    pub limits: GuestLimits,
    /// The key-value stores the function may open.
    kv: KvCtx,
    /// Buckets and swap handles open now.
    kv_handles: u32,
}

impl KvHost for ProxyHost {
    fn kv_view(&mut self) -> KvView<'_> {
        KvView {
            kv: &mut self.kv,
            handles: &mut self.kv_handles,
            table: &mut self.table,
        }
    }
}

impl ProxyHost {
    /// The state of one request: the function's static environment, its
    /// memory cap, the log its stdout and stderr go to, its stores, and its
    /// way out. No
    /// directory is opened and every socket address is refused; a component
    /// reaches the network through `wasi:http/outgoing-handler` alone.
    pub fn new(
        env: Arc<[(String, String)]>,
        limits: GuestLimits,
        log: GuestLog,
        kv: KvCtx,
        outgoing: Outgoing,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi: None,
            env,
            log: Some(log),
            table,
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELD_SIZE);
                http
            },
            hooks: Hooks { outgoing },
            limits,
            kv,
            kv_handles: 0,
        }
    }

    /// Time spent in outbound calls so far.
    pub fn outbound_spent(&self) -> std::time::Duration {
        self.hooks.outgoing.spent()
    }

    /// The resource table, where the request, the response and their bodies live.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for ProxyHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (env, log) = (&self.env, &mut self.log);
        let ctx = self.wasi.get_or_insert_with(|| {
            let pipe = LogPipe::new(log.take().expect("taken once, with the context"));
            WasiCtxBuilder::new()
                .envs(env)
                .stdout(pipe.clone())
                .stderr(pipe)
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// `wasi:io` (streams, pollables, errors) needs only the resource table, not
/// the WASI context (see [`super::link`]).
impl wasmtime_wasi_io::IoView for ProxyHost {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiHttpView for ProxyHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// How `wasi:http` reaches beyond the component.
struct Hooks {
    outgoing: Outgoing,
}

impl WasiHttpHooks for Hooks {
    /// Through the function's `outbound` list and pool ([`Outgoing`]), under
    /// the component's own timeouts (`request-options`) where they are
    /// shorter than the node's.
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<Sent>> + Send> {
        Box::new(self.outgoing.send(request, options))
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }
}
