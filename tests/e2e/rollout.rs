//! Gray release: the traffic split, sticky keys, the override header, and a
//! failing canary that removes itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, guests};

use crate::node;

/// v1 answers "A", v2 answers "B"; `deployment.toml` as given.
fn two_versions(function_toml: &str, deployment: &str) -> Node {
    let b = node()
        .version("f", "v1", guests::SWAP_A)
        .version("f", "v2", guests::SWAP_B)
        .function_toml("f", function_toml);
    std::fs::write(b.functions_dir().join("f/deployment.toml"), deployment).unwrap();
    b.start()
}

async fn version_for(n: &Node, headers: &[(&str, &str)]) -> String {
    let reply = n.send(Method::GET, "/f", headers, Bytes::new()).await;
    assert_eq!(reply.status, 200);
    let label = reply
        .header("x-wedge-version")
        .expect("x-wedge-version")
        .to_string();
    let expected = if label == "v1" { "A" } else { "B" };
    assert_eq!(
        reply.text(),
        expected,
        "the body comes from the labelled version"
    );
    label
}

/// Rewrites `deployment.toml` and waits until the swap is logged.
fn redeploy(n: &Node, deployment: &str, percent: u8) {
    let seen = n.log_lines().len();
    std::fs::write(n.dir().join("functions/f/deployment.toml"), deployment).unwrap();
    n.wait_for_log_after(seen, Duration::from_secs(5), |l| {
        l.contains("swapped") && l.contains(&format!("canary_percent={percent}"))
    })
    .expect("deployment swapped in");
}

/// At 10 %, the canary's share of 3000 requests is within 7–13 %.
#[tokio::test(flavor = "multi_thread")]
pub async fn ten_percent_split() {
    let n = two_versions(
        "",
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 10\n",
    );
    let mut canary = 0;
    for _ in 0..3000 {
        if version_for(&n, &[]).await == "v2" {
            canary += 1;
        }
    }
    let share = canary as f64 / 3000.0;
    eprintln!("canary share at 10%: {:.2}%", share * 100.0);
    assert!((0.07..=0.13).contains(&share), "{share}");
}

/// With `sticky`, every key sees one version, and raising the percentage never
/// moves a key off the canary.
#[tokio::test(flavor = "multi_thread")]
pub async fn sticky_keys_keep_their_version() {
    let n = two_versions(
        "[rollout]\nsticky = \"header:x-user-id\"\n",
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 10\n",
    );
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let mut on_canary: HashMap<String, bool> = HashMap::new();
    for percent in [10u8, 30, 60] {
        if percent != 10 {
            redeploy(
                &n,
                &format!("stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = {percent}\n"),
                percent,
            );
        }
        let mut canary = 0;
        for user in &users {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(version_for(&n, &[("x-user-id", user)]).await);
            }
            assert!(
                seen.iter().all(|v| *v == seen[0]),
                "{user} saw {seen:?} at {percent}%"
            );
            let now_canary = seen[0] == "v2";
            if let Some(before) = on_canary.get(user) {
                assert!(
                    !before || now_canary,
                    "{user} moved off the canary at {percent}%"
                );
            }
            on_canary.insert(user.clone(), now_canary);
            canary += usize::from(now_canary);
        }
        eprintln!("{percent}%: {canary} of 200 keys on the canary");
        assert!(canary > 0 && canary < 200);
    }
}

/// The override header picks a version of the deployment, and nothing else.
#[tokio::test(flavor = "multi_thread")]
pub async fn override_header() {
    let n = two_versions("", "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 0\n");
    for _ in 0..20 {
        assert_eq!(version_for(&n, &[("x-wedge-version", "v2")]).await, "v2");
        assert_eq!(version_for(&n, &[("x-wedge-version", "v1")]).await, "v1");
        assert_eq!(
            version_for(&n, &[]).await,
            "v1",
            "0 % means no canary traffic"
        );
        assert_eq!(
            version_for(&n, &[("x-wedge-version", "v9")]).await,
            "v1",
            "unknown labels are ignored"
        );
    }
}

/// A canary that always traps, at 50 %, is rolled back within its window;
/// `deployment.toml` records it and the state survives a restart.
#[tokio::test(flavor = "multi_thread")]
pub async fn failing_canary_rolls_back() {
    let b = node()
        .version("f", "v1", guests::SWAP_A)
        .version("f", "v2", guests::TRAP)
        .function_toml(
            "f",
            "[rollout]\nauto_rollback = { max_error_rate = 0.05, min_requests = 20, window = \"10s\" }\n",
        );
    std::fs::write(
        b.functions_dir().join("f/deployment.toml"),
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 50\n",
    )
    .unwrap();
    let mut n = b.start();
    let started = Instant::now();
    let failures = until_rolled_back(&n, "/f").await;
    eprintln!(
        "rolled back after {failures} failed requests in {:?}",
        started.elapsed()
    );
    let deployment = std::fs::read_to_string(n.dir().join("functions/f/deployment.toml")).unwrap();
    assert!(deployment.contains("canary_percent = 0"), "{deployment}");
    // Requests already on their way may still reach v2; after a moment only v1 serves.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..50 {
        assert_eq!(n.get("/f").await.text(), "A");
    }
    n.terminate();
    n.expect_exit(Duration::from_secs(10));
    n.restart();
    for _ in 0..50 {
        assert_eq!(
            n.get("/f").await.text(),
            "A",
            "the rollback survives a restart"
        );
    }
}

/// Sends `path` until the node logs that it rolled the canary back, within
/// 10 s; how many of the requests failed with a 500 meanwhile.
pub async fn until_rolled_back(n: &Node, path: &str) -> u32 {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        if n.get(path).await.status == 500 {
            failures += 1;
        }
        if n.log_lines()
            .iter()
            .any(|l| l.contains("canary rolled back automatically"))
        {
            return failures;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not rolled back within the window"
        );
    }
}

/// The canary clock restarts at every deployment change: a canary taken to
/// 0 % and back is not promoted at once for the time it had before.
#[tokio::test(flavor = "multi_thread")]
pub async fn canary_clock_restarts_with_the_deployment() {
    let n = two_versions(
        "[rollout]\npromote_after = \"3s\"\n",
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 20\n",
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for percent in [0, 20] {
        let reply = n
            .admin(
                Method::PUT,
                "/v1/functions/f/deployment",
                None,
                Bytes::from(format!(
                    r#"{{"stable":"v1","canary":"v2","canary_percent":{percent}}}"#
                )),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let changed = Instant::now();
    // The first clock would have run out 0.8 s from here.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !n.log_lines()
            .iter()
            .any(|l| l.contains("promoted automatically")),
        "promoted on the clock of the earlier deployment"
    );
    n.wait_for_log(Duration::from_secs(10), |l| {
        l.contains("promoted automatically")
    })
    .expect("promoted on its own clock");
    assert!(changed.elapsed() >= Duration::from_secs(3));
}

/// A healthy canary becomes stable on its own after `promote_after`.
#[tokio::test(flavor = "multi_thread")]
pub async fn healthy_canary_is_promoted() {
    let n = two_versions(
        "[rollout]\npromote_after = \"1s\"\n",
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 20\n",
    );
    n.wait_for_log(Duration::from_secs(10), |l| {
        l.contains("promoted automatically")
    })
    .expect("promoted");
    let deployment = std::fs::read_to_string(n.dir().join("functions/f/deployment.toml")).unwrap();
    assert!(deployment.contains("stable = \"v2\""), "{deployment}");
    assert!(
        deployment.contains("previous_stable = \"v1\""),
        "{deployment}"
    );
    for _ in 0..20 {
        assert_eq!(version_for(&n, &[]).await, "v2");
    }
}
