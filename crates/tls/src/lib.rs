//! TLS for every tollgate link: the built-in CA, the material a process presents, and the
//! rustls configurations its listeners and clients use.
//!
//! What this crate owns:
//! - [`pki`]: the small CA behind `tollgate pki` (rcgen): a CA key and certificate, and
//!   certificates naming a [`Role`] and a host (subject `CN=<host>, OU=<role>, O=tollgate`,
//!   SAN URI `urn:tollgate:role:<role>`, DNS names and IP addresses). Keys are written 0600.
//! - [`TlsMaterial`]: `[tls]`'s CA, certificate and key, checked at load (the certificate
//!   chains to the CA, has not expired, matches its key) and reloaded in place when the files
//!   change ([`TlsMaterial::spawn_watch`]) or on demand (SIGHUP: [`TlsMaterial::reload`]).
//! - [`server_config`] / [`client_config`]: rustls configurations (ring provider) that verify
//!   the peer against the CA *and* its role ([`ClientPolicy`], [`RoleSet`]): an agent accepts
//!   only managers, SRP only engines, and so on. [`PeerIdentity`] tells a handler who called.
//! - [`check_plaintext`]: the rule that a listener without TLS must be on loopback unless the
//!   operator set `allow_plaintext`.
//!
//! What it must not do: bind sockets, speak HTTP or SRP, or read tollgate's configuration
//! file; the web server, the SRP link, the shipper and the manager's clients wire it in.
//!
//! How to wire it: load a [`TlsMaterial`] once per process from `[tls]`, call
//! [`TlsMaterial::spawn_watch`], build one [`server_config`] per listener with the
//! [`ClientPolicy`] of that link, one [`client_config`] per kind of peer, and wrap streams
//! with [`tokio_rustls`] (re-exported).

#![warn(missing_docs)]

mod configs;
mod error;
mod inspect;
mod material;
mod peer;
pub mod pki;
mod plaintext;
mod role;

use std::time::SystemTime;

pub use configs::{
    ClientPolicy, RoleRefused, Versions, client_config, server_config, server_config_without_client_auth,
};
pub use error::TlsError;
pub use inspect::CertInfo;
pub use material::{Reloaded, TlsFiles, TlsMaterial, read_certs};
pub use peer::PeerIdentity;
pub use plaintext::{Plaintext, PlaintextRefused, check_plaintext};
pub use role::{ROLE_URI_PREFIX, Role, RoleSet, UnknownRole};
pub use {rustls, tokio_rustls};

/// A moment as `2026-12-06 12:00:00 UTC`, for messages about certificates.
pub fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => format!("{secs} s after 1970"),
    }
}
