//! The manager's router in-process (tower `oneshot`): every route against every kind of caller
//! (no token, viewer, operator, admin, the mate's secret, a wrong secret), the one error body,
//! the API version header, and the Upgrade Manager page.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tollgate_api::{API_VERSION, ErrorBody, ErrorCode, VERSION_HEADER};
use tollgate_manager::testing;
use tollgate_web::auth::{Auth, Role};
use tollgate_web::manager_api::{ManagerApi, router};
use tower::ServiceExt;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Viewer,
    Operator,
    Admin,
    Peer,
    WrongSecret,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Anyone,
    Viewer,
    Operator,
    Admin,
    Peer,
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    tokens: Vec<(Caller, Option<String>)>,
    snapshot: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // Agents nothing listens on: calls that reach them fail at once.
    let cfg = testing::config(dir.path(), None, |_| "http://127.0.0.1:9".to_string());
    let manager = testing::manager(dir.path(), cfg, "0.1.0");
    let snapshot = serde_json::to_string(&manager.core().shared).unwrap();
    let (auth, _) = Auth::open(&dir.path().join("users"), None).unwrap();
    let token = |name: &str, role| Some(auth.create_token(name, role, None).unwrap());
    let tokens = vec![
        (Caller::Nobody, None),
        (Caller::Viewer, token("viewer-token", Role::Viewer)),
        (Caller::Operator, token("operator-token", Role::Operator)),
        (Caller::Admin, token("admin-token", Role::Admin)),
        (Caller::Peer, Some(testing::AGENT_TOKEN.to_string())),
        (Caller::WrongSecret, Some("agent-token-0123456780".to_string())),
    ];
    let app = router(Arc::new(ManagerApi::new(manager, auth)));
    Fixture { _dir: dir, app, tokens, snapshot }
}

/// What the caller gets: allowed (any answer but 401/403), or refused with that status.
fn expected(needs: Needs, caller: Caller) -> Option<StatusCode> {
    use Caller as C;
    match (needs, caller) {
        (Needs::Anyone, _) => None,
        (Needs::Peer, C::Peer) => None,
        (Needs::Peer, _) => Some(StatusCode::UNAUTHORIZED),
        // The mate's secret is no operator token.
        (_, C::Nobody | C::Peer | C::WrongSecret) => Some(StatusCode::UNAUTHORIZED),
        (Needs::Viewer, _) => None,
        (Needs::Operator, C::Viewer) => Some(StatusCode::FORBIDDEN),
        (Needs::Operator, _) => None,
        (Needs::Admin, C::Admin) => None,
        (Needs::Admin, _) => Some(StatusCode::FORBIDDEN),
    }
}

#[tokio::test]
async fn every_route_admits_exactly_its_callers() {
    let f = fixture();
    let routes: Vec<(&str, &str, Needs, String)> = vec![
        ("GET", "/healthz", Needs::Anyone, String::new()),
        ("GET", "/upgrade", Needs::Anyone, String::new()),
        ("GET", "/static/upgrade.js", Needs::Anyone, String::new()),
        ("GET", "/login", Needs::Anyone, String::new()),
        ("GET", "/api/v1/version", Needs::Anyone, String::new()),
        ("GET", "/api/v1/manager/ha", Needs::Anyone, String::new()),
        ("GET", "/api/v1/manager/state", Needs::Peer, String::new()),
        ("POST", "/api/v1/manager/sync", Needs::Peer, f.snapshot.clone()),
        ("GET", "/api/v1/upgrade/status", Needs::Viewer, String::new()),
        ("GET", "/api/v1/upgrade/bundles", Needs::Viewer, String::new()),
        ("GET", "/api/v1/upgrade/log?cluster=engines", Needs::Viewer, String::new()),
        ("GET", "/api/v1/upgrade/log/groups?cluster=engines", Needs::Viewer, String::new()),
        ("GET", "/api/v1/upgrade/audit", Needs::Viewer, String::new()),
        ("GET", "/api/v1/alarms", Needs::Viewer, String::new()),
        ("GET", "/api/v1/alarms/all", Needs::Viewer, String::new()),
        ("POST", "/api/v1/alarms/acknowledge", Needs::Operator, r#"{"key":"x/1/y"}"#.into()),
        ("GET", "/api/v1/health", Needs::Viewer, String::new()),
        ("GET", "/api/v1/backups", Needs::Viewer, String::new()),
        ("POST", "/api/v1/upgrade/procedure", Needs::Operator, r#"{"release":null}"#.into()),
        ("POST", "/api/v1/upgrade/action", Needs::Operator, r#"{"cluster":"engines","direction":"upgrade"}"#.into()),
        ("POST", "/api/v1/upgrade/next", Needs::Operator, r#"{"direction":"rollback"}"#.into()),
        ("POST", "/api/v1/upgrade/zombie-repaired", Needs::Operator, r#"{"hostname":"eng-a"}"#.into()),
        ("POST", "/api/v1/backup", Needs::Operator, r#"{"why":"test"}"#.into()),
        ("POST", "/api/v1/policy/push", Needs::Operator, "schema = 1\n".into()),
        ("GET", "/api/v1/policy/versions", Needs::Viewer, String::new()),
        ("GET", "/api/v1/policy/versions/1", Needs::Viewer, String::new()),
        ("POST", "/api/v1/policy/preview", Needs::Viewer, r#"{"policy":"schema = 1\n"}"#.into()),
        ("POST", "/api/v1/policy/rollback", Needs::Operator, r#"{"version":1}"#.into()),
        ("POST", "/api/v1/policy/uninstall", Needs::Operator, r#"{"clusters":["engines"]}"#.into()),
        ("POST", "/api/v1/restore", Needs::Admin, r#"{"hostname":"nowhere","name":"x"}"#.into()),
        // Next to last: it replaces the user database (the tokens above are gone after it).
        ("POST", "/api/v1/manager/users", Needs::Peer, r#"{"users":[],"tokens":[]}"#.into()),
        // Last: it makes this manager the active one.
        ("POST", "/api/v1/manager/take-over", Needs::Peer, format!(r#"{{"snapshot":{},"action":1}}"#, f.snapshot)),
    ];
    for (method, path, needs, body) in &routes {
        for (caller, token) in &f.tokens {
            let mut req = Request::builder().method(*method).uri(*path);
            if let Some(t) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if !body.is_empty() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let resp = f.app.clone().oneshot(req.body(Body::from(body.clone())).unwrap()).await.unwrap();
            let status = resp.status();
            assert_eq!(
                resp.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()),
                Some(API_VERSION.to_string().as_str()),
                "{method} {path} as {caller:?}: the version header"
            );
            match expected(*needs, *caller) {
                Some(refused) => {
                    assert_eq!(status, refused, "{method} {path} as {caller:?}");
                    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
                    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
                    let code = if refused == StatusCode::FORBIDDEN {
                        ErrorCode::Forbidden
                    } else {
                        ErrorCode::Unauthenticated
                    };
                    assert_eq!(body.code, code, "{method} {path} as {caller:?}: {}", body.message);
                    let legacy: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(legacy["error"], body.message.as_str(), "older clients read `error`");
                }
                None => assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as {caller:?}: {status}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn refusals_say_what_is_missing_and_the_standby_refuses_to_act() {
    let f = fixture();
    let call = |method: &str, path: &str, token: Option<&str>, body: &str| {
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let app = f.app.clone();
        let req = req.body(Body::from(body.to_string())).unwrap();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, bytes)
        }
    };
    let token = |c: Caller| f.tokens.iter().find(|(k, _)| *k == c).unwrap().1.clone().unwrap();
    let (_, b) = call("GET", "/api/v1/upgrade/status", None, "").await;
    assert!(serde_json::from_slice::<ErrorBody>(&b).unwrap().message.contains("Authorization: Bearer"));
    let (_, b) = call("POST", "/api/v1/upgrade/next", Some(&token(Caller::Viewer)), r#"{"direction":"upgrade"}"#).await;
    let body: ErrorBody = serde_json::from_slice(&b).unwrap();
    assert_eq!(body.message, "viewer-token may not do this (needs operator)");
    let (_, b) = call("GET", "/api/v1/manager/state", Some(&token(Caller::Operator)), "").await;
    assert_eq!(serde_json::from_slice::<ErrorBody>(&b).unwrap().message, "the pair's token is needed");
    // The fixture's manager is the standby: it neither gives its state nor selects a procedure.
    let (s, b) = call("GET", "/api/v1/manager/state", Some(testing::AGENT_TOKEN), "").await;
    assert_eq!((s, serde_json::from_slice::<ErrorBody>(&b).unwrap().code), (StatusCode::CONFLICT, ErrorCode::Conflict));
    let (s, b) =
        call("POST", "/api/v1/upgrade/procedure", Some(&token(Caller::Operator)), r#"{"release":"0.2.0"}"#).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(serde_json::from_slice::<ErrorBody>(&b).unwrap().message.contains("standby"));
    // Typed answers.
    let (s, b) = call("GET", "/api/v1/upgrade/status", Some(&token(Caller::Viewer)), "").await;
    assert_eq!(s, StatusCode::OK);
    let status: tollgate_api::manager::SystemStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(status.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["mgr", "engines"]);
    let (s, b) = call("GET", "/api/v1/health", Some(&token(Caller::Viewer)), "").await;
    assert_eq!(s, StatusCode::OK);
    let health: tollgate_api::manager::SystemHealth = serde_json::from_slice(&b).unwrap();
    assert!(!health.ok && health.servers.iter().all(|s| s.text.contains("the agent does not answer")));
    let (s, b) =
        call("POST", "/api/v1/restore", Some(&token(Caller::Admin)), r#"{"hostname":"nowhere","name":"x"}"#).await;
    assert_eq!(
        (s, serde_json::from_slice::<ErrorBody>(&b).unwrap().code),
        (StatusCode::NOT_FOUND, ErrorCode::NotFound)
    );
    let (s, b) = call("POST", "/api/v1/backup", Some(&token(Caller::Operator)), "").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "a partial backup says which parts are missing");
    let backup: tollgate_api::manager::SystemBackup = serde_json::from_slice(&b).unwrap();
    assert!(!backup.ok && backup.why == "manual" && backup.servers.iter().any(|s| s.error.is_some()));
}

#[tokio::test]
async fn the_upgrade_manager_page_is_served_with_its_script() {
    let f = fixture();
    let resp = f.app.clone().oneshot(Request::get("/upgrade").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let page = String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // The script is served by the manager (the Content-Security-Policy allows no inline one).
    assert!(page.contains(r#"<table id="grid">"#) && page.contains(r#"<script src="/static/upgrade.js""#));
    let resp = f.app.clone().oneshot(Request::get("/static/upgrade.js").body(Body::empty()).unwrap()).await.unwrap();
    let script = String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(script.contains("fetch(path"));
    // The console's home is the topology.
    let resp = f.app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.headers()[header::LOCATION], "/topology");
}

/// Every manager route takes its body limit from `tollgate_web::limits::MANAGER_BODY_LIMITS`:
/// a body declared past it is refused with `413 too_large` before it is read (and before the
/// credential is looked at), and the two large routes take a mate's state or a pushed policy.
#[tokio::test]
async fn a_body_past_its_manager_routes_limit_is_refused_before_it_is_read() {
    use tollgate_web::limits::{MANAGER_BODY_LIMITS, MANAGER_STATE, SMALL};
    let f = fixture();
    let limit_of = |path: &str| MANAGER_BODY_LIMITS.iter().find(|(p, _)| *p == path).unwrap().1;
    assert_eq!(limit_of("/api/v1/upgrade/action"), SMALL);
    assert_eq!(limit_of("/api/v1/manager/sync"), MANAGER_STATE);
    assert_eq!(limit_of("/api/v1/policy/push"), MANAGER_STATE);
    assert_eq!(limit_of("/api/v1/policy/preview"), MANAGER_STATE);
    assert_eq!(limit_of("/api/v1/manager/take-over"), MANAGER_STATE, "the hand-over carries the whole state");
    for (path, limit) in MANAGER_BODY_LIMITS {
        let req =
            Request::post(*path).header(header::CONTENT_LENGTH, (limit + 1).to_string()).body(Body::empty()).unwrap();
        let resp = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(resp.headers()[header::CONNECTION], "close", "{path}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert_eq!(ErrorBody::from_response(413, &bytes).code, ErrorCode::TooLarge, "{path}");
    }
}

/// The mate's routes over real TLS (the manager's listener accepts browsers without a
/// certificate): the pair's token is not enough, the caller's certificate must name the
/// manager role.
#[tokio::test]
async fn over_tls_the_mates_routes_need_a_managers_certificate() {
    use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
    use tollgate_tls::{ClientPolicy, RoleSet, TlsFiles, TlsMaterial, Versions};

    let f = fixture();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::init(pki.path(), "test CA", DEFAULT_CA_VALIDITY).unwrap();
    let issue = |role, host: &str| {
        let issued = ca
            .issue(&IssueRequest {
                role,
                host: host.into(),
                ips: vec!["127.0.0.1".parse().unwrap()],
                dns_names: vec![],
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let (cert, key) = issued_paths(pki.path(), host);
        issued.write(&cert, &key).unwrap();
        TlsMaterial::load(TlsFiles { ca: pki.path().join("ca.crt"), cert: Some(cert), key: Some(key) }).unwrap()
    };
    let server_material = issue(tollgate_tls::Role::Manager, "manager-a");
    let config =
        tollgate_tls::server_config(&server_material, ClientPolicy::OPTIONAL, Versions::Tls12And13, &[b"http/1.1"])
            .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limits =
        tollgate_web::server::HttpLimits { max_connections: 16, idle_timeout: std::time::Duration::from_secs(10) };
    let server = tollgate_web::server::HttpServer::new(tcp, "manager", limits, Default::default())
        .with_tls(tollgate_tls::tokio_rustls::TlsAcceptor::from(config));
    let base = format!("https://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(f.app.clone(), std::future::pending()));

    let state_as = |material: TlsMaterial| {
        let base = base.clone();
        async move {
            let tls = tollgate_tls::client_config(
                &material,
                RoleSet::of(&[tollgate_tls::Role::Manager]),
                Versions::Tls13,
                &[b"http/1.1"],
            )
            .unwrap();
            let client = tollgate_api::Client::with_tls(
                &base,
                Some(testing::AGENT_TOKEN.to_string()),
                std::time::Duration::from_secs(10),
                Some(&tls),
            )
            .unwrap();
            client.get_text("/api/v1/manager/state").await
        }
    };
    // The mate passes (this manager, the standby, then answers what a standby answers).
    match state_as(issue(tollgate_tls::Role::Manager, "manager-b")).await {
        Ok(_) => {}
        Err(tollgate_api::ClientError::Api { status, .. }) => assert!(![401, 403].contains(&status), "{status}"),
        Err(e) => panic!("the mate: {e:?}"),
    }
    for (who, material) in [
        ("an engine's certificate", issue(tollgate_tls::Role::Engine, "engine-a")),
        (
            "no certificate",
            TlsMaterial::load(TlsFiles { ca: pki.path().join("ca.crt"), cert: None, key: None }).unwrap(),
        ),
    ] {
        match state_as(material).await {
            Err(tollgate_api::ClientError::Api { status, .. }) => assert_eq!(status, 403, "{who}"),
            other => panic!("{who}: {other:?}"),
        }
    }
}
