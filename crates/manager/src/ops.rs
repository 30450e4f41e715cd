//! What the manager's API offers, as plain functions of the [`Manager`]: the router in
//! `tollgate-web` extracts the request, checks the caller's role and calls one of these; a
//! refusal is an [`ErrorBody`] with its code.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use tollgate_api::agent::{self, HealthAnswer};
use tollgate_api::manager::{
    ActionRequest, Backup, BundleInfo, HaStatus, LogEntry, LogQuery, ManagerAlarms, NextAnswer, NextRequest,
    PolicyCandidate, ProcedureAnswer, ProcedureRequest, PushAnswer, PushQuery, RefusedAction, RestoreAnswer,
    ServerBackup, ServerBackups, ServerHealth, StartedAction, SyncAnswer, SystemBackup, SystemHealth,
    SystemRestoreRequest, SystemStatus, TakeOver, VersionInfo, ZombieAnswer, ZombieRequest,
};
use tollgate_api::{ErrorBody, ErrorCode};
use tollgate_upgrade::bundle::{self, TrustedKeys};
use tollgate_upgrade::director::{Action, ActionId, AuditEntry, Direction, Effect, Event, Mode, Procedure};
use tollgate_upgrade::release::Release;

use crate::{Manager, Snapshot, pair, view};

/// What an operation returns: its answer, or why it was refused.
pub type OpResult<T> = Result<T, ErrorBody>;

fn refused(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// `GET /api/v1/version`.
pub fn version(m: &Manager) -> VersionInfo {
    VersionInfo { release: m.release.clone(), role: "manager".into() }
}

/// `GET /api/v1/manager/ha`.
pub fn ha(m: &Manager) -> HaStatus {
    pair::ha_view(m)
}

/// The shared state, for the standby mate (only the active one gives it).
pub fn state_for_mate(m: &Manager) -> OpResult<Snapshot> {
    if !m.is_active() {
        return Err(refused(ErrorCode::Conflict, "this manager is the standby"));
    }
    Ok(m.core().shared.clone())
}

/// The active mate pushes its state after a change.
pub fn sync_from_mate(m: &Manager, snapshot: Snapshot) -> SyncAnswer {
    SyncAnswer { accepted: pair::accept_sync(m, snapshot) }
}

/// The active mate hands over (the manager cluster's failover step): this manager takes its
/// state, becomes active and reports the failover action's success.
pub fn take_over(m: &Arc<Manager>, t: TakeOver) -> HaStatus {
    {
        let mut core = m.core();
        core.shared = t.snapshot;
        core.last_sync = Some(Utc::now());
    }
    // The hand-over's own action is reported here; any other running action has no executor
    // in this process and is learnt from the servers' reports (become_active orphans it).
    m.launched.lock().unwrap_or_else(|e| e.into_inner()).insert(t.action);
    m.become_active(false);
    m.feed(Event::ActionSucceeded { id: ActionId(t.action), at: Utc::now() });
    pair::ha_view(m)
}

/// `GET /api/v1/upgrade/status`: the grid with the repository's bundles.
pub fn status(m: &Manager) -> SystemStatus {
    let mut s = view::status(m);
    s.bundles = list_bundles(&m.cfg.bundles);
    s
}

/// The bundles in the manager's repository.
pub fn list_bundles(dir: &Path) -> Vec<BundleInfo> {
    let mut out: Vec<BundleInfo> = bundle::bundles_in(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(p, m)| {
            Some(BundleInfo {
                file: p.file_name()?.to_string_lossy().into_owned(),
                application: m.application,
                release: m.version.as_str().to_string(),
                upgrades_from: m.upgrades_from.iter().map(|u| u.as_str().to_string()).collect(),
                max_policy_schema: m.max_policy_schema,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.release, a.application).cmp(&(&b.release, b.application)));
    out
}

/// Selects the upgrade procedure (the seed's "Current ISO"): the bundles of that release are
/// verified, then staged on every server that does not run it (a system backup is taken first
/// thing).
pub async fn select_procedure(m: &Arc<Manager>, user: String, req: ProcedureRequest) -> OpResult<ProcedureAnswer> {
    if !m.is_active() {
        return Err(refused(ErrorCode::Conflict, "this manager is the standby of its pair: use the active one"));
    }
    let procedure = match &req.release {
        None => None,
        Some(r) => {
            let release = Release::new(r).map_err(|_| refused(ErrorCode::BadRequest, format!("bad release {r:?}")))?;
            let (dir, keys) = (m.cfg.bundles.clone(), m.cfg.trusted_keys.clone());
            let verified = tokio::task::spawn_blocking(move || verify_release(&dir, &keys, &release))
                .await
                .map_err(|e| refused(ErrorCode::Internal, e.to_string()))?;
            let procedure = verified.map_err(|e| refused(ErrorCode::Invalid, e))?;
            // The poll stages it on the servers (staging::ensure).
            let (m, why) = (m.clone(), format!("pre-upgrade-system-{}", procedure.release));
            tokio::spawn(async move {
                let r = take_system_backup(&m, &why).await;
                if !r.ok {
                    tracing::warn!(result = ?r, "the system backup before the upgrade is incomplete");
                }
            });
            Some(procedure)
        }
    };
    let effects = m.feed(Event::ProcedureSelected { procedure, user, at: Utc::now() });
    match refusal(&effects) {
        Some(r) => Err(refused(ErrorCode::Conflict, r)),
        None => Ok(ProcedureAnswer { procedure: m.core().shared.director.procedure().cloned() }),
    }
}

/// Verifies every bundle of `release` in `dir`; the procedure.
pub fn verify_release(dir: &Path, keys: &[String], release: &Release) -> Result<Procedure, String> {
    let trusted = TrustedKeys::from_hex(keys).map_err(|e| format!("manager.trusted_keys: {e}"))?;
    let mut upgrades_from = None;
    let bundles = bundle::bundles_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (path, _) in bundles.into_iter().filter(|(_, m)| m.version == *release) {
        let v = bundle::verify_file(&path, &trusted, &Default::default())
            .map_err(|e| format!("{}: refused: {e}", path.display()))?;
        upgrades_from = Some(v.manifest.upgrades_from);
    }
    let Some(upgrades_from) = upgrades_from else {
        return Err(format!("no bundle of release {release} in {}", dir.display()));
    };
    Ok(Procedure { release: release.clone(), upgrades_from, label: format!("tollgate-{release}") })
}

fn refusal(effects: &[Effect]) -> Option<String> {
    effects.iter().find_map(|e| match e {
        Effect::Refused { refusal, .. } => Some(refusal.reason.clone()),
        Effect::Ignored { reason } => Some(reason.clone()),
        _ => None,
    })
}

fn started(effects: &[Effect]) -> Option<StartedAction> {
    effects.iter().find_map(|e| match e {
        Effect::Execute { id, action } => Some(StartedAction { id: id.0, action: action.to_string() }),
        _ => None,
    })
}

/// Starts an action on a cluster: the preferred one in a direction, or a named legal one.
pub fn start_action(m: &Arc<Manager>, user: String, req: ActionRequest) -> OpResult<StartedAction> {
    let action: Action = match (req.action, req.direction) {
        (Some(a), _) => a,
        (None, Some(d)) => {
            let advice = m.core().shared.director.advise(&req.cluster, d.into());
            match advice {
                Ok(a) => match (a.preferred, a.waiting, a.done) {
                    (Some(p), _, _) => p.action,
                    (None, _, true) => {
                        return Err(refused(ErrorCode::Conflict, format!("{} is done in that direction", req.cluster)));
                    }
                    (None, Some(w), _) => return Err(refused(ErrorCode::Conflict, w.reason)),
                    (None, None, _) => return Err(refused(ErrorCode::Conflict, "no action to take")),
                },
                Err(r) => return Err(refused(ErrorCode::Conflict, r.reason)),
            }
        }
        (None, None) => return Err(refused(ErrorCode::BadRequest, "give a direction or an action")),
    };
    let effects = m.feed(Event::ActionStarted { action, mode: Mode::Manual { user }, at: Utc::now() });
    match (started(&effects), refusal(&effects)) {
        (Some(s), _) => Ok(s),
        (None, Some(r)) => Err(refused(ErrorCode::Conflict, r)),
        (None, None) => Err(refused(ErrorCode::Conflict, "not started")),
    }
}

/// Starts the next action of every cluster that may move now (in the system order, within the
/// parallel limit).
pub fn start_next(m: &Arc<Manager>, user: String, req: NextRequest) -> NextAnswer {
    let direction: Direction = req.direction.into();
    let proposals = m.core().shared.director.next_actions(direction);
    let mut answer = NextAnswer::default();
    for p in proposals {
        let effects = m.feed(Event::ActionStarted {
            action: p.action.clone(),
            mode: Mode::Manual { user: user.clone() },
            at: Utc::now(),
        });
        match (started(&effects), refusal(&effects)) {
            (Some(s), _) => answer.started.push(s),
            (None, reason) => answer.refused.push(RefusedAction { action: p.label, reason }),
        }
    }
    let director = &m.core().shared.director;
    answer.done = director.topology().clusters.iter().all(|c| director.is_done(&c.name, direction));
    answer
}

/// The upgrade log (of one cluster).
pub fn log(m: &Manager, q: &LogQuery) -> Vec<LogEntry> {
    let core = m.core();
    core.shared.log.values().filter(|e| q.cluster.as_ref().is_none_or(|c| *c == e.cluster)).map(Into::into).collect()
}

/// The audit log.
pub fn audit(m: &Manager) -> Vec<AuditEntry> {
    m.core().shared.audit.clone()
}

/// The operator repaired a Zombie server.
pub fn zombie_repaired(m: &Arc<Manager>, user: String, req: ZombieRequest) -> OpResult<ZombieAnswer> {
    let effects = m.feed(Event::ZombieRepaired { hostname: req.hostname.clone(), user, at: Utc::now() });
    match refusal(&effects) {
        Some(r) => Err(refused(ErrorCode::Conflict, r)),
        None => Ok(ZombieAnswer { repaired: req.hostname }),
    }
}

/// The Director's alarms and what the servers report.
pub fn alarms(m: &Manager) -> ManagerAlarms {
    ManagerAlarms {
        active: m.alarms.active().iter().map(Into::into).collect(),
        history: m.alarms.history().iter().map(Into::into).collect(),
        servers: m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    }
}

/// Every server's syscheck (`tollgate health` system-wide).
pub async fn health(m: &Manager) -> SystemHealth {
    let mut checks = tokio::task::JoinSet::new();
    for (c, server) in m.cfg.servers() {
        let (agents, cluster, server) = (m.agents.clone(), c.name.clone(), server.clone());
        checks.spawn(async move {
            let result = agents.get::<HealthAnswer>(&server.agent, agent::HEALTH).await;
            (cluster, server.hostname, result)
        });
    }
    let mut servers: Vec<ServerHealth> = checks
        .join_all()
        .await
        .into_iter()
        .map(|(cluster, hostname, r)| match r {
            Ok(h) => ServerHealth { cluster, hostname, ok: h.ok, text: h.text, health: Some(h.health) },
            Err(e) => ServerHealth {
                text: format!("{hostname}: the agent does not answer: {e}\n"),
                cluster,
                hostname,
                ok: false,
                health: None,
            },
        })
        .collect();
    servers.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    SystemHealth { ok: servers.iter().all(|s| s.ok), servers }
}

/// Takes a system backup named after `why`: every server's backup (configuration, policies,
/// users, the record store's snapshot), and a copy of the manager's own state.
pub async fn take_system_backup(m: &Manager, why: &str) -> SystemBackup {
    let mut servers = Vec::new();
    for (_, server) in m.cfg.servers() {
        let request = agent::BackupRequest { why: Some(why.to_string()) };
        let r = m.agents.post::<_, Backup>(&server.agent, agent::BACKUP, &request).await;
        servers.push(match r {
            Ok(b) => ServerBackup { hostname: server.hostname.clone(), backup: Some(b), error: None },
            Err(e) => ServerBackup { hostname: server.hostname.clone(), backup: None, error: Some(e.message) },
        });
    }
    let own = m.backup_state(why);
    if let Err(e) = &own {
        servers.push(ServerBackup {
            hostname: m.cfg.hostname.clone(),
            backup: None,
            error: Some(format!("manager state: {e}")),
        });
    }
    let ok = servers.iter().all(|r| r.error.is_none());
    SystemBackup { ok, why: why.to_string(), manager_state: own.ok(), servers }
}

/// Restores one server's backup (its role stops, the backup's configuration and state come
/// back, the role starts).
pub async fn restore(m: &Manager, req: SystemRestoreRequest) -> OpResult<RestoreAnswer> {
    let Some((_, server)) = m.cfg.server(&req.hostname) else {
        return Err(refused(ErrorCode::NotFound, format!("{} is not in the topology", req.hostname)));
    };
    m.agents
        .post(&server.agent, agent::RESTORE, &agent::RestoreRequest { name: req.name })
        .await
        .map_err(|e| refused(ErrorCode::Upstream, format!("{}: {e}", req.hostname)))
}

/// Every server's backups.
pub async fn system_backups(m: &Manager) -> Vec<ServerBackups> {
    let mut out = Vec::new();
    for (_, server) in m.cfg.servers() {
        let backups = m.agents.get::<Vec<Backup>>(&server.agent, agent::BACKUPS).await.unwrap_or_default();
        out.push(ServerBackups { hostname: server.hostname.clone(), backups });
    }
    out
}

/// Installs a policy (TOML) on every server of the engine clusters (or of one), recorded as a
/// version (see [`crate::policies`]): refused before any server is touched when some engine's
/// release cannot read its schema (mixed-version operation), naming the servers.
pub async fn push_policy(m: &Manager, actor: &str, q: PushQuery, body: &[u8]) -> OpResult<PushAnswer> {
    let text = std::str::from_utf8(body).map_err(|_| refused(ErrorCode::BadRequest, "the policy is not UTF-8"))?;
    let candidate = PolicyCandidate {
        policy: text.to_string(),
        name: q.name,
        lists: Default::default(),
        clusters: q.cluster.into_iter().collect(),
    };
    crate::policies::push(m, actor, candidate).await
}
