//! What a request must be before any of it reaches a guest: the bytes that
//! become the guest's environment and argv carry no control characters, and
//! the `Host` header says one thing.
//!
//! The guest receives its request as NUL-terminated strings (WAGI). A NUL
//! decoded from `%00` would end one variable early and start a forged one
//! (`/a%00QUERY_STRING=...`); a newline or other control byte in a variable
//! confuses any guest that logs or re-emits it. So a request whose decoded
//! path, decoded query or any header value passed to the guest holds a byte in
//! `0x00..=0x1F` or `0x7F` is refused with 400 before routing. `docs/abi.md`
//! lists the rule for handler authors.

use http::header::{self, HeaderMap};
use http::{Version, request::Parts};
use percent_encoding::percent_decode_str;

/// Why the host will not pass a request on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// The percent-decoded path holds a control byte.
    #[error("the decoded path holds a control byte")]
    PathControl,
    /// The percent-decoded query holds a control byte.
    #[error("the decoded query holds a control byte")]
    QueryControl,
    /// A header value passed to the guest holds a control byte.
    #[error("a header value holds a control byte")]
    HeaderControl,
    /// An HTTP/1.1 request without a `Host` header.
    #[error("an HTTP/1.1 request needs a Host header")]
    NoHost,
    /// More than one `Host` header.
    #[error("more than one Host header")]
    ManyHosts,
    /// A `Host` header that is not `host[:port]`.
    #[error("the Host header is not a host and port")]
    BadHost,
    /// An HTTP/2 request whose `Host` names another authority than `:authority`.
    #[error("Host and :authority disagree")]
    HostMismatch,
    /// More than one `Idempotency-Key`, or one that is empty or too long.
    #[error("the Idempotency-Key header must be one value of 1-256 bytes")]
    BadIdempotencyKey,
}

/// Longest `Idempotency-Key` honoured.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The header naming a request so that sending it again replays its store writes.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's `Idempotency-Key`, if it has one.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&[u8]>, BadRequest> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(key) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(BadRequest::BadIdempotencyKey);
    }
    Ok(Some(key.as_bytes()))
}

/// A byte the guest must never see in its environment or argv.
pub fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Checks everything of `parts` that reaches the guest.
pub fn check(parts: &Parts) -> Result<(), BadRequest> {
    check_host(parts)?;
    idempotency_key(&parts.headers)?;
    if decodes_to_control(parts.uri.path()) {
        return Err(BadRequest::PathControl);
    }
    if parts.uri.query().is_some_and(decodes_to_control) {
        return Err(BadRequest::QueryControl);
    }
    check_header_values(&parts.headers)
}

/// Whether percent-decoding `text` yields a control byte.
fn decodes_to_control(text: &str) -> bool {
    // Raw control bytes never get past the URI parser; only encoded ones can.
    text.contains('%') && percent_decode_str(text).any(is_control)
}

/// Header values become `HTTP_<NAME>` variables. hyper already refuses every
/// control byte but horizontal tab, so tab is the one this ever catches.
fn check_header_values(headers: &HeaderMap) -> Result<(), BadRequest> {
    if headers
        .values()
        .any(|v| v.as_bytes().iter().copied().any(is_control))
    {
        return Err(BadRequest::HeaderControl);
    }
    Ok(())
}

/// HTTP/1.1 needs exactly one `Host` (RFC 9112 §3.2); no version may carry two,
/// and the one given must be `host[:port]`. Over HTTP/2, a `Host` next to
/// `:authority` must name the same authority (RFC 9113 §8.3.1).
fn check_host(parts: &Parts) -> Result<(), BadRequest> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BadRequest::ManyHosts);
    }
    let Some(host) = host else {
        return match parts.version {
            Version::HTTP_11 => Err(BadRequest::NoHost),
            _ => Ok(()),
        };
    };
    let authority = host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
        .ok_or(BadRequest::BadHost)?;
    if parts.version == Version::HTTP_2
        && let Some(target) = parts.uri.authority()
        && !target.as_str().eq_ignore_ascii_case(authority.as_str())
    {
        return Err(BadRequest::HostMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, version: Version, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = http::Request::get(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, http::HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn h11(uri: &str) -> Parts {
        parts(uri, Version::HTTP_11, &[("host", b"edge.example:8080")])
    }

    #[test]
    fn encoded_control_bytes_are_refused() {
        assert_eq!(check(&h11("/probe/a%20b?x=%2F+y")), Ok(()));
        assert_eq!(
            check(&h11("/probe/a%00QUERY_STRING=do=trap?do=label")),
            Err(BadRequest::PathControl)
        );
        assert_eq!(check(&h11("/p/%0a")), Err(BadRequest::PathControl));
        assert_eq!(check(&h11("/p/%7F")), Err(BadRequest::PathControl));
        assert_eq!(check(&h11("/p?a=%00")), Err(BadRequest::QueryControl));
        assert_eq!(check(&h11("/p?a=%09")), Err(BadRequest::QueryControl));
        // Bytes above 0x7F are not control bytes: they arrive as UTF-8 or U+FFFD.
        assert_eq!(check(&h11("/p/%C3%A9?q=%FF")), Ok(()));
    }

    #[test]
    fn header_tabs_are_refused() {
        let p = parts(
            "/p",
            Version::HTTP_11,
            &[("host", b"x"), ("x-a", b"one\ttwo")],
        );
        assert_eq!(check(&p), Err(BadRequest::HeaderControl));
        let p = parts(
            "/p",
            Version::HTTP_11,
            &[("host", b"x"), ("x-a", b"caf\xc3\xa9")],
        );
        assert_eq!(check(&p), Ok(()));
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            check(&parts("/", Version::HTTP_11, &[])),
            Err(BadRequest::NoHost)
        );
        assert_eq!(check(&parts("/", Version::HTTP_10, &[])), Ok(()));
        assert_eq!(check(&parts("/", Version::HTTP_2, &[])), Ok(()));
        assert_eq!(
            check(&parts(
                "/",
                Version::HTTP_11,
                &[("host", b"a"), ("host", b"b")]
            )),
            Err(BadRequest::ManyHosts)
        );
        for bad in [&b"a b"[..], b"user@host", b"", b":80", b"a/b"] {
            assert_eq!(
                check(&parts("/", Version::HTTP_11, &[("host", bad)])),
                Err(BadRequest::BadHost),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            check(&parts("/", Version::HTTP_11, &[("host", b"[::1]:8080")])),
            Ok(())
        );
        assert_eq!(
            check(&parts(
                "http://a.example/",
                Version::HTTP_2,
                &[("host", b"b.example")]
            )),
            Err(BadRequest::HostMismatch)
        );
        assert_eq!(
            check(&parts(
                "http://a.example/",
                Version::HTTP_2,
                &[("host", b"A.example")]
            )),
            Ok(())
        );
    }
}
