//! The `[sip_redirect]` section of the tollgate configuration.
//!
//! ```toml
//! [sip_redirect]
//! listen_udp = ["127.0.0.1:5070"]     # empty (the default): no SIP listener
//! listen_tcp = ["127.0.0.1:5070"]
//! listen_tls = ["127.0.0.1:5071"]     # SIP over TLS, with [tls]'s certificate
//!
//! retransmission_window_secs = 32   # 64*T1: a repeated INVITE gets the first answer again
//! retransmission_entries = 320000  # >= window x peak INVITE/s
//! retransmission_max_mb = 256
//!
//! [sip_redirect.answers]
//! allow = { kind = "redirect", code = 302, contact = "{ruri}" }
//! terminate = { kind = "redirect", code = 302, contact = "{intercept}" }
//! reject = { kind = "final" }                       # the policy's cause, with a Reason header
//! redirect = { kind = "redirect", code = 302, contact = "sip:{target}@{ruri_host};user=phone" }
//! redirect_uri = { kind = "redirect", code = 302, contact = "{target}" }
//!
//! [[sip_redirect.clients]]
//! name = "sbc-1"
//! addresses = ["10.1.0.0/16"]
//! allow = { kind = "final", code = 404 }            # this SBC continues on 404
//! ```
//!
//! Contact templates are [`Template`]s, with the ENUM answers' placeholders (`{dest}`,
//! `{source}`, `{target}`, `{intercept}`, `{cause}`, `{rule}`, the `_digits` forms) and two of
//! their own: `{ruri}`, the INVITE's Request-URI as sent, and `{ruri_host}`, its host and
//! port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tollgate_enum::Template;
use tollgate_enum::template::Var;

/// A configuration value that cannot be used, naming the field.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("sip_redirect.{field}: {message}")]
pub struct ConfigError {
    /// Dotted field path below `[sip_redirect]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Smallest `max_message_bytes`: an INVITE with a small SDP offer is about 1 KiB.
pub const MIN_MESSAGE_BYTES: u64 = 1024;
/// Largest `max_message_bytes`: the largest UDP payload (a TCP message is held to the same).
pub const MAX_MESSAGE_BYTES: u64 = 65_535;

/// The `[sip_redirect]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// UDP listen addresses (none: no SIP over UDP). With `[srp]` these are service addresses,
    /// bound only by the Active, and need fixed ports.
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listen addresses (none: no SIP over TCP). With `[srp]`, service addresses too.
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS listen addresses (none: no SIP over TLS): the TCP server over TLS 1.2 or 1.3,
    /// presenting `[tls]`'s certificate (reloaded with it), asking no client certificate (the
    /// clients are told apart by address). Needs `[tls] cert` and `key`. The `tcp_*` limits
    /// apply to each TLS listener too, and a handshake not finished within
    /// `tcp_idle_timeout_secs` closes the connection. With `[srp]`, service addresses too.
    pub listen_tls: Vec<SocketAddr>,
    // --- listener limits (the listeners' helper owns these fields) ---
    /// Largest SIP message accepted, bytes (1024 to 65535): a larger UDP datagram is dropped
    /// unanswered and counted; a TCP connection sending a larger message, or a head this long
    /// without its empty line, is closed before the rest is read.
    pub max_message_bytes: usize,
    /// Seconds (1 to 3600) a TCP connection is kept without a whole message: a connection
    /// that is silent, or sends its message too slowly, is closed after this.
    pub tcp_idle_timeout_secs: u64,
    /// TCP connections served at once per listener, from all sources (1 to 65536); more are
    /// closed at once and counted.
    pub tcp_max_connections: usize,
    /// TCP connections served at once per listener from one source address (1 to
    /// `tcp_max_connections`); more are closed at once and counted.
    pub tcp_max_connections_per_source: usize,
    /// Seconds (1 to 604800) after which a TCP connection is closed (after the answer in
    /// progress), however busy it is, so no client keeps its slot forever.
    pub tcp_max_connection_secs: u64,
    // --- answers and clients (the responder's helper owns these fields) ---
    /// The SBCs, softswitches and PBXs allowed to ask, by source address; a request from any
    /// other address gets no decision and no record (dropped, or 403 Forbidden: see
    /// `answer_strangers`). The default is one client, `loopback` (127.0.0.0/8 and ::1/128).
    pub clients: Vec<ClientConfig>,
    /// Whether requests from addresses in no client are answered `403 Forbidden` (the
    /// ClearIP convention) over UDP too. Off (the default): over UDP they are dropped
    /// unanswered and counted (`tollgate_sip_redirect_forbidden_total`), because a UDP source
    /// can be forged and a 403 is larger than the request (a reflection amplifier); over TCP a
    /// stranger's connection is closed at accept (`tcp_refused_total{reason="not_client"}`).
    /// On: a 403 over UDP, and over TCP a 403 to its first request, then the connection closed.
    pub answer_strangers: bool,
    /// The answer sent for each kind of decision (each client may override them).
    pub answers: Answers,
    /// Seconds an INVITE's answer is kept to be sent again, byte for byte, to a retransmission
    /// of that INVITE (same top Via branch, Call-ID, CSeq and sender), which is neither decided
    /// nor recorded again; also how long a CANCEL of it gets 200. 1 to 300; the default 32 is
    /// 64*T1, the time a UDP client retransmits an INVITE (RFC 3261 timer B).
    pub retransmission_window_secs: u64,
    /// Most INVITE answers kept for retransmissions; the oldest is forgotten first (and
    /// counted), and its retransmission would be decided and recorded again. Keep it at least
    /// `retransmission_window_secs` x the peak INVITE rate: the default 320,000 covers 10,000
    /// INVITE/s for 32 s. 1 to 10,000,000.
    pub retransmission_entries: usize,
    /// Most memory, in MiB, the answers kept for retransmissions take with their keys (an
    /// answer is typically 0.5 to 0.7 KiB); the oldest is forgotten first when over. 1 to
    /// 4096; the default 256 holds the default 320,000 entries of typical answers.
    pub retransmission_max_mb: u64,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            listen_udp: Vec::new(),
            listen_tcp: Vec::new(),
            listen_tls: Vec::new(),
            max_message_bytes: 16 * 1024,
            tcp_idle_timeout_secs: 60,
            tcp_max_connections: 256,
            tcp_max_connections_per_source: 16,
            tcp_max_connection_secs: 3600,
            clients: vec![ClientConfig::loopback()],
            answer_strangers: false,
            answers: Answers::default(),
            retransmission_window_secs: 32,
            retransmission_entries: 320_000,
            retransmission_max_mb: 256,
        }
    }
}

impl RedirectConfig {
    /// Checks the listeners' limits (`max_message_bytes` and the `tcp_*` fields), naming the
    /// field and its range.
    pub fn validate_listeners(&self) -> Result<(), ConfigError> {
        let check = |field: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError { field: field.to_string(), message: format!("is {value}; it must be {min} to {max}") })
            }
        };
        check("max_message_bytes", self.max_message_bytes as u64, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES)?;
        check("tcp_idle_timeout_secs", self.tcp_idle_timeout_secs, 1, 3600)?;
        check("tcp_max_connections", self.tcp_max_connections as u64, 1, 65_536)?;
        check(
            "tcp_max_connections_per_source",
            self.tcp_max_connections_per_source as u64,
            1,
            self.tcp_max_connections.max(1) as u64,
        )?;
        check("tcp_max_connection_secs", self.tcp_max_connection_secs, 1, 7 * 86_400)?;
        Ok(())
    }

    /// True when at least one listen address is configured.
    pub fn enabled(&self) -> bool {
        !self.listen_udp.is_empty() || !self.listen_tcp.is_empty() || !self.listen_tls.is_empty()
    }

    /// Checks everything that parsing alone cannot, naming the field of the first problem
    /// found (`clients[1].allow.code`, `answers.redirect.contact`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.clients.is_empty() {
            return Err(err(
                "clients",
                "no client is configured, so every request would be refused (403): add a [[sip_redirect.clients]]",
            ));
        }
        for (i, client) in self.clients.iter().enumerate() {
            client.validate(&format!("clients[{i}]"))?;
            if let Some(j) = self.clients[..i].iter().position(|c| c.name == client.name) {
                return Err(err(
                    &format!("clients[{i}].name"),
                    format!("{:?} is also clients[{j}]'s name", client.name),
                ));
            }
        }
        self.answers.validate("answers")?;
        if !(1..=300).contains(&self.retransmission_window_secs) {
            return Err(err(
                "retransmission_window_secs",
                format!(
                    "must be 1 to 300 (seconds), not {}; 32 (64*T1) is the INVITE's retransmission time",
                    self.retransmission_window_secs
                ),
            ));
        }
        if !(1..=10_000_000).contains(&self.retransmission_entries) {
            return Err(err(
                "retransmission_entries",
                format!("must be 1 to 10,000,000, not {}", self.retransmission_entries),
            ));
        }
        if !(1..=4096).contains(&self.retransmission_max_mb) {
            return Err(err(
                "retransmission_max_mb",
                format!("must be 1 to 4096 (MiB), not {}", self.retransmission_max_mb),
            ));
        }
        Ok(())
    }

    /// The first configured client whose addresses contain `ip`.
    pub fn client(&self, ip: IpAddr) -> Option<&ClientConfig> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.clients.iter().find(|c| c.addresses.iter().any(|n| n.contains(&ip)))
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.to_string(), message: message.into() }
}

/// How the answer to one kind of decision is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Answer {
    /// A redirection (RFC 3261 21.3): the client sends the call to the Contact.
    Redirect {
        /// The status code, 300 to 399 (default 302 Moved Temporarily).
        #[serde(default = "default_redirect_code")]
        code: u16,
        /// The Contact URI's template (written as `Contact: <URI>`); the rendered URI must be
        /// a `sip:`, `sips:` or `tel:` URI of at most 512 characters without spaces, quotes or
        /// angle brackets, else the call fails open.
        contact: Template,
    },
    /// A final error response: the client stops (or, for an allow answer such as 404 or 380,
    /// continues routing as its own convention says).
    Final {
        /// The status code, 400 to 699. May be left out only for `reject`, which then sends
        /// the policy's cause (its `cause`, e.g. 603).
        #[serde(default)]
        code: Option<u16>,
        /// Adds `Reason: SIP ;cause=<code> ;text="<rule>"` (RFC 3326) naming the deciding
        /// rule (default true).
        #[serde(default = "default_true")]
        reason: bool,
    },
}

fn default_redirect_code() -> u16 {
    302
}

fn default_true() -> bool {
    true
}

impl Answer {
    /// A 302 to `contact` (a constant template known to parse).
    fn redirect(contact: &str) -> Answer {
        Answer::Redirect {
            code: 302,
            contact: Template::parse(contact).unwrap_or_else(|e| panic!("built-in template: {e}")),
        }
    }

    /// Checks the code's range and that the template uses no placeholder without a value for
    /// this action (`meaningless`).
    fn validate(&self, field: &str, meaningless: &[Var], code_required: bool) -> Result<(), ConfigError> {
        match self {
            Answer::Redirect { code, contact } => {
                if !(300..=399).contains(code) {
                    return Err(err(
                        &format!("{field}.code"),
                        format!("a redirect's code must be 300 to 399, not {code}"),
                    ));
                }
                if let Some(v) = meaningless.iter().find(|v| contact.uses(**v)) {
                    return Err(err(
                        &format!("{field}.contact"),
                        format!("template {:?} uses {v:?}, which has no value for this action", contact.as_str()),
                    ));
                }
            }
            Answer::Final { code: Some(code), .. } => {
                if !(400..=699).contains(code) {
                    return Err(err(
                        &format!("{field}.code"),
                        format!("a final answer's code must be 400 to 699, not {code}"),
                    ));
                }
            }
            Answer::Final { code: None, .. } if code_required => {
                return Err(err(
                    &format!("{field}.code"),
                    "a final answer needs a code (400 to 699); only reject may leave it out (the policy's cause)",
                ));
            }
            Answer::Final { code: None, .. } => {}
        }
        Ok(())
    }
}

/// The answer per kind of decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Answers {
    /// Calls the policy allows. Default: 302 with the original Request-URI as Contact
    /// (`{ruri}`), so the client routes the call as dialled; SBCs that take a final error as
    /// "continue" (a 380 or 404 convention) configure that instead.
    pub allow: Answer,
    /// Calls terminated to an intercept destination. Default: 302 to `{intercept}` (the
    /// intercept's URI from `[enum.intercepts]`).
    pub terminate: Answer,
    /// Calls terminated with a cause. Default: the policy's cause as a final response with a
    /// Reason header (`603 Decline`, `Reason: SIP ;cause=603 ;text="rule"`).
    pub reject: Answer,
    /// Calls redirected to another number. Default: 302 to
    /// `sip:{target}@{ruri_host};user=phone`, the new number at the Request-URI's host and
    /// port (a `tel:` Request-URI has no host: configure a fixed one for such clients, or the
    /// call fails open).
    pub redirect: Answer,
    /// Calls redirected to a SIP URI. Default: 302 to `{target}`, the URI as the policy says.
    pub redirect_uri: Answer,
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            allow: Answer::redirect("{ruri}"),
            terminate: Answer::redirect("{intercept}"),
            reject: Answer::Final { code: None, reason: true },
            redirect: Answer::redirect("sip:{target}@{ruri_host};user=phone"),
            redirect_uri: Answer::redirect("{target}"),
        }
    }
}

/// Placeholders without a value, per action: allow, terminate, reject, redirect, redirect_uri.
const MEANINGLESS: [&[Var]; 5] = [
    &[Var::Target, Var::TargetDigits, Var::Intercept, Var::Cause],
    &[Var::Target, Var::TargetDigits, Var::Cause],
    &[Var::Target, Var::TargetDigits, Var::Intercept],
    &[Var::Intercept, Var::Cause],
    &[Var::Intercept, Var::Cause, Var::TargetDigits],
];

impl Answers {
    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        self.allow.validate(&format!("{field}.allow"), MEANINGLESS[0], true)?;
        self.terminate.validate(&format!("{field}.terminate"), MEANINGLESS[1], true)?;
        self.reject.validate(&format!("{field}.reject"), MEANINGLESS[2], false)?;
        self.redirect.validate(&format!("{field}.redirect"), MEANINGLESS[3], true)?;
        self.redirect_uri.validate(&format!("{field}.redirect_uri"), MEANINGLESS[4], true)
    }
}

/// A client allowed to ask: an SBC, softswitch or PBX, by address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Name used in records (their `client`) and metrics: 1 to 64 characters without control
    /// characters, unique among the clients.
    pub name: String,
    /// Addresses or networks it sends from (at least one); the first client containing a
    /// request's source address is its client.
    pub addresses: Vec<IpNet>,
    /// This client's answer to allowed calls, instead of `answers.allow` (e.g. `{ kind =
    /// "final", code = 404 }` for an SBC that continues routing on 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Answer>,
    /// This client's answer to calls terminated to an intercept, instead of `answers.terminate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<Answer>,
    /// This client's answer to rejected calls, instead of `answers.reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<Answer>,
    /// This client's answer to calls redirected to a number, instead of `answers.redirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Answer>,
    /// This client's answer to calls redirected to a URI, instead of `answers.redirect_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<Answer>,
}

impl ClientConfig {
    /// The default client: this host (127.0.0.0/8 and ::1/128).
    pub fn loopback() -> Self {
        ClientConfig::new(
            "loopback",
            vec![
                IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ],
        )
    }

    /// A client with no answer of its own.
    pub fn new(name: &str, addresses: Vec<IpNet>) -> Self {
        ClientConfig {
            name: name.to_string(),
            addresses,
            allow: None,
            terminate: None,
            reject: None,
            redirect: None,
            redirect_uri: None,
        }
    }

    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() || self.name.len() > 64 || self.name.chars().any(char::is_control) {
            return Err(err(
                &format!("{field}.name"),
                format!("{:?} must be 1 to 64 characters without control characters", self.name),
            ));
        }
        if self.addresses.is_empty() {
            return Err(err(&format!("{field}.addresses"), "at least one address or network is needed"));
        }
        let overrides = [
            ("allow", &self.allow, true),
            ("terminate", &self.terminate, true),
            ("reject", &self.reject, false),
            ("redirect", &self.redirect, true),
            ("redirect_uri", &self.redirect_uri, true),
        ];
        for ((name, answer, code_required), meaningless) in overrides.into_iter().zip(MEANINGLESS) {
            if let Some(answer) = answer {
                answer.validate(&format!("{field}.{name}"), meaningless, code_required)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML example of the README's "SIP redirect server" section.
    fn readme_example() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let section =
            readme.split("\n## SIP redirect server\n").nth(1).expect("the README's SIP redirect server section");
        let block = section.split("```toml\n").nth(1).expect("a toml block in that section");
        block.split("```").next().unwrap().to_string()
    }

    #[derive(Deserialize)]
    struct File {
        sip_redirect: RedirectConfig,
    }

    #[test]
    fn the_readme_example_parses_and_is_valid() {
        let config = toml::from_str::<File>(&readme_example()).unwrap().sip_redirect;
        config.validate().unwrap();
        assert_eq!(config.answers, Answers::default(), "the example spells out the defaults");
        assert_eq!(config.clients.len(), 2);
        assert_eq!(config.clients[0].allow, Some(Answer::Final { code: Some(404), reason: true }));
        assert_eq!(config.client("10.1.2.3".parse().unwrap()).map(|c| c.name.as_str()), Some("sbc-1"));
        assert_eq!(config.client("::ffff:192.0.2.10".parse().unwrap()).map(|c| c.name.as_str()), Some("softswitch"));
        assert!(config.client("127.0.0.1".parse().unwrap()).is_none(), "clients replace the loopback default");
        let default = RedirectConfig::default();
        default.validate().unwrap();
        assert!(
            default.client("127.0.0.5".parse().unwrap()).is_some() && default.client("::1".parse().unwrap()).is_some()
        );
        assert!(!default.enabled());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let field = |toml_text: &str| {
            let config: RedirectConfig = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"));
            config.validate().unwrap_err().field
        };
        let client = "[[clients]]\nname = \"sbc\"\naddresses = [\"10.0.0.0/8\"]\n";
        let cases = [
            ("clients = []", "clients"),
            ("[[clients]]\nname = \"\"\naddresses = [\"10.0.0.0/8\"]", "clients[0].name"),
            ("[[clients]]\nname = \"sbc\"\naddresses = []", "clients[0].addresses"),
            (&format!("{client}{client}"), "clients[1].name"),
            (&format!("{client}allow = {{ kind = \"final\" }}"), "clients[0].allow.code"),
            (
                &format!("{client}redirect = {{ kind = \"redirect\", code = 200, contact = \"{{target}}\" }}"),
                "clients[0].redirect.code",
            ),
            ("[answers]\nallow = { kind = \"final\", code = 399 }", "answers.allow.code"),
            ("[answers]\nreject = { kind = \"final\", code = 700 }", "answers.reject.code"),
            ("[answers]\nterminate = { kind = \"final\" }", "answers.terminate.code"),
            ("[answers]\nallow = { kind = \"redirect\", contact = \"{target}\" }", "answers.allow.contact"),
            ("[answers]\nredirect = { kind = \"redirect\", contact = \"{intercept}\" }", "answers.redirect.contact"),
            (
                "[answers]\nredirect_uri = { kind = \"redirect\", contact = \"sip:{target_digits}@h\" }",
                "answers.redirect_uri.contact",
            ),
            ("retransmission_window_secs = 0", "retransmission_window_secs"),
            ("retransmission_window_secs = 301", "retransmission_window_secs"),
            ("retransmission_entries = 0", "retransmission_entries"),
            ("retransmission_entries = 10000001", "retransmission_entries"),
            ("retransmission_max_mb = 0", "retransmission_max_mb"),
            ("retransmission_max_mb = 4097", "retransmission_max_mb"),
        ];
        for (text, expected) in cases {
            assert_eq!(field(text), expected, "{text}");
        }
        let e = toml::from_str::<RedirectConfig>("retransmission_window_secs = 0").unwrap().validate().unwrap_err();
        assert_eq!(e.to_string().split(':').next(), Some("sip_redirect.retransmission_window_secs"));
        // Parsing refuses unknown keys, kinds and placeholders.
        for bad in [
            "retransmit = 1",
            "[answers]\nallow = { kind = \"maybe\" }",
            "[answers]\nallow = { kind = \"redirect\", contact = \"{nope}\" }",
            "[answers]\nallow = { kind = \"final\", code = 404, contact = \"x\" }",
        ] {
            assert!(toml::from_str::<RedirectConfig>(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod listener_tests {
    use super::*;

    #[test]
    fn listener_limits_out_of_range_are_named() {
        assert_eq!(RedirectConfig::default().validate_listeners(), Ok(()));
        let c = RedirectConfig { max_message_bytes: 100, ..Default::default() };
        assert_eq!(
            c.validate_listeners().unwrap_err().to_string(),
            "sip_redirect.max_message_bytes: is 100; it must be 1024 to 65535"
        );
        let c = RedirectConfig { tcp_max_connections: 4, tcp_max_connections_per_source: 5, ..Default::default() };
        assert_eq!(c.validate_listeners().unwrap_err().field, "tcp_max_connections_per_source");
        let c = RedirectConfig { tcp_idle_timeout_secs: 0, ..Default::default() };
        assert_eq!(c.validate_listeners().unwrap_err().field, "tcp_idle_timeout_secs");
    }
}
