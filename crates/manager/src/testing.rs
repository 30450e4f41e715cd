//! Fixtures for in-process tests of the manager runtime and of its router (`tollgate-web`):
//! a small topology whose agents are URLs the test chooses (stubs it serves, or addresses
//! nothing listens on), and a [`Manager`] over it in a temporary state directory.

use std::path::Path;
use std::sync::Arc;

use tollgate_config::manager::{ClusterConfig, ManagerConfig, ServerConfig};
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::{AppType, HaRole, ManagerDesignation, Segment, Site};

use crate::Manager;

/// The agents' token of the fixtures (also what the mate presents).
pub const AGENT_TOKEN: &str = "agent-token-0123456789";

/// A `[manager]` for the manager `mgr-a` (its mate `mgr-b`) and one engine cluster
/// `engines` of `eng-a` (Active) and `eng-b` (Standby); `agent(hostname)` gives each server's
/// agent URL.
pub fn config(dir: &Path, mate: Option<String>, agent: impl Fn(&str) -> String) -> ManagerConfig {
    let server =
        |hostname: &str, role| ServerConfig { hostname: hostname.into(), site: None, role, agent: agent(hostname) };
    ManagerConfig {
        hostname: "mgr-a".into(),
        mate,
        starts_active: true,
        agent_token: AGENT_TOKEN.into(),
        bundles: dir.join("bundles"),
        trusted_keys: vec!["00".repeat(32)],
        policy: None,
        poll_ms: 50,
        takeover_ms: 400,
        replication_timeout_s: 5,
        max_parallel_clusters: None,
        sites: vec![Site { name: "site1".into(), primary: true }],
        segments: vec![Segment { name: "segment1".into() }],
        clusters: vec![
            ClusterConfig {
                name: "mgr".into(),
                application: AppType::Manager,
                designation: Some(ManagerDesignation::Primary),
                site: "site1".into(),
                segment: None,
                servers: vec![server("mgr-a", HaRole::Active), server("mgr-b", HaRole::Standby)],
            },
            ClusterConfig {
                name: "engines".into(),
                application: AppType::Engine,
                designation: None,
                site: "site1".into(),
                segment: Some("segment1".into()),
                servers: vec![server("eng-a", HaRole::Active), server("eng-b", HaRole::Standby)],
            },
        ],
    }
}

/// A manager (Standby until told otherwise) over `cfg`, every server on `release`, keeping its
/// state in `dir/state`, never held in forced standby.
pub fn manager(dir: &Path, cfg: ManagerConfig, release: &str) -> Arc<Manager> {
    let mut topology = cfg.topology();
    let running = Release::new(release).expect("a valid release");
    for c in &mut topology.clusters {
        for s in &mut c.servers {
            s.running_release = running.clone();
        }
    }
    Manager::new(cfg, topology, &dir.join("state"), release.to_string(), Arc::new(|| false))
        .expect("the fixture's manager starts")
}
