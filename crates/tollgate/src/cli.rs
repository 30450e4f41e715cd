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
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); default: `[log]
    /// level` of the configuration, else info.
    #[arg(long, global = true, env = "TOLLGATE_LOG")]
    pub log: Option<String>,
    /// Log format on standard error: text (coloured only on a terminal, never with NO_COLOR)
    /// or json (one object per line: timestamp, level, target, message, the event's fields);
    /// default: `[log] format` of the configuration, else text.
    #[arg(long, global = true, env = "TOLLGATE_LOG_FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<tollgate_config::log::LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`: text or json.
fn parse_log_format(s: &str) -> Result<tollgate_config::log::LogFormat, String> {
    s.parse()
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process: ENUM engine, collector, web UI and API. Installs the demo
    /// policy on first start (unless --no-demo).
    Serve(ServeArgs),
    /// Run the engine role (ENUM server and its API); records are shipped to `[shipper]
    /// collector`.
    Engine(EngineArgs),
    /// Run the collector role (record store, analytics) with the web UI and API.
    Collector(RoleArgs),
    /// Run the SIP probe: with --pcap, report the calls in a capture file; otherwise run the
    /// probe role on the live sources of `[probe]` and ship call records to the collector.
    Probe(ProbeArgs),
    /// Show an Analytics view (from a running collector).
    Analytics(AnalyticsArgs),
    /// Manage web UI users (in the state directory; a running server applies changes on its
    /// next request: a removed user's sessions are dead, a new role applies at once).
    User {
        /// User command.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens (in the state directory).
    Token {
        /// Token command.
        #[command(subcommand)]
        command: TokenCommand,
    },
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
    /// Run the agent of this server (`[agent]`): keeps the role process running from the
    /// release in force and carries out the manager's upgrade actions. With a command, asks
    /// the running agent of this server instead.
    Agent {
        /// What to ask the running agent (none: run the agent).
        #[command(subcommand)]
        command: Option<AgentCommand>,
    },
    /// Run the manager (`[manager]`): topology, Upgrade Director, alarms, the Upgrade Manager
    /// page and API.
    Manager,
    /// The Upgrade Manager from the command line: status, start, continue, rollback, log.
    Upgrade {
        /// Upgrade command.
        #[command(subcommand)]
        command: UpgradeCommand,
    },
    /// Health checks (disk, hardware, processes, network, replication, alarms, upgrade): every
    /// server through the manager, or this server through its agent.
    Health(HealthArgs),
    /// Server and system backups through the manager: take, list, restore.
    Backup {
        /// Backup command.
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Policy on the engine clusters through the manager: versions, preview, push, roll back,
    /// uninstall.
    ClusterPolicy {
        /// Cluster policy command.
        #[command(subcommand)]
        command: ClusterPolicyCommand,
    },
    /// A whole topology on 127.0.0.x for demos and tests: a manager pair, two engine clusters
    /// of 2+1, a probe pair and a collector, with two signed releases.
    Lab {
        /// Lab command.
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Release bundles: signing keys, building, verifying.
    Release {
        /// Release command.
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// SRP active/standby pairs: show the pair's state, switch over, audit, NACK control.
    Srp {
        /// SRP command.
        #[command(subcommand)]
        command: SrpCommand,
    },
    /// Inspect the local record spool.
    Spool {
        /// Spool command.
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// The built-in CA: make it (`init`), issue a certificate per server (`issue`), read
    /// certificates (`show`).
    Pki {
        /// PKI command.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Files made from this binary for packages: man pages, shell completions, the packaged
    /// configuration (packaging/build-deb.sh runs it; hidden from help).
    #[command(hide = true)]
    Generate {
        /// What to generate.
        #[command(subcommand)]
        command: GenerateCommand,
    },
}

/// `tollgate generate ...`: what a package is built from.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write the man pages (tollgate.1 and one per subcommand, tollgate-serve.1 ...) into DIR.
    Man {
        /// Directory (created if missing).
        dir: PathBuf,
    },
    /// Write the shell completions into DIR: tollgate.bash, _tollgate (zsh), tollgate.fish.
    Completions {
        /// Directory (created if missing).
        dir: PathBuf,
    },
    /// Print the commented default configuration as a package installs it: the same text as
    /// `tollgate config default`, with node.state_dir set to --state-dir.
    Config {
        /// The state directory of the installed server.
        #[arg(long, default_value = "/var/lib/tollgate")]
        state_dir: PathBuf,
    },
    /// Append realistic ENUM records to a spool directory, for benchmarks (bench/ingest.sh):
    /// COUNT queries over the 24 hours before --end from 4 engines, callers log-uniform over
    /// 100,000 numbers, called numbers over 50,000. The same seed, count and end make the same
    /// records; --part I/P writes only the I-th of P contiguous slices of them.
    Records {
        /// Records of the whole set.
        #[arg(long)]
        count: u64,
        /// The spool directory (created if missing; no process may have it open).
        #[arg(long)]
        spool: PathBuf,
        /// Write only this slice of the whole set: I/P, the I-th of P (e.g. 1/2).
        #[arg(long, default_value = "1/1", value_parser = crate::cmd::generate::records::parse_part)]
        part: (u64, u64),
        /// Seed of the numbers and of the ids.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// End of the 24 hours the records cover (RFC 3339); default: now, to the minute.
        #[arg(long)]
        end: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// `tollgate pki ...`: the built-in CA (keys 0600; a CA is never overwritten).
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make the CA: `ca.key` (0600) and `ca.crt` in --dir. Refuses if a CA is there.
    Init {
        /// The CA directory.
        #[arg(long, default_value = tollgate_tls::pki::DEFAULT_PKI_DIR)]
        dir: PathBuf,
        /// The CA's name (its certificate's common name).
        #[arg(long, default_value = "tollgate CA")]
        name: String,
        /// How long the CA is valid (`10years`, `5y`, `3650days`).
        #[arg(long, default_value = "10years", value_parser = parse_validity)]
        validity: std::time::Duration,
    },
    /// Issue a server (or operator) certificate signed by the CA of --dir, written as
    /// `<host>.crt` and `<host>.key` (0600) in --out-dir.
    Issue {
        /// The role the certificate names: engine, collector, probe, manager or operator.
        #[arg(long, value_parser = parse_role)]
        role: tollgate_tls::Role,
        /// The server's host name (the certificate's common name and a DNS name).
        #[arg(long)]
        host: String,
        /// An IP address the server is reached at; repeat for several.
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
        /// Another DNS name the server is reached at; repeat for several.
        #[arg(long)]
        dns: Vec<String>,
        /// How long the certificate is valid (`1year`, `90days`).
        #[arg(long, default_value = "1year", value_parser = parse_validity)]
        validity: std::time::Duration,
        /// The CA directory.
        #[arg(long, default_value = tollgate_tls::pki::DEFAULT_PKI_DIR)]
        dir: PathBuf,
        /// Where to write the certificate and key (default: --dir).
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Replace an existing certificate and key of this host (rotation).
        #[arg(long)]
        force: bool,
    },
    /// Describe certificates: subject, role, host, names, addresses, issuer, validity, days
    /// left, fingerprint. Default: the CA of --dir (or `[tls] ca`) and `[tls] cert`.
    Show {
        /// PEM certificate files.
        files: Vec<PathBuf>,
        /// The CA directory, when no file is given and `[tls] ca` is not set.
        #[arg(long, default_value = tollgate_tls::pki::DEFAULT_PKI_DIR)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A validity on the command line: a humantime duration (`10years`, `90days`, `1y 6months`).
fn parse_validity(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); write e.g. 1year, 90days, 10years"))?;
    if d.as_secs() < 3600 {
        return Err(format!("'{s}' is too short: a certificate is valid for an hour at least"));
    }
    Ok(d)
}

/// A role on the command line, the error listing the roles.
fn parse_role(s: &str) -> Result<tollgate_tls::Role, String> {
    s.parse().map_err(|e: tollgate_tls::UnknownRole| e.to_string())
}

/// Options of every long-running role (`serve`, `engine`, `collector`, `probe`).
#[derive(Debug, Args, Clone, Default)]
pub struct RoleArgs {
    /// State directory (overrides node.state_dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Node name (overrides node.name).
    #[arg(long)]
    pub node: Option<String>,
    /// HTTP API listen address (overrides api.listen).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
}

/// Options of `engine`.
#[derive(Debug, Args, Clone, Default)]
pub struct EngineArgs {
    /// Options of every role.
    #[command(flatten)]
    pub role: RoleArgs,
    /// ENUM listen address for both UDP and TCP; repeat for several (overrides enum.listen_*).
    #[arg(long = "enum-listen")]
    pub enum_listen: Vec<SocketAddr>,
}

/// Options of `serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Options of every role and the engine's.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Do not install the demo policy on first start.
    #[arg(long)]
    pub no_demo: bool,
}

/// Options of `probe`.
#[derive(Debug, Args, Clone, Default)]
pub struct ProbeArgs {
    /// Read these pcap or pcapng files instead of live sources, print their calls and exit.
    /// Each is a file, a directory (its capture files) or a glob (quoted: 'cap.pcap*'); all
    /// are read as one capture in time order (by each file's first packet; files that overlap
    /// in time are merged packet by packet), so calls span rotated files (tcpdump -C/-G,
    /// dumpcap -b). Files compressed with gzip (tcpdump -z gzip) are read decompressed.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub pcap: Vec<PathBuf>,
    /// With --pcap: print CSV (one row per call, in the order calls end).
    #[arg(long, requires = "pcap", conflicts_with = "json")]
    pub csv: bool,
    /// With --pcap: print JSON (calls in the order they end, and totals).
    #[arg(long, requires = "pcap")]
    pub json: bool,
    /// With --pcap: print only the totals, no row per call (with --json: the totals as JSON).
    #[arg(long, requires = "pcap", conflicts_with = "csv")]
    pub totals: bool,
    /// With --pcap: also store the calls as records and ship them to the collector. Calls
    /// still open at the end of the capture are not stored (see --finalize).
    #[arg(long, requires = "pcap")]
    pub ship: bool,
    /// With --pcap: close the calls still open at the end of the capture there, with their
    /// disposition so far (an unanswered call is no_answer), and count and store them as
    /// finished. Without it they are reported as `open` and not stored.
    #[arg(long, requires = "pcap")]
    pub finalize: bool,
    /// With --pcap: print only this call's SIP messages, as a ladder (with --json: the
    /// messages), and its record.
    #[arg(long, value_name = "CALL-ID", requires = "pcap", conflicts_with_all = ["csv", "totals", "ship", "finalize"])]
    pub call: Option<String>,
    /// Device name the calls are counted under (overrides probe.device).
    #[arg(long)]
    pub device: Option<String>,
    /// Live: receive mirrored SIP datagrams on this UDP address; repeat for several. Any
    /// --listen, --hep or --interface replaces the sources of `[probe]`.
    #[arg(long, conflicts_with = "pcap")]
    pub listen: Vec<SocketAddr>,
    /// Live: receive HEP v2/v3 on this address, UDP and TCP; repeat for several.
    #[arg(long, conflicts_with = "pcap")]
    pub hep: Vec<SocketAddr>,
    /// Live: capture SIP from this network interface through libpcap (a tollgate built with
    /// the `live-capture` feature; root or CAP_NET_RAW). Overrides probe.interface.
    #[arg(long, conflicts_with = "pcap")]
    pub interface: Option<String>,
    /// Live: BPF filter of the interface capture, in tcpdump's syntax, e.g. 'udp port 5060'
    /// (overrides probe.filter).
    #[arg(long, conflicts_with = "pcap")]
    pub filter: Option<String>,
    /// Live: seconds between rolling summary lines on stdout (0: none).
    #[arg(long, default_value_t = 10, conflicts_with = "pcap")]
    pub summary_secs: u64,
    /// Role options for live running.
    #[command(flatten)]
    pub role: RoleArgs,
}

/// `tollgate agent ...`: the running agent of this server (its `[agent]` listen and token),
/// for when no manager is there to ask.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Release, version, role process, staged bundles, forced standby.
    Status,
    /// forced-standby on|off: hold this server out of service (its role takes over from
    /// nobody), or release it; the Upgrade Director normally does this.
    ForcedStandby {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
}

/// `tollgate srp ...`: commands of an SRP pair, against a running engine's API.
#[derive(Debug, Subcommand)]
pub enum SrpCommand {
    /// show srp info | statistics | checkpoint-statistics | checkpoint-info | monitor |
    /// call-loss-statistics | audit-statistics | velocity | concurrent
    Show {
        /// What to show: info, statistics, checkpoint-statistics, checkpoint-info, monitor,
        /// call-loss-statistics, audit-statistics, velocity, concurrent (words may be
        /// separated by spaces: `checkpoint statistics`).
        #[arg(required = true)]
        what: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp validate-switchover: is the standby ready for a planned switchover?
    ValidateSwitchover {
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp initiate-switchover: the Active hands over to the Standby.
    InitiateSwitchover {
        /// Even when the standby is not synchronised.
        #[arg(long)]
        force: bool,
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp initiate-audit: compare the standby's copy of the sessions with the active's.
    InitiateAudit {
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp forced-standby on|off: hold this chassis out of service (it takes over from nobody,
    /// and refuses switchovers), or release it. The Upgrade Director sets it during upgrades.
    ForcedStandby {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp disable nack micro-chkpt-cmd N
    Disable {
        /// `nack micro-chkpt-cmd N`.
        #[arg(num_args = 3, value_names = ["nack", "micro-chkpt-cmd", "N"])]
        words: Vec<String>,
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp enable nack micro-chkpt-cmd N
    Enable {
        /// `nack micro-chkpt-cmd N`.
        #[arg(num_args = 3, value_names = ["nack", "micro-chkpt-cmd", "N"])]
        words: Vec<String>,
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
    /// srp validate-configuration: this chassis' [srp] and its agreement with the mate's.
    ValidateConfiguration {
        /// Which engine.
        #[command(flatten)]
        target: Target,
    },
}

/// `tollgate upgrade ...`.
#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Every cluster and server: releases, roles, the operation in progress.
    Status {
        /// Print the manager's JSON.
        #[arg(long)]
        json: bool,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Select the release to roll out (the Current bundle); it is staged on the servers.
    Select {
        /// The release (a bundle of it must be in the manager's bundle directory).
        release: String,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Start upgrading: the next preferred action of a cluster, or of every cluster that may
    /// move now.
    Start(StepArgs),
    /// Continue upgrading (the same as start: the next preferred action).
    Continue(StepArgs),
    /// Back out: the next preferred backout action.
    Rollback(StepArgs),
    /// The audit log of operator actions (who started, selected, repaired what).
    Audit {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// The upgrade log.
    Log {
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
}

/// Options of `upgrade start | continue | rollback`.
#[derive(Debug, Args, Clone)]
pub struct StepArgs {
    /// The cluster (default: every cluster that may move now, in the system's order).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Keep taking the next preferred action until done (the cluster, or the whole system).
    #[arg(long)]
    pub all: bool,
    /// Return once started, without waiting for the action to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// Which manager.
    #[command(flatten)]
    pub target: Target,
}

/// `tollgate backup ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up every server (configuration, policies, users, the record store's snapshot) and
    /// the manager's state.
    System {
        /// Goes into the backups' names.
        #[arg(long, default_value = "manual")]
        why: String,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Every server's backups.
    List {
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Restore one server's backup (its role restarts).
    Restore {
        /// The server.
        #[arg(long)]
        server: String,
        /// The backup's file name (from `backup list`).
        name: String,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
}

/// A policy file for the manager, with its lists and target clusters.
#[derive(Debug, Args, Clone)]
pub struct ClusterPolicyFile {
    /// Policy file; the lists its `[lists]` declares are read relative to it.
    pub file: PathBuf,
    /// A list's file instead of the one the policy declares: NAME=FILE (repeatable).
    #[arg(long = "list", value_name = "NAME=FILE")]
    pub lists: Vec<String>,
    /// Only this engine cluster (repeatable; default: every engine cluster).
    #[arg(long = "cluster")]
    pub clusters: Vec<String>,
}

/// `cluster-policy` commands.
#[derive(Debug, Subcommand)]
pub enum ClusterPolicyCommand {
    /// Every version the manager pushed, newest first, with each cluster's result.
    Versions {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// One version's policy text.
    Show {
        /// The version number.
        version: u64,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// What a policy would change on each engine cluster (rules and list entries), whether an
    /// engine finds it valid, and whether a push would be refused (mixed versions).
    Preview {
        /// The policy.
        #[command(flatten)]
        policy: ClusterPolicyFile,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Install a policy on the engine clusters (recorded as a version).
    Push {
        /// The policy.
        #[command(flatten)]
        policy: ClusterPolicyFile,
        /// The person making the change, recorded next to the token's name.
        #[arg(long)]
        actor: Option<String>,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Install an earlier version again, in one step.
    Rollback {
        /// The version to go back to.
        version: u64,
        /// Only this engine cluster (repeatable; default: the ones that version went to).
        #[arg(long = "cluster")]
        clusters: Vec<String>,
        /// The person making the change.
        #[arg(long)]
        actor: Option<String>,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
    /// Remove the policy from the engine clusters named: every call is allowed there.
    Uninstall {
        /// An engine cluster (repeatable, at least one).
        #[arg(long = "cluster", required = true)]
        clusters: Vec<String>,
        /// The confirmation the manager asks for: "every call is allowed".
        #[arg(long)]
        confirm: Option<String>,
        /// The person making the change.
        #[arg(long)]
        actor: Option<String>,
        /// Which manager.
        #[command(flatten)]
        target: Target,
    },
}

/// Options of `health`.
#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Ask this server's agent (`[agent]` of the configuration) instead of the manager.
    #[arg(long)]
    pub local: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Which manager.
    #[command(flatten)]
    pub target: Target,
}

/// `tollgate lab ...`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the two releases and start the topology; prints the manager's URL and token, the
    /// engines' ENUM addresses and the probe pair's HEP address (127.0.<net>.30:9060, taken
    /// by the Standby probe when the Active dies).
    Up {
        /// Lab directory (configurations, releases, state, logs).
        #[arg(long, default_value = "/tmp/tollgate-lab")]
        dir: PathBuf,
        /// Servers listen on 127.0.<net>.x.
        #[arg(long, default_value_t = 77)]
        net: u8,
        /// The engines' ENUM port (53 needs root; an SBC's resolver asks port 53).
        #[arg(long, default_value_t = 53)]
        enum_port: u16,
    },
    /// Stop every process of the lab.
    Down {
        /// Lab directory.
        #[arg(long, default_value = "/tmp/tollgate-lab")]
        dir: PathBuf,
    },
}

/// `tollgate release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Make an ed25519 signing key; prints the public key for `[agent] trusted_keys`.
    Keygen {
        /// Where to write the private key (hex seed, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build a signed bundle holding this tollgate binary.
    Build {
        /// The signing key file.
        #[arg(long)]
        key: PathBuf,
        /// manager, engine, probe or collector.
        #[arg(long)]
        application: String,
        /// The release it installs.
        #[arg(long)]
        version: String,
        /// Releases it upgrades from (`0.1.x`, `*`); repeat for several.
        #[arg(long = "upgrades-from", default_value = "*")]
        upgrades_from: Vec<String>,
        /// The newest policy schema the release reads (an older release's capability).
        #[arg(long)]
        max_policy_schema: Option<i64>,
        /// The binary to ship (default: this tollgate binary).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle's signature and digests.
    Verify {
        /// The bundle.
        file: PathBuf,
        /// A trusted public key (hex); repeat for several.
        #[arg(long = "trusted-key", required = true)]
        trusted_keys: Vec<String>,
    },
}

/// Which running tollgate a command asks.
#[derive(Debug, Args, Clone, Default)]
pub struct Target {
    /// API of a running tollgate (default: from the configuration, http://127.0.0.1:8080).
    #[arg(long)]
    pub api: Option<String>,
    /// Bearer token (default: this server's CLI token, <state_dir>/cli-token).
    #[arg(long, env = "TOLLGATE_TOKEN")]
    pub token: Option<String>,
}

/// Where policy commands act: a running tollgate, or a state directory.
#[derive(Debug, Args, Clone, Default)]
pub struct PolicyTarget {
    /// API of a running tollgate (default: from the configuration, http://127.0.0.1:8080).
    #[arg(long, conflicts_with = "state_dir")]
    pub api: Option<String>,
    /// Act on a state directory directly, for when no tollgate is running there.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Bearer token (default: this server's CLI token, <state_dir>/cli-token).
    #[arg(long, env = "TOLLGATE_TOKEN")]
    pub token: Option<String>,
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and its lists; print every problem with file, line and field.
    Check {
        /// Policy file.
        file: PathBuf,
        /// Check against a running tollgate instead (its intercepts and dialing plan; only with
        /// --api).
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
        target: PolicyTarget,
        /// The person making the change, recorded in the history next to the token's name.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Remove the installed policy; every call is then allowed.
    Uninstall {
        /// Where.
        #[command(flatten)]
        target: PolicyTarget,
        /// The person making the change, recorded in the history next to the token's name.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Show the installed policy.
    Show {
        /// Where.
        #[command(flatten)]
        target: PolicyTarget,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print the policy text too.
        #[arg(long)]
        text: bool,
    },
    /// Port a policy file to the newest schema (keeping comments and layout) and report every
    /// change; prints the new file unless --write.
    Migrate {
        /// Policy file.
        file: PathBuf,
        /// Rewrite the file in place (the original is kept as FILE.schemaN.bak).
        #[arg(long)]
        write: bool,
    },
    /// Show installs and uninstalls, oldest first.
    History {
        /// Where.
        #[command(flatten)]
        target: PolicyTarget,
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
    /// Evaluate at this time (RFC 3339), default now (not with --api: a server decides now).
    #[arg(long, conflicts_with = "api")]
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

/// Options of `analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// ENUM or SIP.
    #[arg(long, default_value = "ENUM")]
    pub dataset: String,
    /// Average CPS, Top 10 Source, Top 10 Destination, Actions by Rule, Calls by Disposition.
    #[arg(long, default_value = "Average CPS")]
    pub view: String,
    /// Minute, Hour or Day.
    #[arg(long, default_value = "Hour")]
    pub grouping: String,
    /// One device, or All.
    #[arg(long, default_value = "All")]
    pub device: String,
    /// Start (RFC 3339 or YYYY-MM-DDTHH:MM, UTC); default: 24 hours before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End; default: the end of the current hour.
    #[arg(long)]
    pub to: Option<String>,
    /// API of the collector (default: from the configuration).
    #[arg(long)]
    pub api: Option<String>,
    /// Bearer token (default: the local CLI token).
    #[arg(long, env = "TOLLGATE_TOKEN")]
    pub token: Option<String>,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users.
    List {
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Add a user or change its role and password (setting a password ends the user's open
    /// sessions).
    Set {
        /// Login name.
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// The password (default: asked for without echo on a terminal, else one line of
        /// standard input). Avoid it: a command line is seen by every user of the machine.
        #[arg(long, conflicts_with = "keep_password")]
        password: Option<String>,
        /// Change only the role of an existing user; the password and open sessions stay (they
        /// have the new role from their next request).
        #[arg(long)]
        keep_password: bool,
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Remove a user.
    Remove {
        /// Login name.
        name: String,
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List tokens (names and roles; secrets are never stored).
    List {
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Create a token and print its secret once.
    Create {
        /// Token name.
        name: String,
        /// ingest, viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// When the token stops working: a lifetime (90d, 12h, 30m, 2w), a date (YYYY-MM-DD,
        /// midnight UTC) or an RFC 3339 time. Default: never.
        #[arg(long)]
        expires: Option<String>,
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Revoke a token.
    Revoke {
        /// Token name.
        name: String,
        /// State directory (default: node.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML.
    Show {
        /// Configuration file (default: --config, else the embedded default).
        file: Option<PathBuf>,
    },
    /// Check a configuration file and list every problem, each with its line and field.
    Check {
        /// Configuration file (default: --config, else the embedded default).
        file: Option<PathBuf>,
    },
    /// Print the embedded default configuration with its comments.
    Default,
    /// Print the reference of every option of every table (type, default, unit, description):
    /// Markdown (docs/CONFIG.md) or the man page tollgate.toml(5).
    Reference {
        /// markdown or man (roff).
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "man"])]
        format: String,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Port a configuration file of an earlier release to this release's format, keeping its
    /// comments and layout, and report every change (renamed, moved, new default, removed).
    Migrate {
        /// The configuration file to port.
        file: PathBuf,
        /// Write the ported file here and print the report (default: the ported file on
        /// standard output, the report on standard error).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Spool commands.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Print every record in the spool (side spools included) as JSON lines.
    Dump {
        /// Spool directory (default: from the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}
