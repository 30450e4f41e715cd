//! The tollgate configuration file: sections, defaults, loading with errors naming file, line
//! and field.

#![warn(missing_docs)]

pub mod agent;
pub mod duration;
pub mod log;
pub mod manager;
pub mod migrate;
pub mod problems;
pub mod reference;
pub mod service_address;
pub mod shared_counters;
pub mod tls;

pub use problems::{ConfigError, Problem};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tollgate_enum::EnumConfig;
use tollgate_number::DialingPlan;

/// The embedded default configuration (also the reference documentation of every option).
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

/// `[node]`: this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This server's name (the analytics "Device").
    pub name: String,
    /// Policies, history and spool live here.
    pub state_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig { name: "tollgate-1".into(), state_dir: PathBuf::from("tollgate-data") }
    }
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token required for changes.
    pub token: Option<String>,
    /// Most HTTP connections open at once on each HTTP listener of the process (API and UI,
    /// manager, agent); more are refused with 503.
    pub max_connections: usize,
    /// Seconds after which an HTTP connection that makes no progress is closed (keep-alive
    /// idle, unfinished request headers, a stalled body). `idle_timeout = "1m"` (before
    /// config_version 2: `idle_timeout_secs = 60`).
    #[serde(rename = "idle_timeout", alias = "idle_timeout_secs", with = "duration::secs")]
    pub idle_timeout_secs: u64,
    /// The URL of the manager console that manages this server (`https://manager:8080`). When
    /// set, this server's web UI is read-only (Dashboard, Analytics, Alarms, the policy in force
    /// and its history) and links there: policies change on the console, for every engine
    /// cluster at once. The API is unchanged (the manager installs through it).
    pub console: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_connections: 256,
            idle_timeout_secs: 60,
            console: None,
        }
    }
}

impl ApiConfig {
    /// The limits of the HTTP listeners.
    pub fn http_limits(&self) -> tollgate_listener::HttpLimits {
        tollgate_listener::HttpLimits {
            max_connections: self.max_connections,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// `[spool]`: the local record spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool directory (default `<state_dir>/spool`).
    pub dir: Option<PathBuf>,
    /// Segment size before rotation, MiB (1 to 1024).
    pub segment_mb: u64,
    /// fsync interval, milliseconds.
    pub fsync_ms: u64,
    /// Most records not yet acknowledged by the collector the spool may hold, MiB (0: no
    /// limit). Disk use stays below this plus one segment per lane.
    pub max_disk_mb: u64,
    /// Unacknowledged records above which SPOOL_NEAR_FULL is raised, percent of `max_disk_mb`.
    pub near_full_percent: u8,
    /// RECORDS_LATE is raised while the oldest record not yet acknowledged by the collector is
    /// older than this, seconds (0: never).
    pub late_after_secs: u64,
}

impl SpoolConfig {
    /// Largest `segment_mb`: the shipper reads the unsent part of a segment into memory.
    pub const MAX_SEGMENT_MB: u64 = 1024;

    /// Checks each field on its own; problems name the field and the value.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if !(1..=Self::MAX_SEGMENT_MB).contains(&self.segment_mb) {
            out.push(Problem::new(
                "spool.segment_mb",
                format!("must be between 1 and {} (is {})", Self::MAX_SEGMENT_MB, self.segment_mb),
            ));
        }
        if self.fsync_ms == 0 {
            out.push(Problem::new("spool.fsync_ms", "must be above 0"));
        }
        if self.max_disk_mb.checked_mul(1 << 20).is_none() {
            out.push(Problem::new("spool.max_disk_mb", format!("is too large ({} MiB)", self.max_disk_mb)));
        }
        if !(1..=100).contains(&self.near_full_percent) {
            out.push(Problem::new(
                "spool.near_full_percent",
                format!("must be between 1 and 100 (is {})", self.near_full_percent),
            ));
        }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            segment_mb: 64,
            fsync_ms: 200,
            max_disk_mb: 1024,
            near_full_percent: 80,
            late_after_secs: 300,
        }
    }
}

/// `[shipper]`: where records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipperConfig {
    /// The collector's API URL. Empty: this process's own API when it runs the collector
    /// (`serve`), otherwise records stay in the spool.
    pub collector: String,
    /// Several collectors' API URLs (instead of `collector`): batches are spread over the
    /// healthy ones, and a failing one is skipped and retried with backoff.
    pub collectors: Vec<String>,
    /// Ingest token; empty: read `<state_dir>/ingest-token`.
    pub token: String,
    /// Most records per batch.
    pub batch_records: usize,
    /// Batches in flight to each collector at once (pipelining), 1 to 16.
    pub in_flight: usize,
    /// Batch compression for collectors that read it: `zstd` or `none`.
    pub compression: Compression,
}

/// `[shipper] compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd, to collectors that say they read it (`Accept-Encoding: zstd`).
    Zstd,
    /// Never compress.
    None,
}

/// Most batches in flight to one collector.
pub const MAX_IN_FLIGHT: usize = 16;

impl Default for ShipperConfig {
    fn default() -> Self {
        ShipperConfig {
            collector: String::new(),
            collectors: Vec::new(),
            token: String::new(),
            batch_records: 2000,
            in_flight: 2,
            compression: Compression::Zstd,
        }
    }
}

impl ShipperConfig {
    /// The collectors' URLs: `collectors`, or `collector` alone; empty when neither is set.
    pub fn collector_urls(&self) -> Vec<String> {
        match (self.collector.is_empty(), self.collectors.is_empty()) {
            (_, false) => self.collectors.clone(),
            (false, true) => vec![self.collector.clone()],
            (true, true) => Vec::new(),
        }
    }

    /// Appends what is wrong in `[shipper]` to `out`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if !self.collector.is_empty() && !self.collectors.is_empty() {
            out.push(Problem::new(
                "shipper.collectors",
                "set either shipper.collector (one collector) or shipper.collectors (several), not both",
            ));
        }
        for (i, url) in self.collectors.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                out.push(Problem::new(
                    "shipper.collectors",
                    format!("entry {} ({url:?}) is not an http:// or https:// URL", i + 1),
                ));
            } else if self.collectors[..i].contains(url) {
                out.push(Problem::new("shipper.collectors", format!("{url} is listed twice")));
            }
        }
        if self.batch_records == 0 {
            out.push(Problem::new("shipper.batch_records", "must be above 0"));
        }
        check_range(out, "shipper.in_flight", self.in_flight as u64, 1, MAX_IN_FLIGHT as u64);
    }
}

/// `[collector]`: the record store and its upkeep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// `sqlite:PATH` or `postgres://user:password@host/db`; empty: `<state_dir>/records.db`.
    /// PostgreSQL over TLS: `?sslmode=verify-full&sslrootcert=/etc/tollgate/pg-ca.pem` (libpq's
    /// `sslmode`: disable, prefer (default), require, verify-ca, verify-full; client certificate:
    /// `sslcert=`, `sslkey=`).
    pub store: String,
    /// How long data is kept.
    pub retention: tollgate_store::Retention,
    /// Minutes between retention runs (and statistics refreshes): `maintenance_interval = "1h"`
    /// (before config_version 2: `maintenance_minutes = 60`).
    #[serde(rename = "maintenance_interval", alias = "maintenance_minutes", with = "duration::minutes")]
    pub maintenance_minutes: u64,
    /// Most disk the quarantine of invalid received lines may use, MiB (0: no limit).
    pub quarantine_max_mb: u64,
    /// A SQLite store's page cache, MiB: the writing connection's; the reading connection
    /// keeps half as much. Most of the memory a busy SQLite store holds (1 to
    /// [`MAX_SQLITE_CACHE_MB`]; unused with PostgreSQL).
    pub sqlite_cache_mb: u32,
}

/// The largest `collector.sqlite_cache_mb`, MiB (64 GiB).
pub const MAX_SQLITE_CACHE_MB: u32 = 65_536;

impl CollectorConfig {
    /// The SQLite store's options from this section.
    pub fn sqlite_options(&self) -> tollgate_store::sqlite::SqliteOptions {
        tollgate_store::sqlite::SqliteOptions { cache_mb: self.sqlite_cache_mb, ..Default::default() }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            store: String::new(),
            retention: tollgate_store::Retention::default(),
            maintenance_minutes: 60,
            quarantine_max_mb: 1024,
            sqlite_cache_mb: tollgate_store::sqlite::DEFAULT_CACHE_MB,
        }
    }
}

/// `[probe]`: the SIP meta-data probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// The probe's name in records (the analytics "Device"); empty: `node.name`.
    pub device: String,
    /// Internal number ranges: `+1212555*` prefixes or `+12125550000-+12125550999` spans.
    pub internal: Vec<String>,
    /// Carrier trunk networks: INVITEs from them are inbound, to them outbound.
    pub trunks: Vec<ipnet::IpNet>,
    /// Caller number from `pai-then-from` (P-Asserted-Identity, else From) or `from`.
    pub source: tollgate_probe::pipeline::SourceHeader,
    /// Called number from `request-uri` or `to`.
    pub destination: tollgate_probe::pipeline::DestinationPart,
    /// UDP ports receiving mirrored SIP datagrams.
    pub mirror: Vec<SocketAddr>,
    /// HEP over UDP (Kamailio siptrace, OpenSIPS, heplify).
    pub hep_udp: Vec<SocketAddr>,
    /// HEP over TCP.
    pub hep_tcp: Vec<SocketAddr>,
    /// Most HEP/TCP senders connected at once, per listener.
    pub hep_tcp_max_connections: usize,
    /// Seconds after which a HEP/TCP sender that sends nothing is disconnected
    /// (`hep_tcp_idle_timeout`; before config_version 2 `hep_tcp_idle_timeout_secs`).
    #[serde(rename = "hep_tcp_idle_timeout", alias = "hep_tcp_idle_timeout_secs", with = "duration::secs")]
    pub hep_tcp_idle_timeout_secs: u64,
    /// Receive buffer asked for on each UDP socket (mirror and HEP), MiB, 1 to 1024: room for
    /// a burst while the probe works. Set with SO_RCVBUFFORCE as root, else SO_RCVBUF, which
    /// the kernel caps at `net.core.rmem_max`; what was granted is logged and exported.
    pub udp_receive_buffer_mb: u64,
    /// A network interface to capture from (needs the `live-capture` build feature and root).
    pub interface: String,
    /// BPF filter for the interface (libpcap syntax, applied in the kernel); empty: every frame.
    pub filter: String,
    /// libpcap's kernel buffer for the interface, MiB (1 to 2047): what a burst may fill while
    /// the probe is busy before the kernel drops packets (counted in
    /// `tollgate_probe_kernel_drops_total`).
    pub capture_buffer_mb: u32,
    /// Most calls tracked at once.
    pub max_open_calls: usize,
    /// Seconds before an unanswered call is closed as no answer (`setup_timeout`; before
    /// config_version 2 `setup_timeout_secs`).
    #[serde(rename = "setup_timeout", alias = "setup_timeout_secs", with = "duration::secs")]
    pub setup_timeout_secs: u64,
    /// Seconds without a message before an answered call is closed (`idle_timeout`; before
    /// config_version 2 `idle_timeout_secs`).
    #[serde(rename = "idle_timeout", alias = "idle_timeout_secs", with = "duration::secs")]
    pub idle_timeout_secs: u64,
    /// A call with an RTP stream whose estimated MOS (1 to 4.5) is below this is counted as
    /// of poor quality, 1.0 to 4.5.
    pub mos_poor: Score,
    /// Finished calls whose SIP messages are kept for their ladder (`GET
    /// /api/v1/probe/calls/{call_id}/messages`), the most recent ones, besides the calls open
    /// now; 0 keeps none (open calls neither). Up to 1,000,000.
    pub ladder_calls: usize,
    /// Memory for the kept messages, MiB (texts cut at 4 KiB per message, 200 messages per
    /// call); past it the oldest calls' messages are dropped first (counted in
    /// `tollgate_probe_ladder_calls_dropped_total`). 1 to 65,536.
    pub ladder_max_mb: u64,
    /// SIP over TCP: most flows (one per direction of a connection) reassembled at once; past
    /// it the least recently active is evicted (`tollgate_probe_tcp_flows_evicted_total`). 16 to
    /// 16,777,216.
    pub tcp_max_flows: usize,
    /// SIP over TCP: most bytes held per flow (a partial message and out-of-order segments),
    /// KiB; also the largest message reassembled (larger ones are dropped and counted in
    /// `tollgate_probe_tcp_oversized_total`). 1 to 65,536, at most `tcp_max_total_mb`.
    pub tcp_max_flow_kb: u64,
    /// SIP over TCP: most bytes held by all flows together, MiB; past it the least recently
    /// active flows are evicted. 1 to 65,536.
    pub tcp_max_total_mb: u64,
}

/// A score written as a decimal number (a MOS threshold), compared bit for bit so that the
/// configuration can be compared for equality.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Score {}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            device: String::new(),
            internal: vec!["+1212555*".into()],
            trunks: Vec::new(),
            source: Default::default(),
            destination: Default::default(),
            mirror: Vec::new(),
            hep_udp: vec![SocketAddr::from(([127, 0, 0, 1], 9060))],
            hep_tcp: vec![SocketAddr::from(([127, 0, 0, 1], 9060))],
            hep_tcp_max_connections: 64,
            hep_tcp_idle_timeout_secs: 300,
            udp_receive_buffer_mb: 32,
            interface: String::new(),
            filter: "udp or tcp".into(),
            capture_buffer_mb: 32,
            max_open_calls: 200_000,
            setup_timeout_secs: 180,
            idle_timeout_secs: 4 * 3600,
            mos_poor: Score(tollgate_probe::pipeline::DEFAULT_MOS_POOR),
            ladder_calls: 1000,
            ladder_max_mb: 64,
            tcp_max_flows: 65_536,
            tcp_max_flow_kb: 256,
            tcp_max_total_mb: 64,
        }
    }
}

impl ProbeConfig {
    /// Largest `udp_receive_buffer_mb`: Linux takes at most `INT_MAX / 2` bytes.
    pub const MAX_UDP_RECEIVE_BUFFER_MB: u64 = 1024;
}

/// The largest `probe.capture_buffer_mb`, MiB: libpcap takes the size in bytes as a C int.
pub const MAX_CAPTURE_BUFFER_MB: u32 = 2047;

/// Largest accepted connection limit of a listener.
const MAX_CONNECTIONS: u64 = 1_000_000;
/// Longest accepted idle timeout of a connection, seconds (a day).
const MAX_IDLE_SECS: u64 = 86_400;

/// A problem naming `field` unless `min <= value <= max`.
fn check_range(out: &mut Vec<Problem>, field: &str, value: u64, min: u64, max: u64) {
    if value < min || value > max {
        out.push(Problem::new(field, format!("is {value}; it must be between {min} and {max}")));
    }
}

/// The version of a configuration without `config_version`.
fn first_version() -> u32 {
    migrate::FIRST_VERSION
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `config_version`: the format the file is written in (absent: the format of the release
    /// before versions were written, [`migrate::FIRST_VERSION`]). `tollgate config migrate`
    /// ports a file to [`migrate::CURRENT_VERSION`].
    #[serde(default = "first_version")]
    pub config_version: u32,
    /// `[node]`.
    pub node: NodeConfig,
    /// `[dialing_plan]`.
    pub dialing_plan: DialingPlan,
    /// `[enum]`.
    #[serde(rename = "enum")]
    pub enum_: EnumConfig,
    /// `[sip_redirect]`: the engine's SIP redirect server (no listen address: none).
    pub sip_redirect: tollgate_sip_redirect::RedirectConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[spool]`.
    pub spool: SpoolConfig,
    /// `[shipper]`.
    pub shipper: ShipperConfig,
    /// `[collector]`.
    pub collector: CollectorConfig,
    /// `[srp]`: this engine is one chassis of an SRP pair (absent: a standalone engine). For
    /// `tollgate probe`, this probe is one chassis of a probe pair: `probe.hep_udp`,
    /// `probe.hep_tcp` and `probe.mirror` are the pair's service addresses, bound only by the
    /// Active (in `tollgate serve`, `[srp]` is the engine's).
    pub srp: Option<tollgate_srp::SrpConfig>,
    /// `[service_address]`: how an SRP pair moves its service address (an engine pair's ENUM
    /// address, a probe pair's HEP and mirror addresses).
    pub service_address: service_address::ServiceAddressConfig,
    /// `[agent]`: `tollgate agent` on this server.
    pub agent: Option<agent::AgentConfig>,
    /// `[manager]`: `tollgate manager` on this server.
    pub manager: Option<manager::ManagerConfig>,
    /// `[probe]`.
    pub probe: ProbeConfig,
    /// `[shared_counters]`: velocity counts and calls in progress shared through Redis.
    pub shared_counters: shared_counters::SharedCountersConfig,
    /// `[tls]`: certificates for every link (absent: plain HTTP, loopback only).
    pub tls: tls::TlsConfig,
    /// `[log]`: the format and filter of the log on standard error.
    pub log: log::LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config_version: migrate::CURRENT_VERSION,
            node: NodeConfig::default(),
            dialing_plan: DialingPlan::default(),
            enum_: EnumConfig::default(),
            sip_redirect: tollgate_sip_redirect::RedirectConfig::default(),
            api: ApiConfig::default(),
            spool: SpoolConfig::default(),
            shipper: ShipperConfig::default(),
            collector: CollectorConfig::default(),
            srp: None,
            service_address: service_address::ServiceAddressConfig::default(),
            agent: None,
            manager: None,
            probe: ProbeConfig::default(),
            shared_counters: shared_counters::SharedCountersConfig::default(),
            tls: tls::TlsConfig::default(),
            log: log::LogConfig::default(),
        }
    }
}

impl Config {
    /// A SIP redirect listen address that is also an ENUM one (same protocol, a fixed port):
    /// the second bind would fail at start; said here, naming both fields.
    fn sip_redirect_address_problems(&self, out: &mut Vec<Problem>) {
        let pairs = [
            ("listen_udp", &self.sip_redirect.listen_udp, &self.enum_.listen_udp),
            ("listen_tcp", &self.sip_redirect.listen_tcp, &self.enum_.listen_tcp),
        ];
        for (field, sip, enum_) in pairs {
            for a in sip.iter().filter(|a| a.port() != 0 && enum_.contains(a)) {
                out.push(Problem::new(
                    format!("sip_redirect.{field}"),
                    format!("{a} is also in enum.{field}: one address serves one protocol"),
                ));
            }
        }
        // A TLS address is a TCP socket too.
        let tls = &self.sip_redirect.listen_tls;
        for (other, addrs) in
            [("sip_redirect.listen_tcp", &self.sip_redirect.listen_tcp), ("enum.listen_tcp", &self.enum_.listen_tcp)]
        {
            for a in tls.iter().filter(|a| a.port() != 0 && addrs.contains(a)) {
                out.push(Problem::new(
                    "sip_redirect.listen_tls",
                    format!("{a} is also in {other}: one TCP address serves one protocol"),
                ));
            }
        }
        if !tls.is_empty() && !self.tls.enabled() {
            out.push(Problem::new(
                "sip_redirect.listen_tls",
                "needs [tls] cert, key and ca: the certificate SIP over TLS presents",
            ));
        }
    }

    /// Loads a configuration file, or the embedded default when `path` is `None`. Relative
    /// paths in a file are made relative to the file's directory.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let (label, text, base) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (p.display().to_string(), text, base)
            }
            None => ("(embedded default configuration)".to_string(), DEFAULT_CONFIG.to_string(), PathBuf::new()),
        };
        let mut config = Config::parse(&label, &text)?;
        config.resolve_paths(&base);
        Ok(config)
    }

    /// Parses and validates configuration text. Every problem is reported, each with `label`,
    /// the line and the field.
    pub fn parse(label: &str, text: &str) -> Result<Config, ConfigError> {
        let diagnostic = |line: Option<usize>, field: &str, message: &str| tollgate_policy::Diagnostic {
            file: label.to_string(),
            line,
            field: field.to_string(),
            message: message.to_string(),
        };
        if let Err(e) = toml_edit::Document::parse(text) {
            let line = e.span().map(|s| problems::line_of(text, s.start));
            return Err(ConfigError { diagnostics: vec![diagnostic(line, "", e.message().trim())] });
        }
        let locator = problems::Locator::new(text);
        // Values of the wrong type or unknown keys: each is reported, then blanked out (spaces,
        // so offsets and lines stay) and the rest read again, so every one is found at once.
        let mut diagnostics = Vec::new();
        let mut blanked: Vec<String> = Vec::new();
        let mut work = text.to_string();
        let config = loop {
            match toml::from_str::<Config>(&work) {
                Ok(config) => break Some(config),
                Err(e) => {
                    let message = e.message().trim().to_string();
                    let at = e.span().map(|s| s.start);
                    let field = at.and_then(|at| locator.path_at(at)).unwrap_or_default();
                    let missing = missing_field(&message);
                    // Missing only because an entry in it was blanked: already reported.
                    let because_blanked = missing.is_some_and(|m| {
                        let gone = if field.is_empty() { m.to_string() } else { format!("{field}.{m}") };
                        blanked.iter().any(|b| {
                            b.strip_prefix(&gone).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
                        })
                    });
                    if !because_blanked {
                        diagnostics.push(diagnostic(at.map(|at| problems::line_of(text, at)), &field, &message));
                    }
                    // A missing field: the table it is missing from goes; otherwise the entry.
                    let span = (!field.is_empty()).then(|| locator.entry_span(&field)).flatten();
                    match span {
                        Some(span) if diagnostics.len() < 100 && !blanked.contains(&field) => {
                            problems::blank(&mut work, span);
                            blanked.push(field);
                        }
                        _ => break None,
                    }
                }
            }
        };
        let mut problems = Vec::new();
        if let Some(config) = &config
            && let Err(p) = config.validate()
        {
            problems = p;
        }
        for p in problems {
            if blanked.iter().any(|b| p.field == *b || p.field.starts_with(&format!("{b}."))) {
                continue;
            }
            // A field the file sets under the name of an earlier release is named so.
            let field = if locator.has(&p.field) {
                p.field.clone()
            } else {
                migrate::old_names(&p.field).find(|old| locator.has(old)).map_or(p.field.clone(), str::to_string)
            };
            diagnostics.push(diagnostic(locator.line(&field), &field, &p.message));
        }
        if !diagnostics.is_empty() {
            diagnostics.sort_by_key(|d| d.line.unwrap_or(usize::MAX));
            return Err(ConfigError { diagnostics });
        }
        Ok(config.expect("no problems means the configuration was read"))
    }

    /// Checks every section, `[agent]` and `[manager]` included, and how they fit together.
    /// Every problem is returned, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut out = Vec::new();
        if self.config_version > migrate::CURRENT_VERSION || self.config_version < migrate::FIRST_VERSION {
            out.push(Problem::new(
                "config_version",
                format!(
                    "{} is not a version this release reads ({} to {}); a later release wrote this file",
                    self.config_version,
                    migrate::FIRST_VERSION,
                    migrate::CURRENT_VERSION
                ),
            ));
        }
        if let Err(e) = tollgate_records::check_device_name(&self.node.name) {
            out.push(Problem::new("node.name", e.to_string()));
        }
        if let Err(e) = self.dialing_plan.validate() {
            let message = e.to_string();
            let message = message.strip_prefix("invalid dialing plan: ").unwrap_or(&message).to_string();
            let known = ["country_code", "national_prefix", "international_prefix", "national_number_lengths"];
            let field = known
                .iter()
                .find(|f| message.starts_with(*f))
                .map_or("dialing_plan".to_string(), |f| format!("dialing_plan.{f}"));
            out.push(Problem::new(field, message));
        }
        if let Err(e) = self.enum_.validate() {
            out.push(Problem::new(format!("enum.{}", e.field), e.message));
        }
        for check in [self.sip_redirect.validate(), self.sip_redirect.validate_listeners()] {
            if let Err(e) = check {
                out.push(Problem::new(format!("sip_redirect.{}", e.field), e.message));
            }
        }
        self.sip_redirect_address_problems(&mut out);
        check_range(&mut out, "api.max_connections", self.api.max_connections as u64, 1, MAX_CONNECTIONS);
        check_range(&mut out, "api.idle_timeout", self.api.idle_timeout_secs, 1, MAX_IDLE_SECS);
        if let Some(url) = &self.api.console
            && !console_url_ok(url)
        {
            out.push(Problem::new(
                "api.console",
                format!("{url:?} is not an http:// or https:// URL of the manager console (https://host:port)"),
            ));
        }
        check_range(
            &mut out,
            "collector.sqlite_cache_mb",
            u64::from(self.collector.sqlite_cache_mb),
            1,
            u64::from(MAX_SQLITE_CACHE_MB),
        );
        self.spool.problems(&mut out);
        self.shipper.problems(&mut out);
        self.tls.problems(&mut out);
        self.shared_counters.problems(&mut out, self.tls.allow_plaintext);
        if !self.probe.device.is_empty()
            && let Err(e) = tollgate_records::check_device_name(&self.probe.device)
        {
            out.push(Problem::new("probe.device", e.to_string()));
        }
        if let Err(e) = tollgate_policy::InternalNumbers::parse(&self.probe.internal, &self.dialing_plan) {
            out.push(Problem::new("probe.internal", e.to_string()));
        }
        if self.probe.max_open_calls == 0 {
            out.push(Problem::new("probe.max_open_calls", "must be above 0"));
        }
        check_range(
            &mut out,
            "probe.hep_tcp_max_connections",
            self.probe.hep_tcp_max_connections as u64,
            1,
            MAX_CONNECTIONS,
        );
        check_range(&mut out, "probe.hep_tcp_idle_timeout", self.probe.hep_tcp_idle_timeout_secs, 1, MAX_IDLE_SECS);
        let mos_poor = self.probe.mos_poor.0;
        if !(mos_poor.is_finite() && (1.0..=4.5).contains(&mos_poor)) {
            out.push(Problem::new(
                "probe.mos_poor",
                format!(
                    "is {mos_poor}; it must be a MOS between 1.0 and 4.5 (3.6: below it many users are dissatisfied)"
                ),
            ));
        }
        check_range(&mut out, "probe.ladder_calls", self.probe.ladder_calls as u64, 0, 1_000_000);
        check_range(&mut out, "probe.ladder_max_mb", self.probe.ladder_max_mb, 1, 65_536);
        check_range(&mut out, "probe.tcp_max_flows", self.probe.tcp_max_flows as u64, 16, 16_777_216);
        check_range(&mut out, "probe.tcp_max_flow_kb", self.probe.tcp_max_flow_kb, 1, 65_536);
        check_range(&mut out, "probe.tcp_max_total_mb", self.probe.tcp_max_total_mb, 1, 65_536);
        if self.probe.tcp_max_total_mb > 0
            && self.probe.tcp_max_flow_kb > self.probe.tcp_max_total_mb.saturating_mul(1024)
        {
            out.push(Problem::new(
                "probe.tcp_max_flow_kb",
                format!(
                    "is {} KiB, more than probe.tcp_max_total_mb ({} MiB): one flow could not hold it",
                    self.probe.tcp_max_flow_kb, self.probe.tcp_max_total_mb
                ),
            ));
        }
        check_range(
            &mut out,
            "probe.udp_receive_buffer_mb",
            self.probe.udp_receive_buffer_mb,
            1,
            ProbeConfig::MAX_UDP_RECEIVE_BUFFER_MB,
        );
        check_range(
            &mut out,
            "probe.capture_buffer_mb",
            u64::from(self.probe.capture_buffer_mb),
            1,
            u64::from(MAX_CAPTURE_BUFFER_MB),
        );
        if let Some(srp) = &self.srp {
            if let Err(errors) = srp.validate() {
                out.extend(errors.0.into_iter().map(|e| Problem::new(format!("srp.{}", e.field), e.message)));
            }
            if self.enum_.listen_udp.iter().chain(&self.enum_.listen_tcp).any(|a| a.port() == 0) {
                out.push(Problem::new(
                    "enum.listen_udp",
                    "with [srp], enum.listen_* are the service addresses and need fixed ports",
                ));
            }
            if self
                .sip_redirect
                .listen_udp
                .iter()
                .chain(&self.sip_redirect.listen_tcp)
                .chain(&self.sip_redirect.listen_tls)
                .any(|a| a.port() == 0)
            {
                out.push(Problem::new(
                    "sip_redirect.listen_udp",
                    "with [srp], sip_redirect.listen_* are service addresses too and need fixed ports",
                ));
            }
        }
        if self.service_address.mode == crate::service_address::ServiceAddressMode::Ip
            && self.service_address.interface.is_empty()
        {
            out.push(Problem::new("service_address.interface", "is needed with mode = \"ip\""));
        }
        if self.collector.store.starts_with("postgres://") || self.collector.store.starts_with("postgresql://") {
            match tollgate_store::pgurl::PgTarget::parse(&self.collector.store) {
                Err(tollgate_store::StoreError::BadParameter { message, .. }) => {
                    out.push(Problem::new("collector.store", message))
                }
                Err(e) => out.push(Problem::new("collector.store", e.to_string())),
                Ok(target) => {
                    for (name, path) in target.relative_files() {
                        out.push(Problem::new(
                            "collector.store",
                            format!("{name} {} is a relative path: give an absolute one", path.display()),
                        ));
                    }
                }
            }
        }
        if let Some(agent) = &self.agent {
            agent.problems(&mut out);
        }
        if let Some(manager) = &self.manager {
            manager.problems(&mut out);
        }
        self.log.problems(&mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    fn resolve_paths(&mut self, base: &Path) {
        if self.node.state_dir.is_relative() && !base.as_os_str().is_empty() {
            self.node.state_dir = base.join(&self.node.state_dir);
        }
        if let Some(dir) = &self.spool.dir
            && dir.is_relative()
            && !base.as_os_str().is_empty()
        {
            self.spool.dir = Some(base.join(dir));
        }
        if let Some(path) = self.collector.store.strip_prefix("sqlite:")
            && std::path::Path::new(path).is_relative()
            && !base.as_os_str().is_empty()
        {
            self.collector.store = format!("sqlite:{}", base.join(path).display());
        }
        if let Some(m) = &mut self.manager
            && !base.as_os_str().is_empty()
        {
            if m.bundles.is_relative() {
                m.bundles = base.join(&m.bundles);
            }
            if let Some(p) = &m.policy
                && p.is_relative()
            {
                m.policy = Some(base.join(p));
            }
        }
        if !base.as_os_str().is_empty() {
            for path in [&mut self.tls.ca, &mut self.tls.cert, &mut self.tls.key].into_iter().flatten() {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool.dir.clone().unwrap_or_else(|| self.node.state_dir.join("spool"))
    }

    /// The policy store directory.
    pub fn policy_dir(&self) -> PathBuf {
        self.node.state_dir.join("policy")
    }

    /// The configuration as TOML, in the current format (what `config show` prints and the lab
    /// writes).
    pub fn to_toml(&self) -> String {
        let mut current = self.clone();
        current.config_version = migrate::CURRENT_VERSION;
        toml::to_string_pretty(&current).expect("a configuration is always TOML")
    }

    /// The record store URL.
    pub fn store_url(&self) -> String {
        if self.collector.store.is_empty() {
            format!("sqlite:{}", self.node.state_dir.join("records.db").display())
        } else {
            self.collector.store.clone()
        }
    }

    /// The admin token the local CLI uses (written on first start), if present.
    pub fn cli_token(&self) -> Option<String> {
        std::fs::read_to_string(self.node.state_dir.join("cli-token")).ok().map(|t| t.trim().to_string())
    }

    /// The API base URL for clients.
    pub fn api_url(&self) -> String {
        let addr = self.api.listen;
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let scheme = if self.tls.enabled() { "https" } else { "http" };
        match addr {
            SocketAddr::V6(_) if !addr.ip().is_unspecified() => format!("{scheme}://[{host}]:{}", addr.port()),
            _ => format!("{scheme}://{host}:{}", addr.port()),
        }
    }
}

/// `missing field `x`` -> `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// True for `http://host[:port][/path]` or `https://...` with a host and no spaces or quotes
/// (the console's URL is put into links of the local UI).
fn console_url_ok(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'<>`".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_built_in_defaults() {
        let parsed = Config::parse("default", DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Config::default());
    }

    fn error(text: &str) -> String {
        Config::parse("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn sip_redirect_tls_needs_the_tls_section_and_its_own_address() {
        let e = error("[sip_redirect]\nlisten_tls = [\"127.0.0.1:5071\"]\n");
        assert!(e.contains("sip_redirect.listen_tls: needs [tls] cert, key and ca"), "{e}");
        let e = error("[sip_redirect]\nlisten_tcp = [\"127.0.0.1:5071\"]\nlisten_tls = [\"127.0.0.1:5071\"]\n");
        assert!(e.contains("sip_redirect.listen_tls: 127.0.0.1:5071 is also in sip_redirect.listen_tcp"), "{e}");
    }

    #[test]
    fn sip_redirect_listeners_are_checked_naming_the_field() {
        let e = error("[sip_redirect]\nlisten_udp = [\"127.0.0.1:5070\"]\nmax_message_bytes = 10\n");
        assert!(e.contains("sip_redirect.max_message_bytes: is 10; it must be 1024 to 65535"), "{e}");
        let e = error("[enum]\nlisten_udp = [\"127.0.0.1:5353\"]\n[sip_redirect]\nlisten_udp = [\"127.0.0.1:5353\"]\n");
        assert!(e.contains("sip_redirect.listen_udp: 127.0.0.1:5353 is also in enum.listen_udp"), "{e}");
        let srp = "[srp]\nnode_id = \"a\"\nbind_address = \"10.0.0.11:7501\"\npeer_address = \"10.0.0.12:7501\"\n\
                   shared_key = \"at least 16 bytes, the same on both\"\nchassis_mode = \"primary\"\npriority = 1\n\
                   [enum]\nlisten_udp = [\"127.0.0.1:5353\"]\nlisten_tcp = []\n";
        let e = error(&format!("{srp}[sip_redirect]\nlisten_tcp = [\"127.0.0.1:0\"]\n"));
        assert!(e.contains("sip_redirect.listen_udp: with [srp], sip_redirect.listen_* are service addresses"), "{e}");
        // The same address on another protocol, or port 0 without [srp], is fine.
        Config::parse(
            "t.toml",
            "[enum]\nlisten_udp = [\"127.0.0.1:5353\"]\nlisten_tcp = []\n[sip_redirect]\nlisten_tcp = [\"127.0.0.1:5353\"]\nlisten_udp = [\"127.0.0.1:0\"]\n",
        )
        .unwrap();
    }

    #[test]
    fn one_collector_or_several_not_both() {
        let one = Config::parse("t.toml", "[shipper]\ncollector = \"https://c1:8080\"\n").unwrap();
        assert_eq!(one.shipper.collector_urls(), vec!["https://c1:8080"]);
        let two =
            Config::parse("t.toml", "[shipper]\ncollectors = [\"https://c1:8080\", \"https://c2:8080\"]\n").unwrap();
        assert_eq!(two.shipper.collector_urls(), vec!["https://c1:8080", "https://c2:8080"]);
        assert!(Config::default().shipper.collector_urls().is_empty());
        assert_eq!(
            error("[shipper]\ncollector = \"https://c1:8080\"\ncollectors = [\"https://c2:8080\"]\n"),
            "t.toml:3: shipper.collectors: set either shipper.collector (one collector) or shipper.collectors \
             (several), not both"
        );
        let e = error(
            "[shipper]\ncollectors = [\"c1:8080\", \"https://c2\", \"https://c2\"]\nin_flight = 0\ncompression = \"lz4\"\n",
        );
        assert!(e.contains("t.toml:4: shipper.compression: unknown variant `lz4`, expected `zstd` or `none`"), "{e}");
        assert!(
            e.contains("t.toml:2: shipper.collectors: entry 1 (\"c1:8080\") is not an http:// or https:// URL"),
            "{e}"
        );
        assert!(e.contains("t.toml:2: shipper.collectors: https://c2 is listed twice"), "{e}");
        assert!(e.contains("t.toml:3: shipper.in_flight: is 0; it must be between 1 and 16"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = error("[node]\nname = \"a\"\n[enum]\nttl = \"zero\"\n");
        assert!(e.starts_with("t.toml:4: enum.ttl: invalid type"), "{e}");
        assert_eq!(error("[enum]\nsuffixes = []\n"), "t.toml:2: enum.suffixes: at least one ENUM suffix is needed");
        let e = error(
            "[dialing_plan]\ncountry_code = \"0\"\ninternational_prefix = \"00\"\nnational_number_lengths = [9]\n",
        );
        assert!(e.starts_with("t.toml:2: dialing_plan.country_code: country_code \"0\" must be"), "{e}");
        assert_eq!(
            error("[nod]\n"),
            "t.toml:1: nod: unknown field `nod`, expected one of `config_version`, `node`, `dialing_plan`, `enum`, `sip_redirect`, `api`, `spool`, `shipper`, `collector`, `srp`, `service_address`, `agent`, `manager`, `probe`, `shared_counters`, `tls`, `log`"
        );
        assert!(error("[node\n").starts_with("t.toml:1: "), "syntax errors have a line too");
        assert_eq!(
            error("[collector]\nstore = \"postgres://u:s3cret@db/x?sslmode=verify-ful\"\n"),
            "t.toml:2: collector.store: sslmode 'verify-ful' is not one of disable, prefer, require, verify-ca, verify-full"
        );
        assert_eq!(
            error("[collector]\nstore = \"postgres://u:s3cret@db/x?sslmode=verify-full\"\n"),
            "t.toml:2: collector.store: sslmode verify-full needs sslrootcert=<PEM file of the CA that issued the server's certificate>"
        );
        assert_eq!(
            error("[collector]\nstore = \"postgres://u@db/x?sslmode=verify-full&sslrootcert=pg-ca.pem\"\n"),
            "t.toml:2: collector.store: sslrootcert pg-ca.pem is a relative path: give an absolute one"
        );
    }

    #[test]
    fn the_sqlite_page_cache_is_configured_within_its_range() {
        let c = Config::parse("t.toml", "[collector]\nsqlite_cache_mb = 16\n").unwrap();
        assert_eq!(c.collector.sqlite_options().cache_mb, 16);
        let default = Config::parse("t.toml", "").unwrap();
        assert_eq!(default.collector.sqlite_options(), tollgate_store::sqlite::SqliteOptions::default());
        assert_eq!(
            error("[node]\nname = \"a\"\n[collector]\nsqlite_cache_mb = 0\n"),
            "t.toml:4: collector.sqlite_cache_mb: is 0; it must be between 1 and 65536"
        );
    }

    /// Problems of every kind in every section, [agent] and [manager] included: all of them at
    /// once, in file order, each with its line and field.
    #[test]
    fn every_problem_is_reported_at_once_with_line_and_field() {
        let text = "\
[node]
name = \"*\"
[enum]
ttl = \"zero\"
bogus = 1
[api]
max_connections = 0
idle_timeout = \"2 days\"
[spool]
segment_mb = 0
near_full_percent = 101
[agent]
listen = \"127.0.0.1:7000\"
server = \"\"
app_type = \"engine\"
role = \"serve\"
role_config = \"r.toml\"
dir = \"a\"
trusted_keys = []
token = \"short\"
[manager]
hostname = \"nowhere\"
agent_token = \"0123456789abcdef\"
bundles = \"b\"
trusted_keys = [\"k\"]
poll_ms = 500
takeover_ms = 100
sites = [{ name = \"s\", primary = true }]
clusters = []
";
        let e = Config::parse("t.toml", text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e.diagnostics.iter().map(|d| (d.line, d.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(2), "node.name"),
                (Some(4), "enum.ttl"),
                (Some(5), "enum.bogus"),
                (Some(7), "api.max_connections"),
                (Some(8), "api.idle_timeout"),
                (Some(10), "spool.segment_mb"),
                (Some(11), "spool.near_full_percent"),
                (Some(14), "agent.server"),
                (Some(19), "agent.trusted_keys"),
                (Some(20), "agent.token"),
                (Some(22), "manager.hostname"),
                (Some(27), "manager.takeover_ms"),
            ],
            "{e}"
        );
        assert!(e.diagnostics.iter().all(|d| d.file == "t.toml" && !d.message.is_empty()));
        let text = e.to_string();
        assert!(text.starts_with("configuration is invalid (12 problems):\n  t.toml:2: node.name: \"*\" "), "{text}");
        assert!(text.contains("\n  t.toml:14: agent.server: must not be empty"), "{text}");
        // A value that cannot be read at all is reported with the other sections' problems
        // (the rest of its own section is checked once it reads).
        let e = error("[node]\nname = \"*\"\n[agent]\nrole = \"router\"\n");
        assert!(
            e.contains("\n  t.toml:2: node.name: ") && e.contains("\n  t.toml:4: agent.role: unknown variant `router`"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_values_deep_in_the_manager_topology_are_each_reported_once() {
        let text = "[manager]\nhostname = \"m1\"\nagent_token = \"0123456789abcdef\"\nbundles = \"b\"\ntrusted_keys = [\"k\"]\nsites = [{ name = \"s\", primary = true }]\n\n[[manager.clusters]]\nname = \"c\"\napplication = \"manager\"\nsite = \"s\"\nservers = [{ hostname = \"m1\", role = \"Boss\", agent = \"http://127.0.0.1:7000\" }]\n\n[[manager.clusters]]\nname = \"e\"\napplication = \"router\"\nsite = \"s\"\nservers = []\n";
        let e = Config::parse("t.toml", text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e.diagnostics.iter().map(|d| (d.line, d.field.as_str())).collect();
        assert_eq!(
            got,
            [(Some(12), "manager.clusters[0].servers[0].role"), (Some(16), "manager.clusters[1].application")],
            "{e}"
        );
    }

    #[test]
    fn agent_and_manager_sections_are_typed_and_checked() {
        let agent = "[agent]\nlisten = \"127.0.0.1:7000\"\nserver = \"east-a\"\napp_type = \"probe\"\nrole = \"serve\"\nrole_config = \"r.toml\"\ndir = \"a\"\ntrusted_keys = [\"k\"]\ntoken = \"0123456789abcdef\"\n";
        let c = Config::parse("t.toml", agent).unwrap();
        let a = c.agent.unwrap();
        assert_eq!((a.app_type, a.role), (tollgate_upgrade::topology::AppType::Probe, agent::RoleProcess::Serve));
        assert_eq!(a.role.to_string(), "serve");
        assert_eq!("engine".parse::<agent::RoleProcess>(), Ok(agent::RoleProcess::Engine));
        let e = error(&agent.replace("\"probe\"", "\"router\""));
        assert!(e.starts_with("t.toml:4: agent.app_type: unknown variant `router`"), "{e}");
    }

    #[test]
    fn durations_read_in_the_old_unit_or_with_their_unit() {
        let old =
            Config::parse("t.toml", "[api]\nidle_timeout_secs = 90\n[collector]\nmaintenance_minutes = 5\n").unwrap();
        let new =
            Config::parse("t.toml", "[api]\nidle_timeout = \"1m 30s\"\n[collector]\nmaintenance_interval = \"5m\"\n")
                .unwrap();
        assert_eq!((old.api.idle_timeout_secs, old.collector.maintenance_minutes), (90, 5));
        assert_eq!(old.config_version, migrate::FIRST_VERSION);
        assert_eq!((new.api.idle_timeout_secs, new.collector.maintenance_minutes), (90, 5));
        let e = error("[api]\nidle_timeout = \"1500ms\"\n");
        assert!(e.starts_with("t.toml:2: api.idle_timeout: \"1500ms\" is not a whole number of seconds"), "{e}");
        let e = error("config_version = 3\n");
        assert!(e.starts_with("t.toml:1: config_version: 3 is not a version this release reads (1 to 2)"), "{e}");
    }

    #[test]
    fn serialised_configurations_read_back_the_same() {
        let mut c = Config::default();
        c.api.idle_timeout_secs = 7;
        c.probe.setup_timeout_secs = 3600;
        let text = c.to_toml();
        assert!(text.starts_with("config_version = 2\n"), "{text}");
        assert!(text.contains("idle_timeout = \"7s\""), "{text}");
        assert_eq!(Config::parse("t.toml", &text).unwrap(), c);
    }

    #[test]
    fn reserved_device_names_are_refused() {
        for (text, field, line) in [
            ("[node]\nname = \"*\"\n", "node.name", 2),
            ("[node]\nname = \"All\"\n", "node.name", 2),
            ("[node]\nname = \"\"\n", "node.name", 2),
            ("[probe]\ndevice = \"*\"\n", "probe.device", 2),
        ] {
            let e = error(text);
            assert!(e.starts_with(&format!("t.toml:{line}: {field}: ")), "{e}");
        }
    }

    #[test]
    fn spool_settings_out_of_range_are_refused_naming_the_field() {
        for (line, want) in [
            ("segment_mb = 0", "t.toml:2: spool.segment_mb: must be between 1 and 1024 (is 0)"),
            ("segment_mb = 4096", "t.toml:2: spool.segment_mb: must be between 1 and 1024 (is 4096)"),
            ("fsync_ms = 0", "t.toml:2: spool.fsync_ms: must be above 0"),
            ("max_disk_mb = 17592186044416", "t.toml:2: spool.max_disk_mb: is too large (17592186044416 MiB)"),
            ("near_full_percent = 0", "t.toml:2: spool.near_full_percent: must be between 1 and 100 (is 0)"),
            ("near_full_percent = 101", "t.toml:2: spool.near_full_percent: must be between 1 and 100 (is 101)"),
        ] {
            assert_eq!(error(&format!("[spool]\n{line}\n")), want);
        }
    }

    #[test]
    fn the_mos_threshold_is_a_mos_and_out_of_range_values_name_the_field() {
        for (text, field) in [
            ("[probe]\nmos_poor = 4.8\n", "probe.mos_poor: is 4.8"),
            ("[probe]\nmos_poor = 0.5\n", "probe.mos_poor: is 0.5"),
            ("[probe]\nmos_poor = nan\n", "probe.mos_poor: is NaN"),
        ] {
            let e = error(text);
            assert!(e.contains(field), "{e}");
        }
        assert_eq!(Config::default().probe.mos_poor, Score(3.6));
        for (text, want) in [("[probe]\nmos_poor = 4\n", 4.0), ("[probe]\nmos_poor = 3.1\n", 3.1)] {
            let c = Config::parse("t.toml", text).unwrap();
            assert_eq!(c.probe.mos_poor, Score(want));
        }
    }

    #[test]
    fn connection_limits_out_of_range_are_refused_naming_the_field() {
        for (text, field) in [
            ("[api]\nmax_connections = 0\n", "api.max_connections: is 0"),
            ("[api]\nidle_timeout_secs = 0\n", "api.idle_timeout_secs: is 0"),
            ("[api]\nidle_timeout = \"0s\"\n", "api.idle_timeout: is 0"),
            ("[probe]\nhep_tcp_max_connections = 0\n", "probe.hep_tcp_max_connections: is 0"),
            ("[probe]\nladder_calls = 1000001\n", "probe.ladder_calls: is 1000001"),
            ("[probe]\nladder_max_mb = 0\n", "probe.ladder_max_mb: is 0"),
            ("[probe]\ntcp_max_flows = 1\n", "probe.tcp_max_flows: is 1"),
            ("[probe]\ntcp_max_flow_kb = 0\n", "probe.tcp_max_flow_kb: is 0"),
            ("[probe]\ntcp_max_total_mb = 0\n", "probe.tcp_max_total_mb: is 0"),
            ("[probe]\nhep_tcp_idle_timeout_secs = 100000\n", "probe.hep_tcp_idle_timeout_secs: is 100000"),
            ("[probe]\nudp_receive_buffer_mb = 0\n", "probe.udp_receive_buffer_mb: is 0"),
            ("[probe]\nudp_receive_buffer_mb = 1025\n", "probe.udp_receive_buffer_mb: is 1025"),
            ("[probe]\ncapture_buffer_mb = 0\n", "probe.capture_buffer_mb: is 0"),
            ("[probe]\ncapture_buffer_mb = 4096\n", "probe.capture_buffer_mb: is 4096"),
        ] {
            let e = error(text);
            assert!(e.starts_with(&format!("t.toml:2: {field}; it must be between ")), "{e}");
        }
        // One flow's bound above all flows' bound could never be reached.
        let e = error("[probe]\ntcp_max_flow_kb = 4096\ntcp_max_total_mb = 2\n");
        assert!(
            e.starts_with("t.toml:2: probe.tcp_max_flow_kb: is 4096 KiB, more than probe.tcp_max_total_mb (2 MiB)"),
            "{e}"
        );
    }

    #[test]
    fn the_console_url_must_be_an_http_url_fit_for_a_link() {
        for bad in ["manager:8080", "https://", "ftp://m", "https://m\\\"><script>", "https://m x"] {
            let e = error(&format!("[api]\nconsole = \"{bad}\"\n"));
            assert!(e.contains("api.console:") && e.contains("is not an http:// or https:// URL"), "{bad}: {e}");
        }
        for good in ["https://mgr.example.net:8080", "http://127.0.0.1:8080/"] {
            let c = Config::parse("t.toml", &format!("[api]\nconsole = \"{good}\"\n")).unwrap();
            assert_eq!(c.api.console.as_deref(), Some(good));
        }
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, "[node]\nstate_dir = \"data\"\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.node.state_dir, dir.path().join("data"));
        assert_eq!(c.spool_dir(), dir.path().join("data/spool"));
    }
}
