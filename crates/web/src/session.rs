//! Who is asking: extractors for API callers (bearer token or session cookie; 401 otherwise)
//! and UI visitors (session cookie; sent to the login page otherwise).

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::AppState;
use crate::auth::{Principal, Role};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tollgate_session";

/// The session id in a request's cookies.
pub fn session_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn principal(parts: &Parts, state: &AppState) -> Option<Principal> {
    let bearer =
        parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return state.auth.token(token.trim());
    }
    session_id(parts).and_then(|id| state.auth.session(&id))
}

/// An authenticated API caller.
pub struct ApiUser(pub Principal);

impl FromRequestParts<Arc<AppState>> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        principal(parts, state).map(ApiUser).ok_or_else(|| {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "authentication required: `Authorization: Bearer <token>` or a login session" })),
            )
                .into_response()
        })
    }
}

/// A logged-in UI visitor.
pub struct UiUser(pub Principal);

impl FromRequestParts<Arc<AppState>> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        principal(parts, state).map(UiUser).ok_or_else(|| {
            let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Redirect::to(&format!("/login?next={}", crate::ui::urlencode(back))).into_response()
        })
    }
}

/// Refuses with 403 unless `who` may act as `needed`.
pub fn require(who: &Principal, needed: Role) -> Result<(), Response> {
    if who.role.allows(needed) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            Json(json!({ "error": format!("{} ({}) may not do this; it needs the {} role", who.name, who.role.as_str(), needed.as_str()) })),
        )
            .into_response())
    }
}
