//! A wasi:http component that streams a generated file: `?mb=N` MiB (default
//! 16, at most 1024) of numbered text lines, written 64 KiB at a time from
//! one buffer. wedge sends each piece as it is written, so the client gets
//! its first bytes at once and the node never holds the file: try
//! `curl -o /dev/null http://127.0.0.1:8080/http-download?mb=1024`.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Download;

wasi::http::proxy::export!(Download);

/// Bytes in one line: `000000000001 ` and 51 letters, then a newline.
const LINE: usize = 64;
/// Lines written at a time.
const LINES_PER_WRITE: usize = 1024;

impl wasi::exports::http::incoming_handler::Guest for Download {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let mb = mib_of(&path).unwrap_or(16).min(1024);
        let total = mb << 20;
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"text/plain".to_vec()),
            (
                "content-disposition".to_string(),
                format!("attachment; filename=\"lines-{mb}MiB.txt\"").into_bytes(),
            ),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("the stream is taken once");
        let mut buf = vec![0u8; LINE * LINES_PER_WRITE];
        let mut line = 0u64;
        let mut sent = 0;
        while sent < total {
            for chunk in buf.chunks_mut(LINE) {
                line += 1;
                fill_line(chunk, line);
            }
            let take = buf.len().min(total - sent);
            let mut piece = &buf[..take];
            while !piece.is_empty() {
                // Waits until the host can take more: the client sets the pace.
                let ready = match out.check_write() {
                    Ok(0) => {
                        out.subscribe().block();
                        continue;
                    }
                    Ok(n) => n as usize,
                    // The client went away.
                    Err(_) => return,
                };
                let n = ready.min(piece.len());
                if out.write(&piece[..n]).is_err() {
                    return;
                }
                piece = &piece[n..];
            }
            sent += take;
        }
        drop(out);
        OutgoingBody::finish(body, None).expect("the body finishes");
    }
}

/// One line: a 12-digit number, a space, letters, a newline.
fn fill_line(into: &mut [u8], number: u64) {
    let mut n = number;
    for digit in into[..12].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    into[12] = b' ';
    for (i, b) in into[13..LINE - 1].iter_mut().enumerate() {
        *b = b'a' + ((number as usize + i) % 26) as u8;
    }
    into[LINE - 1] = b'\n';
}

/// The `mb` query parameter.
fn mib_of(path: &str) -> Option<usize> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mb="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_end_in_a_newline() {
        let mut line = [0u8; LINE];
        fill_line(&mut line, 42);
        assert_eq!(&line[..13], b"000000000042 ");
        assert_eq!(line[LINE - 1], b'\n');
        assert!(line[13..LINE - 1].iter().all(u8::is_ascii_lowercase));
    }

    #[test]
    fn the_size_is_read_from_the_query() {
        assert_eq!(mib_of("/http-download?mb=3"), Some(3));
        assert_eq!(mib_of("/http-download"), None);
    }
}
