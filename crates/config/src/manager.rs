//! `[manager]`: the topology this manager holds (sites, segments, clusters, and each server's
//! agent), where its release bundles are, and its mate in the manager pair.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::{AppType, Cluster, HaRole, ManagerDesignation, Segment, Server, Site, Topology};

fn default_poll_ms() -> u64 {
    500
}

fn default_takeover_ms() -> u64 {
    3000
}

fn default_replication_timeout_s() -> u64 {
    120
}

/// `[manager]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// This manager's server name in the topology (a server of a manager cluster).
    pub hostname: String,
    /// The other manager of the pair (its API URL): the standby follows it and takes over when
    /// it stops answering.
    #[serde(default)]
    pub mate: Option<String>,
    /// This manager is the active one of the pair at first start.
    #[serde(default)]
    pub starts_active: bool,
    /// Bearer token of the agents (and between the two managers).
    pub agent_token: String,
    /// Directory of release bundles this manager can roll out (the seed's ISO repository).
    pub bundles: PathBuf,
    /// Hex ed25519 keys whose bundles the manager accepts.
    pub trusted_keys: Vec<String>,
    /// The policy file the manager holds; "Reapply configuration" installs it on a cluster.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// How often every agent is polled, ms (`poll_interval = "500ms"`; before config_version 2
    /// `poll_ms = 500`).
    #[serde(
        rename = "poll_interval",
        alias = "poll_ms",
        with = "crate::duration::millis",
        default = "default_poll_ms"
    )]
    pub poll_ms: u64,
    /// How long the standby waits without hearing from the active manager before it takes
    /// over, ms (`takeover_after = "3s"`; before config_version 2 `takeover_ms = 3000`).
    #[serde(
        rename = "takeover_after",
        alias = "takeover_ms",
        with = "crate::duration::millis",
        default = "default_takeover_ms"
    )]
    pub takeover_ms: u64,
    /// Longest wait for a restarted server's replication to synchronise, seconds
    /// (`replication_timeout = "2m"`; before config_version 2 `replication_timeout_s = 120`).
    #[serde(
        rename = "replication_timeout",
        alias = "replication_timeout_s",
        with = "crate::duration::secs",
        default = "default_replication_timeout_s"
    )]
    pub replication_timeout_s: u64,
    /// Most clusters upgrading at once (seed: 16).
    #[serde(default)]
    pub max_parallel_clusters: Option<usize>,
    /// Sites.
    pub sites: Vec<Site>,
    /// Segments.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Clusters.
    pub clusters: Vec<ClusterConfig>,
}

/// `[[manager.clusters]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name.
    pub name: String,
    /// manager, engine, probe or collector.
    pub application: AppType,
    /// Primary or Secondary, for manager clusters.
    #[serde(default)]
    pub designation: Option<ManagerDesignation>,
    /// The cluster's site.
    pub site: String,
    /// Its segment (non-manager clusters).
    #[serde(default)]
    pub segment: Option<String>,
    /// Its servers.
    pub servers: Vec<ServerConfig>,
}

/// `[[manager.clusters.servers]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Hostname.
    pub hostname: String,
    /// Its site (default: the cluster's).
    #[serde(default)]
    pub site: Option<String>,
    /// Its role when the cluster has no SRP pair to say (a Spare, or a single server).
    pub role: HaRole,
    /// Its agent's URL.
    pub agent: String,
}

impl ManagerConfig {
    /// Checks the fields; the error names every field at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut out = Vec::new();
        self.problems(&mut out);
        match out.is_empty() {
            true => Ok(()),
            false => Err(anyhow::anyhow!(out.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))),
        }
    }

    /// The problems of the fields and of the topology (`manager.agent_token`, ...).
    pub fn problems(&self, out: &mut Vec<crate::Problem>) {
        use crate::Problem;
        if self.agent_token.len() < 16 {
            out.push(Problem::new("manager.agent_token", "at least 16 characters"));
        }
        if self.trusted_keys.is_empty() {
            out.push(Problem::new("manager.trusted_keys", "at least one release signing key"));
        }
        if self.poll_ms == 0 || self.takeover_ms <= self.poll_ms {
            out.push(Problem::new(
                "manager.takeover_after",
                format!(
                    "must be longer than manager.poll_interval, which must be above 0 (are {} ms and {} ms)",
                    self.takeover_ms, self.poll_ms
                ),
            ));
        }
        if self.server(&self.hostname).is_none() {
            out.push(Problem::new("manager.hostname", format!("{:?} is not a server of any cluster", self.hostname)));
        }
        if let Err(errors) = self.topology().validate() {
            out.extend(errors.iter().map(|e| Problem::new("manager.clusters", format!("topology: {e}"))));
        }
    }

    /// The configured server `hostname`, with its cluster.
    pub fn server(&self, hostname: &str) -> Option<(&ClusterConfig, &ServerConfig)> {
        self.clusters.iter().find_map(|c| c.servers.iter().find(|s| s.hostname == hostname).map(|s| (c, s)))
    }

    /// Every server with its cluster.
    pub fn servers(&self) -> impl Iterator<Item = (&ClusterConfig, &ServerConfig)> {
        self.clusters.iter().flat_map(|c| c.servers.iter().map(move |s| (c, s)))
    }

    /// The topology before any agent reported: releases unknown ("0.0.0") and unreachable.
    pub fn topology(&self) -> Topology {
        let unknown = Release::new("0.0.0").expect("a valid release name");
        Topology {
            sites: self.sites.clone(),
            segments: self.segments.clone(),
            clusters: self
                .clusters
                .iter()
                .map(|c| Cluster {
                    name: c.name.clone(),
                    application: c.application,
                    designation: c.designation,
                    site: c.site.clone(),
                    segment: c.segment.clone(),
                    config_release: None,
                    servers: c
                        .servers
                        .iter()
                        .map(|s| {
                            let mut server =
                                Server::new(&s.hostname, s.site.as_deref().unwrap_or(&c.site), s.role, unknown.clone());
                            server.reachable = false;
                            server
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
