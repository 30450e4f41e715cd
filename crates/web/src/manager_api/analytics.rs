//! `GET /api/v1/analytics` on the manager: the Analytics of every collector cluster as one.
//!
//! The manager resolves the selectors to one explicit range (so every collector answers for
//! the same buckets), asks one server of each collector cluster through its agent (the
//! Active first, then the others in the topology's order: the servers of a cluster share or
//! replicate one store, so asking two would count records twice), and adds the answers up
//! ([`tollgate_store::merge`]). A cluster that does not answer is named in `sources` with the
//! reason; the others' sum is still shown.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tollgate_api::web::AnalyticsParams;
use tollgate_manager::Manager;
use tollgate_store::model::AnalyticsResult;
use tollgate_upgrade::topology::{AppType, HaRole};

use super::{ApiState, Viewer};
use crate::http::{ApiError, ApiResult, QueryParams};

/// How long one collector may take to answer (the role's own limit through its agent is 30 s).
const COLLECTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Where one collector cluster's part came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsSource {
    /// The collector cluster.
    pub cluster: String,
    /// The server that answered (`None`: none did).
    pub server: Option<String>,
    /// Why no server of the cluster answered (each server's reason).
    pub error: Option<String>,
}

/// The manager's answer: the sum over the collector clusters that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorAnalytics {
    /// The merged views (`None`: no collector answered, or there is no collector cluster).
    pub result: Option<AnalyticsResult>,
    /// One entry per collector cluster.
    pub sources: Vec<AnalyticsSource>,
}

/// The collector clusters, each with its servers' (hostname, agent URL), the Active first.
fn collector_servers(m: &Manager) -> Vec<(String, Vec<(String, String)>)> {
    let active: std::collections::BTreeSet<String> = m
        .core()
        .shared
        .director
        .topology()
        .clusters
        .iter()
        .flat_map(|c| c.servers.iter())
        .filter(|s| s.ha_role == HaRole::Active && s.reachable)
        .map(|s| s.hostname.clone())
        .collect();
    m.cfg
        .clusters
        .iter()
        .filter(|c| c.application == AppType::Collector)
        .map(|c| {
            let mut servers: Vec<(String, String)> =
                c.servers.iter().map(|s| (s.hostname.clone(), s.agent.clone())).collect();
            servers.sort_by_key(|(host, _)| !active.contains(host));
            (c.name.clone(), servers)
        })
        .collect()
}

/// The query string a collector is asked with: the selectors, with the range made explicit.
fn collector_query(p: &AnalyticsParams) -> Result<String, String> {
    let q = crate::api::analytics::query_of(p, Utc::now())?;
    let mut pairs = vec![
        ("dataset", q.dataset.as_str().to_string()),
        ("view", q.view.as_str().to_string()),
        ("grouping", q.grouping.as_str().to_string()),
        ("from", q.from.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ("to", q.to.to_rfc3339_opts(SecondsFormat::Secs, true)),
    ];
    if let Some(d) = q.device {
        pairs.push(("device", d));
    }
    serde_urlencoded::to_string(pairs).map_err(|e| e.to_string())
}

/// Asks one server of `cluster` after the other until one answers.
async fn ask_cluster(
    m: Arc<Manager>,
    cluster: String,
    servers: Vec<(String, String)>,
    path: String,
) -> (AnalyticsSource, Option<AnalyticsResult>) {
    let mut reasons = Vec::new();
    for (host, agent) in servers {
        match m.agents.get_within::<AnalyticsResult>(&agent, &path, COLLECTOR_TIMEOUT).await {
            Ok(r) => return (AnalyticsSource { cluster, server: Some(host), error: None }, Some(r)),
            Err(e) => reasons.push(format!("{host}: {e}")),
        }
    }
    let error = if reasons.is_empty() { "the cluster has no server".into() } else { reasons.join("; ") };
    (AnalyticsSource { cluster, server: None, error: Some(error) }, None)
}

/// Asks every collector cluster at once and merges the answers; `sources` keep the
/// configuration's order.
pub async fn gather(m: &Arc<Manager>, p: &AnalyticsParams) -> Result<CollectorAnalytics, String> {
    let query = collector_query(p)?;
    let path = tollgate_api::agent::role_path(&format!("api/v1/analytics?{query}"));
    let mut asks = tokio::task::JoinSet::new();
    for (index, (cluster, servers)) in collector_servers(m).into_iter().enumerate() {
        let (m, path) = (m.clone(), path.clone());
        asks.spawn(async move { (index, ask_cluster(m, cluster, servers, path).await) });
    }
    let mut answers = asks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    let (sources, parts): (Vec<AnalyticsSource>, Vec<Option<AnalyticsResult>>) =
        answers.into_iter().map(|(_, answer)| answer).unzip();
    Ok(CollectorAnalytics { result: tollgate_store::merge::merge(parts.into_iter().flatten().collect()), sources })
}

/// The devices (engines, probes) any collector cluster has records of for `dataset`, sorted,
/// for the Device selector; a cluster that does not answer adds none.
pub async fn devices(m: &Arc<Manager>, dataset: &str) -> Vec<String> {
    let query = serde_urlencoded::to_string([("dataset", dataset)]).unwrap_or_default();
    let path = tollgate_api::agent::role_path(&format!("api/v1/devices?{query}"));
    let mut asks = tokio::task::JoinSet::new();
    for (_, servers) in collector_servers(m) {
        let (m, path) = (m.clone(), path.clone());
        asks.spawn(async move {
            for (_, agent) in servers {
                if let Ok(list) = m.agents.get::<Vec<String>>(&agent, &path).await {
                    return list;
                }
            }
            Vec::new()
        });
    }
    let all: std::collections::BTreeSet<String> = asks.join_all().await.into_iter().flatten().collect();
    all.into_iter().collect()
}

/// `GET /api/v1/analytics` (viewer): the collector's selectors (`dataset`, `view`, `grouping`,
/// `device`, `range` or `from`/`to`), answered for every collector cluster at once.
pub(super) async fn analytics(
    State(s): State<ApiState>,
    _: Viewer,
    QueryParams(p): QueryParams<AnalyticsParams>,
) -> ApiResult<Json<CollectorAnalytics>> {
    Ok(Json(gather(&s.manager, &p).await.map_err(ApiError::bad_request)?))
}
