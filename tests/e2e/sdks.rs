//! The Go and C SDKs, used as a team in those languages would: a guest built
//! with the standard Go toolchain (`tests/guests-go/shop`, net/http behind
//! `wedge.Serve`) and one built with `zig cc` (`tests/guests-c/shop.c`, with
//! `wedge.h`) each sell a stock without overselling and call an origin, and
//! each streams server-sent events (`http.Flusher`, `wedge_flush`).

use std::net::{IpAddr, Ipv4Addr};

use wedge_test_harness::{Node, Origin, get_status, guests, raw_call};

use crate::node;

/// A node serving `wasm` as `shop`, which may use the `inventory` store and
/// call anything on 127.0.0.1.
fn shop(wasm: &str) -> Node {
    node()
        .function("shop", wasm)
        .function_toml(
            "shop",
            "timeout = \"20s\"\nkv = [\"inventory\"]\noutbound = [\"http://127.0.0.1:*\"]\n",
        )
        .start()
}

/// Must-show 2: stock 50, 80 buyers at once: exactly 50 sales, 30 refusals,
/// nothing else; then an outbound call that is allowed and one that is not.
async fn sells_without_overselling_and_calls_out(wasm: &str) {
    let n = shop(wasm);
    let set = n.cli(&["kv", "set", "inventory", "sku-1", "50"]);
    assert!(set.status.success(), "{set:?}");
    let addr = n.addr();
    let buyers: Vec<_> = (0..80)
        .map(|_| tokio::spawn(async move { get_status(addr, "/shop/buy?sku=sku-1").await }))
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for b in buyers {
        match b.await.unwrap() {
            200 => sold += 1,
            409 => refused += 1,
            other => panic!("a buyer got {other}"),
        }
    }
    assert_eq!((sold, refused), (50, 30));
    let left = n.cli(&["kv", "get", "inventory", "sku-1"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");

    let origin = Origin::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let url = format!("http%3A%2F%2F127.0.0.1%3A{}%2Fhello", origin.port());
    let (status, body) = raw_call(addr, "GET", &format!("/shop/fetch?url={url}")).await;
    assert_eq!((status, body.trim()), (200, "200 20"));
    let (_, denied) = raw_call(
        addr,
        "GET",
        "/shop/fetch?url=http%3A%2F%2F169.254.169.254%2Flatest",
    )
    .await;
    assert!(
        denied.contains("denied") && denied.contains("not in the function's outbound list"),
        "{denied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn go_shop() {
    sells_without_overselling_and_calls_out(guests::GO_SHOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn c_shop() {
    sells_without_overselling_and_calls_out(guests::C_SHOP).await;
}

/// A Go handler that flushes through `http.Flusher`, and a C handler that
/// calls `wedge_flush`, stream their events as they write them.
#[tokio::test(flavor = "multi_thread")]
pub async fn go_and_c_handlers_stream() {
    for wasm in [guests::GO_SHOP, guests::C_SHOP] {
        let n = shop(wasm);
        let reply = n.stream("/shop/events?n=4", false).await;
        assert_eq!(reply.end, Ok(()), "{wasm}");
        let events = reply.events();
        assert_eq!(
            events.iter().map(|e| e.number).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "{wasm}"
        );
        for e in &events {
            assert!(
                e.latency() < std::time::Duration::from_millis(50),
                "{wasm}: event {} took {:?}",
                e.number,
                e.latency()
            );
        }
    }
}
