//! Outbound HTTP: call an origin listed in the function's `outbound`.
//!
//! A function may call only the origins its `function.toml` lists, for
//! example `outbound = ["https://api.example.com"]`. A call waits for the
//! response's head; its body is then read in chunks, or whole with
//! [`Response::into_body`]. Redirects are followed only when asked.
//!
//! ```no_run
//! use wedge_sdk::http::{ErrorKind, Request};
//!
//! match Request::get("https://api.example.com/items/1")
//!     .header("accept", "application/json")
//!     .send()
//! {
//!     Ok(response) if response.status() == 200 => {
//!         let body = response.into_body()?;
//!         println!("{} bytes", body.len());
//!     }
//!     Ok(response) => println!("the origin said {}", response.status()),
//!     Err(e) if e.kind == ErrorKind::Timeout => println!("the origin is slow: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok::<(), wedge_sdk::http::Error>(())
//! ```
#![allow(unsafe_code)]

use std::fmt;

/// What kind of failure an outbound call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The URL is not in the function's `outbound` list, or its name
    /// resolves to an address the list does not name (a private one, say).
    Denied,
    /// Connecting, the TLS handshake or the call took too long, or the
    /// request's own deadline was near.
    Timeout,
    /// The name did not resolve, or no address took the connection.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The response body passed the node's `[outbound] max_response`.
    TooLarge,
    /// A bad URL, method or header.
    Invalid,
    /// Too many calls open, in this request or on the node.
    Busy,
    /// The connection broke during the exchange.
    Io,
    /// Not running inside wedge.
    Unavailable,
    /// A status this SDK does not know.
    Unknown(i32),
}

/// Why an outbound call failed: its kind, and the host's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What the host said about it.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message.is_empty() {
            true => write!(f, "{:?}", self.kind),
            false => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

fn check(status: i32) -> Result<(), Error> {
    let kind = match status {
        0 => return Ok(()),
        2 => ErrorKind::Denied,
        4 => ErrorKind::TooLarge,
        5 => ErrorKind::Invalid,
        6 => ErrorKind::Io,
        7 => ErrorKind::Timeout,
        8 => ErrorKind::Connect,
        9 => ErrorKind::Tls,
        10 => ErrorKind::Busy,
        raw::UNAVAILABLE => ErrorKind::Unavailable,
        other => ErrorKind::Unknown(other),
    };
    Err(Error {
        kind,
        message: last_error(),
    })
}

/// The host's message for the last failed call.
fn last_error() -> String {
    let mut buf = vec![0u8; 512];
    loop {
        let mut len = 0u32;
        // SAFETY: the pointers cover `buf` (with its length) and `len`.
        let status = unsafe { raw::http_error(buf.as_mut_ptr(), buf.len(), &mut len) };
        if status != 0 {
            return String::new();
        }
        if len as usize <= buf.len() {
            buf.truncate(len as usize);
            return String::from_utf8_lossy(&buf).into_owned();
        }
        buf.resize(len as usize, 0);
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: String,
    body: Vec<u8>,
    follow_redirects: bool,
}

impl Request {
    /// A request with `method` (`GET`, `POST`, ...) to the absolute `url`.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_string(),
            url: url.into(),
            headers: String::new(),
            body: Vec::new(),
            follow_redirects: false,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header. `Host`, `Content-Length` and the connection's own
    /// headers are the host's to set: a call with one is `Invalid`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push_str(name);
        self.headers.push_str(": ");
        self.headers.push_str(value);
        self.headers.push('\n');
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Follows redirects (up to the node's `[outbound] max_redirects`), each
    /// to an origin the function lists.
    pub fn follow_redirects(mut self) -> Self {
        self.follow_redirects = true;
        self
    }

    /// Sends the request and waits for the response's head.
    pub fn send(self) -> Result<Response, Error> {
        let mut out = [0u32; 2];
        // SAFETY: every pointer covers its buffer with its length, and `out`
        // holds the two u32 the host writes.
        check(unsafe {
            raw::http_send(
                self.method.as_ptr(),
                self.method.len(),
                self.url.as_ptr(),
                self.url.len(),
                self.headers.as_ptr(),
                self.headers.len(),
                self.body.as_ptr(),
                self.body.len(),
                u32::from(self.follow_redirects),
                out.as_mut_ptr(),
            )
        })?;
        let mut response = Response {
            handle: out[0],
            status: out[1] as u16,
            headers: Vec::new(),
            open: true,
        };
        response.headers = response.read_headers()?;
        Ok(response)
    }
}

/// A response whose head has arrived.
#[derive(Debug)]
pub struct Response {
    handle: u32,
    status: u16,
    headers: Vec<(String, String)>,
    /// Until the body's end or an error: the host holds it under `handle`.
    open: bool,
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Every header, names in lower case, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn read_headers(&self) -> Result<Vec<(String, String)>, Error> {
        let mut buf = vec![0u8; 1024];
        loop {
            let mut len = 0u32;
            // SAFETY: the pointers cover `buf` (with its length) and `len`.
            check(unsafe {
                raw::http_headers(self.handle, buf.as_mut_ptr(), buf.len(), &mut len)
            })?;
            if len as usize <= buf.len() {
                buf.truncate(len as usize);
                break;
            }
            buf.resize(len as usize, 0);
        }
        Ok(String::from_utf8_lossy(&buf)
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect())
    }

    /// Reads more of the body into `buf`; 0 at its end.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if !self.open || buf.is_empty() {
            return Ok(0);
        }
        let mut n = 0u32;
        // SAFETY: the pointers cover `buf` (with its length) and `n`.
        let status = unsafe { raw::http_read(self.handle, buf.as_mut_ptr(), buf.len(), &mut n) };
        if status != 0 {
            // The host freed the handle with the error.
            self.open = false;
        }
        check(status)?;
        if n == 0 {
            self.close();
        }
        Ok(n as usize)
    }

    /// The whole body.
    pub fn into_body(mut self) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 16 << 10];
        loop {
            match self.read_chunk(&mut chunk)? {
                0 => return Ok(body),
                n => body.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            // SAFETY: takes a handle only.
            unsafe { raw::http_close(self.handle) };
        }
    }
}

impl std::io::Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_chunk(buf).map_err(std::io::Error::other)
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `wedge` host module's HTTP imports.
#[cfg(target_arch = "wasm32")]
mod raw {
    pub const UNAVAILABLE: i32 = -1;

    #[link(wasm_import_module = "wedge")]
    unsafe extern "C" {
        pub fn http_send(
            method: *const u8,
            method_len: usize,
            url: *const u8,
            url_len: usize,
            headers: *const u8,
            headers_len: usize,
            body: *const u8,
            body_len: usize,
            flags: u32,
            out: *mut u32,
        ) -> i32;
        pub fn http_headers(handle: u32, buf: *mut u8, cap: usize, len: *mut u32) -> i32;
        pub fn http_read(handle: u32, buf: *mut u8, cap: usize, n: *mut u32) -> i32;
        pub fn http_close(handle: u32) -> i32;
        pub fn http_error(buf: *mut u8, cap: usize, len: *mut u32) -> i32;
    }
}

/// Outside wasm there is no host: every call is [`ErrorKind::Unavailable`].
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments, clippy::missing_safety_doc)]
mod raw {
    pub const UNAVAILABLE: i32 = -1;

    pub unsafe fn http_send(
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: u32,
        _: *mut u32,
    ) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn http_headers(_: u32, _: *mut u8, _: usize, _: *mut u32) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn http_read(_: u32, _: *mut u8, _: usize, _: *mut u32) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn http_close(_: u32) -> i32 {
        UNAVAILABLE
    }
    pub unsafe fn http_error(_: *mut u8, _: usize, _: *mut u32) -> i32 {
        UNAVAILABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_wedge_a_call_says_so() {
        let err = Request::get("https://example.com").send().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
    }
}
