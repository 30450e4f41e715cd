//! The parts of a SIP request the redirect server reads: the method and Request-URI, the top
//! Via (sent-by, branch, rport), and the headers a response copies. Borrowed from the
//! message's bytes, as `tollgate-sip` parsed them.

use std::net::IpAddr;

use tollgate_sip::message::{HeaderName, Method, SipMessage, StartLine};

/// Longest top Via branch or Call-ID accepted (bytes): both are kept in the retransmission
/// window, whose memory must stay bounded; real ones are well under 100.
pub(crate) const MAX_KEY_PART: usize = 256;

/// Most bytes of the headers a response copies (every Via, From, To, Call-ID, CSeq): what the
/// server adds is under 1 KiB (a Contact of at most 512 bytes, a Reason with a rule name), so
/// every response stays under 4 KiB, and so does each answer kept for retransmissions.
pub(crate) const MAX_COPIED: usize = 3 * 1024;

/// A request, as far as the redirect server reads it.
pub(crate) struct Request<'a> {
    /// The method.
    pub method: Method<'a>,
    /// The Request-URI as sent.
    pub uri: &'a str,
    /// The parsed message (headers in order).
    pub message: SipMessage<'a>,
    /// The top Via: the first value of the first Via header.
    pub top: TopVia<'a>,
}

impl<'a> Request<'a> {
    /// Reads a parsed message: `None` for a response, or a request without a Via to answer to.
    pub fn read(message: SipMessage<'a>) -> Option<Self> {
        let StartLine::Request { method, uri } = message.start else { return None };
        let first_via = message.header(HeaderName::Via)?;
        let top = TopVia::parse(first_via)?;
        Some(Request { method, uri, message, top })
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.message.header(name)
    }

    /// The Via header values, in order.
    pub fn vias(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.message.headers.iter().filter(|h| h.name == HeaderName::Via).map(|h| h.value)
    }

    /// Bytes of the headers a response copies.
    pub fn copied_len(&self) -> usize {
        self.message
            .headers
            .iter()
            .filter(|h| {
                matches!(
                    h.name,
                    HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
                )
            })
            .map(|h| h.value.len() + 16)
            .sum()
    }

    /// What is missing or inconsistent for a response to be built (RFC 3261 8.1.1: To, From,
    /// Call-ID, CSeq; the CSeq method must be the request's), or `None` when it is complete.
    pub fn malformed(&self) -> Option<&'static str> {
        if self.header(HeaderName::From).is_none() {
            return Some("Missing From");
        }
        if self.header(HeaderName::To).is_none() {
            return Some("Missing To");
        }
        if self.header(HeaderName::CallId).is_none_or(str::is_empty) {
            return Some("Missing Call-ID");
        }
        let Some((_, method)) = self.message.cseq() else { return Some("Missing or Bad CSeq") };
        if method != self.method {
            return Some("CSeq Method Mismatch");
        }
        if self.top.branch.is_some_and(|b| b.len() > MAX_KEY_PART)
            || self.header(HeaderName::CallId).is_some_and(|c| c.len() > MAX_KEY_PART)
        {
            return Some("Branch or Call-ID Too Long");
        }
        None
    }

    /// The Max-Forwards value, when present and a number.
    pub fn max_forwards(&self) -> Option<u32> {
        self.message.header_named("Max-Forwards").and_then(|v| v.trim().parse().ok())
    }
}

/// The top Via's parts (RFC 3261 20.42, RFC 3581).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopVia<'a> {
    /// The whole first value (up to the first comma outside quotes).
    pub value: &'a str,
    /// The rest of the first Via header after that value (`, SIP/2.0/UDP ...`), if any.
    pub rest: &'a str,
    /// The sent-by host (IPv6 without brackets).
    pub host: &'a str,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// The branch parameter.
    pub branch: Option<&'a str>,
    /// An `rport` parameter is present (RFC 3581: answer to the source port).
    pub rport: bool,
}

impl<'a> TopVia<'a> {
    /// Parses the first value of a Via header; `None` when it has no sent-by.
    pub fn parse(header: &'a str) -> Option<Self> {
        let split = first_comma_outside_quotes(header).unwrap_or(header.len());
        let value = header[..split].trim();
        let rest = &header[split..];
        let (head, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, ""),
        };
        // `SIP/2.0/UDP host:port`: the sent-by is the last word (LWS may surround the slashes).
        let sent_by = head.split_ascii_whitespace().last()?;
        if !head.contains('/') || sent_by.contains('/') {
            return None;
        }
        let (host, port) = split_host_port(sent_by)?;
        let mut via = TopVia { value, rest, host, port, branch: None, rport: false };
        for param in params.split(';').map(str::trim) {
            let (name, val) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param, None),
            };
            if name.eq_ignore_ascii_case("branch") {
                via.branch = via.branch.or(val);
            } else if name.eq_ignore_ascii_case("rport") {
                via.rport = true;
            }
        }
        Some(via)
    }

    /// True when the sent-by host is the address `ip` (so no `received` is needed).
    pub fn host_is(&self, ip: IpAddr) -> bool {
        self.host.parse::<IpAddr>().is_ok_and(|h| h.to_canonical() == ip.to_canonical())
    }
}

/// `host[:port]` or `[v6][:port]`; `None` when empty or the port is not a number.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let close = v6.find(']')?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (&v6[..close], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

fn first_comma_outside_quotes(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The host and port of a SIP URI (`sip:user@host:port;params`): `host:port` as written;
/// empty for a `tel:` URI or a URI without a host.
pub(crate) fn uri_host(uri: &str) -> &str {
    let lower = uri.get(..5).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    let rest = if lower.starts_with("sips:") {
        &uri[5..]
    } else if lower.starts_with("sip:") {
        &uri[4..]
    } else {
        return "";
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    &rest[..end]
}

/// Whether a Request-URI can be answered: `Err(416)` for a scheme other than `sip:`, `sips:`
/// and `tel:`, `Err(400)` for one that cannot be copied into a Contact (longer than 512 bytes,
/// or with characters a URI never holds unescaped).
pub(crate) fn check_request_uri(uri: &str) -> Result<(), u16> {
    if uri.len() > 512 || !uri.bytes().all(|b| b.is_ascii_graphic() && !b"<>\"{}|^`\\".contains(&b)) {
        return Err(400);
    }
    let lower = uri.get(..5).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    if lower.starts_with("sip:") || lower.starts_with("sips:") || lower.starts_with("tel:") { Ok(()) } else { Err(416) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_via_parts() {
        let v = TopVia::parse("SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-1;rport, SIP/2.0/UDP p;branch=2").unwrap();
        assert_eq!((v.host, v.port, v.branch, v.rport), ("10.0.0.2", Some(5062), Some("z9hG4bK-1"), true));
        assert_eq!(v.value, "SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-1;rport");
        assert_eq!(v.rest, ", SIP/2.0/UDP p;branch=2");
        let v = TopVia::parse("SIP / 2.0 / TCP [2001:db8::1];branch=\"a,b\"").unwrap();
        assert_eq!((v.host, v.port, v.rport), ("2001:db8::1", None, false));
        assert!(v.host_is("2001:db8::1".parse().unwrap()));
        assert!(TopVia::parse("SIP/2.0/UDP").is_none());
        assert!(TopVia::parse("garbage").is_none());
        assert!(TopVia::parse("SIP/2.0/UDP host:99999").is_none());
    }

    #[test]
    fn uri_hosts_and_checks() {
        assert_eq!(uri_host("sip:+12125550100@10.0.0.1:5060;user=phone"), "10.0.0.1:5060");
        assert_eq!(uri_host("SIPS:bob@[2001:db8::1]:5061?x=y"), "[2001:db8::1]:5061");
        assert_eq!(uri_host("sip:gw.example.net"), "gw.example.net");
        assert_eq!(uri_host("tel:+12125550100"), "");
        assert_eq!(check_request_uri("sip:+12125550100@h"), Ok(()));
        assert_eq!(check_request_uri("tel:+12125550100"), Ok(()));
        assert_eq!(check_request_uri("mailto:a@b"), Err(416));
        assert_eq!(check_request_uri("sip:a>@b"), Err(400));
        assert_eq!(check_request_uri(&format!("sip:{}@b", "1".repeat(600))), Err(400));
    }
}
