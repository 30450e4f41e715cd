//! Compression of checkpoint payloads: zlib (the default) or LZ4, agreed once per connection.
//!
//! The seed: "LZ4 compression is effective only if both chassis are configured with LZ4. If any
//! one chassis has zlib (default) configured, the compression algorithm reverts to zlib. The
//! algorithm is negotiated only during initial socket establishment."

use std::fmt;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// A checkpoint payload compression algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zlib (RFC 1950), the default.
    #[default]
    Zlib,
    /// LZ4 block format: faster, used only when both chassis are configured for it.
    Lz4,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zlib => "zlib",
            Compression::Lz4 => "lz4",
        })
    }
}

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The declared size is larger than allowed.
    #[error("declared uncompressed size {declared} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size the sender declared.
        declared: usize,
        /// The limit.
        limit: usize,
    },
    /// The data is not valid for the algorithm, or does not expand to the declared size.
    #[error("corrupt {algorithm} data: {detail}")]
    Corrupt {
        /// The algorithm used.
        algorithm: Compression,
        /// What the decoder said.
        detail: String,
    },
}

impl Compression {
    /// The algorithm two chassis agree on: LZ4 only when both ask for it.
    pub fn negotiate(local: Compression, peer: Compression) -> Compression {
        if local == Compression::Lz4 && peer == Compression::Lz4 { Compression::Lz4 } else { Compression::Zlib }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::Zlib => {
                let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            }
            Compression::Lz4 => lz4_flex::block::compress(data),
        }
    }

    /// Decompresses `data`, which must expand to exactly `expected_len` bytes, at most `limit`.
    pub fn decompress(self, data: &[u8], expected_len: usize, limit: usize) -> Result<Vec<u8>, CompressionError> {
        if expected_len > limit {
            return Err(CompressionError::TooLarge { declared: expected_len, limit });
        }
        let corrupt = |detail: String| CompressionError::Corrupt { algorithm: self, detail };
        let out = match self {
            Compression::Zlib => {
                let mut out = Vec::with_capacity(expected_len);
                let dec = flate2::read::ZlibDecoder::new(data);
                // One byte more than expected tells an over-long stream from an exact one.
                dec.take(expected_len as u64 + 1).read_to_end(&mut out).map_err(|e| corrupt(e.to_string()))?;
                out
            }
            Compression::Lz4 => lz4_flex::block::decompress(data, expected_len).map_err(|e| corrupt(e.to_string()))?,
        };
        if out.len() != expected_len {
            return Err(corrupt(format!("expanded to {} bytes, {} declared", out.len(), expected_len)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_zlib_unless_both_lz4() {
        use Compression::*;
        assert_eq!(Compression::negotiate(Lz4, Lz4), Lz4);
        assert_eq!(Compression::negotiate(Lz4, Zlib), Zlib);
        assert_eq!(Compression::negotiate(Zlib, Lz4), Zlib);
        assert_eq!(Compression::negotiate(Zlib, Zlib), Zlib);
    }

    #[test]
    fn round_trips_and_rejects_bad_sizes_and_garbage() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        for alg in [Compression::Zlib, Compression::Lz4] {
            let c = alg.compress(&data);
            assert!(c.len() < data.len(), "{alg}");
            assert_eq!(alg.decompress(&c, data.len(), 1 << 20).unwrap(), data);
            assert!(alg.decompress(&c, data.len() - 1, 1 << 20).is_err(), "{alg} short");
            assert!(alg.decompress(&c, data.len() + 1, 1 << 20).is_err(), "{alg} long");
            assert!(matches!(alg.decompress(&c, data.len(), 100), Err(CompressionError::TooLarge { .. })));
            assert!(alg.decompress(b"\xff\x00garbage\x13", 64, 1 << 20).is_err(), "{alg} garbage");
            assert_eq!(alg.decompress(&alg.compress(b""), 0, 10).unwrap(), Vec::<u8>::new());
        }
    }
}
