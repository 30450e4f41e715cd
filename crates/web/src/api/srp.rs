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
struct NackBody {
    cmd: u16,
    enable: bool,
}

/// Body of `forced-standby`.
#[derive(Debug, Deserialize)]
struct ForcedStandbyBody {
    on: bool,
}

/// Reads the JSON body a command needs, or says what it should look like.
fn body_of<T: serde::de::DeserializeOwned>(
    command: &str,
    body: Option<Json<serde_json::Value>>,
    shape: &str,
) -> Result<T, Response> {
    let bad = |detail: String| error(StatusCode::BAD_REQUEST, format!("{command} needs a JSON body {shape}{detail}"));
    let Some(Json(v)) = body else { return Err(bad(String::new())) };
    serde_json::from_value(v).map_err(|e| bad(format!(": {e}")))
}

/// `POST /api/v1/srp/{command}`.
pub(super) async fn command(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(command): Path<String>,
    Query(params): Query<SwitchoverParams>,
    body: Option<Json<serde_json::Value>>,
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
        "nack" => match body_of::<NackBody>("nack", body, r#"{"cmd": N, "enable": bool}"#) {
            Ok(b) => SrpRequest::Nack { cmd: b.cmd, enable: b.enable },
            Err(r) => return r,
        },
        "forced-standby" => match body_of::<ForcedStandbyBody>("forced-standby", body, r#"{"on": bool}"#) {
            Ok(b) => SrpRequest::ForcedStandby { on: b.on },
            Err(r) => return r,
        },
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown SRP command {other:?} (validate-switchover, initiate-switchover, initiate-audit, nack, forced-standby, validate-configuration)"
                ),
            );
        }
    };
    tracing::info!(who = %who.name, %command, "SRP command");
    run(&state, req).await
}
