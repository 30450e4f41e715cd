//! The built-in CA: `tollgate pki init` makes a CA key and certificate, `tollgate pki issue`
//! a server or client certificate naming a role and a host, signed by it.
//!
//! Files: the CA directory holds `ca.crt` (0644) and `ca.key` (0600); issued certificates are
//! written as `<name>.crt` (0644) and `<name>.key` (0600), each by an atomic rename, so a server
//! reloading them never reads half a file. Keys are ECDSA P-256. A CA is never overwritten.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::TlsError;
use crate::inspect::CertInfo;
use crate::role::Role;

/// The CA certificate's file name in the CA directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA key's file name in the CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// How long a CA made by [`Ca::init`] is valid unless told otherwise: ten years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long an issued certificate is valid unless told otherwise: one year.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Certificates start being valid this long before they are made, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(300);
const ORGANIZATION: &str = "tollgate";

/// A CA loaded from its directory: it signs certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    info: CertInfo,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("subject", &self.info.subject).finish_non_exhaustive()
    }
}

/// What to put in an issued certificate.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The role of the server (or `operator` for a person).
    pub role: Role,
    /// The host name: the subject's CN, and a DNS name (or an IP address if it is one).
    pub host: String,
    /// More IP addresses the server is reached at.
    pub ips: Vec<IpAddr>,
    /// More DNS names the server is reached at.
    pub dns_names: Vec<String>,
    /// How long the certificate is valid.
    pub validity: Duration,
}

/// An issued certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// What the certificate says.
    pub info: CertInfo,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Ca {
    /// Makes a new CA named `name` in `dir` (created 0700 if missing), valid for `validity`.
    /// Refuses if `dir` already holds a CA certificate or key.
    pub fn init(dir: &Path, name: &str, validity: Duration) -> Result<Ca, TlsError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(TlsError::CaExists(path.clone()));
            }
        }
        tollgate_files::private_files::create_private_dir(dir).map_err(|e| TlsError::io(dir, e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, validity)?;
        let key = KeyPair::generate()?;
        params.serial_number = Some(serial(&key));
        let cert = params.self_signed(&key)?;
        // The key first: a CA certificate without its key would look like a usable CA.
        write_key(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        Ca::load(dir)
    }

    /// Loads the CA of `dir` (`ca.crt` and `ca.key`).
    pub fn load(dir: &Path) -> Result<Ca, TlsError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(|e| TlsError::io(&cert_path, e))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| TlsError::io(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::Pem { path: key_path.clone(), what: format!("not a private key: {e}") })?;
        let der = first_cert_der(&cert_path, &cert_pem)?;
        let info = CertInfo::from_der(&der)?;
        if !info.is_ca {
            return Err(TlsError::Certificate(format!("{}: not a CA certificate", cert_path.display())));
        }
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
        Ok(Ca { issuer, cert_pem, info })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// What the CA certificate says.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// Issues a certificate for `request`, usable as a TLS server and client certificate.
    pub fn issue(&self, request: &IssueRequest) -> Result<Issued, TlsError> {
        if request.host.is_empty() {
            return Err(TlsError::Invalid("the host name is empty".into()));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(&request.host, Some(request.role));
        params.subject_alt_names.push(SanType::URI(request.role.uri().try_into()?));
        match request.host.parse::<IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => params.subject_alt_names.push(SanType::DnsName(request.host.clone().try_into()?)),
        }
        for dns in &request.dns_names {
            params.subject_alt_names.push(SanType::DnsName(dns.clone().try_into()?));
        }
        for ip in &request.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let ca_not_after = self.info.not_after;
        let wanted = SystemTime::now() + request.validity;
        if wanted > ca_not_after {
            return Err(TlsError::Invalid(format!(
                "the certificate would outlive the CA (the CA expires {}); issue it for less time",
                crate::format_time(ca_not_after)
            )));
        }
        set_validity(&mut params, request.validity)?;
        let key = KeyPair::generate()?;
        params.serial_number = Some(serial(&key));
        let cert = params.signed_by(&key, &self.issuer)?;
        let info = CertInfo::from_der(cert.der())?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), info })
    }
}

impl Issued {
    /// Writes the certificate to `cert` (0644) and the key to `key` (0600), each replaced
    /// atomically; the key first, so a reader never pairs a new certificate with an old key
    /// for longer than the rename between them.
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        write_key(key, &self.key_pem)?;
        write_public(cert, &self.cert_pem)
    }
}

/// The paths an issued certificate for `name` is written to in `dir`.
pub fn issued_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")))
}

/// Reads every certificate of a PEM file and describes it.
pub fn describe_file(path: &Path) -> Result<Vec<CertInfo>, TlsError> {
    crate::material::read_certs(path)?.iter().map(CertInfo::from_der).collect()
}

fn distinguished_name(common_name: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Duration) -> Result<(), TlsError> {
    if validity.is_zero() {
        return Err(TlsError::Invalid("the validity is zero".into()));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now
        .checked_add(
            time::Duration::try_from(validity).map_err(|_| TlsError::Invalid("the validity is too long".into()))?,
        )
        .ok_or_else(|| TlsError::Invalid("the validity is too long".into()))?;
    Ok(())
}

/// A positive 128-bit serial number, unique per key and moment.
fn serial(key: &KeyPair) -> SerialNumber {
    let mut hasher = Sha256::new();
    hasher.update(key.public_key_raw());
    hasher.update(format!("{:?}", SystemTime::now()).as_bytes());
    let mut bytes = hasher.finalize()[..16].to_vec();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn first_cert_der(path: &Path, pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| TlsError::Pem { path: path.to_path_buf(), what: "holds no certificate".into() })?
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), what: format!("unreadable PEM: {e}") })
}

fn write_key(path: &Path, pem: &str) -> Result<(), TlsError> {
    tollgate_files::private_files::write_private(path, pem.as_bytes()).map_err(|e| TlsError::io(path, e))
}

/// Writes a public file (a certificate) 0644, atomically.
fn write_public(path: &Path, pem: &str) -> Result<(), TlsError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, pem).map_err(|e| TlsError::io(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(|e| TlsError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TlsError::io(path, e))
}
