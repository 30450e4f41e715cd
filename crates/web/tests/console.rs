//! The manager's console in-process (tower `oneshot`): password login on the manager, the
//! session accepted by the JSON API (with `X-CSRF-Token` on changes), the common frame and
//! stylesheet, the designed 404 and 403 pages, and the served script.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tollgate_api::{ErrorBody, ErrorCode};
use tollgate_manager::testing;
use tollgate_web::auth::{Auth, Role};
use tollgate_web::manager_api::{ManagerApi, router};
use tower::ServiceExt;

const PASSWORD: &str = "correct-horse-battery";

struct Console {
    _dir: tempfile::TempDir,
    app: axum::Router,
    /// A token of the ingest role (a shipper's).
    ingest: String,
    /// An operators' shared token.
    shared: String,
    /// The manager.
    manager: Arc<tollgate_manager::Manager>,
}

/// A manager (the standby of its pair, agents unreachable) with users of every role.
fn console() -> Console {
    console_of(false)
}

/// The same, made the active manager when `active`.
fn console_of(active: bool) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let cfg = testing::config(dir.path(), None, |_| "http://127.0.0.1:9".to_string());
    let manager = testing::manager(dir.path(), cfg, "0.1.0");
    if active {
        manager.become_active(false);
    }
    let (auth, _) = Auth::open(&dir.path().join("users"), None).unwrap();
    for (name, role) in [("vera", Role::Viewer), ("olga", Role::Operator), ("ada", Role::Admin)] {
        auth.set_user(name, role, PASSWORD).unwrap();
    }
    let ingest = auth.create_token("shipper", Role::Ingest, None).unwrap();
    let shared = auth.create_token("cli-token", Role::Operator, None).unwrap();
    Console { ingest, shared, app: router(Arc::new(ManagerApi::new(manager.clone(), auth))), manager, _dir: dir }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Console {
    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// Logs `name` in; returns the cookie to send and the session's CSRF token (read from a
    /// page's `csrf-token` meta tag, as the scripts do).
    async fn login(&self, name: &str) -> (String, String) {
        let req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("name={name}&password={PASSWORD}&next=%2Fupgrade")))
            .unwrap();
        let a = self.send(req).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{name}'s login: {}", a.body);
        assert_eq!(a.headers[header::LOCATION], "/upgrade");
        let set = a.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let page = self.get("/upgrade", Some(&cookie)).await;
        let csrf = page
            .body
            .split(r#"<meta name="csrf-token" content=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no csrf-token meta tag: {}", page.body))
            .to_string();
        (cookie, csrf)
    }
}

#[tokio::test]
async fn a_password_login_opens_the_console_and_its_session_works_on_the_api() {
    let c = console();
    let (cookie, csrf) = c.login("olga").await;
    assert!(!csrf.is_empty());

    // The Upgrade page in the common frame: the console's navigation, the visitor, no token box
    // text asking for a token, the script served from this server.
    let page = c.get("/upgrade", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    for entry in ["Topology", "Policies", "Analytics", "Alarms", "Upgrade", "Audit"] {
        assert!(page.body.contains(&format!(">{entry}</a>")), "nav entry {entry} missing");
    }
    assert!(!page.body.contains(">Users</a>"), "Users is for admins");
    assert!(page.body.contains(r#"<span id="user">olga</span>"#));
    assert!(
        page.body.contains(r#"href="/static/tollgate.css""#) && page.body.contains(r#"href="/static/console.css""#)
    );
    assert!(page.body.contains(r#"<script src="/static/upgrade.js" defer>"#));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");

    // The session reads the API ...
    let a = c.get("/api/v1/upgrade/status", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let status: tollgate_api::manager::SystemStatus = serde_json::from_str(&a.body).unwrap();
    assert_eq!(status.clusters.len(), 2);
    // ... and acts with the session's CSRF token only.
    let post = |csrf: Option<&str>| {
        let mut req = Request::post("/api/v1/upgrade/procedure")
            .header(header::COOKIE, cookie.clone())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.body(Body::from(r#"{"release":null}"#)).unwrap()
    };
    let a = c.send(post(None)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(serde_json::from_str::<ErrorBody>(&a.body).unwrap().message.contains("X-CSRF-Token"));
    let a = c.send(post(Some("not-the-token"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = c.send(post(Some(&csrf))).await;
    // Authorised; this manager is the standby, so the procedure is refused as a conflict.
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);

    // A viewer's session reads but may not act.
    let (vc, vcsrf) = c.login("vera").await;
    let req = Request::post("/api/v1/upgrade/next")
        .header(header::COOKIE, vc)
        .header("x-csrf-token", vcsrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"direction":"upgrade"}"#))
        .unwrap();
    let a = c.send(req).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(serde_json::from_str::<ErrorBody>(&a.body).unwrap().message, "vera may not do this (needs operator)");

    // Logging out ends the session everywhere.
    let req = Request::post("/logout")
        .header(header::COOKIE, cookie.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    let a = c.send(req).await;
    assert_eq!((a.status, a.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(c.get("/api/v1/upgrade/status", Some(&cookie)).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_password_and_a_wrong_role_are_refused_on_designed_pages() {
    let c = console();
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("name=olga&password=wrong-password-1"))
        .unwrap();
    let a = c.send(req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong user or password."));

    // An ingest token (a shipper's) may not read the console or its API.
    let with_token = |path: &str| {
        Request::get(path).header(header::AUTHORIZATION, format!("Bearer {}", c.ingest)).body(Body::empty()).unwrap()
    };
    let a = c.send(with_token("/api/v1/upgrade/status")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // The Upgrade page, which also serves visitors without a login, offers it the login choices.
    let a = c.send(with_token("/upgrade")).await;
    assert!(a.body.contains(r#"id="password-login""#) && !a.body.contains("csrf-token"), "{}", a.body);
}

#[tokio::test]
async fn unknown_paths_get_the_designed_404_page_and_the_api_its_json_error() {
    let c = console();
    let a = c.get("/no/such/page?x=1", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(a.body.starts_with("<!DOCTYPE html>"), "{}", a.body);
    assert!(a.body.contains(r#"id="error" data-status="404""#) && a.body.contains("There is no such page"));
    assert!(a.body.contains(r#"<code id="path">/no/such/page</code>"#));
    assert!(a.body.contains(r#"href="/static/tollgate.css""#), "in the common design");
    assert!(a.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    let a = c.get("/api/v1/nothing", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_str::<ErrorBody>(&a.body).unwrap().code, ErrorCode::NotFound);
    let a = c.get("/static/nothing.js", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_stylesheets_and_the_script_are_served_by_the_manager() {
    let c = console();
    for (path, kind, needle) in [
        ("/static/tollgate.css", "text/css", "header"),
        ("/static/console.css", "text/css", ".upgrade"),
        ("/static/upgrade.js", "text/javascript", "fetch(path"),
    ] {
        let a = c.get(path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(a.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{path}");
        assert!(a.body.contains(needle), "{path}");
    }
    let a = c.get("/", None).await;
    assert_eq!(a.headers[header::LOCATION], "/topology");
}

/// The `data-*` attributes of every drawn server: (hostname, cluster, HA state).
fn drawn_servers(page: &str) -> Vec<(String, String, String)> {
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string()
    };
    page.split("<g class=\"server ")
        .skip(1)
        .map(|rest| {
            let tag = rest.split('>').next().unwrap();
            (attr(tag, "data-server"), attr(tag, "data-cluster"), attr(tag, "data-ha"))
        })
        .collect()
}

#[tokio::test]
async fn the_topology_draws_every_server_with_its_ha_state_and_drills_down_to_one() {
    let c = console();
    // Without a login: to the login page, and back after it.
    let a = c.get("/topology", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/login?next=%2Ftopology");

    let (cookie, _) = c.login("vera").await;
    let a = c.get("/topology", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(r#"<svg id="topology""#));
    assert!(a.body.contains(r#"class="on" aria-current="page">Topology</a>"#), "the navigation marks the page");
    assert!(a.body.contains(r#"<g class="site" data-site="site1">"#));
    assert!(a.body.contains(r#"<g class="segment" data-segment="segment1">"#));
    let servers = drawn_servers(&a.body);
    let hosts: Vec<(&str, &str)> = servers.iter().map(|(h, c, _)| (h.as_str(), c.as_str())).collect();
    assert_eq!(hosts, [("mgr-a", "mgr"), ("mgr-b", "mgr"), ("eng-a", "engines"), ("eng-b", "engines")]);
    // Nothing has reached the agents of this manager: every server is drawn with its state
    // as the manager knows it, and unreachable.
    for (host, _, ha) in &servers {
        assert!(!ha.is_empty(), "{host} has an HA state");
    }
    assert_eq!(a.body.matches(r#"data-reachable="false" data-health="""#).count(), 4);
    assert_eq!(a.body.matches(r#"<td class="health"><span class="err">agent does not answer</span>"#).count(), 4);
    assert!(a.body.contains(r#"href="/topology/eng-a""#), "a server links to its page");

    // Analytics over every collector cluster: this topology has none, and the page says so.
    let a = c.get("/analytics", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("No collector cluster is configured"), "{}", a.body);

    let a = c.get("/topology/eng-a", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(r#"<div class="topology" id="server" data-server="eng-a">"#));
    assert!(a.body.contains(r#"<dd id="cluster">engines (engine)</dd>"#), "{}", a.body);
    assert!(a.body.contains(r#"<dd id="running">0.1.0</dd>"#));
    assert!(a.body.contains("the agent does not answer"), "its health: {}", a.body);

    let a = c.get("/topology/nowhere", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body.contains("There is no such server") && a.body.contains(r#"<span id="user">vera</span>"#));

    // An ingest token gets the designed 403 page.
    let req =
        Request::get("/topology").header(header::AUTHORIZATION, format!("Bearer {}", c.ingest)).body(Body::empty());
    let a = c.send(req.unwrap()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains(r#"data-status="403""#) && a.body.contains("it needs the viewer role"), "{}", a.body);
}

#[tokio::test]
async fn the_audit_names_the_person_behind_a_shared_token_and_the_logged_in_user() {
    let c = console_of(true);
    let action = |server: &str| {
        format!(
            r#"{{"cluster":"engines","action":{{"kind":"InitiateUpgrade","cluster":"engines","server":"{server}"}}}}"#
        )
    };
    // With the shared token and X-Actor ...
    let req = Request::post("/api/v1/upgrade/action")
        .header(header::AUTHORIZATION, format!("Bearer {}", c.shared))
        .header("x-actor", "Carol Jones")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(action("eng-b")))
        .unwrap();
    let a = c.send(req).await;
    assert!(![401, 403].contains(&a.status.as_u16()), "{}: {}", a.status, a.body);
    // ... and with a login session.
    let (cookie, csrf) = c.login("olga").await;
    let req = Request::post("/api/v1/upgrade/action")
        .header(header::COOKIE, cookie.clone())
        .header("x-csrf-token", csrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(action("eng-a")))
        .unwrap();
    let a = c.send(req).await;
    assert!(![401, 403].contains(&a.status.as_u16()), "{}: {}", a.status, a.body);

    // A policy push through the shared token (the engines do not answer: refused), audited too.
    let req = Request::post("/api/v1/policy/push?name=night.toml")
        .header(header::AUTHORIZATION, format!("Bearer {}", c.shared))
        .header("x-actor", "Dan")
        .body(Body::from("schema = 1\n"))
        .unwrap();
    let a = c.send(req).await;
    assert!(![401, 403].contains(&a.status.as_u16()), "{}: {}", a.status, a.body);

    // The API's audit and the Audit page name the people.
    let req = Request::get("/api/v1/upgrade/audit").header(header::COOKIE, cookie.clone()).body(Body::empty());
    let a = c.send(req.unwrap()).await;
    let audit: Vec<tollgate_api::manager::AuditEntry> = serde_json::from_str(&a.body).unwrap();
    let who: Vec<(&str, &str)> = audit.iter().map(|e| (e.user.as_str(), e.operation.as_str())).collect();
    assert_eq!(
        who,
        [
            ("Carol Jones via cli-token", "Initiate upgrade eng-b"),
            ("olga", "Initiate upgrade eng-a"),
            ("Dan via cli-token", "Policy push on engines")
        ],
        "{audit:#?}"
    );
    let page = c.get("/audit", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let first = page.body.find(r#"data-user="olga""#).expect("olga's entry");
    let second = page.body.find(r#"data-user="Carol Jones via cli-token""#).expect("Carol's entry");
    assert!(first < second, "newest first");
    let page = c.get("/audit?user=carol", Some(&cookie)).await;
    assert!(page.body.contains("Carol Jones via cli-token") && !page.body.contains(r#"data-user="olga""#));
}

#[tokio::test]
async fn alarms_from_every_server_are_filtered_and_acknowledged_by_an_operator() {
    use tollgate_api::manager::RemoteAlarm;
    let c = console_of(true);
    let alarm = |id, name: &str, severity, scope: &str| RemoteAlarm {
        id,
        name: name.into(),
        severity,
        scope: scope.into(),
        detail: "from the agent".into(),
    };
    {
        let mut reported = c.manager.server_alarms.lock().unwrap();
        reported.insert("eng-a".into(), vec![alarm(31001, "SPOOL_BACKLOG", tollgate_alarms::Severity::Major, "spool")]);
        reported.insert(
            "eng-b".into(),
            vec![alarm(31002, "COLLECTOR_DOWN", tollgate_alarms::Severity::Minor, "collector")],
        );
    }
    let (viewer, _) = c.login("vera").await;
    let page = c.get("/alarms", Some(&viewer)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(r#"data-key="eng-a/31001/spool""#)
            && page.body.contains(r#"data-key="eng-b/31002/collector""#)
    );
    assert!(!page.body.contains(">Acknowledge</button>"), "a viewer gets no Acknowledge button");
    // Filters: by severity, by server.
    let page = c.get("/alarms?severity=Minor&server=", Some(&viewer)).await;
    assert!(!page.body.contains("eng-a/31001") && page.body.contains("eng-b/31002"));
    let page = c.get("/alarms?severity=&server=eng-a", Some(&viewer)).await;
    assert!(page.body.contains("eng-a/31001") && !page.body.contains("eng-b/31002"));

    // The servers' raises and clears (as their roles report them), newest first, filtered by
    // server too.
    {
        use tollgate_api::manager::AlarmEventView;
        let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let event = |s, raised, id, name: &str| AlarmEventView {
            at: at(s),
            raised,
            id,
            name: name.into(),
            scope: "spool".into(),
            detail: String::new(),
        };
        let mut history = c.manager.server_alarm_history.lock().unwrap();
        history.insert(
            "eng-a".into(),
            vec![event(0, true, 31001, "SPOOL_BACKLOG"), event(60, false, 31001, "SPOOL_BACKLOG")],
        );
        history.insert("eng-b".into(), vec![event(30, true, 31002, "COLLECTOR_DOWN")]);
    }
    let page = c.get("/alarms", Some(&viewer)).await;
    let table = page.body.split(r#"id="server-history""#).nth(1).expect("the servers' history").to_string();
    let rows: Vec<&str> = table.split("<tr data-server=").skip(1).map(|r| &r[..r.find('>').unwrap()]).collect();
    assert_eq!(rows, [r#""eng-a""#, r#""eng-b""#, r#""eng-a""#], "newest first: {table}");
    assert!(table.contains("cleared") && table.contains("COLLECTOR_DOWN"), "{table}");
    let page = c.get("/alarms?server=eng-b", Some(&viewer)).await;
    let table = page.body.split(r#"id="server-history""#).nth(1).unwrap().to_string();
    assert!(table.contains("COLLECTOR_DOWN") && !table.contains("SPOOL_BACKLOG"), "{table}");

    // A viewer may not acknowledge (the designed 403 page); an operator may.
    let (viewer_cookie, viewer_csrf) = c.login("vera").await;
    let ack = |cookie: &str, csrf: &str, key: &str| {
        Request::post("/alarms")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&key={}", key.replace('/', "%2F"))))
            .unwrap()
    };
    let a = c.send(ack(&viewer_cookie, &viewer_csrf, "eng-a/31001/spool")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("it needs the operator role"));
    let (cookie, csrf) = c.login("olga").await;
    let a = c.send(ack(&cookie, "wrong", "eng-a/31001/spool")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "the form's CSRF token is checked");
    let a = c.send(ack(&cookie, &csrf, "eng-a/31001/spool")).await;
    assert_eq!((a.status, a.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/alarms"));
    let a = c.send(ack(&cookie, &csrf, "eng-a/99999/nothing")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body.contains("no active alarm"));

    // Recorded in the shared state (what the standby copies), listed, and audited.
    let shared = c.manager.core().shared.alarm_acks.clone();
    assert_eq!(shared.get("eng-a/31001/spool").map(|a| a.by.as_str()), Some("olga"));
    let page = c.get("/alarms", Some(&cookie)).await;
    assert!(page.body.contains(r#"data-key="eng-a/31001/spool" data-server="eng-a" data-id="31001" data-severity="Major" data-acked="true""#), "{}", page.body);
    assert!(page.body.contains(r#"data-key="eng-b/31002/collector" data-server="eng-b" data-id="31002" data-severity="Minor" data-acked="false""#));
    let audit = c.get("/audit", Some(&cookie)).await;
    assert!(audit.body.contains("Acknowledge alarm 31001 SPOOL_BACKLOG on eng-a"), "{}", audit.body);
    // The API lists the same.
    let a = c.get("/api/v1/alarms/all", Some(&cookie)).await;
    let all: Vec<tollgate_api::console::ConsoleAlarm> = serde_json::from_str(&a.body).unwrap();
    let acked: Vec<(&str, bool)> =
        all.iter().filter(|a| a.id > 31000 && a.id < 31100).map(|a| (a.key.as_str(), a.ack.is_some())).collect();
    assert_eq!(acked, [("eng-a/31001/spool", true), ("eng-b/31002/collector", false)]);
    // The manager's own alarms are listed under the server they are about.
    assert!(
        all.iter().filter(|a| a.raised_at.is_some()).all(|a| a.key.starts_with(&format!("{}/", a.scope))),
        "{all:#?}"
    );
}

#[tokio::test]
async fn the_standby_takes_the_active_managers_user_database_from_its_mate_only() {
    let c = console();
    // The active mate's database: a user the standby does not have yet.
    let dir = tempfile::tempdir().unwrap();
    let (theirs, _) = Auth::open(dir.path(), None).unwrap();
    theirs.set_user("zoe", Role::Operator, PASSWORD).unwrap();
    let db = serde_json::to_string(&theirs.export().unwrap()).unwrap();
    let push = |secret: &str| {
        Request::post("/api/v1/manager/users")
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(db.clone()))
            .unwrap()
    };
    // An operator's token is not the mate's.
    assert_eq!(c.send(push(&c.shared)).await.status, StatusCode::UNAUTHORIZED);
    let a = c.send(push(testing::AGENT_TOKEN)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, r#"{"changed":true}"#);
    assert_eq!(c.send(push(testing::AGENT_TOKEN)).await.body, r#"{"changed":false}"#, "unchanged: not rewritten");
    // zoe logs in with the password set on the mate; olga, only on this one, no longer exists.
    c.login("zoe").await;
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name=olga&password={PASSWORD}")))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::UNAUTHORIZED);

    // The active manager keeps its own.
    let active = console_of(true);
    let a = active.send(push(testing::AGENT_TOKEN)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
}

#[tokio::test]
async fn an_admin_manages_users_on_the_manager_and_every_change_is_audited() {
    let c = console_of(true);
    // Not for an operator: the designed 403 page.
    let (olga, _) = c.login("olga").await;
    let a = c.get("/users", Some(&olga)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("it needs the admin role"));

    let (cookie, csrf) = c.login("ada").await;
    let page = c.get("/users", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(r#"<tr data-user="olga">"#) && page.body.contains(">Users</a>"));
    let post = |form: String| {
        Request::post("/users")
            .header(header::COOKIE, cookie.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&{form}")))
            .unwrap()
    };
    let a = c.send(post(format!("kind=user&name=nina&role=operator&password={PASSWORD}"))).await;
    assert!(a.body.contains("User nina saved (operator)."), "{}", a.body);
    let a = c.send(post("kind=user&name=x&role=operator&password=short".into())).await;
    assert!(a.body.contains(r#"class="err" id="message""#), "{}", a.body);
    let a = c.send(post("kind=remove-user&name=vera".into())).await;
    assert!(a.body.contains("User vera removed"), "{}", a.body);
    c.login("nina").await;

    let audit = c.get("/audit", Some(&cookie)).await;
    for op in ["User change: user nina", "User change: user x", "User change: remove-user vera"] {
        assert!(audit.body.contains(&format!(r#"data-user="ada" data-operation="{op}""#)), "{op}: {}", audit.body);
    }

    // On the standby, users are not changed: it copies them from the active manager.
    let standby = console_of(false);
    let (cookie, csrf) = standby.login("ada").await;
    let req = Request::post("/users")
        .header(header::COOKIE, cookie.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&kind=user&name=sam&role=admin&password={PASSWORD}")))
        .unwrap();
    let a = standby.send(req).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("Change users there"), "{}", a.body);
    let page = standby.get("/users", Some(&cookie)).await;
    assert!(page.body.contains(r#"data-user="ada""#) && !page.body.contains(r#"data-user="sam""#), "{}", page.body);
}
