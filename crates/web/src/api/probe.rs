//! `/api/v1/probe/...`: what a running probe holds of recent calls, typed by
//! `tollgate_api::probe`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use tollgate_api::probe::CallMessages;

use super::blocking;
use crate::AppState;
use crate::http::{ApiError, ApiResult};
use crate::session::Viewer;

/// `GET /api/v1/probe/calls/{call_id}/messages`: one call's SIP messages.
pub(super) async fn call_messages(
    State(state): State<Arc<AppState>>,
    _viewer: Viewer,
    Path(call_id): Path<String>,
) -> ApiResult<Json<CallMessages>> {
    let Some(calls) = state.probe_calls.clone() else {
        return Err(ApiError::not_configured(
            "this server keeps no calls' messages: it runs no probe, or probe.ladder_calls is 0",
        ));
    };
    let id = call_id.clone();
    match blocking(move || calls(&id)).await? {
        Some(messages) => Ok(Json(messages)),
        None => Err(ApiError::not_found(format!(
            "the probe holds no call with Call-ID {call_id:?} (it keeps the open calls and the most recent finished \
             ones, probe.ladder_calls)"
        ))),
    }
}
