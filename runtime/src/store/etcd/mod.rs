//! The etcd backend: the stores live in the cluster's etcd, so every node sees
//! the same values and `add` and `compare_and_swap` are linearizable across
//! the fleet.
//!
//! - [`store`]: one named store; writes are transactions with an op record.
//! - [`call`]: deadlines, retries and etcd's errors as statuses.
//! - [`lease`]: the rotating lease op records live under.
//! - [`escrow`]: blocks of hot counters sold locally (`[store.escrow]`).
//!
//! A probe reads from etcd every second (every 200 ms while it fails). While
//! etcd cannot answer, calls fail at once with `io`, `/readyz` says why and
//! `wedge_store_ready` is 0; when it answers again, calls resume by themselves.

pub mod call;
pub mod escrow;
pub mod lease;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{ClusterConfig, StoreConfig};
use crate::store::backend::{Backend, KvError, Reclaimed, Store, check_store_name};
use crate::store::health::StoreHealth;
use call::{Failure, classify};
use escrow::ledger::Ledger;
use escrow::{Escrow, EscrowStore};
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

    /// One call, retried until `deadline`; at once `io` while the probe
    /// finds etcd unreachable.
    async fn call<T, F, Fut>(&self, deadline: Instant, attempt: F) -> Result<T, KvError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.ready()?;
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
    node: String,
    escrow: Option<Arc<Escrow>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl EtcdBackend {
    /// Connects to the cluster's etcd. etcd need not be up: calls fail with
    /// `io` until it is, and the node serves meanwhile.
    pub async fn connect(cluster: &ClusterConfig, store: &StoreConfig) -> Result<Self, KvError> {
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
        let mut tasks = vec![tokio::spawn(probe_forever(shared.clone()))];
        let escrow = match store.escrow.is_empty() {
            true => None,
            false => {
                let dir = store.dir.join("escrow");
                let (durability, interval) = (store.durability, store.flush_interval.0);
                let ledger =
                    tokio::task::spawn_blocking(move || Ledger::open(&dir, durability, interval))
                        .await
                        .map_err(|e| KvError::Io(e.to_string()))??;
                let escrow = Arc::new(Escrow::new(
                    shared.clone(),
                    ledger,
                    cluster.node.clone(),
                    store.escrow.clone(),
                ));
                tasks.push(tokio::spawn(escrow.clone().settle_forever()));
                Some(escrow)
            }
        };
        Ok(Self {
            shared,
            node: cluster.node.clone(),
            escrow,
            tasks,
        })
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    fn open(&self, name: &str) -> Result<Arc<dyn Store>, KvError> {
        check_store_name(name)?;
        let inner = EtcdStore {
            shared: self.shared.clone(),
            base: format!("{}/kv/{name}/", self.shared.prefix).into_bytes(),
        };
        match self
            .escrow
            .as_ref()
            .and_then(|e| Some((e, e.config(name)?)))
        {
            Some((escrow, config)) => Ok(Arc::new(EscrowStore {
                inner,
                escrow: escrow.clone(),
                name: name.to_string(),
                config: config.clone(),
            })),
            None => Ok(Arc::new(inner)),
        }
    }

    async fn close(&self) -> Result<(), KvError> {
        // Every acknowledged write is already committed in etcd; escrowed
        // units go back to the pools for the other nodes to sell.
        if let Some(escrow) = &self.escrow {
            let given = escrow.give_back_all().await?;
            tracing::info!(target: "wedge::kv", units = given, "escrowed units given back");
        }
        Ok(())
    }

    fn health(&self) -> &StoreHealth {
        &self.shared.health
    }

    async fn reclaim(&self, node: &str) -> Result<Vec<Reclaimed>, KvError> {
        if node == self.node {
            return Err(KvError::Invalid(
                "a node cannot reclaim its own units; stop it, or reclaim it from another node",
            ));
        }
        let deadline = Instant::now() + self.shared.timeout * 4;
        let done = escrow::grants::reclaim(&self.shared, node, deadline).await?;
        for (store, key, units) in &done {
            tracing::warn!(
                target: "wedge::kv",
                node,
                store,
                key = %String::from_utf8_lossy(key),
                units,
                "reclaimed a dead node's escrowed units"
            );
        }
        Ok(done
            .into_iter()
            .map(|(store, key, units)| Reclaimed { store, key, units })
            .collect())
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
