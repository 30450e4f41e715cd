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
    let Some(mut reader) = FrameReader::new(input)? else { return Ok(CaptureSummary::default()) };
    while reader.advance()? {
        if let Some(f) = reader.frame() {
            frame(f);
        }
        if reader.frames().is_multiple_of(4096) {
            progress(reader.consumed());
        }
    }
    progress(reader.consumed());
    Ok(reader.summary())
}

/// Where the current frame lies in the reader's buffer.
#[derive(Debug, Clone, Copy)]
struct Current {
    ts_us: i64,
    linktype: i32,
    start: usize,
    len: usize,
}

/// A capture read one frame at a time: [`FrameReader::advance`] moves to the next frame and
/// [`FrameReader::frame`] shows it, without copying it out of the reader's buffer. Several
/// readers can be held at once (see [`crate::capture_set`], which merges files by time).
pub struct FrameReader<'r> {
    reader: Box<dyn pcap_parser::traits::PcapReaderIterator + Send + 'r>,
    buffer: usize,
    legacy: Option<(i32, bool)>,
    interfaces: Vec<Interface>,
    last_ts: i64,
    frames: u64,
    consumed: u64,
    /// Bytes of the current frame's record, consumed when the reader advances.
    pending: usize,
    current: Option<Current>,
    truncated: bool,
    ended: bool,
}

impl<'r> FrameReader<'r> {
    /// A reader of `input`; `None` for an empty input (no bytes at all).
    pub fn new(input: impl Read + Send + 'r) -> Result<Option<FrameReader<'r>>, CaptureError> {
        let buffer = 1usize << 20;
        let reader = match create_reader(buffer, input) {
            Ok(r) => r,
            Err(PcapError::Eof) => return Ok(None),
            Err(e) => return Err(CaptureError::Format(format!("{e:?}"))),
        };
        Ok(Some(FrameReader {
            reader,
            buffer,
            legacy: None,
            interfaces: Vec::new(),
            last_ts: 0,
            frames: 0,
            consumed: 0,
            pending: 0,
            current: None,
            truncated: false,
            ended: false,
        }))
    }

    /// Moves to the next frame; false at the end of the capture (then
    /// [`FrameReader::frame`] is `None`).
    pub fn advance(&mut self) -> Result<bool, CaptureError> {
        if self.pending > 0 {
            self.reader.consume(self.pending);
            self.consumed += self.pending as u64;
            self.pending = 0;
        }
        self.current = None;
        if self.ended {
            return Ok(false);
        }
        let mut stalls = 0;
        loop {
            let base = self.reader.data().as_ptr() as usize;
            match self.reader.next() {
                Ok((offset, block)) => {
                    stalls = 0;
                    // The frame's place in the buffer (its bytes are a slice of it).
                    let place = |data: &[u8], len: usize| match (data.as_ptr() as usize).checked_sub(base) {
                        Some(start) => (start, len.min(data.len())),
                        None => (0, 0),
                    };
                    let found = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy = Some((h.network.0, h.is_nanosecond_precision()));
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (linktype, nanos) = self.legacy.unwrap_or((1, false));
                            let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
                            self.last_ts = i64::from(b.ts_sec).saturating_mul(1_000_000).saturating_add(frac);
                            Some((linktype, place(b.data, b.caplen as usize)))
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            self.interfaces.clear();
                            None
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.interfaces.push(Interface {
                                linktype: idb.linktype.0,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset_s: idb.if_tsoffset,
                            });
                            None
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let iface = self.interfaces.get(epb.if_id as usize).copied().unwrap_or(Interface {
                                linktype: 1,
                                resolution: 1_000_000,
                                offset_s: 0,
                            });
                            let raw = (u128::from(epb.ts_high) << 32) | u128::from(epb.ts_low);
                            let us = raw * 1_000_000 / u128::from(iface.resolution.max(1));
                            self.last_ts = i64::try_from(us)
                                .unwrap_or(i64::MAX)
                                .saturating_add(iface.offset_s.saturating_mul(1_000_000));
                            Some((iface.linktype, place(epb.data, epb.caplen as usize)))
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let linktype = self.interfaces.first().map_or(1, |i| i.linktype);
                            Some((linktype, place(spb.data, spb.origlen as usize)))
                        }
                        PcapBlockOwned::NG(_) => None,
                    };
                    match found {
                        Some((linktype, (start, len))) => {
                            self.pending = offset;
                            self.frames += 1;
                            self.current = Some(Current { ts_us: self.last_ts, linktype, start, len });
                            return Ok(true);
                        }
                        None => {
                            self.reader.consume(offset);
                            self.consumed += offset as u64;
                        }
                    }
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::UnexpectedEof) => {
                    self.truncated = true;
                    break;
                }
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        self.truncated = !self.reader.data().is_empty();
                        break;
                    }
                    stalls += 1;
                    if stalls > 2 {
                        // The buffer is full and the record still incomplete: a record larger
                        // than the buffer. Grow up to 64 MiB (pcapng allows big blocks), then
                        // give up.
                        if self.buffer >= MAX_RECORD || !self.reader.grow(self.buffer * 2) {
                            return Err(CaptureError::Format(format!(
                                "a record larger than {} MiB after {} frames",
                                self.buffer >> 20,
                                self.frames
                            )));
                        }
                        self.buffer *= 2;
                        stalls = 0;
                    }
                    if let Err(e) = self.reader.refill() {
                        return Err(CaptureError::Format(format!("{e:?}")));
                    }
                }
                Err(e) => return Err(CaptureError::Format(format!("{e:?} after {} frames", self.frames))),
            }
        }
        self.ended = true;
        Ok(false)
    }

    /// The current frame (after [`FrameReader::advance`] returned true).
    pub fn frame(&self) -> Option<Frame<'_>> {
        let c = self.current?;
        let data = self.reader.data().get(c.start..c.start + c.len)?;
        Some(Frame { ts_us: c.ts_us, linktype: c.linktype, data })
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes of the input consumed so far (the current frame's record included).
    pub fn consumed(&self) -> u64 {
        self.consumed + self.pending as u64
    }

    /// What was read so far.
    pub fn summary(&self) -> CaptureSummary {
        CaptureSummary { frames: self.frames, truncated: self.truncated }
    }
}
