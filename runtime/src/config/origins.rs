//! A function's `outbound` list: the origins it may call, and which addresses
//! a call may connect to.
//!
//! An entry is `scheme://host[:port]`: the scheme `http` or `https`; the host
//! a name, `*.` and a name for any name below it, or an IP address (`[...]`
//! for IPv6); the port a number or `*` for any, and the scheme's own port
//! when left out. A URL is allowed when an entry matches its scheme, host and
//! port. The addresses its name resolves to are then checked as well: an
//! address that is not public (loopback, private, link-local and so the cloud
//! metadata service, shared, unique-local, multicast, reserved) is refused
//! unless an entry names that very address with the URL's scheme and port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The scheme of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, as in a URL.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Any name ending in `.<this>`.
    Below(String),
    /// This address.
    Ip(IpAddr),
}

/// One entry of `outbound`.
#[derive(Debug, Clone)]
pub struct Origin {
    scheme: Scheme,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
    /// The entry as written: the `origin` label of the outbound metrics.
    pub text: Arc<str>,
}

impl Origin {
    fn matches(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        let host_matches = match (&self.host, host) {
            (HostPattern::Name(n), Host::Name(h)) => n == h,
            (HostPattern::Below(n), Host::Name(h)) => {
                h.len() > n.len() + 1 && h.ends_with(n.as_str()) && {
                    h.as_bytes()[h.len() - n.len() - 1] == b'.'
                }
            }
            (HostPattern::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        };
        self.scheme == scheme && host_matches && self.port.is_none_or(|p| p == port)
    }
}

/// The host of a URL a guest asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A name, lower case, without a trailing dot.
    Name(String),
    /// An address written in the URL.
    Ip(IpAddr),
}

impl Host {
    /// Reads the host of a URL (`[...]` around IPv6).
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return v6.parse::<Ipv6Addr>().ok().map(|ip| Self::Ip(ip.into()));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(Self::Ip(ip.into()));
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        valid_name(&name).then_some(Self::Name(name))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

/// A function's `outbound` list, parsed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    origins: Vec<Origin>,
}

impl AllowList {
    /// Parses every entry; the first bad one is named in the error.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let origins = entries
            .iter()
            .map(|e| parse_entry(e).map_err(|why| format!("outbound entry `{e}`: {why}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// Whether the list is empty: the function may call nothing.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The entry that allows a URL with this scheme, host and port.
    pub fn allowing(&self, scheme: Scheme, host: &Host, port: u16) -> Option<&Origin> {
        self.origins.iter().find(|o| o.matches(scheme, host, port))
    }

    /// Whether a call to `scheme` and `port` may connect to `ip`: a public
    /// address, or one an entry names itself.
    pub fn may_connect(&self, scheme: Scheme, port: u16, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.allowing(scheme, &Host::Ip(ip), port).is_some()
    }
}

fn parse_entry(entry: &str) -> Result<Origin, &'static str> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or("write it as scheme://host[:port]")?;
    let scheme = Scheme::parse(scheme).ok_or("the scheme is http or https")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query, fragment or user");
    }
    // The port follows the last colon outside an IPv6 address's brackets.
    let (host, port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let port = match port {
        None => Some(scheme.default_port()),
        Some("*") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("the port is 1-65535 or *")?,
        ),
    };
    let host = match host.strip_prefix("*.") {
        Some(below) => match Host::parse(below) {
            Some(Host::Name(n)) => HostPattern::Below(n),
            _ => return Err("`*.` goes before a name"),
        },
        None => match Host::parse(host).ok_or("the host is not a valid name or address")? {
            Host::Name(n) => HostPattern::Name(n),
            Host::Ip(ip) => HostPattern::Ip(canonical(ip)),
        },
    };
    Ok(Origin {
        scheme,
        host,
        port,
        text: entry.into(),
    })
}

/// An IPv4 address mapped into IPv6 is checked as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && ip.segments()[1] == 0x0db8)
                || (first == 0x0064 && ip.segments()[1] == 0xff9b)
                || first == 0x2002)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn host(h: &str) -> Host {
        Host::parse(h).unwrap()
    }

    #[test]
    fn entries_match_scheme_host_and_port() {
        let l = list(&[
            "https://api.example.com",
            "http://127.0.0.1:*",
            "https://*.cdn.example.net:8443",
        ]);
        assert!(
            l.allowing(Scheme::Https, &host("API.example.com."), 443)
                .is_some()
        );
        assert!(
            l.allowing(Scheme::Http, &host("api.example.com"), 443)
                .is_none()
        );
        assert!(
            l.allowing(Scheme::Https, &host("api.example.com"), 8443)
                .is_none()
        );
        assert!(l.allowing(Scheme::Http, &host("127.0.0.1"), 9999).is_some());
        assert!(
            l.allowing(Scheme::Https, &host("a.cdn.example.net"), 8443)
                .is_some()
        );
        assert!(
            l.allowing(Scheme::Https, &host("cdn.example.net"), 8443)
                .is_none()
        );
        assert!(
            l.allowing(Scheme::Https, &host("evilcdn.example.net"), 8443)
                .is_none()
        );
    }

    #[test]
    fn addresses_that_are_not_public_need_an_entry_of_their_own() {
        let l = list(&["http://origin.internal:*", "http://10.0.0.5:8080"]);
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!l.may_connect(Scheme::Http, 80, v4("169.254.169.254")));
        assert!(!l.may_connect(Scheme::Http, 80, v4("127.0.0.1")));
        assert!(!l.may_connect(Scheme::Http, 80, v4("::ffff:127.0.0.1")));
        assert!(!l.may_connect(Scheme::Http, 80, v4("fd00:ec2::254")));
        assert!(!l.may_connect(Scheme::Http, 80, v4("100.100.100.200")));
        assert!(!l.may_connect(Scheme::Http, 80, v4("10.0.0.5")));
        assert!(l.may_connect(Scheme::Http, 8080, v4("10.0.0.5")));
        assert!(l.may_connect(Scheme::Http, 80, v4("93.184.215.14")));
        assert!(l.may_connect(
            Scheme::Http,
            80,
            v4("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
        ));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://x:0",
            "https://x:70000",
            "https://*.",
            "https://a b",
            "https://user@x",
        ] {
            let err = AllowList::parse(&[bad.to_string()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        list(&["https://[::1]:*", "http://localhost:3000/"]);
    }
}
