//! The TLS facts a role reports (`GET /api/v1/tls`, and `tls` in an agent's health): the
//! certificate it presents now, the CA, how far from expiry, and how its reloads went.

use serde::{Deserialize, Serialize};

/// Path of the role's TLS facts (answer: [`TlsStatus`]).
pub const TLS: &str = "/api/v1/tls";

/// Below this much time left, a certificate's expiry is critical (alarm
/// TLS_CERT_EXPIRY_CRITICAL, health FAILURE), whatever `tls.expiry_warning` says.
pub const CRITICAL_SECS: i64 = 7 * 86_400;

/// One certificate, as a role reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// The subject (`O=tollgate, OU=engine, CN=east-a`).
    pub subject: String,
    /// The role it names (`engine`, ...), if any.
    #[serde(default)]
    pub role: Option<String>,
    /// The host it names, if any.
    #[serde(default)]
    pub host: Option<String>,
    /// The issuer.
    #[serde(default)]
    pub issuer: String,
    /// The serial number, hex.
    #[serde(default)]
    pub serial: String,
    /// SHA-256 of the DER, hex with colons.
    #[serde(default)]
    pub sha256_fingerprint: String,
    /// End of validity, seconds since 1970.
    pub not_after_unix: i64,
    /// End of validity, for people (`2027-12-06 12:00:00 UTC`).
    #[serde(default)]
    pub not_after: String,
    /// Seconds until it expires when the facts were taken (negative once it has).
    pub seconds_left: i64,
}

impl TlsCertificate {
    /// Whole days until it expires (negative once it has).
    pub fn days_left(&self) -> i64 {
        self.seconds_left.div_euclid(86_400)
    }

    /// How close to expiry it is, given the warning window (`tls.expiry_warning`).
    pub fn expiry(&self, warning_secs: i64) -> Expiry {
        if self.seconds_left <= CRITICAL_SECS {
            Expiry::Critical
        } else if self.seconds_left <= warning_secs {
            Expiry::Warning
        } else {
            Expiry::Ok
        }
    }
}

/// How close to expiry a certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Outside the warning window.
    Ok,
    /// Within `tls.expiry_warning` (alarm TLS_CERT_EXPIRING, health INFO).
    Warning,
    /// Within [`CRITICAL_SECS`] or expired (alarm TLS_CERT_EXPIRY_CRITICAL, health FAILURE).
    Critical,
}

/// The answer of GET [`TLS`]: a role's TLS material in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// Whether `[tls]` is configured (a certificate is presented).
    pub enabled: bool,
    /// The certificate presented to new connections.
    #[serde(default)]
    pub certificate: Option<TlsCertificate>,
    /// The CA certificates peers must chain to.
    #[serde(default)]
    pub ca: Vec<TlsCertificate>,
    /// `tls.expiry_warning`, seconds.
    #[serde(default)]
    pub expiry_warning_secs: i64,
    /// Reloads that put new material in force since start.
    #[serde(default)]
    pub reloads: u64,
    /// Reloads that failed since start (the material in force stayed).
    #[serde(default)]
    pub reload_failures: u64,
    /// Why the last reload on SIGHUP failed, if it did (cleared by a good one).
    #[serde(default)]
    pub last_reload_error: Option<String>,
}

impl TlsStatus {
    /// The certificate, or a CA certificate, nearest to expiry, with its expiry level.
    pub fn nearest_expiry(&self) -> Option<(&TlsCertificate, Expiry)> {
        self.certificate
            .iter()
            .chain(&self.ca)
            .min_by_key(|c| c.seconds_left)
            .map(|c| (c, c.expiry(self.expiry_warning_secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(seconds_left: i64) -> TlsCertificate {
        TlsCertificate { seconds_left, ..TlsCertificate::default() }
    }

    #[test]
    fn expiry_levels_follow_the_warning_window_and_the_critical_week() {
        let warning = 30 * 86_400;
        assert_eq!(cert(31 * 86_400).expiry(warning), Expiry::Ok);
        assert_eq!(cert(30 * 86_400).expiry(warning), Expiry::Warning);
        assert_eq!(cert(8 * 86_400).expiry(warning), Expiry::Warning);
        assert_eq!(cert(7 * 86_400).expiry(warning), Expiry::Critical);
        assert_eq!(cert(-5).expiry(warning), Expiry::Critical);
        assert_eq!(cert(-5).days_left(), -1);
        assert_eq!(cert(86_399).days_left(), 0);
        let status = TlsStatus {
            enabled: true,
            certificate: Some(cert(20 * 86_400)),
            ca: vec![cert(3000 * 86_400)],
            expiry_warning_secs: warning,
            ..TlsStatus::default()
        };
        assert_eq!(status.nearest_expiry().map(|(c, e)| (c.seconds_left, e)), Some((20 * 86_400, Expiry::Warning)));
        // An answer of an older role, without the optional fields, still reads.
        let old: TlsStatus = serde_json::from_str(r#"{"enabled":false}"#).unwrap();
        assert_eq!(old, TlsStatus::default());
    }
}
