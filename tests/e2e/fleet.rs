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
    let deadline = Instant::now() + Duration::from_secs(30);
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
            "not every node serves {function} {stable} {canary:?}"
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
}
