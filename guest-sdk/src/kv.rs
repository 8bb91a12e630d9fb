//! Durable key-value stores, opened by name.
//!
//! A function may open only the stores listed in `kv` in its `function.toml`
//! (by default, one named after the function). Writes are on disk before they
//! return when the node runs with `durability = "sync"`.
//!
//! ```no_run
//! use wedge_sdk::kv::{Error, Store};
//!
//! let stock = Store::open("inventory")?;
//! stock.set("sku-1", "10")?;
//! match stock.add("sku-1", -3, 0, i64::MAX) {
//!     Ok(left) => println!("reserved, {left} left"),
//!     Err(Error::OutOfRange { current }) => println!("only {current} left"),
//!     Err(e) => return Err(e),
//! }
//! # Ok::<(), Error>(())
//! ```
#![allow(unsafe_code)]

use std::fmt;

/// Why a key-value call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The key does not exist.
    NotFound,
    /// The store is not declared in the function's `kv` list.
    AccessDenied,
    /// `add` would have left its bounds; nothing changed.
    OutOfRange {
        /// The counter's value, unchanged.
        current: i64,
    },
    /// A key over 1 KiB or a value over 1 MiB.
    TooLarge,
    /// A bad argument, such as an empty key or a value that is not a counter.
    Invalid,
    /// The node's storage failed.
    Io,
    /// Not running inside wedge: the `wedge` host module is only there.
    Unavailable,
    /// A status this SDK does not know.
    Unknown(i32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::AccessDenied => {
                f.write_str("access denied: store not declared in function.toml `kv`")
            }
            Self::OutOfRange { current } => write!(f, "out of range (current value {current})"),
            Self::TooLarge => f.write_str("key or value too large"),
            Self::Invalid => f.write_str("invalid argument"),
            Self::Io => f.write_str("storage error"),
            Self::Unavailable => f.write_str("key-value stores are only available inside wedge"),
            Self::Unknown(code) => write!(f, "unknown status {code}"),
        }
    }
}

impl std::error::Error for Error {}

fn check(status: i32) -> Result<(), Error> {
    match status {
        0 => Ok(()),
        1 => Err(Error::NotFound),
        2 => Err(Error::AccessDenied),
        3 => Err(Error::OutOfRange { current: 0 }),
        4 => Err(Error::TooLarge),
        5 => Err(Error::Invalid),
        6 => Err(Error::Io),
        raw::UNAVAILABLE => Err(Error::Unavailable),
        other => Err(Error::Unknown(other)),
    }
}

/// The ABI version of the host, or `None` outside wedge.
pub fn abi_version() -> Option<i32> {
    // SAFETY: takes no arguments.
    let v = unsafe { raw::abi_version() };
    (v != raw::UNAVAILABLE).then_some(v)
}

/// An open key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    handle: u32,
}

impl Store {
    /// Opens the store called `name`; [`Error::AccessDenied`] unless the
    /// function declares it in `kv`.
    pub fn open(name: &str) -> Result<Self, Error> {
        let mut handle = 0u32;
        // SAFETY: the pointers cover `name` and `handle`, which outlive the call.
        check(unsafe { raw::kv_open(name.as_ptr(), name.len(), &mut handle) })?;
        Ok(Self { handle })
    }

    /// The value of `key`, or `None` when it is absent.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        let key = key.as_ref();
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0u32;
            // SAFETY: the pointers cover `key`, `buf` (with its length) and `len`.
            let status = unsafe {
                raw::kv_get(
                    self.handle,
                    key.as_ptr(),
                    key.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut len,
                )
            };
            match check(status) {
                Ok(()) if len as usize <= buf.len() => {
                    buf.truncate(len as usize);
                    return Ok(Some(buf));
                }
                // The value is larger than the buffer: retry with its size.
                Ok(()) => buf.resize(len as usize, 0),
                Err(Error::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The counter at `key` (ASCII decimal), or `None` when it is absent.
    pub fn get_counter(&self, key: impl AsRef<[u8]>) -> Result<Option<i64>, Error> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or(Error::Invalid),
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let (key, value) = (key.as_ref(), value.as_ref());
        // SAFETY: the pointers cover `key` and `value`.
        check(unsafe {
            raw::kv_set(
                self.handle,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        // SAFETY: the pointer covers `key`.
        match check(unsafe { raw::kv_delete(self.handle, key.as_ptr(), key.len()) }) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        // SAFETY: the pointer covers `key`.
        match check(unsafe { raw::kv_exists(self.handle, key.as_ptr(), key.len()) }) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Atomically adds `delta` to the counter at `key` (absent counts as 0) and
    /// returns the new value. If the result would leave `[min, max]` nothing
    /// changes and the error carries the current value. A stock decrement that
    /// never oversells is `add(sku, -n, 0, i64::MAX)`.
    pub fn add(&self, key: impl AsRef<[u8]>, delta: i64, min: i64, max: i64) -> Result<i64, Error> {
        let key = key.as_ref();
        let mut value = 0i64;
        // SAFETY: the pointers cover `key` and `value`.
        let status = unsafe {
            raw::kv_add(
                self.handle,
                key.as_ptr(),
                key.len(),
                delta,
                min,
                max,
                &mut value,
            )
        };
        match check(status) {
            Ok(()) => Ok(value),
            Err(Error::OutOfRange { .. }) => Err(Error::OutOfRange { current: value }),
            Err(e) => Err(e),
        }
    }

    /// Sets `key` to `new` if its value is `expected` (`None`: if it is absent);
    /// whether it did.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let (key, new) = (key.as_ref(), new.as_ref());
        let (exp_ptr, exp_len) = match expected {
            Some(e) => (e.as_ptr(), e.len() as i32),
            None => (std::ptr::null(), -1),
        };
        let mut swapped = 0u32;
        // SAFETY: the pointers cover `key`, `expected` (when given), `new` and `swapped`.
        check(unsafe {
            raw::kv_cas(
                self.handle,
                key.as_ptr(),
                key.len(),
                exp_ptr,
                exp_len,
                new.as_ptr(),
                new.len(),
                &mut swapped,
            )
        })?;
        Ok(swapped == 1)
    }

    /// One page of keys starting with `prefix`, after `after` when given, and
    /// whether more follow.
    pub fn list_page(
        &self,
        prefix: impl AsRef<[u8]>,
        after: Option<&[u8]>,
    ) -> Result<(Vec<Vec<u8>>, bool), Error> {
        let prefix = prefix.as_ref();
        let after = after.unwrap_or(&[]);
        let mut buf = vec![0u8; 64 << 10];
        let mut summary = [0u32; 3];
        // SAFETY: the pointers cover `prefix`, `after`, `buf` (with its length) and `summary`.
        check(unsafe {
            raw::kv_list(
                self.handle,
                prefix.as_ptr(),
                prefix.len(),
                after.as_ptr(),
                after.len(),
                buf.as_mut_ptr(),
                buf.len(),
                summary.as_mut_ptr(),
            )
        })?;
        let [written, count, more] = summary;
        buf.truncate(written as usize);
        let mut keys = Vec::with_capacity(count as usize);
        let mut rest = buf.as_slice();
        while rest.len() >= 4 {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(key) = rest.get(4..4 + len) else {
                return Err(Error::Invalid);
            };
            keys.push(key.to_vec());
            rest = &rest[4 + len..];
        }
        Ok((keys, more == 1))
    }

    /// Every key starting with `prefix`, in byte order, fetched page by page.
    pub fn list(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<Vec<u8>>, Error> {
        let prefix = prefix.as_ref();
        let mut all: Vec<Vec<u8>> = Vec::new();
        loop {
            let (page, more) = self.list_page(prefix, all.last().map(Vec::as_slice))?;
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }
}

/// The `wedge` host module's imports.
#[cfg(target_arch = "wasm32")]
mod raw {
    /// Never returned by the host; only by the stand-ins outside wasm.
    pub const UNAVAILABLE: i32 = -1;

    #[link(wasm_import_module = "wedge")]
    unsafe extern "C" {
        pub fn abi_version() -> i32;
        pub fn kv_open(name: *const u8, name_len: usize, handle: *mut u32) -> i32;
        pub fn kv_get(
            h: u32,
            key: *const u8,
            key_len: usize,
            buf: *mut u8,
            cap: usize,
            len: *mut u32,
        ) -> i32;
        pub fn kv_exists(h: u32, key: *const u8, key_len: usize) -> i32;
        pub fn kv_list(
            h: u32,
            prefix: *const u8,
            prefix_len: usize,
            after: *const u8,
            after_len: usize,
            buf: *mut u8,
            cap: usize,
            out: *mut u32,
        ) -> i32;
        pub fn kv_set(
            h: u32,
            key: *const u8,
            key_len: usize,
            value: *const u8,
            value_len: usize,
        ) -> i32;
        pub fn kv_delete(h: u32, key: *const u8, key_len: usize) -> i32;
        pub fn kv_add(
            h: u32,
            key: *const u8,
            key_len: usize,
            delta: i64,
            min: i64,
            max: i64,
            value: *mut i64,
        ) -> i32;
        pub fn kv_cas(
            h: u32,
            key: *const u8,
            key_len: usize,
            expected: *const u8,
            expected_len: i32,
            new: *const u8,
            new_len: usize,
            swapped: *mut u32,
        ) -> i32;
    }
}

/// Outside wasm (a handler's own unit tests, say) there is no host: every call
/// says so with [`Error::Unavailable`].
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments, clippy::missing_safety_doc)]
mod raw {
    pub const UNAVAILABLE: i32 = -1;

    pub unsafe fn abi_version() -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_open(_: *const u8, _: usize, _: *mut u32) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_get(_: u32, _: *const u8, _: usize, _: *mut u8, _: usize, _: *mut u32) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_exists(_: u32, _: *const u8, _: usize) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_list(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *mut u8,
        _: usize,
        _: *mut u32,
    ) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_set(_: u32, _: *const u8, _: usize, _: *const u8, _: usize) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_delete(_: u32, _: *const u8, _: usize) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_add(
        _: u32,
        _: *const u8,
        _: usize,
        _: i64,
        _: i64,
        _: i64,
        _: *mut i64,
    ) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn kv_cas(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: i32,
        _: *const u8,
        _: usize,
        _: *mut u32,
    ) -> i32 {
        UNAVAILABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_wedge_the_store_says_so() {
        assert_eq!(abi_version(), None);
        assert_eq!(Store::open("x"), Err(Error::Unavailable));
    }
}
