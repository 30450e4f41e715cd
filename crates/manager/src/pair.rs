//! The manager pair and the agent poll: who is active, the standby's copy of the active's
//! state, the takeover when the active is lost, and (on the active) every agent's report fed to
//! the Director.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tollgate_api::manager::{HaStatus, RemoteAlarm, RoleAlarms, SyncAnswer};
use tollgate_upgrade::director::Event;
use tollgate_upgrade::topology::{AppType, HaRole};

use super::{Manager, Snapshot, pair_rules};

/// What `GET /api/v1/manager/ha` answers.
pub fn ha_view(m: &Manager) -> HaStatus {
    let core = m.core();
    let synchronised = match core.ha {
        HaRole::Active => true,
        _ => core.last_sync.is_some_and(|t| (Utc::now() - t).num_milliseconds() < m.cfg.takeover_ms as i64),
    };
    HaStatus {
        hostname: m.cfg.hostname.clone(),
        mate: m.cfg.mate.clone(),
        ha: core.ha,
        handing_over: core.handing_over,
        starts_active: m.cfg.starts_active,
        active_since: core.active_since,
        synchronised,
        generation: core.shared.generation,
        release: m.release.clone(),
        forced_standby: m.held(),
    }
}

/// The mate's answer to `/api/v1/manager/ha`, or None when it does not answer.
async fn mate_ha(m: &Manager, mate: &str) -> Option<HaStatus> {
    m.agents.get(mate, "/api/v1/manager/ha").await.ok()
}

/// The mate's answer, as the pair rules read it.
pub fn mate_view(a: &HaStatus) -> pair_rules::Side {
    pair_rules::Side {
        hostname: a.hostname.clone(),
        // A mate handing over to this one is no longer the active one.
        active: a.is_active(),
        active_since: a.active_since,
        generation: a.generation,
        starts_active: a.starts_active,
        held: a.forced_standby,
    }
}

/// Whether any agent of another server than this manager's own answers now.
async fn reaches_other_agents(m: &Manager) -> bool {
    let mut asks = tokio::task::JoinSet::new();
    for (_, server) in m.cfg.servers().filter(|(_, s)| s.hostname != m.cfg.hostname) {
        let (agents, agent) = (m.agents.clone(), server.agent.clone());
        asks.spawn(async move { agents.status(&agent).await.is_ok() });
    }
    while let Some(answer) = asks.join_next().await {
        if answer.unwrap_or(false) {
            return true;
        }
    }
    false
}

/// Decides and keeps this manager's HA role for as long as the process runs (the rules are in
/// [`pair_rules`]).
pub async fn run(m: Arc<Manager>) {
    let Some(mate) = m.cfg.mate.clone() else {
        m.become_active(false);
        return;
    };
    let poll = Duration::from_millis(m.cfg.poll_ms);
    let takeover = Duration::from_millis(m.cfg.takeover_ms);
    let mut last_heard = Instant::now();
    let mut ever_synced = false;
    let mut last_hold_back: Option<Instant> = None;
    loop {
        if m.core().handing_over {
            tokio::time::sleep(poll).await;
            continue;
        }
        let answer = mate_ha(&m, &mate).await;
        if answer.is_some() {
            last_heard = Instant::now();
        }
        let mut view = {
            let core = m.core();
            pair_rules::View {
                me: pair_rules::Side {
                    hostname: m.cfg.hostname.clone(),
                    active: core.ha == HaRole::Active,
                    active_since: core.active_since,
                    generation: core.shared.generation,
                    starts_active: m.cfg.starts_active,
                    held: m.held(),
                },
                mate: answer.as_ref().map(mate_view),
                mate_lost: last_heard.elapsed() >= takeover,
                reaches_servers: None,
            }
        };
        if view.needs_agents() {
            view.reaches_servers = Some(if view.me.active {
                m.last_server_contact().is_some_and(|t| t.elapsed() < takeover)
            } else {
                reaches_other_agents(&m).await
            });
        }
        match pair_rules::decide(&view) {
            pair_rules::Decision::Stay => {}
            pair_rules::Decision::FollowMate => match m.agents.get::<Snapshot>(&mate, "/api/v1/manager/state").await {
                Ok(snapshot) => ever_synced |= accept_sync(&m, snapshot),
                Err(e) => tracing::debug!(error = %e, "the active manager's state is not available"),
            },
            pair_rules::Decision::BecomeActive { failover } => {
                m.become_active(failover && (ever_synced || m.core().shared.generation > 0));
            }
            pair_rules::Decision::BecomeStandby => {
                if view.mate.is_none() {
                    tracing::error!(
                        "neither the mate manager nor any other server answers: this manager is isolated and steps down"
                    );
                }
                m.become_standby();
            }
            pair_rules::Decision::HoldBack(why) => {
                if last_hold_back.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(why, "the active manager is lost; not taking over");
                    last_hold_back = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// On the active manager: polls every agent and feeds the reports to the Director.
pub async fn poll_agents(m: Arc<Manager>) {
    let poll = Duration::from_millis(m.cfg.poll_ms);
    loop {
        if m.is_active() {
            let mut polls = tokio::task::JoinSet::new();
            for (cluster, server) in m.cfg.servers() {
                let (m, cluster, server) = (m.clone(), cluster.clone(), server.clone());
                polls.spawn(async move {
                    // Observed when asked: the Director ignores what was seen before an action
                    // on the cluster ended.
                    let asked = Utc::now();
                    let report = m.agents.report(&cluster, &server).await;
                    // A manager's alarms are the Director's, held here already.
                    let alarms = if report.reachable && cluster.application != AppType::Manager {
                        m.agents
                            .get::<RoleAlarms>(&server.agent, &tollgate_api::agent::role_path("api/v1/alarms"))
                            .await
                            .ok()
                    } else {
                        None
                    };
                    (server.hostname.clone(), report, alarms, asked)
                });
            }
            let results = polls.join_all().await;
            if results.iter().any(|(h, r, _, _)| r.reachable && *h != m.cfg.hostname) {
                m.touch_server_contact();
            }
            for (hostname, report, alarms, asked) in results {
                if let Some(a) = alarms {
                    let list: Vec<RemoteAlarm> = a.active.iter().map(Into::into).collect();
                    m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).insert(hostname.clone(), list);
                    m.server_alarm_history
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(hostname.clone(), a.history);
                }
                m.feed(Event::ServerReported { hostname, report, at: asked });
            }
            super::staging::ensure(&m);
        }
        tokio::time::sleep(poll).await;
    }
}

/// On the active manager: sends the state to the standby as soon as the log, the audit or an
/// action changed, so that a failover loses nothing the operator saw.
pub async fn push_to_mate(m: Arc<Manager>) {
    let Some(mate) = m.cfg.mate.clone() else { return };
    loop {
        m.changed.notified().await;
        if !m.is_active() {
            continue;
        }
        let snapshot = m.core().shared.clone();
        if let Err(e) = m.agents.post::<_, SyncAnswer>(&mate, "/api/v1/manager/sync", &snapshot).await {
            tracing::debug!(error = %e, "the standby manager did not take the state");
        }
    }
}

/// On the standby: takes the active's state if it is newer than the copy held.
pub fn accept_sync(m: &Manager, snapshot: Snapshot) -> bool {
    let mut core = m.core();
    if core.ha != HaRole::Standby || snapshot.generation < core.shared.generation {
        return false;
    }
    core.shared = snapshot;
    core.last_sync = Some(Utc::now());
    // Kept on disk too: this copy may be the newest when both managers restart.
    m.persist(&core.shared);
    true
}
