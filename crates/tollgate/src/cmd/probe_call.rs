//! `tollgate probe --pcap FILE --call CALL-ID`: one call's SIP messages from a capture file,
//! drawn as a ladder (or, with `--json`, the messages as the API returns them), with the
//! call's record.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tollgate_probe::analyze::analyze;
use tollgate_probe::ladder::{LadderStore, render};
use tollgate_probe::{CallReport, Probe};

use crate::cli::ProbeArgs;
use crate::config::Config;

/// Width of the ladder when stdout is not a terminal.
const DEFAULT_WIDTH: usize = 120;

/// Runs `probe --pcap FILE --call CALL-ID`.
pub fn run(config: &Config, args: &ProbeArgs, path: &Path, call_id: &str) -> anyhow::Result<ExitCode> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut settings = crate::roles::probe::settings(config)?;
    if let Some(d) = &args.device {
        settings.device = d.clone();
    }
    let mut probe = Probe::new(settings).with_ladder(LadderStore::one_call(call_id));
    let bar = ProgressBar::new(size).with_message(format!("reading {} for call {call_id}", path.display()));
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut record: Option<CallReport> = None;
    let analysis = analyze(
        BufReader::with_capacity(1 << 20, file),
        &mut probe,
        |report| {
            if report.call.call_id == call_id {
                record = Some(report);
            }
        },
        |bytes| bar.set_position(bytes),
    )
    .with_context(|| format!("{}", path.display()))?;
    bar.finish_and_clear();
    if analysis.truncated {
        eprintln!(
            "warning: {} ends inside a record (a capture cut short); the {} frames before it were read",
            path.display(),
            analysis.frames
        );
    }
    let Some(call) = probe.ladder().and_then(|l| l.call(call_id)) else {
        let c = probe.counters();
        anyhow::bail!(
            "{}: no SIP message has Call-ID {call_id:?}; the file held {} calls ({} SIP messages in {} frames)",
            path.display(),
            c.total_calls(),
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
