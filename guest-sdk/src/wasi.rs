//! The WAGI streams read and written in as few WASI calls as they take: the
//! whole environment in one `environ_get`, the body in reads of exactly its
//! length, the response in one `fd_write` of head and body. Outside wasm (a
//! handler's own tests) the standard library stands in.
#![allow(unsafe_code)]

use std::io;
use std::ops::Range;

/// Every environment variable as `NAME=value\0`, back to back, and where each
/// `NAME=value` lies. Bytes that are not UTF-8 are replaced (wedge itself only
/// passes UTF-8).
pub fn environment() -> (String, Vec<Range<usize>>) {
    let (bytes, starts) = raw::environment();
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    // Where the host says each variable starts saves looking for the NULs
    // between them, if every variable it marks ends in one.
    let ends = starts.iter().skip(1).map(|&next| next.wrapping_sub(1));
    let index: Option<Vec<Range<usize>>> = starts
        .iter()
        .zip(ends.chain([text.len().wrapping_sub(1)]))
        .map(|(&start, end)| {
            (start <= end && text.as_bytes().get(end) == Some(&0) && text.is_char_boundary(start))
                .then_some(start..end)
        })
        .collect();
    match index {
        Some(index) if !index.is_empty() || text.is_empty() => (text, index),
        _ => {
            let index = ranges(&text);
            (text, index)
        }
    }
}

/// Joins variables as `NAME=value\0`, back to back, noting where each
/// `NAME=value` lies.
pub fn join<N: AsRef<str>, V: AsRef<str>>(
    vars: impl IntoIterator<Item = (N, V)>,
) -> (String, Vec<Range<usize>>) {
    let mut text = String::new();
    let mut index = Vec::new();
    for (name, value) in vars {
        let start = text.len();
        text.push_str(name.as_ref());
        text.push('=');
        text.push_str(value.as_ref());
        index.push(start..text.len());
        text.push('\0');
    }
    (text, index)
}

/// Where each `NAME=value` lies in NUL-terminated `vars`.
fn ranges(vars: &str) -> Vec<Range<usize>> {
    let mut start = 0;
    vars.split_terminator('\0')
        .map(|var| {
            let range = start..start + var.len();
            start = range.end + 1;
            range
        })
        .collect()
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

/// Writes `head` then `body` to stdout.
pub fn write_stdout(mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let written = raw::write_stdout(head, body)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        body = &body[written - from_head..];
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

    /// The variables, and where the host says each starts.
    pub fn environment() -> (Vec<u8>, Vec<usize>) {
        let (mut count, mut size) = (0, 0);
        // SAFETY: both pointers are to live locals.
        if check(unsafe { environ_sizes_get(&mut count, &mut size) }).is_err() {
            return Default::default();
        }
        let mut pointers: Vec<*mut u8> = Vec::with_capacity(count);
        let mut buf: Vec<u8> = Vec::with_capacity(size);
        // SAFETY: the host writes `count` pointers and `size` bytes, the sizes it
        // just reported, into buffers with exactly that capacity.
        if check(unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) }).is_err() {
            return Default::default();
        }
        // SAFETY: `environ_get` filled both.
        unsafe {
            pointers.set_len(count);
            buf.set_len(size);
        }
        let base = buf.as_ptr().addr();
        let starts = pointers
            .iter()
            .map(|p| p.addr().wrapping_sub(base))
            .collect();
        (buf, starts)
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

    pub fn write_stdout(head: &[u8], body: &[u8]) -> io::Result<usize> {
        let iovs = [
            IoVec {
                buf: head.as_ptr(),
                len: head.len(),
            },
            IoVec {
                buf: body.as_ptr(),
                len: body.len(),
            },
        ];
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

    /// The variables, and where each starts.
    pub fn environment() -> (Vec<u8>, Vec<usize>) {
        let (text, index) = super::join(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        }));
        (text.into_bytes(), index.iter().map(|r| r.start).collect())
    }

    pub fn read_stdin(into: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let mut chunk = vec![0; into.len().min(64 << 10)];
        let n = std::io::stdin().read(&mut chunk)?;
        for (slot, byte) in into.iter_mut().zip(&chunk[..n]) {
            slot.write(*byte);
        }
        Ok(n)
    }

    pub fn write_stdout(head: &[u8], body: &[u8]) -> io::Result<usize> {
        let mut out = std::io::stdout().lock();
        out.write_all(head)?;
        out.write_all(body)?;
        out.flush()?;
        Ok(head.len() + body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_indexed_by_variable() {
        let (text, index) = environment();
        let from_std: Vec<String> = std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        let ours: Vec<&str> = index.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(ours, from_std);
        assert_eq!(ranges(&text), index);
    }
}
