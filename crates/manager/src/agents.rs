//! The manager's client of the agents: what each server reports (release, HA role, staged
//! bundles), and the calls the executor makes (stage, preflight, install, backout, role API).
//! One [`tollgate_api::Client`] per agent (and for the mate manager), typed with the agent's
//! wire types; errors are recognised by their [`ErrorCode`], never by their text.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_api::agent::{self, AgentStatus};
use tollgate_api::{Client, ClientError, ErrorCode};
use tollgate_srp::election::State as ChassisState;
use tollgate_upgrade::director::ServerReport;
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::{AppType, HaRole, StagedBundle};

use tollgate_config::manager::{ClusterConfig, ServerConfig};

/// A failed call to an agent (or to the mate manager), kept typed so that callers branch on
/// [`AgentError::code`]; shown as the answer's message, or as `URL: connection refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    /// The error code the server answered with (none: it did not answer, or not with a body).
    pub code: Option<ErrorCode>,
    /// What happened, in words.
    pub message: String,
    /// Where, when the server refused submitted content (a policy's diagnostics).
    pub details: Vec<tollgate_api::Detail>,
}

impl AgentError {
    /// The code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }

    fn from_client(agent: &str, e: ClientError) -> AgentError {
        match e {
            ClientError::Api { body, .. } => {
                AgentError { code: Some(body.code), message: body.message, details: body.details }
            }
            ClientError::Unreachable { reason, .. } => {
                AgentError { code: None, message: format!("{agent}: {reason}"), details: Vec::new() }
            }
            other => AgentError { code: other.code(), message: format!("{agent}: {other}"), details: Vec::new() },
        }
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

impl From<AgentError> for String {
    fn from(e: AgentError) -> String {
        e.message
    }
}

/// What an agent call returns.
pub type AgentResult<T> = Result<T, AgentError>;

/// The two clients of one agent: quick calls, and calls that wait as long as an install may.
#[derive(Clone)]
struct Pair {
    quick: Client,
    slow: Client,
}

/// Talks to agents (and the mate manager) with the agents' token. Over TLS, an agent's
/// certificate must name a server role (the role of its host: engine, collector, probe or
/// manager) and the mate's the manager role; the manager presents its own certificate, the
/// only kind an agent accepts.
#[derive(Clone)]
pub struct AgentClient {
    quick: reqwest::Client,
    slow: reqwest::Client,
    /// The mate's URL and its clients (TLS: a manager's certificate required).
    mate: Option<(String, reqwest::Client, reqwest::Client)>,
    token: String,
    clients: Arc<Mutex<BTreeMap<String, Pair>>>,
}

/// The TLS of a manager's clients: of its agents, of its mate.
#[derive(Debug, Clone, Default)]
pub struct ManagerTls {
    /// For agents (servers of any server role).
    pub agents: Option<tollgate_api::TlsConfig>,
    /// For the mate (a manager), and its URL.
    pub mate: Option<(String, tollgate_api::TlsConfig)>,
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

/// The part of a role's `show srp info` answer the manager reads.
#[derive(Debug, serde::Deserialize)]
struct SrpShow {
    #[serde(default)]
    data: SrpInfoPart,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SrpInfoPart {
    #[serde(default, deserialize_with = "lenient_state")]
    chassis_state: Option<ChassisState>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    connection_state: String,
    #[serde(default)]
    forced_standby: Option<bool>,
}

/// A chassis state this build does not know (a newer release's) reads as none.
fn lenient_state<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ChassisState>, D::Error> {
    let v = <Option<serde_json::Value> as serde::Deserialize>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

/// The HA role a chassis state means for the Director.
fn role_of(state: ChassisState) -> HaRole {
    match state {
        ChassisState::Active | ChassisState::PendingActive => HaRole::Active,
        ChassisState::Standby | ChassisState::PendingStandby | ChassisState::Init => HaRole::Standby,
    }
}

/// The Director's HA role of what an agent records.
fn director_role(role: agent::HaRole) -> Option<HaRole> {
    match role {
        agent::HaRole::Active => Some(HaRole::Active),
        agent::HaRole::Standby => Some(HaRole::Standby),
        agent::HaRole::Spare => Some(HaRole::Spare),
        agent::HaRole::Unknown => None,
    }
}

/// What the manager records on an agent.
fn agent_role(role: HaRole) -> agent::HaRole {
    match role {
        HaRole::Active => agent::HaRole::Active,
        HaRole::Standby => agent::HaRole::Standby,
        HaRole::Spare => agent::HaRole::Spare,
    }
}

/// The answer of a role's policy install, as far as the manager reads it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PolicyInstallAnswer {
    /// The version the engine gave the policy.
    #[serde(default)]
    pub version: Option<u64>,
}

impl AgentClient {
    /// A client presenting `token`, over plain HTTP.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        AgentClient::with_tls(token, &ManagerTls::default())
    }

    /// A client presenting `token`, speaking TLS with `tls` where given.
    pub fn with_tls(token: &str, tls: &ManagerTls) -> anyhow::Result<Self> {
        // Idle kept connections are dropped before an agent's idle timeout closes them.
        let quick = |tls: Option<&tollgate_api::TlsConfig>| {
            tollgate_api::http_builder(tls)
                .timeout(Duration::from_millis(1500))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
        };
        let slow = |tls: Option<&tollgate_api::TlsConfig>| {
            tollgate_api::http_builder(tls)
                .timeout(Duration::from_secs(600))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
        };
        let mate = match &tls.mate {
            Some((url, config)) => Some((url.clone(), quick(Some(config))?, slow(Some(config))?)),
            None => None,
        };
        Ok(AgentClient {
            quick: quick(tls.agents.as_ref())?,
            slow: slow(tls.agents.as_ref())?,
            mate,
            token: token.to_string(),
            clients: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    fn pair(&self, agent: &str) -> Pair {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let (quick, slow) = match &self.mate {
            Some((mate, quick, slow)) if mate == agent => (quick, slow),
            _ => (&self.quick, &self.slow),
        };
        clients
            .entry(agent.to_string())
            .or_insert_with(|| Pair {
                quick: Client::with_http(agent, Some(self.token.clone()), quick.clone()),
                slow: Client::with_http(agent, Some(self.token.clone()), slow.clone()),
            })
            .clone()
    }

    /// GET `path` on the agent (or manager) at `agent`.
    pub async fn get<T: DeserializeOwned>(&self, agent: &str, path: &str) -> AgentResult<T> {
        self.pair(agent).quick.get(path).await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// GET `path` on the agent, waiting up to `timeout` (longer than the quick calls' 1.5 s).
    pub async fn get_within<T: DeserializeOwned>(&self, agent: &str, path: &str, timeout: Duration) -> AgentResult<T> {
        self.pair(agent).slow.get_within(path, timeout).await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// POST a JSON body; waits as long as an install may take.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        agent: &str,
        path: &str,
        body: &B,
    ) -> AgentResult<T> {
        self.pair(agent).slow.post(path, body).await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// POST without a body (commands whose options are in the query string).
    pub async fn post_empty<T: DeserializeOwned>(&self, agent: &str, path: &str) -> AgentResult<T> {
        self.pair(agent).slow.post_empty(path).await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// The agent's status.
    pub async fn status(&self, agent: &str) -> AgentResult<AgentStatus> {
        self.get(agent, agent::STATUS).await
    }

    /// Uploads a bundle into the agent's staging directory.
    pub async fn stage(&self, agent: &str, file_name: &str, bytes: Vec<u8>) -> AgentResult<agent::StageAnswer> {
        let client = self.pair(agent).slow;
        let path = format!("{}?name={}", agent::STAGE, tollgate_upgrade::names::file_word(file_name));
        let call = async {
            let resp = client.send(client.request(Method::POST, &path).body(bytes)).await?;
            Client::json(resp).await
        };
        call.await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// Installs a policy and its lists (name to text) on the server's role through the agent
    /// (multipart, as `tollgate policy install` sends it), recorded by the engine as `actor`.
    pub async fn install_policy(
        &self,
        agent: &str,
        file_name: &str,
        text: &str,
        lists: &BTreeMap<String, String>,
        actor: &str,
    ) -> AgentResult<PolicyInstallAnswer> {
        let client = self.pair(agent).slow;
        let form = policy_form(file_name, text, lists);
        let call = async {
            let req = client
                .request(Method::POST, &agent::role_path("api/v1/policy"))
                .header("x-actor", actor_header(actor))
                .multipart(form);
            Client::json(client.send(req).await?).await
        };
        call.await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// Has the server's role check a policy and its lists without installing it (the engine's
    /// `POST /api/v1/policy/check`): `Err` with code `invalid` and the diagnostics as details
    /// when it is invalid.
    pub async fn check_policy(
        &self,
        agent: &str,
        file_name: &str,
        text: &str,
        lists: &BTreeMap<String, String>,
    ) -> AgentResult<serde_json::Value> {
        let client = self.pair(agent).slow;
        let form = policy_form(file_name, text, lists);
        let call = async {
            let req = client.request(Method::POST, &agent::role_path("api/v1/policy/check")).multipart(form);
            Client::json(client.send(req).await?).await
        };
        call.await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// Uninstalls the policy of the server's role through the agent (every call is allowed
    /// afterwards), recorded by the engine as `actor`.
    pub async fn uninstall_policy(&self, agent: &str, actor: &str) -> AgentResult<serde_json::Value> {
        let client = self.pair(agent).slow;
        let call = async {
            let req = client
                .request(Method::DELETE, &agent::role_path("api/v1/policy"))
                .header("x-actor", actor_header(actor));
            Client::json(client.send(req).await?).await
        };
        call.await.map_err(|e| AgentError::from_client(agent, e))
    }

    /// The HA view of the server's role: the manager pair's own endpoint for manager servers,
    /// SRP `show info` for the others (None when the role runs no SRP pair).
    pub async fn ha(&self, app: AppType, agent: &str) -> AgentResult<HaView> {
        if app == AppType::Manager {
            let v: tollgate_api::manager::HaStatus = self.get(agent, &agent::role_path("api/v1/manager/ha")).await?;
            return Ok(HaView {
                role: Some(v.role()),
                synchronised: v.synchronised,
                forced_standby: Some(v.forced_standby),
            });
        }
        match self.get::<SrpShow>(agent, &agent::role_path("api/v1/srp/show/info")).await {
            Ok(SrpShow { data }) => Ok(HaView {
                role: data.chassis_state.map(role_of),
                synchronised: data.ready && data.connection_state == "Connected",
                forced_standby: data.forced_standby,
            }),
            // No SRP on this role: the configured role holds, nothing to synchronise.
            Err(e) if runs_no_srp(&e) => Ok(HaView { role: None, synchronised: true, forced_standby: None }),
            Err(e) => Err(e),
        }
    }

    /// A server's report for the Director.
    pub async fn report(&self, cluster: &ClusterConfig, server: &ServerConfig) -> ServerReport {
        let Ok(status) = self.status(&server.agent).await else {
            return ServerReport::unreachable();
        };
        let release = |r: &Option<String>| r.as_deref().and_then(|r| Release::new(r).ok());
        let staged: Option<Vec<StagedBundle>> = status
            .staged
            .iter()
            .map(|b| {
                Some(StagedBundle {
                    file_name: b.file_name.clone(),
                    application: b.application.parse().ok()?,
                    release: Release::new(&b.release).ok()?,
                })
            })
            .collect();
        // Without an SRP pair, the role the manager recorded on the agent (or the configured
        // one); while the role is down (restarting) its HA role is unknown: keep the last one.
        let recorded = status.ha_role.and_then(director_role).unwrap_or(server.role);
        let ha_role = match status.process.running {
            true => self.ha(cluster.application, &server.agent).await.ok().map(|h| h.role.unwrap_or(recorded)),
            false => None,
        };
        ServerReport {
            reachable: true,
            running_release: release(&status.release),
            previous_release: release(&status.previous_release),
            ha_role,
            forced_standby: Some(status.forced_standby),
            staged,
            busy: status.busy,
        }
    }

    /// Records the HA role of a server whose role runs no SRP pair.
    pub async fn set_ha_role(&self, agent: &str, role: HaRole) -> AgentResult<AgentStatus> {
        self.post(agent, agent::HA_ROLE, &agent::HaRoleRequest { role: agent_role(role) }).await
    }

    /// Places the server in forced standby or releases it.
    pub async fn set_forced_standby(&self, agent: &str, on: bool) -> AgentResult<AgentStatus> {
        self.post(agent, agent::FORCED_STANDBY, &agent::ForcedStandbyRequest { on }).await
    }
}

/// `actor` as a header value (characters a header cannot carry become `?`).
fn actor_header(actor: &str) -> String {
    let text: String = actor.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    format!("manager for {text}")
}

/// Whether an SRP call's error says the role runs no SRP (a role of a release whose SRP routes
/// answered a plain 404 reads the same).
pub fn runs_no_srp(e: &AgentError) -> bool {
    matches!(e.code(), Some(ErrorCode::NotConfigured | ErrorCode::NotFound))
}

/// A policy and its lists as the engine's policy routes take them (multipart, as `tollgate
/// policy install` sends them): the part `policy` named `file_name`, and a part `list:NAME`
/// named `NAME.txt` per list.
fn policy_form(file_name: &str, text: &str, lists: &BTreeMap<String, String>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::text(text.to_string()).file_name(file_name.to_string());
    let mut form = reqwest::multipart::Form::new().part("policy", part);
    for (name, list) in lists {
        let part = reqwest::multipart::Part::text(list.clone()).file_name(format!("{name}.txt"));
        form = form.part(format!("list:{name}"), part);
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_states_are_read_as_roles_and_an_unknown_one_as_none() {
        let show: SrpShow = serde_json::from_value(serde_json::json!({
            "text": "...",
            "data": { "chassis_state": "Pending-Active", "ready": true, "connection_state": "Connected", "forced_standby": false }
        }))
        .unwrap();
        assert_eq!(show.data.chassis_state.map(role_of), Some(HaRole::Active));
        let newer: SrpShow =
            serde_json::from_value(serde_json::json!({ "data": { "chassis_state": "Quiescing" } })).unwrap();
        assert_eq!(newer.data.chassis_state, None);
        for (state, role) in [
            (ChassisState::Init, HaRole::Standby),
            (ChassisState::Standby, HaRole::Standby),
            (ChassisState::PendingStandby, HaRole::Standby),
            (ChassisState::Active, HaRole::Active),
        ] {
            assert_eq!(role_of(state), role);
        }
    }

    #[test]
    fn no_srp_is_recognised_by_code_not_text() {
        let e = |code, message: &str| AgentError { code, message: message.into(), details: Vec::new() };
        assert!(runs_no_srp(&e(Some(ErrorCode::NotConfigured), "whatever the text")));
        assert!(runs_no_srp(&e(Some(ErrorCode::NotFound), "HTTP 404 without details")));
        assert!(!runs_no_srp(&e(Some(ErrorCode::Conflict), "SRP is not configured")));
        assert!(!runs_no_srp(&e(None, "http://x: connection refused")));
    }
}
