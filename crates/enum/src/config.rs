//! The `[enum]` section of the tollgate configuration.
//!
//! ```toml
//! [enum]
//! listen_udp = ["127.0.0.1:5353"]
//! listen_tcp = ["127.0.0.1:5353"]
//! suffixes = ["e164.arpa."]
//! ttl = 0
//! health_check_name = "health.tollgate."
//! source_edns_option = 4          # EDNS0 ENUM Source-URI (draft-kaplan-enum-source-uri)
//! source_label_prefix = "src-"    # query-name scheme for SBCs without EDNS0 options
//! source_label_numbers = "e164"   # the src- label holds E.164 digits; or "dialing-plan"
//! no_record = "nxdomain"          # or "nodata": how a "no-record" answer is sent
//! stale_after_ms = 1000           # answers older than this are recorded as stale
//! tcp_max_connections = 256       # ENUM TCP connections served at once, all sources
//! tcp_max_connections_per_source = 16
//! tcp_max_connection_secs = 300   # a TCP connection is closed after this, busy or not
//!
//! [enum.naptr]
//! order = 100
//! preference = 10
//! flags = "u"
//! service = "E2U+sip"
//!
//! [enum.answers]
//! allow = { kind = "no-record" }
//! terminate = { kind = "naptr", uri = "{intercept}" }
//! reject = { kind = "naptr", uri = "sip:{cause}@reject.tollgate.invalid" }
//! redirect = { kind = "naptr", uri = "sip:{target}@127.0.0.1:5080" }
//! redirect_uri = { kind = "naptr", uri = "{target}" }
//!
//! [enum.intercepts]
//! default = "sip:intercept@127.0.0.1:5090"
//!
//! [[enum.devices]]
//! name = "sbc-1"
//! addresses = ["127.0.0.1/32"]
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tollgate_number::enum_name::Suffix;

use crate::template::{SIP_ONLY_VARS, Template, Var};

/// A configuration value that cannot be used, naming the field.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("enum.{field}: {message}")]
pub struct ConfigError {
    /// Dotted field path below `[enum]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.to_string(), message: message.into() }
}

/// How an answer for one kind of decision is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AnswerTemplate {
    /// No record: the SBC routes the call as it would without tollgate.
    NoRecord,
    /// One NAPTR record whose regexp rewrites to the rendered URI.
    Naptr {
        /// The URI template.
        uri: Template,
    },
}

/// Templates per action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// Calls the policy allows.
    pub allow: AnswerTemplate,
    /// Calls terminated to an intercept destination.
    pub terminate: AnswerTemplate,
    /// Calls terminated with a reject cause.
    pub reject: AnswerTemplate,
    /// Calls redirected to a number.
    pub redirect: AnswerTemplate,
    /// Calls redirected to a SIP URI.
    pub redirect_uri: AnswerTemplate,
}

fn naptr(uri: &str) -> AnswerTemplate {
    // The built-in templates are constants known to parse.
    AnswerTemplate::Naptr { uri: Template::parse(uri).unwrap_or_else(|e| panic!("built-in template: {e}")) }
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            allow: AnswerTemplate::NoRecord,
            terminate: naptr("{intercept}"),
            reject: naptr("sip:{cause}@reject.tollgate.invalid"),
            redirect: naptr("sip:{target}@127.0.0.1:5080"),
            redirect_uri: naptr("{target}"),
        }
    }
}

/// Fixed fields of every NAPTR answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NaptrFields {
    /// NAPTR order.
    pub order: u16,
    /// NAPTR preference.
    pub preference: u16,
    /// NAPTR flags (`u`: the result is a URI).
    pub flags: String,
    /// ENUM service (`E2U+sip`).
    pub service: String,
}

impl Default for NaptrFields {
    fn default() -> Self {
        NaptrFields { order: 100, preference: 10, flags: "u".into(), service: "E2U+sip".into() }
    }
}

/// How "no record" answers are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NoRecord {
    /// RCODE NXDOMAIN (the number has no ENUM entry).
    #[default]
    Nxdomain,
    /// RCODE NOERROR with an empty answer section.
    Nodata,
}

/// How the calling digits of the query-name label (`src-<digits>`) are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceLabelNumbers {
    /// E.164 digits, country code first, no `+` and no dialing plan applied:
    /// `src-442079460000` is +44 20 7946 0000 (what `tollgate lookup` writes).
    #[default]
    E164,
    /// The digits as the configured dialing plan reads them (national numbers, trunk and
    /// international prefixes), for SBCs that can only send the caller as dialled.
    DialingPlan,
}

/// A named SBC (or other client) by address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Name used in records and metrics.
    pub name: String,
    /// Addresses or networks it queries from.
    pub addresses: Vec<IpNet>,
}

/// The SOA sent in the authority section of negative answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoaConfig {
    /// Primary name server.
    pub mname: String,
    /// Responsible mailbox, DNS form.
    pub rname: String,
    /// Negative-caching TTL (SOA minimum), seconds.
    pub negative_ttl: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig { mname: "tollgate.invalid.".into(), rname: "hostmaster.tollgate.invalid.".into(), negative_ttl: 0 }
    }
}

/// The `[enum]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnumConfig {
    /// UDP listen addresses.
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub listen_tcp: Vec<SocketAddr>,
    /// ENUM suffixes served.
    pub suffixes: Vec<String>,
    /// TTL of answers (0: SBCs must not cache per-call decisions).
    pub ttl: u32,
    /// A name answered with A 127.0.0.1 and TXT "tollgate ok" for load-balancer health checks.
    pub health_check_name: String,
    /// EDNS0 option code carrying the calling party's URI (4, ENUM Source-URI); `none`
    /// disables.
    pub source_edns_option: Option<u16>,
    /// Label prefix of the query-name scheme: `<reversed called digits>.<prefix><calling
    /// digits>.<suffix>`; empty disables.
    pub source_label_prefix: String,
    /// How the calling digits of that label are read: E.164 digits (default) or through the
    /// dialing plan.
    pub source_label_numbers: SourceLabelNumbers,
    /// How "no record" answers are sent.
    pub no_record: NoRecord,
    /// Fixed NAPTR fields.
    pub naptr: NaptrFields,
    /// Templates per action.
    pub answers: Answers,
    /// Intercept destinations by name, inserted as `{intercept}`.
    pub intercepts: BTreeMap<String, String>,
    /// Known SBCs.
    pub devices: Vec<DeviceConfig>,
    /// SOA of negative answers.
    pub soa: SoaConfig,
    /// UDP receive tasks per listen address (0: one per CPU).
    pub udp_workers: usize,
    /// Each UDP receive task gets its own socket on the listen address (`SO_REUSEPORT`), and
    /// the kernel spreads clients (by address and port) over them; false (the default): the
    /// tasks share one socket, and whichever is free reads the next batch. On 2 cores shared
    /// with the load generator, one shared socket answered about 12 % more (docs/PERFORMANCE.md);
    /// many cores may gain from their own. The address is first bound without `SO_REUSEPORT`,
    /// so an address another process already holds (another engine's sockets included) is
    /// refused as before.
    pub udp_reuseport: bool,
    /// Seconds an idle TCP connection is kept.
    pub tcp_idle_timeout_secs: u64,
    /// An answer sent more than this many milliseconds after the kernel received its query is
    /// stale: an SBC gives up after its timeout (100 to 300 ms is typical), so it did not use
    /// it. Stale answers are still sent, and recorded with `stale: true`.
    pub stale_after_ms: u64,
    /// TCP connections served at once per listener, from all sources; more are refused.
    pub tcp_max_connections: usize,
    /// TCP connections served at once per listener from one source address; more are refused.
    pub tcp_max_connections_per_source: usize,
    /// Seconds after which a TCP connection is closed (after the answer in progress), however
    /// busy it is, so no client holds a slot forever.
    pub tcp_max_connection_secs: u64,
}

impl Default for EnumConfig {
    fn default() -> Self {
        EnumConfig {
            listen_udp: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            listen_tcp: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            suffixes: vec!["e164.arpa.".into()],
            ttl: 0,
            health_check_name: "health.tollgate.".into(),
            source_edns_option: Some(4),
            source_label_prefix: "src-".into(),
            source_label_numbers: SourceLabelNumbers::E164,
            no_record: NoRecord::Nxdomain,
            naptr: NaptrFields::default(),
            answers: Answers::default(),
            intercepts: BTreeMap::from([("default".into(), "sip:intercept@127.0.0.1:5090".into())]),
            devices: Vec::new(),
            soa: SoaConfig::default(),
            udp_workers: 0,
            udp_reuseport: false,
            tcp_idle_timeout_secs: 10,
            stale_after_ms: 1000,
            tcp_max_connections: 256,
            tcp_max_connections_per_source: 16,
            tcp_max_connection_secs: 300,
        }
    }
}

impl EnumConfig {
    /// UDP receive tasks (each with its own spool lane) per socket: `udp_workers`, or one per
    /// CPU of this machine when it is 0.
    pub fn udp_worker_count(&self) -> usize {
        match self.udp_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// Checks everything that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen_udp.is_empty() && self.listen_tcp.is_empty() {
            return Err(err("listen_udp", "at least one UDP or TCP listen address is needed"));
        }
        if self.suffixes.is_empty() {
            return Err(err("suffixes", "at least one ENUM suffix is needed"));
        }
        for (i, s) in self.suffixes.iter().enumerate() {
            Suffix::new(s).map_err(|e| err(&format!("suffixes[{i}]"), e.to_string()))?;
        }
        hickory_proto::rr::Name::from_ascii(&self.health_check_name)
            .map_err(|e| err("health_check_name", format!("{:?} is not a domain name: {e}", self.health_check_name)))?;
        if self.source_label_prefix.contains('.') {
            return Err(err("source_label_prefix", "must be part of one label (no '.')"));
        }
        if self.naptr.flags.is_empty() || !hickory_proto::rr::rdata::naptr::verify_flags(self.naptr.flags.as_bytes()) {
            return Err(err("naptr.flags", "flags must be letters or digits, e.g. \"u\""));
        }
        if self.naptr.service.is_empty() || self.naptr.service.len() > 255 {
            return Err(err("naptr.service", "service must be 1 to 255 characters, e.g. \"E2U+sip\""));
        }
        let checks: [(&str, &AnswerTemplate, &[Var]); 5] = [
            ("answers.allow", &self.answers.allow, &[Var::Target, Var::Intercept, Var::Cause]),
            ("answers.terminate", &self.answers.terminate, &[Var::Target, Var::Cause]),
            ("answers.reject", &self.answers.reject, &[Var::Target, Var::Intercept]),
            ("answers.redirect", &self.answers.redirect, &[Var::Intercept, Var::Cause]),
            ("answers.redirect_uri", &self.answers.redirect_uri, &[Var::Intercept, Var::Cause, Var::TargetDigits]),
        ];
        for (field, answer, _) in checks {
            if let AnswerTemplate::Naptr { uri } = answer
                && let Some(v) = SIP_ONLY_VARS.iter().find(|v| uri.uses(**v))
            {
                return Err(err(
                    field,
                    format!(
                        "template {:?} uses {v:?}, which only the SIP redirect server has (an ENUM query has no Request-URI)",
                        uri.as_str()
                    ),
                ));
            }
        }
        for (field, answer, meaningless) in checks {
            if let AnswerTemplate::Naptr { uri } = answer
                && let Some(v) = meaningless.iter().find(|v| uri.uses(**v))
            {
                return Err(err(
                    field,
                    format!("template {:?} uses {v:?}, which has no value for this action", uri.as_str()),
                ));
            }
        }
        for (name, value) in &self.intercepts {
            if value.is_empty() || value.contains('!') || value.contains('\\') || value.contains(char::is_whitespace) {
                return Err(err(&format!("intercepts.{name}"), format!("{value:?} is not usable in a NAPTR answer")));
            }
        }
        if let AnswerTemplate::Naptr { uri } = &self.answers.terminate
            && uri.uses(Var::Intercept)
            && self.intercepts.is_empty()
        {
            return Err(err("intercepts", "the terminate template uses {intercept} but no intercept is defined"));
        }
        for (i, d) in self.devices.iter().enumerate() {
            // The name is every record's `client`: bounded like the collector's text fields.
            if d.name.trim().is_empty() || d.name.len() > 64 || d.name.chars().any(char::is_control) {
                return Err(err(
                    &format!("devices[{i}].name"),
                    format!("{:?} must be 1 to 64 characters without control characters", d.name),
                ));
            }
        }
        if self.stale_after_ms == 0 {
            return Err(err("stale_after_ms", "must be at least 1 (milliseconds); 1000 is a safe bound"));
        }
        if self.tcp_max_connections == 0 {
            return Err(err("tcp_max_connections", "must be at least 1"));
        }
        if self.tcp_max_connections_per_source == 0 || self.tcp_max_connections_per_source > self.tcp_max_connections {
            return Err(err(
                "tcp_max_connections_per_source",
                format!(
                    "must be 1 to tcp_max_connections ({}), not {}",
                    self.tcp_max_connections, self.tcp_max_connections_per_source
                ),
            ));
        }
        if self.tcp_max_connection_secs == 0 {
            return Err(err("tcp_max_connection_secs", "must be at least 1 (seconds)"));
        }
        let name_ok = |s: &str| hickory_proto::rr::Name::from_ascii(s).is_ok();
        if !name_ok(&self.soa.mname) || !name_ok(&self.soa.rname) {
            return Err(err("soa", "mname and rname must be domain names"));
        }
        Ok(())
    }

    /// The suffixes, normalised.
    pub fn parsed_suffixes(&self) -> Vec<Suffix> {
        self.suffixes.iter().filter_map(|s| Suffix::new(s).ok()).collect()
    }

    /// The intercept names defined.
    pub fn intercept_names(&self) -> Vec<String> {
        self.intercepts.keys().cloned().collect()
    }

    /// The configured name of the device at `ip`, if any.
    pub fn device_name(&self, ip: IpAddr) -> Option<&str> {
        self.devices.iter().find(|d| d.addresses.iter().any(|n| n.contains(&ip))).map(|d| d.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        EnumConfig::default().validate().unwrap();
    }

    #[test]
    fn parses_answers_from_toml() {
        let cfg: EnumConfig = toml::from_str(
            r#"
suffixes = ["e164.arpa", "enum.example.net"]
[answers]
allow = { kind = "naptr", uri = "sip:{dest}@10.0.0.1" }
terminate = { kind = "no-record" }
reject = { kind = "naptr", uri = "sip:{cause}@reject.invalid" }
redirect = { kind = "naptr", uri = "sip:{target}@10.0.0.1" }
redirect_uri = { kind = "naptr", uri = "{target}" }
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.parsed_suffixes().len(), 2);
        assert_eq!(cfg.answers.allow, naptr("sip:{dest}@10.0.0.1"));
        assert_eq!(cfg.answers.terminate, AnswerTemplate::NoRecord);
        let bad = toml::from_str::<EnumConfig>("[answers]\nallow = { kind = \"naptr\", uri = \"sip:{bogus}\" }\n");
        assert!(bad.unwrap_err().to_string().contains("unknown placeholder {bogus}"));
    }

    #[test]
    fn meaningless_placeholders_are_refused() {
        let mut cfg = EnumConfig::default();
        cfg.answers.allow = naptr("sip:{target}@x");
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.field, "answers.allow");
        let mut cfg = EnumConfig::default();
        cfg.intercepts.clear();
        assert_eq!(cfg.validate().unwrap_err().field, "intercepts");
        for sip_only in ["sip:{dest}@{ruri_host}", "{ruri}"] {
            let mut cfg = EnumConfig::default();
            cfg.answers.redirect = naptr(sip_only);
            let e = cfg.validate().unwrap_err();
            assert_eq!(e.field, "answers.redirect");
            assert!(e.message.contains("only the SIP redirect server"), "{e}");
        }
        let cfg = EnumConfig { suffixes: vec!["".into()], ..Default::default() };
        assert_eq!(cfg.validate().unwrap_err().field, "suffixes[0]");
    }

    #[test]
    fn connection_limits_and_stale_bound_are_checked_naming_the_field() {
        let field = |cfg: EnumConfig| cfg.validate().unwrap_err().field;
        let base = EnumConfig::default;
        assert_eq!(field(EnumConfig { stale_after_ms: 0, ..base() }), "stale_after_ms");
        assert_eq!(field(EnumConfig { tcp_max_connections: 0, ..base() }), "tcp_max_connections");
        assert_eq!(field(EnumConfig { tcp_max_connections_per_source: 0, ..base() }), "tcp_max_connections_per_source");
        let e =
            EnumConfig { tcp_max_connections: 8, tcp_max_connections_per_source: 9, ..base() }.validate().unwrap_err();
        assert_eq!(e.to_string(), "enum.tcp_max_connections_per_source: must be 1 to tcp_max_connections (8), not 9");
        assert_eq!(field(EnumConfig { tcp_max_connection_secs: 0, ..base() }), "tcp_max_connection_secs");
    }

    #[test]
    fn source_label_numbers_parse_by_name() {
        let cfg: EnumConfig = toml::from_str("source_label_numbers = \"dialing-plan\"").unwrap();
        assert_eq!(cfg.source_label_numbers, SourceLabelNumbers::DialingPlan);
        let cfg: EnumConfig = toml::from_str("source_label_numbers = \"e164\"").unwrap();
        assert_eq!(cfg.source_label_numbers, SourceLabelNumbers::E164);
        assert!(toml::from_str::<EnumConfig>("source_label_numbers = \"national\"").is_err());
    }

    #[test]
    fn device_names_are_bounded() {
        let mut cfg = EnumConfig::default();
        cfg.devices.push(DeviceConfig { name: "x".repeat(65), addresses: vec!["10.1.0.0/16".parse().unwrap()] });
        assert_eq!(cfg.validate().unwrap_err().field, "devices[0].name");
        cfg.devices[0].name = "sbc-1".into();
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn devices_match_by_network() {
        let mut cfg = EnumConfig::default();
        cfg.devices.push(DeviceConfig { name: "sbc-1".into(), addresses: vec!["10.1.0.0/16".parse().unwrap()] });
        assert_eq!(cfg.device_name("10.1.2.3".parse().unwrap()), Some("sbc-1"));
        assert_eq!(cfg.device_name("10.2.2.3".parse().unwrap()), None);
    }
}
