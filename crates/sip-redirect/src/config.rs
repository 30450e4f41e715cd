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

/// The `[sip_redirect]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// UDP listen addresses (none: no SIP over UDP).
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listen addresses (none: no SIP over TCP).
    pub listen_tcp: Vec<SocketAddr>,
    // --- listener limits (the listeners' helper owns these fields) ---
    /// Largest SIP message accepted, bytes (a UDP datagram or one message on a TCP stream);
    /// a TCP stream sending a larger one is closed.
    pub max_message_bytes: usize,
    /// Seconds an idle TCP connection is kept.
    pub tcp_idle_timeout_secs: u64,
    /// TCP connections served at once per listener, from all sources; more are refused.
    pub tcp_max_connections: usize,
    /// TCP connections served at once per listener from one source address; more are refused.
    pub tcp_max_connections_per_source: usize,
    /// Seconds after which a TCP connection is closed (after the answer in progress), however
    /// busy it is.
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
