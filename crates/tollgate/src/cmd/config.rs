//! `tollgate config`: show, check, default and migrate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ConfigCommand;
use crate::config::{Config, DEFAULT_CONFIG};
use crate::spool_plan;

/// Runs a config command; `global` is `--config` (a `check` or `show` FILE argument wins).
pub fn run(global: Option<&Path>, command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Show { file } => {
            print!("{}", Config::load(file.as_deref().or(global))?.to_toml());
        }
        ConfigCommand::Check { file } => {
            // Every problem of the file at once (Config's error lists them all, each with its
            // line and field); then what the spool asks of this machine.
            let path = file.as_deref().or(global);
            let config = Config::load(path)?;
            // What the spool asks of this machine, placed at the line of the spool's limit.
            let plan = spool_plan::plan(&config, spool_plan::Lanes::of(&config, true, true)).map_err(|e| {
                let line = path
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .and_then(|text| tollgate_config::problems::field_line(&text, "spool.max_disk_mb"));
                match (path, line) {
                    (Some(p), Some(line)) => anyhow::anyhow!("{}:{line}: {e}", p.display()),
                    _ => e,
                }
            })?;
            println!("configuration is valid");
            if config.config_version < tollgate_config::migrate::CURRENT_VERSION {
                println!(
                    "note: config_version {} is an earlier release's format; `tollgate config migrate FILE` ports it",
                    config.config_version
                );
            }
            println!("{}", plan.summary());
            if let Some(w) = plan.warning(spool_plan::spool_bytes_now(&plan.dir)) {
                println!("warning: {w}");
            }
        }
        ConfigCommand::Default => print!("{DEFAULT_CONFIG}"),
        ConfigCommand::Reference { format, out } => reference(format, out.as_deref())?,
        ConfigCommand::Migrate { file, out } => return migrate(file, out.as_deref()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration reference in `format` (`markdown` or `man`), into `out` or to standard
/// output.
fn reference(format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    use tollgate_config::reference::{Format, render};
    let format: Format = format.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let text = render(format, env!("CARGO_PKG_VERSION"));
    match out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => outln!("{}", text.trim_end())?,
    }
    Ok(())
}

/// Ports `file` to the current format: the report on standard error (standard output when the
/// file goes to `--out`), the new text on standard output or into `out`.
fn migrate(file: &PathBuf, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (new, report) =
        tollgate_config::migrate::migrate(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // What comes out must be a configuration this release reads.
    let label = out.unwrap_or(file).display().to_string();
    Config::parse(&label, &new).map_err(|e| anyhow::anyhow!("after migration: {e}"))?;
    match out {
        Some(path) => {
            std::fs::write(path, &new).with_context(|| format!("cannot write {}", path.display()))?;
            print!("{}: {report}", file.display());
            println!("written to {}", path.display());
        }
        None => {
            eprint!("{}: {report}", file.display());
            print!("{new}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
