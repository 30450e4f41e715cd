//! TLS for the PostgreSQL store: libpq's `sslmode` semantics on rustls (aws-lc-rs provider).
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | no |
//! | `prefer` (default) | when the server offers TLS | only if `sslrootcert` is given (chain) |
//! | `require` | always, or the connection fails | only if `sslrootcert` is given (chain), as libpq does |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert` and the host name or IP address in the URL |
//!
//! `sslcert` and `sslkey` give a client certificate (for `hostssl ... cert` in `pg_hba.conf`).
//! Unlike libpq, nothing is read from `~/.postgresql/`: every file is named in the URL.
//!
//! This module builds the [`ClientConfig`] and explains refused connections; [`crate::pgurl`]
//! reads the URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::StoreError;

/// libpq's `sslmode`: whether the link is encrypted and what of the server is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, plain text otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the server is not authenticated unless `sslrootcert` is given.
    Require,
    /// TLS, with the server's certificate chained to `sslrootcert`.
    VerifyCa,
    /// TLS, with the server's certificate chained to `sslrootcert` and naming the host.
    VerifyFull,
}

impl SslMode {
    /// Every mode, in the order libpq documents them.
    pub const ALL: [SslMode; 5] =
        [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

    /// The name in a URL: `verify-full` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must chain to `sslrootcert`.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SslMode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = SslMode::ALL.iter().map(|m| m.as_str()).collect();
            format!("sslmode '{s}' is not one of {}", names.join(", "))
        })
    }
}

/// The TLS parameters of a store URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of the CA certificate(s) the server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: PEM file of the client certificate (and its chain).
    pub cert: Option<PathBuf>,
    /// `sslkey`: PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// Checks the combination of parameters, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.mode.verifies_chain() && self.root_cert.is_none() {
            return Err(format!(
                "sslmode {} needs sslrootcert=<PEM file of the CA that issued the server's certificate>",
                self.mode
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err("sslcert is given without sslkey".into()),
            (None, Some(_)) => Err("sslkey is given without sslcert".into()),
            _ => Ok(()),
        }
    }

    /// The rustls client configuration for these options (`None` for `disable`). Reads the
    /// files; errors name the parameter and the file.
    pub fn client_config(&self) -> Result<Option<ClientConfig>, StoreError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        self.validate().map_err(StoreError::Tls)?;
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Tls(format!("TLS protocol versions: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match &self.root_cert {
            None => Arc::new(NoVerification(provider.signature_verification_algorithms)),
            Some(path) => {
                let roots = load_roots(path)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| StoreError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
                if self.mode == SslMode::VerifyFull { webpki } else { Arc::new(ChainOnly(webpki)) }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                warn_if_readable_by_others(key);
                let chain = load_certs(cert, "sslcert")?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| StoreError::Tls(format!("sslkey {}: {}", key.display(), pem_error(&e))))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| StoreError::Tls(format!("sslcert/sslkey {}: {e}", cert.display())))?
            }
            _ => builder.with_no_client_auth(),
        };
        // PostgreSQL 17 checks ALPN on direct TLS (`sslnegotiation=direct`); older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Some(config))
    }
}

/// The aws-lc-rs provider, tollgate's one crypto provider on every TLS link (post-quantum key
/// exchange; ring is deprecated by rustls since 0.23.48).
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        other => format!("{other:?}"),
    }
}

/// libpq refuses a key readable by group or others (unless owned by root, 0640); tollgate warns.
fn warn_if_readable_by_others(key: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(key) {
        let mode = meta.mode() & 0o777;
        let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
        if mode & !allowed != 0 {
            tracing::warn!(
                sslkey = %key.display(),
                mode = format!("{mode:o}"),
                "the store's client key is readable by others: make it 0600"
            );
        }
    }
}

fn load_certs(path: &Path, param: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let bad = |why: String| StoreError::Tls(format!("{param} {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into()));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_certs(path, "sslrootcert")?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            StoreError::Tls(format!("sslrootcert {}: certificate {} is not a usable CA: {e}", path.display(), i + 1))
        })?;
    }
    Ok(roots)
}

/// `verify-ca`, and `prefer`/`require` with `sslrootcert`: the chain is checked, the name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // rustls checks the chain first, then the name: a name error means the chain is good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without `sslrootcert`: encrypted, server not authenticated (libpq's rule).
/// The handshake signatures are still checked, so the session keys belong to the certificate's key.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What a refused connection likely means (TLS, `pg_hba.conf`), to append to the error; `None`
/// when nothing specific is known.
pub(crate) fn hint(err: &postgres::Error, mode: SslMode, host: &str) -> Option<String> {
    if let Some(db) = err.as_db_error() {
        let message = db.message();
        return if message.contains("no encryption") {
            Some(format!(
                "the server accepts only TLS connections from here (hostssl in pg_hba.conf) and sslmode is {mode}: \
                 use sslmode=verify-full with sslrootcert"
            ))
        } else if message.contains("requires a valid client certificate") {
            Some("pg_hba.conf asks for a client certificate: give sslcert=<file>&sslkey=<file>".into())
        } else if message.contains("certificate authentication failed") {
            Some("the client certificate's common name (CN) must be the user name in the URL".into())
        } else {
            None
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        let tls = e
            .downcast_ref::<rustls::Error>()
            .or_else(|| e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()?.downcast_ref()));
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    Some("the server's certificate is not issued by a CA in sslrootcert".into())
                }
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => Some(format!(
                    "the server's certificate does not name '{host}' (verify-full checks the URL's host against \
                     the certificate's names: connect by a name or address the certificate carries)"
                )),
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ) => Some("the server's certificate has expired".into()),
                rustls::Error::AlertReceived(_) => Some(
                    "the server refused the TLS handshake: a client certificate it does not accept, or none".into(),
                ),
                _ => None,
            };
        }
        if e.to_string().contains("server does not support TLS") {
            return Some(format!("the server has ssl = off, and sslmode {mode} needs TLS"));
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_names_round_trip_and_a_typo_lists_the_modes() {
        for m in SslMode::ALL {
            assert_eq!(m.as_str().parse::<SslMode>(), Ok(m));
        }
        assert_eq!(
            "verify-ful".parse::<SslMode>().unwrap_err(),
            "sslmode 'verify-ful' is not one of disable, prefer, require, verify-ca, verify-full"
        );
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn verify_modes_need_a_root_certificate_and_client_cert_needs_its_key() {
        let o = TlsOptions { mode: SslMode::VerifyFull, ..Default::default() };
        assert!(o.validate().unwrap_err().contains("sslmode verify-full needs sslrootcert"));
        let o = TlsOptions { mode: SslMode::VerifyCa, ..Default::default() };
        assert!(o.validate().unwrap_err().contains("sslmode verify-ca needs sslrootcert"));
        let o = TlsOptions { mode: SslMode::Require, cert: Some("c.pem".into()), ..Default::default() };
        assert_eq!(o.validate().unwrap_err(), "sslcert is given without sslkey");
        let o = TlsOptions { mode: SslMode::Require, key: Some("k.pem".into()), ..Default::default() };
        assert_eq!(o.validate().unwrap_err(), "sslkey is given without sslcert");
        assert!(TlsOptions::default().client_config().unwrap().is_some());
        let off = TlsOptions { mode: SslMode::Disable, ..Default::default() };
        assert!(off.client_config().unwrap().is_none());
    }

    #[test]
    fn unreadable_files_are_named_with_their_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let o = TlsOptions { mode: SslMode::VerifyFull, root_cert: Some(missing.clone()), ..Default::default() };
        let e = o.client_config().unwrap_err().to_string();
        assert!(e.contains(&format!("sslrootcert {}", missing.display())), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let o = TlsOptions { mode: SslMode::VerifyCa, root_cert: Some(empty.clone()), ..Default::default() };
        let e = o.client_config().unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let o = TlsOptions {
            mode: SslMode::Require,
            cert: Some(empty.clone()),
            key: Some(empty.clone()),
            ..Default::default()
        };
        let e = o.client_config().unwrap_err().to_string();
        assert!(e.contains(&format!("sslcert {}", empty.display())), "{e}");
    }
}
