//! `/api/v1/srp/...`: the `show srp` views and `srp` commands of an SRP chassis, typed by
//! `tollgate_api::srp` (one list of views and commands for the CLI, this router and the
//! runtime). An engine without `[srp]` answers `not_configured` (404).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};

use serde::de::DeserializeOwned;
use tollgate_api::srp::{ForcedStandbyBody, NackBody, SrpCommand, SrpReply, SrpRequest, SrpView, SwitchoverQuery};
use tollgate_srp::runtime::{SrpData, SrpError};

use crate::AppState;
use crate::auth::Role;
use crate::http::{ApiError, ApiResult};
use crate::session::{ApiUser, Viewer, authorize};

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
    _viewer: Viewer,
    Path(view): Path<String>,
) -> ApiResult<Json<SrpReply<SrpData>>> {
    let view: SrpView = view.parse().map_err(|e: tollgate_api::srp::UnknownName| ApiError::not_found(e.to_string()))?;
    run(&state, SrpRequest::Show(view)).await
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
) -> ApiResult<Json<SrpReply<SrpData>>> {
    let command: SrpCommand = match command.parse() {
        Ok(c) => c,
        Err(e) => {
            // Refuse the role first, as before: a viewer learns nothing about names.
            authorize(&who, Role::Operator)?;
            return Err(ApiError::not_found(e.to_string()));
        }
    };
    let needed = if command.read_only() { Role::Viewer } else { Role::Operator };
    authorize(&who, needed)?;
    {
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
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tollgate_api::{ErrorBody, ErrorCode};
    use tower::ServiceExt;

    use super::*;
    use crate::{IngestMetrics, ReleaseInfo};

    const TOKEN: &str = "srp-route-test-admin-token";

    /// The router of an engine without `[srp]`.
    fn router(dir: &std::path::Path) -> axum::Router {
        let (auth, _) = crate::auth::Auth::open(dir, Some(TOKEN.into())).unwrap();
        let state = AppState {
            node: "test".into(),
            policy: None,
            responder: None,
            store: None,
            registry: Arc::new(prometheus_client::registry::Registry::default()),
            auth: Arc::new(auth),
            alarms: Arc::new(tollgate_alarms::Alarms::default()),
            quarantine: Arc::new(crate::quarantine::Quarantine::new(dir.join("quarantine"), 1 << 20)),
            ingest: Arc::new(IngestMetrics::default()),
            status: None,
            srp: None,
            probe_calls: None,
            release: ReleaseInfo { release: "0".into(), build: "0".into(), max_policy_schema: 1, roles: Vec::new() },
            tls: None,
            console: None,
        };
        crate::router(Arc::new(state))
    }

    async fn call(router: &axum::Router, method: &str, path: &str) -> (StatusCode, ErrorBody) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(if method == "POST" { r#"{"on": true}"# } else { "" }))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn srp_routes_on_an_engine_without_srp_answer_not_configured() {
        let dir = std::env::temp_dir().join(format!("tollgate-web-srp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let router = router(&dir);
        for view in SrpView::all() {
            let (status, body) = call(&router, "GET", &view.path()).await;
            assert_eq!((status, body.code), (StatusCode::NOT_FOUND, ErrorCode::NotConfigured), "{view}");
            assert!(body.message.contains("no [srp] section"), "{}", body.message);
        }
        for command in SrpCommand::all() {
            let path = command.path();
            let (status, body) = call(&router, "POST", &path).await;
            // `nack` reads its body first: `{"on"}` is not one.
            let expected = if *command == SrpCommand::Nack {
                (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
            } else {
                (StatusCode::NOT_FOUND, ErrorCode::NotConfigured)
            };
            assert_eq!((status, body.code), expected, "{command}: {}", body.message);
        }
        // Names this release does not know: not found, with the list.
        let (status, body) = call(&router, "GET", "/api/v1/srp/show/nonsense").await;
        assert_eq!((status, body.code), (StatusCode::NOT_FOUND, ErrorCode::NotFound));
        assert!(body.message.contains("concurrent"), "{}", body.message);
        let (status, body) = call(&router, "POST", "/api/v1/srp/nonsense").await;
        assert_eq!((status, body.code), (StatusCode::NOT_FOUND, ErrorCode::NotFound));
        assert!(body.message.contains("forced-standby"), "{}", body.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
