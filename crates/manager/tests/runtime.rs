//! The manager runtime in-process, against stub agents served on loopback: the executor carries
//! out an upgrade through the agents' typed API, a standby manager takes over from a silent
//! mate only when it reaches the servers, and a server's role without SRP is recognised by the
//! `not_configured` code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use tollgate_api::agent::{AgentStatus, ProcessStatus, StagedBundle, VersionRequest};
use tollgate_api::manager::{ActionRequest, DirectionWord, HaStatus};
use tollgate_api::{ErrorBody, ErrorCode};
use tollgate_manager::{Manager, ops, pair, testing};
use tollgate_upgrade::director::{Event, LogResult, Procedure};
use tollgate_upgrade::release::{Release, ReleasePattern};
use tollgate_upgrade::topology::HaRole;

/// One server's agent, as far as the manager uses it.
struct Stub {
    hostname: String,
    application: &'static str,
    ha: HaRole,
    release: Mutex<String>,
    staged: Mutex<Vec<StagedBundle>>,
    /// The calls that changed something, in order ("preflight 0.2.0", "install 0.2.0").
    calls: Mutex<Vec<String>>,
}

impl Stub {
    fn status(&self) -> AgentStatus {
        AgentStatus {
            server: self.hostname.clone(),
            application: self.application.into(),
            role: self.ha.to_string(),
            release: Some(self.release.lock().unwrap().clone()),
            staged: self.staged.lock().unwrap().clone(),
            process: ProcessStatus { running: true, ..Default::default() },
            ..Default::default()
        }
    }
}

fn agent_router(stub: Arc<Stub>) -> Router {
    async fn status(State(s): State<Arc<Stub>>) -> Json<AgentStatus> {
        Json(s.status())
    }
    async fn preflight(State(s): State<Arc<Stub>>, Json(v): Json<VersionRequest>) -> Response {
        s.calls.lock().unwrap().push(format!("preflight {}", v.version));
        Json(serde_json::json!({ "preflight": "ok", "version": v.version })).into_response()
    }
    async fn install(State(s): State<Arc<Stub>>, Json(v): Json<VersionRequest>) -> Json<AgentStatus> {
        s.calls.lock().unwrap().push(format!("install {}", v.version));
        *s.release.lock().unwrap() = v.version;
        s.staged.lock().unwrap().clear();
        Json(s.status())
    }
    async fn no_srp() -> Response {
        let body = ErrorBody::new(ErrorCode::NotConfigured, "SRP is not configured on this server (no [srp] section)");
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    }
    async fn manager_ha(State(s): State<Arc<Stub>>) -> Json<HaStatus> {
        Json(HaStatus {
            hostname: s.hostname.clone(),
            mate: None,
            ha: s.ha,
            handing_over: false,
            starts_active: false,
            active_since: None,
            synchronised: true,
            generation: 0,
            release: s.release.lock().unwrap().clone(),
            forced_standby: false,
        })
    }
    async fn forced_standby(State(s): State<Arc<Stub>>, Json(v): Json<serde_json::Value>) -> Json<AgentStatus> {
        s.calls.lock().unwrap().push(format!("forced-standby {}", v["on"]));
        Json(s.status())
    }
    Router::new()
        .route("/agent/v1/status", get(status))
        .route("/agent/v1/preflight", post(preflight))
        .route("/agent/v1/install", post(install))
        .route("/agent/v1/forced-standby", post(forced_standby))
        .route("/agent/v1/role/api/v1/srp/show/info", get(no_srp))
        .route("/agent/v1/role/api/v1/manager/ha", get(manager_ha))
        .route(
            "/agent/v1/role/api/v1/alarms",
            get(|| async { Json(serde_json::json!({ "active": [], "history": [] })) }),
        )
        .with_state(stub)
}

/// Serves a stub agent for every server of the fixture's topology; their URLs and states.
async fn stubs(releases: &[(&str, &str)]) -> (BTreeMap<String, String>, BTreeMap<String, Arc<Stub>>) {
    let (mut urls, mut stubs) = (BTreeMap::new(), BTreeMap::new());
    for (hostname, release) in releases {
        let (application, ha) = match *hostname {
            "mgr-a" => ("manager", HaRole::Active),
            "mgr-b" => ("manager", HaRole::Standby),
            "eng-a" => ("engine", HaRole::Active),
            _ => ("engine", HaRole::Standby),
        };
        let stub = Arc::new(Stub {
            hostname: hostname.to_string(),
            application,
            ha,
            release: Mutex::new(release.to_string()),
            staged: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.insert(hostname.to_string(), format!("http://{}", listener.local_addr().unwrap()));
        let app = agent_router(stub.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stubs.insert(hostname.to_string(), stub);
    }
    (urls, stubs)
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_server_is_upgraded_through_its_agent_and_the_log_says_success() {
    let dir = tempfile::tempdir().unwrap();
    let (urls, stubs) = stubs(&[("mgr-a", "0.2.0"), ("mgr-b", "0.2.0"), ("eng-a", "0.1.0"), ("eng-b", "0.1.0")]).await;
    let cfg = testing::config(dir.path(), None, |h| urls[h].clone());
    let m: Arc<Manager> = testing::manager(dir.path(), cfg, "0.1.0");
    // The bundle of the new release is staged on the engines already.
    for h in ["eng-a", "eng-b"] {
        *stubs[h].staged.lock().unwrap() = vec![StagedBundle {
            file_name: "tollgate-engine-0.2.0.tar.gz".into(),
            application: "engine".into(),
            release: "0.2.0".into(),
        }];
    }
    m.become_active(false);
    let procedure = Procedure {
        release: Release::new("0.2.0").unwrap(),
        upgrades_from: vec![ReleasePattern::new("0.1.*").unwrap()],
        label: "tollgate-0.2.0".into(),
    };
    m.feed(Event::ProcedureSelected { procedure: Some(procedure), user: "op".into(), at: Utc::now() });
    tokio::spawn(pair::poll_agents(m.clone()));
    // The poll learns every server's release and staged bundle before an action can start.
    let started = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let request =
                ActionRequest { cluster: "engines".into(), direction: Some(DirectionWord::Upgrade), action: None };
            match ops::start_action(&m, "op".into(), request) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("not yet: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("no upgrade started: {e}"),
            }
        }
    };
    // The standby is upgraded first.
    assert!(started.action.contains("eng-b"), "{}", started.action);
    eventually("the action ends", Duration::from_secs(10), || {
        m.core().shared.director.running_action("engines").is_none()
    })
    .await;
    assert!(m.core().shared.director.failures().is_empty(), "{:?}", m.core().shared.director.failures());
    let calls = stubs["eng-b"].calls.lock().unwrap().clone();
    assert!(
        calls.contains(&"preflight 0.2.0".to_string()) && calls.contains(&"install 0.2.0".to_string()),
        "{calls:?}"
    );
    let log = ops::log(&m, &Default::default());
    let parent =
        log.iter().find(|e| e.entry.parent_id == 0 && e.entry.hostname == "eng-b").expect("the action's entry");
    assert_eq!(parent.entry.result, LogResult::Success, "{log:?}");
    assert!(!parent.duration.is_empty());
    assert_eq!(stubs["eng-a"].calls.lock().unwrap().iter().filter(|c| c.starts_with("install")).count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_silent_mate_only_while_it_reaches_the_servers() {
    // The mate's address: nothing listens there.
    let silent = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Cut off: no agent answers either. It holds back.
    let dir = tempfile::tempdir().unwrap();
    let cfg = testing::config(dir.path(), Some(silent.clone()), |_| silent.clone());
    let isolated = testing::manager(dir.path(), cfg, "0.1.0");
    let task = tokio::spawn(pair::run(isolated.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!isolated.is_active(), "a standby that reaches no server must not take over");
    task.abort();

    // The agents answer: it takes over (a manager failover).
    let dir = tempfile::tempdir().unwrap();
    let (urls, _stubs) = stubs(&[("mgr-a", "0.1.0"), ("mgr-b", "0.1.0"), ("eng-a", "0.1.0"), ("eng-b", "0.1.0")]).await;
    let cfg = testing::config(dir.path(), Some(silent), |h| urls[h].clone());
    let m = testing::manager(dir.path(), cfg, "0.1.0");
    assert!(!m.is_active());
    let task = tokio::spawn(pair::run(m.clone()));
    eventually("the standby takes over", Duration::from_secs(5), || m.is_active()).await;
    let ha = ops::ha(&m);
    assert!(ha.is_active() && ha.active_since.is_some() && ha.synchronised);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_srp_is_recognised_by_its_code_and_counts_as_synchronised() {
    let (urls, _stubs) = stubs(&[("eng-a", "0.1.0")]).await;
    let agents = tollgate_manager::agents::AgentClient::new(testing::AGENT_TOKEN).unwrap();
    let view = agents.ha(tollgate_upgrade::topology::AppType::Engine, &urls["eng-a"]).await.unwrap();
    assert_eq!(view, tollgate_manager::agents::HaView { role: None, synchronised: true, forced_standby: None });
    let manager = agents.ha(tollgate_upgrade::topology::AppType::Manager, &urls["eng-a"]).await.unwrap();
    assert_eq!(manager.role, Some(HaRole::Active));
    // Nothing listening: the error says so in words, without a code.
    let e = agents.status("http://127.0.0.1:9").await.unwrap_err();
    assert!(e.code().is_none() && e.message.contains("connection refused"), "{e}");
}
