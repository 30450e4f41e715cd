//! Which actions are legal now, and why the others are not.

use super::action::{Action, ActionKind, Direction};
use super::{Director, Refusal, RefusalKind as K};
use crate::bundle::preflight;
use crate::release::{Release, matches_any};
use crate::topology::{Cluster, HaRole, ManagerDesignation, Server, ServerState};

fn usable(s: &Server, what: &str) -> Result<(), Refusal> {
    if s.zombie {
        return Err(Refusal::new(K::Zombie, format!("{what} {} is a Zombie: support must repair it", s.hostname)));
    }
    if s.awaiting_contact {
        return Err(Refusal::new(
            K::AwaitingContact,
            format!("{what} {} has not been heard from since the manager failover; waiting for it", s.hostname),
        ));
    }
    if !s.reachable {
        return Err(Refusal::new(K::Offline, format!("{what} {} is Offline (cannot be reached)", s.hostname)));
    }
    Ok(())
}

fn server<'a>(c: &'a Cluster, action: &Action) -> Result<&'a Server, Refusal> {
    let name = action.server.as_deref().unwrap_or("");
    c.server(name).ok_or_else(|| Refusal::new(K::UnknownServer, format!("cluster {} has no server {name:?}", c.name)))
}

fn names<'a>(clusters: impl Iterator<Item = &'a Cluster>) -> String {
    clusters.map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
}

impl Director {
    /// Whether `action` may start now; if not, why.
    pub fn check(&self, action: &Action) -> Result<(), Refusal> {
        let Some(procedure) = &self.procedure else {
            return Err(Refusal::new(K::NoProcedure, "no upgrade procedure is selected (Current ISO)"));
        };
        let t = &procedure.release;
        let c = self
            .topology
            .cluster(&action.cluster)
            .ok_or_else(|| Refusal::new(K::UnknownCluster, format!("no cluster {:?}", action.cluster)))?;
        if let Some(r) = self.running.get(&c.name) {
            return Err(Refusal::new(
                K::ActionInProgress,
                format!("{} ({}) is in progress in {}: wait for it to finish", r.action, r.id, c.name),
            ));
        }
        match action.kind {
            ActionKind::InitiateUpgrade => {
                let s = server(c, action)?;
                usable(s, "server")?;
                if s.running_release == *t {
                    return Err(Refusal::new(K::NotApplicable, format!("{} already runs {t}", s.hostname)));
                }
                if !matches_any(&procedure.upgrades_from, &s.running_release) {
                    let paths: Vec<&str> = procedure.upgrades_from.iter().map(|p| p.as_str()).collect();
                    return Err(Refusal::new(
                        K::UnsupportedUpgradePath,
                        format!(
                            "{t} does not upgrade from {} (upgrade paths: {})",
                            s.running_release,
                            paths.join(", ")
                        ),
                    ));
                }
                if let Err(e) = preflight(c.application, &s.staged, Some(t)) {
                    return Err(Refusal::new(K::PreflightWouldFail, format!("{}: {e}", s.hostname)));
                }
                self.keeps_service(c, s)?;
            }
            ActionKind::InitiateBackout => {
                let s = server(c, action)?;
                usable(s, "server")?;
                if s.running_release != *t {
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!("{} runs {}, not {t}: there is nothing to back out", s.hostname, s.running_release),
                    ));
                }
                if s.previous_release.as_ref().is_none_or(|p| p == t) {
                    return Err(Refusal::new(
                        K::NoPreviousRelease,
                        format!("{} keeps no pre-upgrade image to back out to", s.hostname),
                    ));
                }
                self.keeps_service(c, s)?;
            }
            ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion => {
                let to = server(c, action)?;
                let active = c
                    .active()
                    .ok_or_else(|| Refusal::new(K::WouldStopService, format!("{} has no Active server", c.name)))?;
                if to.hostname == active.hostname {
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!("{} is already the Active server", to.hostname),
                    ));
                }
                usable(active, "the Active server")?;
                usable(to, "server")?;
                let new = action.kind == ActionKind::FailoverToNewVersion;
                if (active.running_release == *t) == new {
                    let runs = if new { "already runs" } else { "does not run" };
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!("the Active server {} {runs} {t}", active.hostname),
                    ));
                }
                if (to.running_release == *t) != new {
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!(
                            "{} runs {}: failing over to it would not move {} {} {t}",
                            to.hostname,
                            to.running_release,
                            c.name,
                            if new { "to" } else { "off" }
                        ),
                    ));
                }
            }
            ActionKind::ReapplyConfiguration => {
                if c.is_manager() {
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!("{} is a manager cluster: it holds the configuration", c.name),
                    ));
                }
                let active = c
                    .active()
                    .ok_or_else(|| Refusal::new(K::WouldStopService, format!("{} has no Active server", c.name)))?;
                usable(active, "the Active server")?;
                if !c.needs_reapply() {
                    return Err(Refusal::new(
                        K::NotApplicable,
                        format!("the configuration of {} is already applied for {}", c.name, active.running_release),
                    ));
                }
            }
        }
        self.order_rule(c, action.kind, t)?;
        self.parallel_rule(c)
    }

    /// A server action must leave a serving server: not on the Active (unless the cluster has no
    /// other server), and only while the Active is in service.
    fn keeps_service(&self, c: &Cluster, s: &Server) -> Result<(), Refusal> {
        if c.servers.len() == 1 {
            return Ok(());
        }
        if s.ha_role == HaRole::Active {
            return Err(Refusal::new(
                K::WouldStopService,
                format!("{} is the Active server of {}: fail over first", s.hostname, c.name),
            ));
        }
        match c.active() {
            None => Err(Refusal::new(K::WouldStopService, format!("{} has no Active server", c.name))),
            Some(a) if !a.in_service() => Err(Refusal::new(
                K::WouldStopService,
                format!(
                    "the Active server {} is {}: taking {} out of service too would stop {}",
                    a.hostname,
                    if a.state() == ServerState::Active { "not heard from" } else { state_word(a) },
                    s.hostname,
                    c.name
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Manager clusters lead: the Primary, then the Secondary, then the others; back out in
    /// reverse.
    fn order_rule(&self, c: &Cluster, kind: ActionKind, t: &Release) -> Result<(), Refusal> {
        let clusters = &self.topology.clusters;
        let any_on = |x: &Cluster| x.servers.iter().any(|s| s.running_release == *t);
        let all_on = |x: &Cluster| x.servers.iter().all(|s| s.running_release == *t);
        match kind.direction() {
            Some(Direction::Upgrade) => {
                if !c.is_manager() {
                    let behind: Vec<&Cluster> = clusters.iter().filter(|x| x.is_manager() && !all_on(x)).collect();
                    if !behind.is_empty() {
                        return Err(Refusal::new(
                            K::UpgradeOrder,
                            format!(
                                "manager clusters are upgraded first: {} not completely on {t}",
                                names(behind.into_iter())
                            ),
                        ));
                    }
                }
                if c.designation == Some(ManagerDesignation::Secondary)
                    && let Some(p) = self.topology.manager_cluster(ManagerDesignation::Primary).filter(|p| !all_on(p))
                {
                    return Err(Refusal::new(
                        K::UpgradeOrder,
                        format!("the Primary manager cluster {} is upgraded first", p.name),
                    ));
                }
            }
            Some(Direction::Backout) => {
                if c.is_manager() {
                    let ahead: Vec<&Cluster> = clusters.iter().filter(|x| !x.is_manager() && any_on(x)).collect();
                    if !ahead.is_empty() {
                        return Err(Refusal::new(
                            K::UpgradeOrder,
                            format!(
                                "non-manager clusters are backed out first: {} still run {t}",
                                names(ahead.into_iter())
                            ),
                        ));
                    }
                }
                if c.designation == Some(ManagerDesignation::Primary)
                    && let Some(s) = self.topology.manager_cluster(ManagerDesignation::Secondary).filter(|s| any_on(s))
                {
                    return Err(Refusal::new(
                        K::UpgradeOrder,
                        format!("the Secondary manager cluster {} is backed out first", s.name),
                    ));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Starting work on a settled cluster needs a free slot.
    fn parallel_rule(&self, c: &Cluster) -> Result<(), Refusal> {
        if self.in_progress(c) {
            return Ok(());
        }
        let busy = self.clusters_in_progress();
        let max = self.config.max_parallel_clusters.max(1);
        if busy.len() >= max {
            return Err(Refusal::new(
                K::ParallelLimit,
                format!("{} clusters are in progress (limit {max}): {}", busy.len(), busy.join(", ")),
            ));
        }
        Ok(())
    }

    /// Whether a cluster is in progress: an action runs, its servers run different releases, or
    /// its configuration must be reapplied.
    pub fn in_progress(&self, c: &Cluster) -> bool {
        self.running.contains_key(&c.name) || c.is_mixed_version() || c.needs_reapply()
    }

    /// The clusters in progress, in topology order.
    pub fn clusters_in_progress(&self) -> Vec<&str> {
        self.topology.clusters.iter().filter(|c| self.in_progress(c)).map(|c| c.name.as_str()).collect()
    }
}

fn state_word(s: &Server) -> &'static str {
    match s.state() {
        ServerState::Zombie => "a Zombie",
        ServerState::Oos => "out of service",
        ServerState::Offline => "Offline",
        _ => "not in service",
    }
}
