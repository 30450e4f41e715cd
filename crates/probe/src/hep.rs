//! HEP (Homer Encapsulation Protocol), as Kamailio's siptrace, OpenSIPS and heplify send it:
//! version 3 (the `HEP3` chunked format) and versions 1 and 2 (fixed binary headers).
//!
//! HEP3: `"HEP3"`, total length (u16), then chunks of vendor (u16), type (u16), length (u16,
//! header included) and data; generic chunks (vendor 0): 1 address family, 2 IP protocol,
//! 3/4 IPv4 source/destination, 5/6 IPv6 source/destination, 7/8 ports, 9/10 timestamp seconds
//! and microseconds, 11 protocol type (1 = SIP), 12 capture agent id, 15 payload, 17 correlation
//! id. All integers big-endian.
//!
//! HEP1/2: version, header length, family, protocol, source and destination ports (big-endian),
//! addresses; HEP2 adds seconds and microseconds (little-endian, as the senders write them) and
//! a capture id. The payload starts at the header length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why bytes are not a HEP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    /// Shorter than any header.
    #[error("too short for a HEP header")]
    Short,
    /// Not HEP1, 2 or 3.
    #[error("not a HEP packet")]
    NotHep,
    /// A length field points outside the packet.
    #[error("a HEP length field points past the end")]
    BadLength,
    /// Required chunks (addresses, ports, payload) are missing.
    #[error("HEP packet without addresses, ports or payload")]
    Incomplete,
}

/// A decoded HEP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HepPacket<'a> {
    /// 1, 2 or 3.
    pub version: u8,
    /// Source of the captured packet.
    pub src: SocketAddr,
    /// Destination of the captured packet.
    pub dst: SocketAddr,
    /// IP protocol (17 UDP, 6 TCP).
    pub ip_protocol: u8,
    /// Capture time, µs since the epoch (0 when the sender gave none).
    pub ts_us: i64,
    /// HEP3 protocol type (1 SIP); 1 for HEP1/2, which carry SIP.
    pub protocol_type: u8,
    /// Capture agent id.
    pub capture_id: u32,
    /// The captured payload.
    pub payload: &'a [u8],
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The length of the HEP3 message at the start of `buf`, from its header, for framing a TCP
/// stream. `None` if fewer than 6 bytes are there or it is not HEP3.
pub fn hep3_frame_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 6 && &buf[..4] == b"HEP3").then(|| usize::from(be16(&buf[4..6])))
}

/// Decodes one HEP packet.
pub fn decode(buf: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if buf.len() < 4 {
        return Err(HepError::Short);
    }
    if &buf[..4] == b"HEP3" {
        decode_v3(buf)
    } else if buf[0] == 1 || buf[0] == 2 {
        decode_v12(buf)
    } else {
        Err(HepError::NotHep)
    }
}

fn decode_v3(buf: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if buf.len() < 6 {
        return Err(HepError::Short);
    }
    let total = usize::from(be16(&buf[4..6]));
    if total < 6 || total > buf.len() {
        return Err(HepError::BadLength);
    }
    let buf = &buf[..total];
    let mut at = 6;
    let (mut src_ip, mut dst_ip): (Option<IpAddr>, Option<IpAddr>) = (None, None);
    let (mut src_port, mut dst_port) = (None, None);
    let (mut secs, mut micros) = (0u32, 0u32);
    let mut ip_protocol = 17;
    let mut protocol_type = 1;
    let mut capture_id = 0;
    let mut payload = None;
    while at + 6 <= buf.len() {
        let vendor = be16(&buf[at..]);
        let kind = be16(&buf[at + 2..]);
        let len = usize::from(be16(&buf[at + 4..]));
        if len < 6 || at + len > buf.len() {
            return Err(HepError::BadLength);
        }
        let data = &buf[at + 6..at + len];
        at += len;
        if vendor != 0 {
            continue;
        }
        match (kind, data.len()) {
            (2, 1) => ip_protocol = data[0],
            (3, 4) => src_ip = Some(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (4, 4) => dst_ip = Some(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (5, 16) => src_ip = Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).unwrap_or_default()))),
            (6, 16) => dst_ip = Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).unwrap_or_default()))),
            (7, 2) => src_port = Some(be16(data)),
            (8, 2) => dst_port = Some(be16(data)),
            (9, 4) => secs = be32(data),
            (10, 4) => micros = be32(data),
            (11, 1) => protocol_type = data[0],
            (12, 4) => capture_id = be32(data),
            (12, 2) => capture_id = u32::from(be16(data)),
            (15, _) => payload = Some(data),
            _ => {}
        }
    }
    match (src_ip, dst_ip, src_port, dst_port, payload) {
        (Some(si), Some(di), Some(sp), Some(dp), Some(payload)) => Ok(HepPacket {
            version: 3,
            src: SocketAddr::new(si, sp),
            dst: SocketAddr::new(di, dp),
            ip_protocol,
            ts_us: i64::from(secs) * 1_000_000 + i64::from(micros),
            protocol_type,
            capture_id,
            payload,
        }),
        _ => Err(HepError::Incomplete),
    }
}

/// Size of HEPv2's time header (10 bytes of fields, padded to 12 by the C struct).
const V2_TIME_HEADER: usize = 12;

fn decode_v12(buf: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if buf.len() < 8 {
        return Err(HepError::Short);
    }
    let version = buf[0];
    let header_len = usize::from(buf[1]);
    let family = buf[2];
    let ip_protocol = buf[3];
    let (sp, dp) = (be16(&buf[4..]), be16(&buf[6..]));
    let (src, dst, ip_end) = match family {
        2 if buf.len() >= 16 => (
            IpAddr::V4(Ipv4Addr::new(buf[8], buf[9], buf[10], buf[11])),
            IpAddr::V4(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15])),
            16,
        ),
        10 if buf.len() >= 40 => (
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&buf[8..24]).unwrap_or_default())),
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&buf[24..40]).unwrap_or_default())),
            40,
        ),
        2 | 10 => return Err(HepError::Short),
        _ => return Err(HepError::NotHep),
    };
    if header_len < ip_end || header_len > buf.len() {
        return Err(HepError::BadLength);
    }
    // HEPv2 appends a time header after the `hp_l` bytes: struct hep_timehdr { u32 tv_sec;
    // u32 tv_usec; u16 captid; } in the sender's byte order (little-endian on every platform
    // that runs Kamailio, OpenSIPS or captagent) padded to 12 bytes.
    let (ts_us, capture_id, payload_at) = if version == 2 {
        if buf.len() < header_len + V2_TIME_HEADER {
            return Err(HepError::Short);
        }
        let t = &buf[header_len..];
        let secs = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let micros = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let id = u32::from(u16::from_le_bytes([t[8], t[9]]));
        (i64::from(secs) * 1_000_000 + i64::from(micros), id, header_len + V2_TIME_HEADER)
    } else {
        (0, 0, header_len)
    };
    Ok(HepPacket {
        version,
        src: SocketAddr::new(src, sp),
        dst: SocketAddr::new(dst, dp),
        ip_protocol,
        ts_us,
        protocol_type: 1,
        capture_id,
        payload: &buf[payload_at..],
    })
}

/// Encodes a HEP3 packet (for tests and tools that replay captures as HEP).
pub fn encode_v3(p: &HepPacket<'_>) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&((data.len() + 6) as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut out = b"HEP3\0\0".to_vec();
    let v6 = p.src.is_ipv6();
    chunk(&mut out, 1, &[if v6 { 10 } else { 2 }]);
    chunk(&mut out, 2, &[p.ip_protocol]);
    match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            chunk(&mut out, 3, &s.octets());
            chunk(&mut out, 4, &d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            chunk(&mut out, 5, &v6(s));
            chunk(&mut out, 6, &v6(d));
        }
    }
    chunk(&mut out, 7, &p.src.port().to_be_bytes());
    chunk(&mut out, 8, &p.dst.port().to_be_bytes());
    chunk(&mut out, 9, &((p.ts_us / 1_000_000) as u32).to_be_bytes());
    chunk(&mut out, 10, &((p.ts_us % 1_000_000) as u32).to_be_bytes());
    chunk(&mut out, 11, &[p.protocol_type]);
    chunk(&mut out, 12, &p.capture_id.to_be_bytes());
    chunk(&mut out, 15, p.payload);
    let len = out.len() as u16;
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HepPacket<'static> {
        HepPacket {
            version: 3,
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5080".parse().unwrap(),
            ip_protocol: 17,
            ts_us: 1_800_000_000_123_456,
            protocol_type: 1,
            capture_id: 2001,
            payload: b"OPTIONS sip:a@b SIP/2.0\r\n\r\n",
        }
    }

    #[test]
    fn hep3_round_trip_and_framing() {
        let bytes = encode_v3(&sample());
        assert_eq!(hep3_frame_len(&bytes), Some(bytes.len()));
        assert_eq!(decode(&bytes).unwrap(), sample());
        let v6 = HepPacket {
            src: "[2001:db8::1]:5060".parse().unwrap(),
            dst: "[2001:db8::2]:5060".parse().unwrap(),
            ..sample()
        };
        assert_eq!(decode(&encode_v3(&v6)).unwrap(), v6);
    }

    #[test]
    fn hep2_as_kamailio_writes_it() {
        // hp_l covers the 8-byte header and the addresses; the time header follows it.
        let mut b = vec![2u8, 16, 2, 17];
        b.extend_from_slice(&5060u16.to_be_bytes());
        b.extend_from_slice(&5080u16.to_be_bytes());
        b.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        b.extend_from_slice(&1_800_000_000u32.to_le_bytes());
        b.extend_from_slice(&250u32.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes());
        b.extend_from_slice(&[0, 0]); // struct padding
        b.extend_from_slice(b"BYE sip:x SIP/2.0\r\n\r\n");
        let p = decode(&b).unwrap();
        assert_eq!((p.version, p.ts_us, p.capture_id), (2, 1_800_000_000_000_250, 7));
        assert_eq!(p.src, "10.0.0.1:5060".parse().unwrap());
        assert!(p.payload.starts_with(b"BYE"));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(decode(b"HE"), Err(HepError::Short));
        assert_eq!(decode(b"XXXXXXXX"), Err(HepError::NotHep));
        let mut bytes = encode_v3(&sample());
        bytes[5] = 0xff;
        assert_eq!(decode(&bytes), Err(HepError::BadLength));
        let mut bytes = encode_v3(&sample());
        let n = bytes.len();
        bytes.truncate(n - 30); // cut the payload chunk
        let len = bytes.len() as u16;
        bytes[4..6].copy_from_slice(&len.to_be_bytes());
        assert!(decode(&bytes).is_err());
        assert_eq!(decode(b"HEP3\x00\x06"), Err(HepError::Incomplete));
    }
}
