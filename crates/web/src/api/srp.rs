//! `/api/v1/srp/...`: seed 003's `show srp` views and `srp` commands.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error;
use crate::AppState;
use crate::auth::Role;
use crate::session::{ApiUser, require};
use crate::srp::{SrpReply, SrpRequest};

async fn run(state: &AppState, req: SrpRequest) -> Response {
    let Some(srp) = &state.srp else {
        return error(StatusCode::NOT_FOUND, "SRP is not configured on this server (no [srp] section)");
    };
    match srp.request(req).await {
        Ok(SrpReply { text, data }) => Json(serde_json::json!({ "text": text, "data": data })).into_response(),
        Err(msg) => error(StatusCode::CONFLICT, msg),
    }
}

/// `GET /api/v1/srp/show/{what}`.
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(what): Path<String>,
) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    run(&state, SrpRequest::Show(what)).await
}

/// Options of `initiate-switchover`.
#[derive(Debug, Deserialize)]
pub(super) struct SwitchoverParams {
    #[serde(default)]
    force: bool,
}

/// Body of `nack`.
#[derive(Debug, Deserialize)]
pub(super) struct NackBody {
    cmd: u16,
    enable: bool,
}

/// `POST /api/v1/srp/{command}`.
pub(super) async fn command(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(command): Path<String>,
    Query(params): Query<SwitchoverParams>,
    body: Option<Json<NackBody>>,
) -> Response {
    let needed = if command == "validate-configuration" || command == "validate-switchover" {
        Role::Viewer
    } else {
        Role::Operator
    };
    if let Err(r) = require(&who, needed) {
        return r;
    }
    let req = match command.as_str() {
        "validate-switchover" => SrpRequest::ValidateSwitchover,
        "initiate-switchover" => SrpRequest::InitiateSwitchover { force: params.force },
        "initiate-audit" => SrpRequest::InitiateAudit,
        "validate-configuration" => SrpRequest::ValidateConfiguration,
        "nack" => match body {
            Some(Json(b)) => SrpRequest::Nack { cmd: b.cmd, enable: b.enable },
            None => return error(StatusCode::BAD_REQUEST, "nack needs a JSON body {\"cmd\": N, \"enable\": bool}"),
        },
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown SRP command {other:?} (validate-switchover, initiate-switchover, initiate-audit, nack, validate-configuration)"
                ),
            );
        }
    };
    tracing::info!(who = %who.name, %command, "SRP command");
    run(&state, req).await
}
