//! `wasi:keyvalue` (`store` and `atomics`, 0.2.0-draft2) and wedge's
//! `wedge:keyvalue/bounded` for components, on the node's own stores: the
//! same backends, `kv` permissions, durability, idempotent writes and
//! metrics as the `wedge` module's `kv_*` functions. A bucket is a store; a
//! counter is ASCII decimal, so a component and a WAGI handler share it.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::KvCtx;
use crate::store::backend::{KvError, MAX_PAGE, Store};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wedge:handler/keyvalue-host",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use bindings::wasi::keyvalue::atomics::{self, CasError};
use bindings::wasi::keyvalue::store::{self, Error, KeyResponse};
use bindings::wedge::keyvalue::bounded;

/// Buckets and swap handles one request may hold at once: each is host
/// memory outside the guest's cap (a swap handle holds a value of up to
/// 1 MiB).
const MAX_HANDLES: u32 = 32;

/// An open bucket: one of the node's stores.
pub struct Bucket {
    name: Arc<str>,
    store: Arc<dyn Store>,
}

/// A key's value as read, to swap if it is still that.
pub struct Cas {
    name: Arc<str>,
    store: Arc<dyn Store>,
    key: String,
    current: Option<Vec<u8>>,
}

/// A request's key-value state as its component sees it: the stores it may
/// open, the handles it holds, and the resource table they live in.
pub struct KvView<'a> {
    /// The stores the function may open.
    pub kv: &'a mut KvCtx,
    /// Buckets and swap handles open now, at most [`MAX_HANDLES`].
    pub handles: &'a mut u32,
    /// Where the handles live.
    pub table: &'a mut ResourceTable,
}

/// A component's store data that holds a request's key-value state.
pub trait KvHost: Send + 'static {
    /// The request's key-value state.
    fn kv_view(&mut self) -> KvView<'_>;
}

/// Hands the bindings a [`KvView`] of the store's data.
struct HasKv;

impl HasData for HasKv {
    type Data<'a> = KvView<'a>;
}

/// Adds the key-value interfaces to a component linker.
pub fn add_to_linker<T: KvHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKv>(linker, T::kv_view)?;
    atomics::add_to_linker::<_, HasKv>(linker, T::kv_view)?;
    bounded::add_to_linker::<_, HasKv>(linker, T::kv_view)
}

/// What a store's error tells the component; the metrics count it by kind.
fn to_error(e: KvError) -> Error {
    match e {
        KvError::AccessDenied => Error::AccessDenied,
        other => Error::Other(other.to_string()),
    }
}

impl KvView<'_> {
    /// Takes one of the request's handles, or refuses past [`MAX_HANDLES`].
    fn take_handle(&mut self) -> Result<(), Error> {
        if *self.handles >= MAX_HANDLES {
            return Err(Error::Other(format!(
                "more than {MAX_HANDLES} buckets and swap handles open in one request"
            )));
        }
        *self.handles += 1;
        Ok(())
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<(Arc<str>, Arc<dyn Store>)> {
        let b = self.table.get(bucket)?;
        Ok((b.name.clone(), b.store.clone()))
    }

    /// Counts `result` under store `name` and operation `op`.
    fn counted<T>(
        &self,
        name: &str,
        op: &'static str,
        result: Result<T, KvError>,
    ) -> Result<T, Error> {
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.kv.record(name, op, &outcome);
        result.map_err(to_error)
    }

    /// Reads `key` for a swap handle.
    async fn read_cas(
        &mut self,
        name: Arc<str>,
        store: Arc<dyn Store>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, Error>> {
        if let Err(e) = self.take_handle() {
            return Ok(Err(e));
        }
        let read = store.get(key.as_bytes()).await;
        let current = match self.counted(&name, "get", read) {
            Ok(current) => current,
            Err(e) => {
                *self.handles -= 1;
                return Ok(Err(e));
            }
        };
        let cas = Cas {
            name,
            store,
            key,
            current,
        };
        Ok(Ok(self.table.push(cas)?))
    }
}

impl store::Host for KvView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, Error>> {
        if let Err(e) = self.take_handle() {
            return Ok(Err(e));
        }
        let opened = self.kv.open_bucket(&identifier);
        // A name the function's `kv` list lacks is counted under no store:
        // the guest does not get to make up metric labels.
        let label = if matches!(opened, Err(KvError::AccessDenied)) {
            ""
        } else {
            identifier.as_str()
        };
        let store = match self.counted(label, "open", opened) {
            Ok(store) => store,
            Err(e) => {
                *self.handles -= 1;
                return Ok(Err(e));
            }
        };
        let bucket = Bucket {
            name: identifier.into(),
            store,
        };
        Ok(Ok(self.table.push(bucket)?))
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let result = store.get(key.as_bytes()).await;
        Ok(self.counted(&name, "get", result))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let op = self.kv.next_op();
        let result = async {
            store.set(op, key.as_bytes(), &value).await?;
            store.durable().await
        }
        .await;
        Ok(self.counted(&name, "set", result))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let op = self.kv.next_op();
        // Deleting a key that is not there is not an error in wasi:keyvalue.
        let result = async {
            store.delete(op, key.as_bytes()).await?;
            store.durable().await
        }
        .await;
        Ok(self.counted(&name, "delete", result))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let result = store.exists(key.as_bytes()).await;
        Ok(self.counted(&name, "exists", result))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<KeyResponse, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        // The cursor is the last key's bytes in hex: a key a WAGI handler
        // wrote as bytes that are not UTF-8 is listed lossily, but paging
        // goes on from its real bytes.
        let after = match cursor.as_deref().map(|c| hex::decode(c).ok()) {
            None => None,
            Some(Some(after)) => Some(after),
            Some(None) => return Ok(Err(Error::Other("not a cursor list-keys returned".into()))),
        };
        let result = store.list(b"", after.as_deref(), MAX_PAGE).await;
        Ok(self.counted(&name, "list", result).map(|page| {
            let cursor = page
                .more
                .then(|| page.keys.last().map(hex::encode))
                .flatten();
            let keys = page
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            KeyResponse { keys, cursor }
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        *self.handles = self.handles.saturating_sub(1);
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let op = self.kv.next_op();
        let result = async {
            let value = store
                .add(op, key.as_bytes(), delta, i64::MIN, i64::MAX)
                .await?;
            store.durable().await?;
            Ok(value)
        }
        .await;
        Ok(self.counted(&name, "add", result))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), CasError>> {
        let Cas {
            name,
            store,
            key,
            current,
        } = self.table.delete(cas)?;
        *self.handles = self.handles.saturating_sub(1);
        let op = self.kv.next_op();
        let result = async {
            let swapped = store
                .compare_and_swap(op, key.as_bytes(), current.as_deref(), &value)
                .await?;
            if swapped {
                store.durable().await?;
            }
            Ok(swapped)
        }
        .await;
        match self.counted(&name, "cas", result) {
            Ok(true) => Ok(Ok(())),
            Err(e) => Ok(Err(CasError::StoreError(e))),
            // Another writer was first: a fresh handle with what it wrote.
            Ok(false) => match self.read_cas(name, store, key).await? {
                Ok(fresh) => Ok(Err(CasError::CasFailed(fresh))),
                Err(e) => Ok(Err(CasError::StoreError(e))),
            },
        }
    }
}

impl atomics::HostCas for KvView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        self.read_cas(name, store, key).await
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        *self.handles = self.handles.saturating_sub(1);
        Ok(())
    }
}

impl bounded::Host for KvView<'_> {
    async fn add(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
        min: i64,
        max: i64,
    ) -> wasmtime::Result<Result<Option<i64>, Error>> {
        let (name, store) = self.bucket(&bucket)?;
        let op = self.kv.next_op();
        let result = async {
            let value = store.add(op, key.as_bytes(), delta, min, max).await?;
            store.durable().await?;
            Ok(value)
        }
        .await;
        match result {
            // Out of range changes nothing: the component hears `none`.
            Err(KvError::OutOfRange(_)) => {
                self.kv.record(&name, "add", &Err(KvError::OutOfRange(0)));
                Ok(Ok(None))
            }
            other => Ok(self.counted(&name, "add", other).map(Some)),
        }
    }
}
