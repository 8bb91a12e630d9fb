//! The guest-facing functions of the `wedge` module, and the per-request state
//! they work on. Every function returns a status code (see [`crate::host::abi::status`]);
//! results go to out-pointers the guest passes.
//!
//! Every function is an async host function: the guest's fiber suspends while
//! a call waits on the network (etcd) or on the disk (`Store::durable`), and the
//! worker thread serves other requests meanwhile. sled's reads and writes act on
//! memory and complete without suspending. Moving every sled call to another
//! thread (`block_in_place`) measured 3x slower for reservations: 10.3k against
//! 31.7k req/s.
//!
//! Each write gets an [`OpId`]. When the request carries an `Idempotency-Key`
//! header, the ids derive from it and the call's place among the request's
//! writes, so the same request sent again (to any node) replays its writes'
//! results instead of applying them twice.

use std::sync::Arc;

use wasmtime::{Caller, Linker};

use crate::host::abi::ABI_VERSION;
use crate::host::abi::status::OK;
use crate::host::memory::{self, memory};
use crate::store::backend::{Backend, KvError, MAX_KEY, MAX_PAGE, OpId, Page, Store};
use crate::telemetry::Telemetry;

/// A request's view of the key-value stores: which ones it may open, and the
/// ones it has.
pub struct KvCtx {
    backend: Arc<dyn Backend>,
    /// The function's `kv` list.
    allowed: Arc<[String]>,
    /// Open stores; a handle is an index into this list.
    open: Vec<(usize, Arc<dyn Store>)>,
    /// Counts every operation by store, operation and result.
    telemetry: Arc<Telemetry>,
    /// The function, and the client's idempotency key for this request.
    idempotency: Option<(Arc<str>, Vec<u8>)>,
    /// Writes made so far.
    writes: u32,
}

/// Most stores one request may have open.
const MAX_OPEN: usize = 16;

impl KvCtx {
    /// A context that may open the stores in `allowed`.
    pub fn new(
        backend: Arc<dyn Backend>,
        allowed: Arc<[String]>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            backend,
            allowed,
            open: Vec::new(),
            telemetry,
            idempotency: None,
            writes: 0,
        }
    }

    /// Names this request's writes after the client's idempotency key.
    pub fn with_idempotency_key(mut self, function: Arc<str>, key: &[u8]) -> Self {
        self.idempotency = Some((function, key.to_vec()));
        self
    }

    /// The id of the next write.
    pub fn next_op(&mut self) -> OpId {
        let ordinal = self.writes;
        self.writes += 1;
        match &self.idempotency {
            Some((function, key)) => OpId::derived(function, key, ordinal),
            None => OpId::random(),
        }
    }

    /// Counts an operation on `handle`'s store and turns its result into a status.
    fn finish(&self, handle: i32, op: &'static str, result: Result<(), KvError>) -> i32 {
        let store = usize::try_from(handle)
            .ok()
            .and_then(|h| self.open.get(h))
            .map(|(i, _)| self.allowed[*i].as_str())
            .unwrap_or("");
        self.telemetry.record_kv(store, op, result_label(&result));
        code(result)
    }

    /// Opens store `name` for a component's `wasi:keyvalue` bucket: the
    /// same `kv` list and limit of open stores as the `wedge` module's `kv_open`.
    pub fn open_bucket(&mut self, name: &str) -> Result<Arc<dyn Store>, KvError> {
        let handle = self.open_store(name)?;
        self.store(handle as i32)
    }

    /// Counts an operation on store `name` by its result.
    pub fn record(&self, name: &str, op: &'static str, result: &Result<(), KvError>) {
        self.telemetry.record_kv(name, op, result_label(result));
    }

    fn open_store(&mut self, name: &str) -> Result<u32, KvError> {
        let index = self
            .allowed
            .iter()
            .position(|a| a == name)
            .ok_or(KvError::AccessDenied)?;
        if let Some(handle) = self.open.iter().position(|(i, _)| *i == index) {
            return Ok(handle as u32);
        }
        if self.open.len() == MAX_OPEN {
            return Err(KvError::Invalid("too many open stores"));
        }
        let store = self.backend.open(name)?;
        self.open.push((index, store));
        Ok((self.open.len() - 1) as u32)
    }

    fn store(&self, handle: i32) -> Result<Arc<dyn Store>, KvError> {
        usize::try_from(handle)
            .ok()
            .and_then(|h| self.open.get(h))
            .map(|(_, s)| s.clone())
            .ok_or(KvError::Invalid("unknown store handle"))
    }
}

fn result_label(result: &Result<(), KvError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(KvError::NotFound) => "not_found",
        Err(KvError::AccessDenied) => "access_denied",
        Err(KvError::OutOfRange(_)) => "out_of_range",
        Err(KvError::TooLarge) => "too_large",
        Err(KvError::Invalid(_)) => "invalid",
        Err(KvError::Io(_)) => "io",
    }
}

fn code(result: Result<(), KvError>) -> i32 {
    match result {
        Ok(()) => OK,
        Err(e) => e.code(),
    }
}

/// Adds the `wedge` module to `linker`; `ctx` finds a request's [`KvCtx`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    ctx: fn(&mut T) -> &mut KvCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap("wedge", "abi_version", || ABI_VERSION)?;

    linker.func_wrap(
        "wedge",
        "kv_open",
        move |mut caller: Caller<'_, T>, name_ptr: i32, name_len: i32, handle_out: i32| -> i32 {
            // The metric is labelled with the store only when the function
            // declares it: a guest must not mint label values of its own.
            let mut declared = None;
            let result = (|| {
                let mem = memory(&mut caller)?;
                let name = memory::read(mem, &caller, name_ptr, name_len)?;
                let name = std::str::from_utf8(&name)
                    .map_err(|_| KvError::Invalid("store name is not UTF-8"))?;
                memory::check(mem, &caller, handle_out, 4)?;
                let kv = ctx(caller.data_mut());
                declared = kv.allowed.iter().position(|a| a == name);
                let handle = kv.open_store(name)?;
                memory::write(mem, &mut caller, handle_out, &handle.to_le_bytes())
            })();
            let kv = ctx(caller.data_mut());
            let store = declared.map_or("", |i| kv.allowed[i].as_str());
            kv.telemetry.record_kv(store, "open", result_label(&result));
            code(result)
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_get",
        move |mut caller: Caller<'_, T>,
              (h, key_ptr, key_len, buf, cap, len_out): (i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    memory::check(mem, &caller, len_out, 4)?;
                    memory::check(mem, &caller, buf, cap as u32 as usize)?;
                    let store = ctx(caller.data_mut()).store(h)?;
                    let value = store.get(&key).await?.ok_or(KvError::NotFound)?;
                    memory::write_sized(mem, &mut caller, buf, cap, len_out, &value)
                }
                .await;
                ctx(caller.data_mut()).finish(h, "get", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_exists",
        move |mut caller: Caller<'_, T>, (h, key_ptr, key_len): (i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    let store = ctx(caller.data_mut()).store(h)?;
                    if store.exists(&key).await? {
                        Ok(())
                    } else {
                        Err(KvError::NotFound)
                    }
                }
                .await;
                ctx(caller.data_mut()).finish(h, "exists", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_list",
        move |mut caller: Caller<'_, T>,
              (h, prefix_ptr, prefix_len, after_ptr, after_len, buf, cap, out): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
        )| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let prefix = memory::read(mem, &caller, prefix_ptr, prefix_len)?;
                    let after = memory::read(mem, &caller, after_ptr, after_len)?;
                    if prefix.len() > MAX_KEY {
                        return Err(KvError::TooLarge);
                    }
                    memory::check(mem, &caller, out, 12)?;
                    memory::check(mem, &caller, buf, cap as u32 as usize)?;
                    let store = ctx(caller.data_mut()).store(h)?;
                    let after = (!after.is_empty()).then_some(after.as_slice());
                    let page = store.list(&prefix, after, MAX_PAGE).await?;
                    let (encoded, summary) = encode_page(&page, cap as u32 as usize)?;
                    memory::write(mem, &mut caller, buf, &encoded)?;
                    memory::write(mem, &mut caller, out, &summary)
                }
                .await;
                ctx(caller.data_mut()).finish(h, "list", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_set",
        move |mut caller: Caller<'_, T>,
              (h, key_ptr, key_len, val_ptr, val_len): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    let value = memory::read(mem, &caller, val_ptr, val_len)?;
                    let kv = ctx(caller.data_mut());
                    let (store, op) = (kv.store(h)?, kv.next_op());
                    store.set(op, &key, &value).await?;
                    store.durable().await
                }
                .await;
                ctx(caller.data_mut()).finish(h, "set", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_delete",
        move |mut caller: Caller<'_, T>, (h, key_ptr, key_len): (i32, i32, i32)| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    let kv = ctx(caller.data_mut());
                    let (store, op) = (kv.store(h)?, kv.next_op());
                    if !store.delete(op, &key).await? {
                        return Err(KvError::NotFound);
                    }
                    store.durable().await
                }
                .await;
                ctx(caller.data_mut()).finish(h, "delete", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_add",
        move |mut caller: Caller<'_, T>,
              (h, key_ptr, key_len, delta, min, max, value_out): (
            i32,
            i32,
            i32,
            i64,
            i64,
            i64,
            i32,
        )| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    memory::check(mem, &caller, value_out, 8)?;
                    let kv = ctx(caller.data_mut());
                    let (store, op) = (kv.store(h)?, kv.next_op());
                    let result = store.add(op, &key, delta, min, max).await;
                    // The guest learns the value either way: the new one, or the
                    // current one when the add was refused.
                    if let Ok(v) | Err(KvError::OutOfRange(v)) = &result {
                        memory::write(mem, &mut caller, value_out, &v.to_le_bytes())?;
                    }
                    result?;
                    store.durable().await
                }
                .await;
                ctx(caller.data_mut()).finish(h, "add", result)
            })
        },
    )?;

    linker.func_wrap_async(
        "wedge",
        "kv_cas",
        move |mut caller: Caller<'_, T>,
              (h, key_ptr, key_len, exp_ptr, exp_len, new_ptr, new_len, swapped_out): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
        )| {
            Box::new(async move {
                let result = async {
                    let mem = memory(&mut caller)?;
                    let key = memory::read(mem, &caller, key_ptr, key_len)?;
                    // A length of -1 means "expect the key to be absent".
                    let expected = match exp_len {
                        -1 => None,
                        _ => Some(memory::read(mem, &caller, exp_ptr, exp_len)?),
                    };
                    let new = memory::read(mem, &caller, new_ptr, new_len)?;
                    memory::check(mem, &caller, swapped_out, 4)?;
                    let kv = ctx(caller.data_mut());
                    let (store, op) = (kv.store(h)?, kv.next_op());
                    let swapped = store
                        .compare_and_swap(op, &key, expected.as_deref(), &new)
                        .await?;
                    if swapped {
                        store.durable().await?;
                    }
                    memory::write(
                        mem,
                        &mut caller,
                        swapped_out,
                        &u32::from(swapped).to_le_bytes(),
                    )
                }
                .await;
                ctx(caller.data_mut()).finish(h, "cas", result)
            })
        },
    )?;

    Ok(())
}

/// A `list` page as the guest reads it: each key a little-endian u32 length and
/// its bytes, as many as fit in `cap`; and the summary (bytes written, keys,
/// whether more follow).
fn encode_page(page: &Page, cap: usize) -> Result<(Vec<u8>, [u8; 12]), KvError> {
    let mut encoded = Vec::new();
    let mut count = 0u32;
    for key in &page.keys {
        if encoded.len() + 4 + key.len() > cap {
            break;
        }
        encoded.extend_from_slice(&(key.len() as u32).to_le_bytes());
        encoded.extend_from_slice(key);
        count += 1;
    }
    if count == 0 && !page.keys.is_empty() {
        return Err(KvError::TooLarge);
    }
    let more = page.more || (count as usize) < page.keys.len();
    let mut summary = [0u8; 12];
    summary[..4].copy_from_slice(&(encoded.len() as u32).to_le_bytes());
    summary[4..8].copy_from_slice(&count.to_le_bytes());
    summary[8..].copy_from_slice(&u32::from(more).to_le_bytes());
    Ok((encoded, summary))
}
