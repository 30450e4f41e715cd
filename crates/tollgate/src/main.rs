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

/// Writes a command's output to standard output, returning the `io::Result` where `print!`
/// would panic: a reader that went away (`tollgate policy show --json | head`) ends the command
/// quietly through `?` (see [`is_broken_pipe`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

mod cli;
mod cmd;
use tollgate_config as config;
mod fd_limit;
mod logging;
mod release;
mod roles;
mod spool_plan;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, EngineArgs, ServeArgs, SpoolCommand};
use crate::config::Config;

fn main() -> ExitCode {
    // Everything tollgate creates (state, records, tokens, backups, lab files) is for its owner
    // only, unless a mode is given explicitly (release bundles).
    tollgate_files::private_files::owner_only_umask();
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let log = logging::settings(&cli);
    logging::init(&log);
    match run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): what it wanted, it has.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // A JSON log stays one JSON object per line to the end: the error is its last event.
        Err(e) if log.format == config::log::LogFormat::Json => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The safety net under [`out!`]: a command still printing with `println!` into a pipe whose
/// reader went away (`tollgate probe --pcap F | head`) panics in the standard library; that
/// panic ends the process quietly with success, as `head`'s user expects, not with a panic
/// message and exit code 101. Any other panic is reported as usual.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether an error is a write to a closed pipe (standard output read by `head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    fd_limit::raise_for(&cli.command);
    let config = || Config::load(cli.config.as_deref());
    match &cli.command {
        Command::Serve(args) => roles::serve::run(config()?, args.clone(), roles::serve::Roles::Serve),
        Command::Engine(args) => {
            let args = ServeArgs { engine: args.clone(), no_demo: false };
            roles::serve::run(config()?, args, roles::serve::Roles::Engine)
        }
        Command::Collector(args) => {
            let args = ServeArgs { engine: EngineArgs { role: args.clone(), ..Default::default() }, no_demo: false };
            roles::serve::run(config()?, args, roles::serve::Roles::Collector)
        }
        Command::Probe(args) => match args.pcap.is_empty() {
            false => {
                let mut config = config()?;
                if let Some(dir) = &args.role.state_dir {
                    config.node.state_dir = dir.clone();
                }
                cmd::probe::run_pcap(&config, args)
            }
            true => {
                let mut config = config()?;
                if let Some(d) = &args.device {
                    config.probe.device = d.clone();
                }
                if !args.listen.is_empty() || !args.hep.is_empty() || args.interface.is_some() {
                    config.probe.mirror = args.listen.clone();
                    config.probe.hep_udp = args.hep.clone();
                    config.probe.hep_tcp = args.hep.clone();
                    config.probe.interface = args.interface.clone().unwrap_or_default();
                }
                if let Some(filter) = &args.filter {
                    config.probe.filter = filter.clone();
                }
                let summary = (args.summary_secs > 0).then(|| std::time::Duration::from_secs(args.summary_secs));
                let args =
                    ServeArgs { engine: EngineArgs { role: args.role.clone(), ..Default::default() }, no_demo: false };
                roles::serve::run(config, args, roles::serve::Roles::Probe { summary })
            }
        },
        Command::Analytics(args) => cmd::analytics::run(&config()?, args),
        Command::User { command } => cmd::user::run(&config()?, command),
        Command::Token { command } => cmd::token::run(&config()?, command),
        Command::Policy { command } => cmd::policy::run(&config()?, command),
        Command::Lookup(args) => cmd::lookup::run(&config()?, args),
        Command::Srp { command } => cmd::srp::run(&config()?, command),
        Command::Agent { command: None } => roles::agent::run(&config()?),
        Command::Agent { command: Some(command) } => cmd::agent::run(&config()?, command),
        Command::Manager => roles::manager::run(&config()?),
        Command::Upgrade { command } => cmd::upgrade::run(&config()?, command),
        Command::Health(args) => cmd::health::run(&config()?, args),
        Command::Backup { command } => cmd::backup::run(&config()?, command),
        Command::ClusterPolicy { command } => cmd::cluster_policy::run(&config()?, command),
        Command::Lab { command } => cmd::lab::run(command),
        Command::Release { command } => cmd::release::run(command),
        Command::Config { command } => cmd::config::run(cli.config.as_deref(), command),
        Command::Pki { command } => cmd::pki::run(cli.config.as_deref(), command),
        Command::Generate { command } => cmd::generate::run(command),
        Command::Spool { command: SpoolCommand::Dump { dir } } => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => config()?.spool_dir(),
            };
            cmd::spool::dump(&dir)
        }
    }
}
