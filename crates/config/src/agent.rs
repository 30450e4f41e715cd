//! `[agent]`: `tollgate agent` on this server.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tollgate_upgrade::topology::AppType;

use crate::Problem;

/// The role process an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleProcess {
    /// `tollgate engine`.
    Engine,
    /// `tollgate probe`.
    Probe,
    /// `tollgate collector`.
    Collector,
    /// `tollgate manager`.
    Manager,
    /// `tollgate serve` (every role in one process).
    Serve,
}

impl RoleProcess {
    /// Every role process.
    pub const ALL: [RoleProcess; 5] =
        [RoleProcess::Engine, RoleProcess::Probe, RoleProcess::Collector, RoleProcess::Manager, RoleProcess::Serve];

    /// The subcommand that runs it.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleProcess::Engine => "engine",
            RoleProcess::Probe => "probe",
            RoleProcess::Collector => "collector",
            RoleProcess::Manager => "manager",
            RoleProcess::Serve => "serve",
        }
    }
}

impl std::fmt::Display for RoleProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RoleProcess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RoleProcess::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not engine, probe, collector, manager or serve"))
    }
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's API (the manager calls it).
    pub listen: SocketAddr,
    /// This server's name in the topology.
    pub server: String,
    /// The application type of the bundles it accepts: manager, engine, probe, collector.
    pub app_type: AppType,
    /// The role process it runs: `engine`, `probe`, `collector`, `manager` or `serve`.
    pub role: RoleProcess,
    /// The role's configuration file.
    pub role_config: PathBuf,
    /// Where bundles, releases and backups live.
    pub dir: PathBuf,
    /// Hex ed25519 public keys whose bundle signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Bearer token the manager presents.
    pub token: String,
    /// The largest release bundle it accepts, in MiB (streamed to disk while received).
    #[serde(default = "default_max_bundle_mb")]
    pub max_bundle_mb: u64,
    /// The largest request it passes on to the role's API (e.g. a policy the manager pushes),
    /// in MiB.
    #[serde(default = "default_max_role_request_mb")]
    pub max_role_request_mb: u64,
}

/// A release bundle holds one tollgate binary (a release build is tens of MiB, an unstripped
/// debug build a few hundred).
fn default_max_bundle_mb() -> u64 {
    512
}

/// A policy file pushed by the manager (its lists travel separately).
fn default_max_role_request_mb() -> u64 {
    16
}

/// The largest value either body limit takes.
const MAX_LIMIT_MB: u64 = 4096;

impl AgentConfig {
    /// An agent with the defaults of every optional field, for building one in code; the
    /// required fields are empty (fill them with struct update syntax).
    pub fn defaults() -> AgentConfig {
        AgentConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7000)),
            server: String::new(),
            app_type: AppType::Engine,
            role: RoleProcess::Engine,
            role_config: PathBuf::new(),
            dir: PathBuf::new(),
            trusted_keys: Vec::new(),
            token: String::new(),
            max_bundle_mb: default_max_bundle_mb(),
            max_role_request_mb: default_max_role_request_mb(),
        }
    }

    /// Checks the fields; the error names every field at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut out = Vec::new();
        self.problems(&mut out);
        match out.is_empty() {
            true => Ok(()),
            false => Err(anyhow::anyhow!(out.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))),
        }
    }

    /// The problems of the fields (`agent.token`, ...). Role and application types are checked
    /// when read (they are enums).
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if self.token.len() < 16 {
            out.push(Problem::new("agent.token", "at least 16 characters"));
        }
        if self.trusted_keys.is_empty() {
            out.push(Problem::new("agent.trusted_keys", "at least one release signing key"));
        }
        if self.server.trim().is_empty() {
            out.push(Problem::new("agent.server", "must not be empty"));
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_bundle_mb) {
            out.push(Problem::new(
                "agent.max_bundle_mb",
                format!("{} is not between 1 and {MAX_LIMIT_MB}", self.max_bundle_mb),
            ));
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_role_request_mb) {
            out.push(Problem::new(
                "agent.max_role_request_mb",
                format!("{} is not between 1 and {MAX_LIMIT_MB}", self.max_role_request_mb),
            ));
        }
    }
}
