//! The manager's client of the agents: what each server reports (release, HA role, staged
//! bundles), and the calls the executor makes (stage, preflight, install, backout, role API).

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_upgrade::director::ServerReport;
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::{AppType, HaRole, StagedBundle};

use tollgate_config::manager::{ClusterConfig, ServerConfig};

/// Talks to agents with the agents' token.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    slow: reqwest::Client,
    token: String,
}

/// What the role process's HA machinery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaView {
    /// Active or Standby (None: the role has no pair, the configured role holds).
    pub role: Option<HaRole>,
    /// The standby's copy of the sessions is synchronised (SRP "Ready"), or there is no pair.
    pub synchronised: bool,
    /// The role holds itself in forced standby (None: the role has no pair to hold it in).
    pub forced_standby: Option<bool>,
}

impl AgentClient {
    /// A client presenting `token`.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(AgentClient {
            // Idle kept connections are dropped before an agent's idle timeout closes them.
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(1500))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()?,
            slow: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()?,
            token: token.to_string(),
        })
    }

    /// Sends `req` (to `agent`) with the agents' token; the JSON answer, or the agent's error.
    async fn send(&self, agent: &str, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| format!("{agent}: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(body["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("{status}: {body}")))
        }
    }

    /// GET `path` on the agent at `agent`.
    pub async fn get(&self, agent: &str, path: &str) -> Result<Value, String> {
        self.send(agent, self.http.get(format!("{agent}{path}"))).await
    }

    /// POST a JSON body; waits as long as an install may take.
    pub async fn post(&self, agent: &str, path: &str, body: Value) -> Result<Value, String> {
        self.send(agent, self.slow.post(format!("{agent}{path}")).json(&body)).await
    }

    /// POST without a body (commands whose options are in the query string).
    pub async fn post_empty(&self, agent: &str, path: &str) -> Result<Value, String> {
        self.send(agent, self.slow.post(format!("{agent}{path}"))).await
    }

    /// Uploads a bundle into the agent's staging directory.
    pub async fn stage(&self, agent: &str, file_name: &str, bytes: Vec<u8>) -> Result<Value, String> {
        let url = format!("{agent}/agent/v1/stage?name={}", crate::names::file_word(file_name));
        self.send(agent, self.slow.post(url).body(bytes)).await
    }

    /// Installs a policy on the server's role through the agent (multipart, as `tollgate
    /// policy install` sends it).
    pub async fn install_policy(&self, agent: &str, file_name: &str, text: &str) -> Result<Value, String> {
        let part = reqwest::multipart::Part::text(text.to_string()).file_name(file_name.to_string());
        let form = reqwest::multipart::Form::new().part("policy", part);
        let req = self
            .slow
            .post(format!("{agent}/agent/v1/role/api/v1/policy"))
            .header("x-tollgate-actor", "manager")
            .multipart(form);
        self.send(agent, req).await
    }

    /// The HA view of the server's role: the manager pair's own endpoint for manager servers,
    /// SRP `show info` for the others (None when the role runs no SRP pair).
    pub async fn ha(&self, app: AppType, agent: &str) -> Result<HaView, String> {
        if app == AppType::Manager {
            let v = self.get(agent, "/agent/v1/role/api/v1/manager/ha").await?;
            let role = match v["ha"].as_str() {
                Some("Active") => HaRole::Active,
                Some("Standby") => HaRole::Standby,
                other => return Err(format!("the manager reports HA {other:?}")),
            };
            return Ok(HaView {
                role: Some(role),
                synchronised: v["synchronised"].as_bool().unwrap_or(false),
                forced_standby: v["forced_standby"].as_bool(),
            });
        }
        match self.get(agent, "/agent/v1/role/api/v1/srp/show/info").await {
            Ok(v) => {
                let data = &v["data"];
                let role = match data["chassis_state"].as_str() {
                    Some("Active" | "Pending-Active") => Some(HaRole::Active),
                    Some("Standby" | "Pending-Standby" | "Init") => Some(HaRole::Standby),
                    _ => None,
                };
                let synchronised =
                    data["ready"].as_bool().unwrap_or(false) && data["connection_state"].as_str() == Some("Connected");
                Ok(HaView { role, synchronised, forced_standby: data["forced_standby"].as_bool() })
            }
            // No SRP on this role: the configured role holds, nothing to synchronise.
            Err(e) if e.contains("SRP is not configured") || e.contains("404") => {
                Ok(HaView { role: None, synchronised: true, forced_standby: None })
            }
            Err(e) => Err(e),
        }
    }

    /// A server's report for the Director.
    pub async fn report(&self, cluster: &ClusterConfig, server: &ServerConfig) -> ServerReport {
        let Ok(status) = self.get(&server.agent, "/agent/v1/status").await else {
            return ServerReport::unreachable();
        };
        let release = |k: &str| status[k].as_str().and_then(|r| Release::new(r).ok());
        let staged: Option<Vec<StagedBundle>> = serde_json::from_value(status["staged"].clone()).ok();
        let role_up = status["process"]["running"].as_bool().unwrap_or(false);
        // Without an SRP pair, the role the manager recorded on the agent (or the configured
        // one); while the role is down (restarting) its HA role is unknown: keep the last one.
        let recorded = status["ha_role"].as_str().and_then(parse_ha_role).unwrap_or(server.role);
        let ha_role = match role_up {
            true => self.ha(cluster.application, &server.agent).await.ok().map(|h| h.role.unwrap_or(recorded)),
            false => None,
        };
        ServerReport {
            reachable: true,
            running_release: release("release"),
            previous_release: release("previous_release"),
            ha_role,
            forced_standby: status["forced_standby"].as_bool(),
            staged,
            busy: status["busy"].as_bool().unwrap_or(false),
        }
    }

    /// Records the HA role of a server whose role runs no SRP pair.
    pub async fn set_ha_role(&self, agent: &str, role: HaRole) -> Result<Value, String> {
        self.post(agent, "/agent/v1/ha-role", json!({ "role": role })).await
    }

    /// Places the server in forced standby or releases it.
    pub async fn set_forced_standby(&self, agent: &str, on: bool) -> Result<Value, String> {
        self.post(agent, "/agent/v1/forced-standby", json!({ "on": on })).await
    }
}

fn parse_ha_role(text: &str) -> Option<HaRole> {
    match text {
        "Active" => Some(HaRole::Active),
        "Standby" => Some(HaRole::Standby),
        "Spare" => Some(HaRole::Spare),
        _ => None,
    }
}
