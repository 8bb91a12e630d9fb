//! Escrow for hot counters (`[store.escrow]`), end to end with real etcd
//! members: a fleet that sells one stock from local blocks never oversells
//! across an etcd leader kill and a `kill -9` of a node, keeps selling within
//! its blocks through an etcd outage, and gets a dead node's units back with
//! `wedge kv reclaim`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wedge_test_harness::{EtcdCluster, Node, try_call};

use crate::etcd::{seed, stock, wait_for_stock_below};
use crate::node;

/// A node selling the inventory example's stock from blocks of `block`,
/// giving back what it holds after a second without a sale.
fn escrow_node(etcd: &EtcdCluster, name: &str, block: u32) -> Node {
    escrow_node_idle(etcd, name, block, "1s")
}

fn escrow_node_idle(etcd: &EtcdCluster, name: &str, block: u32, idle: &str) -> Node {
    node()
        .example("inventory")
        .store("backend = \"etcd\"")
        .table(&format!(
            "[store.escrow]\ninventory = {{ block = {block}, idle_return = \"{idle}\" }}\n\n{}",
            etcd.cluster_table(name)
        ))
        .start()
}

async fn reserve(addr: SocketAddr, sku: &str, order: &str) -> Option<u16> {
    try_call(
        addr,
        "POST",
        &format!("/inventory/{sku}/reserve"),
        &[("Idempotency-Key", order)],
        Duration::from_secs(10),
    )
    .await
    .map(|(status, _)| status)
}

/// Must-show 1 with escrow: three etcd members, three nodes with blocks of
/// 20, a stock of 500. Mid-run the etcd leader is killed, and a node is
/// killed with SIGKILL and started again on its data (its block survives in
/// its ledger). Each buyer retries an unanswered order on the same node, with
/// the same `Idempotency-Key`. Exactly 500 orders are acknowledged, none
/// twice, and every node reads the stock as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn an_escrowed_fleet_never_oversells_across_a_leader_kill_and_a_node_kill() {
    const STOCK: u32 = 500;
    const BUYERS: usize = 24;
    let mut etcd = EtcdCluster::start(3);
    let mut nodes: Vec<Node> = ["e0", "e1", "e2"]
        .iter()
        .map(|n| escrow_node(&etcd, n, 20))
        .collect();
    seed(&nodes[0], "flash", STOCK).await;
    let addrs: Arc<RwLock<Vec<SocketAddr>>> =
        Arc::new(RwLock::new(nodes.iter().map(Node::addr).collect()));

    let buyers: Vec<_> = (0..BUYERS)
        .map(|b| {
            let addrs = addrs.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let home = b % 3;
                let started = Instant::now();
                for order in 0.. {
                    let id = format!("buyer{b}-order{order}");
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(120),
                            "buyer {b} still buying after two minutes"
                        );
                        let addr = addrs.read().unwrap()[home];
                        match reserve(addr, "flash", &id).await {
                            Some(200) => {
                                acked.push(id);
                                break;
                            }
                            // Out of stock here: done once the fleet is.
                            Some(409) => match stock(addr, "flash").await {
                                Some(0) => return acked,
                                _ => tokio::time::sleep(Duration::from_millis(100)).await,
                            },
                            // The node is down or restarting: the same order again.
                            _ => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();

    let watcher = nodes[1].addr();
    wait_for_stock_below(watcher, "flash", STOCK as i64 - 100).await;
    let leader = etcd.leader().expect("a leader");
    etcd.kill(leader);
    wait_for_stock_below(watcher, "flash", STOCK as i64 - 250).await;
    nodes[2].kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[2].restart();
    addrs.write().unwrap()[2] = nodes[2].addr();
    etcd.restart(leader);

    let mut orders = HashSet::new();
    for b in buyers {
        for id in b.await.unwrap() {
            assert!(orders.insert(id.clone()), "order {id} acknowledged twice");
        }
    }
    assert_eq!(orders.len(), STOCK as usize, "acknowledged orders");
    for n in &nodes {
        assert_eq!(stock(n.addr(), "flash").await, Some(0));
    }
}

/// Must-show 2 with escrow: with etcd stopped, each node sells what it holds
/// and then answers out-of-range (409), never more; when etcd returns, the
/// sale resumes with no restart and ends at exactly the stock.
#[tokio::test(flavor = "multi_thread")]
pub async fn an_escrowed_node_sells_its_block_through_an_etcd_outage() {
    const STOCK: u32 = 60;
    let mut etcd = EtcdCluster::start(1);
    let nodes = [
        escrow_node_idle(&etcd, "a", 10, "10m"),
        escrow_node_idle(&etcd, "b", 10, "10m"),
    ];
    seed(&nodes[0], "sku", STOCK).await;
    let mut sold = 0;
    let mut order = 0;
    let mut buy = |n: &Node| {
        order += 1;
        let (addr, id) = (n.addr(), format!("order-{order}"));
        async move { reserve(addr, "sku", &id).await }
    };
    // Each node takes a block and sells from it.
    for n in &nodes {
        for _ in 0..3 {
            assert_eq!(buy(n).await, Some(200));
            sold += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    etcd.kill_all();
    let mut during = 0;
    for n in &nodes {
        loop {
            match buy(n).await {
                Some(200) => during += 1,
                Some(409) => break,
                other => panic!("unexpected {other:?} during the outage"),
            }
            assert!(
                during <= 40,
                "sold {during} during the outage: more than the blocks held"
            );
        }
    }
    assert!(during > 0, "nothing sold from the blocks held");
    sold += during;
    etcd.restart_all();
    // The sale resumes once the nodes reach etcd again.
    let start = Instant::now();
    'sale: loop {
        for n in &nodes {
            match buy(n).await {
                Some(200) => sold += 1,
                _ if stock(n.addr(), "sku").await == Some(0) => break 'sale,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sale never resumed"
        );
    }
    assert_eq!(sold, STOCK, "{during} sold during the outage");
    for n in &nodes {
        assert_eq!(stock(n.addr(), "sku").await, Some(0));
    }
}

/// A node killed for good keeps its block until `wedge kv reclaim`; then the
/// other nodes sell it, and the dead node, started again, sells none of it.
#[tokio::test(flavor = "multi_thread")]
pub async fn reclaim_gives_a_dead_nodes_block_back() {
    let etcd = EtcdCluster::start(1);
    let mut a = escrow_node_idle(&etcd, "a", 30, "10m");
    let b = escrow_node_idle(&etcd, "b", 30, "10m");
    seed(&a, "sku", 40).await;
    assert_eq!(reserve(a.addr(), "sku", "o-1").await, Some(200));
    // a holds 29 and has reported it; then it dies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    let mut sold = 1;
    let mut order = 1;
    loop {
        order += 1;
        match reserve(b.addr(), "sku", &format!("o-{order}")).await {
            Some(200) => sold += 1,
            Some(409) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sold, 11, "b sold what a did not hold");
    assert_eq!(
        stock(b.addr(), "sku").await,
        Some(29),
        "a's units still count"
    );

    let out = b.cli(&["kv", "reclaim", "b"]);
    assert!(!out.status.success(), "a node cannot reclaim itself");
    let out = b.cli(&["kv", "reclaim", "a"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("inventory/sku: 29 units"), "{text}");
    loop {
        order += 1;
        match reserve(b.addr(), "sku", &format!("o-{order}")).await {
            Some(200) => sold += 1,
            Some(409) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sold, 40);
    // a comes back with 29 units in its ledger: they were reclaimed, so it
    // drops them instead of selling them a second time.
    a.restart();
    assert_eq!(reserve(a.addr(), "sku", "o-late").await, Some(409));
    assert_eq!(stock(a.addr(), "sku").await, Some(0));
    assert_eq!(stock(b.addr(), "sku").await, Some(0));
}
