//! `[agent]`: `tollgate agent` on this server.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's API (the manager calls it).
    pub listen: SocketAddr,
    /// This server's name in the topology.
    pub server: String,
    /// The application type of the bundles it accepts: manager, engine, probe, collector.
    pub app_type: String,
    /// The role process it runs: `engine`, `probe`, `collector`, `manager` or `serve`.
    pub role: String,
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
    /// Checks the fields; errors name the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.role.as_str(), "engine" | "probe" | "collector" | "manager" | "serve") {
            anyhow::bail!("agent.role: {:?} is not engine, probe, collector, manager or serve", self.role);
        }
        if !matches!(self.app_type.as_str(), "engine" | "probe" | "collector" | "manager") {
            anyhow::bail!("agent.app_type: {:?} is not engine, probe, collector or manager", self.app_type);
        }
        if self.token.len() < 16 {
            anyhow::bail!("agent.token: at least 16 characters");
        }
        if self.trusted_keys.is_empty() {
            anyhow::bail!("agent.trusted_keys: at least one release signing key");
        }
        if self.server.trim().is_empty() {
            anyhow::bail!("agent.server: must not be empty");
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_bundle_mb) {
            anyhow::bail!("agent.max_bundle_mb: {} is not between 1 and {MAX_LIMIT_MB}", self.max_bundle_mb);
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_role_request_mb) {
            anyhow::bail!(
                "agent.max_role_request_mb: {} is not between 1 and {MAX_LIMIT_MB}",
                self.max_role_request_mb
            );
        }
        Ok(())
    }
}
