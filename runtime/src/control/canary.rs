//! The canary rule, written once: a pure function of the canary's counts over
//! its `auto_rollback` window and its age. A node applies it to the canaries
//! of its own functions; the fleet's elected judge applies it to the totals
//! every node reports.

use std::time::Duration;

use crate::config::RolloutConfig;

/// Requests a canary served, and how many failed, over its window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx.
    pub errors: u64,
}

impl Window {
    /// The share of requests that failed; 0 with none.
    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.requests.max(1) as f64
    }
}

/// A decision about one canary.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Over its error budget: roll it back.
    RollBack(Window),
    /// Healthy for `promote_after`: promote it.
    Promote,
}

/// The verdict on a canary that has taken traffic for `age`, with `window`
/// its counts over `rollout.auto_rollback`'s window; `None` to leave it be.
/// Rolling back comes first: a canary over its error budget is never
/// promoted, however long it has run.
pub fn judge(rollout: &RolloutConfig, window: Window, age: Duration) -> Option<Verdict> {
    if let Some(rb) = &rollout.auto_rollback
        && window.requests >= rb.min_requests
        && window.error_rate() > rb.max_error_rate
    {
        return Some(Verdict::RollBack(window));
    }
    let after = rollout.promote_after?;
    (age >= after.0).then_some(Verdict::Promote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AutoRollback, HumanDuration};

    fn rollout(promote_after: Option<u64>) -> RolloutConfig {
        RolloutConfig {
            sticky: None,
            auto_rollback: Some(AutoRollback {
                max_error_rate: 0.1,
                min_requests: 20,
                window: HumanDuration(Duration::from_secs(60)),
            }),
            promote_after: promote_after.map(|s| HumanDuration(Duration::from_secs(s))),
        }
    }

    fn window(requests: u64, errors: u64) -> Window {
        Window { requests, errors }
    }

    #[test]
    fn over_budget_with_enough_requests_rolls_back() {
        let r = rollout(None);
        let w = window(20, 3);
        assert_eq!(judge(&r, w, Duration::ZERO), Some(Verdict::RollBack(w)));
    }

    #[test]
    fn too_few_requests_or_within_budget_hold() {
        let r = rollout(None);
        assert_eq!(judge(&r, window(19, 19), Duration::ZERO), None);
        assert_eq!(judge(&r, window(100, 10), Duration::ZERO), None);
    }

    #[test]
    fn a_healthy_canary_is_promoted_once_old_enough() {
        let r = rollout(Some(30));
        assert_eq!(judge(&r, window(100, 0), Duration::from_secs(29)), None);
        assert_eq!(
            judge(&r, window(100, 0), Duration::from_secs(30)),
            Some(Verdict::Promote)
        );
    }

    #[test]
    fn a_failing_canary_is_never_promoted() {
        let r = rollout(Some(1));
        let w = window(50, 50);
        assert_eq!(
            judge(&r, w, Duration::from_secs(3600)),
            Some(Verdict::RollBack(w))
        );
    }
}
