//! `tollgate probe --pcap FILE... --call CALL-ID`: one call's SIP messages from a capture,
//! drawn as a ladder (or, with `--json`, the messages as the API returns them), with the
//! call's record.

use std::io::Write;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use tollgate_probe::analyze::analyze_set;
use tollgate_probe::capture_set::CaptureSet;
use tollgate_probe::ladder::{LadderStore, render};
use tollgate_probe::pipeline::AtEnd;
use tollgate_probe::{CallReport, Probe};

use crate::cli::ProbeArgs;
use crate::config::Config;

/// Width of the ladder when stdout is not a terminal.
const DEFAULT_WIDTH: usize = 120;

/// Runs `probe --pcap FILE... --call CALL-ID` on the capture files of `set` (one stream in
/// time order, as `probe --pcap` reads them).
pub fn run(config: &Config, args: &ProbeArgs, set: &CaptureSet, call_id: &str) -> anyhow::Result<ExitCode> {
    let mut settings = crate::roles::probe::settings(config)?;
    if let Some(d) = &args.device {
        settings.device = d.clone();
    }
    let mut probe = Probe::new(settings).with_ladder(LadderStore::one_call(call_id));
    let what = match set.files() {
        [one] => one.path.display().to_string(),
        files => format!("{} files", files.len()),
    };
    let bar = ProgressBar::new(set.total_bytes()).with_message(format!("reading {what} for call {call_id}"));
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut record: Option<CallReport> = None;
    let analysis = analyze_set(
        set,
        &mut probe,
        AtEnd::ReportOpen,
        |report| {
            if report.call.call_id == call_id {
                record = Some(report);
            }
        },
        |bytes| bar.set_position(bytes),
    )?;
    bar.finish_and_clear();
    for f in analysis.files.iter().filter(|f| f.truncated) {
        eprintln!(
            "warning: {} ends inside a record (a capture cut short); the {} frames before it were read",
            f.path.display(),
            f.frames
        );
    }
    let Some(call) = probe.ladder().and_then(|l| l.call(call_id)) else {
        let c = probe.counters();
        anyhow::bail!(
            "{what}: no SIP message has Call-ID {call_id:?}; the capture held {} calls ({} SIP messages in {} frames)",
            c.total_calls() + c.open,
            c.messages,
            analysis.frames
        );
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "call": crate::roles::probe::call_messages(call),
            "record": record.map(|r| r.record),
        });
        serde_json::to_writer(&mut out, &json)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = console::Term::stdout().size_checked().map(|(_, cols)| cols as usize).unwrap_or(DEFAULT_WIDTH);
    writeln!(out, "Call-ID {call_id}: {} messages", call.messages.len())?;
    for line in render(&call, width) {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;
    match &record {
        Some(r) => crate::cmd::probe::write_table(&mut out, std::slice::from_ref(r))?,
        None => writeln!(out, "(no call record: no INVITE of this Call-ID started a call)")?,
    }
    Ok(ExitCode::SUCCESS)
}
