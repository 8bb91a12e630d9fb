//! The bench's own HTTP/1.1 requests to wedge: seeding stores, asking the
//! admin API, probing for a version.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A GET over HTTP/1.1 to `addr`, answered within `timeout`: the whole
/// response, head and body.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// A GET over HTTP/1.1 answered within 5 s: the status and body.
pub fn get_body(addr: &str, path: &str) -> Option<(u16, String)> {
    let reply = get(addr, path, Duration::from_secs(5))?;
    let status = status(&reply)?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// A PUT of `body` to `path` on 127.0.0.1:`port`: the response's status.
pub fn put(port: u16, path: &str, body: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    status(&reply).ok_or_else(|| format!("bad reply: {reply}"))
}

/// The status of a response.
pub fn status(reply: &str) -> Option<u16> {
    reply.get(9..12)?.parse().ok()
}

/// The value of header `name` (lower case) in a response.
pub fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let head = reply.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim().eq_ignore_ascii_case(name)).then(|| v.trim())
    })
}
