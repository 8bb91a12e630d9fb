//! Fleet rollouts on real parts: one etcd member, a Distribution registry and
//! three wedge nodes, each with an empty functions directory of its own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{EtcdCluster, Node, OciRegistry};

use crate::node;

fn fleet_node(etcd: &EtcdCluster, registry: &OciRegistry, name: &str) -> Node {
    node()
        .table(&format!(
            "{}{}",
            etcd.cluster_table(name),
            registry.cluster_lines()
        ))
        .start()
}

fn cli_ok(n: &Node, args: &[&str]) -> String {
    let out = n.cli(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wedge {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The version of `n` that answered `path`, sending `headers`.
async fn version_at(n: &Node, path: &str, headers: &[(&str, &str)]) -> Option<String> {
    let reply = n.send(Method::GET, path, headers, Bytes::new()).await;
    (reply.status == 200).then(|| reply.header("x-wedge-version").map(str::to_string))?
}

/// Waits until every node serves `deployment` (stable, canary, share) for `function`.
async fn wait_serving(nodes: &[Node], function: &str, stable: &str, canary: Option<(&str, u8)>) {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    serving_by(&nodes, function, (stable, canary), deadline).await;
}

/// Waits until every node serves `stable` and `canary` for `function`, and
/// fails the test if that takes past `deadline`.
async fn serving_by(
    nodes: &[&Node],
    function: &str,
    (stable, canary): (&str, Option<(&str, u8)>),
    deadline: Instant,
) {
    loop {
        let mut all = true;
        for n in nodes {
            let reply = n
                .admin(Method::GET, "/v1/functions", None, Bytes::new())
                .await;
            let list: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            let f = list["functions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["name"] == function);
            let d = f.map(|f| &f["deployment"]);
            let wanted = d.is_some_and(|d| {
                d["stable"] == stable
                    && match canary {
                        None => d["canary_percent"].as_u64().unwrap_or(0) == 0,
                        Some((c, p)) => d["canary"] == c && d["canary_percent"] == p,
                    }
            });
            all &= reply.status == 200 && wanted;
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every node serves {function} {stable} {canary:?} in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Must-show 1: `wedge deploy --fleet` reaches every node; a 10 % canary
/// takes 7–13 % of 3,000 requests spread over the three nodes; a sticky key
/// gets the same version from every node; `wedge status --fleet` shows all
/// three in step.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_fleet_deploy_reaches_every_node_with_one_canary_split() {
    let etcd = EtcdCluster::start(1);
    let registry = OciRegistry::start();
    let nodes = [
        fleet_node(&etcd, &registry, "edge-a"),
        fleet_node(&etcd, &registry, "edge-b"),
        fleet_node(&etcd, &registry, "edge-c"),
    ];
    let v1 = wedge_test_harness::guests::SWAP_A;
    let v2 = wedge_test_harness::guests::SWAP_B;
    let toml = nodes[0].dir().join("hello.toml");
    std::fs::write(
        &toml,
        "route = \"/hello\"\n[rollout]\nsticky = \"header:x-user\"\n",
    )
    .unwrap();
    let toml = toml.to_str().unwrap();

    let out = cli_ok(
        &nodes[0],
        &["deploy", "hello", v1, "--fleet", "--config", toml],
    );
    assert!(out.contains("deployed hello v1"), "{out}");
    wait_serving(&nodes, "hello", "v1", None).await;

    let out = cli_ok(
        &nodes[1],
        &["deploy", "hello", v2, "--fleet", "--canary", "10"],
    );
    assert!(
        out.contains("deployed hello v2") && out.contains("10%"),
        "{out}"
    );
    wait_serving(&nodes, "hello", "v1", Some(("v2", 10))).await;
    // The node the deploy went through compiled v2 and shared the code; the
    // others took it from the registry instead of compiling.
    for n in [&nodes[0], &nodes[2]] {
        let line = n.wait_for_log(Duration::from_secs(5), |l| {
            l.contains("took code another node compiled")
        });
        assert!(line.is_some(), "a node compiled v2 itself");
    }

    let mut canary = 0;
    for i in 0..3000 {
        match version_at(&nodes[i % 3], "/hello", &[]).await.as_deref() {
            Some("v2") => canary += 1,
            Some("v1") => {}
            other => panic!("request {i} got {other:?}"),
        }
    }
    assert!(
        (210..=390).contains(&canary),
        "the canary took {canary} of 3000 requests"
    );

    // A user keeps one version whichever node answers.
    for user in 0..40 {
        let id = format!("user-{user}");
        let headers = [("x-user", id.as_str())];
        let first = version_at(&nodes[0], "/hello", &headers).await;
        assert!(first.is_some());
        for n in &nodes[1..] {
            assert_eq!(
                version_at(n, "/hello", &headers).await,
                first,
                "{id} got another version from another node"
            );
        }
    }

    let status = cli_ok(&nodes[2], &["status", "--fleet"]);
    for name in ["edge-a", "edge-b", "edge-c"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{status}"));
        assert!(
            line.contains("in step") && line.contains("v2 10%"),
            "{line}\n{status}"
        );
    }
    assert!(!status.contains("LAGGING"), "{status}");

    // Taken out of the fleet, the function leaves every node.
    let out = cli_ok(&nodes[1], &["remove", "hello", "--fleet"]);
    assert!(out.contains("removed hello from the fleet"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes {
        while n.get("/hello").await.status != 404 {
            assert!(Instant::now() < deadline, "a node still serves hello");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!n.dir().join("functions/hello").exists());
    }
    let again = nodes[0].cli(&["remove", "hello", "--fleet"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("no function `hello` in the fleet"),
        "{err}"
    );
}

/// Requests `count` times, spread over `nodes` in turn; how many failed.
async fn spread(nodes: &[&Node], path: &str, count: usize) -> usize {
    let mut failed = 0;
    for i in 0..count {
        let reply = nodes[i % nodes.len()].get(path).await;
        failed += usize::from(reply.status.is_server_error());
    }
    failed
}

/// The judge the fleet elected, as `GET /v1/fleet` names it.
async fn judge(n: &Node) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = n.admin(Method::GET, "/v1/fleet", None, Bytes::new()).await;
        let state: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        if let Some(judge) = state["judge"].as_str() {
            return judge.to_string();
        }
        assert!(Instant::now() < deadline, "no judge elected: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Must-show 2: a canary that always fails, at 50 % with traffic over three
/// nodes, is rolled back on every node within its window by the fleet's
/// judge, on the fleet's totals (no node alone sees enough to judge), even
/// when the elected judge is `kill -9`ed during the window. The rollback
/// survives restarts of every node.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_failing_canary_is_rolled_back_fleet_wide_when_the_judge_dies() {
    const WINDOW: Duration = Duration::from_secs(20);
    let etcd = EtcdCluster::start(1);
    let registry = OciRegistry::start();
    let mut nodes = [
        fleet_node(&etcd, &registry, "edge-a"),
        fleet_node(&etcd, &registry, "edge-b"),
        fleet_node(&etcd, &registry, "edge-c"),
    ];
    let toml = nodes[0].dir().join("r.toml");
    std::fs::write(
        &toml,
        "route = \"/r\"\n[rollout.auto_rollback]\nwindow = \"20s\"\nmin_requests = 30\nmax_error_rate = 0.2\n",
    )
    .unwrap();
    let toml = toml.to_str().unwrap();
    let (stable, failing) = (
        wedge_test_harness::guests::SWAP_A,
        wedge_test_harness::guests::TRAP,
    );
    cli_ok(
        &nodes[0],
        &["deploy", "r", stable, "--fleet", "--config", toml],
    );
    wait_serving(&nodes, "r", "v1", None).await;
    cli_ok(
        &nodes[0],
        &["deploy", "r", failing, "--fleet", "--canary", "50"],
    );
    wait_serving(&nodes, "r", "v1", Some(("v2", 50))).await;

    // Fewer canary failures than min_requests in all: nothing is judged yet.
    let all: Vec<&Node> = nodes.iter().collect();
    let failed = spread(&all, "/r", 36).await;
    assert!(failed > 0 && failed < 30, "{failed} canary failures");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_serving(&nodes, "r", "v1", Some(("v2", 50))).await;

    let elected = judge(&nodes[0]).await;
    let dead = ["edge-a", "edge-b", "edge-c"]
        .iter()
        .position(|n| *n == elected)
        .expect("the judge is one of the nodes");
    nodes[dead].kill();
    let killed = Instant::now();
    let alive: Vec<&Node> = (0..3).filter(|&i| i != dead).map(|i| &nodes[i]).collect();
    spread(&alive, "/r", 60).await;
    // Rolled back within the canary's window of the judge's death.
    serving_by(&alive, "r", ("v1", None), killed + WINDOW).await;
    let now = judge(alive[0]).await;
    assert_ne!(now, elected, "another node took over as judge");

    // The dead node comes back rolled back, and so does every node after a restart.
    nodes[dead].restart();
    wait_serving(&nodes, "r", "v1", Some(("v2", 0))).await;
    for n in &mut nodes {
        n.kill();
        n.restart();
    }
    wait_serving(&nodes, "r", "v1", Some(("v2", 0))).await;
    assert_eq!(spread(&nodes.iter().collect::<Vec<_>>(), "/r", 30).await, 0);
}

/// Must-show 3: a node stopped during a deploy catches up within seconds of
/// its return; with the registry and etcd both down, a restarted node serves
/// its last state from its own disk.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_node_catches_up_and_serves_its_last_state_alone() {
    let mut etcd = EtcdCluster::start(1);
    let mut registry = OciRegistry::start();
    let mut nodes = [
        fleet_node(&etcd, &registry, "edge-a"),
        fleet_node(&etcd, &registry, "edge-b"),
    ];
    let (v1, v2) = (
        wedge_test_harness::guests::SWAP_A,
        wedge_test_harness::guests::SWAP_B,
    );
    cli_ok(&nodes[0], &["deploy", "hello", v1, "--fleet"]);
    wait_serving(&nodes, "hello", "v1", None).await;

    nodes[1].kill();
    cli_ok(&nodes[0], &["deploy", "hello", v2, "--fleet"]);
    wait_serving(&nodes[..1], "hello", "v2", None).await;
    let back = Instant::now();
    nodes[1].restart();
    wait_serving(&nodes, "hello", "v2", None).await;
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "caught up in {:?}",
        back.elapsed()
    );

    registry.kill();
    etcd.kill_all();
    nodes[1].kill();
    nodes[1].restart();
    let reply = nodes[1].get("/hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-wedge-version"), Some("v2"));
    let out = nodes[1].cli(&["status", "--fleet"]);
    assert!(!out.status.success(), "no fleet view without etcd");
}
