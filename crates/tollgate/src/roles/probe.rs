//! The probe role: live sources feeding the probe, call records to the spool; with `[srp]`,
//! one chassis of a probe pair ([`crate::roles::probe_srp`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use prometheus_client::registry::Registry;
use tollgate_alarms::Alarms;
use tollgate_enum::metrics::RecordsNotWritten;
use tollgate_listener::ConnectionMetrics;
use tollgate_logthrottle::LogThrottle;
use tollgate_policy::InternalNumbers;
use tollgate_policy::VelocityTable;
use tollgate_probe::ladder::{CallMessages, LadderLimits, LadderStore};
use tollgate_probe::live::{CaptureState, HepTcpLimits, LiveProbe, LiveStats, Shared};
use tollgate_probe::metrics::ProbeCollector;
use tollgate_probe::tcp::TcpLimits;
use tollgate_probe::{CallsInProgress, Probe, ProbeSettings};
use tollgate_records::Record;
use tollgate_records::spool::Spool;
use tollgate_sip::dialog::TrackerConfig;

use crate::config::Config;
use crate::roles::probe_srp::{self, HepService};
use crate::roles::service_address::ServiceAddress;
use tollgate_srp::runtime::{LinkSecurity, SrpHandle};

/// The probe settings of a configuration.
pub fn settings(config: &Config) -> anyhow::Result<ProbeSettings> {
    let p = &config.probe;
    Ok(ProbeSettings {
        device: if p.device.is_empty() { config.node.name.clone() } else { p.device.clone() },
        plan: config.dialing_plan.clone(),
        internal: InternalNumbers::parse(&p.internal, &config.dialing_plan)
            .map_err(|e| anyhow!("probe.internal: {e}"))?,
        trunks: p.trunks.clone(),
        source: p.source,
        destination: p.destination,
        tracker: TrackerConfig {
            max_open: p.max_open_calls,
            setup_timeout_us: p.setup_timeout_secs as i64 * 1_000_000,
            idle_timeout_us: p.idle_timeout_secs as i64 * 1_000_000,
        },
        mos_poor: p.mos_poor.0,
        tcp: TcpLimits {
            max_flows: p.tcp_max_flows,
            max_flow_bytes: usize::try_from(p.tcp_max_flow_kb.saturating_mul(1 << 10)).unwrap_or(usize::MAX),
            max_total_bytes: usize::try_from(p.tcp_max_total_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            ..TcpLimits::default()
        },
    })
}

/// The store of recent calls' messages a configuration asks for (none: `ladder_calls = 0`).
pub fn ladder(config: &Config) -> Option<LadderStore> {
    let p = &config.probe;
    let total = usize::try_from(p.ladder_max_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    (p.ladder_calls > 0).then(|| LadderStore::new(LadderLimits::recent(p.ladder_calls, total)))
}

/// A call's messages as the API answers them.
pub fn call_messages(c: CallMessages) -> tollgate_api::probe::CallMessages {
    tollgate_api::probe::CallMessages {
        call_id: c.call_id,
        open: c.open,
        messages: c
            .messages
            .into_iter()
            .map(|m| tollgate_api::probe::CallMessage {
                time: chrono::DateTime::from_timestamp_micros(m.ts_us).unwrap_or_default(),
                src: m.src.to_string(),
                dst: m.dst.to_string(),
                transport: m.transport.to_string(),
                method: m.method().map(str::to_string),
                status: m.status(),
                first_line: m.first_line,
                text: m.text,
                truncated: m.truncated,
                retransmission: m.retransmission,
            })
            .collect(),
        dropped: c.dropped,
        dropped_at: c.dropped_at,
    }
}

/// Calls in progress go to the engine's session table (same process: `serve`), for the
/// `concurrent` policy condition.
struct TableHook(Arc<VelocityTable>);

impl CallsInProgress for TableHook {
    fn started(&self, source: tollgate_number::E164) {
        self.0.call_started(source);
    }

    fn ended(&self, source: tollgate_number::E164) {
        self.0.call_ended(source);
    }
}

/// One line per 10 s about call records the spool did not take; the others are counted.
static NOT_SPOOLED_LOG: LogThrottle = LogThrottle::new(10_000);

/// The running probe.
pub struct ProbeRole {
    /// Live sources (a standalone probe; with `[srp]` the SRP chassis runs them while Active).
    pub live: Option<LiveProbe>,
    /// The SRP chassis of a probe pair (with `[srp]`).
    pub srp: Option<(SrpHandle, tokio::sync::watch::Receiver<tollgate_srp::State>)>,
    /// The rolling summary of a probe pair's chassis (a standalone probe's runs with `live`).
    summary: Option<tokio::task::JoinHandle<()>>,
    /// Recent calls' messages, for `GET /api/v1/probe/calls/{call_id}/messages` (none:
    /// `probe.ladder_calls = 0`).
    pub calls: Option<tollgate_web::CallMessagesFn>,
    /// A probe without an engine in its process: its calls in progress published through
    /// Redis, with `[shared_counters]`.
    _shared: Option<tollgate_shared_counters::SharedCounters>,
    #[cfg(feature = "live-capture")]
    capture: Option<tollgate_probe::interface::InterfaceCapture>,
    /// The live sources' counters (the interface capture's drops, said at shutdown).
    stats: Arc<LiveStats>,
}

impl ProbeRole {
    /// Starts the configured sources; calls go to `spool` as records (those it does not take
    /// are counted in `not_written`). HEP/TCP connections are counted in `connections`
    /// (listener `hep_tcp`). Without an engine in this process (`in_progress` none) and with
    /// `[shared_counters]`, the calls in progress are published for engines elsewhere. With
    /// `chassis` (the link's security), this probe is one chassis of the `[srp]` pair: its
    /// mirror and HEP addresses are the pair's service addresses, bound only while Active
    /// ([`crate::roles::probe_srp`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: &Config,
        spool: &Spool,
        registry: &mut Registry,
        connections: &ConnectionMetrics,
        summary: Option<Duration>,
        in_progress: Option<Arc<VelocityTable>>,
        not_written: RecordsNotWritten,
        alarms: &Arc<Alarms>,
        chassis: Option<LinkSecurity>,
    ) -> anyhow::Result<ProbeRole> {
        let mut probe = Probe::new(settings(config)?);
        let mut shared_counters = None;
        let in_progress = match in_progress {
            Some(table) => Some(table),
            None if config.shared_counters.enabled() => {
                // Only calls in progress: no velocity counter is ever held here.
                let table = Arc::new(crate::roles::shared_counters::table(config, 16, false));
                shared_counters =
                    crate::roles::shared_counters::start(config, table.clone(), alarms, registry, false, true)?;
                Some(table)
            }
            None => None,
        };
        if let Some(table) = in_progress {
            probe = probe.with_calls_in_progress(Arc::new(TableHook(table)));
        }
        let keeps_calls = match ladder(config) {
            Some(store) => {
                probe = probe.with_ladder(store);
                true
            }
            None => false,
        };
        let probe = Arc::new(Mutex::new(probe));
        let calls: Option<tollgate_web::CallMessagesFn> = keeps_calls.then(|| {
            let probe = probe.clone();
            Arc::new(move |call_id: &str| {
                // Copied out under the lock; converted after it is released.
                let held = tollgate_probe::pipeline::lock(&probe).ladder().and_then(|l| l.call(call_id));
                held.map(call_messages)
            }) as tollgate_web::CallMessagesFn
        });
        let lane = Mutex::new(spool.lane("probe")?);
        let stats = Arc::new(LiveStats::default());
        let shared = Shared {
            probe: probe.clone(),
            sink: Arc::new(move |report| {
                let mut lane = lane.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = lane.append(&Record::sip_call(report.record)) {
                    let reason = not_written.count("SIP", &e);
                    if let Some(left_out) = NOT_SPOOLED_LOG.allow() {
                        tracing::error!(error = %e, reason, left_out, "cannot spool a call record (counted in tollgate_records_not_written_total)");
                    }
                }
            }),
            stats: stats.clone(),
        };
        registry.register_collector(Box::new(ProbeCollector { probe: probe.clone(), live: stats.clone() }));
        let p = &config.probe;
        let hep_tcp_limits = HepTcpLimits {
            max_connections: p.hep_tcp_max_connections,
            idle_timeout: Duration::from_secs(p.hep_tcp_idle_timeout_secs),
            stats: connections.listener("hep_tcp"),
        };
        if config.srp.is_some() && chassis.is_some() {
            if !p.interface.is_empty() {
                anyhow::bail!(
                    "probe.interface with [srp]: a probe pair receives on its service addresses (probe.hep_udp, probe.hep_tcp, probe.mirror); capture an interface with a standalone probe"
                );
            }
            if let Some(a) = p.mirror.iter().chain(&p.hep_udp).chain(&p.hep_tcp).find(|a| a.port() == 0) {
                anyhow::bail!(
                    "probe.hep_udp/hep_tcp/mirror {a}: with [srp] these are the probe pair's service addresses and need fixed ports"
                );
            }
        }
        // The interface first: a missing interface or a filter that does not compile ends the
        // start, naming it, before any socket is bound.
        #[cfg(feature = "live-capture")]
        let capture = if p.interface.is_empty() {
            None
        } else {
            let capture =
                tollgate_probe::interface::InterfaceCapture::start(shared.clone(), &interface_options(config))
                    .map_err(|e| anyhow!("probe.interface: {e}"))?;
            tracing::info!(interface = %p.interface, filter = %p.filter, buffer_mb = p.capture_buffer_mb, "capturing");
            Some(capture)
        };
        #[cfg(not(feature = "live-capture"))]
        check_interface(config)?;
        let udp_receive_buffer = (p.udp_receive_buffer_mb << 20) as usize;
        let sources = async {
            anyhow::Ok(match (&config.srp, chassis) {
                (Some(srp), Some(security)) => {
                    let ips = p.mirror.iter().chain(&p.hep_udp).chain(&p.hep_tcp).map(|a| a.ip());
                    let service = HepService::new(
                        shared.clone(),
                        (p.mirror.clone(), p.hep_udp.clone(), p.hep_tcp.clone()),
                        hep_tcp_limits,
                        udp_receive_buffer,
                        ServiceAddress::new(config.service_address.clone(), ips),
                    );
                    let started =
                        probe_srp::start(srp.clone(), service, alarms.clone(), config.node.name.clone(), security)
                            .await?;
                    let summary = summary.map(|every| tokio::spawn(print_summary(probe, stats.clone(), every)));
                    (None, Some(started), summary)
                }
                _ => {
                    let mut live = LiveProbe::start(
                        shared.clone(),
                        &p.mirror,
                        &p.hep_udp,
                        &p.hep_tcp,
                        hep_tcp_limits,
                        udp_receive_buffer,
                    )
                    .await?;
                    if let Some(every) = summary {
                        live.spawn(print_summary(probe, stats.clone(), every));
                    }
                    (Some(live), None, None)
                }
            })
        }
        .await;
        let (mut live, srp, summary) = match sources {
            Ok(sources) => sources,
            Err(e) => {
                // The capture thread must not go on feeding a probe that did not start.
                #[cfg(feature = "live-capture")]
                if let Some(capture) = capture {
                    capture.stop();
                }
                return Err(e);
            }
        };
        if !p.interface.is_empty()
            && let Some(live) = live.as_mut()
        {
            live.spawn(watch_capture(stats.clone(), alarms.clone(), config.node.name.clone()));
        }
        Ok(ProbeRole {
            live,
            srp,
            summary,
            calls,
            _shared: shared_counters,
            #[cfg(feature = "live-capture")]
            capture,
            stats,
        })
    }

    /// Stops the sources; says what the interface capture read and what the kernel dropped.
    pub async fn shutdown(self) {
        #[cfg(feature = "live-capture")]
        if let Some(capture) = self.capture {
            let _ = tokio::task::spawn_blocking(move || capture.stop()).await;
        }
        if let Some(line) = capture_line(&self.stats) {
            say!("{line}");
        }
        if let Some(summary) = self.summary {
            summary.abort();
        }
        if let Some((srp, _)) = self.srp {
            // Stopping the chassis releases the service addresses (the mate takes them).
            srp.stop().await;
        }
        if let Some(live) = self.live {
            live.shutdown().await;
        }
    }
}

/// The interface capture of a configuration.
#[cfg(feature = "live-capture")]
fn interface_options(config: &Config) -> tollgate_probe::interface::InterfaceOptions {
    let p = &config.probe;
    tollgate_probe::interface::InterfaceOptions {
        interface: p.interface.clone(),
        filter: p.filter.clone(),
        buffer_bytes: (p.capture_buffer_mb as usize) << 20,
    }
}

/// Whether the configured interface capture can start (the interface exists, the filter
/// compiles, capturing is permitted), checked before a start creates or prints anything.
pub fn check_interface(config: &Config) -> anyhow::Result<()> {
    if config.probe.interface.is_empty() {
        return Ok(());
    }
    #[cfg(feature = "live-capture")]
    {
        tollgate_probe::interface::check(&interface_options(config)).map_err(|e| anyhow!("probe.interface: {e}"))
    }
    #[cfg(not(feature = "live-capture"))]
    anyhow::bail!(
        "probe.interface ({}) needs a tollgate built with --features live-capture (libpcap)",
        config.probe.interface
    )
}

/// What the interface capture did, for people: `capture on eth1: 120 frames, 0 dropped by the
/// kernel`, and why it stopped if it did; none without an interface.
fn capture_line(stats: &LiveStats) -> Option<String> {
    let (interface, stopped) = match stats.capture_state() {
        CaptureState::None => return None,
        CaptureState::Running { interface } => (interface, None),
        CaptureState::Stopped { interface, error } => (interface, Some(error)),
    };
    let mut line = format!(
        "capture on {interface}: {} frames, {} dropped by the kernel",
        stats.captured.load(Ordering::Relaxed),
        stats.kernel_drops.load(Ordering::Relaxed)
    );
    if let Some(error) = stopped {
        line.push_str(&format!("; STOPPED: {error}"));
    }
    Some(line)
}

/// Raises PROBE_CAPTURE_STOPPED (scope `<node>/<interface>`) once the interface capture has
/// stopped by itself. It stays raised: the capture does not come back without a restart.
async fn watch_capture(stats: Arc<LiveStats>, alarms: Arc<Alarms>, node: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let CaptureState::Stopped { interface, error } = stats.capture_state() {
            alarms.raise(
                tollgate_alarms::PROBE_CAPTURE_STOPPED,
                &format!("{node}/{interface}"),
                format!("the capture on interface {interface} stopped: {error}"),
            );
            return;
        }
    }
}

/// Prints a rolling summary line every `every`: message rate, calls by disposition, ASR, NER,
/// open calls, drops at the mirror and HEP sockets, and the interface capture's frames and
/// kernel drops.
async fn print_summary(probe: Arc<Mutex<Probe>>, stats: Arc<LiveStats>, every: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last_messages = 0;
    loop {
        tick.tick().await;
        let (counters, open, evicted) = {
            let p = tollgate_probe::pipeline::lock(&probe);
            (p.counters().clone(), p.tracker().open_calls(), p.tracker().stats().evicted)
        };
        let rate = (counters.messages - last_messages) as f64 / every.as_secs_f64();
        last_messages = counters.messages;
        let by = counters.calls.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let socket_drops = stats.socket_drops.load(Ordering::Relaxed);
        let capture = match capture_line(&stats) {
            Some(line) => format!("  {line}"),
            None => String::new(),
        };
        say!(
            "probe {:>6}s  {rate:>8.1} msg/s  calls {} ({by})  ASR {:.1}%  NER {:.1}%  open {open}  evicted {evicted}  malformed {}  socket drops {socket_drops}{capture}",
            started.elapsed().as_secs(),
            counters.total_calls(),
            counters.asr() * 100.0,
            counters.ner() * 100.0,
            counters.malformed,
        );
    }
}
