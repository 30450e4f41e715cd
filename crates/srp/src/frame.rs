//! SRP frames: the versioned, authenticated unit on the TCP connection between the two chassis.
//!
//! ```text
//! 0..4    magic        "TGSR"
//! 4       version      1
//! 5       type         FrameType
//! 6..8    flags        u16, must be 0
//! 8..16   seq          u64 big endian: 0 for the handshake, then 1, 2, ... per direction
//! 16..20  length       u32 big endian, payload length (at most MAX_PAYLOAD_LEN)
//! 20..    payload
//! end-32  HMAC-SHA256 over header and payload
//! ```
//!
//! The handshake and its answer are authenticated with the shared key; the dialer's handshake
//! confirmation and every later frame with a key derived from the shared key and both sides'
//! handshake nonces ([`FrameKey::session`]), so a frame recorded on one connection is rejected on
//! any other. [`Frame::decode`] never panics: every
//! malformed input is a [`FrameError`].

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"TGSR";
/// Frame format version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 20;
/// HMAC-SHA256 tag length.
pub const MAC_LEN: usize = 32;
/// Largest payload accepted.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Dialer's handshake.
    Handshake = 1,
    /// Acceptor's handshake answer.
    HandshakeAck = 2,
    /// Periodic status.
    Hello = 3,
    /// A micro or full checkpoint.
    Checkpoint = 4,
    /// A NACK.
    Nack = 5,
    /// "Send me a full checkpoint".
    FullCheckpointRequest = 6,
    /// "Take over".
    SwitchoverRequest = 7,
    /// Answer to a switchover request.
    SwitchoverResponse = 8,
    /// A session store digest for an audit.
    AuditDigest = 9,
    /// Dialer's proof of the session key, after the acceptor's answer.
    HandshakeConfirm = 10,
}

impl FrameType {
    /// Every frame type.
    pub const ALL: [FrameType; 10] = [
        FrameType::Handshake,
        FrameType::HandshakeAck,
        FrameType::Hello,
        FrameType::Checkpoint,
        FrameType::Nack,
        FrameType::FullCheckpointRequest,
        FrameType::SwitchoverRequest,
        FrameType::SwitchoverResponse,
        FrameType::AuditDigest,
        FrameType::HandshakeConfirm,
    ];

    fn from_u8(b: u8) -> Option<FrameType> {
        FrameType::ALL.into_iter().find(|t| *t as u8 == b)
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete {
        /// How many more.
        needed: usize,
    },
    /// Not an SRP frame.
    #[error("bad magic {0:02x?}: not an SRP frame")]
    BadMagic([u8; 4]),
    /// Another frame format version.
    #[error("unsupported SRP frame version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// Reserved flags set.
    #[error("reserved frame flags {0:#06x} set")]
    BadFlags(u16),
    /// Payload longer than allowed.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// Declared length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The HMAC does not match: wrong key, or tampered.
    #[error("frame authentication failed (HMAC mismatch: wrong shared key or altered frame)")]
    BadMac,
    /// Authenticated, but of a type this build does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
}

/// An HMAC-SHA256 key for frames.
#[derive(Clone)]
pub struct FrameKey {
    mac: HmacSha256,
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(<redacted>)")
    }
}

impl FrameKey {
    /// A key from the shared secret (used for the handshake).
    pub fn new(key: &[u8]) -> FrameKey {
        // HMAC takes keys of any length: this cannot fail.
        let mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        FrameKey { mac }
    }

    /// The per-connection key: HMAC(shared, "tollgate-srp/1" || dialer nonce || acceptor nonce).
    pub fn session(shared: &[u8], dialer_nonce: &[u8], acceptor_nonce: &[u8]) -> FrameKey {
        let mut m = FrameKey::new(shared).mac;
        m.update(b"tollgate-srp/1");
        m.update(dialer_nonce);
        m.update(acceptor_nonce);
        FrameKey::new(&m.finalize().into_bytes())
    }

    fn tag(&self, header: &[u8], payload: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(header);
        m.update(payload);
        m.finalize().into_bytes().into()
    }

    fn verify(&self, header: &[u8], payload: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac.clone();
        m.update(header);
        m.update(payload);
        m.verify_slice(tag).is_ok()
    }
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw type byte (checked after authentication).
    pub frame_type: u8,
    /// Sequence number.
    pub seq: u64,
    /// Payload length.
    pub len: usize,
}

impl Header {
    /// Length of the whole frame: header, payload and tag.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len + MAC_LEN
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Type.
    pub frame_type: FrameType,
    /// Sequence number.
    pub seq: u64,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Encodes and authenticates the frame.
    pub fn encode(&self, key: &FrameKey) -> Result<Vec<u8>, FrameError> {
        let len = self.payload.len();
        if len > MAX_PAYLOAD_LEN {
            return Err(FrameError::TooLong { len, max: MAX_PAYLOAD_LEN });
        }
        let mut out = Vec::with_capacity(HEADER_LEN + len + MAC_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.frame_type as u8);
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&(len as u32).to_be_bytes());
        let tag = key.tag(&out, &self.payload);
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Parses and checks a header (the first [`HEADER_LEN`] bytes of `buf`).
    pub fn parse_header(buf: &[u8]) -> Result<Header, FrameError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Err(FrameError::Incomplete { needed: HEADER_LEN - buf.len() });
        };
        let magic = [h[0], h[1], h[2], h[3]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if h[4] != VERSION {
            return Err(FrameError::UnsupportedVersion(h[4]));
        }
        let flags = u16::from_be_bytes([h[6], h[7]]);
        if flags != 0 {
            return Err(FrameError::BadFlags(flags));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&h[8..16]);
        let len = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as usize;
        if len > MAX_PAYLOAD_LEN {
            return Err(FrameError::TooLong { len, max: MAX_PAYLOAD_LEN });
        }
        Ok(Header { frame_type: h[5], seq: u64::from_be_bytes(seq), len })
    }

    /// Decodes and authenticates one frame at the start of `buf`; returns it and the bytes used.
    pub fn decode(buf: &[u8], key: &FrameKey) -> Result<(Frame, usize), FrameError> {
        let header = Frame::parse_header(buf)?;
        let total = header.frame_len();
        if buf.len() < total {
            return Err(FrameError::Incomplete { needed: total - buf.len() });
        }
        let payload_end = HEADER_LEN + header.len;
        if !key.verify(&buf[..HEADER_LEN], &buf[HEADER_LEN..payload_end], &buf[payload_end..total]) {
            return Err(FrameError::BadMac);
        }
        let frame_type = FrameType::from_u8(header.frame_type).ok_or(FrameError::UnknownType(header.frame_type))?;
        Ok((Frame { frame_type, seq: header.seq, payload: buf[HEADER_LEN..payload_end].to_vec() }, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;
    use proptest::sample::Index;

    fn key() -> FrameKey {
        FrameKey::new(b"0123456789abcdef")
    }

    #[test]
    fn round_trip_every_type() {
        for t in FrameType::ALL {
            let f = Frame { frame_type: t, seq: 7, payload: b"payload".to_vec() };
            let bytes = f.encode(&key()).unwrap();
            assert_eq!(bytes.len(), HEADER_LEN + 7 + MAC_LEN);
            let mut stream = bytes.clone();
            stream.extend_from_slice(b"next");
            assert_eq!(Frame::decode(&stream, &key()).unwrap(), (f, bytes.len()));
        }
    }

    #[test]
    fn wrong_key_and_tampering_fail_authentication() {
        let f = Frame { frame_type: FrameType::Hello, seq: 1, payload: b"{}".to_vec() };
        let bytes = f.encode(&key()).unwrap();
        assert_eq!(Frame::decode(&bytes, &FrameKey::new(b"another key, 16b")), Err(FrameError::BadMac));
        for i in [5, 8, 15, HEADER_LEN, bytes.len() - 1] {
            let mut t = bytes.clone();
            t[i] ^= 0x40;
            assert_eq!(Frame::decode(&t, &key()), Err(FrameError::BadMac), "byte {i}");
        }
        let s1 = FrameKey::session(b"k", b"n1", b"n2");
        let s2 = FrameKey::session(b"k", b"n1", b"n3");
        let bytes = f.encode(&s1).unwrap();
        assert!(Frame::decode(&bytes, &s1).is_ok());
        assert_eq!(Frame::decode(&bytes, &s2), Err(FrameError::BadMac), "replay on another connection");
    }

    #[test]
    fn header_errors_are_precise() {
        let f = Frame { frame_type: FrameType::Nack, seq: 1, payload: vec![1, 2, 3] };
        let bytes = f.encode(&key()).unwrap();
        assert_eq!(Frame::decode(&bytes[..5], &key()), Err(FrameError::Incomplete { needed: 15 }));
        assert_eq!(Frame::decode(&bytes[..HEADER_LEN + 1], &key()), Err(FrameError::Incomplete { needed: 34 }));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(matches!(Frame::decode(&b, &key()), Err(FrameError::BadMagic(_))));
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(Frame::decode(&b, &key()), Err(FrameError::UnsupportedVersion(2)));
        let mut b = bytes.clone();
        b[7] = 1;
        assert_eq!(Frame::decode(&b, &key()), Err(FrameError::BadFlags(1)));
        let mut b = bytes.clone();
        b[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = Frame::decode(&b, &key()).unwrap_err();
        assert!(matches!(e, FrameError::TooLong { .. }));
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
        let big = Frame { frame_type: FrameType::Checkpoint, seq: 0, payload: vec![0; MAX_PAYLOAD_LEN + 1] };
        assert!(matches!(big.encode(&key()), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn unknown_type_is_reported_after_authentication() {
        let f = Frame { frame_type: FrameType::Hello, seq: 1, payload: vec![] };
        let mut bytes = f.encode(&key()).unwrap();
        bytes[5] = 200;
        assert_eq!(Frame::decode(&bytes, &key()), Err(FrameError::BadMac));
        // Re-authenticate with the altered type.
        let tag = key().tag(&bytes[..HEADER_LEN], &[]);
        bytes[HEADER_LEN..].copy_from_slice(&tag);
        assert_eq!(Frame::decode(&bytes, &key()), Err(FrameError::UnknownType(200)));
    }

    fn good_frame() -> Vec<u8> {
        Frame { frame_type: FrameType::Hello, seq: 3, payload: b"hello".to_vec() }.encode(&key()).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        /// Whatever a peer (or anyone who reaches the port) sends, decoding answers.
        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Frame::decode(&buf, &key());
        }

        /// A valid-looking header start reaches the length and MAC checks.
        #[test]
        fn a_valid_looking_header_with_garbage_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 8..128)) {
            buf[..5].copy_from_slice(b"TGSR\x01");
            buf[6] = 0;
            buf[7] = 0;
            let _ = Frame::decode(&buf, &key());
        }

        /// The MAC covers every byte: a valid frame with a byte changed, or cut short, is
        /// refused; only the frame as sent decodes.
        #[test]
        fn only_the_frame_as_sent_decodes(at in any::<Index>(), value in any::<u8>(), keep in any::<Index>()) {
            let good = good_frame();
            let mut b = good.clone();
            b[at.index(good.len())] = value;
            b.truncate(keep.index(good.len() + 1));
            if Frame::decode(&b, &key()).is_ok() {
                proptest::prop_assert_eq!(b, good);
            }
        }
    }
}
