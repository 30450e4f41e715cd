//! The tollgate configuration file: sections, defaults, loading with errors naming file, line
//! and field.

#![warn(missing_docs)]

pub mod agent;
pub mod manager;
pub mod service_address;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
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
    /// idle, unfinished request headers, a stalled body).
    pub idle_timeout_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_connections: 256,
            idle_timeout_secs: 60,
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
}

impl SpoolConfig {
    /// Largest `segment_mb`: the shipper reads the unsent part of a segment into memory.
    pub const MAX_SEGMENT_MB: u64 = 1024;

    /// Checks each field on its own; errors name the field and the value.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=Self::MAX_SEGMENT_MB).contains(&self.segment_mb) {
            bail!("spool.segment_mb must be between 1 and {} (is {})", Self::MAX_SEGMENT_MB, self.segment_mb);
        }
        if self.fsync_ms == 0 {
            bail!("spool.fsync_ms must be above 0");
        }
        if self.max_disk_mb.checked_mul(1 << 20).is_none() {
            bail!("spool.max_disk_mb is too large ({} MiB)", self.max_disk_mb);
        }
        if !(1..=100).contains(&self.near_full_percent) {
            bail!("spool.near_full_percent must be between 1 and 100 (is {})", self.near_full_percent);
        }
        Ok(())
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { dir: None, segment_mb: 64, fsync_ms: 200, max_disk_mb: 1024, near_full_percent: 80 }
    }
}

/// `[shipper]`: where records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipperConfig {
    /// The collector's API URL. Empty: this process's own API when it runs the collector
    /// (`serve`), otherwise records stay in the spool.
    pub collector: String,
    /// Ingest token; empty: read `<state_dir>/ingest-token`.
    pub token: String,
    /// Most records per batch.
    pub batch_records: usize,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        ShipperConfig { collector: String::new(), token: String::new(), batch_records: 2000 }
    }
}

/// `[collector]`: the record store and its upkeep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// `sqlite:PATH` or `postgres://user:password@host/db`; empty: `<state_dir>/records.db`.
    pub store: String,
    /// How long data is kept.
    pub retention: tollgate_store::Retention,
    /// Minutes between retention runs (and statistics refreshes).
    pub maintenance_minutes: u64,
    /// Most disk the quarantine of invalid received lines may use, MiB (0: no limit).
    pub quarantine_max_mb: u64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            store: String::new(),
            retention: tollgate_store::Retention::default(),
            maintenance_minutes: 60,
            quarantine_max_mb: 1024,
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
    /// Seconds after which a HEP/TCP sender that sends nothing is disconnected.
    pub hep_tcp_idle_timeout_secs: u64,
    /// A network interface to capture from (needs the `live-capture` build feature and root).
    pub interface: String,
    /// BPF filter for the interface.
    pub filter: String,
    /// Most calls tracked at once.
    pub max_open_calls: usize,
    /// Seconds before an unanswered call is closed as no answer.
    pub setup_timeout_secs: u64,
    /// Seconds without a message before an answered call is closed.
    pub idle_timeout_secs: u64,
}

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
            interface: String::new(),
            filter: "udp or tcp".into(),
            max_open_calls: 200_000,
            setup_timeout_secs: 180,
            idle_timeout_secs: 4 * 3600,
        }
    }
}

/// Largest accepted connection limit of a listener.
const MAX_CONNECTIONS: u64 = 1_000_000;
/// Longest accepted idle timeout of a connection, seconds (a day).
const MAX_IDLE_SECS: u64 = 86_400;

/// Fails naming `field` unless `min <= value <= max`.
fn check_range(label: &str, field: &str, value: u64, min: u64, max: u64) -> anyhow::Result<()> {
    if value < min || value > max {
        bail!("{label}: {field} is {value}; it must be between {min} and {max}");
    }
    Ok(())
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`.
    pub node: NodeConfig,
    /// `[dialing_plan]`.
    pub dialing_plan: DialingPlan,
    /// `[enum]`.
    #[serde(rename = "enum")]
    pub enum_: EnumConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[spool]`.
    pub spool: SpoolConfig,
    /// `[shipper]`.
    pub shipper: ShipperConfig,
    /// `[collector]`.
    pub collector: CollectorConfig,
    /// `[srp]`: this engine is one chassis of an SRP pair (absent: a standalone engine).
    pub srp: Option<tollgate_srp::SrpConfig>,
    /// `[service_address]`: how an SRP pair moves the ENUM service address.
    pub service_address: service_address::ServiceAddressConfig,
    /// `[agent]`: `tollgate agent` on this server.
    pub agent: Option<agent::AgentConfig>,
    /// `[manager]`: `tollgate manager` on this server.
    pub manager: Option<manager::ManagerConfig>,
    /// `[probe]`.
    pub probe: ProbeConfig,
}

impl Config {
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

    /// Parses and validates configuration text; errors name `label`, the line and the field.
    pub fn parse(label: &str, text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].bytes().filter(|b| *b == b'\n').count() + 1);
            match line {
                Some(line) => anyhow::anyhow!("{label}:{line}: {}", e.message().trim()),
                None => anyhow::anyhow!("{label}: {}", e.message().trim()),
            }
        })?;
        config.dialing_plan.validate().map_err(|e| anyhow::anyhow!("{label}: dialing_plan: {e}"))?;
        config.enum_.validate().map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        tollgate_records::check_device_name(&config.node.name)
            .map_err(|e| anyhow::anyhow!("{label}: node.name: {:?} {e}", config.node.name))?;
        if !config.probe.device.is_empty() {
            tollgate_records::check_device_name(&config.probe.device)
                .map_err(|e| anyhow::anyhow!("{label}: probe.device: {:?} {e}", config.probe.device))?;
        }
        config.spool.validate().map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        tollgate_policy::InternalNumbers::parse(&config.probe.internal, &config.dialing_plan)
            .map_err(|e| anyhow::anyhow!("{label}: probe.internal: {e}"))?;
        if config.probe.max_open_calls == 0 {
            bail!("{label}: probe.max_open_calls must be above 0");
        }
        check_range(label, "api.max_connections", config.api.max_connections as u64, 1, MAX_CONNECTIONS)?;
        check_range(label, "api.idle_timeout_secs", config.api.idle_timeout_secs, 1, MAX_IDLE_SECS)?;
        check_range(
            label,
            "probe.hep_tcp_max_connections",
            config.probe.hep_tcp_max_connections as u64,
            1,
            MAX_CONNECTIONS,
        )?;
        check_range(
            label,
            "probe.hep_tcp_idle_timeout_secs",
            config.probe.hep_tcp_idle_timeout_secs,
            1,
            MAX_IDLE_SECS,
        )?;
        if let Some(srp) = &config.srp {
            srp.validate().map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            if config.enum_.listen_udp.iter().chain(&config.enum_.listen_tcp).any(|a| a.port() == 0) {
                bail!("{label}: with [srp], enum.listen_* are the service addresses and need fixed ports");
            }
        }
        if config.service_address.mode == crate::service_address::ServiceAddressMode::Ip
            && config.service_address.interface.is_empty()
        {
            bail!("{label}: service_address.interface is needed with mode = \"ip\"");
        }
        Ok(config)
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
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool.dir.clone().unwrap_or_else(|| self.node.state_dir.join("spool"))
    }

    /// The policy store directory.
    pub fn policy_dir(&self) -> PathBuf {
        self.node.state_dir.join("policy")
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
        match addr {
            SocketAddr::V6(_) if !addr.ip().is_unspecified() => format!("http://[{host}]:{}", addr.port()),
            _ => format!("http://{host}:{}", addr.port()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_built_in_defaults() {
        let parsed = Config::parse("default", DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = Config::parse("t.toml", "[node]\nname = \"a\"\n[enum]\nttl = \"zero\"\n").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:4: "), "{e}");
        let e = Config::parse("t.toml", "[enum]\nsuffixes = []\n").unwrap_err().to_string();
        assert_eq!(e, "t.toml: enum.suffixes: at least one ENUM suffix is needed");
        let e = Config::parse(
            "t.toml",
            "[dialing_plan]\ncountry_code = \"0\"\ninternational_prefix = \"00\"\nnational_number_lengths = [9]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dialing_plan: invalid dialing plan: country_code"), "{e}");
        let e = Config::parse("t.toml", "[nod]\n").unwrap_err().to_string();
        assert!(e.contains("t.toml:1: unknown field `nod`"), "{e}");
    }

    #[test]
    fn reserved_device_names_are_refused() {
        for (text, field) in [
            ("[node]\nname = \"*\"\n", "node.name"),
            ("[node]\nname = \"All\"\n", "node.name"),
            ("[node]\nname = \"\"\n", "node.name"),
            ("[probe]\ndevice = \"*\"\n", "probe.device"),
        ] {
            let e = Config::parse("t.toml", text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.toml: {field}: ")), "{e}");
        }
    }

    #[test]
    fn spool_settings_out_of_range_are_refused_naming_the_field() {
        for (line, want) in [
            ("segment_mb = 0", "t.toml: spool.segment_mb must be between 1 and 1024 (is 0)"),
            ("segment_mb = 4096", "t.toml: spool.segment_mb must be between 1 and 1024 (is 4096)"),
            ("fsync_ms = 0", "t.toml: spool.fsync_ms must be above 0"),
            ("max_disk_mb = 17592186044416", "t.toml: spool.max_disk_mb is too large (17592186044416 MiB)"),
            ("near_full_percent = 0", "t.toml: spool.near_full_percent must be between 1 and 100 (is 0)"),
            ("near_full_percent = 101", "t.toml: spool.near_full_percent must be between 1 and 100 (is 101)"),
        ] {
            let e = Config::parse("t.toml", &format!("[spool]\n{line}\n")).unwrap_err().to_string();
            assert_eq!(e, want);
        }
    }

    #[test]
    fn connection_limits_out_of_range_are_refused_naming_the_field() {
        for (text, field) in [
            ("[api]\nmax_connections = 0\n", "api.max_connections is 0"),
            ("[api]\nidle_timeout_secs = 0\n", "api.idle_timeout_secs is 0"),
            ("[probe]\nhep_tcp_max_connections = 0\n", "probe.hep_tcp_max_connections is 0"),
            ("[probe]\nhep_tcp_idle_timeout_secs = 100000\n", "probe.hep_tcp_idle_timeout_secs is 100000"),
        ] {
            let e = Config::parse("t.toml", text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.toml: {field}; it must be between ")), "{e}");
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
