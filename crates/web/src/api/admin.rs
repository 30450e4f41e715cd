//! Who am I, alarms, users and tokens (request and answer types: `tollgate_api::web`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use tollgate_api::web::{
    AlarmEventView, AlarmView, CreatedToken, NewPassword, NewToken, PasswordChanged, Removed, RoleAlarms, SavedUser,
    SetUser, WhoAmI,
};

use super::blocking;
use crate::AppState;
use crate::auth::{Auth, AuthError, Principal, TokenInfo, UserInfo, parse_expiry, retry_after_secs, role_named};
use crate::http::{ApiError, ApiResult, JsonBody};
use crate::session::{Admin, ApiUser, ClientIp, Viewer, session_id_in};

pub(super) async fn whoami(ApiUser(who): ApiUser) -> Json<WhoAmI> {
    Json(WhoAmI { name: who.name, role: who.role, authorized: true })
}

pub(super) async fn alarms(State(state): State<Arc<AppState>>, _: Viewer) -> Json<RoleAlarms> {
    Json(RoleAlarms {
        active: state.alarms.active().iter().map(AlarmView::from).collect(),
        history: state.alarms.history().iter().map(AlarmEventView::from).collect(),
    })
}

pub(super) async fn tls(State(state): State<Arc<AppState>>, _: Viewer) -> Json<tollgate_api::tls::TlsStatus> {
    Json(state.tls.as_ref().map(|f| f()).unwrap_or_default())
}

pub(super) async fn users(State(state): State<Arc<AppState>>, _: Admin) -> Json<Vec<UserInfo>> {
    Json(state.auth.users())
}

/// A refused user, token or password change as an API error.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = e.to_string();
        match e {
            AuthError::NoSuchUser(_) | AuthError::NoSuchToken(_) => ApiError::not_found(message),
            AuthError::TokenExists(_) | AuthError::LastAdmin => ApiError::conflict(message),
            AuthError::WrongPassword => ApiError::unauthenticated(message),
            AuthError::Throttled { retry_after } => ApiError::new(tollgate_api::ErrorCode::TooManyRequests, message)
                .retry_after(retry_after_secs(retry_after)),
            AuthError::Busy => ApiError::unavailable(message).retry_after(5),
            AuthError::Storage(_) => ApiError::internal(message),
            _ => ApiError::bad_request(message),
        }
    }
}

pub(super) async fn set_user(
    State(state): State<Arc<AppState>>,
    Admin(who): Admin,
    JsonBody(u): JsonBody<SetUser>,
) -> ApiResult<(StatusCode, Json<SavedUser>)> {
    let role = role_named(&u.role)?;
    let name = u.name.clone();
    state
        .auth
        .hashing(move |auth| match u.password.as_deref() {
            Some(p) => auth.set_user(&u.name, role, p),
            None => auth.set_role(&u.name, role),
        })
        .await??;
    tracing::info!(user = %name, role = role.as_str(), by = %who.name, "user saved");
    Ok((StatusCode::CREATED, Json(SavedUser { name, role })))
}

pub(super) async fn remove_user(
    State(state): State<Arc<AppState>>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<Removed>> {
    admin_removes(&state, &who, name.clone(), "removed", Auth::remove_user).await?;
    Ok(Json(Removed { removed: Some(name), revoked: None }))
}

pub(super) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<Removed>> {
    admin_removes(&state, &who, name.clone(), "revoked", Auth::revoke_token).await?;
    Ok(Json(Removed { removed: None, revoked: Some(name) }))
}

/// An admin's removal of the user or token `name` by `remove`.
async fn admin_removes(
    state: &AppState,
    who: &Principal,
    name: String,
    done: &'static str,
    remove: fn(&Auth, &str) -> Result<(), AuthError>,
) -> ApiResult<()> {
    let auth = state.auth.clone();
    let n = name.clone();
    blocking(move || remove(&auth, &n)).await??;
    tracing::info!(name = %name, by = %who.name, "{done}");
    Ok(())
}

pub(super) async fn tokens(State(state): State<Arc<AppState>>, _: Admin) -> Json<Vec<TokenInfo>> {
    Json(state.auth.tokens())
}

pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    Admin(who): Admin,
    JsonBody(t): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let role = role_named(&t.role)?;
    let expires_at = match t.expires.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => Some(parse_expiry(e, chrono::Utc::now())?),
    };
    let auth = state.auth.clone();
    let name = t.name.clone();
    let secret = blocking(move || auth.create_token(&name, role, expires_at)).await??;
    tracing::info!(token = %t.name, role = role.as_str(), by = %who.name, "token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { name: t.name, role, token: secret, expires_at })))
}

/// A user changes their own password; the current password is the credential (throttled and
/// gated like a login). Their sessions end, except the one making the request.
pub(super) async fn change_password(
    State(state): State<Arc<AppState>>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    JsonBody(p): JsonBody<NewPassword>,
) -> ApiResult<Json<PasswordChanged>> {
    let keep = session_id_in(&headers);
    state.auth.change_password(&p.name, &p.current, &p.new, client, keep.as_deref()).await?;
    tracing::info!(user = %p.name, "password changed by its user");
    Ok(Json(PasswordChanged { name: p.name, changed: true }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::header;
    use axum::response::IntoResponse;
    use tollgate_api::ErrorCode;

    use super::*;

    #[test]
    fn auth_errors_answer_with_their_codes_and_say_when_to_retry() {
        let throttled = ApiError::from(AuthError::Throttled { retry_after: Duration::from_secs(42) });
        assert_eq!(throttled.code(), ErrorCode::TooManyRequests);
        let response = throttled.into_response();
        assert_eq!(
            (response.status().as_u16(), &response.headers()[header::RETRY_AFTER]),
            (429, &"42".parse().unwrap())
        );
        let busy = ApiError::from(AuthError::Busy).into_response();
        assert_eq!((busy.status().as_u16(), &busy.headers()[header::RETRY_AFTER]), (503, &"5".parse().unwrap()));
        for (e, code) in [
            (AuthError::WrongPassword, ErrorCode::Unauthenticated),
            (AuthError::NoSuchUser("x".into()), ErrorCode::NotFound),
            (AuthError::NoSuchToken("x".into()), ErrorCode::NotFound),
            (AuthError::TokenExists("x".into()), ErrorCode::Conflict),
            (AuthError::LastAdmin, ErrorCode::Conflict),
            (AuthError::ShortPassword, ErrorCode::BadRequest),
            (AuthError::BadRole("root".into()), ErrorCode::BadRequest),
        ] {
            assert_eq!(ApiError::from(e).code(), code);
        }
    }
}
