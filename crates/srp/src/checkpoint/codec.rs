//! The wire form of one checkpoint message (the payload of a `Checkpoint` frame).
//!
//! ```text
//! 0      kind            u8   1 micro, 2 full (macro)
//! 1      cmd             u8   micro: CMD ID 1..=255; full: 0
//! 2      flags           u8   full: bit 0 first part, bit 1 last part
//! 3      compression     u8   0 zlib, 1 lz4 (must be the algorithm agreed for the connection)
//! 4..12  seq             u64  big endian, one sequence for every checkpoint on the connection
//! 12..16 count           u32  number of changes
//! 16..20 body length     u32  uncompressed
//! 20..24 checksum        u32  CRC-32 of bytes 0..3, 4..20 and the uncompressed body
//! 24..   body            compressed changes
//! change: op u8 (1 upsert, 2 remove), cmd u8, key length u16, key (UTF-8), version u64,
//!         upsert only: age_ms u64, value length u32, value
//! ```

use crate::compress::{Compression, CompressionError};
use crate::session::{Change, CmdId, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Fixed header length.
pub const HEADER_LEN: usize = 24;
/// Largest uncompressed body accepted.
pub const MAX_BODY_LEN: usize = 8 * 1024 * 1024;

/// Which kind of checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckpointKind {
    /// A micro-checkpoint: the changes of one command id since the last checkpoint.
    Micro {
        /// The command id.
        cmd: CmdId,
    },
    /// One part of a full (macro) checkpoint: every session; the Standby replaces its copy when
    /// the last part arrives.
    Full {
        /// First part.
        first: bool,
        /// Last part.
        last: bool,
    },
}

/// One checkpoint message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Kind.
    pub kind: CheckpointKind,
    /// Sequence number.
    pub seq: u64,
    /// The changes.
    pub changes: Vec<Change>,
    /// CRC-32 of header and body, computed by [`Checkpoint::new`].
    pub checksum: u32,
}

/// What is wrong with a received checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    /// Shorter than its header or its declared body.
    #[error("truncated checkpoint: {0}")]
    Truncated(&'static str),
    /// Unknown kind, flags or compression byte.
    #[error("malformed checkpoint header: {0}")]
    Header(String),
    /// Compressed with another algorithm than the one agreed.
    #[error("checkpoint compressed with {got}, {agreed} was agreed")]
    CompressionMismatch {
        /// Algorithm in the message.
        got: Compression,
        /// Algorithm agreed for the connection.
        agreed: Compression,
    },
    /// The body does not decompress.
    #[error("checkpoint body: {0}")]
    Compression(#[from] CompressionError),
    /// The checksum does not match.
    #[error("checkpoint checksum mismatch: header {declared:08x}, computed {computed:08x}")]
    Checksum {
        /// In the header.
        declared: u32,
        /// Over the received data.
        computed: u32,
    },
    /// A change does not parse.
    #[error("malformed change {index}: {detail}")]
    Change {
        /// Position in the body.
        index: usize,
        /// What is wrong.
        detail: String,
    },
}

/// A checkpoint that could not be decoded, with what its header told (for the NACK).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint seq {seq:?}: {fault}")]
pub struct CheckpointDecodeError {
    /// Its sequence number, when the header was readable.
    pub seq: Option<u64>,
    /// Its kind, when the header was readable.
    pub kind: Option<CheckpointKind>,
    /// What is wrong.
    pub fault: CheckpointFault,
}

/// An encoded checkpoint and its sizes before and after compression.
#[derive(Debug, Clone)]
pub struct EncodedCheckpoint {
    /// The frame payload.
    pub bytes: Vec<u8>,
    /// Uncompressed body length.
    pub uncompressed_len: usize,
    /// Compressed body length.
    pub compressed_len: usize,
}

fn kind_bytes(kind: CheckpointKind) -> [u8; 3] {
    match kind {
        CheckpointKind::Micro { cmd } => [1, cmd, 0],
        CheckpointKind::Full { first, last } => [2, 0, u8::from(first) | (u8::from(last) << 1)],
    }
}

fn compression_byte(c: Compression) -> u8 {
    match c {
        Compression::Zlib => 0,
        Compression::Lz4 => 1,
    }
}

fn checksum(kind: [u8; 3], seq: u64, count: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&kind);
    h.update(&seq.to_be_bytes());
    h.update(&count.to_be_bytes());
    h.update(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(body);
    h.finalize()
}

/// The encoded length of one change.
pub(crate) fn change_len(c: &Change) -> usize {
    match c {
        Change::Upsert { key, value, .. } => 1 + 1 + 2 + key.len() + 8 + 8 + 4 + value.len(),
        Change::Remove { key, .. } => 1 + 1 + 2 + key.len() + 8,
    }
}

fn encode_body(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(changes.iter().map(change_len).sum());
    for c in changes {
        let (op, cmd, key, version) = match c {
            Change::Upsert { cmd, key, version, .. } => (1u8, *cmd, key, *version),
            Change::Remove { cmd, key, version } => (2u8, *cmd, key, *version),
        };
        out.push(op);
        out.push(cmd);
        // Keys are at most MAX_KEY_LEN (checked by the store); truncating never happens.
        out.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        if let Change::Upsert { age_ms, value, .. } = c {
            out.extend_from_slice(&age_ms.to_be_bytes());
            out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(value);
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
    }
}

fn decode_body(body: &[u8], count: u32) -> Result<Vec<Change>, CheckpointFault> {
    let mut r = Reader { buf: body, pos: 0 };
    let mut out = Vec::with_capacity((count as usize).min(body.len() / 13 + 1));
    for index in 0..count as usize {
        let bad = |detail: &str| CheckpointFault::Change { index, detail: detail.to_string() };
        let op = r.u8().ok_or_else(|| bad("truncated"))?;
        let cmd = r.u8().ok_or_else(|| bad("truncated"))?;
        let key_len = r.u16().ok_or_else(|| bad("truncated"))? as usize;
        if key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(bad("key length out of range"));
        }
        let key = r.take(key_len).ok_or_else(|| bad("truncated key"))?;
        let key = std::str::from_utf8(key).map_err(|_| bad("key is not UTF-8"))?.to_string();
        let version = r.u64().ok_or_else(|| bad("truncated"))?;
        if cmd == 0 {
            return Err(bad("command id 0"));
        }
        match op {
            1 => {
                let age_ms = r.u64().ok_or_else(|| bad("truncated"))?;
                let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
                if len > MAX_VALUE_LEN {
                    return Err(bad("value too long"));
                }
                let value = r.take(len).ok_or_else(|| bad("truncated value"))?.to_vec();
                out.push(Change::Upsert { cmd, key, version, age_ms, value });
            }
            2 => out.push(Change::Remove { cmd, key, version }),
            _ => return Err(bad("unknown operation")),
        }
    }
    if r.pos != body.len() {
        return Err(CheckpointFault::Change {
            index: count as usize,
            detail: "trailing bytes after the last change".into(),
        });
    }
    Ok(out)
}

impl Checkpoint {
    /// A checkpoint with its checksum computed.
    pub fn new(kind: CheckpointKind, seq: u64, changes: Vec<Change>) -> Checkpoint {
        let body = encode_body(&changes);
        let count = u32::try_from(changes.len()).unwrap_or(u32::MAX);
        let checksum = checksum(kind_bytes(kind), seq, count, &body);
        Checkpoint { kind, seq, changes, checksum }
    }

    /// Encodes with `compression`; the stored checksum is written as is.
    pub fn encode(&self, compression: Compression) -> EncodedCheckpoint {
        let body = encode_body(&self.changes);
        let compressed = compression.compress(&body);
        let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
        out.extend_from_slice(&kind_bytes(self.kind));
        out.push(compression_byte(compression));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&u32::try_from(self.changes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&self.checksum.to_be_bytes());
        out.extend_from_slice(&compressed);
        EncodedCheckpoint { bytes: out, uncompressed_len: body.len(), compressed_len: compressed.len() }
    }

    /// Decodes a checkpoint compressed with the agreed algorithm and verifies its checksum.
    pub fn decode(buf: &[u8], agreed: Compression) -> Result<Checkpoint, CheckpointDecodeError> {
        let fail = |seq, kind, fault| CheckpointDecodeError { seq, kind, fault };
        if buf.len() < HEADER_LEN {
            return Err(fail(None, None, CheckpointFault::Truncated("shorter than the header")));
        }
        let mut r = Reader { buf, pos: 0 };
        let (k, cmd, flags, comp) = (buf[0], buf[1], buf[2], buf[3]);
        r.pos = 4;
        let seq = r.u64().unwrap_or_default();
        let count = r.u32().unwrap_or_default();
        let body_len = r.u32().unwrap_or_default() as usize;
        let declared = r.u32().unwrap_or_default();
        let kind = match (k, cmd, flags) {
            (1, 1..=255, 0) => CheckpointKind::Micro { cmd },
            (2, 0, 0..=3) => CheckpointKind::Full { first: flags & 1 != 0, last: flags & 2 != 0 },
            _ => {
                return Err(fail(
                    Some(seq),
                    None,
                    CheckpointFault::Header(format!("kind {k}, cmd {cmd}, flags {flags}")),
                ));
            }
        };
        let fail_at = |fault| fail(Some(seq), Some(kind), fault);
        let got = match comp {
            0 => Compression::Zlib,
            1 => Compression::Lz4,
            other => return Err(fail_at(CheckpointFault::Header(format!("compression byte {other}")))),
        };
        if got != agreed {
            return Err(fail_at(CheckpointFault::CompressionMismatch { got, agreed }));
        }
        let body = got.decompress(&buf[HEADER_LEN..], body_len, MAX_BODY_LEN).map_err(|e| fail_at(e.into()))?;
        let computed = checksum([k, cmd, flags], seq, count, &body);
        if computed != declared {
            return Err(fail_at(CheckpointFault::Checksum { declared, computed }));
        }
        let changes = decode_body(&body, count).map_err(fail_at)?;
        Ok(Checkpoint { kind, seq, changes, checksum: declared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;
    use proptest::sample::Index;

    fn sample() -> Checkpoint {
        Checkpoint::new(
            CheckpointKind::Micro { cmd: 7 },
            42,
            vec![
                Change::Remove { cmd: 7, key: "gone".into(), version: 3 },
                Change::Upsert { cmd: 7, key: "k".into(), version: 9, age_ms: 61_000, value: b"value".to_vec() },
            ],
        )
    }

    #[test]
    fn round_trips_with_both_algorithms() {
        for c in [Compression::Zlib, Compression::Lz4] {
            let cp = sample();
            let enc = cp.encode(c);
            assert_eq!(enc.bytes.len(), HEADER_LEN + enc.compressed_len);
            assert_eq!(Checkpoint::decode(&enc.bytes, c).unwrap(), cp);
            let full = Checkpoint::new(CheckpointKind::Full { first: true, last: true }, 1, vec![]);
            assert_eq!(Checkpoint::decode(&full.encode(c).bytes, c).unwrap(), full);
        }
    }

    #[test]
    fn wrong_algorithm_checksum_and_truncation_are_reported_with_the_sequence() {
        let cp = sample();
        let enc = cp.encode(Compression::Zlib);
        let e = Checkpoint::decode(&enc.bytes, Compression::Lz4).unwrap_err();
        assert!(matches!(e.fault, CheckpointFault::CompressionMismatch { .. }));
        assert_eq!(e.seq, Some(42));

        let mut bad = cp.clone();
        bad.checksum ^= 1;
        let e = Checkpoint::decode(&bad.encode(Compression::Zlib).bytes, Compression::Zlib).unwrap_err();
        assert!(matches!(e.fault, CheckpointFault::Checksum { .. }), "{e}");
        assert_eq!((e.seq, e.kind), (Some(42), Some(CheckpointKind::Micro { cmd: 7 })));

        let e = Checkpoint::decode(&enc.bytes[..HEADER_LEN + 2], Compression::Zlib).unwrap_err();
        assert!(matches!(e.fault, CheckpointFault::Compression(_)), "{e}");
        assert!(Checkpoint::decode(&enc.bytes[..10], Compression::Zlib).unwrap_err().seq.is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        /// Whatever arrives, decoding answers (with either compression).
        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Checkpoint::decode(&buf, Compression::Zlib);
            let _ = Checkpoint::decode(&buf, Compression::Lz4);
        }

        /// Mutations of a valid checkpoint reach deeper than garbage: past the header, into
        /// decompression and the changes.
        #[test]
        fn a_valid_checkpoint_with_bytes_changed_never_panics(changes in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..=4)) {
            let mut buf = sample().encode(Compression::Zlib).bytes;
            let len = buf.len();
            for (at, value) in changes {
                buf[at.index(len)] = value;
            }
            let _ = Checkpoint::decode(&buf, Compression::Zlib);
            let _ = Checkpoint::decode(&buf, Compression::Lz4);
        }
    }

    #[test]
    fn a_body_with_a_valid_checksum_but_bad_changes_is_rejected() {
        // Count says 2, body holds 1 change: checksum is valid (computed by new over the same count).
        let body = encode_body(&[Change::Remove { cmd: 1, key: "k".into(), version: 1 }]);
        let kind = kind_bytes(CheckpointKind::Micro { cmd: 1 });
        let sum = checksum(kind, 5, 2, &body);
        let comp = Compression::Zlib.compress(&body);
        let mut buf = kind.to_vec();
        buf.push(0);
        buf.extend_from_slice(&5u64.to_be_bytes());
        buf.extend_from_slice(&2u32.to_be_bytes());
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(&sum.to_be_bytes());
        buf.extend_from_slice(&comp);
        let e = Checkpoint::decode(&buf, Compression::Zlib).unwrap_err();
        assert!(matches!(e.fault, CheckpointFault::Change { index: 1, .. }), "{e}");
    }
}
