//! The etcd backend: the stores live in the cluster's etcd, so every node sees
//! the same values and `add` and `compare_and_swap` are linearizable across
//! the fleet.
//!
//! - [`store`]: one named store; writes are transactions with an op record.
//! - [`call`]: deadlines, retries and etcd's errors as statuses.
//! - [`lease`]: the rotating lease op records live under.
//!
//! A probe reads from etcd every second (every 200 ms while it fails). While
//! etcd cannot answer, calls fail at once with `io`, `/readyz` says why and
//! `wedge_store_ready` is 0; when it answers again, calls resume by themselves.

pub mod call;
pub mod lease;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ClusterConfig;
use crate::kv::health::StoreHealth;
use crate::kv::store::{Backend, KvError, Store, check_store_name};
use call::{Failure, classify};
use lease::OpLease;
use store::EtcdStore;

/// How often the probe reads while etcd answers, and while it does not.
const PROBE_HEALTHY: Duration = Duration::from_secs(1);
const PROBE_FAILING: Duration = Duration::from_millis(200);

/// What every store of the backend shares.
pub(crate) struct Shared {
    client: Client,
    prefix: String,
    timeout: Duration,
    lease: OpLease,
    health: StoreHealth,
    /// Wakes the probe early when a call could not reach etcd.
    suspect: Notify,
    /// Counter updates of one node take turns per key (by stripe), so the
    /// compare-and-retry of `add` contends with other nodes only, not with
    /// this node's own concurrent requests. Each stripe remembers the last
    /// counter it wrote: its key, value and revision.
    stripes: Box<[tokio::sync::Mutex<LastWrite>]>,
}

/// A stripe's last counter write: the key, and its value and revision.
pub(crate) type LastWrite = Option<(Vec<u8>, store::Read)>;

/// Lock stripes for counter updates; a fixed number, whatever keys guests use.
const STRIPES: usize = 256;

impl Shared {
    /// The turn to update `key` on this node.
    async fn turn(
        &self,
        key: &[u8],
    ) -> tokio::sync::MutexGuard<'_, Option<(Vec<u8>, store::Read)>> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(key);
        self.stripes[hash as usize % STRIPES].lock().await
    }

    /// Fails at once while the probe finds etcd unreachable.
    fn ready(&self) -> Result<(), KvError> {
        match self.health.ready() {
            true => Ok(()),
            false => Err(KvError::Io(
                self.health
                    .problem()
                    .unwrap_or_else(|| "etcd is unreachable".into()),
            )),
        }
    }

    /// One call, retried until `deadline`.
    async fn call<T, F, Fut>(&self, deadline: Instant, attempt: F) -> Result<T, KvError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let result = call::retrying(deadline, attempt, || async {
            self.lease.forget();
            Ok(())
        })
        .await;
        if let Err(KvError::Io(_)) = &result {
            self.health.counted();
            self.suspect.notify_one();
        }
        result
    }
}

/// Stores in etcd.
pub struct EtcdBackend {
    shared: Arc<Shared>,
    probe: tokio::task::JoinHandle<()>,
}

impl EtcdBackend {
    /// Connects to the cluster's etcd. etcd need not be up: calls fail with
    /// `io` until it is, and the node serves meanwhile.
    pub async fn connect(cluster: &ClusterConfig) -> Result<Self, KvError> {
        let timeout = cluster.timeout.0;
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout.min(Duration::from_secs(1)))
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member without a leader answers at once instead of waiting.
            .with_require_leader(true);
        let client = Client::connect(&cluster.etcd, Some(options))
            .await
            .map_err(|e| KvError::Io(format!("cannot use etcd {:?}: {e}", cluster.etcd)))?;
        let shared = Arc::new(Shared {
            lease: OpLease::new(client.clone()),
            client,
            prefix: cluster.prefix.clone(),
            timeout,
            health: StoreHealth::default(),
            suspect: Notify::new(),
            stripes: (0..STRIPES)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
        });
        let probe = tokio::spawn(probe_forever(shared.clone()));
        Ok(Self { shared, probe })
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    fn open(&self, name: &str) -> Result<Arc<dyn Store>, KvError> {
        check_store_name(name)?;
        Ok(Arc::new(EtcdStore {
            shared: self.shared.clone(),
            base: format!("{}/kv/{name}/", self.shared.prefix).into_bytes(),
        }))
    }

    async fn close(&self) -> Result<(), KvError> {
        // Every acknowledged write is already committed in etcd.
        Ok(())
    }

    fn health(&self) -> &StoreHealth {
        &self.shared.health
    }
}

/// Reads one key with a quorum read, so a member cut off from its cluster
/// does not count as reachable. Marks the backend ready or not.
async fn probe_forever(shared: Arc<Shared>) {
    let key = format!("{}/health", shared.prefix);
    let budget = shared.timeout.min(Duration::from_secs(1));
    loop {
        let mut kv = shared.client.kv_client();
        let read = kv.get(key.as_str(), Some(GetOptions::new().with_count_only()));
        let outcome = match tokio::time::timeout(budget, read).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match classify(&e) {
                Failure::Retry(why) => why,
                Failure::LeaseGone => e.to_string(),
                Failure::Fatal(e) => e.to_string(),
            }),
            Err(_) => Err(format!("etcd did not answer within {budget:?}")),
        };
        let pause = match outcome {
            Ok(()) => {
                if !shared.health.ready() {
                    shared.health.recovered();
                    tracing::info!(target: "wedge::kv", "etcd answers again; store calls resume");
                }
                PROBE_HEALTHY
            }
            Err(why) => {
                if shared.health.ready() {
                    tracing::error!(target: "wedge::kv", "etcd unreachable, store calls fail with io: {why}");
                    shared.health.failed(&why);
                }
                PROBE_FAILING
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shared.suspect.notified() => {}
        }
    }
}
