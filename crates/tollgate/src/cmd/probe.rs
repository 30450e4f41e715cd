//! `tollgate probe --pcap FILE`: the calls in a capture file, streamed as they end (a table, CSV
//! or JSON), with totals; optionally stored as records and shipped to the collector.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use tollgate_tls::RoleSet;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tollgate_probe::analyze::analyze;
use tollgate_probe::{CallReport, Probe};
use tollgate_records::Record;
use tollgate_records::ship::{Shipper, ShipperOptions, ShipperStats, Uplink, ship_pass};
use tollgate_records::spool::{OpenError, Spool};

use crate::cli::ProbeArgs;
use crate::config::Config;

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn csv_row(r: &CallReport) -> Vec<String> {
    let c = &r.record;
    vec![
        c.call_id.clone(),
        c.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        cell(c.source),
        cell(c.destination),
        c.direction.clone(),
        c.disposition.as_str().to_string(),
        cell(c.final_code),
        cell(c.pdd_ms),
        cell(c.duration_ms),
        cell(c.rtp_packets),
        cell(c.rtp_lost),
        cell(c.rtp_jitter_ms),
        format!("{:?}", r.call.closed).to_lowercase(),
    ]
}

const COLUMNS: [&str; 13] = [
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
];

/// Where call rows go as calls end: streamed, so memory stays flat however large the file.
enum Rows {
    Table(std::io::StdoutLock<'static>),
    Csv(Box<csv::Writer<std::io::StdoutLock<'static>>>),
    Json { out: std::io::StdoutLock<'static>, first: bool },
    None,
}

const TABLE_HEADER: [&str; 12] = [
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
];

fn table_line(out: &mut impl Write, r: &[String]) -> std::io::Result<()> {
    let id: String = r[0].chars().take(36).collect();
    writeln!(
        out,
        "{id:<36} {:<24} {:<13} {:<13} {:<8} {:<11} {:>4} {:>6} {:>8} {:>6} {:>4} {:>6}",
        r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]
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
                serde_json::to_writer(&mut *out, &c.record)?;
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

/// Runs `probe --pcap`.
pub fn run_pcap(config: &Config, args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let path = args.pcap.as_ref().context("--pcap FILE is needed")?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut settings = crate::roles::probe::settings(config)?;
    if let Some(d) = &args.device {
        settings.device = d.clone();
    }
    let mut probe = Probe::new(settings);
    let bar = ProgressBar::new(size).with_message(format!("reading {}", path.display()));
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
    let analysis = analyze(
        BufReader::with_capacity(1 << 20, file),
        &mut probe,
        |report| {
            if let Some(lane) = lane.as_mut()
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
    )
    .with_context(|| format!("{}", path.display()))?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context("writing the calls"));
    }
    if analysis.truncated {
        eprintln!(
            "warning: {} ends inside a record (a capture cut short); the {} frames before it were read",
            path.display(),
            analysis.frames
        );
    }
    drop(lane);
    let counters = probe.counters().clone();
    let decode = analysis.decode;
    let totals = json!({
        "frames": analysis.frames,
        "truncated": analysis.truncated,
        "calls": counters.calls,
        "asr": counters.asr(),
        "ner": counters.ner(),
        "messages": counters.messages,
        "requests": counters.requests,
        "responses": counters.responses,
        "malformed": counters.malformed,
        "rtp_packets": counters.rtp_packets,
        "rtp_after_end": probe.tracker().stats().rtp_after_end,
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
            writeln!(out, "ASR       {:.1}%   NER {:.1}%", counters.asr() * 100.0, counters.ner() * 100.0)?;
            let reqs = counters.requests.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            let resps = counters.responses.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            writeln!(out, "messages  {} (requests: {reqs}; responses: {resps})", counters.messages)?;
            writeln!(
                out,
                "frames    {} (not IP {}, malformed {}, fragments {} reassembled into {}); SIP malformed {}; RTP {} \
                 (+{} after their call ended)",
                analysis.frames,
                decode.not_ip,
                decode.malformed,
                decode.fragments,
                decode.reassembled,
                counters.malformed,
                counters.rtp_packets,
                probe.tracker().stats().rtp_after_end
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
    }
    if not_spooled > 0 {
        anyhow::bail!("{not_spooled} call records could not be written to the spool (see the first error above)");
    }
    Ok(ExitCode::SUCCESS)
}
