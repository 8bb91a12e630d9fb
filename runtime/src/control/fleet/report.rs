//! Each node's report to the fleet: every second, what it serves of each
//! fleet function, how far it is from the desired state, and each version's
//! requests, errors and latency. The report lives at
//! `<prefix>/fleet/nodes/<node>` under a lease of a few seconds, so a node
//! that dies drops out of `wedge status --fleet` by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions};

use super::{Fleet, FleetError, now_ms};
use crate::control::fleet::wire::{NodeFunction, NodeReport, NodeVersion};
use crate::node::NodeState;

/// How often a node reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How long a report outlives its node.
const REPORT_TTL_SECS: i64 = 5;

/// How long one report may take before the node gives up on its lease.
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The lease a node's report lives under, and its keep-alive stream.
struct ReportLease {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

/// The window reported for a function without `auto_rollback`.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Where the reports live.
pub fn nodes_prefix(prefix: &str) -> String {
    format!("{prefix}/fleet/nodes/")
}

impl Fleet {
    /// What this node would report now.
    pub fn report(&self, node: &NodeState, region: &str) -> NodeReport {
        let snapshot = node.snapshot();
        let progress = self.progress();
        let mut functions = BTreeMap::new();
        for (name, p) in &progress {
            let served = snapshot.get(name).filter(|f| f.fleet);
            let versions = served
                .map(|f| {
                    let window = f
                        .rollout
                        .auto_rollback
                        .as_ref()
                        .map_or(DEFAULT_WINDOW, |r| r.window.0);
                    f.versions
                        .iter()
                        .map(|(label, v)| {
                            let (requests, errors) = v.stats.totals();
                            let (window_requests, window_errors) = v.stats.recent(window);
                            let us = |q| v.stats.duration.quantile(q).map(|d| d.as_micros() as u64);
                            let figures = NodeVersion {
                                requests,
                                errors,
                                window_requests,
                                window_errors,
                                window_secs: window.as_secs(),
                                p50_us: us(0.5),
                                p99_us: us(0.99),
                            };
                            (label.clone(), figures)
                        })
                        .collect()
                })
                .unwrap_or_default();
            functions.insert(
                name.clone(),
                NodeFunction {
                    deployment: served.map(|f| f.deployment.clone()),
                    desired_revision: p.desired,
                    applied_revision: p.applied,
                    behind_since_ms: p.behind_since_ms,
                    error: p.error.clone(),
                    versions,
                },
            );
        }
        NodeReport {
            node: self.node.clone(),
            region: region.to_string(),
            at_ms: now_ms(),
            functions,
        }
    }

    /// Reports every [`REPORT_EVERY`] until the task is dropped.
    pub async fn report_forever(self: Arc<Self>, node: Arc<NodeState>, region: String) {
        let key = format!("{}{}", nodes_prefix(&self.prefix), self.node);
        let mut lease = None;
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let report = self.report(&node, &region);
            // A keep-alive stream has no deadline of its own.
            let put =
                tokio::time::timeout(REPORT_TIMEOUT, self.put_report(&key, &report, &mut lease));
            let failed = match put.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("etcd did not answer in time".to_string()),
            };
            if let Some(e) = failed {
                lease = None;
                tracing::debug!(target: "wedge::fleet", "cannot report to the fleet: {e}");
            }
        }
    }

    /// Puts `report` under the node's lease, kept alive on one stream, or
    /// under a new lease when the old one expired.
    async fn put_report(
        &self,
        key: &str,
        report: &NodeReport,
        lease: &mut Option<ReportLease>,
    ) -> Result<(), FleetError> {
        let mut client = self.client.clone();
        let alive = match lease.as_mut() {
            Some(l) => {
                l.keeper.keep_alive().await?;
                // A lease that expired meanwhile answers with a TTL of 0.
                matches!(l.stream.message().await?, Some(r) if r.ttl() > 0)
            }
            None => false,
        };
        let id = match lease.as_ref().filter(|_| alive) {
            Some(l) => l.id,
            None => {
                let id = client.lease_grant(REPORT_TTL_SECS, None).await?.id();
                let (keeper, stream) = client.lease_keep_alive(id).await?;
                *lease = Some(ReportLease { id, keeper, stream });
                id
            }
        };
        let text = serde_json::to_vec(report).expect("a report serializes");
        client
            .put(key, text, Some(PutOptions::new().with_lease(id)))
            .await?;
        Ok(())
    }

    /// Every live node's last report.
    pub async fn reports(&self) -> Result<BTreeMap<String, NodeReport>, FleetError> {
        let prefix = nodes_prefix(&self.prefix);
        let got = self
            .client
            .kv_client()
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(got
            .kvs()
            .iter()
            .filter_map(|kv| {
                let report: NodeReport = serde_json::from_slice(kv.value()).ok()?;
                Some((report.node.clone(), report))
            })
            .collect())
    }
}
