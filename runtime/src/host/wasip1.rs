//! The WASI preview 1 calls every WAGI request makes (argv, environment, stdin,
//! stdout, stderr and exit) answered straight from the request's own buffers.
//!
//! These functions shadow wasmtime-wasi's in the linker. They copy the
//! environment into the guest once, from one flat buffer built for the request,
//! and append stdout to the response without a stream layer in between (a
//! write waits only when the client is behind). Every
//! other WASI call (clocks, random, poll, fd metadata) goes to wasmtime-wasi's
//! context, which [`crate::guest::engine::Host`] builds on the first such call. A
//! handler that makes none never pays for one.
//!
//! Behaviour follows wasmtime-wasi's: a pointer outside guest memory, or a
//! misaligned one, traps; a descriptor other than 0, 1 and 2 is `EBADF`, as a
//! wedge guest has no preopened directories or sockets.

use std::fmt;

use bytes::Bytes;
use wasmtime::{Caller, Linker};
use wasmtime_wasi::I32Exit;

use crate::host::stdio::{GuestLog, STDOUT_HIGH_WATER, Stdout};

/// The WASI preview 1 module name.
const P1: &str = "wasi_snapshot_preview1";

/// `errno::success`.
const SUCCESS: i32 = 0;
/// `errno::badf`: not an open descriptor, or not open for this operation.
const EBADF: i32 = 8;

/// NUL-terminated strings laid out as the guest receives them (`argv` or
/// `environ`): one flat buffer and a count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CStrings {
    bytes: Vec<u8>,
    count: u32,
}

impl CStrings {
    /// An empty list with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Appends one string.
    pub fn push(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
        self.end();
    }

    /// Appends `name=value`.
    pub fn push_var(&mut self, name: &str, value: &str) {
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(b'=');
        self.push(value);
    }

    /// Appends `name=value` for a value that formats itself.
    pub fn push_var_display(&mut self, name: &str, value: impl fmt::Display) {
        use std::io::Write as _;
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(b'=');
        // Writing to a Vec cannot fail.
        let _ = write!(self.bytes, "{value}");
        self.end();
    }

    /// Starts `name=` and hands out the buffer for the value; finish with [`Self::end`].
    pub fn begin_var(&mut self, name: impl IntoIterator<Item = u8>) -> &mut Vec<u8> {
        self.bytes.extend(name);
        self.bytes.push(b'=');
        &mut self.bytes
    }

    /// Ends the string being written.
    pub fn end(&mut self) {
        self.bytes.push(0);
        self.count += 1;
    }

    /// Appends every string of `other`.
    pub fn append(&mut self, other: &CStrings) {
        self.bytes.extend_from_slice(&other.bytes);
        self.count += other.count;
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each string, without its NUL.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.bytes
            .split(|&b| b == 0)
            .take(self.len())
            .map(|s| std::str::from_utf8(s).unwrap_or("\u{fffd}"))
    }

    /// The value of `name` in a list of `name=value` strings.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.iter()
            .find_map(|s| s.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }
}

/// One request's argv, environment and standard streams.
pub struct GuestIo {
    /// argv.
    pub args: CStrings,
    /// The environment.
    pub env: CStrings,
    /// The request body, read on stdin.
    pub stdin: Bytes,
    /// Bytes of `stdin` already read.
    pub stdin_read: usize,
    /// What the guest wrote to stdout.
    pub stdout: Stdout,
    /// Where the guest's stderr lines go.
    pub stderr: GuestLog,
    /// The guest's exported `memory`, once instantiated.
    pub memory: Option<wasmtime::Memory>,
    /// Set while a reactor initializes ([`crate::guest::preinit`]): there is no
    /// request, so reading stdin or writing stdout traps.
    pub initializing: bool,
}

/// A reactor's initializer reached for the request or the response.
#[derive(Debug, thiserror::Error)]
#[error(
    "WASI `{call}` on {stream} during initialization: the request and its response exist only while the handler runs"
)]
pub struct NotDuringInit {
    call: &'static str,
    stream: &'static str,
}

/// A WASI call was handed a pointer it cannot use; wasmtime-wasi traps on the same.
#[derive(Debug, thiserror::Error)]
#[error("WASI `{call}` was passed a pointer outside guest memory or misaligned")]
pub struct BadPointer {
    call: &'static str,
}

/// Guest memory as one call sees it: bounds- and alignment-checked access.
struct Memory<'a> {
    data: &'a mut [u8],
    call: &'static str,
}

impl Memory<'_> {
    fn fault(&self) -> wasmtime::Error {
        BadPointer { call: self.call }.into()
    }

    fn range(&self, ptr: i32, len: usize) -> wasmtime::Result<std::ops::Range<usize>> {
        let start = ptr as u32 as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(start..end),
            _ => Err(self.fault()),
        }
    }

    fn read_u32(&self, ptr: i32) -> wasmtime::Result<u32> {
        if ptr % 4 != 0 {
            return Err(self.fault());
        }
        let r = self.range(ptr, 4)?;
        Ok(u32::from_le_bytes(
            self.data[r].try_into().expect("4 bytes"),
        ))
    }

    fn write_u32(&mut self, ptr: i32, value: u32) -> wasmtime::Result<()> {
        if ptr % 4 != 0 {
            return Err(self.fault());
        }
        let r = self.range(ptr, 4)?;
        self.data[r].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// The `i`-th `iovec` of the array at `iovs`, as a host range.
    fn iovec(&self, iovs: i32, i: u32) -> wasmtime::Result<std::ops::Range<usize>> {
        let at = (iovs as u32)
            .checked_add(i.checked_mul(8).ok_or_else(|| self.fault())?)
            .ok_or_else(|| self.fault())? as i32;
        let buf = self.read_u32(at)?;
        let len = self.read_u32(at.wrapping_add(4))?;
        self.range(buf as i32, len as usize)
    }

    /// Writes `list` as `argv`/`environ`: a pointer per string at `ptrs`, the
    /// strings themselves at `buf`.
    fn write_cstrings(&mut self, list: &CStrings, ptrs: i32, buf: i32) -> wasmtime::Result<()> {
        let dest = self.range(buf, list.bytes.len())?;
        let mut offset = 0u32;
        for (i, s) in list.bytes.split(|&b| b == 0).take(list.len()).enumerate() {
            let slot = (ptrs as u32).wrapping_add(4 * i as u32) as i32;
            if (slot as u32) < (ptrs as u32) {
                return Err(self.fault());
            }
            self.write_u32(slot, (buf as u32).wrapping_add(offset))?;
            offset += s.len() as u32 + 1;
        }
        self.data[dest].copy_from_slice(&list.bytes);
        Ok(())
    }
}

/// Finds the guest's memory and the request's [`GuestIo`] for one call.
fn split<'a, T: 'static>(
    caller: &'a mut Caller<'_, T>,
    ctx: fn(&mut T) -> &mut GuestIo,
    call: &'static str,
) -> wasmtime::Result<(Memory<'a>, &'a mut GuestIo)> {
    // Before instantiation has finished (a wasm start function) the handle is
    // not there yet: look the export up by name.
    let memory = match ctx(caller.data_mut()).memory {
        Some(memory) => memory,
        None => caller
            .get_export("memory")
            .and_then(|e| e.into_memory())
            .ok_or_else(|| wasmtime::format_err!("WASI `{call}` needs an exported `memory`"))?,
    };
    let (data, host) = memory.data_and_store_mut(caller);
    Ok((Memory { data, call }, ctx(host)))
}

/// Adds the pair of calls that hand `list` to the guest: `<list>_sizes_get`
/// (count and buffer size) and `<list>_get` (pointers and strings).
fn add_cstrings<T: Send + 'static>(
    linker: &mut Linker<T>,
    ctx: fn(&mut T) -> &mut GuestIo,
    [sizes_call, get_call]: [&'static str; 2],
    list: fn(&GuestIo) -> &CStrings,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        P1,
        sizes_call,
        move |mut caller: Caller<'_, T>, count: i32, size: i32| -> wasmtime::Result<i32> {
            let (mut mem, io) = split(&mut caller, ctx, sizes_call)?;
            let list = list(io);
            mem.write_u32(count, list.count)?;
            mem.write_u32(size, list.bytes.len() as u32)?;
            Ok(SUCCESS)
        },
    )?;
    linker.func_wrap(
        P1,
        get_call,
        move |mut caller: Caller<'_, T>, ptrs: i32, buf: i32| -> wasmtime::Result<i32> {
            let (mut mem, io) = split(&mut caller, ctx, get_call)?;
            mem.write_cstrings(list(io), ptrs, buf)?;
            Ok(SUCCESS)
        },
    )?;
    Ok(())
}

/// `fd_write` once stdout has room: copies the guest's iovecs to stdout (as
/// much as fits under [`STDOUT_HIGH_WATER`]) or stderr, and stores the count.
fn write<T: 'static>(
    caller: &mut Caller<'_, T>,
    ctx: fn(&mut T) -> &mut GuestIo,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    written_out: i32,
) -> wasmtime::Result<i32> {
    let (mut mem, io) = split(caller, ctx, "fd_write")?;
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    if fd == 1 && io.initializing {
        return Err(NotDuringInit {
            call: "fd_write",
            stream: "stdout",
        }
        .into());
    }
    let mut room = STDOUT_HIGH_WATER.saturating_sub(io.stdout.held());
    let mut written = 0u32;
    for i in 0..iovs_len as u32 {
        let r = mem.iovec(iovs, i)?;
        let bytes = &mem.data[r];
        if fd == 1 {
            let take = bytes.len().min(room);
            io.stdout.append(&bytes[..take])?;
            room -= take;
            written = written.saturating_add(take as u32);
            if take < bytes.len() {
                break;
            }
        } else {
            io.stderr.push(bytes);
            written = written.saturating_add(bytes.len() as u32);
        }
    }
    mem.write_u32(written_out, written)?;
    Ok(SUCCESS)
}

/// Adds the per-request WASI calls to `linker`, over the definitions already
/// there; `ctx` finds a request's [`GuestIo`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    ctx: fn(&mut T) -> &mut GuestIo,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    add_cstrings(linker, ctx, ["args_sizes_get", "args_get"], |io| &io.args)?;
    add_cstrings(linker, ctx, ["environ_sizes_get", "environ_get"], |io| {
        &io.env
    })?;
    // Async so that a streaming guest's write can wait for the client: with
    // `STDOUT_HIGH_WATER` held, a write to stdout waits until the response
    // has taken the bytes, and then takes what fits (a short write, which
    // every libc and language runtime continues).
    linker.func_wrap_async(
        P1,
        "fd_write",
        move |mut caller: Caller<'_, T>,
              (fd, iovs, iovs_len, written_out): (i32, i32, i32, i32)| {
            Box::new(async move {
                if fd == 1 {
                    let stdout = ctx(caller.data_mut()).stdout.clone();
                    stdout.drained().await;
                }
                write(&mut caller, ctx, fd, iovs, iovs_len, written_out)
            })
        },
    )?;
    linker.func_wrap(
        P1,
        "fd_read",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              read_out: i32|
              -> wasmtime::Result<i32> {
            let (mut mem, io) = split(&mut caller, ctx, "fd_read")?;
            if fd != 0 {
                return Ok(EBADF);
            }
            if io.initializing {
                return Err(NotDuringInit {
                    call: "fd_read",
                    stream: "stdin",
                }
                .into());
            }
            let mut read = 0u32;
            for i in 0..iovs_len as u32 {
                let r = mem.iovec(iovs, i)?;
                let rest = &io.stdin[io.stdin_read..];
                let n = r.len().min(rest.len());
                mem.data[r.start..r.start + n].copy_from_slice(&rest[..n]);
                io.stdin_read += n;
                read += n as u32;
                if n < r.len() {
                    break;
                }
            }
            mem.write_u32(read_out, read)?;
            Ok(SUCCESS)
        },
    )?;
    linker.func_wrap(P1, "proc_exit", |status: i32| -> wasmtime::Result<()> {
        let status = status as u32;
        if status >= 126 {
            return Err(wasmtime::format_err!(
                "exit with invalid exit status outside of [0..126)"
            ));
        }
        Err(I32Exit(status as i32).into())
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstrings_lay_out_as_the_guest_reads_them() {
        let mut env = CStrings::default();
        env.push_var("A", "1");
        env.push_var_display("PORT", 8080);
        env.begin_var(*b"HTTP_X").extend_from_slice(b"y");
        env.end();
        assert_eq!(env.bytes, b"A=1\0PORT=8080\0HTTP_X=y\0");
        assert_eq!(env.len(), 3);
        assert_eq!(env.var("PORT"), Some("8080"));
        assert_eq!(env.var("POR"), None);
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            ["A=1", "PORT=8080", "HTTP_X=y"]
        );
    }

    #[test]
    fn pointers_are_checked() {
        let mut data = vec![0u8; 64];
        let mut mem = Memory {
            data: &mut data,
            call: "test",
        };
        assert!(mem.write_u32(60, 7).is_ok());
        assert!(mem.write_u32(62, 7).is_err(), "misaligned");
        assert!(mem.write_u32(64, 7).is_err(), "past the end");
        assert!(
            mem.write_u32(-4, 7).is_err(),
            "a negative pointer is a huge one"
        );
        let mut args = CStrings::default();
        args.push("/hello");
        args.push("x=1");
        assert!(mem.write_cstrings(&args, 0, 8).is_ok());
        assert_eq!(mem.read_u32(0).unwrap(), 8);
        assert_eq!(mem.read_u32(4).unwrap(), 15);
        assert_eq!(&mem.data[8..19], b"/hello\0x=1\0");
        assert!(mem.write_cstrings(&args, 0, 60).is_err());
    }
}
