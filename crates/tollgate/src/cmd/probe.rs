//! `tollgate probe --pcap FILE...`: the calls in a capture (one file, or several read as one in
//! time order), streamed as they end (a table, CSV or JSON), with totals; optionally stored as
//! records and shipped to the collector. Calls still open at the end are reported as `open` and
//! not stored, unless `--finalize`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use tollgate_tls::RoleSet;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tollgate_probe::analyze::analyze_set;
use tollgate_probe::capture_set::{CaptureSet, resolve_inputs, rotation_siblings};
use tollgate_probe::{AtEnd, CallReport, Probe};
use tollgate_records::Record;
use tollgate_records::ship::{Shipper, ShipperOptions, ShipperStats, Uplink, ship_pass};
use tollgate_records::spool::{OpenError, Spool};

use crate::cli::ProbeArgs;
use crate::config::Config;

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// What a call is in the rows: its disposition, or `open` for a call still open at the end.
fn disposition(r: &CallReport) -> &'static str {
    if r.open { "open" } else { r.record.disposition.as_str() }
}

/// How the call's record was closed: signalled, timeout, evicted, endofinput (--finalize), or
/// `open`.
fn closed(r: &CallReport) -> String {
    if r.open { "open".into() } else { format!("{:?}", r.call.closed).to_lowercase() }
}

/// A call as a JSON row: its record, with `state` (`finished` or `open`); an open call's
/// `disposition` is `open` (what it would have been is not known yet).
fn json_row(r: &CallReport) -> anyhow::Result<serde_json::Value> {
    let mut row = serde_json::to_value(&r.record)?;
    if let Some(fields) = row.as_object_mut() {
        fields.insert("state".into(), json!(if r.open { "open" } else { "finished" }));
        if r.open {
            fields.insert("disposition".into(), json!("open"));
        }
    }
    Ok(row)
}

fn csv_row(r: &CallReport) -> Vec<String> {
    let c = &r.record;
    vec![
        c.call_id.clone(),
        c.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        cell(c.source),
        cell(c.destination),
        c.direction.clone(),
        disposition(r).to_string(),
        cell(c.final_code),
        cell(c.pdd_ms),
        cell(c.duration_ms),
        cell(c.rtp_packets),
        cell(c.rtp_lost),
        cell(c.rtp_jitter_ms),
        closed(r),
        cell(c.mos),
    ]
}

const COLUMNS: [&str; 14] = [
    "call_id",
    "start",
    "source",
    "destination",
    "direction",
    "disposition",
    "final_code",
    "pdd_ms",
    "duration_ms",
    "rtp_packets",
    "rtp_lost",
    "rtp_jitter_ms",
    "closed",
    "mos",
];

/// Where call rows go as calls end: streamed, so memory stays flat however large the file.
enum Rows {
    Table(std::io::StdoutLock<'static>),
    Csv(Box<csv::Writer<std::io::StdoutLock<'static>>>),
    Json { out: std::io::StdoutLock<'static>, first: bool },
    None,
}

const TABLE_HEADER: [&str; 14] = [
    "call-id",
    "start (UTC)",
    "source",
    "destination",
    "dir",
    "disposition",
    "code",
    "pdd ms",
    "dur ms",
    "rtp",
    "lost",
    "jitter",
    "closed",
    "mos",
];

fn table_line(out: &mut impl Write, r: &[String]) -> std::io::Result<()> {
    let id: String = r[0].chars().take(36).collect();
    writeln!(
        out,
        "{id:<36} {:<24} {:<13} {:<13} {:<8} {:<11} {:>4} {:>6} {:>8} {:>6} {:>4} {:>6} {:>4}",
        r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[13]
    )
}

impl Rows {
    fn open(args: &ProbeArgs) -> anyhow::Result<Rows> {
        let stdout = std::io::stdout().lock();
        Ok(if args.totals {
            Rows::None
        } else if args.json {
            let mut out = stdout;
            out.write_all(b"{\"calls\":[")?;
            Rows::Json { out, first: true }
        } else if args.csv {
            let mut w = csv::Writer::from_writer(stdout);
            w.write_record(COLUMNS)?;
            Rows::Csv(Box::new(w))
        } else {
            let mut out = stdout;
            table_line(&mut out, &TABLE_HEADER.map(String::from))?;
            Rows::Table(out)
        })
    }

    fn push(&mut self, c: &CallReport) -> anyhow::Result<()> {
        match self {
            Rows::Table(out) => table_line(out, &csv_row(c))?,
            Rows::Csv(w) => w.write_record(csv_row(c))?,
            Rows::Json { out, first } => {
                if !*first {
                    out.write_all(b",")?;
                }
                *first = false;
                serde_json::to_writer(&mut *out, &json_row(c)?)?;
            }
            Rows::None => {}
        }
        Ok(())
    }
}

/// Where `probe --pcap --ship` keeps its records.
struct ShipSpool {
    spool: Spool,
    /// When another process (a running server) holds the configured spool: its directory and
    /// who holds it. This run then writes a side spool of its own and hands over, at the end,
    /// whatever it could not ship.
    held_by_other: Option<(PathBuf, String)>,
}

impl ShipSpool {
    fn open(config: &Config) -> anyhow::Result<ShipSpool> {
        let main = config.spool_dir();
        let options = crate::roles::serve::spool_options(config, "tollgate probe --pcap --ship");
        match Spool::open(&main, options.clone()) {
            Ok(spool) => Ok(ShipSpool { spool, held_by_other: None }),
            Err(OpenError::InUse(held)) => {
                let spool = Spool::open_side(&main, options)?;
                tracing::info!(side = %spool.dir().display(), "spool directory {held}: this run spools beside it");
                Ok(ShipSpool { spool, held_by_other: Some((main, held.to_string())) })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ships what is left (every lane closed). What cannot be shipped stays in the spool, or,
    /// for a side spool, is handed over to the configured one, whose holder ships it later.
    fn finish(self, uplink: &dyn Uplink, options: &ShipperOptions, url: &str) -> anyhow::Result<u64> {
        let stats = ShipperStats::default();
        let mut shipped = 0;
        let failure = loop {
            match ship_pass(&self.spool, uplink, options, &stats) {
                Ok(0) => break None,
                Ok(n) => shipped += n,
                Err(e) => break Some(e),
            }
        };
        let handed_over = match &self.held_by_other {
            Some((main, _)) => Some(self.spool.hand_over(main)?),
            None => None,
        };
        let Some(e) = failure else { return Ok(shipped) };
        match (handed_over, &self.held_by_other) {
            (Some(moved), Some((main, holder))) => anyhow::bail!(
                "shipping to {url}: {e:?}; {shipped} call records were shipped, the rest ({} bytes) were handed over to \
                 {} ({holder}), which ships them when the collector answers",
                moved.bytes,
                main.display()
            ),
            _ => anyhow::bail!(
                "shipping to {url}: {e:?}; {shipped} call records were shipped, the rest stay in {} and ship later",
                self.spool.dir().display()
            ),
        }
    }
}

/// The collectors `probe --pcap --ship` sends to, and the ingest token.
fn collector(config: &Config) -> (Vec<String>, String) {
    let mut urls = config.shipper.collector_urls();
    if urls.is_empty() {
        urls.push(config.api_url());
    }
    let token = if config.shipper.token.is_empty() {
        std::fs::read_to_string(config.node.state_dir.join("ingest-token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    } else {
        config.shipper.token.clone()
    };
    (urls, token)
}

/// The capture files of `--pcap` (files, directories, globs), ordered by time; says so on
/// stderr when a single file looks like the first of a tcpdump `-C` rotation whose other files
/// were not given.
fn capture_set(args: &ProbeArgs) -> anyhow::Result<CaptureSet> {
    let files = resolve_inputs(&args.pcap)?;
    if let [only] = files.as_slice() {
        let siblings = rotation_siblings(only);
        if let Some(next) = siblings.first() {
            let more = match siblings.len() {
                1 => " looks".to_string(),
                n => format!(" and {} more look", n - 1),
            };
            eprintln!(
                "note: {}{more} like the rest of this capture (tcpdump -C names); calls that go on in them are \
                 reported open here. Read them all with --pcap '{}*' or the directory.",
                next.display(),
                only.display()
            );
        }
    }
    Ok(CaptureSet::open(&files)?)
}

/// Writes calls as the table `probe --pcap` prints (a header, a line per call).
pub fn write_table(out: &mut impl Write, calls: &[CallReport]) -> std::io::Result<()> {
    table_line(out, &TABLE_HEADER.map(String::from))?;
    for c in calls {
        table_line(out, &csv_row(c))?;
    }
    Ok(())
}

/// Runs `probe --pcap`.
pub fn run_pcap(config: &Config, args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let set = capture_set(args)?;
    if let Some(call_id) = &args.call {
        return crate::cmd::probe_call::run(config, args, &set, call_id);
    }
    let mut settings = crate::roles::probe::settings(config)?;
    if let Some(d) = &args.device {
        settings.device = d.clone();
    }
    let mut probe = Probe::new(settings);
    let reading = match set.files() {
        [one] => format!("reading {}", one.path.display()),
        files => format!("reading {} files", files.len()),
    };
    let bar = ProgressBar::new(set.total_bytes()).with_message(reading);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let spool = if args.ship { Some(ShipSpool::open(config)?) } else { None };
    // Shipping runs while the file is read, so the spool holds only what the collector has not
    // stored yet, not the whole file.
    let (urls, token) = collector(config);
    let url = urls.join(", ");
    let uplink = match &spool {
        Some(_) => {
            let material = crate::roles::tls::client_material(config)?;
            let tls = crate::roles::tls::client(material.as_ref(), RoleSet::of(&[tollgate_tls::Role::Collector]))?;
            Some(crate::roles::uplink::uplinks(&urls, token, tls.as_ref(), None, &config.shipper)?)
        }
        None => None,
    };
    let shipper = match (&spool, &uplink) {
        (Some(s), Some((u, options))) => Some(Shipper::start(s.spool.clone(), u.clone(), options.clone())?),
        _ => None,
    };
    let mut lane = spool.as_ref().map(|s| s.spool.lane("pcap")).transpose()?;
    let mut not_spooled = 0u64;
    let mut rows = Rows::open(args)?;
    let mut failure: Option<anyhow::Error> = None;
    let at_end = if args.finalize { AtEnd::Finalize } else { AtEnd::ReportOpen };
    let analysis = analyze_set(
        &set,
        &mut probe,
        at_end,
        |report| {
            // A call still open at the end is not final: it is not stored.
            if !report.open
                && let Some(lane) = lane.as_mut()
                && let Err(e) = lane.append(&Record::sip_call(report.record.clone()))
            {
                if not_spooled == 0 {
                    tracing::error!(error = %e, "cannot spool a call record (counted; the total is reported at the end)");
                }
                not_spooled += 1;
            }
            if failure.is_none()
                && let Err(e) = rows.push(&report)
            {
                failure = Some(e);
            }
        },
        |bytes| bar.set_position(bytes),
    )?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context("writing the calls"));
    }
    for f in analysis.files.iter().filter(|f| f.truncated) {
        eprintln!(
            "warning: {} ends inside a record (a capture cut short); the {} frames before it were read",
            f.path.display(),
            f.frames
        );
    }
    drop(lane);
    let counters = probe.counters().clone();
    let decode = analysis.decode;
    let totals = json!({
        "files": analysis.files.len(),
        "frames": analysis.frames,
        "truncated": analysis.truncated,
        "calls": counters.calls,
        "open": counters.open,
        "finalized": counters.finalized,
        "asr": counters.asr(),
        "ner": counters.ner(),
        "messages": counters.messages,
        "requests": counters.requests,
        "responses": counters.responses,
        "malformed": counters.malformed,
        "rtp_packets": counters.rtp_packets,
        "rtp_after_end": probe.tracker().stats().rtp_after_end,
        "rtp_unattributed": probe.tracker().stats().rtp_unattributed,
        "poor_quality_calls": counters.poor_quality_calls,
        "fragments_reassembled": decode.reassembled,
        "evicted": probe.tracker().stats().evicted,
        "tcp": probe.tcp().stats(),
    });
    match rows {
        Rows::Json { mut out, .. } => {
            out.write_all(b"],\"totals\":")?;
            serde_json::to_writer(&mut out, &totals)?;
            out.write_all(b"}\n")?;
        }
        Rows::Csv(mut w) => w.flush()?,
        Rows::Table(_) | Rows::None if args.totals && args.json => println!("{totals}"),
        Rows::Table(_) | Rows::None => {
            let mut out = std::io::stdout().lock();
            writeln!(out)?;
            let by = counters.calls.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            writeln!(out, "calls     {} ({by})", counters.total_calls())?;
            if counters.open > 0 {
                writeln!(
                    out,
                    "open      {} (still open at the end of the capture: no disposition, not in ASR/NER, not stored; \
                     --finalize closes them there and stores them)",
                    counters.open
                )?;
            }
            if counters.finalized > 0 {
                writeln!(
                    out,
                    "finalized {} of these calls were still open at the end and closed there with their disposition so \
                     far (--finalize)",
                    counters.finalized
                )?;
            }
            writeln!(
                out,
                "ASR       {:.1}%   NER {:.1}%   poor quality (MOS < {}) {}",
                counters.asr() * 100.0,
                counters.ner() * 100.0,
                config.probe.mos_poor.0,
                counters.poor_quality_calls
            )?;
            let reqs = counters.requests.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            let resps = counters.responses.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            writeln!(out, "messages  {} (requests: {reqs}; responses: {resps})", counters.messages)?;
            if analysis.files.len() > 1 {
                let merged = analysis.files.iter().filter(|f| f.merged).count();
                let merged =
                    if merged > 0 { format!("; {merged} overlapped in time and were merged") } else { "".into() };
                writeln!(out, "files     {} read as one capture in time order{merged}", analysis.files.len())?;
            }
            writeln!(
                out,
                "frames    {} (not IP {}, malformed {}, fragments {} reassembled into {}); SIP malformed {}; RTP {} \
                 (+{} after their call ended, {} before any SDP announced their endpoint)",
                analysis.frames,
                decode.not_ip,
                decode.malformed,
                decode.fragments,
                decode.reassembled,
                counters.malformed,
                counters.rtp_packets,
                probe.tracker().stats().rtp_after_end,
                probe.tracker().stats().rtp_unattributed
            )?;
            let tcp = probe.tcp().stats();
            if tcp.flows > 0 {
                writeln!(
                    out,
                    "tcp       {} flows ({} picked up mid-stream), {} messages; {} gaps, {} resyncs, {} bytes dropped, \
                     {} out of order, {} retransmitted bytes",
                    tcp.flows,
                    tcp.midstream,
                    tcp.messages,
                    tcp.gaps,
                    tcp.resyncs,
                    tcp.bytes_dropped,
                    tcp.out_of_order,
                    tcp.retransmitted_bytes
                )?;
            }
        }
    }

    if let (Some(spool), Some(uplink)) = (spool, uplink) {
        let mut shipped = 0;
        if let Some(s) = shipper {
            let stats = s.stats().clone();
            s.stop();
            shipped += stats.shipped.load(Ordering::Relaxed);
        }
        shipped += spool.finish(uplink.0.as_ref(), &uplink.1, &url)?;
        eprintln!("shipped {shipped} call records to {url}");
        if counters.open > 0 {
            eprintln!(
                "{} calls still open at the end of the capture were not stored (--finalize stores them)",
                counters.open
            );
        }
    }
    if not_spooled > 0 {
        anyhow::bail!("{not_spooled} call records could not be written to the spool (see the first error above)");
    }
    Ok(ExitCode::SUCCESS)
}
