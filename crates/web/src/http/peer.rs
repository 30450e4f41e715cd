//! [`MachinePeer`]: the extractor of routes that only other tollgate servers call (the
//! manager pair's routes, ingest): over TLS, the client must have presented a certificate of
//! the CA naming one of the route's roles; over plain HTTP (loopback, or
//! `tls.allow_plaintext`) there is no certificate to demand and the route's token alone
//! decides.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tollgate_tls::{PeerIdentity, Role, RoleSet};

use super::ApiError;
use crate::server::TlsConnection;

/// The roles a [`MachinePeer`] route accepts.
pub trait PeerRoles: Send + Sync + 'static {
    /// The roles a client certificate must name.
    const ROLES: RoleSet;
    /// What the route is, for the refusal (`the manager pair's routes`).
    const WHAT: &'static str;
}

/// Roles of a manager's mate: another manager.
#[derive(Debug, Clone, Copy)]
pub struct Managers;

impl PeerRoles for Managers {
    const ROLES: RoleSet = RoleSet::of(&[Role::Manager]);
    const WHAT: &'static str = "the manager pair's routes";
}

/// Roles that ship records to a collector: engines, probes, and collectors (a collector that
/// also runs an engine ships to itself).
#[derive(Debug, Clone, Copy)]
pub struct Shippers;

impl PeerRoles for Shippers {
    const ROLES: RoleSet = RoleSet::of(&[Role::Engine, Role::Probe, Role::Collector]);
    const WHAT: &'static str = "ingest";
}

/// The verified identity of the machine peer calling the route, `None` on a plain connection.
/// Over TLS, a client without a certificate, or with one naming another role, is refused
/// with `403 forbidden` before the handler runs.
#[derive(Debug, Clone)]
pub struct MachinePeer<R: PeerRoles> {
    /// The peer's certificate identity (`None` over plain HTTP).
    pub identity: Option<PeerIdentity>,
    roles: PhantomData<R>,
}

impl<R: PeerRoles> MachinePeer<R> {
    /// Decides on a request's extensions (see [`crate::server`]).
    pub fn check(tls: bool, identity: Option<PeerIdentity>) -> Result<MachinePeer<R>, ApiError> {
        if !tls {
            return Ok(MachinePeer { identity: None, roles: PhantomData });
        }
        let wanted = R::ROLES.names().join(", ");
        match identity {
            Some(peer) if peer.role.is_some_and(|r| R::ROLES.contains(r)) => {
                Ok(MachinePeer { identity: Some(peer), roles: PhantomData })
            }
            Some(peer) => Err(ApiError::forbidden(format!(
                "{} accept only a client certificate of role {wanted}; '{}' names {}",
                R::WHAT,
                peer.subject,
                peer.role.map_or_else(|| "no role".to_string(), |r| format!("role '{r}'"))
            ))),
            None => Err(ApiError::forbidden(format!(
                "{} need a client certificate of role {wanted} (issued by `tollgate pki issue`)",
                R::WHAT
            ))),
        }
    }
}

impl<R: PeerRoles, S: Send + Sync> FromRequestParts<S> for MachinePeer<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let tls = parts.extensions.get::<TlsConnection>().is_some();
        let identity = parts.extensions.get::<Option<PeerIdentity>>().cloned().flatten();
        MachinePeer::check(tls, identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Option<Role>) -> PeerIdentity {
        PeerIdentity { role, host: Some("east-a".into()), subject: "CN=east-a,OU=x,O=tollgate".into() }
    }

    #[test]
    fn over_tls_only_a_certificate_of_the_routes_roles_passes() {
        assert!(MachinePeer::<Managers>::check(true, Some(peer(Some(Role::Manager)))).is_ok());
        for refused in [None, Some(peer(Some(Role::Engine))), Some(peer(None))] {
            let e = MachinePeer::<Managers>::check(true, refused).unwrap_err();
            assert_eq!(e.body().code, tollgate_api::ErrorCode::Forbidden);
        }
        assert!(MachinePeer::<Shippers>::check(true, Some(peer(Some(Role::Probe)))).is_ok());
        assert!(MachinePeer::<Shippers>::check(true, Some(peer(Some(Role::Operator)))).is_err());
    }

    #[test]
    fn over_plain_http_the_token_alone_decides() {
        let p = MachinePeer::<Managers>::check(false, None).unwrap();
        assert!(p.identity.is_none());
    }
}
