//! SIP messages (RFC 3261 section 7), parsed leniently and without copying.
//!
//! Lenient means: LF alone is accepted as a line end, whitespace around names and values is
//! trimmed, header lines without a colon are skipped, a missing Content-Length means the body
//! runs to the end of the datagram, and a body shorter than its Content-Length is kept and
//! flagged. Strict means: the start line must be a request or a status line, and the head must be
//! UTF-8. Nothing here panics on any input; the fuzz target checks that.

use smallvec::SmallVec;

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but line ends (keepalives).
    #[error("empty message")]
    Empty,
    /// The head ends before the blank line that closes it.
    #[error("headers not terminated by an empty line")]
    UnterminatedHead,
    /// The start line is neither `METHOD URI SIP/2.0` nor `SIP/2.0 CODE REASON`.
    #[error("bad start line")]
    BadStartLine,
    /// The head is not UTF-8.
    #[error("head is not UTF-8")]
    NotUtf8,
    /// The Content-Length value is not a number.
    #[error("bad Content-Length")]
    BadContentLength,
}

/// A SIP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// PRACK
    Prack,
    /// UPDATE
    Update,
    /// INFO
    Info,
    /// Any other token.
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Parses a method token (case-sensitive, as RFC 3261 says).
    pub fn parse(s: &'a str) -> Method<'a> {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            other => Method::Other(other),
        }
    }

    /// The token.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Other(s) => s,
        }
    }
}

/// Request or status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD Request-URI SIP/2.0`
    Request {
        /// The method.
        method: Method<'a>,
        /// The Request-URI.
        uri: &'a str,
    },
    /// `SIP/2.0 CODE Reason`
    Response {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: &'a str,
    },
}

/// Header names the probe looks up often; others keep their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName<'a> {
    /// Call-ID (`i`)
    CallId,
    /// From (`f`)
    From,
    /// To (`t`)
    To,
    /// Via (`v`)
    Via,
    /// CSeq
    CSeq,
    /// Content-Length (`l`)
    ContentLength,
    /// Content-Type (`c`)
    ContentType,
    /// Contact (`m`)
    Contact,
    /// P-Asserted-Identity
    PAssertedIdentity,
    /// Record-Route
    RecordRoute,
    /// Anything else, as written.
    Other(&'a str),
}

impl<'a> HeaderName<'a> {
    /// Recognises a header name, compact forms included, ignoring case.
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        let eq = |s: &str| name.eq_ignore_ascii_case(s);
        if name.len() == 1 {
            return match name.as_bytes()[0].to_ascii_lowercase() {
                b'i' => HeaderName::CallId,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'v' => HeaderName::Via,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'm' => HeaderName::Contact,
                _ => HeaderName::Other(name),
            };
        }
        if eq("Call-ID") {
            HeaderName::CallId
        } else if eq("From") {
            HeaderName::From
        } else if eq("To") {
            HeaderName::To
        } else if eq("Via") {
            HeaderName::Via
        } else if eq("CSeq") {
            HeaderName::CSeq
        } else if eq("Content-Length") {
            HeaderName::ContentLength
        } else if eq("Content-Type") {
            HeaderName::ContentType
        } else if eq("Contact") {
            HeaderName::Contact
        } else if eq("P-Asserted-Identity") {
            HeaderName::PAssertedIdentity
        } else if eq("Record-Route") {
            HeaderName::RecordRoute
        } else {
            HeaderName::Other(name)
        }
    }
}

/// One header line (folded continuation lines included in `value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Recognised name.
    pub name: HeaderName<'a>,
    /// The name as written.
    pub raw_name: &'a str,
    /// The value, trimmed; a folded value still holds its line breaks (treat them as spaces).
    pub value: &'a str,
}

/// A parsed message borrowing from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage<'a> {
    /// Request or status line.
    pub start: StartLine<'a>,
    /// Headers in order.
    pub headers: SmallVec<[Header<'a>; 16]>,
    /// The body.
    pub body: &'a [u8],
    /// True when the datagram ended before Content-Length bytes of body.
    pub truncated: bool,
}

impl<'a> SipMessage<'a> {
    /// The first header called `name`.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.headers.iter().find(|h| h.name == name).map(|h| h.value)
    }

    /// The first header whose name is `name` (any name, ignoring case).
    pub fn header_named(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|h| h.raw_name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&'a str> {
        self.header(HeaderName::CallId)
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, Method<'a>)> {
        let v = self.header(HeaderName::CSeq)?;
        let mut parts = v.split_ascii_whitespace();
        let n = parts.next()?.parse().ok()?;
        Some((n, Method::parse(parts.next()?)))
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

/// Finds the end of the line starting at `from`: (end of content, start of next line).
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let nl = memchr::memchr(b'\n', &buf[from..])? + from;
    let end = if nl > from && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    Some((end, nl + 1))
}

fn parse_start(line: &str) -> Result<StartLine<'_>, ParseError> {
    let line = trim(line);
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        let _version = parts.next();
        let code: u16 = parts.next().and_then(|c| c.trim().parse().ok()).ok_or(ParseError::BadStartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response { code, reason: parts.next().map(trim).unwrap_or("") });
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::BadStartLine);
    };
    if !version.starts_with("SIP/") || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    {
        return Err(ParseError::BadStartLine);
    }
    Ok(StartLine::Request { method: Method::parse(method), uri })
}

/// Parses the message starting at `buf[0]`; returns it and the bytes after it.
pub fn parse_one(buf: &[u8]) -> Result<(SipMessage<'_>, &[u8]), ParseError> {
    // Skip keepalive line ends.
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n').ok_or(ParseError::Empty)?;
    let buf = &buf[start..];
    // The head: up to the first empty line.
    let mut lines: SmallVec<[(usize, usize); 24]> = SmallVec::new();
    let mut at = 0;
    let body_start = loop {
        let (end, next) = line_end(buf, at).ok_or(ParseError::UnterminatedHead)?;
        if end == at {
            break next;
        }
        lines.push((at, end));
        at = next;
    };
    let head = std::str::from_utf8(&buf[..body_start]).map_err(|_| ParseError::NotUtf8)?;
    let (first, rest_lines) = lines.split_first().ok_or(ParseError::Empty)?;
    let start_line = parse_start(&head[first.0..first.1])?;
    let mut headers: SmallVec<[Header<'_>; 16]> = SmallVec::new();
    // Byte range of each header's value, so folded lines can extend it.
    let mut spans: SmallVec<[(usize, usize); 16]> = SmallVec::new();
    for &(s, e) in rest_lines {
        let bytes = head.as_bytes();
        if (bytes[s] == b' ' || bytes[s] == b'\t') && !headers.is_empty() {
            if let Some(last) = spans.last_mut() {
                last.1 = e;
            }
            continue;
        }
        let Some(colon) = head[s..e].find(':') else { continue };
        let raw_name = trim(&head[s..s + colon]);
        if raw_name.is_empty() {
            continue;
        }
        headers.push(Header { name: HeaderName::parse(raw_name), raw_name, value: "" });
        spans.push((s + colon + 1, e));
    }
    for (h, (s, e)) in headers.iter_mut().zip(&spans) {
        h.value = trim(&head[*s..*e]);
    }
    let after_head = &buf[body_start..];
    let content_length = headers.iter().find(|h| h.name == HeaderName::ContentLength).map(|h| h.value);
    let (body, rest, truncated) = match content_length {
        Some(v) => {
            let n: usize = v.parse().map_err(|_| ParseError::BadContentLength)?;
            if n <= after_head.len() {
                (&after_head[..n], &after_head[n..], false)
            } else {
                (after_head, &after_head[after_head.len()..], true)
            }
        }
        None => (after_head, &after_head[after_head.len()..], false),
    };
    Ok((SipMessage { start: start_line, headers, body, truncated }, rest))
}

/// Every message in a datagram (they follow one another, delimited by Content-Length). Stops at
/// the first error, which is returned as the last item.
pub fn parse_datagram(buf: &[u8]) -> impl Iterator<Item = Result<SipMessage<'_>, ParseError>> {
    let mut rest = Some(buf);
    std::iter::from_fn(move || {
        let buf = rest.take()?;
        if buf.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0)) {
            return None;
        }
        match parse_one(buf) {
            Ok((msg, after)) => {
                rest = Some(after);
                Some(Ok(msg))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+12125550100@10.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-1\r\n\
From: \"Alice\" <sip:+13125550666@10.0.0.2>;tag=abc\r\n\
To: <sip:+12125550100@10.0.0.1>\r\n\
Call-ID: call-1@10.0.0.2\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 10\r\n\
\r\n\
v=0\r\ns=-\r\n";

    #[test]
    fn parses_a_request() {
        let (m, rest) = parse_one(INVITE.as_bytes()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(m.start, StartLine::Request { method: Method::Invite, uri: "sip:+12125550100@10.0.0.1" });
        assert_eq!(m.call_id(), Some("call-1@10.0.0.2"));
        assert_eq!(m.cseq(), Some((1, Method::Invite)));
        assert_eq!(m.header(HeaderName::From), Some("\"Alice\" <sip:+13125550666@10.0.0.2>;tag=abc"));
        assert_eq!(m.body, b"v=0\r\ns=-\r\n");
        assert!(!m.truncated);
    }

    #[test]
    fn compact_forms_folding_and_bare_lf() {
        let raw = "SIP/2.0 180 Ringing\ni: x@y\nf: <sip:a@b>;tag=1\nt: <sip:c@d>\n ;tag=2\nv: SIP/2.0/UDP h\nCSeq:   7 INVITE\nl: 0\n\n";
        let (m, _) = parse_one(raw.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.call_id(), Some("x@y"));
        assert_eq!(m.header(HeaderName::To), Some("<sip:c@d>\n ;tag=2"));
        assert_eq!(m.cseq(), Some((7, Method::Invite)));
        assert!(m.body.is_empty());
    }

    #[test]
    fn several_messages_per_datagram() {
        let two = format!("{INVITE}\r\n{INVITE}");
        let msgs: Vec<_> = parse_datagram(two.as_bytes()).collect();
        assert_eq!(msgs.len(), 2);
        assert!(msgs.iter().all(|m| m.as_ref().unwrap().call_id() == Some("call-1@10.0.0.2")));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(parse_one(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
        assert_eq!(parse_one(b"INVITE sip:x SIP/2.0\r\nVia: y\r\n").unwrap_err(), ParseError::UnterminatedHead);
        assert_eq!(parse_one(b"HELLO\r\n\r\n").unwrap_err(), ParseError::BadStartLine);
        assert_eq!(parse_one(b"SIP/2.0 99 Weird\r\n\r\n").unwrap_err(), ParseError::BadStartLine);
        assert_eq!(parse_one(b"SIP/2.0 200 OK\r\nl: ten\r\n\r\n").unwrap_err(), ParseError::BadContentLength);
        assert_eq!(parse_one(b"SIP/2.0 200 OK\r\nX: \xff\xfe\r\n\r\n").unwrap_err(), ParseError::NotUtf8);
        let (m, _) = parse_one(b"SIP/2.0 200 OK\r\nContent-Length: 50\r\n\r\nshort").unwrap();
        assert!(m.truncated);
        assert_eq!(m.body, b"short");
        let (m, _) = parse_one(b"SIP/2.0 200 OK\r\nno colon here\r\nCSeq: 2 BYE\r\n\r\n").unwrap();
        assert_eq!(m.cseq(), Some((2, Method::Bye)));
    }
}
