//! Command-line interface definition.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tollgate: per-call policy for SBCs over ENUM.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: the embedded default configuration).
    #[arg(long, short, global = true, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true, default_value = "info", env = "TOLLGATE_LOG")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process: ENUM engine and HTTP API. Installs the demo policy on
    /// first start (unless --no-demo).
    Serve(ServeArgs),
    /// Run the engine role (ENUM server and its API) without the demo policy.
    Engine(ServeArgs),
    /// Check, install, uninstall and inspect policies.
    Policy {
        /// Policy command.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Explain which rule decides a call and print the NAPTR answer an SBC would get.
    Lookup(LookupArgs),
    /// Show or check the configuration.
    Config {
        /// Config command.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Inspect the local record spool.
    Spool {
        /// Spool command.
        #[command(subcommand)]
        command: SpoolCommand,
    },
}

/// Options of `serve` and `engine`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// State directory (overrides node.state_dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Node name (overrides node.name).
    #[arg(long)]
    pub node: Option<String>,
    /// ENUM listen address for both UDP and TCP; repeat for several (overrides enum.listen_*).
    #[arg(long = "enum-listen")]
    pub enum_listen: Vec<SocketAddr>,
    /// HTTP API listen address (overrides api.listen).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Do not install the demo policy on first start.
    #[arg(long)]
    pub no_demo: bool,
}

/// Where policy commands act.
#[derive(Debug, Args, Clone, Default)]
pub struct Target {
    /// API of a running tollgate (default: from the configuration, http://127.0.0.1:8080).
    #[arg(long, conflicts_with = "state_dir")]
    pub api: Option<String>,
    /// Act on a state directory directly, for when no tollgate is running there.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Bearer token for API changes.
    #[arg(long, env = "TOLLGATE_TOKEN")]
    pub token: Option<String>,
    /// Name recorded in the history as who made the change.
    #[arg(long, default_value = "cli")]
    pub actor: String,
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and its lists; print every problem with file, line and field.
    Check {
        /// Policy file.
        file: PathBuf,
        /// Check against a running tollgate instead (its intercepts and dialing plan).
        #[command(flatten)]
        target: Target,
        /// Check locally only (default).
        #[arg(long, conflicts_with = "api")]
        local: bool,
    },
    /// Validate and install a policy; it is in force for the next query.
    Install {
        /// Policy file.
        file: PathBuf,
        /// Where to install.
        #[command(flatten)]
        target: Target,
    },
    /// Remove the installed policy; every call is then allowed.
    Uninstall {
        /// Where.
        #[command(flatten)]
        target: Target,
    },
    /// Show the installed policy.
    Show {
        /// Where.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print the policy text too.
        #[arg(long)]
        text: bool,
    },
    /// Show installs and uninstalls, oldest first.
    History {
        /// Where.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Calling number (any form the dialing plan accepts); omit for an unknown caller.
    #[arg(long)]
    pub from: Option<String>,
    /// Called number.
    #[arg(long)]
    pub to: String,
    /// Evaluate at this time (RFC 3339), default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Evaluate this policy file instead of the installed one.
    #[arg(long, conflicts_with = "api")]
    pub policy: Option<PathBuf>,
    /// Ask a running tollgate.
    #[arg(long)]
    pub api: Option<String>,
    /// Use the installed policy of this state directory (default: node.state_dir).
    #[arg(long, conflicts_with = "api")]
    pub state_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML.
    Show,
    /// Check the configuration and say what is wrong.
    Check,
    /// Print the embedded default configuration with its comments.
    Default,
}

/// Spool commands.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Print every record in the spool as JSON lines.
    Dump {
        /// Spool directory (default: from the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}
