//! Offline analysis of a capture file, or of several read as one ([`analyze_set`]): every
//! frame through the decoder and the probe, every call out through a callback, in constant
//! memory.

use std::io::Read;

use crate::capture::{CaptureError, Frame, read_capture};
use crate::capture_set::{CaptureSet, CaptureSetError, FileSummary};
use crate::decode::{DecodeStats, Decoder};
use crate::pipeline::{AtEnd, CallReport, Probe};

/// Totals of an analysis.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Frames read.
    pub frames: u64,
    /// The input ended inside a record; everything before it was read (for a set: some file
    /// did, see [`Analysis::files`]).
    pub truncated: bool,
    /// Decoder counters.
    pub decode: DecodeStats,
    /// For a set of files: what each held, in the order they were read (empty for a single
    /// input read by [`analyze`]).
    pub files: Vec<FileSummary>,
}

/// Frames in, calls out.
struct Analyzer<'p, C: FnMut(CallReport)> {
    decoder: Decoder,
    probe: &'p mut Probe,
    call: C,
}

impl<C: FnMut(CallReport)> Analyzer<'_, C> {
    fn frame(&mut self, frame: Frame<'_>) {
        let (probe, call) = (&mut *self.probe, &mut self.call);
        self.decoder.decode(frame.ts_us, frame.linktype, frame.data, |d| {
            for report in probe.on_packet(&d) {
                call(report);
            }
        })
    }

    fn finish(mut self, at_end: AtEnd) -> DecodeStats {
        for report in self.probe.finish(at_end) {
            (self.call)(report);
        }
        self.decoder.stats()
    }
}

/// Reads `input` through `probe`; calls `call` for each finished call and, at the end, for each
/// call still open, reported as open (see [`AtEnd::ReportOpen`]); `progress` with the bytes
/// read so far.
pub fn analyze(
    input: impl Read + Send,
    probe: &mut Probe,
    call: impl FnMut(CallReport),
    progress: impl FnMut(u64),
) -> Result<Analysis, CaptureError> {
    let mut analyzer = Analyzer { decoder: Decoder::default(), probe, call };
    let summary = read_capture(input, |frame| analyzer.frame(frame), progress)?;
    let decode = analyzer.finish(AtEnd::ReportOpen);
    Ok(Analysis { frames: summary.frames, truncated: summary.truncated, decode, files: Vec::new() })
}

/// Reads the files of `set` as one stream in time order through `probe` (calls span files);
/// calls `call` for each finished call and, at the end, for each call still open, as `at_end`
/// says; `progress` with the bytes read so far over all files.
pub fn analyze_set(
    set: &CaptureSet,
    probe: &mut Probe,
    at_end: AtEnd,
    call: impl FnMut(CallReport),
    progress: impl FnMut(u64),
) -> Result<Analysis, CaptureSetError> {
    let mut analyzer = Analyzer { decoder: Decoder::default(), probe, call };
    let files = set.read(|frame| analyzer.frame(frame), progress)?;
    let decode = analyzer.finish(at_end);
    Ok(Analysis {
        frames: files.iter().map(|f| f.frames).sum(),
        truncated: files.iter().any(|f| f.truncated),
        decode,
        files,
    })
}
