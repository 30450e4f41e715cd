//! Capture files: classic pcap (micro- and nanosecond) and pcapng, read as a stream so memory
//! stays flat whatever the file size. Parsing is pcap-parser's (rusticata); this module turns
//! its blocks into frames with a link type and a timestamp in microseconds, applying each
//! pcapng interface's timestamp resolution and offset.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, µs since the epoch.
    pub ts_us: i64,
    /// Link-layer type (LINKTYPE_* number: 1 Ethernet, 113 Linux SLL ...).
    pub linktype: i32,
    /// The frame bytes from the link-layer header on.
    pub data: &'a [u8],
}

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Neither pcap nor pcapng.
    #[error("not a pcap or pcapng file: {0}")]
    Format(String),
    /// Reading failed.
    #[error("reading the capture: {0}")]
    Io(#[from] std::io::Error),
}

/// The largest capture record read (a block of pcapng, a packet of pcap).
const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

/// What reading a capture found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Frames read.
    pub frames: u64,
    /// The file ended inside a record (a capture cut short, e.g. by a full disk or a copy
    /// taken while it was written); the frames before it were read.
    pub truncated: bool,
}

/// Reads every frame of a capture and calls `frame` for each; `progress` receives the bytes
/// consumed so far. A truncated last record ends the file without error (see
/// [`CaptureSummary::truncated`]).
pub fn read_capture(
    input: impl Read + Send,
    mut frame: impl FnMut(Frame<'_>),
    mut progress: impl FnMut(u64),
) -> Result<CaptureSummary, CaptureError> {
    let mut buffer = 1usize << 20;
    let mut reader = match create_reader(buffer, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Ok(CaptureSummary::default()),
        Err(e) => return Err(CaptureError::Format(format!("{e:?}"))),
    };
    let mut legacy: Option<(i32, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut frames = 0u64;
    let mut consumed = 0u64;
    let mut last_ts = 0i64;
    let mut stalls = 0;
    let mut truncated = false;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                stalls = 0;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy = Some((h.network.0, h.is_nanosecond_precision())),
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.unwrap_or((1, false));
                        let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
                        last_ts = i64::from(b.ts_sec).saturating_mul(1_000_000).saturating_add(frac);
                        let len = (b.caplen as usize).min(b.data.len());
                        frame(Frame { ts_us: last_ts, linktype, data: &b.data[..len] });
                        frames += 1;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push(Interface {
                        linktype: idb.linktype.0,
                        resolution: idb.ts_resolution().unwrap_or(1_000_000),
                        offset_s: idb.if_tsoffset,
                    }),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = interfaces.get(epb.if_id as usize).copied().unwrap_or(Interface {
                            linktype: 1,
                            resolution: 1_000_000,
                            offset_s: 0,
                        });
                        let raw = (u128::from(epb.ts_high) << 32) | u128::from(epb.ts_low);
                        let us = raw * 1_000_000 / u128::from(iface.resolution.max(1));
                        last_ts = i64::try_from(us)
                            .unwrap_or(i64::MAX)
                            .saturating_add(iface.offset_s.saturating_mul(1_000_000));
                        let len = (epb.caplen as usize).min(epb.data.len());
                        frame(Frame { ts_us: last_ts, linktype: iface.linktype, data: &epb.data[..len] });
                        frames += 1;
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let linktype = interfaces.first().map_or(1, |i| i.linktype);
                        let len = (spb.origlen as usize).min(spb.data.len());
                        frame(Frame { ts_us: last_ts, linktype, data: &spb.data[..len] });
                        frames += 1;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
                consumed += offset as u64;
                if frames.is_multiple_of(4096) {
                    progress(consumed);
                }
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    truncated = !reader.data().is_empty();
                    break;
                }
                stalls += 1;
                if stalls > 2 {
                    // The buffer is full and the record still incomplete: a record larger than
                    // the buffer. Grow up to 64 MiB (pcapng allows big blocks), then give up.
                    if buffer >= MAX_RECORD || !reader.grow(buffer * 2) {
                        return Err(CaptureError::Format(format!(
                            "a record larger than {} MiB after {frames} frames",
                            buffer >> 20
                        )));
                    }
                    buffer *= 2;
                    stalls = 0;
                }
                if let Err(e) = reader.refill() {
                    return Err(CaptureError::Format(format!("{e:?}")));
                }
            }
            Err(e) => return Err(CaptureError::Format(format!("{e:?} after {frames} frames"))),
        }
    }
    progress(consumed);
    Ok(CaptureSummary { frames, truncated })
}
