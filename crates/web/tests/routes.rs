//! The router-level access matrix of every route of the web API and UI, in process: an
//! [`AppState`] in a temporary directory (SQLite record store, policy store, users and tokens),
//! requests sent with tower's `oneshot`, no socket.
//!
//! For every API route: no credential is `401 unauthenticated`, each role below the one it
//! needs is `403 forbidden`, the roles that may call it are neither; a body past the route's
//! limit (from `limits::BODY_LIMITS`) is `413 too_large`. For every UI page: no session is a
//! redirect to the login page that comes back to it. The expected roles are written out here,
//! independently of the handlers, and every route of the limits table must be in a matrix.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use prometheus_client::registry::Registry;
use tower::ServiceExt;

use tollgate_api::{ErrorBody, ErrorCode, VERSION_HEADER};
use tollgate_enum::{EnumConfig, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::service::PolicyService;
use tollgate_policy::store::PolicyStore;
use tollgate_web::auth::{Auth, Role};
use tollgate_web::limits::{BODY_LIMITS, body_limit};
use tollgate_web::quarantine::Quarantine;
use tollgate_web::{AppState, IngestMetrics, ReleaseInfo};

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: answered to anyone.
    Nobody,
    /// Any valid credential, whatever its role.
    AnyRole,
    /// A credential whose role allows this one.
    Min(Role),
}

/// One API route as a caller sends it: method, path with query, the route as declared in the
/// limits table, what it needs, and a body that reads as a (mostly harmless) request.
struct ApiRoute {
    method: Method,
    uri: &'static str,
    route: &'static str,
    needs: Needs,
    content_type: Option<&'static str>,
    body: &'static str,
}

const JSON: Option<&str> = Some("application/json");

fn api_routes() -> Vec<ApiRoute> {
    use Needs::*;
    let r = |method: Method, uri: &'static str, route: &'static str, needs: Needs| ApiRoute {
        method,
        uri,
        route,
        needs,
        content_type: None,
        body: "",
    };
    let with = |route: ApiRoute, content_type: Option<&'static str>, body: &'static str| ApiRoute {
        content_type,
        body,
        ..route
    };
    let multipart = Some("multipart/form-data; boundary=X");
    vec![
        r(Method::GET, "/healthz", "/healthz", Nobody),
        r(Method::GET, "/metrics", "/metrics", Nobody),
        r(Method::GET, "/api/v1/version", "/api/v1/version", Nobody),
        r(Method::GET, "/api/v1/auth", "/api/v1/auth", AnyRole),
        r(Method::GET, "/api/v1/policy", "/api/v1/policy", Min(Role::Viewer)),
        with(r(Method::POST, "/api/v1/policy", "/api/v1/policy", Min(Role::Operator)), multipart, "--X--\r\n"),
        r(Method::DELETE, "/api/v1/policy", "/api/v1/policy", Min(Role::Operator)),
        with(
            r(Method::POST, "/api/v1/policy/check", "/api/v1/policy/check", Min(Role::Viewer)),
            multipart,
            "--X--\r\n",
        ),
        r(Method::GET, "/api/v1/policy/history", "/api/v1/policy/history", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/policy/versions", "/api/v1/policy/versions", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/policy/diff?from=0&to=0", "/api/v1/policy/diff", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/lookup?to=%2B12125550100", "/api/v1/lookup", Min(Role::Viewer)),
        r(Method::POST, "/api/v1/ingest", "/api/v1/ingest", Min(Role::Ingest)),
        r(Method::GET, "/api/v1/analytics", "/api/v1/analytics", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/export?from=2026-01-01T00:00&to=2026-01-02T00:00", "/api/v1/export", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/devices", "/api/v1/devices", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/alarms", "/api/v1/alarms", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/tls", "/api/v1/tls", Min(Role::Viewer)),
        r(Method::GET, "/api/v1/users", "/api/v1/users", Min(Role::Admin)),
        // A role change of a user that does not exist: refused after the role check.
        with(
            r(Method::POST, "/api/v1/users", "/api/v1/users", Min(Role::Admin)),
            JSON,
            r#"{"name":"nobody","role":"viewer"}"#,
        ),
        r(Method::DELETE, "/api/v1/users/nobody", "/api/v1/users/{name}", Min(Role::Admin)),
        r(Method::GET, "/api/v1/tokens", "/api/v1/tokens", Min(Role::Admin)),
        with(
            r(Method::POST, "/api/v1/tokens", "/api/v1/tokens", Min(Role::Admin)),
            JSON,
            r#"{"name":"", "role":"viewer"}"#,
        ),
        r(Method::DELETE, "/api/v1/tokens/nobody", "/api/v1/tokens/{name}", Min(Role::Admin)),
        r(Method::GET, "/api/v1/srp/show/info", "/api/v1/srp/show/{what}", Min(Role::Viewer)),
        r(Method::POST, "/api/v1/srp/validate-switchover", "/api/v1/srp/{command}", Min(Role::Viewer)),
        r(Method::POST, "/api/v1/srp/validate-configuration", "/api/v1/srp/{command}", Min(Role::Viewer)),
        r(Method::POST, "/api/v1/srp/initiate-switchover", "/api/v1/srp/{command}", Min(Role::Operator)),
        r(Method::POST, "/api/v1/srp/initiate-audit", "/api/v1/srp/{command}", Min(Role::Operator)),
        with(
            r(Method::POST, "/api/v1/srp/nack", "/api/v1/srp/{command}", Min(Role::Operator)),
            JSON,
            r#"{"cmd":1,"enable":true}"#,
        ),
        with(
            r(Method::POST, "/api/v1/srp/forced-standby", "/api/v1/srp/{command}", Min(Role::Operator)),
            JSON,
            r#"{"on":false}"#,
        ),
        r(
            Method::GET,
            "/api/v1/probe/calls/no-such-call%40127.0.0.1/messages",
            "/api/v1/probe/calls/{call_id}/messages",
            Min(Role::Viewer),
        ),
    ]
}

/// The password route: the current password is the credential, so it is judged apart.
const PASSWORD_ROUTE: &str = "/api/v1/auth/password";

/// A UI page: method, path, the route as declared.
struct Page {
    method: Method,
    uri: &'static str,
    route: &'static str,
}

fn ui_pages() -> Vec<Page> {
    let p = |method: Method, uri: &'static str, route: &'static str| Page { method, uri, route };
    vec![
        p(Method::GET, "/", "/"),
        p(Method::GET, "/account", "/account"),
        p(Method::POST, "/account", "/account"),
        p(Method::GET, "/analytics?range=7d", "/analytics"),
        p(Method::GET, "/analytics.csv", "/analytics.csv"),
        p(Method::GET, "/export.csv?from=2026-01-01T00:00&to=2026-01-02T00:00", "/export.csv"),
        p(Method::GET, "/policies", "/policies"),
        p(Method::POST, "/policies", "/policies"),
        p(Method::POST, "/policies/uninstall", "/policies/uninstall"),
        p(Method::GET, "/policies/diff?from=0&to=0", "/policies/diff"),
        p(Method::GET, "/alarms", "/alarms"),
        p(Method::GET, "/users", "/users"),
        p(Method::POST, "/users", "/users"),
        p(Method::POST, "/logout", "/logout"),
    ]
}

/// UI routes anyone may fetch.
const PUBLIC_PAGES: &[&str] = &["/login", tollgate_web::ui::STYLESHEET, tollgate_web::ui::SCRIPT];

/// The roles a credential can have, lowest first.
const ROLES: [Role; 4] = [Role::Ingest, Role::Viewer, Role::Operator, Role::Admin];

struct App {
    router: Router,
    state: Arc<AppState>,
    /// A bearer token of each role, in the order of [`ROLES`].
    tokens: Vec<(Role, String)>,
    _dir: tempfile::TempDir,
}

impl App {
    fn token(&self, role: Role) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).expect("a token of every role").1
    }
}

fn app() -> App {
    app_managed_by(None)
}

/// The app of a server whose `[api] console` is `console`.
fn app_managed_by(console: Option<&str>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let (auth, _bootstrap) = Auth::open(&dir.path().join("auth"), None).unwrap();
    let tokens = ROLES
        .iter()
        .map(|role| (*role, auth.create_token(&format!("t-{}", role.as_str()), *role, None).unwrap()))
        .collect();
    let plan = DialingPlan::nanp();
    let policy =
        PolicyService::open(PolicyStore::open(dir.path().join("policy")).unwrap(), plan.clone(), Vec::new()).unwrap();
    let responder = Responder::new(EnumConfig::default(), plan, policy.installed().clone(), "engine-test");
    let store = tollgate_store::sqlite::SqliteStore::open(&dir.path().join("records.db")).unwrap();
    let mut registry = Registry::default();
    let ingest = IngestMetrics::register(&mut registry);
    let state = Arc::new(AppState {
        node: "engine-test".into(),
        policy: Some(Arc::new(policy)),
        responder: Some(Arc::new(responder)),
        store: Some(Arc::new(store)),
        registry: Arc::new(registry),
        auth: Arc::new(auth),
        alarms: Arc::default(),
        quarantine: Arc::new(Quarantine::new(dir.path().join("quarantine"), 1 << 20)),
        ingest,
        status: None,
        srp: None,
        probe_calls: None,
        release: ReleaseInfo {
            release: "test".into(),
            build: "test".into(),
            max_policy_schema: tollgate_policy::SCHEMA_VERSION,
            roles: vec!["engine".into(), "collector".into()],
        },
        tls: None,
        console: console.map(String::from),
    });
    App { router: tollgate_web::router(state.clone()), state, tokens, _dir: dir }
}

/// Builds a request; `auth` is a bearer token.
fn request(method: &Method, uri: &str, auth: Option<&str>, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut r = Request::builder().method(method.clone()).uri(uri).header(header::HOST, "127.0.0.1:8080");
    if let Some(token) = auth {
        r = r.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    r.body(body).unwrap()
}

async fn send(app: &App, request: Request<Body>) -> Response {
    app.router.clone().oneshot(request).await.unwrap()
}

async fn call(app: &App, route: &ApiRoute, auth: Option<&str>) -> Response {
    send(app, request(&route.method, route.uri, auth, route.content_type, Body::from(route.body))).await
}

/// The error code of an answer, from its body (which must be the one error body).
async fn code_of(response: Response) -> ErrorCode {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body: ErrorBody = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("HTTP {status}: not an error body ({e}): {}", String::from_utf8_lossy(&bytes)));
    body.code
}

fn allowed(needs: Needs, role: Role) -> bool {
    match needs {
        Needs::Nobody | Needs::AnyRole => true,
        Needs::Min(needed) => role.allows(needed),
    }
}

#[tokio::test]
async fn every_api_route_admits_exactly_the_roles_it_needs() {
    let app = app();
    for route in api_routes() {
        let what = format!("{} {}", route.method, route.uri);
        let anonymous = call(&app, &route, None).await;
        assert!(anonymous.headers().contains_key(VERSION_HEADER), "{what}: no API version header");
        if route.needs == Needs::Nobody {
            assert_eq!(anonymous.status(), StatusCode::OK, "{what} without a credential");
        } else {
            assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{what} without a credential");
            assert_eq!(code_of(anonymous).await, ErrorCode::Unauthenticated, "{what}");
            let forged = call(&app, &route, Some("not-a-token")).await;
            assert_eq!(forged.status(), StatusCode::UNAUTHORIZED, "{what} with an unknown token");
        }
        for role in ROLES {
            let response = call(&app, &route, Some(app.token(role))).await;
            let status = response.status();
            if allowed(route.needs, role) {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} as {}: {status} {:?}",
                    role.as_str(),
                    axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {}", role.as_str());
                assert_eq!(code_of(response).await, ErrorCode::Forbidden, "{what} as {}", role.as_str());
            }
        }
    }
}

#[tokio::test]
async fn the_needed_role_reaches_the_handler() {
    // Not only "not refused": the answers are the handlers' own.
    let app = app();
    let viewer = app.token(Role::Viewer);
    let get = |uri: &'static str, token| request(&Method::GET, uri, Some(token), None, Body::empty());
    assert_eq!(send(&app, get("/api/v1/policy/versions", viewer)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, get("/api/v1/devices", viewer)).await.status(), StatusCode::OK);
    let lookup = send(&app, get("/api/v1/lookup?to=%2B12125550100", viewer)).await;
    assert_eq!(lookup.status(), StatusCode::OK);
    // SRP on a server without [srp]: 404 `not_configured`.
    let nowhere = send(&app, get("/api/v1/srp/show/info", viewer)).await;
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND, "SRP on a server without [srp]");
    assert_eq!(code_of(nowhere).await, ErrorCode::NotConfigured);
    let unknown = send(&app, get("/api/v1/policy/diff?from=0&to=9", viewer)).await;
    assert_eq!(code_of(unknown).await, ErrorCode::NotFound);
    let batch = request(&Method::POST, "/api/v1/ingest", Some(app.token(Role::Ingest)), None, Body::from("\n"));
    assert_eq!(send(&app, batch).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_route_is_in_a_matrix_and_every_matrix_route_has_a_limit() {
    let mut tested: BTreeSet<&str> = api_routes().iter().map(|r| r.route).collect();
    tested.extend(ui_pages().iter().map(|p| p.route));
    tested.extend(PUBLIC_PAGES);
    tested.insert(PASSWORD_ROUTE);
    let declared: BTreeSet<&str> = BODY_LIMITS.iter().map(|(p, _)| *p).collect();
    assert_eq!(tested, declared, "routes of the limits table and of the matrices differ");
}

#[tokio::test]
async fn a_body_declared_past_its_route_s_limit_is_refused_before_it_is_read() {
    let app = app();
    let admin = app.token(Role::Admin);
    for route in api_routes() {
        let limit = body_limit(route.route).unwrap();
        let mut r = request(&route.method, route.uri, Some(admin), route.content_type, Body::empty());
        r.headers_mut().insert(header::CONTENT_LENGTH, (limit as u64 + 1).into());
        let response = send(&app, r).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{} {}", route.method, route.uri);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(code_of(response).await, ErrorCode::TooLarge);
    }
    for page in ui_pages() {
        let limit = body_limit(page.route).unwrap();
        let mut r = request(&page.method, page.uri, None, None, Body::empty());
        r.headers_mut().insert(header::CONTENT_LENGTH, (limit as u64 + 1).into());
        assert_eq!(send(&app, r).await.status(), StatusCode::PAYLOAD_TOO_LARGE, "{} {}", page.method, page.uri);
    }
}

#[tokio::test]
async fn a_body_streamed_past_its_route_s_limit_is_cut_off() {
    // No Content-Length: the extractor reading the body stops at the limit.
    let app = app();
    let stream = |len: usize| {
        let chunks = vec![Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; len]))];
        Body::from_stream(tokio_stream::iter(chunks))
    };
    let admin = app.token(Role::Admin);
    for (uri, route, token, content_type) in [
        ("/api/v1/users", "/api/v1/users", admin, JSON),
        ("/api/v1/tokens", "/api/v1/tokens", admin, JSON),
        ("/api/v1/srp/nack", "/api/v1/srp/{command}", admin, JSON),
        ("/api/v1/ingest", "/api/v1/ingest", app.token(Role::Ingest), None),
    ] {
        let limit = body_limit(route).unwrap();
        let response = send(&app, request(&Method::POST, uri, Some(token), content_type, stream(limit + 1))).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
    }
}

#[tokio::test]
async fn the_password_route_takes_the_current_password_as_its_credential() {
    let app = app();
    let body = r#"{"name":"admin","current":"not the password","new":"a new password 123"}"#;
    let response = send(&app, request(&Method::POST, PASSWORD_ROUTE, None, JSON, Body::from(body))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code_of(response).await, ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn changes_with_a_login_session_need_its_csrf_token() {
    let app = app();
    let auth = app.state.auth.clone();
    auth.hashing(|a| a.set_user("olga", Role::Operator, "olga's password 1")).await.unwrap().unwrap();
    let session = auth.login("olga", "olga's password 1", None).await.unwrap();
    let csrf = auth.session(&session).expect("a live session").csrf;
    let cookie = format!("{}={session}", tollgate_web::session::SESSION_COOKIE);
    let uninstall = |csrf: Option<&str>| {
        let mut r = request(&Method::DELETE, "/api/v1/policy", None, None, Body::empty());
        r.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
        if let Some(csrf) = csrf {
            r.headers_mut().insert(tollgate_web::session::CSRF_HEADER, csrf.parse().unwrap());
        }
        r
    };
    let refused = send(&app, uninstall(None)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(code_of(refused).await, ErrorCode::Forbidden);
    assert_eq!(send(&app, uninstall(Some("wrong"))).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(send(&app, uninstall(Some(&csrf))).await.status(), StatusCode::OK);
    // Reading needs no CSRF token.
    let mut read = request(&Method::GET, "/api/v1/policy", None, None, Body::empty());
    read.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    assert_eq!(send(&app, read).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_ui_page_sends_a_visitor_without_a_session_to_the_login_page_and_back() {
    let app = app();
    for page in ui_pages() {
        let response = send(&app, request(&page.method, page.uri, None, None, Body::empty())).await;
        let what = format!("{} {}", page.method, page.uri);
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{what}");
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        // A page comes back with its query; a form post comes back to the page it was on.
        let back = if page.method == Method::GET { page.uri } else { page.uri.split('?').next().unwrap() };
        assert_eq!(location, format!("/login?next={}", tollgate_web::ui::urlencode(back)), "{what}");
    }
    for public in PUBLIC_PAGES {
        let response = send(&app, request(&Method::GET, public, None, None, Body::empty())).await;
        assert_eq!(response.status(), StatusCode::OK, "{public}");
    }
}

#[tokio::test]
async fn every_ui_page_is_shown_to_a_signed_in_viewer_and_users_only_to_admins() {
    let app = app();
    for page in ui_pages().iter().filter(|p| p.method == Method::GET) {
        let response =
            send(&app, request(&page.method, page.uri, Some(app.token(Role::Viewer)), None, Body::empty())).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {}", page.uri);
    }
    let text = |response: Response| async move {
        String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    };
    let users = |role| request(&Method::GET, "/users", Some(app.token(role)), None, Body::empty());
    let as_viewer = text(send(&app, users(Role::Viewer)).await).await;
    assert!(as_viewer.contains("needs the admin role"), "{as_viewer}");
    let as_admin = text(send(&app, users(Role::Admin)).await).await;
    assert!(!as_admin.contains("needs the admin role") && as_admin.contains("t-viewer"), "{as_admin}");
}

/// A request as the server hands it to the router after a TLS handshake: the TLS mark and
/// the client certificate's identity.
fn over_tls(mut request: Request<Body>, peer: Option<tollgate_tls::PeerIdentity>) -> Request<Body> {
    request.extensions_mut().insert(tollgate_web::server::TlsConnection);
    request.extensions_mut().insert(peer);
    request
}

fn peer_of(role: tollgate_tls::Role) -> tollgate_tls::PeerIdentity {
    tollgate_tls::PeerIdentity {
        role: Some(role),
        host: Some("east-a".into()),
        subject: format!("CN=east-a, OU={role}, O=tollgate"),
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_tls_and_not_on_plain_loopback() {
    let app = app();
    let auth = app.state.auth.clone();
    auth.hashing(|a| a.set_user("olga", Role::Operator, "olga's password 1")).await.unwrap().unwrap();
    let login = || {
        request(
            &Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            Body::from("name=olga&password=olga%27s+password+1"),
        )
    };
    let cookie_of = |response: Response| {
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "logged in");
        response.headers()[header::SET_COOKIE].to_str().unwrap().to_string()
    };
    let secure = cookie_of(send(&app, over_tls(login(), None)).await);
    assert!(secure.starts_with("tollgate_session=") && secure.contains("; HttpOnly"), "{secure}");
    assert!(secure.split("; ").any(|attr| attr == "Secure"), "over TLS the cookie is Secure: {secure}");
    let plain = cookie_of(send(&app, login()).await);
    assert!(!plain.contains("Secure"), "plain loopback (the demo) keeps a cookie browsers send over http: {plain}");
}

#[tokio::test]
async fn over_tls_ingest_needs_a_shipper_certificate_besides_its_token() {
    let app = app();
    let token = app.token(Role::Ingest).to_string();
    let ingest = || request(&Method::POST, "/api/v1/ingest", Some(&token), Some("application/x-ndjson"), Body::empty());
    for refused in [None, Some(peer_of(tollgate_tls::Role::Operator)), Some(peer_of(tollgate_tls::Role::Manager))] {
        let what = format!("{refused:?}");
        let response = send(&app, over_tls(ingest(), refused)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(code_of(response).await, ErrorCode::Forbidden);
    }
    for role in [tollgate_tls::Role::Engine, tollgate_tls::Role::Probe, tollgate_tls::Role::Collector] {
        let response = send(&app, over_tls(ingest(), Some(peer_of(role)))).await;
        assert_eq!(response.status(), StatusCode::OK, "{role}");
    }
    // The certificate does not replace the token.
    let no_token = request(&Method::POST, "/api/v1/ingest", None, Some("application/x-ndjson"), Body::empty());
    let response = send(&app, over_tls(no_token, Some(peer_of(tollgate_tls::Role::Engine)))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_dashboard_s_live_part_is_served_alone_to_its_refresh() {
    let app = app();
    let auth = app.state.auth.clone();
    auth.hashing(|a| a.set_user("vera", Role::Viewer, "vera's password 1")).await.unwrap().unwrap();
    let session = auth.login("vera", "vera's password 1", None).await.unwrap();
    let cookie = format!("{}={session}", tollgate_web::session::SESSION_COOKIE);
    let get = |uri: &str, refresh: bool| {
        let mut r = request(&Method::GET, uri, None, None, Body::empty());
        r.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
        if refresh {
            r.headers_mut().insert(tollgate_web::ui::REFRESH_HEADER, "1".parse().unwrap());
        }
        r
    };
    let text = |response: Response| async move {
        String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    };
    let page = text(send(&app, get("/", false)).await).await;
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("id=\"live\""), "{page}");
    assert!(page.contains("<script src=\"/static/tollgate.js\" defer></script>"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""), "no full-page reload: {page}");
    // The refresh (marked as such: it does not extend the session) gets the live part only.
    let response = send(&app, get("/?part=live&tz=Europe/Berlin", true)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let live = text(response).await;
    assert!(!live.contains("<!DOCTYPE") && !live.contains("<header") && live.contains("engine-test"), "{live}");
    assert!(live.contains("Europe/Berlin"), "times in the chosen zone: {live}");
    // A refresh after the session ended is sent to the login page like any request.
    auth.logout(&session);
    let response = send(&app, get("/?part=live", true)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn unknown_paths_get_the_designed_page_and_unknown_api_paths_json() {
    let app = app();
    let response = send(&app, request(&Method::GET, "/no-such-page", None, None, Body::empty())).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    let body = String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(body.contains("id=\"error-page\"") && body.contains("Page not found"), "{body}");
    let response = send(&app, request(&Method::GET, "/api/v1/no-such-thing", None, None, Body::empty())).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(code_of(response).await, ErrorCode::NotFound);
}

/// A logged-in operator's session cookie and CSRF token on `app`, whose engine has a policy
/// (version 1) installed.
async fn operator_session(app: &App) -> (String, String) {
    let source = tollgate_policy::source::PolicySource::from_text(
        "p.toml",
        "schema = 1\nname = \"p\"\n[[rule]]\nname = \"r\"\ndestination = \"+12125550100\"\naction = \"terminate\"\ncause = 603\n",
        Default::default(),
    );
    app.state.policy.as_ref().unwrap().install(&source, "test").unwrap();
    let auth = &app.state.auth;
    auth.hashing(|a| a.set_user("olga", Role::Operator, "olga's password 1")).await.unwrap().unwrap();
    let session = auth.login("olga", "olga's password 1", None).await.unwrap();
    let csrf = auth.session(&session).expect("a live session").csrf;
    (format!("{}={session}", tollgate_web::session::SESSION_COOKIE), csrf)
}

/// A UI form post with the session.
fn ui_form(path: &str, cookie: &str, body: String) -> Request<Body> {
    let mut r = request(&Method::POST, path, None, None, Body::from(body));
    r.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    r.headers_mut().insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
    r
}

#[tokio::test]
async fn the_policies_page_uninstalls_only_with_the_box_naming_the_consequence_ticked() {
    let app = app();
    let (cookie, csrf) = operator_session(&app).await;
    let installed = |app: &App| app.state.policy.as_ref().unwrap().current().unwrap().version;
    assert_eq!(installed(&app), Some(1));
    let refused = send(&app, ui_form("/policies/uninstall", &cookie, format!("csrf={csrf}"))).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = String::from_utf8(axum::body::to_bytes(refused.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(page.contains("Nothing uninstalled") && page.contains("every call is allowed"), "{page}");
    assert_eq!(installed(&app), Some(1), "nothing uninstalled without the confirmation");
    let form = format!("csrf={csrf}&confirm=every+call+is+allowed");
    let done = send(&app, ui_form("/policies/uninstall", &cookie, form)).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(installed(&app), None);
}

#[tokio::test]
async fn a_server_managed_by_the_console_shows_its_policy_read_only_and_refuses_changes_on_its_pages() {
    let app = app_managed_by(Some("https://manager.example.net:8080"));
    let (cookie, csrf) = operator_session(&app).await;
    let mut get = request(&Method::GET, "/policies", None, None, Body::empty());
    get.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    let page = send(&app, get).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = String::from_utf8(axum::body::to_bytes(page.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(page.contains(r#"id="managed""#) && page.contains(r#"href="https://manager.example.net:8080""#), "{page}");
    assert!(page.contains(r#"id="version""#), "the policy in force is shown: {page}");
    assert!(!page.contains(r#"action="/policies/uninstall""#) && !page.contains(r#"id="install""#), "{page}");
    let form = format!("csrf={csrf}&confirm=every+call+is+allowed");
    let refused = send(&app, ui_form("/policies/uninstall", &cookie, form)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.state.policy.as_ref().unwrap().current().unwrap().version, Some(1), "still installed");
    // The API stays writable: the manager installs and uninstalls through it.
    let mut api = request(&Method::DELETE, "/api/v1/policy", None, None, Body::empty());
    api.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    api.headers_mut().insert(tollgate_web::session::CSRF_HEADER, csrf.parse().unwrap());
    assert_eq!(send(&app, api).await.status(), StatusCode::OK);
}
