//! The key-value store on etcd (`[store] backend = "etcd"`), end to end with
//! real etcd members: the guest ABI unchanged, one stock shared by several
//! nodes that never oversells across an etcd leader kill and a `kill -9` of a
//! node, idempotent retries, and an etcd outage that fails calls fast and
//! heals by itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{EtcdCluster, Node, guests, try_call};

use crate::node;

/// A node serving the inventory example with its stores in `etcd`.
fn etcd_node(etcd: &EtcdCluster, name: &str) -> Node {
    node()
        .example("inventory")
        .store("backend = \"etcd\"")
        .table(&etcd.cluster_table(name))
        .start()
}

/// Seeds `sku` with `stock` units through the inventory example.
pub async fn seed(n: &Node, sku: &str, stock: u32) {
    let r = n
        .send(
            Method::PUT,
            &format!("/inventory/{sku}"),
            &[],
            Bytes::from(stock.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn remaining(body: &str) -> Option<i64> {
    let at = body.find("\"remaining\":")? + 12;
    body[at..].trim_end_matches(['}', '\n']).parse().ok()
}

/// Every call of the guest ABI keeps its meaning on etcd.
#[tokio::test(flavor = "multi_thread")]
pub async fn every_call_works_on_etcd() {
    let etcd = EtcdCluster::start(1);
    let n = node()
        .function("probe", guests::KV_PROBE)
        .function_toml("probe", "kv = [\"mine\"]")
        .store("backend = \"etcd\"")
        .table(&etcd.cluster_table("solo"))
        .start();
    crate::kv::assert_probe_passes(&n.get("/probe?store=mine").await.text());
    // The admin API reads and writes the same store.
    let r = n
        .admin(Method::GET, "/v1/kv/mine/list%2F1", None, Bytes::new())
        .await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "x".into()));
}

/// The same request sent again with its `Idempotency-Key` replays its
/// reservation, on any node, instead of taking a second unit.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_retried_request_never_applies_twice() {
    let etcd = EtcdCluster::start(1);
    let (a, b) = (etcd_node(&etcd, "a"), etcd_node(&etcd, "b"));
    seed(&a, "sku", 10).await;
    let key = [("Idempotency-Key", "order-41")];
    let mut seen = Vec::new();
    for n in [&a, &b, &a] {
        let (status, body) = try_call(
            n.addr(),
            "POST",
            "/inventory/sku/reserve",
            &key,
            Duration::from_secs(10),
        )
        .await
        .expect("a reply");
        seen.push((status, body));
    }
    assert!(
        seen.iter()
            .all(|s| *s == (200, r#"{"sku":"sku","remaining":9}"#.into())),
        "{seen:?}"
    );
    assert_eq!(
        b.get("/inventory/sku").await.text(),
        r#"{"sku":"sku","stock":9}"#
    );
    // Another key is another order.
    let (status, body) = try_call(
        a.addr(),
        "POST",
        "/inventory/sku/reserve",
        &[("Idempotency-Key", "order-42")],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!((status, remaining(&body)), (200, Some(8)));
    // A key that cannot be one is refused before any guest runs.
    let long = "k".repeat(300);
    let (status, _) = try_call(
        a.addr(),
        "POST",
        "/inventory/sku/reserve",
        &[("Idempotency-Key", &long)],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        a.get("/inventory/sku").await.text(),
        r#"{"sku":"sku","stock":8}"#
    );
}

/// Three etcd members, three wedge nodes, one SKU of 500 and buyers spread over
/// the nodes. Mid-run the etcd leader is killed, and one node is killed with
/// SIGKILL and started again. Each buyer retries its own order (same
/// `Idempotency-Key`) on the next node until it gets an answer. Afterwards
/// exactly 500 orders were acknowledged, each unit once, and every node reads
/// the stock as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn a_fleet_never_oversells_across_a_leader_kill_and_a_node_kill() {
    const STOCK: u32 = 500;
    const BUYERS: usize = 24;
    let mut etcd = EtcdCluster::start(3);
    let mut nodes: Vec<Node> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| etcd_node(&etcd, n))
        .collect();
    seed(&nodes[0], "flash", STOCK).await;
    let addrs: Arc<RwLock<Vec<SocketAddr>>> =
        Arc::new(RwLock::new(nodes.iter().map(Node::addr).collect()));

    let buyers: Vec<_> = (0..BUYERS)
        .map(|b| {
            let addrs = addrs.clone();
            tokio::spawn(async move {
                // order id -> remaining stock it was acknowledged with
                let mut acked: Vec<(String, i64)> = Vec::new();
                let mut retries = 0u32;
                for order in 0.. {
                    let id = format!("buyer{b}-order{order}");
                    let mut target = b + order;
                    let started = Instant::now();
                    loop {
                        let addr = addrs.read().unwrap()[target % 3];
                        let reply = try_call(
                            addr,
                            "POST",
                            "/inventory/flash/reserve",
                            &[("Idempotency-Key", &id)],
                            Duration::from_secs(10),
                        )
                        .await;
                        match reply {
                            Some((200, body)) => {
                                let left = remaining(&body).expect("a remaining count");
                                acked.push((id, left));
                                break;
                            }
                            Some((409, body)) => {
                                assert_eq!(remaining(&body), Some(0), "{body}");
                                return (acked, retries);
                            }
                            // The node died, or etcd had no leader for a moment:
                            // send the same order again elsewhere.
                            _ => {
                                retries += 1;
                                target += 1;
                                assert!(
                                    started.elapsed() < Duration::from_secs(60),
                                    "order {id} found no node for a minute"
                                );
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();

    // Let the sale get going, then kill etcd's leader.
    wait_for_stock_below(nodes[1].addr(), "flash", i64::from(STOCK) - 100).await;
    let leader = etcd.leader().expect("a leader");
    etcd.kill(leader);
    // Then kill a wedge node mid-run and start it again.
    wait_for_stock_below(nodes[1].addr(), "flash", i64::from(STOCK) - 250).await;
    nodes[2].kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[2].restart();
    addrs.write().unwrap()[2] = nodes[2].addr();
    etcd.restart(leader);

    let mut orders: HashMap<String, i64> = HashMap::new();
    let mut lefts = Vec::new();
    let mut retries = 0;
    for b in buyers {
        let (acked, r) = b.await.unwrap();
        retries += r;
        for (id, left) in acked {
            assert!(
                orders.insert(id.clone(), left).is_none(),
                "order {id} acknowledged twice"
            );
            lefts.push(left);
        }
    }
    lefts.sort_unstable();
    assert_eq!(orders.len(), STOCK as usize, "acknowledged orders");
    assert_eq!(
        lefts,
        (0..STOCK as i64).collect::<Vec<_>>(),
        "each unit sold once"
    );
    for n in &nodes {
        assert_eq!(
            n.get("/inventory/flash").await.text(),
            r#"{"sku":"flash","stock":0}"#
        );
    }
    eprintln!(
        "{} orders acknowledged, {retries} sends retried",
        orders.len()
    );
}

/// The stock as `addr` reads it (the fleet-wide figure), if it answers.
pub async fn stock(addr: SocketAddr, sku: &str) -> Option<i64> {
    let (status, body) = try_call(
        addr,
        "GET",
        &format!("/inventory/{sku}"),
        &[],
        Duration::from_secs(10),
    )
    .await?;
    if status != 200 {
        return None;
    }
    body.split("\"stock\":")
        .nth(1)?
        .trim_end_matches('}')
        .parse()
        .ok()
}

/// Waits until `addr` reads the stock of `sku` below `below`.
pub async fn wait_for_stock_below(addr: SocketAddr, sku: &str, below: i64) {
    let start = Instant::now();
    while stock(addr, sku).await.is_none_or(|s| s >= below) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sale stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// etcd stopped entirely: reservations fail with the guest's `io` quickly (no
/// stall to the call timeout), `/readyz` and `wedge_store_ready` say why, the
/// node keeps serving; when etcd returns, everything resumes with no restart.
#[tokio::test(flavor = "multi_thread")]
pub async fn an_etcd_outage_fails_fast_and_heals() {
    let mut etcd = EtcdCluster::start(1);
    let n = etcd_node(&etcd, "lonely");
    seed(&n, "sku", 3).await;
    assert_eq!(n.post("/inventory/sku/reserve", "").await.status, 200);

    etcd.kill_all();
    let ready = |n: &Node| {
        let addr = n.admin_addr();
        async move { try_call(addr, "GET", "/readyz", &[], Duration::from_secs(5)).await }
    };
    let start = Instant::now();
    let problem = loop {
        if let Some((503, body)) = ready(&n).await {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/readyz never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(problem.contains("etcd"), "{problem}");
    assert_eq!(n.metric("wedge_store_ready").await, Some(0.0));
    let start = Instant::now();
    let r = n.post("/inventory/sku/reserve", "").await;
    let took = start.elapsed();
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (500, r#"{"error":"storage unavailable"}"#.into())
    );
    assert!(
        took < Duration::from_secs(1),
        "a call took {took:?} to fail"
    );
    // Functions without a store still serve.
    assert_eq!(n.get("/inventory/").await.status.as_u16() / 100, 4);

    etcd.restart_all();
    let start = Instant::now();
    while ready(&n).await.map(|r| r.0) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the store never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n.metric("wedge_store_ready").await, Some(1.0));
    let r = n.post("/inventory/sku/reserve", "").await;
    assert_eq!((r.status.as_u16(), remaining(&r.text())), (200, Some(1)));
    let r = n.post("/inventory/sku/reserve", "").await;
    assert_eq!((r.status.as_u16(), remaining(&r.text())), (200, Some(0)));
    assert_eq!(n.post("/inventory/sku/reserve", "").await.status, 409);
}
