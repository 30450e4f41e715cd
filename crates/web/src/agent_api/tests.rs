//! The agent router in-process: every route of [`AGENT_BODY_LIMITS`] against no token, wrong tokens, the
//! right token, and bodies over its limit (announced, and found while read).

use std::collections::BTreeSet;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use tollgate_api::{ErrorBody, ErrorCode, VERSION_HEADER};
use tower::ServiceExt;

use super::*;
use crate::limits::AGENT_BODY_LIMITS;

const TOKEN: &str = "agent-token-0123456789";

/// An engine agent in `dir` (bundles and role requests up to 1 MiB) whose role does not answer.
fn app(dir: &std::path::Path) -> Router {
    let state = dir.join("role-state");
    std::fs::create_dir_all(&state).unwrap();
    let role_config = dir.join("role.toml");
    let role_text =
        format!("[node]\nname = \"east-a\"\nstate_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:1\"\n", state.display());
    std::fs::write(&role_config, &role_text).unwrap();
    let role = tollgate_config::Config::parse("role.toml", &role_text).unwrap();
    let key = tollgate_upgrade::bundle::signing_key_from_seed([1; 32]).verifying_key();
    let text = format!(
        "listen = \"127.0.0.1:7000\"\nserver = \"east-a\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"{}\"\ndir = \"{}\"\ntrusted_keys = [\"{}\"]\ntoken = \"{TOKEN}\"\nmax_bundle_mb = 1\nmax_role_request_mb = 1\n",
        role_config.display(),
        dir.join("agent").display(),
        tollgate_upgrade::bundle::public_key_hex(&key)
    );
    let config: tollgate_agent::AgentConfig = toml::from_str(&text).unwrap();
    let agent = Arc::new(Agent::new(config, role).unwrap());
    router(agent, SecretToken::new(TOKEN))
}

/// Each route: method, a URI, its pattern in [`AGENT_BODY_LIMITS`], a body, and the status the right token
/// gets on this agent (nothing installed, the role down).
fn cases() -> Vec<(Method, &'static str, &'static str, &'static str, StatusCode)> {
    use StatusCode as S;
    vec![
        (Method::GET, "/agent/v1/status", "/agent/v1/status", "", S::OK),
        (Method::POST, "/agent/v1/stage?name=b.tgb", "/agent/v1/stage", "not a bundle", S::UNPROCESSABLE_ENTITY),
        (Method::POST, "/agent/v1/preflight", "/agent/v1/preflight", r#"{"version":"1.0.0"}"#, S::UNPROCESSABLE_ENTITY),
        (Method::POST, "/agent/v1/install", "/agent/v1/install", r#"{"version":"1.0.0"}"#, S::UNPROCESSABLE_ENTITY),
        (Method::POST, "/agent/v1/backout", "/agent/v1/backout", "", S::CONFLICT),
        (Method::POST, "/agent/v1/restart", "/agent/v1/restart", "", S::OK),
        (Method::POST, "/agent/v1/backup", "/agent/v1/backup", r#"{"why":"test"}"#, S::OK),
        (Method::GET, "/agent/v1/backups", "/agent/v1/backups", "", S::OK),
        (Method::POST, "/agent/v1/restore", "/agent/v1/restore", r#"{"name":"none.tar.gz"}"#, S::UNPROCESSABLE_ENTITY),
        (Method::GET, "/agent/v1/health", "/agent/v1/health", "", S::OK),
        (Method::POST, "/agent/v1/unstage", "/agent/v1/unstage", r#"{"name":"none.tgb"}"#, S::UNPROCESSABLE_ENTITY),
        (Method::POST, "/agent/v1/forced-standby", "/agent/v1/forced-standby", r#"{"on":true}"#, S::OK),
        (Method::POST, "/agent/v1/ha-role", "/agent/v1/ha-role", r#"{"role":"Active"}"#, S::OK),
        (Method::GET, "/agent/v1/role/api/v1/srp/show/info", "/agent/v1/role/{*path}", "", S::SERVICE_UNAVAILABLE),
        (
            Method::POST,
            "/agent/v1/role/api/v1/srp/initiate-switchover",
            "/agent/v1/role/{*path}",
            "{}",
            S::SERVICE_UNAVAILABLE,
        ),
    ]
}

fn request(method: &Method, uri: &str, authorization: Option<&str>, body: Body, length: Option<u64>) -> Request<Body> {
    let mut r = Request::builder().method(method.clone()).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = authorization {
        r = r.header(header::AUTHORIZATION, a);
    }
    if let Some(n) = length {
        r = r.header(header::CONTENT_LENGTH, n);
    }
    r.body(body).unwrap()
}

/// Sends `req`; the status, whether the connection is closed after it, and the error body.
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, bool, Option<ErrorBody>) {
    let response = app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        response.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()),
        Some(tollgate_api::API_VERSION.to_string().as_str()),
        "every answer carries the API version"
    );
    let status = response.status();
    let closing = response.headers().get(header::CONNECTION).is_some_and(|v| v == "close");
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = if status.is_success() { None } else { serde_json::from_slice::<ErrorBody>(&bytes).ok() };
    (status, closing, body)
}

#[test]
fn the_matrix_covers_every_route_of_the_table() {
    let tested: BTreeSet<&str> = cases().iter().map(|c| c.2).collect();
    let declared: BTreeSet<&str> = AGENT_BODY_LIMITS.iter().map(|r| r.0).collect();
    assert_eq!(tested, declared);
}

#[tokio::test]
async fn without_the_right_token_every_route_is_refused_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for (method, uri, _, body, _) in cases() {
        for authorization in [
            None,
            Some("Bearer agent-token-012345678"),
            Some("Bearer agent-token-01234567890"),
            Some("Bearer AGENT-TOKEN-0123456789"),
            Some("bearer agent-token-0123456789"),
            Some("Basic agent-token-0123456789"),
            Some("agent-token-0123456789"),
        ] {
            let (status, closing, error) =
                send(&app, request(&method, uri, authorization, Body::from(body), None)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {authorization:?}");
            assert!(closing, "{method} {uri}: the connection is closed, the body not read");
            assert_eq!(error.map(|e| e.code), Some(ErrorCode::Unauthenticated), "{method} {uri}");
        }
        // A huge body announced by a caller without the token: still 401, not 413.
        let (status, _, _) = send(&app, request(&method, uri, None, Body::empty(), Some(500 << 20))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    // The liveness check needs no token.
    let (status, _, _) = send(&app, request(&Method::GET, "/healthz", None, Body::empty(), None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn with_the_right_token_every_route_answers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let bearer = format!("Bearer {TOKEN}");
    for (method, uri, _, body, expected) in cases() {
        let (status, _, error) = send(&app, request(&method, uri, Some(&bearer), Body::from(body), None)).await;
        assert_eq!(status, expected, "{method} {uri}: {error:?}");
        if let Some(e) = error {
            assert_eq!(e.code.status(), status.as_u16(), "{method} {uri}: the code matches the status");
        }
    }
}

#[tokio::test]
async fn a_body_over_its_routes_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let bearer = format!("Bearer {TOKEN}");
    for (method, uri, route, _, _) in cases() {
        let limit = match AGENT_BODY_LIMITS.iter().find(|r| r.0 == route).unwrap().1 {
            BodyLimit::Json => MAX_JSON_BYTES,
            BodyLimit::Bundle | BodyLimit::RoleRequest => 1 << 20,
        };
        // Announced: refused from the headers.
        let (status, closing, error) =
            send(&app, request(&method, uri, Some(&bearer), Body::empty(), Some(limit + 1))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{method} {uri}");
        assert!(closing, "{method} {uri}");
        assert_eq!(error.map(|e| e.code), Some(ErrorCode::TooLarge), "{method} {uri}");
    }
    // Not announced (chunked): refused while read, by each route that reads a body.
    for (uri, limit) in [
        ("/agent/v1/preflight", MAX_JSON_BYTES),
        ("/agent/v1/backup", MAX_JSON_BYTES),
        ("/agent/v1/stage?name=big.tgb", 1 << 20),
        ("/agent/v1/role/api/v1/policy", 1 << 20),
    ] {
        let body = Body::from(vec![b' '; limit as usize + 1]);
        let (status, closing, error) = send(&app, request(&Method::POST, uri, Some(&bearer), body, None)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert!(closing, "{uri}");
        assert_eq!(error.map(|e| e.code), Some(ErrorCode::TooLarge), "{uri}");
    }
    let staging = dir.path().join("agent/staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "nothing kept of a refused bundle");
}
