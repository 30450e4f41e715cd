//! Who is on the other end of a TLS connection, as its verified certificate says.

use rustls_pki_types::CertificateDer;

use crate::inspect::CertInfo;
use crate::role::Role;

/// The identity of a peer that presented a certificate of the CA (already verified by the
/// handshake). Handlers take it as a request extension to authorise by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The role its certificate names.
    pub role: Option<Role>,
    /// The host its certificate names.
    pub host: Option<String>,
    /// The certificate's subject, for logs and audit lines.
    pub subject: String,
}

impl PeerIdentity {
    /// The identity in a connection's peer certificates (the first is the peer's own); `None`
    /// when the peer presented none.
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Option<PeerIdentity> {
        let info = CertInfo::from_der(chain?.first()?).ok()?;
        Some(PeerIdentity { role: info.role, host: info.host(), subject: info.subject })
    }
}
