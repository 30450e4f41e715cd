//! Who am I, alarms, users and tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, error};
use crate::AppState;
use crate::auth::{Auth, AuthError, Principal, Role, parse_expiry, retry_after_secs};
use crate::session::{ApiUser, ClientIp, require, session_id_in};

pub(super) async fn whoami(ApiUser(who): ApiUser) -> Response {
    Json(json!({ "name": who.name, "role": who.role, "authorized": true })).into_response()
}

pub(super) async fn alarms(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    Json(json!({ "active": state.alarms.active(), "history": state.alarms.history() })).into_response()
}

pub(super) async fn users(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    Json(state.auth.users()).into_response()
}

/// The status of a refused user or token change.
fn refused(e: AuthError) -> Response {
    let status = match e {
        AuthError::NoSuchUser(_) | AuthError::NoSuchToken(_) => StatusCode::NOT_FOUND,
        AuthError::TokenExists(_) | AuthError::LastAdmin => StatusCode::CONFLICT,
        AuthError::WrongPassword => StatusCode::UNAUTHORIZED,
        AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        AuthError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut resp = error(status, e.to_string());
    let retry = match e {
        AuthError::Throttled { retry_after } => Some(retry_after_secs(retry_after)),
        AuthError::Busy => Some(5),
        _ => None,
    };
    if let Some(secs) = retry {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct SetUser {
    name: String,
    role: String,
    /// The new password; without one, an existing user's role changes and the password stays.
    password: Option<String>,
}

pub(super) async fn set_user(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Json(u): Json<SetUser>,
) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    let role = match Role::from_name(&u.role) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let name = u.name.clone();
    let result = state
        .auth
        .hashing(move |auth| match u.password.as_deref() {
            Some(p) => auth.set_user(&u.name, role, p),
            None => auth.set_role(&u.name, role),
        })
        .await;
    match result.and_then(|r| r) {
        Ok(()) => {
            tracing::info!(user = %name, role = role.as_str(), by = %who.name, "user saved");
            (StatusCode::CREATED, Json(json!({ "name": name, "role": role }))).into_response()
        }
        Err(e) => refused(e),
    }
}

pub(super) async fn remove_user(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(name): Path<String>,
) -> Response {
    admin_removes(&state, &who, name, "removed", Auth::remove_user).await
}

/// An admin's removal of the user or token `name` by `remove`; answers `{"<done>": name}`.
async fn admin_removes(
    state: &AppState,
    who: &Principal,
    name: String,
    done: &'static str,
    remove: fn(&Auth, &str) -> Result<(), AuthError>,
) -> Response {
    if let Err(r) = require(who, Role::Admin) {
        return r;
    }
    let auth = state.auth.clone();
    let n = name.clone();
    match blocking(move || remove(&auth, &n)).await {
        Ok(Ok(())) => {
            tracing::info!(name = %name, by = %who.name, "{done}");
            Json(serde_json::Map::from_iter([(done.to_string(), serde_json::Value::from(name))])).into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

pub(super) async fn tokens(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    Json(state.auth.tokens()).into_response()
}

#[derive(Deserialize)]
pub(super) struct NewToken {
    name: String,
    role: String,
    /// A lifetime (`90d`, `12h`) or an RFC 3339 time; never expires when absent.
    expires: Option<String>,
}

pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Json(t): Json<NewToken>,
) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    let role = match Role::from_name(&t.role) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let expires_at = match t.expires.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => match parse_expiry(e, chrono::Utc::now()) {
            Ok(at) => Some(at),
            Err(e) => return refused(e),
        },
    };
    let auth = state.auth.clone();
    let name = t.name.clone();
    match blocking(move || auth.create_token(&name, role, expires_at)).await {
        Ok(Ok(secret)) => {
            tracing::info!(token = %t.name, role = role.as_str(), by = %who.name, "token created");
            (
                StatusCode::CREATED,
                Json(json!({ "name": t.name, "role": role, "token": secret, "expires_at": expires_at })),
            )
                .into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

pub(super) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(name): Path<String>,
) -> Response {
    admin_removes(&state, &who, name, "revoked", Auth::revoke_token).await
}

#[derive(Deserialize)]
pub(super) struct NewPassword {
    name: String,
    current: String,
    new: String,
}

/// A user changes their own password; the current password is the credential (throttled and
/// gated like a login). Their sessions end, except the one making the request.
pub(super) async fn change_password(
    State(state): State<Arc<AppState>>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Json(p): Json<NewPassword>,
) -> Response {
    let keep = session_id_in(&headers);
    match state.auth.change_password(&p.name, &p.current, &p.new, client, keep.as_deref()).await {
        Ok(()) => {
            tracing::info!(user = %p.name, "password changed by its user");
            Json(json!({ "name": p.name, "changed": true })).into_response()
        }
        Err(e) => refused(e),
    }
}
