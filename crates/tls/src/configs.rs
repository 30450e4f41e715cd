//! rustls server and client configurations over a [`TlsMaterial`], with tollgate's rule on
//! top of the CA's: the peer's certificate must name a role the link accepts.
//!
//! The configurations are built once per listener or client; the certificate they present and
//! the CA they verify against are read from the material at every handshake, so a reload is
//! in force for the next connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::inspect::CertInfo;
use crate::material::TlsMaterial;
use crate::role::RoleSet;

/// Which clients a TLS listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Whether a client must present a certificate of the CA (mutual TLS). When not, a client
    /// without one is let through to the protocol's own authentication (a browser to the
    /// login page); a client presenting one of another CA, or of a role not accepted, is
    /// refused either way.
    pub required: bool,
    /// The roles a client certificate may name.
    pub accept: RoleSet,
}

impl ClientPolicy {
    /// Any client; those presenting a certificate must present one of the CA.
    pub const OPTIONAL: ClientPolicy = ClientPolicy { required: false, accept: RoleSet::ANY };

    /// Only clients with a certificate of the CA naming one of `roles`.
    pub const fn only(roles: RoleSet) -> ClientPolicy {
        ClientPolicy { required: true, accept: roles }
    }
}

/// Which TLS versions a configuration speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.3 only: links between tollgate processes.
    Tls13,
    /// TLS 1.2 and 1.3: listeners that browsers and other people's tools reach.
    Tls12And13,
}

impl Versions {
    fn list(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Versions::Tls13 => &TLS13,
            Versions::Tls12And13 => rustls::ALL_VERSIONS,
        }
    }
}

/// A server configuration presenting the material's certificate, accepting clients by
/// `clients`, speaking `versions`, offering the ALPN protocols `alpn` (e.g. `http/1.1`).
pub fn server_config(
    material: &TlsMaterial,
    clients: ClientPolicy,
    versions: Versions,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let verifier = Arc::new(RoleClientVerifier { material: material.clone(), policy: clients });
    let mut config = ServerConfig::builder_with_provider(material.provider.clone())
        .with_protocol_versions(versions.list())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(CurrentCert(material.clone())));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A server configuration presenting the material's certificate to clients that present none:
/// no client certificate is asked for, so a client with a certificate of its own PKI (an SBC)
/// is not refused for it. For listeners whose clients are told apart otherwise (the SIP
/// redirect server's clients by address).
pub fn server_config_without_client_auth(
    material: &TlsMaterial,
    versions: Versions,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(material.provider.clone())
        .with_protocol_versions(versions.list())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CurrentCert(material.clone())));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration that verifies the server against the CA and its name, accepts only
/// servers whose certificate names one of `servers`, and presents the material's certificate
/// when it has one.
pub fn client_config(
    material: &TlsMaterial,
    servers: RoleSet,
    versions: Versions,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let verifier = Arc::new(RoleServerVerifier { material: material.clone(), accept: servers });
    let mut config = ClientConfig::builder_with_provider(material.provider.clone())
        .with_protocol_versions(versions.list())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(CurrentCert(material.clone())));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The certificate in force, for both ends of a handshake.
#[derive(Debug)]
struct CurrentCert(TlsMaterial);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current.load().certified.clone()
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.current.load().certified.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.current.load().certified.is_some()
    }
}

/// The refusal of a certificate whose role the link does not accept.
fn role_refused(end_entity: &CertificateDer<'_>, accept: RoleSet, side: &str) -> Option<rustls::Error> {
    let info = match CertInfo::from_der(end_entity) {
        Ok(info) => info,
        Err(e) => return Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))),
    };
    match info.role {
        Some(role) if accept.contains(role) => None,
        role => {
            let named = role.map_or_else(|| "no role".to_string(), |r| format!("role '{r}'"));
            let why = format!(
                "the {side} certificate '{}' names {named}; this link accepts only {}",
                info.subject,
                accept.names().join(", ")
            );
            Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(RoleRefused(why))))))
        }
    }
}

/// A certificate of the CA whose role the link does not accept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RoleRefused(String);

#[derive(Debug)]
struct RoleClientVerifier {
    material: TlsMaterial,
    policy: ClientPolicy,
}

impl ClientCertVerifier for RoleClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.policy.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.material.current.load().client_verifier.verify_client_cert(end_entity, intermediates, now)?;
        match role_refused(end_entity, self.policy.accept, "client") {
            Some(refusal) => Err(refusal),
            None => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.material.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.material.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.material.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct RoleServerVerifier {
    material: TlsMaterial,
    accept: RoleSet,
}

impl ServerCertVerifier for RoleServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = self.material.current.load().server_verifier.clone();
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        match role_refused(end_entity, self.accept, "server") {
            Some(refusal) => Err(refusal),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.material.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.material.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.material.provider.signature_verification_algorithms.supported_schemes()
    }
}
