//! Who is asking: extractors for API callers (bearer token or session cookie; 401 otherwise),
//! UI visitors (session cookie; sent to the login page otherwise) and UI form submissions
//! (which must also carry the session's CSRF token).
//!
//! Every request resolves its credential anew: a session gives the user's current role (see
//! [`crate::auth::Auth::session`]), a token is refused once revoked or expired.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth::{Auth, Principal, Role};
use crate::http::{ApiError, ApiResult};
use crate::security;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tollgate_session";
/// Name of the CSRF form field of UI forms.
pub const CSRF_FIELD: &str = "csrf";
/// Header carrying the session's CSRF token on API changes made with a session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `Set-Cookie` value that gives a browser session `id` (`None`: clears the cookie).
/// `HttpOnly` and `SameSite=Strict` always; `Secure` when the request came over TLS, so the
/// browser never sends the cookie in clear. (Over plain HTTP on loopback, `serve`'s demo,
/// `Secure` would make browsers drop the cookie, so it is left out there.)
pub fn session_cookie(id: Option<&str>, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    match id {
        Some(id) => format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// The session id in a request's cookies.
pub fn session_id(parts: &Parts) -> Option<String> {
    session_id_in(&parts.headers)
}

/// The session id in these headers' cookies.
pub fn session_id_in(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token (not sent by browsers on their own, so no CSRF token is needed).
    Token,
    /// A session cookie, with the session's CSRF token.
    Session {
        /// The session id.
        id: String,
        /// The session's CSRF token.
        csrf: String,
    },
}

/// A router state that holds a user database: the collector's [`AppState`] and the manager's
/// [`crate::manager_api::ManagerApi`]. Every extractor of this module, and the login and logout
/// handlers, work for any of them.
pub trait AuthState: Send + Sync + 'static {
    /// Users, sessions and tokens.
    fn auth(&self) -> &Arc<Auth>;
}

impl AuthState for AppState {
    fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }
}

fn caller<S: AuthState>(parts: &Parts, state: &S) -> Option<(Principal, Credential)> {
    if let Some(token) = crate::http::bearer(&parts.headers) {
        return state.auth().token(token.trim()).map(|p| (p, Credential::Token));
    }
    let id = session_id(parts)?;
    // A page's own refresh (the served script marks it) does not extend the session.
    let live = if parts.headers.contains_key(crate::ui::REFRESH_HEADER) {
        state.auth().session_quiet(&id)?
    } else {
        state.auth().session(&id)?
    };
    Some((live.principal, Credential::Session { id, csrf: live.csrf }))
}

/// The client's address (the TCP peer), when the server records it ([`crate::server`] puts
/// `ConnectInfo<SocketAddr>` into every request's extensions).
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The client's address as an extractor (never fails; `None` when not recorded).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// An authenticated API caller, of any role (`401 unauthenticated` otherwise). Changes (any
/// method but GET, HEAD, OPTIONS) made with a session cookie need the session's CSRF token in
/// `X-CSRF-Token` (`403 forbidden` otherwise). Routes that need a role take [`Viewer`],
/// [`Operator`], [`Admin`] or [`Ingester`] instead.
pub struct ApiUser(pub Principal);

impl<S: AuthState> FromRequestParts<Arc<S>> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        let Some((principal, credential)) = caller(parts, state.as_ref()) else {
            return Err(ApiError::unauthenticated(
                "authentication required: `Authorization: Bearer <token>` or a login session",
            ));
        };
        if let Credential::Session { csrf, .. } = &credential
            && !parts.method.is_safe()
        {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !security::tokens_match(sent, csrf) {
                return Err(ApiError::forbidden(
                    "a change made with a login session needs the session's CSRF token in the X-CSRF-Token header; \
                     scripts and tools should use `Authorization: Bearer <token>`",
                ));
            }
        }
        Ok(ApiUser(principal))
    }
}

/// `Ok` if `who` may act as `needed`, else `403 forbidden` saying which role it takes.
pub fn authorize(who: &Principal, needed: Role) -> ApiResult<()> {
    if who.role.allows(needed) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{} ({}) may not do this; it needs the {} role",
            who.name,
            who.role.as_str(),
            needed.as_str()
        )))
    }
}

/// The API caller, if their role allows `needed` (see [`Role::allows`]): `401` without a
/// credential, `403` with a role below it, before the handler runs.
async fn caller_with<S: AuthState>(parts: &mut Parts, state: &Arc<S>, needed: Role) -> ApiResult<Principal> {
    let ApiUser(who) = ApiUser::from_request_parts(parts, state).await?;
    authorize(&who, needed)?;
    Ok(who)
}

/// An API caller with the viewer role or above (sees policies, analytics, alarms).
pub struct Viewer(pub Principal);

impl<S: AuthState> FromRequestParts<Arc<S>> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> ApiResult<Self> {
        caller_with(parts, state, Role::Viewer).await.map(Viewer)
    }
}

/// An API caller with the operator role or above (installs and uninstalls policies, SRP
/// commands).
pub struct Operator(pub Principal);

impl<S: AuthState> FromRequestParts<Arc<S>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> ApiResult<Self> {
        caller_with(parts, state, Role::Operator).await.map(Operator)
    }
}

/// An API caller with the admin role (users and tokens).
pub struct Admin(pub Principal);

impl<S: AuthState> FromRequestParts<Arc<S>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> ApiResult<Self> {
        caller_with(parts, state, Role::Admin).await.map(Admin)
    }
}

/// An API caller that may send records (an ingest token, an operator or an admin; not a
/// viewer).
pub struct Ingester(pub Principal);

impl<S: AuthState> FromRequestParts<Arc<S>> for Ingester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> ApiResult<Self> {
        caller_with(parts, state, Role::Ingest).await.map(Ingester)
    }
}

/// A logged-in UI visitor.
#[derive(Debug, Clone)]
pub struct UiUser {
    /// Who it is, with their current role.
    pub who: Principal,
    /// How they proved it.
    pub credential: Credential,
}

impl UiUser {
    /// The CSRF token to put in this visitor's forms (empty for a bearer token).
    pub fn csrf(&self) -> &str {
        match &self.credential {
            Credential::Session { csrf, .. } => csrf,
            Credential::Token => "",
        }
    }

    /// The CSRF token a form of this visitor must carry (`None`: a bearer token, none needed).
    pub fn expected_csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf, .. } => Some(csrf),
            Credential::Token => None,
        }
    }

    /// The session id, when logged in with a cookie.
    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { id, .. } => Some(id),
            Credential::Token => None,
        }
    }

    /// True if a form sent `submitted` as its CSRF token may act for this visitor.
    pub fn accepts(&self, submitted: &str) -> bool {
        self.expected_csrf().is_none_or(|expected| security::tokens_match(submitted, expected))
    }
}

impl<S: AuthState> FromRequestParts<Arc<S>> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        caller(parts, state.as_ref()).map(|(who, credential)| UiUser { who, credential }).ok_or_else(|| {
            let back = if parts.method.is_safe() {
                parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            } else {
                // After login, a form post cannot be replayed: go back to the page it was on.
                parts.uri.path()
            };
            Redirect::to(&format!("/login?next={}", crate::ui::urlencode(back))).into_response()
        })
    }
}

/// A UI form submission (`application/x-www-form-urlencoded`) by a logged-in visitor whose
/// `csrf` field matches their session; refused with 403 otherwise, before the handler runs.
pub struct UiForm<T>(pub UiUser, pub T);

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned, S: AuthState> FromRequest<Arc<S>> for UiForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = UiUser::from_request_parts(&mut parts, state).await?;
        let bytes =
            Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        let sent: CsrfOnly = serde_urlencoded::from_bytes(&bytes).map_err(|e| bad_form(&e.to_string()))?;
        if !user.accepts(&sent.csrf) {
            return Err(security::csrf_refused());
        }
        let form: T = serde_urlencoded::from_bytes(&bytes).map_err(|e| bad_form(&e.to_string()))?;
        Ok(UiForm(user, form))
    }
}

fn bad_form(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("bad form: {why}\n")).into_response()
}
