//! The WAGI streams read and written in as few WASI calls as they take: the
//! whole environment in one `environ_get`, the body in reads of exactly its
//! length, the response in one `fd_write` of head and body. Outside wasm (a
//! handler's own tests) the standard library stands in.
#![allow(unsafe_code)]

use std::io;

/// Every environment variable as `NAME=value\0`, back to back. Bytes that are
/// not UTF-8 are replaced (wedge itself only passes UTF-8).
pub fn environment() -> String {
    let bytes = raw::environment();
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Reads the request body: exactly `len` bytes when the length is known
/// (a shorter body is an error), else everything up to end of file.
pub fn read_body(len: Option<usize>) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len.unwrap_or(0));
    loop {
        if body.len() == body.capacity() {
            if len.is_some() {
                return Ok(body);
            }
            body.reserve(body.capacity().max(4096));
        }
        let n = raw::read_stdin(body.spare_capacity_mut())?;
        if n == 0 {
            return match len {
                Some(want) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of its {want} bytes", body.len()),
                )),
                None => Ok(body),
            };
        }
        // SAFETY: the read initialised the first `n` bytes of the spare capacity.
        unsafe { body.set_len(body.len() + n) };
    }
}

/// Writes `parts` to stdout, in order, as one response.
pub fn write_stdout(parts: &[&[u8]]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let mut written = raw::write_stdout(&parts)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(first) = parts.first_mut() {
            if written < first.len() {
                *first = &first[written..];
                break;
            }
            written -= first.len();
            parts.remove(0);
        }
    }
    Ok(())
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod raw {
    use std::io;
    use std::mem::MaybeUninit;

    #[repr(C)]
    struct IoVec {
        buf: *const u8,
        len: usize,
    }

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn environ_sizes_get(count: *mut usize, size: *mut usize) -> i32;
        fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> i32;
        fn fd_read(fd: u32, iovs: *const IoVec, iovs_len: usize, nread: *mut usize) -> i32;
        fn fd_write(fd: u32, iovs: *const IoVec, iovs_len: usize, nwritten: *mut usize) -> i32;
    }

    fn check(errno: i32) -> io::Result<()> {
        match errno {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    pub fn environment() -> Vec<u8> {
        let (mut count, mut size) = (0, 0);
        // SAFETY: both pointers are to live locals.
        if check(unsafe { environ_sizes_get(&mut count, &mut size) }).is_err() {
            return Vec::new();
        }
        let mut pointers: Vec<*mut u8> = Vec::with_capacity(count);
        let mut buf: Vec<u8> = Vec::with_capacity(size);
        // SAFETY: the host writes `count` pointers and `size` bytes, the sizes it
        // just reported, into buffers with exactly that capacity.
        if check(unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) }).is_err() {
            return Vec::new();
        }
        // SAFETY: `environ_get` filled all `size` bytes.
        unsafe { buf.set_len(size) };
        buf
    }

    pub fn read_stdin(into: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let iov = IoVec {
            buf: into.as_mut_ptr().cast(),
            len: into.len(),
        };
        let mut n = 0;
        // SAFETY: one iovec over writable memory we own, and a live out-pointer.
        check(unsafe { fd_read(0, &iov, 1, &mut n) })?;
        Ok(n)
    }

    pub fn write_stdout(parts: &[&[u8]]) -> io::Result<usize> {
        let iovs: Vec<IoVec> = parts
            .iter()
            .map(|p| IoVec {
                buf: p.as_ptr(),
                len: p.len(),
            })
            .collect();
        let mut n = 0;
        // SAFETY: the iovecs point into slices borrowed for this call.
        check(unsafe { fd_write(1, iovs.as_ptr(), iovs.len(), &mut n) })?;
        Ok(n)
    }
}

#[cfg(not(all(target_arch = "wasm32", target_os = "wasi")))]
mod raw {
    use std::io::{self, Read, Write};
    use std::mem::MaybeUninit;

    pub fn environment() -> Vec<u8> {
        let mut buf = Vec::new();
        for (name, value) in std::env::vars_os() {
            buf.extend_from_slice(name.to_string_lossy().as_bytes());
            buf.push(b'=');
            buf.extend_from_slice(value.to_string_lossy().as_bytes());
            buf.push(0);
        }
        buf
    }

    pub fn read_stdin(into: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let mut chunk = vec![0; into.len().min(64 << 10)];
        let n = std::io::stdin().read(&mut chunk)?;
        for (slot, byte) in into.iter_mut().zip(&chunk[..n]) {
            slot.write(*byte);
        }
        Ok(n)
    }

    pub fn write_stdout(parts: &[&[u8]]) -> io::Result<usize> {
        let mut out = std::io::stdout().lock();
        for part in parts {
            out.write_all(part)?;
        }
        out.flush()?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }
}
