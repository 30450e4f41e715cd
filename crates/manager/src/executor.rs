//! Carries out the Director's actions through the agents, step by step, and reports progress,
//! success or failure back to the Director.
//!
//! * Initiate upgrade: Preflight Check (the agent verifies the one staged bundle), Upgrading
//!   server (install: backup, stop, switch release, start), Wait for replication to
//!   synchronize (the SRP standby is "Ready", or the manager standby copied the active's state).
//! * Initiate backout: Backing out server upgrade (the previous release), then the same wait.
//! * Failover: an SRP switchover of the pair (engines); the manager pair hands over to its mate;
//!   a role without SRP records the new Active on the agents.
//! * Reapply configuration: the manager's policy installed on every server of the cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::de::IgnoredAny;
use tollgate_api::agent::{self, PreflightAnswer, VersionRequest};
use tollgate_api::manager::{HaStatus, TakeOver};
use tollgate_upgrade::director::{Action, ActionId, ActionKind, Event, Step};
use tollgate_upgrade::topology::{AppType, HaRole};

use super::Manager;
use crate::agents::{AgentError, runs_no_srp};
use tollgate_config::manager::ServerConfig;

/// Why an action failed.
struct Failure {
    reason: String,
    /// The server's state cannot be determined (it becomes a Zombie).
    indeterminate: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure { reason, indeterminate: false }
    }
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        Failure::from(e.message)
    }
}

/// What the step functions return.
enum Done {
    /// The action completed; report it.
    Succeeded,
    /// The manager handed over to its mate, which reports the outcome.
    HandedOver,
}

/// Runs `action` and reports its outcome.
pub async fn run(m: Arc<Manager>, id: ActionId, action: Action) {
    tracing::info!(id = id.0, action = %action, "action started");
    let result = match action.kind {
        ActionKind::InitiateUpgrade => upgrade(&m, id, &action).await,
        ActionKind::InitiateBackout => backout(&m, id, &action).await,
        ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion => failover(&m, id, &action).await,
        ActionKind::ReapplyConfiguration => reapply(&m, &action).await,
    };
    let at = Utc::now();
    match result {
        Ok(Done::Succeeded) => {
            tracing::info!(id = id.0, action = %action, "action succeeded");
            let effects = m.feed(Event::ActionSucceeded { id, at });
            if effects.iter().any(|e| matches!(e, tollgate_upgrade::director::Effect::Ignored { .. })) {
                tracing::error!(id = id.0, action = %action, "the outcome was not recorded (this manager is the standby)");
            }
        }
        Ok(Done::HandedOver) => tracing::info!(id = id.0, action = %action, "handed over to the mate"),
        Err(f) => {
            tracing::warn!(id = id.0, action = %action, reason = f.reason, "action failed");
            let effects = m.feed(Event::ActionFailed { id, at, reason: f.reason, indeterminate: f.indeterminate });
            if effects.iter().any(|e| matches!(e, tollgate_upgrade::director::Effect::Ignored { .. })) {
                tracing::error!(id = id.0, action = %action, "the outcome was not recorded (this manager is the standby)");
            }
        }
    }
}

/// Moves the action to `step`, unless this manager is no longer the active one: then the
/// action stops here (the active one learns its outcome from the servers' reports).
fn progress(m: &Arc<Manager>, id: ActionId, step: Step) -> Result<(), Failure> {
    still_active(m)?;
    m.feed(Event::ActionProgress { id, step, at: Utc::now() });
    Ok(())
}

fn still_active(m: &Manager) -> Result<(), Failure> {
    match m.is_active() {
        true => Ok(()),
        false => Err(Failure::from("this manager stopped being the active one".to_string())),
    }
}

fn server_of<'a>(m: &'a Manager, action: &Action) -> Result<(AppType, &'a ServerConfig), Failure> {
    let hostname = action.server.as_deref().unwrap_or_default();
    m.cfg
        .server(hostname)
        .map(|(c, s)| (c.application, s))
        .ok_or_else(|| Failure::from(format!("{hostname} is not in the configured topology")))
}

fn target(m: &Manager) -> Result<String, Failure> {
    m.core()
        .shared
        .director
        .target()
        .map(|t| t.as_str().to_string())
        .ok_or_else(|| Failure::from("no upgrade procedure is selected".to_string()))
}

/// After an install or backout request failed (or its answer was lost): waits while the agent
/// is still busy with it, then tells whether the server reached `wanted` after all (Ok), stayed
/// where it was (a retryable failure) or cannot say (indeterminate: a Zombie).
async fn settled(m: &Manager, server: &ServerConfig, wanted: &str, reason: String) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(m.cfg.replication_timeout_s);
    loop {
        match m.agents.status(&server.agent).await {
            Ok(s) if s.busy && Instant::now() < deadline => {}
            Ok(s) if s.release.as_deref() == Some(wanted) && s.process.running => return Ok(()),
            Ok(s) if s.release.is_some() => return Err(Failure { reason, indeterminate: false }),
            Ok(_) => {
                return Err(Failure { reason: format!("{reason}; the server runs no release"), indeterminate: true });
            }
            Err(e) => {
                return Err(Failure {
                    reason: format!("{reason}; the agent does not answer ({e})"),
                    indeterminate: true,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn upgrade(m: &Arc<Manager>, id: ActionId, action: &Action) -> Result<Done, Failure> {
    let (app, server) = server_of(m, action)?;
    let version = target(m)?;
    still_active(m)?;
    let request = VersionRequest { version: version.clone() };
    m.agents.post::<_, PreflightAnswer>(&server.agent, agent::PREFLIGHT, &request).await?;
    progress(m, id, Step::UpgradingServer)?;
    if let Err(e) = m.agents.post::<_, IgnoredAny>(&server.agent, agent::INSTALL, &request).await {
        settled(m, server, &version, e.message).await?;
    }
    progress(m, id, Step::WaitForReplication)?;
    wait_for_replication(m, app, server).await?;
    Ok(Done::Succeeded)
}

async fn backout(m: &Arc<Manager>, id: ActionId, action: &Action) -> Result<Done, Failure> {
    let (app, server) = server_of(m, action)?;
    still_active(m)?;
    let previous = {
        let core = m.core();
        let s = core.shared.director.topology().find_server(&server.hostname).map(|(_, s)| s.clone());
        s.and_then(|s| s.previous_release).map(|r| r.as_str().to_string()).unwrap_or_default()
    };
    if let Err(e) = m.agents.post_empty::<IgnoredAny>(&server.agent, agent::BACKOUT).await {
        settled(m, server, &previous, e.message).await?;
    }
    progress(m, id, Step::WaitForReplication)?;
    wait_for_replication(m, app, server).await?;
    Ok(Done::Succeeded)
}

/// Waits until the restarted server serves again and its copy of the sessions is synchronised
/// with its mate (SRP "Ready"; a manager standby has copied the active's state).
async fn wait_for_replication(m: &Manager, app: AppType, server: &ServerConfig) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(m.cfg.replication_timeout_s);
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match m.agents.ha(app, &server.agent).await {
            Ok(view) if view.synchronised => return Ok(()),
            Ok(view) => last = format!("{} reports {:?}, not synchronised", server.hostname, view.role),
            Err(e) => last = e.message,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::from(format!("replication did not synchronise within {} s: {last}", m.cfg.replication_timeout_s)))
}

async fn failover(m: &Arc<Manager>, id: ActionId, action: &Action) -> Result<Done, Failure> {
    let (app, to) = server_of(m, action)?;
    let cluster = m.cfg.server(&to.hostname).map(|(c, _)| c).ok_or_else(|| Failure::from("no cluster".to_string()))?;
    let active = {
        let core = m.core();
        core.shared
            .director
            .topology()
            .cluster(&action.cluster)
            .and_then(|c| c.active())
            .map(|s| s.hostname.clone())
            .ok_or_else(|| Failure::from(format!("{} has no Active server", action.cluster)))?
    };
    let from = m.cfg.server(&active).map(|(_, s)| s).ok_or_else(|| Failure::from(format!("{active} unknown")))?;
    if app == AppType::Manager {
        return hand_over(m, id, &to.hostname).await;
    }
    // An SRP pair switches over; a role without SRP has its new Active recorded.
    still_active(m)?;
    let srp = match m.agents.get::<IgnoredAny>(&from.agent, &agent::role_path("api/v1/srp/show/info")).await {
        Ok(_) => true,
        Err(e) if runs_no_srp(&e) => false,
        Err(e) => return Err(Failure::from(format!("cannot tell whether {active} runs SRP: {e}"))),
    };
    match srp {
        true => {
            released_from_forced_standby(m, app, to).await?;
            switch_over(m, from, &active, &to.hostname).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if m.agents.ha(app, &to.agent).await.is_ok_and(|v| v.role == Some(HaRole::Active)) {
                    return Ok(Done::Succeeded);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(Failure::from(format!("{} did not become Active within 30 s", to.hostname)))
        }
        false => {
            for s in &cluster.servers {
                if s.hostname == to.hostname || s.hostname == active {
                    let role = if s.hostname == to.hostname { HaRole::Active } else { HaRole::Standby };
                    m.agents.set_ha_role(&s.agent, role).await?;
                }
            }
            Ok(Done::Succeeded)
        }
    }
}

/// Waits until the failover target's SRP chassis has dropped its forced standby: the Director
/// released it when the failover started (and holds the other server once it succeeded).
async fn released_from_forced_standby(m: &Manager, app: AppType, to: &ServerConfig) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match m.agents.ha(app, &to.agent).await {
            Ok(v) if v.forced_standby != Some(true) => return Ok(()),
            Ok(_) if Instant::now() >= deadline => {
                return Err(Failure::from(format!("{} is still in forced standby after 10 s", to.hostname)));
            }
            Err(e) if Instant::now() >= deadline => return Err(Failure::from(e)),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `srp initiate-switchover` on the Active chassis. Its mate's hello announcing the release from
/// forced standby may still be on its way: that refusal is retried for a few seconds.
async fn switch_over(m: &Manager, from: &ServerConfig, active: &str, to: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let path = agent::role_path("api/v1/srp/initiate-switchover?force=false");
        match m.agents.post_empty::<IgnoredAny>(&from.agent, &path).await {
            Ok(_) => return Ok(()),
            // The chassis refuses (conflict) while it believes its mate is held.
            Err(e)
                if e.code() == Some(tollgate_api::ErrorCode::Conflict)
                    && e.message.contains("forced standby")
                    && Instant::now() < deadline =>
            {
                tracing::debug!(active, to, "switchover waits for the mate's hello: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(Failure::from(format!("switchover refused by {active}: {e}"))),
        }
    }
}

/// The manager cluster's failover: the active manager (this one) hands its state to the mate,
/// which becomes active and reports this action's success; this one becomes the standby.
async fn hand_over(m: &Arc<Manager>, id: ActionId, to: &str) -> Result<Done, Failure> {
    if to == m.cfg.hostname {
        // Planned from a view in which this manager was still the standby: the failover's end
        // (this manager active) already holds.
        tracing::info!(to, "already the active manager: nothing to hand over");
        return Ok(Done::Succeeded);
    }
    let mate = m.cfg.mate.clone().ok_or_else(|| Failure::from("this manager has no mate".to_string()))?;
    let snapshot = {
        let mut core = m.core();
        core.handing_over = true;
        core.shared.clone()
    };
    let answer =
        m.agents.post::<_, HaStatus>(&mate, "/api/v1/manager/take-over", &TakeOver { snapshot, action: id.0 }).await;
    if answer.is_ok() {
        m.become_standby();
    }
    m.core().handing_over = false;
    match answer {
        Ok(_) => Ok(Done::HandedOver),
        // The mate did not take over: this one stays in charge and reports the failure.
        Err(e) => Err(Failure::from(format!("the mate manager did not take over: {e}"))),
    }
}

async fn reapply(m: &Arc<Manager>, action: &Action) -> Result<Done, Failure> {
    let Some(cluster) = m.cfg.clusters.iter().find(|c| c.name == action.cluster) else {
        return Err(Failure::from(format!("{} is not configured", action.cluster)));
    };
    let Some(policy) = &m.cfg.policy else { return Ok(Done::Succeeded) };
    if cluster.application != AppType::Engine {
        return Ok(Done::Succeeded);
    }
    let text = std::fs::read_to_string(policy).map_err(|e| Failure::from(format!("{}: {e}", policy.display())))?;
    let name = policy.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "policy.toml".into());
    for s in &cluster.servers {
        m.agents
            .install_policy(&s.agent, &name, &text, &Default::default(), "reapply after upgrade")
            .await
            .map_err(|e| Failure::from(format!("{}: policy not installed: {e}", s.hostname)))?;
    }
    Ok(Done::Succeeded)
}
