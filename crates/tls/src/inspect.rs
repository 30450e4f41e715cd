//! What a certificate says: subject, role, host, names, validity, fingerprint.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::TlsError;
use crate::role::Role;

/// The facts of one certificate that operators and tollgate's checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject as one line (`CN=east-a, OU=engine, O=tollgate`).
    pub subject: String,
    /// The issuer as one line.
    pub issuer: String,
    /// The subject's common name: the host (or the CA's name).
    pub common_name: Option<String>,
    /// The role named by the `urn:tollgate:role:*` SAN URI (or, failing that, the subject's OU).
    pub role: Option<Role>,
    /// DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses among the subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Whether the certificate is a CA (basic constraints).
    pub is_ca: bool,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The serial number, hex.
    pub serial: String,
    /// SHA-256 of the DER encoding, hex with colons (as `openssl x509 -fingerprint -sha256`).
    pub sha256_fingerprint: String,
}

impl CertInfo {
    /// Reads the facts of a DER-encoded certificate.
    pub fn from_der(der: &CertificateDer<'_>) -> Result<CertInfo, TlsError> {
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| TlsError::Certificate(format!("not a readable X.509 certificate: {e}")))?;
        let mut role = None;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => role = role.or_else(|| Role::from_uri(uri)),
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        if role.is_none() {
            role = cert.subject().iter_organizational_unit().find_map(|ou| ou.as_str().ok()?.parse().ok());
        }
        let common_name = cert.subject().iter_common_name().find_map(|cn| cn.as_str().ok().map(str::to_string));
        let fingerprint = Sha256::digest(der.as_ref());
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            common_name,
            role,
            dns_names,
            ip_addresses,
            is_ca: cert.is_ca(),
            not_before: to_system_time(cert.validity().not_before.timestamp()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
            serial: cert.raw_serial_as_string().replace(':', ""),
            sha256_fingerprint: fingerprint.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"),
        })
    }

    /// The host the certificate names: its common name, else its first DNS name or address.
    pub fn host(&self) -> Option<String> {
        self.common_name
            .clone()
            .or_else(|| self.dns_names.first().cloned())
            .or_else(|| self.ip_addresses.first().map(IpAddr::to_string))
    }

    /// Time left until the certificate expires (zero when it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}
