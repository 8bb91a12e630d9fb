//! wasi:http components beside WAGI modules: served through
//! `wasi:http/incoming-handler`, under the same limits, log and rollouts, and
//! refused at load when they import beyond the allowed worlds.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, Origin, examples, guests};

use crate::node;

/// The Rust hello written against wasi:http, as `wasmtime serve` runs it,
/// serves unchanged; `wedge check` names its format and lists its interfaces.
#[tokio::test(flavor = "multi_thread")]
pub async fn wasi_http_hello_serves_unchanged() {
    let n = node().example("http-hello").example("hello").start();
    let reply = n.get("/http-hello?name=edge").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello, edge, from a wasi:http component\n");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.header("x-wedge-version"), Some("v1"));
    assert!(reply.header("x-request-id").is_some());
    // The WAGI example beside it is untouched.
    assert_eq!(n.get("/hello?name=edge").await.status, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", examples::HTTP_HELLO])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("format: wasi-http"), "{stdout}");
    assert!(stdout.contains("wasi:http/types@0.2"), "{stdout}");
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", examples::HELLO])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("format: wagi"));
}

/// The probe with a 1 s timeout, 32 MiB of memory, a 64 KiB response cap
/// and an environment variable.
fn probe() -> Node {
    node()
        .function("p", guests::HTTP_PROBE)
        .function_toml(
            "p",
            "timeout = \"1s\"\nmemory = \"32MiB\"\nmax_response = \"64KiB\"\n\n[env]\nGREETING = \"hi from function.toml\"\n",
        )
        .start()
}

/// A component sees the request as the client sent it: method, absolute
/// URI, headers and body; and the function's environment.
#[tokio::test(flavor = "multi_thread")]
pub async fn http_probe() {
    let n = probe();
    let reply = n
        .send(
            Method::POST,
            "/p/echo?x=1",
            &[("x-custom", "yes")],
            Bytes::from_static(b"the body"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("method: Method::Post"), "{text}");
    assert!(text.contains("scheme: Some(Scheme::Http)"), "{text}");
    assert!(
        text.contains(&format!("uri: {}/p/echo?x=1", n.addr())),
        "{text}"
    );
    assert!(text.contains("header: x-custom: yes"), "{text}");
    assert!(text.contains("body: the body"), "{text}");
    assert_eq!(reply.header("x-probe"), Some("echo"));

    let env = n.get("/p?do=env&name=GREETING").await;
    assert_eq!(env.text(), "hi from function.toml");

    // stdout and stderr go to the log, tagged with the request.
    let logged = n.get("/p?do=log").await;
    assert_eq!(logged.status, 200);
    let id = logged.header("x-request-id").unwrap().to_string();
    for line in ["probe stdout line", "probe stderr line"] {
        let found = n
            .wait_for_log(Duration::from_secs(5), |l| l.contains(line))
            .unwrap_or_else(|| panic!("{line} logged"));
        assert!(found.contains(&id), "{found}");
    }
}

/// Every way a component can fail gets the same answer a WAGI handler's
/// failure gets, and the node serves on.
#[tokio::test(flavor = "multi_thread")]
pub async fn component_failures_are_contained() {
    let n = probe();
    let cases = [
        ("trap", 500),
        ("error", 500),
        ("half", 500),
        ("nothing", 502),
        ("dropped", 502),
        ("unfinished", 502),
        ("big&kib=65", 502),
        ("grow", 500),
        ("hoard", 500),
        ("spin", 504),
    ];
    for (what, status) in cases {
        let started = Instant::now();
        let reply = n.get(&format!("/p?do={what}")).await;
        assert_eq!(reply.status, status, "do={what}: {}", reply.text());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "do={what} took {:?}",
            started.elapsed()
        );
    }
    // Just under the cap is fine.
    let big = n.get("/p?do=big&kib=63").await;
    assert_eq!(big.status, 200);
    assert_eq!(big.body.len(), 63 << 10);
    for kind in [
        "kind=memory",
        "kind=timeout",
        "kind=no_response",
        "kind=too_large",
    ] {
        n.wait_for_log(Duration::from_secs(5), |l| l.contains(kind))
            .unwrap_or_else(|| panic!("{kind} logged"));
    }
    assert_eq!(n.get("/p/echo").await.status, 200, "still serving");
}

/// What `wedge check` says of `module`, which it must refuse.
fn refused_by_check(module: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .arg("check")
        .arg(module)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{} passed wedge check",
        module.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A component that imports an interface outside the allowed worlds is
/// refused at load with the import named, by `wedge check`, by an upload and
/// from the functions directory; one without a handler export likewise.
#[tokio::test(flavor = "multi_thread")]
pub async fn component_beyond_the_allowed_worlds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let forbidden = dir.path().join("forbidden.wasm");
    std::fs::write(
        &forbidden,
        wat::parse_str(
            r#"(component
                 (import "wasi:cli/stdout@0.2.6" (instance))
                 (import "wasi:config/store@0.2.0-draft" (instance)))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let no_handler = dir.path().join("no-handler.wasm");
    std::fs::write(
        &no_handler,
        wat::parse_str(r#"(component (import "wasi:cli/stdout@0.2.6" (instance)))"#).unwrap(),
    )
    .unwrap();

    let stderr = refused_by_check(&forbidden);
    assert!(
        stderr.contains("forbidden import `wasi:config/store@0.2.0-draft`"),
        "{stderr}"
    );
    let stderr = refused_by_check(&no_handler);
    assert!(
        stderr.contains("does not export `wasi:http/incoming-handler`"),
        "{stderr}"
    );

    let future = dir.path().join("future.wasm");
    std::fs::write(
        &future,
        wat::parse_str(r#"(component (import "wasi:http/types@0.3.0" (instance)))"#).unwrap(),
    )
    .unwrap();
    let stderr = refused_by_check(&future);
    assert!(
        stderr.contains("import `wasi:http/types@0.3.0`: wedge serves WASI 0.2.x"),
        "{stderr}"
    );

    let n = node()
        .admin_token("s3cret")
        .example("http-hello")
        .function("evil", forbidden.to_str().unwrap())
        .start();
    let line = n
        .wait_for_log(Duration::from_secs(10), |l| l.contains("forbidden import"))
        .expect("load error logged");
    assert!(line.contains("wasi:config/store@0.2.0-draft"), "{line}");
    assert!(line.contains("evil"), "{line}");
    assert_eq!(n.get("/evil").await.status, 503);

    let upload = n
        .admin(
            Method::PUT,
            "/v1/functions/http-hello/versions/v2",
            Some("s3cret"),
            Bytes::from(std::fs::read(&forbidden).unwrap()),
        )
        .await;
    assert_eq!(upload.status, 422, "{}", upload.text());
    assert!(
        upload.text().contains("wasi:config/store@0.2.0-draft"),
        "{}",
        upload.text()
    );
    let reply = n.get("/http-hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-wedge-version"), Some("v1"));
}

/// A canary may change format: a WAGI v1 and a component v2 at 10 %
/// split 7–13 % of 2000 requests, and `wedge status` shows both formats.
#[tokio::test(flavor = "multi_thread")]
pub async fn canary_from_wagi_to_component_splits() {
    let b = node()
        .version("f", "v1", examples::HELLO)
        .version("f", "v2", examples::HTTP_HELLO);
    std::fs::write(
        b.functions_dir().join("f/deployment.toml"),
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 10\n",
    )
    .unwrap();
    let n = b.start();
    let mut canary = 0;
    for _ in 0..2000 {
        let reply = n.get("/f?name=edge").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text = reply.text();
        match reply.header("x-wedge-version") {
            Some("v2") => {
                assert!(text.contains("from a wasi:http component"), "{text}");
                canary += 1;
            }
            _ => assert!(!text.contains("wasi:http"), "{text}"),
        }
    }
    let share = canary as f64 / 2000.0;
    eprintln!("component canary share at 10%: {:.2}%", share * 100.0);
    assert!((0.07..=0.13).contains(&share), "{share}");
    let status = String::from_utf8(n.cli(&["status"]).stdout).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("f ") && l.contains(" wagi>wasi-http ") && l.contains("v2 10%")),
        "{status}"
    );
}

/// A component canary that traps is rolled back automatically, and only
/// the WAGI stable serves after.
#[tokio::test(flavor = "multi_thread")]
pub async fn failing_component_canary_rolls_back() {
    let b = node()
        .version("f", "v1", examples::HELLO)
        .version("f", "v2", guests::HTTP_PROBE)
        .function_toml(
            "f",
            "[rollout]\nauto_rollback = { max_error_rate = 0.05, min_requests = 20, window = \"10s\" }\n",
        );
    std::fs::write(
        b.functions_dir().join("f/deployment.toml"),
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 50\n",
    )
    .unwrap();
    let n = b.start();
    // The WAGI hello ignores `do`; the probe traps on it.
    let failures = crate::rollout::until_rolled_back(&n, "/f?do=trap").await;
    assert!(failures >= 1);
    let deployment = std::fs::read_to_string(n.dir().join("functions/f/deployment.toml")).unwrap();
    assert!(deployment.contains("canary_percent = 0"), "{deployment}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..50 {
        let reply = n.get("/f?do=trap").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-wedge-version"), Some("v1"));
    }
}

/// `url` as a query value.
fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `wasi:http/outgoing-handler` takes the way a WAGI handler's calls take:
/// a listed origin answers, an unlisted one is denied without being
/// reached, a function with no `outbound` list calls nothing, and each call
/// is counted in the metrics and timed in the access event.
#[tokio::test(flavor = "multi_thread")]
pub async fn component_calls_only_listed_origins() {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let origin = Origin::start(loopback).await;
    let other = Origin::start(std::net::IpAddr::from([127, 0, 0, 2])).await;
    let n = node()
        .function("p", guests::HTTP_PROBE)
        .function_toml("p", "outbound = [\"http://127.0.0.1:*\"]\n")
        .function("closed", guests::HTTP_PROBE)
        .start();
    let listed = format!("http://127.0.0.1:{}/hello", origin.port());
    let reply = n.get(&format!("/p?do=fetch&url={}", encode(&listed))).await;
    assert_eq!(reply.text(), "200 20\nhello from 127.0.0.1");
    let access = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("wedge::access") && l.contains("function=p ")
        })
        .expect("access event");
    let outbound_us: u64 = wedge_test_harness::field(&access, "outbound_us")
        .and_then(|v| v.parse().ok())
        .expect("outbound_us in the access event");
    assert!(outbound_us > 0, "{access}");

    let unlisted = format!("http://127.0.0.2:{}/hello", other.port());
    let reply = n
        .get(&format!("/p?do=fetch&url={}", encode(&unlisted)))
        .await;
    assert_eq!(reply.text(), "error ErrorCode::HttpRequestDenied");
    let reply = n
        .get(&format!("/closed?do=fetch&url={}", encode(&listed)))
        .await;
    assert_eq!(reply.text(), "error ErrorCode::HttpRequestDenied");
    assert_eq!(other.accepts(), 0, "a denied call never reaches the origin");

    let series = "wedge_outbound_requests_total{function=\"p\",origin=\"http://127.0.0.1:*\",status=\"200\"}";
    assert_eq!(n.metric(series).await, Some(1.0), "{series}");
}

/// A component's own timeouts (`request-options`) end its calls long before
/// the node's limits would: connecting to an origin that takes no
/// connections, waiting for a head that never comes, and a body that stops.
/// A body whose chunks keep coming within them is read whole.
#[tokio::test(flavor = "multi_thread")]
pub async fn component_request_options_bound_its_calls() {
    let origin = Origin::start(std::net::IpAddr::from([127, 0, 0, 1])).await;
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so a connection to it is never made.
    let full = tokio::net::TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(Ok(s)) = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(full_addr),
    )
    .await
    {
        queued.push(s);
        assert!(queued.len() < 16, "the accept queue never filled");
    }
    let n = node()
        .table("[outbound]\nconnect_timeout = \"20s\"\ntimeout = \"20s\"")
        .function("p", guests::HTTP_PROBE)
        .function_toml(
            "p",
            "timeout = \"25s\"\noutbound = [\"http://127.0.0.1:*\"]\n",
        )
        .start();
    // Each case ends well within the node's 20 s limits, or the component's
    // timeout was not applied.
    let fetch = async |url: String, options: &str| {
        let started = Instant::now();
        let reply = n
            .get(&format!("/p?do=fetch&url={}{options}", encode(&url)))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}{options}: {:?}",
            started.elapsed()
        );
        reply.text()
    };
    let port = origin.port();
    assert_eq!(
        fetch(format!("http://{full_addr}/hello"), "&connect_ms=300").await,
        "error ErrorCode::ConnectionTimeout"
    );
    assert_eq!(
        fetch(
            format!("http://127.0.0.1:{port}/stall"),
            "&first_byte_ms=300"
        )
        .await,
        "error ErrorCode::ConnectionReadTimeout"
    );
    assert_eq!(
        fetch(
            format!("http://127.0.0.1:{port}/drip?n=3&ms=3000"),
            "&between_ms=300"
        )
        .await,
        // A body that fails mid-way reaches the component as a stream error.
        "error ErrorCode::InternalError(Some(\"the body broke off: connection read timeout\"))"
    );
    // Timeouts longer than the origin needs change nothing.
    let reply = fetch(
        format!("http://127.0.0.1:{port}/drip?n=3&ms=100"),
        "&connect_ms=2000&first_byte_ms=2000&between_ms=2000",
    )
    .await;
    assert!(reply.starts_with("200 3072\n"), "{reply}");
    drop(queued);
}

/// The JavaScript hello, built by componentize-js from npm, serves.
#[tokio::test(flavor = "multi_thread")]
pub async fn javascript_handler_serves() {
    let n = node().example("js-hello").start();
    let reply = n.get("/js-hello?name=edge").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello, edge, from JavaScript\n");
    assert_eq!(
        n.get("/js-hello?name=%3Cb%3E").await.text(),
        "hello, world, from JavaScript\n"
    );
}

/// The Python stock decrement on wasi:keyvalue never oversells: stock 50,
/// 80 concurrent buyers, 50 sold and 30 refused; and it sells the same
/// stock as the Rust WAGI `inventory` example, seeded and read through it.
#[tokio::test(flavor = "multi_thread")]
pub async fn python_inventory_never_oversells_and_shares_its_stock() {
    let n = Arc::new(node().example("py-inventory").example("inventory").start());
    let seeded = n
        .send(
            Method::PUT,
            "/inventory/sku-1",
            &[],
            Bytes::from_static(b"50"),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    let read = n.get("/py-inventory/sku-1").await;
    assert_eq!(read.text(), r#"{"sku":"sku-1","stock":50}"#);

    let mut buyers = Vec::new();
    for _ in 0..80 {
        let n = n.clone();
        buyers.push(tokio::spawn(async move {
            n.send(
                Method::POST,
                "/py-inventory/sku-1/reserve?qty=1",
                &[],
                Bytes::new(),
            )
            .await
            .status
        }));
    }
    let mut sold = 0;
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.unwrap().as_u16() {
            200 => sold += 1,
            409 => refused += 1,
            other => panic!("a buyer got {other}"),
        }
    }
    assert_eq!((sold, refused), (50, 30));
    let left = n.get("/inventory/sku-1").await;
    assert_eq!(
        left.text(),
        r#"{"sku":"sku-1","stock":0}"#,
        "read through WAGI"
    );

    // Seeded from Python, sold through WAGI.
    let seeded = n
        .send(
            Method::PUT,
            "/py-inventory/sku-2",
            &[],
            Bytes::from_static(b"3"),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    let sold = n
        .send(
            Method::POST,
            "/inventory/sku-2/reserve?qty=2",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(sold.status, 200, "{}", sold.text());
    assert_eq!(
        n.get("/py-inventory/sku-2").await.text(),
        r#"{"sku":"sku-2","stock":1}"#
    );
    // The refusals are counted as the store's out-of-range adds.
    let series =
        "wedge_kv_operations_total{store=\"inventory\",op=\"add\",result=\"out_of_range\"}";
    assert_eq!(n.metric(series).await, Some(30.0), "{series}");
}

/// On etcd with escrow, two nodes selling one stock from Python never
/// oversell either: 80 buyers across both take at most the 50 units, and
/// once the nodes give their blocks back the stock the WAGI handler reads
/// is exactly what is left.
#[tokio::test(flavor = "multi_thread")]
pub async fn python_inventory_on_etcd_with_escrow_never_oversells() {
    let etcd = wedge_test_harness::EtcdCluster::start(1);
    let nodes: Vec<Arc<Node>> = ["a", "b"]
        .iter()
        .map(|name| {
            Arc::new(
                node()
                    .example("py-inventory")
                    .example("inventory")
                    .store("backend = \"etcd\"")
                    .table(&format!(
                        "[store.escrow]\ninventory = {{ block = 10, idle_return = \"1s\" }}\n\n{}",
                        etcd.cluster_table(name)
                    ))
                    .start(),
            )
        })
        .collect();
    let seeded = nodes[0]
        .send(
            Method::PUT,
            "/inventory/sku-e",
            &[],
            Bytes::from_static(b"50"),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    let mut buyers = Vec::new();
    for i in 0..80 {
        let n = nodes[i % 2].clone();
        buyers.push(tokio::spawn(async move {
            n.send(
                Method::POST,
                "/py-inventory/sku-e/reserve?qty=1",
                &[],
                Bytes::new(),
            )
            .await
            .status
            .as_u16()
        }));
    }
    let mut sold = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            200 => sold += 1,
            409 => {}
            other => panic!("a buyer got {other}"),
        }
    }
    assert!(sold <= 50, "sold {sold} of 50");
    assert!(sold >= 40, "sold only {sold} of 50");
    // The blocks go back after a second without a sale.
    let deadline = Instant::now() + Duration::from_secs(15);
    let expected = format!(r#"{{"sku":"sku-e","stock":{}}}"#, 50 - sold);
    loop {
        let left = nodes[1].get("/inventory/sku-e").await.text();
        if left == expected {
            break;
        }
        assert!(Instant::now() < deadline, "{left}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
