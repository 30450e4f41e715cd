//! The `tollgate` binary: command line, configuration loading and the wiring of roles.

#![warn(missing_docs)]

/// Prints a line to standard output from a long-running role, ignoring a closed or broken
/// stdout: a server whose starter stopped reading (a closed pipe) must keep serving, where
/// `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin_cmd;
mod analytics_cmd;
mod api_client;
mod cli;
mod cmd;
use tollgate_config as config;
mod connection_alarm;
mod counter_alarm;
mod demo;
mod fd_limit;
mod forced_standby;
mod lab;
mod lookup_cmd;
mod manager;
mod metrics;
mod names;
mod policy_cmd;
mod private_files;
mod probe_cmd;
mod probe_role;
mod record_alarms;
mod release;
mod release_cmd;
mod roles;
mod serve;
mod service_address;
mod spool_plan;
mod upgrade_cmd;
mod uplink;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, SpoolCommand};
use crate::config::Config;

fn main() -> ExitCode {
    // Everything tollgate creates (state, records, tokens, backups, lab files) is for its owner
    // only, unless a mode is given explicitly (release bundles).
    private_files::owner_only_umask();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    fd_limit::raise_for(&cli.command);
    let config = || Config::load(cli.config.as_deref());
    match &cli.command {
        Command::Serve(args) => serve::run(config()?, args.clone(), serve::Roles::Serve),
        Command::Engine(args) => serve::run(config()?, args.clone(), serve::Roles::Engine),
        Command::Collector(args) => serve::run(config()?, args.clone(), serve::Roles::Collector),
        Command::Probe(args) => match &args.pcap {
            Some(_) => {
                let mut config = config()?;
                if let Some(dir) = &args.serve.state_dir {
                    config.node.state_dir = dir.clone();
                }
                probe_cmd::run_pcap(&config, args)
            }
            None => {
                let mut config = config()?;
                if let Some(d) = &args.device {
                    config.probe.device = d.clone();
                }
                if !args.listen.is_empty() || !args.hep.is_empty() {
                    config.probe.mirror = args.listen.clone();
                    config.probe.hep_udp = args.hep.clone();
                    config.probe.hep_tcp = args.hep.clone();
                }
                let summary = (args.summary_secs > 0).then(|| std::time::Duration::from_secs(args.summary_secs));
                serve::run(config, args.serve.clone(), serve::Roles::Probe { summary })
            }
        },
        Command::Analytics(args) => analytics_cmd::run(&config()?, args),
        Command::User { command } => admin_cmd::user(&config()?, command),
        Command::Token { command } => admin_cmd::token(&config()?, command),
        Command::Policy { command } => policy_cmd::run(&config()?, command),
        Command::Lookup(args) => lookup_cmd::run(&config()?, args),
        Command::Srp { command } => cmd::srp::run(&config()?, command),
        Command::Agent { command: None } => roles::agent::run(&config()?),
        Command::Agent { command: Some(command) } => cmd::agent::run(&config()?, command),
        Command::Manager => manager::run(&config()?),
        Command::Upgrade { command } => upgrade_cmd::run(&config()?, command),
        Command::Health(args) => upgrade_cmd::health(&config()?, args),
        Command::Backup { command } => upgrade_cmd::backup(&config()?, command),
        Command::Lab { command } => lab::run(command),
        Command::Release { command } => release_cmd::run(command),
        Command::Config { command } => cmd::config::run(cli.config.as_deref(), command),
        Command::Spool { command: SpoolCommand::Dump { dir } } => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => config()?.spool_dir(),
            };
            let mut damaged = false;
            let mut segments = tollgate_records::spool::segments(&dir)?;
            for side in tollgate_records::spool::side::side_dirs(&dir)? {
                segments.extend(tollgate_records::spool::segments(&side)?);
            }
            for seg in segments {
                let contents = tollgate_records::spool::read_segment(&seg)?;
                for r in &contents.records {
                    println!("{}", serde_json::to_string(r)?);
                }
                if let Some(d) = contents.damage {
                    eprintln!("{}: {d}", seg.display());
                    damaged = true;
                }
            }
            Ok(if damaged { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
