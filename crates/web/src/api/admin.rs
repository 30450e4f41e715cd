//! Who am I, alarms, users and tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error;
use crate::AppState;
use crate::auth::Role;
use crate::session::{ApiUser, require};

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

#[derive(Deserialize)]
pub(super) struct SetUser {
    name: String,
    role: String,
    password: String,
}

pub(super) async fn set_user(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Json(u): Json<SetUser>,
) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    let Some(role) = Role::parse(&u.role).filter(|r| *r != Role::Ingest) else {
        return error(StatusCode::BAD_REQUEST, "role must be viewer, operator or admin");
    };
    match state.auth.set_user(&u.name, role, &u.password) {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "name": u.name, "role": role }))).into_response(),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
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
}

pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Json(t): Json<NewToken>,
) -> Response {
    if let Err(r) = require(&who, Role::Admin) {
        return r;
    }
    let Some(role) = Role::parse(&t.role) else {
        return error(StatusCode::BAD_REQUEST, "role must be ingest, viewer, operator or admin");
    };
    match state.auth.create_token(&t.name, role) {
        Ok(secret) => {
            (StatusCode::CREATED, Json(json!({ "name": t.name, "role": role, "token": secret }))).into_response()
        }
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}
