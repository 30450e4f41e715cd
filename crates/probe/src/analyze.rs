//! Offline analysis of a capture file: every frame through the decoder and the probe, every
//! call out through a callback, in constant memory.

use std::io::Read;

use crate::capture::{CaptureError, read_capture};
use crate::decode::{DecodeStats, Decoder};
use crate::pipeline::{CallReport, Probe};

/// Totals of an analysis.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Frames read.
    pub frames: u64,
    /// The file ended inside a record; everything before it was read.
    pub truncated: bool,
    /// Decoder counters.
    pub decode: DecodeStats,
}

/// Reads `input` through `probe`; calls `call` for each finished call (including those still
/// open at the end) and `progress` with the bytes read so far.
pub fn analyze(
    input: impl Read + Send,
    probe: &mut Probe,
    mut call: impl FnMut(CallReport),
    progress: impl FnMut(u64),
) -> Result<Analysis, CaptureError> {
    let mut decoder = Decoder::default();
    let summary = read_capture(
        input,
        |frame| {
            decoder.decode(frame.ts_us, frame.linktype, frame.data, |packet| {
                for report in probe.on_packet(&packet) {
                    call(report);
                }
            })
        },
        progress,
    )?;
    for report in probe.finish() {
        call(report);
    }
    Ok(Analysis { frames: summary.frames, truncated: summary.truncated, decode: decoder.stats() })
}
