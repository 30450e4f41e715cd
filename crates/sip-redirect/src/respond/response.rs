//! SIP responses written for a request (RFC 3261 8.2.6): every Via in order (the top one
//! with `received` and `rport` filled, RFC 3581), From, To with a tag, Call-ID, CSeq, then
//! the response's own headers and `Content-Length: 0`.

use std::fmt::Write;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

use tollgate_sip::message::HeaderName;
use tollgate_sip::uri::name_addr;

use super::request::Request;

/// The methods this server answers (for Allow).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, OPTIONS";

/// The Server header's value.
const SERVER: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));

/// A response's status and the headers of its own.
pub(crate) struct Status<'h> {
    /// Status code.
    pub code: u16,
    /// Headers after the copied ones: (name, value).
    pub headers: &'h [(&'h str, &'h str)],
}

/// Writes the response to `req`, received from `peer`.
pub(crate) fn build(req: &Request<'_>, peer: SocketAddr, status: Status<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(512 + req.copied_len());
    let _ = write!(out, "SIP/2.0 {} {}\r\n", status.code, reason_phrase(status.code));
    let mut vias = req.vias();
    if vias.next().is_some() {
        out.push_str("Via: ");
        top_via(&mut out, req, peer);
        push_value(&mut out, req.top.rest);
        out.push_str("\r\n");
    }
    for via in vias {
        header(&mut out, "Via", via);
    }
    if let Some(from) = req.header(HeaderName::From) {
        header(&mut out, "From", from);
    }
    if let Some(to) = req.header(HeaderName::To) {
        out.push_str("To: ");
        push_value(&mut out, to);
        if name_addr(to).tag.is_none() {
            let _ = write!(out, ";tag={}", to_tag(req));
        }
        out.push_str("\r\n");
    }
    if let Some(call_id) = req.header(HeaderName::CallId) {
        header(&mut out, "Call-ID", call_id);
    }
    if let Some(cseq) = req.header(HeaderName::CSeq) {
        header(&mut out, "CSeq", cseq);
    }
    for (name, value) in status.headers {
        header(&mut out, name, value);
    }
    header(&mut out, "Server", SERVER);
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The top Via as answered: its parameters but `received` as sent, `rport` with the source
/// port (RFC 3581 4), and `received` with the source address when the sent-by host is not it
/// or `rport` was asked (RFC 3261 18.2.1, RFC 3581 4).
fn top_via(out: &mut String, req: &Request<'_>, peer: SocketAddr) {
    let value = req.top.value;
    let (head, params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    push_value(out, head.trim_end());
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let name = param.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            let _ = write!(out, ";rport={}", peer.port());
            continue;
        }
        out.push(';');
        push_value(out, param);
    }
    if req.top.rport || !req.top.host_is(peer.ip()) {
        let _ = write!(out, ";received={}", peer.ip().to_canonical());
    }
}

/// The To tag of a response to a request whose To has none: the same for every
/// retransmission of the request and for a CANCEL of it (same branch and Call-ID).
pub(crate) fn to_tag(req: &Request<'_>) -> String {
    let mut hasher = DefaultHasher::new();
    req.top.branch.unwrap_or("").hash(&mut hasher);
    req.header(HeaderName::CallId).unwrap_or("").hash(&mut hasher);
    format!("tg{:016x}", hasher.finish())
}

fn header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    push_value(out, value);
    out.push_str("\r\n");
}

/// A header value on one line: the line breaks of folded values become spaces.
fn push_value(out: &mut String, value: &str) {
    out.extend(value.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }));
}

/// The RFC 3261 (and later RFCs') reason phrase of a status code.
pub(crate) fn reason_phrase(code: u16) -> &'static str {
    known_phrase(code).unwrap_or(match code {
        300..=399 => "Redirection",
        400..=499 => "Request Failure",
        500..=599 => "Server Failure",
        600..=699 => "Global Failure",
        _ => "Unknown",
    })
}

fn known_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        200 => "OK",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        433 => "Anonymity Disallowed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => return None,
    })
}

/// A Reason header's value (RFC 3326): `SIP ;cause=603 ;text="rule"` (the text only when a
/// rule decided; quotes and backslashes escaped, control characters dropped).
pub(crate) fn reason_header(code: u16, rule: Option<&str>) -> String {
    let mut value = format!("SIP ;cause={code}");
    if let Some(rule) = rule {
        value.push_str(" ;text=\"");
        for c in rule.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                value.push('\\');
            }
            value.push(c);
        }
        value.push('"');
    }
    value
}
