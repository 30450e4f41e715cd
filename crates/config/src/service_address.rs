//! `[service_address]`: how an SRP pair moves the ENUM service address.

use serde::{Deserialize, Serialize};

/// `[service_address]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAddressConfig {
    /// `bind` or `ip`.
    pub mode: ServiceAddressMode,
    /// The interface the address moves on (mode `ip`).
    pub interface: String,
    /// Prefix length of the address on the interface (mode `ip`; default 32 / 128).
    pub prefix_len: Option<u8>,
}

/// How the service address is claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAddressMode {
    /// The listener binds an address that is always present.
    #[default]
    Bind,
    /// The address is added to and removed from an interface, announced by gratuitous ARP.
    Ip,
}
