//! The topology the manager holds: sites, segments, clusters and their servers, with each
//! server's release, HA role and condition, and the statuses seed 000 derives from them (§1.2.1
//! "Upgrade Status Values").
//!
//! * A cluster has one application type (manager, engine, probe, collector; the seed's CMP, MPE,
//!   MRA, Mediation) and 1 to 3 servers: Active + Standby, or georedundant Active + Standby at
//!   the cluster's site + Spare at a secondary site (seed §1.2.3: "For a non-CMP cluster, there
//!   can be 3 servers (Active, Standby, and Spare)").
//! * Manager clusters are the Primary or the Secondary one (seed: "CMP Site1 Cluster (P)",
//!   "CMP Site2 Cluster (S)"); other clusters belong to a segment (seed §1.2.3.1: "Site 1
//!   Segment 1 ... Site 2 Segment 2").
//! * A server's state ([`ServerState`]: Active, Standby, Spare, Forced Standby, OOS, Offline,
//!   Zombie) and a cluster's status ([`ClusterStatus`]: OK, Info, Minor, Major, Degraded,
//!   Critical) are computed, never stored.
//!
//! Pure data: no I/O. Serialisable (the manager stores and serves it as JSON). Alarm scopes: a
//! server's alarms are scoped by its hostname, a cluster's by its name, the system's by
//! [`SYSTEM_SCOPE`]; [`Topology::validate`] keeps those names distinct.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::release::Release;
use tollgate_alarms::{ActiveAlarm, Severity};

/// Alarm scope of system-wide conditions (70500 SYSTEM_MIXED_VERSION).
pub const SYSTEM_SCOPE: &str = "system";

/// Most servers in a cluster (Active, Standby, Spare).
pub const MAX_CLUSTER_SERVERS: usize = 3;

/// What a cluster runs (seed 000: CMP, MPE, MRA, Mediation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    /// Holds policy, configuration and topology; runs the Upgrade Director (the seed's CMP).
    Manager,
    /// Answers ENUM queries (the seed's MPE).
    Engine,
    /// Reads SIP from a tap.
    Probe,
    /// Receives and stores records (the seed's Mediation).
    Collector,
}

impl AppType {
    /// Lower-case name, as in bundle manifests and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Manager => "manager",
            AppType::Engine => "engine",
            AppType::Probe => "probe",
            AppType::Collector => "collector",
        }
    }
}

impl fmt::Display for AppType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AppType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manager" => Ok(AppType::Manager),
            "engine" => Ok(AppType::Engine),
            "probe" => Ok(AppType::Probe),
            "collector" => Ok(AppType::Collector),
            other => Err(format!("unknown application type {other:?} (manager, engine, probe, collector)")),
        }
    }
}

/// Which manager cluster (seed: "(P)" and "(S)" in Topology Settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ManagerDesignation {
    /// The Primary manager cluster: upgraded first, backed out last.
    Primary,
    /// The Secondary (disaster recovery) manager cluster.
    Secondary,
}

/// The role the cluster's HA gave a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HaRole {
    /// Serves.
    Active,
    /// Takes over when the Active fails.
    Standby,
    /// Georedundant third server, at a secondary site.
    Spare,
}

impl fmt::Display for HaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HaRole::Active => "Active",
            HaRole::Standby => "Standby",
            HaRole::Spare => "Spare",
        })
    }
}

/// A server's state: the Upgrade Manager's "Server Role" column (seed 000 §1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServerState {
    /// "The server is active."
    Active,
    /// "The server is in standby mode as part of normal operations."
    Standby,
    /// The georedundant spare, in normal operation.
    Spare,
    /// "The server is in standby mode because it has been placed into that state via direct
    /// operator intervention or as part of the upgrade."
    #[serde(rename = "Forced Standby")]
    ForcedStandby,
    /// Taken out of service by an upgrade or backout that runs on it.
    #[serde(rename = "OOS")]
    Oos,
    /// "The server cannot be reached."
    Offline,
    /// "The server is in a state where it cannot recover automatically and requires direct
    /// operator intervention."
    Zombie,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerState::Active => "Active",
            ServerState::Standby => "Standby",
            ServerState::Spare => "Spare",
            ServerState::ForcedStandby => "Forced Standby",
            ServerState::Oos => "OOS",
            ServerState::Offline => "Offline",
            ServerState::Zombie => "Zombie",
        })
    }
}

/// A cluster's status (seed 000 §1.2.1), least to most serious, in the seed table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClusterStatus {
    /// "All servers are up-to-date and no alarms are present."
    #[serde(rename = "OK")]
    Ok,
    /// "No alarms are present, but a condition (such as out-of-date) is present that the
    /// operator should be made aware of."
    Info,
    /// "At least one minor alarm is present."
    Minor,
    /// "At least one major alarm is present."
    Major,
    /// "At least one server in the cluster cannot be reached."
    Degraded,
    /// "At least one critical alarm is present."
    Critical,
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterStatus::Ok => "OK",
            ClusterStatus::Info => "Info",
            ClusterStatus::Minor => "Minor",
            ClusterStatus::Major => "Major",
            ClusterStatus::Degraded => "Degraded",
            ClusterStatus::Critical => "Critical",
        })
    }
}

/// The Upgrade Manager's "Up to Date" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpToDate {
    /// "Y": the server runs the new code.
    #[serde(rename = "Y")]
    Yes,
    /// "N": the server runs old code and must be upgraded.
    #[serde(rename = "N")]
    No,
    /// "N/A": upgrade is not appropriate and/or the server is in a bad state.
    #[serde(rename = "N/A")]
    NotApplicable,
}

impl fmt::Display for UpToDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpToDate::Yes => "Y",
            UpToDate::No => "N",
            UpToDate::NotApplicable => "N/A",
        })
    }
}

/// A site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// Name ("Site1").
    pub name: String,
    /// The primary site: upgraded first within each segment (exactly one site is primary).
    #[serde(default)]
    pub primary: bool,
}

/// A segment: a group of non-manager clusters upgraded in one maintenance window. Segments are
/// upgraded in the order the topology lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Name ("Segment 1").
    pub name: String,
}

/// A release bundle staged on a server (the seed's ISO in `/var/TKLC/upgrade`), as its agent
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StagedBundle {
    /// File name in the staging directory.
    pub file_name: String,
    /// Application type its manifest declares.
    pub application: AppType,
    /// Release its manifest declares.
    pub release: Release,
}

fn yes() -> bool {
    true
}

/// A server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Hostname (unique in the system).
    pub hostname: String,
    /// Site it stands at.
    pub site: String,
    /// Role the cluster's HA gave it.
    pub ha_role: HaRole,
    /// "Running Release".
    pub running_release: Release,
    /// "Prev Release": the release whose image is kept for a backout.
    #[serde(default)]
    pub previous_release: Option<Release>,
    /// Bundles staged for an upgrade.
    #[serde(default)]
    pub staged: Vec<StagedBundle>,
    /// The manager can reach it.
    #[serde(default = "yes")]
    pub reachable: bool,
    /// Held in standby by the Upgrade Director (it may not become Active).
    #[serde(default)]
    pub forced_standby: bool,
    /// Its state cannot be determined; no action is taken on it until support repairs it.
    #[serde(default)]
    pub zombie: bool,
    /// The Upgrade Director was promoted after a manager failover and has not heard from this
    /// server since; it takes no action on it until it does.
    #[serde(default)]
    pub awaiting_contact: bool,
    /// An upgrade or backout has taken it out of service.
    #[serde(default)]
    pub out_of_service: bool,
    /// Its agent reports an upgrade or backout running on it.
    #[serde(default)]
    pub busy: bool,
}

impl Server {
    /// A reachable server in normal operation.
    pub fn new(hostname: &str, site: &str, ha_role: HaRole, running: Release) -> Self {
        Server {
            hostname: hostname.to_string(),
            site: site.to_string(),
            ha_role,
            running_release: running,
            previous_release: None,
            staged: Vec::new(),
            reachable: true,
            forced_standby: false,
            zombie: false,
            awaiting_contact: false,
            out_of_service: false,
            busy: false,
        }
    }

    /// Its state: Zombie, else OOS (an action took it out), else Offline (unreachable), else
    /// Forced Standby, else its HA role.
    pub fn state(&self) -> ServerState {
        if self.zombie {
            ServerState::Zombie
        } else if self.out_of_service {
            ServerState::Oos
        } else if !self.reachable {
            ServerState::Offline
        } else if self.forced_standby && self.ha_role != HaRole::Active {
            ServerState::ForcedStandby
        } else {
            match self.ha_role {
                HaRole::Active => ServerState::Active,
                HaRole::Standby => ServerState::Standby,
                HaRole::Spare => ServerState::Spare,
            }
        }
    }

    /// Whether it can serve or take over now: reachable, not a zombie, not out of service, and
    /// heard from since any manager failover.
    pub fn in_service(&self) -> bool {
        self.reachable && !self.zombie && !self.out_of_service && !self.awaiting_contact
    }

    /// "Up to Date" against the release the current procedure installs.
    pub fn up_to_date(&self, target: Option<&Release>) -> UpToDate {
        match target {
            _ if self.zombie => UpToDate::NotApplicable,
            None => UpToDate::NotApplicable,
            Some(t) if *t == self.running_release => UpToDate::Yes,
            Some(_) => UpToDate::No,
        }
    }
}

/// A cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Name (unique in the system; also the alarm scope of cluster alarms).
    pub name: String,
    /// Application type.
    pub application: AppType,
    /// Primary or Secondary, for manager clusters only.
    #[serde(default)]
    pub designation: Option<ManagerDesignation>,
    /// The site of its Active and Standby servers.
    pub site: String,
    /// Segment, for non-manager clusters (none: upgraded before every segment).
    #[serde(default)]
    pub segment: Option<String>,
    /// Release whose configuration format was last applied to the cluster ("Reapply
    /// Configuration"). Non-manager clusters only: the manager cluster holds the configuration.
    #[serde(default)]
    pub config_release: Option<Release>,
    /// Its servers.
    pub servers: Vec<Server>,
}

impl Cluster {
    /// Whether it is a manager cluster.
    pub fn is_manager(&self) -> bool {
        self.application == AppType::Manager
    }

    /// The server whose HA role is Active.
    pub fn active(&self) -> Option<&Server> {
        self.servers.iter().find(|s| s.ha_role == HaRole::Active)
    }

    /// The first server with `role`.
    pub fn with_role(&self, role: HaRole) -> Option<&Server> {
        self.servers.iter().find(|s| s.ha_role == role)
    }

    /// A server by hostname.
    pub fn server(&self, hostname: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.hostname == hostname)
    }

    /// A server by hostname, to change it.
    pub fn server_mut(&mut self, hostname: &str) -> Option<&mut Server> {
        self.servers.iter_mut().find(|s| s.hostname == hostname)
    }

    /// The releases its servers run.
    pub fn releases(&self) -> BTreeSet<&Release> {
        self.servers.iter().map(|s| &s.running_release).collect()
    }

    /// Whether its servers run different releases (70501 CLUSTER_MIXED_VERSION).
    pub fn is_mixed_version(&self) -> bool {
        self.releases().len() > 1
    }

    /// Whether the configuration must be reapplied: a non-manager cluster whose Active runs
    /// another release than the one its configuration was last applied for.
    pub fn needs_reapply(&self) -> bool {
        match (self.is_manager(), self.active()) {
            (false, Some(a)) => self.config_release.as_ref() != Some(&a.running_release),
            _ => false,
        }
    }

    /// The cluster's status, from the severities of the alarms raised on it or its servers (see
    /// [`alarm_severities`]), its servers' reachability and, with a procedure selected, whether
    /// they are up to date. Order, least serious first: OK, Info, Minor, Major, Degraded,
    /// Critical; the most serious condition present wins.
    pub fn status(&self, target: Option<&Release>, alarms: impl IntoIterator<Item = Severity>) -> ClusterStatus {
        let worst_alarm = alarms.into_iter().min();
        let mut status = ClusterStatus::Ok;
        let out_of_date = self.servers.iter().any(|s| s.zombie || s.up_to_date(target) == UpToDate::No);
        if out_of_date || worst_alarm == Some(Severity::Info) {
            status = ClusterStatus::Info;
        }
        match worst_alarm {
            Some(Severity::Minor) => status = status.max(ClusterStatus::Minor),
            Some(Severity::Major) => status = status.max(ClusterStatus::Major),
            Some(Severity::Critical) => status = ClusterStatus::Critical,
            _ => {}
        }
        if self.servers.iter().any(|s| !s.reachable) {
            status = status.max(ClusterStatus::Degraded);
        }
        status
    }
}

/// The severities of `alarms` raised on `cluster` (scope: its name) or one of its servers
/// (scope: a hostname), for [`Cluster::status`].
pub fn alarm_severities<'a>(cluster: &'a Cluster, alarms: &'a [ActiveAlarm]) -> impl Iterator<Item = Severity> + 'a {
    alarms
        .iter()
        .filter(|a| a.scope == cluster.name || cluster.servers.iter().any(|s| s.hostname == a.scope))
        .map(|a| a.def.severity)
}

/// The "Alarm Severity" column: the most severe alarm raised on `hostname`.
pub fn server_alarm_severity(hostname: &str, alarms: &[ActiveAlarm]) -> Option<Severity> {
    alarms.iter().filter(|a| a.scope == hostname).map(|a| a.def.severity).min()
}

/// A fault in a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopologyError(pub String);

/// Sites, segments and clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Sites; exactly one is primary.
    pub sites: Vec<Site>,
    /// Segments, in upgrade order.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
}

impl Topology {
    /// Checks names, references, cluster sizes and roles. Every fault is reported.
    pub fn validate(&self) -> Result<(), Vec<TopologyError>> {
        let mut errors = Vec::new();
        let mut err = |m: String| errors.push(TopologyError(m));
        if self.sites.is_empty() {
            err("no site is defined".into());
        }
        let primaries = self.sites.iter().filter(|s| s.primary).count();
        if !self.sites.is_empty() && primaries != 1 {
            err(format!("exactly one site must be primary ({primaries} are)"));
        }
        let mut site_names = BTreeSet::new();
        for s in &self.sites {
            if s.name.trim().is_empty() || !site_names.insert(s.name.as_str()) {
                err(format!("site name {:?} is empty or used twice", s.name));
            }
        }
        let mut segment_names = BTreeSet::new();
        for s in &self.segments {
            if s.name.trim().is_empty() || !segment_names.insert(s.name.as_str()) {
                err(format!("segment name {:?} is empty or used twice", s.name));
            }
        }
        // Cluster names and hostnames share one namespace: both are alarm scopes.
        let mut scopes = BTreeSet::from([SYSTEM_SCOPE]);
        let mut designations = BTreeMap::new();
        for c in &self.clusters {
            if c.name.trim().is_empty() || !scopes.insert(c.name.as_str()) {
                err(format!("cluster name {:?} is empty, reserved or already used by a cluster or server", c.name));
            }
            if !site_names.contains(c.site.as_str()) {
                err(format!("cluster {}: unknown site {:?}", c.name, c.site));
            }
            match (c.is_manager(), c.designation, &c.segment) {
                (true, None, _) => err(format!("manager cluster {} must be Primary or Secondary", c.name)),
                (true, Some(d), seg) => {
                    if let Some(other) = designations.insert(d, c.name.as_str()) {
                        err(format!("manager clusters {other} and {} are both {d:?}", c.name));
                    }
                    if seg.is_some() {
                        err(format!("manager cluster {} belongs to no segment", c.name));
                    }
                }
                (false, Some(_), _) => {
                    err(format!("cluster {}: only manager clusters are Primary or Secondary", c.name))
                }
                (false, None, Some(seg)) if !segment_names.contains(seg.as_str()) => {
                    err(format!("cluster {}: unknown segment {seg:?}", c.name))
                }
                (false, None, _) => {}
            }
            if c.servers.is_empty() || c.servers.len() > MAX_CLUSTER_SERVERS {
                err(format!("cluster {} has {} servers (1 to {MAX_CLUSTER_SERVERS})", c.name, c.servers.len()));
            }
            for role in [HaRole::Active, HaRole::Standby, HaRole::Spare] {
                let n = c.servers.iter().filter(|s| s.ha_role == role).count();
                if n > 1 {
                    err(format!("cluster {} has {n} {role} servers", c.name));
                }
            }
            if c.active().is_none() && !c.servers.is_empty() {
                err(format!("cluster {} has no Active server", c.name));
            }
            for s in &c.servers {
                if s.hostname.trim().is_empty() || !scopes.insert(s.hostname.as_str()) {
                    err(format!("hostname {:?} is empty, reserved or already used by a cluster or server", s.hostname));
                }
                if !site_names.contains(s.site.as_str()) {
                    err(format!("server {}: unknown site {:?}", s.hostname, s.site));
                }
            }
        }
        if designations.contains_key(&ManagerDesignation::Secondary)
            && !designations.contains_key(&ManagerDesignation::Primary)
        {
            err("a Secondary manager cluster needs a Primary one".into());
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The primary site.
    pub fn primary_site(&self) -> Option<&Site> {
        self.sites.iter().find(|s| s.primary)
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// A cluster by name, to change it.
    pub fn cluster_mut(&mut self, name: &str) -> Option<&mut Cluster> {
        self.clusters.iter_mut().find(|c| c.name == name)
    }

    /// The manager cluster with `designation`.
    pub fn manager_cluster(&self, designation: ManagerDesignation) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.is_manager() && c.designation == Some(designation))
    }

    /// A server and its cluster, by hostname.
    pub fn find_server(&self, hostname: &str) -> Option<(&Cluster, &Server)> {
        self.clusters.iter().find_map(|c| c.server(hostname).map(|s| (c, s)))
    }

    /// A server by hostname, to change it.
    pub fn server_mut(&mut self, hostname: &str) -> Option<&mut Server> {
        self.clusters.iter_mut().find_map(|c| c.server_mut(hostname))
    }

    /// Every server.
    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.clusters.iter().flat_map(|c| c.servers.iter())
    }

    /// How many servers run each release.
    pub fn release_counts(&self) -> BTreeMap<&Release, usize> {
        let mut counts = BTreeMap::new();
        for s in self.servers() {
            *counts.entry(&s.running_release).or_insert(0) += 1;
        }
        counts
    }

    /// Whether servers of the system run different releases (70500 SYSTEM_MIXED_VERSION).
    pub fn is_mixed_version(&self) -> bool {
        self.release_counts().len() > 1
    }

    /// Position of `site` in upgrade order: the primary site first, then the others as listed.
    pub fn site_rank(&self, site: &str) -> usize {
        if self.primary_site().is_some_and(|p| p.name == site) {
            return 0;
        }
        self.sites.iter().position(|s| s.name == site).map_or(usize::MAX, |i| i + 1)
    }

    /// Position of a segment in upgrade order (no segment: before every segment).
    pub fn segment_rank(&self, segment: Option<&str>) -> usize {
        match segment {
            None => 0,
            Some(name) => self.segments.iter().position(|s| s.name == name).map_or(usize::MAX, |i| i + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_alarms::{self as alarms, ActiveAlarm};

    fn r(s: &str) -> Release {
        Release::new(s).unwrap()
    }

    fn sample() -> Topology {
        let v1 = r("0.1.0");
        let mut spare = Server::new("mpe1-c", "Site2", HaRole::Spare, v1.clone());
        spare.previous_release = Some(r("0.0.9"));
        Topology {
            sites: vec![Site { name: "Site1".into(), primary: true }, Site { name: "Site2".into(), primary: false }],
            segments: vec![Segment { name: "Segment 1".into() }],
            clusters: vec![
                Cluster {
                    name: "CMP Site1 Cluster".into(),
                    application: AppType::Manager,
                    designation: Some(ManagerDesignation::Primary),
                    site: "Site1".into(),
                    segment: None,
                    config_release: None,
                    servers: vec![
                        Server::new("cmp1-a", "Site1", HaRole::Active, v1.clone()),
                        Server::new("cmp1-b", "Site1", HaRole::Standby, v1.clone()),
                    ],
                },
                Cluster {
                    name: "mpe1".into(),
                    application: AppType::Engine,
                    designation: None,
                    site: "Site1".into(),
                    segment: Some("Segment 1".into()),
                    config_release: Some(v1.clone()),
                    servers: vec![
                        Server::new("mpe1-a", "Site1", HaRole::Active, v1.clone()),
                        Server::new("mpe1-b", "Site1", HaRole::Standby, v1),
                        spare,
                    ],
                },
            ],
        }
    }

    fn alarm(def: alarms::AlarmDef, scope: &str) -> ActiveAlarm {
        ActiveAlarm { def, scope: scope.into(), raised_at: chrono::DateTime::UNIX_EPOCH, detail: String::new() }
    }

    #[test]
    fn a_good_topology_validates_and_round_trips_through_json() {
        let t = sample();
        t.validate().unwrap();
        let json = serde_json::to_string_pretty(&t).unwrap();
        let back: Topology = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        // Defaults: a server given without its condition is reachable and in normal operation.
        let minimal = r#"{"hostname":"x","site":"Site1","ha_role":"Active","running_release":"0.1.0"}"#;
        let s: Server = serde_json::from_str(minimal).unwrap();
        assert!(s.reachable && !s.zombie && !s.forced_standby);
        assert_eq!(serde_json::to_string(&ServerState::ForcedStandby).unwrap(), "\"Forced Standby\"");
        assert_eq!(serde_json::to_string(&ClusterStatus::Ok).unwrap(), "\"OK\"");
    }

    #[test]
    fn validation_reports_every_fault() {
        let mut t = sample();
        t.sites[1].primary = true;
        t.clusters[1].servers[1].hostname = "cmp1-a".into();
        t.clusters[1].segment = Some("Segment 9".into());
        t.clusters[0].designation = None;
        t.clusters[1].servers.push(Server::new("mpe1-d", "Site3", HaRole::Standby, r("0.1.0")));
        let errors: Vec<String> = t.validate().unwrap_err().into_iter().map(|e| e.0).collect();
        let want = [
            "exactly one site must be primary",
            "hostname \"cmp1-a\"",
            "unknown segment",
            "must be Primary or Secondary",
            "has 4 servers",
            "has 2 Standby servers",
            "unknown site \"Site3\"",
        ];
        for w in want {
            assert!(errors.iter().any(|e| e.contains(w)), "missing {w:?} in {errors:#?}");
        }
    }

    #[test]
    fn server_states_follow_the_seed_table() {
        let mut s = Server::new("a", "Site1", HaRole::Standby, r("0.1.0"));
        assert_eq!(s.state(), ServerState::Standby);
        s.forced_standby = true;
        assert_eq!(s.state(), ServerState::ForcedStandby);
        s.reachable = false;
        assert_eq!(s.state(), ServerState::Offline);
        s.out_of_service = true;
        assert_eq!(s.state(), ServerState::Oos, "a server being upgraded may reboot: it shows OOS");
        s.zombie = true;
        assert_eq!(s.state(), ServerState::Zombie);
        let spare = Server::new("c", "Site2", HaRole::Spare, r("0.1.0"));
        assert_eq!(spare.state(), ServerState::Spare);
        assert_eq!(spare.up_to_date(Some(&r("0.2.0"))), UpToDate::No);
        assert_eq!(spare.up_to_date(Some(&r("0.1.0"))), UpToDate::Yes);
        assert_eq!(spare.up_to_date(None), UpToDate::NotApplicable);
    }

    #[test]
    fn cluster_status_takes_the_most_serious_condition() {
        let t = sample();
        let c = &t.clusters[1];
        let v1 = r("0.1.0");
        let v2 = r("0.2.0");
        assert_eq!(c.status(Some(&v1), []), ClusterStatus::Ok);
        assert_eq!(c.status(Some(&v2), []), ClusterStatus::Info, "out of date");
        let minor = [alarm(alarms::CLUSTER_MIXED_VERSION, "mpe1"), alarm(alarms::SPOOL_DAMAGED, "elsewhere")];
        assert_eq!(c.status(Some(&v1), alarm_severities(c, &minor)), ClusterStatus::Minor);
        let major = [alarm(alarms::HA_PATH_DOWN, "mpe1-b")];
        assert_eq!(c.status(Some(&v1), alarm_severities(c, &major)), ClusterStatus::Major);
        let mut degraded = c.clone();
        degraded.servers[2].reachable = false;
        assert_eq!(degraded.status(Some(&v1), alarm_severities(c, &major)), ClusterStatus::Degraded);
        let critical = [alarm(alarms::ZOMBIE_SERVER, "mpe1-c")];
        assert_eq!(degraded.status(Some(&v1), alarm_severities(c, &critical)), ClusterStatus::Critical);
        assert_eq!(server_alarm_severity("mpe1-c", &critical), Some(Severity::Critical));
        assert_eq!(server_alarm_severity("mpe1-a", &critical), None);
    }

    #[test]
    fn upgrade_order_ranks() {
        let t = sample();
        assert_eq!(t.site_rank("Site1"), 0);
        assert_eq!(t.site_rank("Site2"), 2);
        assert_eq!(t.segment_rank(None), 0);
        assert_eq!(t.segment_rank(Some("Segment 1")), 1);
        assert!(!t.is_mixed_version());
        assert_eq!(t.find_server("mpe1-c").map(|(c, _)| c.name.as_str()), Some("mpe1"));
        assert!(!t.clusters[1].needs_reapply());
    }
}
