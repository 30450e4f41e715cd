//! SIP over a stream transport (TCP; TLS later): where each message ends (RFC 3261 section
//! 18.3). On a stream the head ends at its first empty line and the body is exactly
//! Content-Length bytes, which a stream message must carry.
//!
//! [`StreamFramer`] answers, for the bytes a connection has buffered, "is there a whole message
//! at the start, and how long is it". It resumes its search for the end of the head where the
//! previous call left it, so a client sending one byte at a time costs linear work, not
//! quadratic. Nothing here allocates or panics on any input.
//!
//! Deliberately strict, because a server has to trust the boundary it finds:
//! * a message without Content-Length is [`Frame::NoContentLength`] (its end is unknowable);
//! * a Content-Length that is not a number, or two that differ, is [`Frame::BadContentLength`]
//!   (two readers disagreeing on a boundary is how requests are smuggled);
//! * a head without its empty line beyond `max` bytes, or a whole message beyond `max`, is
//!   [`Frame::TooLarge`], decided before the body is read.
//!
//! Keepalives (CRLF, RFC 5626 section 3.5.1) between messages are the caller's to skip with
//! [`leading_line_ends`] before framing.

/// What the start of a stream's buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes.
    Whole(usize),
    /// Not a whole message yet: read more.
    Incomplete,
    /// The message (or its head alone) is larger than the limit.
    TooLarge,
    /// The head has no Content-Length: the message's end cannot be known.
    NoContentLength,
    /// A Content-Length that is not a number, or several that differ.
    BadContentLength,
}

/// How many CR and LF bytes (keepalives) start `buf`.
pub fn leading_line_ends(buf: &[u8]) -> usize {
    buf.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(buf.len())
}

/// Frames the messages of one stream; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct StreamFramer {
    max: usize,
    /// Where the search for the end of the head resumes (0 at a message's start).
    scanned: usize,
    /// The length of the message at the start, once its head is read.
    length: Option<usize>,
}

impl StreamFramer {
    /// A framer accepting messages of at most `max` bytes (head and body).
    pub fn new(max: usize) -> Self {
        StreamFramer { max, scanned: 0, length: None }
    }

    /// Frames the message at the start of `buf` (which the caller has stripped of leading line
    /// ends). After [`Frame::Whole`] the caller removes that many bytes and calls again for the
    /// next message; `buf` must otherwise only grow between calls.
    pub fn next(&mut self, buf: &[u8]) -> Frame {
        let frame = self.frame(buf);
        if frame != Frame::Incomplete {
            self.scanned = 0;
            self.length = None;
        }
        frame
    }

    fn frame(&mut self, buf: &[u8]) -> Frame {
        if let Some(length) = self.length {
            return if buf.len() >= length { Frame::Whole(length) } else { Frame::Incomplete };
        }
        let Some(head_end) = self.head_end(buf) else {
            return if buf.len() > self.max { Frame::TooLarge } else { Frame::Incomplete };
        };
        // A head beyond the limit is too large whatever it says, however it arrived (read in
        // pieces, it would have been refused before its end was seen).
        if head_end > self.max {
            return Frame::TooLarge;
        }
        let body = match content_length(&buf[..head_end]) {
            Ok(Some(n)) => n,
            Ok(None) => return Frame::NoContentLength,
            Err(()) => return Frame::BadContentLength,
        };
        let length = head_end.saturating_add(body);
        if length > self.max {
            return Frame::TooLarge;
        }
        self.length = Some(length);
        if buf.len() >= length { Frame::Whole(length) } else { Frame::Incomplete }
    }

    /// The end of the head (just after its empty line: "\n\r\n" or, leniently, "\n\n").
    fn head_end(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = self.scanned;
        loop {
            let Some(n) = buf.get(i..).and_then(|rest| memchr::memchr(b'\n', rest)) else {
                self.scanned = buf.len();
                return None;
            };
            let nl = i + n;
            match (buf.get(nl + 1), buf.get(nl + 2)) {
                (Some(b'\n'), _) => return Some(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
                (None, _) | (Some(b'\r'), None) => {
                    // Decided by bytes not read yet: look at this line end again.
                    self.scanned = nl;
                    return None;
                }
                _ => i = nl + 1,
            }
        }
    }
}

/// The body length a head declares: `Ok(None)` without Content-Length (or its compact form
/// `l`), an error for a value that is not a number or values that differ.
fn content_length(head: &[u8]) -> Result<Option<usize>, ()> {
    let mut found = None;
    // The start line has no colon before its first space in a request's method, but a status
    // line or a URI may hold colons: skip it.
    let after_start = memchr::memchr(b'\n', head).map_or(head.len(), |n| n + 1);
    for line in head[after_start..].split(|b| *b == b'\n') {
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).map_err(|_| ())?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: usize = value.parse().map_err(|_| ())?;
        match found {
            Some(m) if m != n => return Err(()),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:tollgate SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

    fn with_body(body: &str) -> Vec<u8> {
        format!("INVITE sip:1@x SIP/2.0\r\nl: {}\r\nContent-Type: application/sdp\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    #[test]
    fn two_messages_in_one_buffer_are_framed_one_after_the_other() {
        let invite = with_body("v=0\r\n");
        let mut buf = [OPTIONS, &invite[..], b"OPT"].concat();
        let mut f = StreamFramer::new(4096);
        assert_eq!(f.next(&buf), Frame::Whole(OPTIONS.len()));
        buf.drain(..OPTIONS.len());
        assert_eq!(f.next(&buf), Frame::Whole(invite.len()), "the compact form l counts");
        buf.drain(..invite.len());
        assert_eq!(f.next(&buf), Frame::Incomplete);
    }

    #[test]
    fn a_message_arriving_byte_by_byte_is_whole_exactly_at_its_last_byte() {
        let invite = with_body("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n");
        let mut f = StreamFramer::new(4096);
        for end in 1..invite.len() {
            assert_eq!(f.next(&invite[..end]), Frame::Incomplete, "after {end} bytes");
        }
        assert_eq!(f.next(&invite), Frame::Whole(invite.len()));
        // The next message's search starts afresh.
        assert_eq!(f.next(OPTIONS), Frame::Whole(OPTIONS.len()));
    }

    #[test]
    fn bare_line_feeds_end_the_head_too() {
        let m = b"OPTIONS sip:x SIP/2.0\nContent-Length: 2\n\nab";
        assert_eq!(StreamFramer::new(100).next(m), Frame::Whole(m.len()));
    }

    #[test]
    fn a_head_or_message_beyond_the_limit_is_too_large_before_its_body_is_read() {
        let long_head = [&b"OPTIONS sip:x SIP/2.0\r\n"[..], &[b'a'; 100], b"\r\n\r\n"].concat();
        assert_eq!(StreamFramer::new(100).next(&long_head), Frame::TooLarge, "whole, but its head too long");
        let endless = vec![b'a'; 101];
        assert_eq!(StreamFramer::new(100).next(&endless[..100]), Frame::Incomplete);
        assert_eq!(StreamFramer::new(100).next(&endless), Frame::TooLarge);
        let big = b"INVITE sip:1@x SIP/2.0\r\nContent-Length: 1000000\r\n\r\n";
        assert_eq!(StreamFramer::new(4096).next(big), Frame::TooLarge, "declared, not yet sent");
        let huge = b"INVITE sip:1@x SIP/2.0\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(StreamFramer::new(4096).next(huge), Frame::BadContentLength, "not a usize");
    }

    #[test]
    fn missing_unreadable_or_conflicting_lengths_are_refused() {
        let mut f = StreamFramer::new(4096);
        assert_eq!(f.next(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n"), Frame::NoContentLength);
        assert_eq!(f.next(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: ten\r\n\r\n"), Frame::BadContentLength);
        assert_eq!(f.next(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n"), Frame::BadContentLength);
        assert_eq!(f.next(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\nl: 5\r\n\r\n12345"), Frame::BadContentLength);
        let twice = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\ncontent-length:0\r\n\r\n";
        assert_eq!(f.next(twice), Frame::Whole(twice.len()), "the same value twice is one length");
        // A colon in the start line is not a header.
        assert_eq!(f.next(b"OPTIONS sip:l:5 SIP/2.0\r\nl: 0\r\n\r\n"), Frame::Whole(33));
    }

    #[test]
    fn keepalives_are_counted_for_the_caller_to_skip() {
        assert_eq!(leading_line_ends(b"\r\n\r\nOPTIONS"), 4);
        assert_eq!(leading_line_ends(b"\r\n"), 2);
        assert_eq!(leading_line_ends(b"OPTIONS"), 0);
    }

    #[test]
    fn any_prefix_of_any_bytes_is_framed_without_panicking() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(seed % 80) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push(b"\r\n:l0123456789 aZ"[(seed % 17) as usize]);
            }
            let mut f = StreamFramer::new(40);
            for end in 0..=buf.len() {
                if let Frame::Whole(n) = f.next(&buf[..end]) {
                    assert!(n <= end && n <= 40);
                    break;
                }
            }
        }
    }
}

/// The check of the `sip_stream` fuzz target, also replayed on its seeds by `cargo test`.
pub mod fuzzing {
    use super::{Frame, StreamFramer, leading_line_ends};

    /// What framing a whole stream gives: the messages, and how it ended.
    fn frame_all(stream: &[u8], max: usize, chunks: impl Iterator<Item = usize>) -> (Vec<Vec<u8>>, Frame) {
        let mut framer = StreamFramer::new(max);
        let (mut buf, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
        for chunk in chunks.chain(std::iter::once(usize::MAX)) {
            let end = fed + chunk.min(stream.len() - fed);
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            loop {
                let skip = leading_line_ends(&buf);
                buf.drain(..skip);
                match framer.next(&buf) {
                    Frame::Whole(n) => {
                        assert!(n > 0 && n <= max && n <= buf.len(), "a frame of {n} bytes (max {max})");
                        out.push(buf.drain(..n).collect());
                    }
                    Frame::Incomplete => break,
                    ended => return (out, ended),
                }
            }
            if fed == stream.len() {
                break;
            }
        }
        (out, Frame::Incomplete)
    }

    /// The first byte sets the limit, the second how the rest is cut into reads; the rest is
    /// the stream. Framing it read by read must give exactly what framing it at once gives,
    /// every frame within the limit, without panicking.
    pub fn check(data: &[u8]) {
        let (Some(&limit), Some(&cut)) = (data.first(), data.get(1)) else { return };
        let stream = &data[2..];
        let max = 16 + usize::from(limit) * 4;
        let at_once = frame_all(stream, max, std::iter::once(stream.len()));
        let cuts = (0..).map(|i: usize| 1 + (i * 7 + usize::from(cut)) % (usize::from(cut % 16) + 1));
        assert_eq!(frame_all(stream, max, cuts), at_once, "read by read differs from at once");
    }
}
