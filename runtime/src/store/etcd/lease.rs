//! The lease that operation records live under. Records must outlast any
//! retry of their call but not pile up, so the lease is never kept alive: a
//! new one is granted every [`ROTATE`], and each expires [`TTL_SECS`] after
//! its grant, taking its records with it. A record thus lives between one and
//! two minutes.

use std::sync::Mutex;
use std::time::Duration;

use etcd_client::Client;
use tokio::time::Instant;

/// How long a lease lives after its grant.
pub const TTL_SECS: i64 = 120;
/// How long a lease takes new records; well inside [`TTL_SECS`].
pub const ROTATE: Duration = Duration::from_secs(60);

/// The current op-record lease, granted on first use and rotated.
pub struct OpLease {
    client: Client,
    current: Mutex<Option<(i64, Instant)>>,
    /// One grant at a time: calls that find the lease stale wait for it.
    granting: tokio::sync::Mutex<()>,
}

impl OpLease {
    /// No lease yet: the first write grants one.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            current: Mutex::new(None),
            granting: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<i64> {
        let current = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .filter(|(_, at)| at.elapsed() < ROTATE)
            .map(|(id, _)| id)
    }

    /// The lease to put a new record under.
    pub async fn id(&self) -> Result<i64, etcd_client::Error> {
        if let Some(id) = self.fresh() {
            return Ok(id);
        }
        let _one = self.granting.lock().await;
        if let Some(id) = self.fresh() {
            return Ok(id);
        }
        let granted = self.client.lease_client().grant(TTL_SECS, None).await?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((granted.id(), Instant::now()));
        Ok(granted.id())
    }

    /// Forgets the current lease (etcd says it is gone); the next call grants one.
    pub fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
