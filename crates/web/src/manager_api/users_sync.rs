//! The user database follows the active manager to its mate: the active pushes it (users with
//! their password hashes, tokens with their digests) to `POST /api/v1/manager/users` of the
//! standby whenever it changes, and every 30 s regardless, so an operator logs in to either
//! manager with the same password. Users are managed on the active manager: the standby's own
//! changes are replaced by the active's copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_api::ErrorCode;

use super::{ApiState, ManagerApi, Peer};
use crate::http::{ApiError, ApiResult};

/// `POST /api/v1/manager/users`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersAnswer {
    /// The standby's user database changed.
    pub changed: bool,
}

/// How often the active manager looks for a change of its user database.
const CHECK: Duration = Duration::from_secs(2);
/// How often it pushes the database even when unchanged (a mate that restarted, or missed one).
const REFRESH: Duration = Duration::from_secs(30);

/// On the standby: takes the active mate's user database.
pub(super) async fn accept(
    State(s): State<ApiState>,
    _: Peer,
    Json(db): Json<serde_json::Value>,
) -> ApiResult<Json<UsersAnswer>> {
    if s.manager.is_active() {
        return Err(ApiError::new(ErrorCode::Conflict, "the active manager keeps its own user database"));
    }
    let changed = s.auth.import(db).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    if changed {
        tracing::info!("user database copied from the active manager");
    }
    Ok(Json(UsersAnswer { changed }))
}

/// On the active manager, for ever: pushes the user database to the mate when it changed (or
/// [`REFRESH`] passed). Does nothing without a mate.
pub async fn replicate_users(api: Arc<ManagerApi>) {
    let Some(mate) = api.manager.cfg.mate.clone() else { return };
    let mut pushed: Option<(serde_json::Value, Instant)> = None;
    loop {
        tokio::time::sleep(CHECK).await;
        if !api.manager.is_active() {
            pushed = None;
            continue;
        }
        let db = match api.auth.export() {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the user database to copy it to the mate");
                continue;
            }
        };
        if pushed.as_ref().is_some_and(|(last, at)| *last == db && at.elapsed() < REFRESH) {
            continue;
        }
        match api.manager.agents.post::<_, UsersAnswer>(&mate, "/api/v1/manager/users", &db).await {
            Ok(_) => pushed = Some((db, Instant::now())),
            Err(e) => tracing::debug!(error = %e, "the standby manager did not take the user database"),
        }
    }
}
