//! `[tls]`: the certificate a process presents on every link, the CA its peers must chain to,
//! and the rule for links without TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Problem, duration};

/// `[tls]`. With `cert`, `key` and `ca` set, every HTTP listener (web UI and API, ingest,
/// manager, agent) speaks HTTPS, the links between servers use mutual TLS (each side's
/// certificate must be of `ca` and name an accepted role), and the SRP link is TLS 1.3.
/// Without them, plain HTTP is served only on loopback addresses, unless `allow_plaintext`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The CA certificate (PEM) peers' certificates must chain to (`tollgate pki init`).
    pub ca: Option<PathBuf>,
    /// This server's certificate (PEM; `tollgate pki issue`).
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM, mode 0600).
    pub key: Option<PathBuf>,
    /// Serve plain HTTP on non-loopback addresses when TLS is not configured (a warning is
    /// logged at start). Off: such a listener refuses to start.
    pub allow_plaintext: bool,
    /// Also require a client certificate of `ca` on the web UI and API listener (people then
    /// need an `operator` certificate in their browser or CLI). Machine links always require
    /// one.
    pub require_client_certificates: bool,
    /// How often the certificate files are checked for a rotation (SIGHUP reloads at once).
    #[serde(rename = "reload_interval", alias = "reload_interval_secs", with = "duration::secs")]
    pub reload_interval_secs: u64,
    /// Alarm TLS_CERT_EXPIRING is raised when the certificate expires within this time.
    #[serde(rename = "expiry_warning", alias = "expiry_warning_secs", with = "duration::secs")]
    pub expiry_warning_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: None,
            cert: None,
            key: None,
            allow_plaintext: false,
            require_client_certificates: false,
            reload_interval_secs: 10,
            expiry_warning_secs: 30 * 86_400,
        }
    }
}

impl TlsConfig {
    /// Whether TLS is configured (a certificate to present).
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    /// The problems of the fields, each naming its field.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        match (&self.cert, &self.key) {
            (Some(_), None) => out.push(Problem::new("tls.key", "required when tls.cert is set")),
            (None, Some(_)) => out.push(Problem::new("tls.cert", "required when tls.key is set")),
            _ => {}
        }
        if self.cert.is_some() && self.ca.is_none() {
            out.push(Problem::new("tls.ca", "required when tls.cert is set: peers are verified against it"));
        }
        if self.require_client_certificates && !self.enabled() {
            out.push(Problem::new("tls.require_client_certificates", "needs tls.cert, tls.key and tls.ca"));
        }
        if !(1..=86_400).contains(&self.reload_interval_secs) {
            out.push(Problem::new(
                "tls.reload_interval",
                format!("must be between 1s and 1day (is {} s)", self.reload_interval_secs),
            ));
        }
        if !(86_400..=365 * 86_400).contains(&self.expiry_warning_secs) {
            out.push(Problem::new(
                "tls.expiry_warning",
                format!("must be between 1day and 365days (is {} s)", self.expiry_warning_secs),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(tls: &TlsConfig) -> Vec<String> {
        let mut out = Vec::new();
        tls.problems(&mut out);
        out.into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn tls_needs_a_certificate_its_key_and_the_ca_together() {
        assert!(fields(&TlsConfig::default()).is_empty());
        let full = TlsConfig {
            ca: Some("ca.crt".into()),
            cert: Some("a.crt".into()),
            key: Some("a.key".into()),
            ..TlsConfig::default()
        };
        assert!(fields(&full).is_empty());
        assert_eq!(fields(&TlsConfig { key: None, ..full.clone() }), ["tls.key"]);
        assert_eq!(fields(&TlsConfig { cert: None, ..full.clone() }), ["tls.cert"]);
        assert_eq!(fields(&TlsConfig { ca: None, ..full.clone() }), ["tls.ca"]);
        let demand = TlsConfig { require_client_certificates: true, ..TlsConfig::default() };
        assert_eq!(fields(&demand), ["tls.require_client_certificates"]);
        assert_eq!(fields(&TlsConfig { reload_interval_secs: 0, ..full.clone() }), ["tls.reload_interval"]);
        assert_eq!(fields(&TlsConfig { expiry_warning_secs: 60, ..full }), ["tls.expiry_warning"]);
    }

    #[test]
    fn a_tls_section_reads_with_durations_in_words() {
        let tls: TlsConfig = toml::from_str(
            "ca = '/etc/tollgate/pki/ca.crt'\ncert = '/etc/tollgate/pki/east-a.crt'\n\
             key = '/etc/tollgate/pki/east-a.key'\nreload_interval = '30s'\nexpiry_warning = '14days'\n",
        )
        .unwrap();
        assert!(tls.enabled());
        assert_eq!(tls.reload_interval_secs, 30);
        assert_eq!(tls.expiry_warning_secs, 14 * 86_400);
    }
}
