//! The fleet's canary judge: one node, elected through etcd's election API,
//! adds up every node's reported figures for each canary and applies the
//! function's `auto_rollback` and `promote_after` to the fleet's totals. Its
//! decision goes into the desired state, so every node applies it within a
//! second or two. Every node campaigns; when the judge dies its lease
//! expires within [`LEASE_TTL_SECS`] and another node takes over.

use std::sync::Arc;
use std::time::Duration;

use super::desired::Desired;
use super::{Fleet, FleetError, now_ms};
use crate::config::FunctionConfig;
use crate::control::canary::{self, Verdict, Window};
use crate::control::fleet::wire::NodeReport;

/// How long the judge's lease outlives a judge that stopped answering.
pub const LEASE_TTL_SECS: i64 = 3;

/// How often the judge looks at the canaries.
const JUDGE_EVERY: Duration = Duration::from_millis(500);

/// The verdict on `desired`'s canary from every node's `reports`, if any:
/// [`canary::judge`] on the fleet's totals over the canary's window.
pub fn judge(
    name: &str,
    desired: &Desired,
    reports: &[&NodeReport],
    now_ms: u64,
) -> Option<Verdict> {
    let d = &desired.deployment;
    let canary = d.canary.as_ref().filter(|_| d.canary_percent > 0)?;
    let config = FunctionConfig::parse(
        &desired.function_toml,
        std::path::Path::new("function.toml"),
    )
    .ok()?;
    let window = reports
        .iter()
        .filter_map(|r| r.functions.get(name)?.versions.get(canary))
        .fold(Window::default(), |w, v| Window {
            requests: w.requests + v.window_requests,
            errors: w.errors + v.window_errors,
        });
    let age = Duration::from_millis(now_ms.saturating_sub(desired.since_ms));
    canary::judge(&config.rollout, window, age)
}

impl Fleet {
    /// Campaigns to be the judge, and judges while elected, until the task
    /// is dropped.
    pub async fn judge_forever(self: Arc<Self>) {
        loop {
            if let Err(e) = self.campaign_and_judge().await {
                tracing::debug!(target: "wedge::fleet", "canary judge: {e}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn election(&self) -> String {
        format!("{}/fleet/judge", self.prefix)
    }

    /// The node that judges now, if one does.
    pub async fn judge_node(&self) -> Option<String> {
        let got = self
            .client
            .election_client()
            .leader(self.election())
            .await
            .ok()?;
        Some(String::from_utf8_lossy(got.kv()?.value()).into_owned())
    }

    async fn campaign_and_judge(&self) -> Result<(), FleetError> {
        let mut client = self.client.clone();
        let lease = client.lease_grant(LEASE_TTL_SECS, None).await?.id();
        let (mut keeper, mut alive) = client.lease_keep_alive(lease).await?;
        let mut keep =
            tokio::time::interval(Duration::from_millis((LEASE_TTL_SECS as u64 * 1000) / 3));
        // Campaigning waits until this node is elected; each call is bounded
        // by the client's timeout, and a new call with the same lease
        // continues the same candidacy.
        let mut election = client.election_client();
        loop {
            tokio::select! {
                elected = election.campaign(self.election(), self.node.clone(), lease) => {
                    match elected {
                        Ok(_) => break,
                        Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::DeadlineExceeded => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                _ = keep.tick() => {
                    keeper.keep_alive().await?;
                    match alive.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        _ => return Ok(()),
                    }
                }
            }
        }
        tracing::info!(target: "wedge::fleet", node = %self.node, "elected the fleet's canary judge");
        let mut every = tokio::time::interval(JUDGE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => self.judge_once().await,
                _ = keep.tick() => {
                    keeper.keep_alive().await?;
                    match alive.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        _ => {
                            tracing::warn!(target: "wedge::fleet", "lost the canary judge's lease");
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    async fn judge_once(&self) {
        let (desired, reports) = match (self.desired().await, self.reports().await) {
            (Ok(d), Ok(r)) => (d, r),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(target: "wedge::fleet", "canary judge cannot read the fleet: {e}");
                return;
            }
        };
        let reports: Vec<&NodeReport> = reports.values().collect();
        for (name, (d, _)) in &desired {
            let Some(verdict) = judge(name, d, &reports, now_ms()) else {
                continue;
            };
            let canary = d.deployment.canary.clone();
            let (reason, result) = match &verdict {
                Verdict::RollBack(Window { requests, errors }) => {
                    let reason = format!(
                        "canary {} rolled back by the fleet's judge ({}): {errors} errors in {requests} requests",
                        canary.as_deref().unwrap_or("?"),
                        self.node
                    );
                    let done = self
                        .deploy(name, &reason, |now| {
                            // Only the canary judged, still taking traffic.
                            match now.deployment.canary == canary
                                && now.deployment.canary_percent > 0
                            {
                                true => now.deployment.rolled_back(name),
                                false => Err("the canary changed meanwhile".into()),
                            }
                        })
                        .await;
                    (reason, done)
                }
                Verdict::Promote => {
                    let reason = format!(
                        "canary {} promoted by the fleet's judge ({}) after promote_after",
                        canary.as_deref().unwrap_or("?"),
                        self.node
                    );
                    let done = self
                        .deploy(name, &reason, |now| match now.deployment.canary == canary {
                            true => now.deployment.promoted(name),
                            false => Err("the canary changed meanwhile".into()),
                        })
                        .await;
                    (reason, done)
                }
            };
            match result {
                Ok(_) => tracing::warn!(target: "wedge::rollout", function = %name, "{reason}"),
                Err(e) => {
                    tracing::info!(target: "wedge::rollout", function = %name, "no canary decision: {e}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Deployment;
    use crate::control::fleet::wire::{NodeFunction, NodeVersion};

    fn desired(toml: &str) -> Desired {
        Desired {
            function_toml: toml.into(),
            versions: BTreeMap::new(),
            deployment: Deployment {
                stable: "v1".into(),
                canary: Some("v2".into()),
                canary_percent: 50,
                previous_stable: None,
            },
            since_ms: 1_000,
            reason: String::new(),
        }
    }

    fn report(requests: u64, errors: u64) -> NodeReport {
        let version = NodeVersion {
            window_requests: requests,
            window_errors: errors,
            ..NodeVersion::default()
        };
        let function = NodeFunction {
            versions: BTreeMap::from([("v2".to_string(), version)]),
            ..NodeFunction::default()
        };
        NodeReport {
            functions: BTreeMap::from([("f".to_string(), function)]),
            ..NodeReport::default()
        }
    }

    #[test]
    fn the_fleet_totals_are_judged_not_one_node() {
        let d = desired(
            "[rollout.auto_rollback]\nwindow = \"10s\"\nmin_requests = 30\nmax_error_rate = 0.2\n",
        );
        let nodes = [report(12, 12), report(12, 12), report(12, 12)];
        // No node alone reaches min_requests; the fleet does.
        assert_eq!(judge("f", &d, &[&nodes[0]], 2_000), None);
        let all: Vec<&NodeReport> = nodes.iter().collect();
        assert_eq!(
            judge("f", &d, &all, 2_000),
            Some(Verdict::RollBack(Window {
                requests: 36,
                errors: 36
            }))
        );
        let healthy = [report(40, 1)];
        assert_eq!(judge("f", &d, &[&healthy[0]], 2_000), None);
    }

    #[test]
    fn a_healthy_canary_is_promoted_after_its_time() {
        let d = desired("[rollout]\npromote_after = \"5s\"\n");
        assert_eq!(judge("f", &d, &[], 5_999), None);
        assert_eq!(judge("f", &d, &[], 6_000), Some(Verdict::Promote));
    }
}
