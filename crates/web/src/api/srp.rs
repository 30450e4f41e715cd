//! `/api/v1/srp/...`: the `show srp` views and `srp` commands of an SRP chassis, typed by
//! `tollgate_api::srp` (one list of views and commands for the CLI, this router and the
//! runtime). An engine without `[srp]` answers `not_configured` (404).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tollgate_api::srp::{ForcedStandbyBody, NackBody, SrpCommand, SrpReply, SrpRequest, SrpView, SwitchoverQuery};
use tollgate_srp::runtime::{SrpData, SrpError};

use crate::AppState;
use crate::auth::Role;
use crate::http::{ApiError, ApiResult};
use crate::session::{ApiUser, require};

async fn run(state: &AppState, req: SrpRequest) -> ApiResult<Json<SrpReply<SrpData>>> {
    let Some(srp) = &state.srp else {
        return Err(ApiError::not_configured("SRP is not configured on this server (no [srp] section)"));
    };
    match srp.request(req).await {
        Ok(reply) => Ok(Json(reply)),
        Err(e @ SrpError::Refused(_)) => Err(ApiError::conflict(e.to_string())),
        Err(e @ SrpError::Stopped) => Err(ApiError::unavailable(e.to_string())),
    }
}

/// `GET /api/v1/srp/show/{view}`.
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(view): Path<String>,
) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    let answer = async {
        let view: SrpView =
            view.parse().map_err(|e: tollgate_api::srp::UnknownName| ApiError::not_found(e.to_string()))?;
        run(&state, SrpRequest::Show(view)).await
    };
    answer.await.into_response()
}

/// Reads the JSON body a command needs, or says what it should look like.
fn body_of<T: DeserializeOwned>(command: SrpCommand, body: &Bytes, shape: &str) -> ApiResult<T> {
    let bad = |detail: String| ApiError::bad_request(format!("{command} needs a JSON body {shape}{detail}"));
    if body.is_empty() {
        return Err(bad(String::new()));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!(": {e}")))
}

/// `POST /api/v1/srp/{command}`.
pub(super) async fn command(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(command): Path<String>,
    Query(query): Query<SwitchoverQuery>,
    body: Bytes,
) -> Response {
    let command: SrpCommand = match command.parse() {
        Ok(c) => c,
        Err(e) => {
            // Refuse the role first, as before: a viewer learns nothing about names.
            if let Err(r) = require(&who, Role::Operator) {
                return r;
            }
            return ApiError::not_found(e.to_string()).into_response();
        }
    };
    let needed = if command.read_only() { Role::Viewer } else { Role::Operator };
    if let Err(r) = require(&who, needed) {
        return r;
    }
    let answer = async {
        let req = match command {
            SrpCommand::ValidateSwitchover => SrpRequest::ValidateSwitchover,
            SrpCommand::InitiateSwitchover => SrpRequest::InitiateSwitchover { force: query.force },
            SrpCommand::InitiateAudit => SrpRequest::InitiateAudit,
            SrpCommand::ValidateConfiguration => SrpRequest::ValidateConfiguration,
            SrpCommand::Nack => {
                let b: NackBody = body_of(command, &body, r#"{"cmd": N, "enable": bool}"#)?;
                SrpRequest::Nack { cmd: b.cmd, enable: b.enable }
            }
            SrpCommand::ForcedStandby => {
                let b: ForcedStandbyBody = body_of(command, &body, r#"{"on": bool}"#)?;
                SrpRequest::ForcedStandby { on: b.on }
            }
        };
        tracing::info!(who = %who.name, %command, "SRP command");
        run(&state, req).await
    };
    answer.await.into_response()
}
