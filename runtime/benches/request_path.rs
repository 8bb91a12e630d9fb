//! The per-request path without HTTP, `cargo bench -p wedge --bench
//! request_path`:
//! - `examples/hello`: build the WAGI environment, instantiate from the
//!   pre-linked module, run `_start`, parse the CGI output;
//! - `examples/http-hello`: instantiate the wasi:http component from its
//!   pre-linked `ProxyPre`, call `handle`, read the response it sets.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wedge::config::Durability;
use wedge::control::catalogue::module;
use wedge::guest::engine::WasmEngine;
use wedge::host::outbound::wit::Outgoing;
use wedge::host::outbound::{OutboundCtx, RequestOutbound};
use wedge::host::stdio::GuestLog;
use wedge::host::store::KvCtx;
use wedge::node::function::{Handler, Settings, Version};
use wedge::request::run_component::{self, HttpInvocation};
use wedge::request::run_wagi::{self, Invocation};
use wedge::request::upload::RequestBody;
use wedge::request::wagi::{self, RequestInfo};
use wedge::store::sled::SledBackend;
use wedge::telemetry::Telemetry;

/// The allocator the `wedge` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = WasmEngine::new(64).unwrap();
    let bytes = std::fs::read(wedge_test_harness::examples::HELLO).unwrap();
    let compiled = module::compile(&engine, &bytes, wedge::guest::engine::Tier::Optimized).unwrap();
    let telemetry = Arc::new(Telemetry::default());
    let version = Version {
        label: "v1".into(),
        sha256: module::sha256_hex(&bytes),
        short_sha: "bench".into(),
        size: bytes.len() as u64,
        compiled,
        stats: telemetry.version("hello", "v1"),
    };
    let settings = Settings {
        timeout: Duration::from_secs(5),
        memory: 64 << 20,
        max_response: 16 << 20,
        max_stream: Duration::ZERO,
        stream_idle: Duration::from_secs(30),
        stream_request: false,
        kv: vec!["hello".to_string()].into(),
        env: Vec::new().into(),
        outbound: None,
    };
    let store_dir = tempfile::tempdir().unwrap();
    let kv = Arc::new(
        SledBackend::open(
            store_dir.path(),
            Durability::Periodic,
            Duration::from_secs(1),
        )
        .unwrap(),
    );
    let (parts, ()) = http::Request::get("/hello")
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "wrk")
        .body(())
        .unwrap()
        .into_parts();
    let (function, label, id): (Arc<str>, Arc<str>, Arc<str>) =
        ("hello".into(), "v1".into(), "bench".into());

    c.bench_function("hello: environment, instantiate, run, parse", |b| {
        b.iter(|| {
            let info = RequestInfo {
                parts: &parts,
                route: "/hello",
                peer: "127.0.0.1:50000".parse().unwrap(),
                local: "127.0.0.1:8080".parse().unwrap(),
                tls: false,
                body_len: 0,
                function: &function,
                version: &label,
                request_id: &id,
            };
            let invocation = Invocation {
                env: wagi::environment(&info, &settings.env),
                args: wagi::arguments(&parts),
                stdin: Bytes::new(),
                log: GuestLog::new(function.clone(), label.clone(), id.clone()),
                deadline: tokio::time::Instant::now() + settings.timeout,
                kv: KvCtx::new(kv.clone(), settings.kv.clone(), telemetry.clone()),
                outbound: OutboundCtx::new(RequestOutbound {
                    client: None,
                    function: function.clone(),
                    telemetry: telemetry.clone(),
                    deadline: tokio::time::Instant::now() + settings.timeout,
                }),
            };
            let Handler::Wagi(code) = &version.compiled.handler else {
                unreachable!("hello is a WAGI module")
            };
            let (response, _) = runtime.block_on(run_wagi::run(
                &engine,
                (code, version.compiled.tier),
                &settings,
                invocation,
            ));
            black_box(response.unwrap().body)
        })
    });

    let bytes = std::fs::read(wedge_test_harness::examples::HTTP_HELLO).unwrap();
    let compiled = module::compile(&engine, &bytes, wedge::guest::engine::Tier::Optimized).unwrap();
    let Handler::Http(pre) = &compiled.handler else {
        unreachable!("http-hello is a wasi:http component")
    };
    c.bench_function("http-hello: instantiate, handle, read the response", |b| {
        b.iter(|| {
            let deadline = tokio::time::Instant::now() + settings.timeout;
            let invocation = HttpInvocation {
                request: http::Request::get("http://127.0.0.1:8080/http-hello?name=edge")
                    .header("host", "127.0.0.1:8080")
                    .header("user-agent", "wrk")
                    .body(RequestBody::Whole(http_body_util::Full::new(Bytes::new())))
                    .unwrap(),
                upload: None,
                log: GuestLog::new(function.clone(), label.clone(), id.clone()),
                deadline,
                outgoing: Outgoing::new(RequestOutbound {
                    client: None,
                    function: function.clone(),
                    telemetry: telemetry.clone(),
                    deadline,
                }),
                kv: KvCtx::new(kv.clone(), settings.kv.clone(), telemetry.clone()),
            };
            let (response, _) = runtime.block_on(run_component::run(
                &engine,
                (pre, compiled.tier),
                &settings,
                invocation,
            ));
            black_box(response.unwrap().body)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = request_path
}
criterion_main!(benches);
