//! Cluster-wide policy in-process, against stub agents on loopback: a server that does not
//! take a push is recorded with its reason while the others keep it (and the version in force
//! on the cluster stays the one before), and an engine that finds the policy invalid stops the
//! push before any other server is asked, its diagnostics passed on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tollgate_api::agent::{AgentStatus, ProcessStatus};
use tollgate_api::manager::PolicyCandidate;
use tollgate_api::{Detail, ErrorBody, ErrorCode};
use tollgate_manager::{Manager, policies, testing};

/// How a stub engine answers an install.
#[derive(Clone, Copy)]
enum Answer {
    Installs,
    Fails,
    Invalid,
}

struct Stub {
    hostname: String,
    answer: Answer,
    /// Installs asked of it.
    installs: Mutex<usize>,
}

fn router(stub: Arc<Stub>) -> Router {
    async fn status(State(s): State<Arc<Stub>>) -> Json<AgentStatus> {
        Json(AgentStatus {
            server: s.hostname.clone(),
            application: "engine".into(),
            role: "Active".into(),
            release: Some("1.0.0".into()),
            max_policy_schema: Some(2),
            process: ProcessStatus { running: true, ..Default::default() },
            ..Default::default()
        })
    }
    async fn install(State(s): State<Arc<Stub>>) -> Response {
        *s.installs.lock().unwrap() += 1;
        match s.answer {
            Answer::Installs => Json(serde_json::json!({ "version": 7 })).into_response(),
            Answer::Fails => {
                let body = ErrorBody::new(ErrorCode::Internal, "the policy store is full");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
            Answer::Invalid => {
                let detail = Detail {
                    file: "p.toml".into(),
                    line: Some(3),
                    field: "rule[0].source".into(),
                    message: "unknown list \"missing\"".into(),
                };
                let body = ErrorBody::new(ErrorCode::Invalid, "policy is invalid; nothing was changed")
                    .with_details(vec![detail]);
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
        }
    }
    Router::new()
        .route("/agent/v1/status", get(status))
        .route("/agent/v1/role/api/v1/policy", post(install))
        .with_state(stub)
}

/// An active manager over the fixture's topology; the engines answer as told.
async fn manager(dir: &std::path::Path, a: Answer, b: Answer) -> (Arc<Manager>, BTreeMap<String, Arc<Stub>>) {
    let mut urls = BTreeMap::new();
    let mut stubs = BTreeMap::new();
    for (hostname, answer) in [("eng-a", a), ("eng-b", b)] {
        let stub = Arc::new(Stub { hostname: hostname.into(), answer, installs: Mutex::new(0) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.insert(hostname.to_string(), format!("http://{}", listener.local_addr().unwrap()));
        let app = router(stub.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stubs.insert(hostname.to_string(), stub);
    }
    let cfg = testing::config(dir, None, |h| urls.get(h).cloned().unwrap_or_else(|| "http://127.0.0.1:9".into()));
    let m = testing::manager(dir, cfg, "1.0.0");
    m.become_active(false);
    (m, stubs)
}

fn candidate() -> PolicyCandidate {
    PolicyCandidate {
        policy: "schema = 1\n[[rule]]\nname = \"r\"\ndestination = \"+12125550111\"\naction = \"terminate\"\n".into(),
        name: Some("p.toml".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_take_a_push_is_recorded_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (m, stubs) = manager(dir.path(), Answer::Installs, Answer::Fails).await;
    let e = policies::push(&m, "alice", candidate()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Upstream);
    assert!(e.message.contains("eng-b: the policy store is full") && e.message.contains("eng-a"), "{}", e.message);
    assert_eq!(*stubs["eng-b"].installs.lock().unwrap(), 1);
    let versions = policies::versions(&m);
    assert_eq!(versions.len(), 1, "the push is recorded");
    let v = &versions[0];
    assert!(!v.ok && !v.clusters[0].ok, "{v:?}");
    let servers: Vec<(&str, bool, Option<&str>)> =
        v.clusters[0].servers.iter().map(|s| (s.hostname.as_str(), s.ok, s.error.as_deref())).collect();
    assert_eq!(servers, [("eng-a", true, None), ("eng-b", false, Some("the policy store is full"))]);
    assert_eq!(v.clusters[0].servers[0].engine_version, Some(7));
    assert!(!m.core().shared.policies.installed.contains_key("engines"), "no version is in force on the whole cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_stops_at_the_first_engine_with_its_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let (m, stubs) = manager(dir.path(), Answer::Invalid, Answer::Installs).await;
    let e = policies::push(&m, "alice", candidate()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Invalid, "{}", e.message);
    assert_eq!(e.details.len(), 1);
    assert_eq!((e.details[0].line, e.details[0].field.as_str()), (Some(3), "rule[0].source"));
    assert_eq!(*stubs["eng-b"].installs.lock().unwrap(), 0, "no other server was asked");
    assert!(policies::versions(&m).is_empty(), "nothing installed, nothing recorded");
    let audit = m.core().shared.audit.clone();
    assert!(audit.iter().any(|a| a.user == "alice" && a.operation.contains("Policy push")), "{audit:?}");
}
