//! `tollgate manager`: holds the topology, polls every server's agent, and runs the Upgrade
//! Director (crate `tollgate_upgrade::director`): it carries out the Director's actions through
//! the agents, keeps the upgrade log, the audit log and the alarms, pushes policy (refusing
//! features an engine of the cluster cannot read) and keeps its versions ([`policies`]), and
//! serves the Upgrade Manager page and API.
//!
//! What this crate owns: the manager role's runtime, HTTP-free: the [`Manager`] state, the
//! agents' client ([`agents`]), the executor of the Director's actions ([`executor`]), the pair
//! logic ([`pair`], [`pair_rules`]), the bundles' distribution ([`staging`]), what the views
//! show ([`view`]) and the operations the API offers ([`ops`]). The router and the Upgrade
//! Manager page are in `tollgate-web` (`manager_api`), the wiring in the binary
//! (`roles::manager`). It must not serve HTTP nor parse the command line.
//!
//! Two managers form a pair: the active one acts; the standby copies the active's state every
//! poll and takes over (a "manager failover": the Director waits to hear from every server
//! before acting on it) when the active stops answering and the standby still reaches other
//! servers, or when the active hands over as the "Failover to new version" step of the manager
//! cluster's own upgrade. An active that reaches neither its mate nor any other server steps
//! down; when both are active, the one that took over last keeps the role ([`pair_rules`]).

#![warn(missing_docs)]

pub mod agents;
pub mod alarm_acks;
pub mod audit;
pub mod executor;
pub mod ops;
pub mod pair;
pub mod pair_rules;
pub mod policies;
pub mod policy_diff;
pub mod staging;
pub mod testing;
pub mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tollgate_alarms::{Alarms, UPGRADE_DIRECTOR_ALARMS};
use tollgate_api::manager::RemoteAlarm;
use tollgate_upgrade::director::{Director, DirectorConfig, Effect, Event};
use tollgate_upgrade::topology::{HaRole, Topology};

pub use tollgate_api::manager::Snapshot;
pub use tollgate_config::manager::ManagerConfig;

/// Tells whether this server is held in forced standby now (the agent's flag file).
pub type HeldFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// The state one manager process keeps.
pub struct Core {
    /// Shared with the mate.
    pub shared: Snapshot,
    /// Active (acts) or Standby (follows the mate).
    pub ha: HaRole,
    /// When this manager last became Active.
    pub active_since: Option<DateTime<Utc>>,
    /// When the standby last copied the active's state.
    pub last_sync: Option<DateTime<Utc>>,
    /// The active is handing over to its mate: the pair logic waits.
    pub handing_over: bool,
}

/// A running manager.
pub struct Manager {
    /// `[manager]`.
    pub cfg: ManagerConfig,
    /// State.
    core: Mutex<Core>,
    /// Alarms the Director raised (only the active manager keeps them).
    pub alarms: Alarms,
    /// Client of the agents.
    pub agents: agents::AgentClient,
    /// This manager's release.
    pub release: String,
    /// Where the shared state is kept across restarts.
    state_file: PathBuf,
    /// Per server: the alarms its role reports (ID, name, severity), from the last poll.
    pub server_alarms: Mutex<BTreeMap<String, Vec<RemoteAlarm>>>,
    /// Per server: its role's alarm raises and clears (oldest first, as the role keeps them),
    /// from the last poll.
    pub server_alarm_history: Mutex<BTreeMap<String, Vec<tollgate_api::manager::AlarmEventView>>>,
    /// Woken when the log, the audit or an action changed: the active pushes its state to the
    /// standby at once rather than at its next poll.
    pub changed: tokio::sync::Notify,
    /// Servers a bundle is being staged on now, and when staging last failed per server.
    pub staging: Mutex<std::collections::BTreeSet<String>>,
    /// When staging last failed, per server (retried after a pause, not at every poll).
    pub staging_failed: Mutex<BTreeMap<String, std::time::Instant>>,
    /// Actions this process carries out (others, inherited from a state file or the mate, have
    /// no executor here).
    pub launched: Mutex<std::collections::BTreeSet<u64>>,
    /// When an agent of another server last answered this (active) manager's poll.
    server_contact: Mutex<Option<std::time::Instant>>,
    /// Whether the agent holds this server in forced standby.
    held: HeldFn,
    /// Held while a policy push, roll-back or uninstall runs: one at a time.
    pub(crate) policy_op: tokio::sync::Mutex<()>,
}

impl Manager {
    /// A manager in Standby with a Director built from the configured topology (or the state
    /// kept in `state_dir`, when it is for the same topology).
    pub fn new(
        cfg: ManagerConfig,
        topology: Topology,
        state_dir: &std::path::Path,
        release: String,
        held: HeldFn,
    ) -> anyhow::Result<Arc<Manager>> {
        let agents = agents::AgentClient::new(&cfg.agent_token)?;
        Manager::with_agents(cfg, topology, state_dir, release, held, agents)
    }

    /// [`Manager::new`] talking to its agents and mate through `agents` (a client speaking
    /// TLS: [`agents::AgentClient::with_tls`]).
    pub fn with_agents(
        cfg: ManagerConfig,
        topology: Topology,
        state_dir: &std::path::Path,
        release: String,
        held: HeldFn,
        agents: agents::AgentClient,
    ) -> anyhow::Result<Arc<Manager>> {
        cfg.validate()?;
        std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
        let state_file = state_dir.join("manager-state.json");
        let director_config = DirectorConfig {
            max_parallel_clusters: cfg
                .max_parallel_clusters
                .unwrap_or(tollgate_upgrade::director::DEFAULT_MAX_PARALLEL_CLUSTERS),
        };
        let fresh = || -> anyhow::Result<Snapshot> {
            let director = Director::new(topology.clone(), None, director_config)
                .map_err(|e| anyhow::anyhow!("manager topology: {e:?}"))?;
            Ok(Snapshot {
                director,
                log: BTreeMap::new(),
                audit: Vec::new(),
                alarm_acks: BTreeMap::new(),
                generation: 0,
                policies: Default::default(),
            })
        };
        let shared = match std::fs::read(&state_file) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if same_servers(&s.director, &cfg) => s,
                Ok(_) => {
                    tracing::warn!(file = %state_file.display(), "the kept state is for another topology; starting afresh");
                    fresh()?
                }
                Err(e) => {
                    // Kept aside, not overwritten: it holds the upgrade log.
                    let aside = state_file.with_extension(format!("unreadable-{}", Utc::now().format("%Y%m%dT%H%M%S")));
                    std::fs::rename(&state_file, &aside)?;
                    tracing::error!(file = %aside.display(), error = %e, "the kept state is unreadable; kept aside, starting afresh");
                    fresh()?
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh()?,
            Err(e) => anyhow::bail!("cannot read the manager state {}: {e}", state_file.display()),
        };
        let mut shared = shared;
        // The configured limit holds, also for a kept state.
        shared.director.set_config(director_config);
        Ok(Arc::new(Manager {
            agents,
            cfg,
            core: Mutex::new(Core {
                shared,
                ha: HaRole::Standby,
                active_since: None,
                last_sync: None,
                handing_over: false,
            }),
            alarms: Alarms::default(),
            release,
            state_file,
            server_alarms: Mutex::new(BTreeMap::new()),
            server_alarm_history: Mutex::new(BTreeMap::new()),
            changed: tokio::sync::Notify::new(),
            staging: Mutex::new(Default::default()),
            staging_failed: Mutex::new(BTreeMap::new()),
            launched: Mutex::new(Default::default()),
            server_contact: Mutex::new(None),
            held,
            policy_op: tokio::sync::Mutex::new(()),
        }))
    }

    /// Whether the agent holds this server in forced standby now.
    pub fn held(&self) -> bool {
        (self.held)()
    }

    /// The state, locked.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When an agent of another server last answered this manager's poll (None: not since it
    /// became active).
    pub fn last_server_contact(&self) -> Option<std::time::Instant> {
        *self.server_contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An agent of another server answered.
    pub fn touch_server_contact(&self) {
        *self.server_contact.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// Whether this manager is the active one.
    pub fn is_active(&self) -> bool {
        self.core().ha == HaRole::Active
    }

    /// Applies `event` to the Director (active manager only) and carries out its effects: log,
    /// audit and alarms at once, actions and forced-standby changes in the background. Returns
    /// the effects, so a caller can report a refusal.
    pub fn feed(self: &Arc<Self>, event: Event) -> Vec<Effect> {
        let effects = {
            let mut core = self.core();
            if core.ha != HaRole::Active {
                return vec![Effect::Ignored { reason: "this manager is the standby of its pair".into() }];
            }
            let effects = core.shared.director.apply(event);
            self.take_effects(&mut core, &effects);
            effects
        };
        self.launch(&effects);
        effects
    }

    /// Records log, audit and alarm effects; persists the state when something changed.
    fn take_effects(&self, core: &mut Core, effects: &[Effect]) {
        let mut changed = false;
        for e in effects {
            match e {
                Effect::UpgradeLog(entry) => {
                    core.shared.log.insert(entry.id, entry.clone());
                    changed = true;
                }
                Effect::Audit(a) => {
                    core.shared.audit.push(a.clone());
                    changed = true;
                }
                Effect::RaiseAlarm { def, scope, detail } => {
                    if self.alarms.raise(*def, scope, detail.clone()) {
                        tracing::warn!(alarm = def.id, name = def.name, scope, detail, "alarm raised");
                    }
                }
                Effect::ClearAlarm { def, scope } => {
                    if self.alarms.clear(*def, scope) {
                        tracing::info!(alarm = def.id, name = def.name, scope, "alarm cleared");
                    }
                }
                Effect::Execute { .. } | Effect::SetForcedStandby { .. } => changed = true,
                Effect::Refused { .. } | Effect::Ignored { .. } => {}
            }
        }
        // Reports change the topology without effects: count every applied event.
        core.shared.generation += 1;
        if changed {
            self.persist(&core.shared);
            self.changed.notify_one();
        }
    }

    /// Starts the effects that take time.
    fn launch(self: &Arc<Self>, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Execute { id, action } => {
                    self.launched.lock().unwrap_or_else(|e| e.into_inner()).insert(id.0);
                    tokio::spawn(executor::run(self.clone(), *id, action.clone()));
                }
                Effect::SetForcedStandby { hostname, on } => {
                    let Some((_, server)) = self.cfg.server(hostname) else { continue };
                    let (agents, agent, on, hostname) =
                        (self.agents.clone(), server.agent.clone(), *on, hostname.clone());
                    tokio::spawn(async move {
                        if let Err(e) = agents.set_forced_standby(&agent, on).await {
                            tracing::warn!(server = hostname, error = %e, on, "forced standby not set");
                        }
                    });
                }
                _ => {}
            }
        }
    }

    /// Copies the shared state into `<state_dir>/backups/`; the file name.
    pub fn backup_state(&self, why: &str) -> std::io::Result<String> {
        let dir = self.state_file.with_file_name("backups");
        std::fs::create_dir_all(&dir)?;
        let tag: String = tollgate_upgrade::names::file_word(why);
        let name = format!("{}-{tag}-manager-state.json", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let bytes = serde_json::to_vec(&self.core().shared).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(&name), bytes)?;
        Ok(name)
    }

    /// Writes the shared state (atomically).
    fn persist(&self, shared: &Snapshot) {
        let tmp = self.state_file.with_extension("json.tmp");
        let result = serde_json::to_vec(shared)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.state_file));
        if let Err(e) = result {
            tracing::error!(file = %self.state_file.display(), error = %e, "manager state not saved");
        }
    }

    /// Becomes the active manager: with `failover`, after the active one was lost (the
    /// Director then waits to hear from every server before acting on it).
    pub fn become_active(self: &Arc<Self>, failover: bool) {
        let effects = {
            let mut core = self.core();
            if core.ha == HaRole::Active {
                return;
            }
            core.ha = HaRole::Active;
            core.active_since = Some(Utc::now());
            // Counted from now: an isolated manager steps down after the takeover time.
            self.touch_server_contact();
            let now = Utc::now();
            let mut effects = Vec::new();
            // Actions that run without an executor in this process (inherited from the state
            // file or from the mate) are learnt from the servers' reports, as after a failover.
            let launched = self.launched.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let orphans = core.shared.director.running_actions().any(|r| !launched.contains(&r.id.0));
            if failover || orphans {
                effects.extend(core.shared.director.apply(Event::ManagerFailover { at: now }));
            }
            effects.extend(core.shared.director.resync(now));
            self.take_effects(&mut core, &effects);
            // The registry also holds what the Director had raised before (resync raised the
            // ones it still wants, with their details).
            for (id, scope) in core.shared.director.raised_alarms().clone() {
                if let Some(def) = UPGRADE_DIRECTOR_ALARMS.iter().find(|d| d.id == id) {
                    self.alarms.raise(*def, &scope, "raised before this manager became active");
                }
            }
            self.persist(&core.shared);
            effects
        };
        tracing::warn!(hostname = self.cfg.hostname, failover, "this manager is now the active one");
        self.launch(&effects);
    }

    /// Becomes the standby: stops acting; the mate's state will be copied.
    pub fn become_standby(&self) {
        let mut core = self.core();
        if core.ha != HaRole::Standby {
            tracing::warn!(hostname = self.cfg.hostname, "this manager is now the standby");
        }
        core.ha = HaRole::Standby;
        core.active_since = None;
        // The active one keeps the alarms and polls the servers now.
        for a in self.alarms.active() {
            self.alarms.clear(a.def, &a.scope);
        }
        self.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.server_alarm_history.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Whether the kept Director has exactly the configured servers.
fn same_servers(director: &Director, cfg: &ManagerConfig) -> bool {
    let kept: Vec<(&str, &str)> = director
        .topology()
        .clusters
        .iter()
        .flat_map(|c| c.servers.iter().map(move |s| (c.name.as_str(), s.hostname.as_str())))
        .collect();
    let configured: Vec<(&str, &str)> = cfg.servers().map(|(c, s)| (c.name.as_str(), s.hostname.as_str())).collect();
    kept == configured
}

/// The configured topology with what every agent reports now (its release, previous release,
/// HA role), so that a new Director starts from the servers' real releases.
pub async fn first_look(cfg: &ManagerConfig) -> anyhow::Result<Topology> {
    first_look_with(cfg, &agents::AgentClient::new(&cfg.agent_token)?).await
}

/// [`first_look`] through `agents` (a client speaking TLS).
pub async fn first_look_with(cfg: &ManagerConfig, agents: &agents::AgentClient) -> anyhow::Result<Topology> {
    let mut topology = cfg.topology();
    for (cluster, server) in cfg.servers() {
        let report = agents.report(cluster, server).await;
        let Some(s) = topology.server_mut(&server.hostname) else { continue };
        if let (true, Some(running)) = (report.reachable, report.running_release) {
            s.reachable = true;
            s.running_release = running;
            s.previous_release = report.previous_release;
            if let Some(role) = report.ha_role {
                s.ha_role = role;
            }
        }
    }
    settle_roles(&mut topology, cfg);
    Ok(topology)
}

/// A cluster whose reported HA roles do not form a valid cluster (a manager pair that has not
/// chosen its active one yet: both answer Standby) starts from its configured roles; the
/// servers' reports correct them at the first poll.
fn settle_roles(topology: &mut Topology, cfg: &ManagerConfig) {
    let invalid: Vec<String> = topology
        .clusters
        .iter()
        .filter(|c| {
            let actives = c.servers.iter().filter(|s| s.ha_role == HaRole::Active).count();
            let standbys = c.servers.iter().filter(|s| s.ha_role == HaRole::Standby).count();
            actives != 1 || standbys > 1
        })
        .map(|c| c.name.clone())
        .collect();
    for name in invalid {
        let Some(configured) = cfg.clusters.iter().find(|c| c.name == name) else { continue };
        for server in &configured.servers {
            if let Some(s) = topology.server_mut(&server.hostname) {
                s.ha_role = server.role;
            }
        }
        tracing::info!(cluster = name, "the reported HA roles are not settled yet; starting from the configured ones");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_pair_that_has_not_chosen_its_active_one_starts_from_the_configured_roles() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = testing::config(dir.path(), None, |_| "http://127.0.0.1:9".into());
        let mut topology = cfg.topology();
        for h in ["mgr-a", "mgr-b"] {
            topology.server_mut(h).unwrap().ha_role = HaRole::Standby;
        }
        // A valid cluster keeps what it reported (a switchover happened).
        topology.server_mut("eng-a").unwrap().ha_role = HaRole::Standby;
        topology.server_mut("eng-b").unwrap().ha_role = HaRole::Active;
        settle_roles(&mut topology, &cfg);
        assert_eq!(topology.server_mut("mgr-a").unwrap().ha_role, HaRole::Active);
        assert_eq!(topology.server_mut("mgr-b").unwrap().ha_role, HaRole::Standby);
        assert_eq!(topology.server_mut("eng-b").unwrap().ha_role, HaRole::Active);
        assert!(topology.validate().is_ok());
    }
}
