//! `[srp]`: the Service Redundancy Protocol configuration of one chassis (server), its defaults and
//! the rules [`SrpConfig::validate`] enforces.
//!
//! Names follow the seed's `service-redundancy-protocol` configuration mode (`chassis-mode`,
//! `priority`, `hello-interval`, `dead-interval`, `delay-interval`, `checkpoint session
//! periodic-interval`, `checkpoint session nack ... max-response`, `checkpoint session compression`,
//! `guard-timer ... guard-period | damping-period`, `audit daily-start-time`, `audit periodicity`,
//! `monitor ... group`), written in snake case with their unit as a suffix.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compress::Compression;

/// Shortest accepted shared key, in bytes.
pub const MIN_SHARED_KEY_LEN: usize = 16;
/// Longest accepted node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Which role the chassis is configured for (`chassis-mode { primary | backup }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChassisMode {
    /// Preferred to become Active at initialisation.
    Primary,
    /// Preferred to become Standby at initialisation.
    Backup,
}

impl fmt::Display for ChassisMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChassisMode::Primary => "Primary",
            ChassisMode::Backup => "Backup",
        })
    }
}

/// The shortest hello interval, milliseconds.
pub const MIN_HELLO_MS: u32 = 10;
/// The longest hello or dead interval, milliseconds (the seed's 65535 seconds).
pub const MAX_INTERVAL_MS: u32 = 65_535_000;

/// The whole `[srp]` section.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrpConfig {
    /// This chassis' id, unique in the pair. The last election tie-break (the seed compares MAC
    /// addresses; the higher one wins): the byte-wise greater node id wins.
    pub node_id: String,
    /// The mate's SRP address (`peer-ip-address`, with the SRP port).
    pub peer_address: SocketAddr,
    /// This chassis' own SRP address (`bind address`); must be a concrete address, not 0.0.0.0.
    pub bind_address: SocketAddr,
    /// Shared key that authenticates every SRP frame (HMAC-SHA256); at least 16 bytes, the same on
    /// both chassis. Never printed by `Debug`.
    pub shared_key: String,
    /// `chassis-mode`.
    pub chassis_mode: ChassisMode,
    /// `priority`, 1..=255: the lower number is the higher priority.
    pub priority: u8,
    /// `hello-interval`, milliseconds between Hello messages (default 3000, the seed's heartbeat
    /// period; the seed counts in seconds, tollgate in milliseconds so a pair can fail over in
    /// well under a second: hello 100, dead 300).
    #[serde(default = "default_hello_interval_ms")]
    pub hello_interval_ms: u32,
    /// `dead-interval`, milliseconds without a Hello after which the mate is considered dead; at
    /// least three times `hello_interval_ms` (default 30000).
    #[serde(default = "default_dead_interval_ms")]
    pub dead_interval_ms: u32,
    /// `delay-interval`, seconds to wait after start-up before the dead interval starts running
    /// (default 0: no delay).
    #[serde(default)]
    pub delay_interval_secs: u32,
    /// `guard-period`, seconds after a switchover or a local failure recovery during which a
    /// monitor failure does not switch over at once (default 60).
    #[serde(default = "default_guard_period_secs")]
    pub guard_period_secs: u32,
    /// `damping-period`, seconds a monitor failure inside the guard period must last before it
    /// triggers a switchover; 0 waits for the end of the guard period (default 0).
    #[serde(default)]
    pub damping_period_secs: u32,
    /// `checkpoint session ...`.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// `audit ...`.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `monitor ...`: groups of monitored targets; a group whose targets are all down triggers a
    /// switchover from the Active chassis.
    #[serde(default, rename = "monitor")]
    pub monitors: Vec<MonitorGroupConfig>,
}

impl fmt::Debug for SrpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrpConfig")
            .field("node_id", &self.node_id)
            .field("peer_address", &self.peer_address)
            .field("bind_address", &self.bind_address)
            .field("shared_key", &"<redacted>")
            .field("chassis_mode", &self.chassis_mode)
            .field("priority", &self.priority)
            .field("hello_interval_ms", &self.hello_interval_ms)
            .field("dead_interval_ms", &self.dead_interval_ms)
            .field("delay_interval_secs", &self.delay_interval_secs)
            .field("guard_period_secs", &self.guard_period_secs)
            .field("damping_period_secs", &self.damping_period_secs)
            .field("checkpoint", &self.checkpoint)
            .field("audit", &self.audit)
            .field("monitors", &self.monitors)
            .finish()
    }
}

fn default_hello_interval_ms() -> u32 {
    3_000
}
fn default_dead_interval_ms() -> u32 {
    30_000
}
fn default_guard_period_secs() -> u32 {
    60
}

/// `checkpoint session ...`: what is checkpointed to the Standby and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// `periodic-interval`, minutes between periodic full (macro) checkpoints: 30..=1440 and
    /// divisible by 15 (default 45).
    pub periodic_interval_mins: u32,
    /// `checkpoint` delay: only sessions at least this many seconds old are checkpointed
    /// (optional; default 0: every session is checkpointed at once, which velocity counters
    /// need: a caller blocked a second before a switchover must stay blocked after it).
    pub delay_secs: u32,
    /// `compression`: zlib (default) or lz4; LZ4 is used only when both chassis ask for it.
    pub compression: Compression,
    /// `nack { macro | micro } [max-response]`.
    pub nack: NackConfig,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            periodic_interval_mins: 45,
            delay_secs: 0,
            compression: Compression::Zlib,
            nack: NackConfig::default(),
        }
    }
}

/// `checkpoint session nack { macro | micro } [ max-response number ]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NackConfig {
    /// Send a NACK when a micro-checkpoint fails to apply (default true).
    pub micro: bool,
    /// Send a NACK when a macro (full) checkpoint fails to apply (default true).
    #[serde(rename = "macro")]
    pub macro_: bool,
    /// `max-response`: most NACKs sent within one 10-minute window, 0..=65535 (default 3).
    pub max_response: u16,
}

impl Default for NackConfig {
    fn default() -> Self {
        NackConfig { micro: true, macro_: true, max_response: 3 }
    }
}

/// `audit daily-start-time` and `audit periodicity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `daily-start-time`, "HH:MM" (24-hour clock, also "HH MM"); default "00:00".
    pub daily_start_time: String,
    /// `periodicity`, minutes between audits from the start time: 60..=1440 (default 60).
    pub periodicity_mins: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { daily_start_time: "00:00".into(), periodicity_mins: 60 }
    }
}

impl AuditConfig {
    /// The start time as minutes after midnight, or `None` when it does not parse.
    pub fn start_minute(&self) -> Option<u32> {
        let s = self.daily_start_time.trim();
        let (h, m) = s.split_once(':').or_else(|| s.split_once(' '))?;
        let (h, m) = (h.trim().parse::<u32>().ok()?, m.trim().parse::<u32>().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }

    /// Minutes from `minute_of_day` (0..1440, local time) to the next scheduled audit: audits run at
    /// the start time and every `periodicity_mins` after it, restarting each day at the start time.
    /// `None` when the configuration is invalid.
    pub fn minutes_until_next(&self, minute_of_day: u32) -> Option<u32> {
        let start = self.start_minute()?;
        let period = self.periodicity_mins;
        if !(60..=1440).contains(&period) {
            return None;
        }
        let now = minute_of_day % 1440;
        // Runs of today (start, start+p, ... < 1440) and tomorrow's start.
        let mut t = start;
        while t < 1440 {
            if t >= now {
                return Some(t - now);
            }
            t += period;
        }
        Some(1440 - now + start)
    }
}

/// What a monitor group watches (`monitor authentication-probe | bgp | diameter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorKind {
    /// AAA servers probed with authentication probes.
    Aaa,
    /// BGP peers.
    Bgp,
    /// Diameter peers.
    Diameter,
}

impl fmt::Display for MonitorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MonitorKind::Aaa => "aaa",
            MonitorKind::Bgp => "bgp",
            MonitorKind::Diameter => "diameter",
        })
    }
}

/// One monitor group: a switchover is due when every target in it is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorGroupConfig {
    /// What the targets are.
    pub kind: MonitorKind,
    /// Group number within the kind (`group N`; default 0).
    #[serde(default)]
    pub group: u32,
    /// Targets as `host:port` (AAA: a RADIUS server, default port 1812; BGP: a TCP peer,
    /// default 179; Diameter: a Diameter peer, default 3868), at least one, no duplicates.
    pub targets: Vec<String>,
    /// Milliseconds between probes of each target (default 1000).
    #[serde(default = "default_probe_interval_ms")]
    pub interval_ms: u32,
    /// Milliseconds to wait for an answer (default 1000).
    #[serde(default = "default_probe_timeout_ms")]
    pub timeout_ms: u32,
    /// Failed probes in a row before a target is down (the AAA server's `max-retries`;
    /// default 3).
    #[serde(default = "default_probe_retries")]
    pub max_retries: u32,
    /// AAA: the RADIUS shared secret.
    #[serde(default)]
    pub secret: String,
    /// AAA: the user name of the authentication probe (a reject is an answer too).
    #[serde(default = "default_probe_user")]
    pub probe_user: String,
    /// Diameter: this chassis' Origin-Host (default `tollgate.srp`).
    #[serde(default)]
    pub origin_host: String,
}

fn default_probe_interval_ms() -> u32 {
    1_000
}
fn default_probe_timeout_ms() -> u32 {
    1_000
}
fn default_probe_retries() -> u32 {
    3
}
fn default_probe_user() -> String {
    "tollgate-srp-probe".into()
}

impl MonitorGroupConfig {
    /// A group of `kind` with the default probe settings.
    pub fn new(kind: MonitorKind, group: u32, targets: Vec<String>) -> Self {
        MonitorGroupConfig {
            kind,
            group,
            targets,
            interval_ms: default_probe_interval_ms(),
            timeout_ms: default_probe_timeout_ms(),
            max_retries: default_probe_retries(),
            secret: String::new(),
            probe_user: default_probe_user(),
            origin_host: String::new(),
        }
    }
}

/// One configuration rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("srp.{field}: {message}")]
pub struct ConfigError {
    /// The field, as written in the configuration file.
    pub field: String,
    /// The rule it breaks.
    pub message: String,
}

/// Every rule a configuration breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.to_string(), message: message.into() }
}

impl SrpConfig {
    /// A configuration with the seed's defaults for everything but the fields every chassis must
    /// set itself.
    pub fn new(
        node_id: impl Into<String>,
        bind_address: SocketAddr,
        peer_address: SocketAddr,
        shared_key: impl Into<String>,
        chassis_mode: ChassisMode,
        priority: u8,
    ) -> SrpConfig {
        SrpConfig {
            node_id: node_id.into(),
            peer_address,
            bind_address,
            shared_key: shared_key.into(),
            chassis_mode,
            priority,
            hello_interval_ms: default_hello_interval_ms(),
            dead_interval_ms: default_dead_interval_ms(),
            delay_interval_secs: 0,
            guard_period_secs: default_guard_period_secs(),
            damping_period_secs: 0,
            checkpoint: CheckpointConfig::default(),
            audit: AuditConfig::default(),
            monitors: Vec::new(),
        }
    }

    /// Checks every rule; the error lists each broken rule with its field.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let id = &self.node_id;
        if id.is_empty() || id.len() > MAX_NODE_ID_LEN {
            errors.push(err("node_id", format!("must be 1..={MAX_NODE_ID_LEN} bytes long")));
        } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            errors.push(err("node_id", "may hold only ASCII letters, digits, '-', '_' and '.'"));
        }
        if self.bind_address.ip().is_unspecified() {
            errors
                .push(err("bind_address", "must be this chassis' own address, not an unspecified one (0.0.0.0 or ::)"));
        }
        if self.bind_address.port() == 0 {
            errors.push(err("bind_address", "port must not be 0"));
        }
        if self.peer_address.ip().is_unspecified() || self.peer_address.port() == 0 {
            errors.push(err("peer_address", "must be the mate's concrete address and port"));
        }
        if self.peer_address == self.bind_address {
            errors.push(err("peer_address", "must differ from bind_address"));
        }
        if self.shared_key.len() < MIN_SHARED_KEY_LEN {
            errors.push(err("shared_key", format!("must be at least {MIN_SHARED_KEY_LEN} bytes long")));
        }
        if self.priority == 0 {
            errors.push(err("priority", "must be 1..=255 (the lower number is the higher priority)"));
        }
        if !(MIN_HELLO_MS..=MAX_INTERVAL_MS).contains(&self.hello_interval_ms) {
            errors.push(err(
                "hello_interval_ms",
                format!("must be {MIN_HELLO_MS}..={MAX_INTERVAL_MS} milliseconds (10 ms to 65535 s)"),
            ));
        }
        if u64::from(self.dead_interval_ms) < 3 * u64::from(self.hello_interval_ms) {
            errors.push(err(
                "dead_interval_ms",
                format!(
                    "must be at least three times hello_interval_ms ({} x 3 = {})",
                    self.hello_interval_ms,
                    3 * u64::from(self.hello_interval_ms)
                ),
            ));
        }
        if self.dead_interval_ms > MAX_INTERVAL_MS {
            errors.push(err("dead_interval_ms", format!("must be at most {MAX_INTERVAL_MS} milliseconds")));
        }
        if self.delay_interval_secs > 65_535 {
            errors.push(err("delay_interval_secs", "must be at most 65535 seconds"));
        }
        if self.guard_period_secs > 3_600 {
            errors.push(err("guard_period_secs", "must be at most 3600 seconds"));
        }
        if self.damping_period_secs > 3_600 {
            errors.push(err("damping_period_secs", "must be at most 3600 seconds"));
        }
        let p = self.checkpoint.periodic_interval_mins;
        if !(30..=1440).contains(&p) || !p.is_multiple_of(15) {
            errors.push(err(
                "checkpoint.periodic_interval_mins",
                format!("must be 30..=1440 minutes and divisible by 15 (got {p})"),
            ));
        }
        if self.checkpoint.delay_secs > 86_400 {
            errors.push(err("checkpoint.delay_secs", "must be at most 86400 seconds"));
        }
        if self.audit.start_minute().is_none() {
            errors.push(err("audit.daily_start_time", "must be \"HH:MM\" with HH 00..=23 and MM 00..=59"));
        }
        if !(60..=1440).contains(&self.audit.periodicity_mins) {
            errors.push(err("audit.periodicity_mins", "must be 60..=1440 minutes"));
        }
        let mut groups = BTreeSet::new();
        for (i, m) in self.monitors.iter().enumerate() {
            let field = format!("monitor[{i}]");
            if !groups.insert((m.kind, m.group)) {
                errors.push(err(&field, format!("{} group {} is configured twice", m.kind, m.group)));
            }
            if m.kind == MonitorKind::Aaa && m.secret.is_empty() {
                errors.push(err(&format!("{field}.secret"), "an AAA monitor needs the RADIUS shared secret"));
            }
            if m.interval_ms < 10 || m.timeout_ms < 10 || m.max_retries == 0 {
                errors.push(err(
                    field.as_str(),
                    "interval_ms and timeout_ms must be at least 10, max_retries at least 1",
                ));
            }
            if m.targets.is_empty() {
                errors.push(err(&format!("{field}.targets"), "must name at least one target"));
            }
            let mut seen = BTreeSet::new();
            for t in &m.targets {
                if t.trim().is_empty() {
                    errors.push(err(&format!("{field}.targets"), "a target is empty"));
                } else if !seen.insert(t.as_str()) {
                    errors.push(err(&format!("{field}.targets"), format!("target {t} is listed twice")));
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ConfigErrors(errors)) }
    }

    /// `hello-interval` as a duration.
    pub fn hello_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.hello_interval_ms.max(MIN_HELLO_MS)))
    }
    /// `dead-interval` as a duration.
    pub fn dead_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.dead_interval_ms.max(3 * MIN_HELLO_MS)))
    }
    /// `delay-interval` as a duration.
    pub fn delay_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.delay_interval_secs))
    }
    /// `guard-period` as a duration.
    pub fn guard_period(&self) -> Duration {
        Duration::from_secs(u64::from(self.guard_period_secs))
    }
    /// `damping-period` as a duration.
    pub fn damping_period(&self) -> Duration {
        Duration::from_secs(u64::from(self.damping_period_secs))
    }
    /// `checkpoint session periodic-interval` as a duration.
    pub fn periodic_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.checkpoint.periodic_interval_mins) * 60)
    }
    /// The checkpoint delay as a duration.
    pub fn checkpoint_delay(&self) -> Duration {
        Duration::from_secs(u64::from(self.checkpoint.delay_secs))
    }

    /// A short digest of the settings that must be identical on both chassis (timers, checkpoint
    /// and NACK rules, audit, monitors; not the node's own id, addresses, mode, priority, key or
    /// compression wish). Exchanged in the handshake: the seed's `srp validate-configuration`.
    pub fn shared_digest(&self) -> String {
        #[derive(Serialize)]
        struct Shared<'a> {
            hello: u32,
            dead: u32,
            delay: u32,
            guard: u32,
            damping: u32,
            periodic: u32,
            ckpt_delay: u32,
            nack: &'a NackConfig,
            audit: &'a AuditConfig,
            monitors: &'a [MonitorGroupConfig],
        }
        let shared = Shared {
            hello: self.hello_interval_ms,
            dead: self.dead_interval_ms,
            delay: self.delay_interval_secs,
            guard: self.guard_period_secs,
            damping: self.damping_period_secs,
            periodic: self.checkpoint.periodic_interval_mins,
            ckpt_delay: self.checkpoint.delay_secs,
            nack: &self.checkpoint.nack,
            audit: &self.audit,
            monitors: &self.monitors,
        };
        let json = serde_json::to_vec(&shared).unwrap_or_default();
        let hash = Sha256::digest(&json);
        hash[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SrpConfig {
        SrpConfig::new(
            "tg-a",
            "192.0.2.1:7500".parse().unwrap(),
            "192.0.2.2:7500".parse().unwrap(),
            "0123456789abcdef",
            ChassisMode::Primary,
            10,
        )
    }

    fn fields(c: &SrpConfig) -> Vec<String> {
        match c.validate() {
            Ok(()) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn defaults_follow_the_seed_and_validate() {
        let c = base();
        assert_eq!(c.checkpoint.periodic_interval_mins, 45);
        assert_eq!(c.checkpoint.nack.max_response, 3);
        assert_eq!(c.checkpoint.compression, Compression::Zlib);
        assert_eq!(c.checkpoint.delay_secs, 0);
        assert_eq!(c.audit.periodicity_mins, 60);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn parses_toml_with_defaults_and_rejects_unknown_fields() {
        let text = r#"
            node_id = "tg-b"
            peer_address = "192.0.2.1:7500"
            bind_address = "192.0.2.2:7500"
            shared_key = "0123456789abcdef0123"
            chassis_mode = "backup"
            priority = 20
            [checkpoint]
            compression = "lz4"
            [checkpoint.nack]
            max_response = 5
            [[monitor]]
            kind = "bgp"
            group = 1
            targets = ["10.1.1.16", "10.1.1.17"]
        "#;
        let c: SrpConfig = toml::from_str(text).unwrap();
        assert_eq!(c.chassis_mode, ChassisMode::Backup);
        assert_eq!(c.checkpoint.compression, Compression::Lz4);
        assert_eq!(c.checkpoint.nack.max_response, 5);
        assert!(c.checkpoint.nack.micro);
        assert_eq!(c.hello_interval_ms, 3_000);
        assert_eq!(c.monitors.len(), 1);
        c.validate().unwrap();
        let bad = text.replace("priority = 20", "priority = 20\nprio = 1");
        assert!(toml::from_str::<SrpConfig>(&bad).is_err());
    }

    #[test]
    fn dead_interval_must_be_three_hellos() {
        let mut c = base();
        c.hello_interval_ms = 100;
        c.dead_interval_ms = 299;
        let e = c.validate().unwrap_err();
        assert_eq!(e.0[0].field, "dead_interval_ms");
        assert!(e.to_string().contains("three times hello_interval_ms"), "{e}");
        c.dead_interval_ms = 300;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn periodic_interval_range_and_step() {
        let mut c = base();
        for (v, ok) in [(15, false), (30, true), (44, false), (45, true), (1440, true), (1455, false), (0, false)] {
            c.checkpoint.periodic_interval_mins = v;
            assert_eq!(c.validate().is_ok(), ok, "{v}");
        }
        c.checkpoint.periodic_interval_mins = 50;
        assert_eq!(fields(&c), vec!["checkpoint.periodic_interval_mins"]);
    }

    #[test]
    fn audit_rules() {
        let mut c = base();
        c.audit.periodicity_mins = 59;
        c.audit.daily_start_time = "24:00".into();
        assert_eq!(fields(&c), vec!["audit.daily_start_time", "audit.periodicity_mins"]);
        c.audit = AuditConfig { daily_start_time: "06 00".into(), periodicity_mins: 90 };
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.audit.start_minute(), Some(360));
        assert_eq!(c.audit.minutes_until_next(0), Some(360));
        assert_eq!(c.audit.minutes_until_next(360), Some(0));
        assert_eq!(c.audit.minutes_until_next(361), Some(89));
        // 06:00 + 12 x 90 min = 24:00: the last run of the day is at 22:30, then 06:00 next day.
        assert_eq!(c.audit.minutes_until_next(1351), Some(1440 - 1351 + 360));
    }

    #[test]
    fn identity_and_address_rules() {
        let mut c = base();
        c.node_id = String::new();
        c.bind_address = "0.0.0.0:7500".parse().unwrap();
        c.shared_key = "short".into();
        c.priority = 0;
        assert_eq!(fields(&c), vec!["node_id", "bind_address", "shared_key", "priority"]);
        let mut c = base();
        c.peer_address = c.bind_address;
        assert_eq!(fields(&c), vec!["peer_address"]);
        c.node_id = "bad id".into();
        assert!(fields(&c).contains(&"node_id".to_string()));
    }

    #[test]
    fn monitor_rules() {
        let mut c = base();
        c.monitors = vec![
            MonitorGroupConfig::new(MonitorKind::Bgp, 0, vec!["a".into(), "a".into()]),
            MonitorGroupConfig::new(MonitorKind::Bgp, 0, vec![]),
        ];
        assert_eq!(fields(&c), vec!["monitor[0].targets", "monitor[1]", "monitor[1].targets"]);
        c.monitors = vec![MonitorGroupConfig::new(MonitorKind::Aaa, 0, vec!["10.0.0.5:1812".into()])];
        assert_eq!(fields(&c), vec!["monitor[0].secret"]);
        c.monitors[0].secret = "s".into();
        c.monitors[0].max_retries = 0;
        assert_eq!(fields(&c), vec!["monitor[0]"]);
    }

    #[test]
    fn debug_redacts_the_key_and_digest_ignores_local_fields() {
        let c = base();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let mut other = c.clone();
        other.node_id = "tg-b".into();
        other.priority = 20;
        other.chassis_mode = ChassisMode::Backup;
        other.checkpoint.compression = Compression::Lz4;
        assert_eq!(c.shared_digest(), other.shared_digest());
        other.hello_interval_ms = 5_000;
        assert_ne!(c.shared_digest(), other.shared_digest());
    }
}
