//! Encryption of the SRP link: TLS 1.3 with mutual certificates of the pair's CA, under the
//! HMAC handshake and frames of [`crate::handshake`] and [`crate::frame`].
//!
//! Checkpoints carry callers' numbers; the frames' HMAC proves who sent them but hides nothing.
//! With `[tls]` configured, every link connection is first a TLS 1.3 session
//! ([`tollgate_tls::client_config`] / [`tollgate_tls::server_config`]): both chassis present
//! their engine certificate, and each accepts only a certificate of the CA naming role
//! `engine`. The dialer verifies the acceptor's certificate for the mate's address
//! (`srp.peer_address`: the certificate needs that IP address as a SAN, `tollgate pki issue
//! --role engine --host east-b --ip <its SRP address>`). The SRP handshake then runs inside the
//! TLS session unchanged (defence in depth: the shared key still proves the two chassis are
//! one pair, and frames keep their sequence numbers and MACs).
//!
//! The TLS handshake is part of the link's handshake: it is bounded by the same timer (the
//! dead interval on the dialer, [`crate::link`]'s handshake deadline on the acceptor), counts
//! against the same admission limits, and a failure is counted in `handshake_failures` and in
//! `tls_failures` and logged (throttled) with rustls' reason (an unknown issuer, a refused
//! role, no certificate). A refused peer is, for the election, a mate that cannot be reached:
//! exactly what a wrong shared key or a cut cable is today (after the dead interval a chassis
//! that hears no mate serves; when the link comes up, split-brain resolution leaves one Active).
//! Certificates are read at every handshake, so a rotated certificate is used by the next
//! connection without a restart.
//!
//! Without `[tls]` the link stays plain TCP (HMAC only), which [`LinkSecurity::check`] allows
//! only between loopback addresses unless the operator sets `tls.allow_plaintext`.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tollgate_tls::rustls::pki_types::ServerName;
use tollgate_tls::tokio_rustls::{TlsAcceptor, TlsConnector};
use tollgate_tls::{ClientPolicy, Plaintext, PlaintextRefused, Role, RoleSet, TlsMaterial, Versions};

/// The reading half of a link connection (plain TCP or TLS).
pub(crate) type LinkReader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a link connection (plain TCP or TLS).
pub(crate) type LinkWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// The ALPN protocol of the SRP link: a TLS client of another tollgate link (or anything else)
/// that names another protocol is refused at the handshake.
pub const ALPN: &[u8] = b"tollgate-srp/1";

/// How the link is protected, as the owner configures it.
#[derive(Debug, Clone)]
pub enum LinkSecurity {
    /// TLS 1.3 with this material's certificate (`[tls]`).
    Tls(TlsMaterial),
    /// Plain TCP, frames authenticated by HMAC but readable by anyone on the path.
    Plain {
        /// `tls.allow_plaintext`: plain text between non-loopback addresses is accepted.
        allow_plaintext: bool,
    },
}

/// Why the link's security could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkSecurityError {
    /// Plain text between non-loopback addresses, not allowed.
    #[error("{0}")]
    Plaintext(#[from] PlaintextRefused),
    /// rustls refused the material.
    #[error("TLS for the SRP link: {0}")]
    Tls(#[from] tollgate_tls::rustls::Error),
}

impl LinkSecurity {
    /// The TLS of a link between `bind` and `peer`, or `None` for plain text, which is allowed
    /// only when both addresses are loopback or the operator allowed it (then a warning is
    /// logged).
    pub fn check(&self, bind: SocketAddr, peer: SocketAddr) -> Result<Option<LinkTls>, LinkSecurityError> {
        match self {
            LinkSecurity::Tls(material) => Ok(Some(LinkTls::new(material, peer)?)),
            LinkSecurity::Plain { allow_plaintext } => {
                let mut warn = false;
                for (setting, addr) in [("srp.bind_address", bind), ("srp.peer_address", peer)] {
                    warn |=
                        tollgate_tls::check_plaintext(setting, addr, *allow_plaintext)? == Plaintext::AllowedByConfig;
                }
                if warn {
                    tracing::warn!(
                        %bind,
                        %peer,
                        "SRP link in plain text between non-loopback addresses (tls.allow_plaintext = true): \
                         checkpoints with callers' numbers cross the network in clear"
                    );
                }
                Ok(None)
            }
        }
    }
}

/// The TLS of one link: what the dialer connects with and the acceptor accepts with.
#[derive(Clone)]
pub struct LinkTls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl LinkTls {
    /// TLS 1.3 presenting `material`'s certificate, accepting only engine certificates of its
    /// CA; the dialer verifies the acceptor's certificate for the IP address of `peer`.
    pub fn new(material: &TlsMaterial, peer: SocketAddr) -> Result<LinkTls, tollgate_tls::rustls::Error> {
        let engines = RoleSet::of(&[Role::Engine]);
        let client = tollgate_tls::client_config(material, engines, Versions::Tls13, &[ALPN])?;
        let server = tollgate_tls::server_config(material, ClientPolicy::only(engines), Versions::Tls13, &[ALPN])?;
        Ok(LinkTls {
            connector: TlsConnector::from(client),
            acceptor: TlsAcceptor::from(server),
            server_name: ServerName::IpAddress(peer.ip().into()),
        })
    }

    /// The name the dialer verifies the acceptor's certificate for.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

/// A dialed connection, in TLS when `tls` is set.
pub(crate) async fn secure_dialed(
    tls: Option<&LinkTls>,
    stream: TcpStream,
) -> std::io::Result<(LinkReader, LinkWriter)> {
    match tls {
        None => Ok(plain(stream)),
        Some(tls) => {
            let stream = tls.connector.connect(tls.server_name.clone(), stream).await?;
            let (r, w) = tokio::io::split(stream);
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

/// An accepted connection, in TLS when `tls` is set.
pub(crate) async fn secure_accepted(
    tls: Option<&LinkTls>,
    stream: TcpStream,
) -> std::io::Result<(LinkReader, LinkWriter)> {
    match tls {
        None => Ok(plain(stream)),
        Some(tls) => {
            let stream = tls.acceptor.accept(stream).await?;
            let (r, w) = tokio::io::split(stream);
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

fn plain(stream: TcpStream) -> (LinkReader, LinkWriter) {
    let (r, w) = stream.into_split();
    (Box::new(r), Box::new(w))
}

/// Whether an I/O error is TLS's (a refused certificate, an alert from the peer), as
/// tokio-rustls reports them.
pub(crate) fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<tollgate_tls::rustls::Error>())
}
