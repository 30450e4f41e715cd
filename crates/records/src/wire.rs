//! Record batches on the wire between a shipper and a collector: NDJSON (one record's JSON per
//! line, as the spool keeps them), sent as is or compressed with zstd.
//!
//! Compression is negotiated (RFC 7694): a collector that reads zstd bodies says so with
//! `Accept-Encoding: zstd` in its ingest answers, and a shipper compresses a batch
//! (`Content-Encoding: zstd`) only to a collector it heard that from since it last connected.
//!
//! A compressed body starts with a zstd *skippable frame* ([`GUARD`]) that decoders pass over.
//! It holds the line `{"v":65535,...}`: a collector of a release before compression, which
//! reads every body as NDJSON whatever its `Content-Encoding`, sees a record of a format version
//! newer than any it knows and refuses the whole batch with `409` before storing or
//! quarantining anything. So a compressed batch that reaches an old collector anyway (one
//! downgraded between two batches on a kept connection) is refused, never quarantined as
//! garbage, and the shipper sends it again uncompressed.

use std::io::Read;

/// The `Content-Encoding` (and `Accept-Encoding`) token of zstd bodies.
pub const ZSTD: &str = "zstd";

/// The record format version in [`GUARD`]: newer than any release's.
pub const GUARD_VERSION: u16 = u16::MAX;

/// The line a pre-compression collector reads from a compressed body (see the module doc).
const GUARD_LINE: &[u8] =
    b"\n{\"v\":65535,\"note\":\"a zstd body (Content-Encoding: zstd); this collector does not read it\"}\n";

/// The skippable frame every compressed body starts with: magic `0x184D2A50`, the length of
/// its content, then [`GUARD_LINE`].
pub const GUARD: [u8; 8 + GUARD_LINE.len()] = {
    let mut out = [0u8; 8 + GUARD_LINE.len()];
    let magic = 0x184D_2A50u32.to_le_bytes();
    let len = (GUARD_LINE.len() as u32).to_le_bytes();
    let mut i = 0;
    while i < 4 {
        out[i] = magic[i];
        out[4 + i] = len[i];
        i += 1;
    }
    let mut j = 0;
    while j < GUARD_LINE.len() {
        out[8 + j] = GUARD_LINE[j];
        j += 1;
    }
    out
};

/// zstd level shippers compress with: level 1 compresses record NDJSON about 13:1 at 2.8
/// million records/s per core; level 3 gains nothing on records and is slower
/// (`cargo bench -p tollgate-records --bench wire`).
pub const LEVEL: i32 = 1;

/// Compresses an NDJSON batch into a zstd body (with [`GUARD`] first).
pub fn compress(ndjson: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(GUARD.len() + ndjson.len() / 4 + 64);
    out.extend_from_slice(&GUARD);
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(ndjson.len() as u64))?;
    std::io::Write::write_all(&mut encoder, ndjson)?;
    encoder.finish()
}

/// Why a zstd body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// It decompresses to more than the collector takes (a "zip bomb" or a misconfigured
    /// shipper); nothing of it is read further.
    #[error("the zstd body decompresses to more than {max} bytes, the most a batch may hold")]
    TooLarge {
        /// The limit, bytes.
        max: usize,
    },
    /// It ends before its last frame does.
    #[error("the zstd body is truncated: it ends inside a frame ({0})")]
    Truncated(String),
    /// It is not zstd, or is damaged.
    #[error("the body is not valid zstd: {0}")]
    Corrupt(String),
}

/// Decompresses a zstd body, reading at most `max` bytes of output.
pub fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    match decoder.take(max as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(DecodeError::TooLarge { max }),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(DecodeError::Truncated(e.to_string())),
        Err(e) => Err(DecodeError::Corrupt(e.to_string())),
    }
}

/// The fuzz target `ingest_body` and its seed replay: what a collector does with an untrusted
/// zstd body. Nothing panics; a decoded body never exceeds the cap; each line either reads as a
/// record (then validated) or is refused; and any input, taken as NDJSON, compresses and
/// decompresses back to itself.
pub mod fuzzing {
    /// The cap the fuzz target decodes under (the collector's is larger; the logic is the same).
    pub const MAX: usize = 1 << 20;

    /// Checks one fuzz input (see the module doc).
    pub fn check(data: &[u8]) {
        if let Ok(plain) = super::decompress(data, MAX) {
            assert!(plain.len() <= MAX, "decoded {} bytes past the cap", plain.len());
            let now = chrono::Utc::now();
            for line in plain.split(|b| *b == b'\n') {
                if let Ok(record) = serde_json::from_slice::<crate::Record>(line) {
                    let _ = record.validate(now);
                }
            }
        }
        let body = super::compress(data, super::LEVEL).expect("compressing to memory cannot fail");
        assert_eq!(super::decompress(&body, data.len()).as_deref(), Ok(data), "a body round-trips");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(&serde_json::to_vec(&crate::fixtures::enum_record(i)).unwrap());
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn a_batch_round_trips_and_its_guard_is_skipped() {
        let plain = ndjson(500);
        let body = compress(&plain, LEVEL).unwrap();
        assert!(body.starts_with(&GUARD));
        assert!(body.len() * 4 < plain.len(), "{} -> {}", plain.len(), body.len());
        assert_eq!(decompress(&body, plain.len()).unwrap(), plain);
    }

    #[test]
    fn read_as_ndjson_the_guard_is_a_line_of_a_version_nobody_reads() {
        let body = compress(&ndjson(3), LEVEL).unwrap();
        let line = body.split(|b| *b == b'\n').nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(v["v"], u64::from(GUARD_VERSION));
    }

    #[test]
    fn more_than_the_limit_is_refused_without_reading_it_all() {
        let bomb = compress(&vec![b' '; 50 << 20], 3).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        assert_eq!(decompress(&bomb, 1 << 20), Err(DecodeError::TooLarge { max: 1 << 20 }));
    }

    #[test]
    fn a_truncated_or_foreign_body_is_an_error() {
        let body = compress(&ndjson(200), LEVEL).unwrap();
        let cut = &body[..body.len() - 10];
        assert!(matches!(decompress(cut, 1 << 20), Err(DecodeError::Truncated(_))), "{:?}", decompress(cut, 1 << 20));
        assert!(matches!(decompress(b"{\"kind\":\"enum_query\"}\n", 1 << 20), Err(DecodeError::Corrupt(_))));
    }

    #[test]
    fn the_fuzz_seeds_pass_the_fuzz_check() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/ingest_body");
        let mut n = 0;
        for entry in std::fs::read_dir(&seeds).unwrap() {
            fuzzing::check(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 3, "seeds in {}", seeds.display());
    }
}
