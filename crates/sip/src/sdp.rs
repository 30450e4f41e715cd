//! Media endpoints of an SDP offer or answer (RFC 4566 `c=` and `m=` lines).

use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

/// Where one media stream is received, and its first payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaEndpoint {
    /// Address and port.
    pub addr: SocketAddr,
    /// First RTP payload type listed (0 PCMU, 8 PCMA ...), if numeric.
    pub payload_type: Option<u8>,
}

/// The RTP endpoints in an SDP body (port 0, a disabled stream, is skipped).
pub fn media_endpoints(body: &[u8]) -> SmallVec<[MediaEndpoint; 2]> {
    let mut out = SmallVec::new();
    let Ok(text) = std::str::from_utf8(body) else { return out };
    let mut session_addr: Option<IpAddr> = None;
    let mut pending: Option<(u16, Option<u8>, Option<IpAddr>)> = None;
    let flush = |p: Option<(u16, Option<u8>, Option<IpAddr>)>,
                 session: Option<IpAddr>,
                 out: &mut SmallVec<[MediaEndpoint; 2]>| {
        if let Some((port, pt, addr)) = p
            && port != 0
            && let Some(ip) = addr.or(session)
        {
            out.push(MediaEndpoint { addr: SocketAddr::new(ip, port), payload_type: pt });
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("c=") {
            let addr = c.split_ascii_whitespace().nth(2).and_then(|a| a.split('/').next()).and_then(|a| a.parse().ok());
            match &mut pending {
                Some(p) => p.2 = addr,
                None => session_addr = addr,
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            flush(pending.take(), session_addr, &mut out);
            let mut parts = m.split_ascii_whitespace();
            let _media = parts.next();
            let port = parts.next().and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok());
            let _proto = parts.next();
            let pt = parts.next().and_then(|p| p.parse().ok());
            if let Some(port) = port {
                pending = Some((port, pt, None));
            }
        }
    }
    flush(pending, session_addr, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_media_level_addresses() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\nm=video 0 RTP/AVP 96\r\nm=audio 7000 RTP/AVP 8\r\nc=IN IP6 ::1\r\n";
        let e = media_endpoints(sdp);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], MediaEndpoint { addr: "10.0.0.2:6000".parse().unwrap(), payload_type: Some(0) });
        assert_eq!(e[1], MediaEndpoint { addr: "[::1]:7000".parse().unwrap(), payload_type: Some(8) });
        assert!(media_endpoints(b"\xff\xfe").is_empty());
        assert!(media_endpoints(b"m=audio x RTP/AVP 0\r\n").is_empty());
    }
}
