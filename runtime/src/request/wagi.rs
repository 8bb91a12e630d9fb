//! WAGI, CGI over WASI: an HTTP request becomes environment, argv and stdin for the
//! guest, and what the guest writes to stdout becomes the HTTP response.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Version};
use percent_encoding::percent_decode_str;

use crate::host::wasip1::CStrings;
use crate::request::outcome::{GuestResponse, MAX_HEADER_BLOCK, MalformedResponse};

/// What the host knows about a request beyond its head.
pub struct RequestInfo<'a> {
    /// The request head.
    pub parts: &'a http::request::Parts,
    /// The route that matched, as configured (`/foo`).
    pub route: &'a str,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the request arrived on.
    pub local: SocketAddr,
    /// Whether it arrived over TLS: `X_FULL_URL` is then `https://`.
    pub tls: bool,
    /// Bytes of request body handed to the guest on stdin.
    pub body_len: usize,
    /// Function being served.
    pub function: &'a str,
    /// Version label being served.
    pub version: &'a str,
    /// The request's id, as echoed in `x-request-id`.
    pub request_id: &'a str,
}

/// The part of the raw path below the route: `/bar` for route `/foo` and path
/// `/foo/bar`, empty for `/foo`.
pub fn raw_path_info<'p>(path: &'p str, route: &str) -> &'p str {
    let prefix = route.trim_end_matches('/');
    path.get(prefix.len()..).unwrap_or("")
}

/// The guest's environment: the function's static `env` first, then the request
/// variables, which win over a static entry of the same name.
pub fn environment(info: &RequestInfo<'_>, static_env: &[(String, String)]) -> CStrings {
    let parts = info.parts;
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let raw_info = raw_path_info(path, info.route);
    let host = host_of(parts);
    let (server_name, _) = split_host_port(host.unwrap_or(""));

    let mut vars = CStrings::with_capacity(640 + 2 * (path.len() + query.len()));
    vars.push_var("REQUEST_METHOD", parts.method.as_str());
    vars.push_var(
        "PATH_INFO",
        &percent_decode_str(raw_info).decode_utf8_lossy(),
    );
    vars.push_var("X_RAW_PATH_INFO", raw_info);
    vars.push_var("QUERY_STRING", query);
    vars.push_var("SCRIPT_NAME", info.route);
    vars.push_var("X_MATCHED_ROUTE", info.route);
    let url = vars.begin_var(*b"X_FULL_URL");
    url.extend_from_slice(if info.tls { b"https://" } else { b"http://" });
    match host {
        Some(h) => url.extend_from_slice(h.as_bytes()),
        None => {
            let _ = write!(url, "{}", info.local);
        }
    }
    url.extend_from_slice(path.as_bytes());
    if !query.is_empty() {
        url.push(b'?');
        url.extend_from_slice(query.as_bytes());
    }
    vars.end();
    if server_name.is_empty() {
        vars.push_var_display("SERVER_NAME", info.local.ip());
    } else {
        vars.push_var("SERVER_NAME", server_name);
    }
    vars.push_var_display("SERVER_PORT", info.local.port());
    vars.push_var("SERVER_PROTOCOL", protocol(parts.version));
    vars.push_var(
        "SERVER_SOFTWARE",
        concat!("wedge/", env!("CARGO_PKG_VERSION")),
    );
    vars.push_var_display("REMOTE_ADDR", info.peer.ip());
    vars.push_var_display("REMOTE_HOST", info.peer.ip());
    vars.push_var_display("CONTENT_LENGTH", info.body_len);
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    vars.push_var(
        "CONTENT_TYPE",
        &content_type.map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes())),
    );
    vars.push_var("GATEWAY_INTERFACE", "CGI/1.1");
    vars.push_var("WEDGE_FUNCTION", info.function);
    vars.push_var("WEDGE_VERSION", info.version);
    vars.push_var("WEDGE_REQUEST_ID", info.request_id);
    header_variables(&parts.headers, &mut vars);

    if static_env.is_empty() {
        return vars;
    }
    let mut env = CStrings::with_capacity(vars.len() + 64 * static_env.len());
    for (k, v) in static_env {
        if vars.var(k).is_none() {
            env.push_var(k, v);
        }
    }
    env.append(&vars);
    env
}

/// `HTTP_<NAME>` for each header but `Authorization` and `Connection`; repeated
/// headers are joined with `, ` (cookies with `; `). A header whose name holds
/// `_` is not passed: `X_User_Id` would land on the same variable as
/// `X-User-Id`, a header a proxy in front may have set after checking it.
fn header_variables(headers: &HeaderMap, vars: &mut CStrings) {
    for name in headers.keys() {
        if name == header::AUTHORIZATION
            || name == header::CONNECTION
            || name.as_str().contains('_')
        {
            continue;
        }
        let key = b"HTTP_"
            .iter()
            .copied()
            .chain(name.as_str().bytes().map(|c| {
                if c == b'-' {
                    b'_'
                } else {
                    c.to_ascii_uppercase()
                }
            }));
        let value = vars.begin_var(key);
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(String::from_utf8_lossy(v.as_bytes()).as_bytes());
        }
        vars.end();
    }
}

/// argv: the request path, then each `&`-separated query item, percent-decoded
/// (with `+` as a space, as in an HTML form).
pub fn arguments(parts: &http::request::Parts) -> CStrings {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let mut args = CStrings::with_capacity(path.len() + query.len() + 2);
    args.push(path);
    for item in query.split('&').filter(|q| !q.is_empty()) {
        let plus_as_space = item.replace('+', " ");
        args.push(&percent_decode_str(&plus_as_space).decode_utf8_lossy());
    }
    args
}

/// The `Host` header, or the authority of an absolute or HTTP/2 request target.
pub fn host_of(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// Splits `example.com:8080` or `[::1]:8080` into host and optional port.
pub fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Parses CGI output: header lines, a blank line, then the body.
pub fn parse_response(out: Bytes) -> Result<GuestResponse, MalformedResponse> {
    if out.is_empty() {
        return Err(MalformedResponse::Empty);
    }
    let mut headers = HeaderMap::new();
    let mut status: Option<StatusCode> = None;
    let mut has_location = false;
    let mut has_content_type = false;
    let mut pos = 0;
    let mut line_no = 0;
    let body_start = loop {
        let Some(nl) = out[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if out.len() > MAX_HEADER_BLOCK {
                MalformedResponse::HeadersTooLarge
            } else {
                MalformedResponse::Unterminated
            });
        };
        let end = pos + nl + 1;
        if end > MAX_HEADER_BLOCK {
            return Err(MalformedResponse::HeadersTooLarge);
        }
        line_no += 1;
        let mut line = &out[pos..pos + nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        pos = end;
        if line.is_empty() {
            break end;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(MalformedResponse::BadLine(line_no))?;
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| MalformedResponse::BadLine(line_no))?;
        let value = line[colon + 1..].trim_ascii();
        if name.as_str() == "status" {
            let text = String::from_utf8_lossy(value).into_owned();
            let code = value
                .get(..3)
                .filter(|_| value.len() == 3 || value[3] == b' ')
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.as_u16() >= 200)
                .ok_or(MalformedResponse::BadStatus(text))?;
            status = Some(code);
            continue;
        }
        let value =
            HeaderValue::from_bytes(value).map_err(|_| MalformedResponse::BadLine(line_no))?;
        if is_host_controlled(&name) {
            continue;
        }
        has_location |= name == header::LOCATION;
        has_content_type |= name == header::CONTENT_TYPE;
        headers.append(name, value);
    };
    let status = match status {
        Some(s) => s,
        None if has_location => StatusCode::FOUND,
        None if has_content_type => StatusCode::OK,
        None => return Err(MalformedResponse::NoContentType),
    };
    Ok(GuestResponse {
        status,
        headers,
        body: out.slice(body_start..),
        stream: None,
    })
}

/// Where the header block of `out`, a guest's stdout so far, ends (its blank
/// line included); `None` while it may still be coming.
pub fn head_len(out: &[u8]) -> Option<Result<usize, MalformedResponse>> {
    let mut pos = 0;
    while let Some(nl) = out[pos..].iter().position(|&b| b == b'\n') {
        let end = pos + nl + 1;
        if end > MAX_HEADER_BLOCK {
            return Some(Err(MalformedResponse::HeadersTooLarge));
        }
        let line = &out[pos..pos + nl];
        if line.strip_suffix(b"\r").unwrap_or(line).is_empty() {
            return Some(Ok(end));
        }
        pos = end;
    }
    (out.len() >= MAX_HEADER_BLOCK).then_some(Err(MalformedResponse::HeadersTooLarge))
}

/// Headers that describe the connection or the framing, or that the host sets
/// itself; a guest's value for them is dropped.
fn is_host_controlled(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "x-request-id"
            | "x-wedge-version"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GuestResponse, MalformedResponse> {
        parse_response(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn plain_response() {
        let r = parse("Content-Type: text/plain\n\nhello").unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(&r.body[..], b"hello");
    }

    #[test]
    fn crlf_status_and_repeated_headers() {
        let r = parse("Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\ngone")
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(&r.body[..], b"gone");
    }

    #[test]
    fn location_alone_redirects() {
        let r = parse("Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, StatusCode::FOUND);
        let r = parse("Status: 301\nLocation: /x\n\n").unwrap();
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn malformed_output_is_refused() {
        assert_eq!(parse("").err(), Some(MalformedResponse::Empty));
        assert_eq!(
            parse("just a body").err(),
            Some(MalformedResponse::Unterminated)
        );
        assert_eq!(
            parse("X-Foo: bar\n\nbody").err(),
            Some(MalformedResponse::NoContentType)
        );
        assert_eq!(
            parse("no colon here\n\n").err(),
            Some(MalformedResponse::BadLine(1))
        );
        assert!(matches!(
            parse("Status: abc\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: 100\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: 2000\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        let huge = format!("X-A: {}\n\n", "a".repeat(MAX_HEADER_BLOCK));
        assert_eq!(parse(&huge).err(), Some(MalformedResponse::HeadersTooLarge));
    }

    #[test]
    fn framing_headers_are_the_hosts() {
        let r =
            parse("Content-Type: text/plain\nContent-Length: 99\nConnection: close\n\nhi").unwrap();
        assert!(r.headers.get("content-length").is_none());
        assert!(r.headers.get("connection").is_none());
    }

    #[test]
    fn path_info_is_below_the_route() {
        assert_eq!(raw_path_info("/foo/bar", "/foo"), "/bar");
        assert_eq!(raw_path_info("/foo", "/foo"), "");
        assert_eq!(raw_path_info("/x/y", "/"), "/x/y");
        assert_eq!(raw_path_info("/foo/bar", "/foo/"), "/bar");
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(
            split_host_port("example.com:8080"),
            ("example.com", Some("8080"))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
    }

    #[test]
    fn request_becomes_environment_and_argv() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/foo/a%20b?x=1&y=hello+world&&z=%2F")
            .header("host", "edge.example:8080")
            .header("x-user-id", "42")
            .header("accept", "a")
            .header("accept", "b")
            .header("authorization", "Bearer secret")
            .header("x_user_id", "forged")
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let info = RequestInfo {
            parts: &parts,
            route: "/foo",
            peer: "10.1.2.3:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            tls: false,
            body_len: 5,
            function: "fn",
            version: "v1",
            request_id: "rid",
        };
        let static_env = vec![
            ("GREETING".to_string(), "hi".to_string()),
            ("REQUEST_METHOD".to_string(), "overridden".to_string()),
        ];
        let env = environment(&info, &static_env);
        let get = |k: &str| env.var(k);
        assert_eq!(env.iter().next(), Some("GREETING=hi"));
        assert_eq!(
            env.iter()
                .filter(|s| s.starts_with("REQUEST_METHOD="))
                .count(),
            1
        );
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("PATH_INFO"), Some("/a b"));
        assert_eq!(get("X_RAW_PATH_INFO"), Some("/a%20b"));
        assert_eq!(get("SERVER_NAME"), Some("edge.example"));
        assert_eq!(get("HTTP_X_USER_ID"), Some("42"));
        assert_eq!(
            env.iter()
                .filter(|s| s.starts_with("HTTP_X_USER_ID="))
                .count(),
            1,
            "an underscored header cannot add a second HTTP_X_USER_ID"
        );
        assert_eq!(get("HTTP_ACCEPT"), Some("a, b"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("CONTENT_LENGTH"), Some("5"));
        assert_eq!(
            get("X_FULL_URL"),
            Some("http://edge.example:8080/foo/a%20b?x=1&y=hello+world&&z=%2F")
        );
        let tls = environment(&RequestInfo { tls: true, ..info }, &[]);
        assert_eq!(
            tls.var("X_FULL_URL"),
            Some("https://edge.example:8080/foo/a%20b?x=1&y=hello+world&&z=%2F")
        );
        assert_eq!(
            arguments(&parts).iter().collect::<Vec<_>>(),
            ["/foo/a%20b", "x=1", "y=hello world", "z=/"]
        );
    }
}
