//! A wasi:http component that does what its `?do=` query says, for wedge's
//! end-to-end tests of the component format.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Probe;

wasi::http::proxy::export!(Probe);

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        };
        match param("do").unwrap_or("") {
            "trap" => panic!("the probe was asked to trap"),
            "nothing" => drop(out),
            "error" => ResponseOutparam::set(
                out,
                Err(wasi::http::types::ErrorCode::InternalError(Some(
                    "asked to fail".into(),
                ))),
            ),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "hoard" => {
                // Host resources without end: the host's table is capped.
                let mut held = Vec::new();
                loop {
                    held.push(Fields::new());
                    std::hint::black_box(&held);
                }
            }
            "big" => {
                let kib: usize = param("kib").and_then(|n| n.parse().ok()).unwrap_or(1024);
                respond(out, 200, &[], &vec![b'x'; kib << 10]);
            }
            "log" => {
                println!("probe stdout line");
                eprintln!("probe stderr line");
                respond(out, 200, &[], b"logged\n");
            }
            "env" => {
                let value = std::env::var(param("name").unwrap_or("GREETING")).unwrap_or_default();
                respond(out, 200, &[], value.as_bytes());
            }
            "fetch" => {
                let url = decode(param("url").unwrap_or_default());
                // request-options, in milliseconds.
                let ms = |name| {
                    param(name)
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|ms| ms * 1_000_000)
                };
                let timeouts = [ms("connect_ms"), ms("first_byte_ms"), ms("between_ms")];
                let report = match fetch(&url, timeouts) {
                    Ok((status, body)) => {
                        format!(
                            "{status} {}\n{}",
                            body.len(),
                            String::from_utf8_lossy(&body)
                        )
                    }
                    Err(code) => format!("error {code:?}"),
                };
                respond(out, 200, &[], report.as_bytes());
            }
            "dropped" | "unfinished" => {
                // Sets a response and writes part of its body; then drops the
                // body without finishing it, or returns with it still open.
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                stream.blocking_write_and_flush(b"partial").expect("write");
                drop(stream);
                match param("do") {
                    Some("dropped") => drop(body),
                    _ => std::mem::forget(body),
                }
            }
            "half" => {
                // Sets a response, writes part of its body, then traps.
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                stream.blocking_write_and_flush(b"partial").expect("write");
                panic!("trapped halfway through the body");
            }
            "events" => {
                // `?n=` events `?ms=` apart, each with its number and the
                // wall-clock time it was written; `?then=` ends the stream
                // otherwise: `trap`, `unfinished` (returns with the body
                // open), `sleep` (60 s without a byte), `spin` (computes
                // without end), `flood` (writes without end).
                let n: u64 = param("n").and_then(|v| v.parse().ok()).unwrap_or(5);
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(200);
                let headers = Fields::from_list(&[(
                    "content-type".to_string(),
                    b"text/event-stream".to_vec(),
                )])
                .expect("valid headers");
                let response = OutgoingResponse::new(headers);
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                for i in 0..n {
                    if i > 0 {
                        wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                    }
                    let now = wasi::clocks::wall_clock::now();
                    let millis = now.seconds * 1000 + u64::from(now.nanoseconds) / 1_000_000;
                    let event = format!("data: {i} {millis}\n\n");
                    stream
                        .blocking_write_and_flush(event.as_bytes())
                        .expect("write");
                }
                match param("then") {
                    Some("trap") => panic!("trapped in the middle of a stream"),
                    Some("unfinished") => {
                        drop(stream);
                        std::mem::forget(body);
                        return;
                    }
                    Some("sleep") => {
                        wasi::clocks::monotonic_clock::subscribe_duration(60_000_000_000).block()
                    }
                    Some("spin") => {
                        let mut n = 0u64;
                        loop {
                            n = std::hint::black_box(n.wrapping_add(1));
                        }
                    }
                    Some("flood") => {
                        let chunk = vec![b'x'; 4096];
                        loop {
                            if stream.blocking_write_and_flush(&chunk).is_err() {
                                return;
                            }
                        }
                    }
                    _ => {}
                }
                drop(stream);
                OutgoingBody::finish(body, None).expect("finish");
            }
            "hash" => {
                // Reads the request body as it arrives, 64 KiB at a time,
                // and answers its length and FNV-1a hash.
                let body = request.consume().expect("body");
                let stream = body.stream().expect("stream");
                let (mut len, mut hash) = (0u64, 0xcbf2_9ce4_8422_2325u64);
                let failed = loop {
                    match stream.blocking_read(64 << 10) {
                        Ok(chunk) => {
                            len += chunk.len() as u64;
                            for b in chunk {
                                hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                            }
                        }
                        Err(wasi::io::streams::StreamError::Closed) => break None,
                        Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                            break Some(e.to_debug_string());
                        }
                    }
                };
                match failed {
                    None => respond(out, 200, &[], format!("{len} {hash:016x}").as_bytes()),
                    Some(e) => respond(out, 500, &[], format!("read {len}: {e}").as_bytes()),
                }
            }
            "bytes" => {
                // `?mb=` MiB of a repeating pattern, written 4 KiB at a time
                // from one small buffer.
                let mb: u64 = param("mb").and_then(|v| v.parse().ok()).unwrap_or(1);
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                let chunk: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
                for _ in 0..mb * 16 {
                    for piece in chunk.chunks(4096) {
                        stream.blocking_write_and_flush(piece).expect("write");
                    }
                }
                drop(stream);
                OutgoingBody::finish(body, None).expect("finish");
            }
            _ => echo(request, out),
        }
    }
}

/// Calls `url` (`http://host[:port]/path`) through wasi:http's outgoing
/// handler, with the connect, first-byte and between-bytes timeouts given
/// (in nanoseconds): its status and body, or the error code.
fn fetch(
    url: &str,
    [connect, first_byte, between]: [Option<u64>; 3],
) -> Result<(u16, Vec<u8>), wasi::http::types::ErrorCode> {
    use wasi::http::types::{OutgoingRequest, RequestOptions, Scheme};
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&scheme)).expect("scheme");
    request.set_authority(Some(authority)).expect("authority");
    request.set_path_with_query(Some(path)).expect("path");
    let options = RequestOptions::new();
    options
        .set_connect_timeout(connect)
        .expect("connect timeout");
    options
        .set_first_byte_timeout(first_byte)
        .expect("first-byte timeout");
    options
        .set_between_bytes_timeout(between)
        .expect("between-bytes timeout");
    let future = wasi::http::outgoing_handler::handle(request, Some(options))?;
    future.subscribe().block();
    let response = future.get().expect("ready").expect("taken once")?;
    let status = response.status();
    let body = response.consume().expect("body");
    let stream = body.stream().expect("stream");
    let mut received = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                // wasmtime hands a body's failure over as an I/O error
                // without an error code; its text says what it was.
                return Err(wasi::http::types::http_error_code(&e).unwrap_or(
                    wasi::http::types::ErrorCode::InternalError(Some(format!(
                        "the body broke off: {}",
                        e.to_debug_string()
                    ))),
                ));
            }
        }
    }
    Ok((status, received))
}

/// `%XX` escapes decoded.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers with the request's method, URI, headers and body, one per line.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let mut text = Vec::new();
    let method = format!("{:?}", request.method());
    let authority = request.authority().unwrap_or_default();
    let path = request.path_with_query().unwrap_or_default();
    writeln!(text, "method: {method}").unwrap();
    writeln!(text, "scheme: {:?}", request.scheme()).unwrap();
    writeln!(text, "uri: {authority}{path}").unwrap();
    for (name, value) in request.headers().entries() {
        writeln!(text, "header: {name}: {}", String::from_utf8_lossy(&value)).unwrap();
    }
    let body = request.consume().expect("body");
    let stream = body.stream().expect("stream");
    let mut received = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 << 10) {
        received.extend_from_slice(&chunk);
    }
    drop(stream);
    IncomingBody::finish(body);
    writeln!(text, "body: {}", String::from_utf8_lossy(&received)).unwrap();
    respond(out, 200, &[("x-probe", b"echo")], &text);
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let mut list = vec![("content-type".to_string(), b"text/plain".to_vec())];
    list.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())));
    let response = OutgoingResponse::new(Fields::from_list(&list).expect("valid headers"));
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}
