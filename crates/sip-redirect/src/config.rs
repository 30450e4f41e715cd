//! The `[sip_redirect]` section of the tollgate configuration.
//!
//! ```toml
//! [sip_redirect]
//! listen_udp = ["127.0.0.1:5070"]     # empty (the default): no SIP listener
//! listen_tcp = ["127.0.0.1:5070"]
//!
//! [sip_redirect.answers]
//! allow = { code = 302, contact = "{ruri}" }
//! terminate = { code = 302, contact = "{intercept}" }
//! reject = { kind = "final" }                       # the policy's cause, with a Reason header
//! redirect = { code = 302, contact = "sip:{target}@{ruri_host}" }
//! redirect_uri = { code = 302, contact = "{target}" }
//!
//! [[sip_redirect.clients]]
//! name = "sbc-1"
//! addresses = ["10.1.0.0/16"]
//! allow = { kind = "final", code = 404 }            # this SBC continues on 404
//! ```
//!
//! (Skeleton laid out by the lead; the helper of issue 19's responder completes and documents
//! every field, its default and its range, and `RedirectConfig::validate`.)

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            listen_udp: Vec::new(),
            listen_tcp: Vec::new(),
            max_message_bytes: 16 * 1024,
            tcp_idle_timeout_secs: 60,
            tcp_max_connections: 256,
            tcp_max_connections_per_source: 16,
            tcp_max_connection_secs: 3600,
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
        !self.listen_udp.is_empty() || !self.listen_tcp.is_empty()
    }

    /// Checks everything that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Placeholder so the skeleton names the client type the helper fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Name used in records and metrics.
    pub name: String,
    /// Addresses or networks it sends from.
    pub addresses: Vec<IpNet>,
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
