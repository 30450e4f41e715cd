//! `tollgate policy ...`: against a running tollgate (API) or a state directory (offline).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use tollgate_api::web::{Checked, Uninstalled};
use tollgate_policy::service::{CurrentPolicy, InstallError, PolicyService};
use tollgate_policy::store::{HistoryEntry, HistoryEvent, PolicyStore, VersionInfo};
use tollgate_policy::{CompileOptions, Diagnostic, PolicyMeta, PolicySource, compile};

use crate::cli::{PolicyCommand, PolicyTarget};
use crate::cmd::api_client::{ApiClient, ApiError};
use crate::config::Config;

/// Where a command acts.
enum Place {
    Api(ApiClient),
    Offline(PolicyService),
}

/// Whether a command only reads: it never creates a policy store where there is none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Change,
}

fn place(config: &Config, target: &PolicyTarget, actor: Option<&str>, access: Access) -> anyhow::Result<Place> {
    match &target.state_dir {
        Some(dir) => Ok(Place::Offline(offline_service(config, dir, access)?)),
        None => {
            let base = target.api.clone().unwrap_or_else(|| config.api_url());
            let token = target.token.clone().or_else(|| config.cli_token());
            Ok(Place::Api(ApiClient::for_config(config, &base, token, actor)?))
        }
    }
}

/// The policy service of a state directory. A read finds the store there or fails: a typo in
/// `--state-dir` must not create a new, empty store.
pub(crate) fn offline_service(config: &Config, state_dir: &Path, access: Access) -> anyhow::Result<PolicyService> {
    let dir = state_dir.join("policy");
    if access == Access::Read && !dir.is_dir() {
        bail!(
            "no policy store in {}: is {} the state directory of a tollgate (node.state_dir)?",
            dir.display(),
            state_dir.display()
        );
    }
    let store = PolicyStore::open(dir)?;
    Ok(PolicyService::open(store, config.dialing_plan.clone(), config.enum_.intercept_names())?)
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn print_diagnostics(diags: &[Diagnostic]) -> ExitCode {
    eprintln!(
        "policy is invalid ({} problem{}); nothing was changed:",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
    for d in diags {
        eprintln!("  {d}");
    }
    ExitCode::FAILURE
}

fn api_result<T>(r: Result<T, ApiError>) -> anyhow::Result<Result<T, ExitCode>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(ApiError::Invalid(diags)) => Ok(Err(print_diagnostics(&diags))),
        Err(e) if e.is_unreachable() => {
            Err(anyhow::anyhow!("{:#}; or act on a state directory with --state-dir DIR", e.into_anyhow()))
        }
        Err(e) => Err(e.into_anyhow()),
    }
}

fn print_meta(meta: &PolicyMeta) -> std::io::Result<()> {
    outln!("name      {}", meta.name)?;
    if !meta.description.is_empty() {
        outln!("about     {}", meta.description)?;
    }
    outln!("sha256    {}", meta.sha256)?;
    outln!("rules     {} ({} enabled)", meta.rules, meta.enabled_rules)?;
    for (name, size) in &meta.lists {
        outln!("list      {name}: {size} numbers")?;
    }
    Ok(())
}

fn print_installed(info: &VersionInfo) -> std::io::Result<()> {
    outln!(
        "installed version {} ({}, {} rules) at {} by {}",
        info.version,
        info.name,
        info.rules,
        info.installed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        info.actor
    )
}

fn print_current(current: &CurrentPolicy, text: bool) -> std::io::Result<()> {
    match (&current.version, &current.info) {
        (Some(v), Some(info)) => outln!(
            "version   {v} (installed {} by {}, from {})",
            info.installed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            info.actor,
            info.source_file
        )?,
        _ => return outln!("no policy installed: every call is allowed"),
    }
    print_meta(&current.meta)?;
    outln!()?;
    outln!("{:>3}  {:>5}  {:<36} action", "#", "line", "rule")?;
    for r in &current.rules {
        let name = if r.enabled { r.name.clone() } else { format!("{} (disabled)", r.name) };
        outln!("{:>3}  {:>5}  {:<36} {}", r.index, r.line, name, r.action)?;
    }
    if text {
        outln!("\n{}", current.text)?;
    }
    Ok(())
}

fn print_history(history: &[HistoryEntry]) -> std::io::Result<()> {
    if history.is_empty() {
        outln!("no policy was ever installed")?;
    }
    let v = |v: Option<u64>| v.map_or("none".to_string(), |v| format!("v{v}"));
    for h in history {
        let what = match h.event {
            HistoryEvent::Install => format!("install    {:<6} (was {})", v(h.version), v(h.previous)),
            HistoryEvent::Uninstall => format!("uninstall  {:<6} (was {})", "", v(h.previous)),
        };
        outln!("{}  {what}  by {}", h.at.format("%Y-%m-%d %H:%M:%S UTC"), h.actor)?;
    }
    Ok(())
}

/// Runs a policy command.
pub fn run(config: &Config, command: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Migrate { file, write } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let m = tollgate_policy::migrate::migrate(&file.display().to_string(), &text)?;
            for c in &m.changes {
                eprintln!("{}:{}: {}: {}", file.display(), c.line, c.field, c.description);
            }
            if m.changes.is_empty() {
                eprintln!("{}: already schema {}; nothing to change", file.display(), m.to_schema);
            }
            if *write {
                if !m.changes.is_empty() {
                    let backup = file.with_extension(format!("schema{}.bak", m.from_schema));
                    std::fs::copy(file, &backup).with_context(|| format!("cannot keep {}", backup.display()))?;
                    std::fs::write(file, &m.text).with_context(|| format!("cannot write {}", file.display()))?;
                    eprintln!(
                        "{} rewritten (schema {} -> {}); the original is {}",
                        file.display(),
                        m.from_schema,
                        m.to_schema,
                        backup.display()
                    );
                }
            } else {
                out!("{}", m.text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file, target, local } => {
            if target.api.is_some() && !local {
                let client = ApiClient::for_config(
                    config,
                    target.api.as_deref().unwrap_or_default(),
                    target.token.clone().or_else(|| config.cli_token()),
                    None,
                )?;
                let bar = spinner("checking policy on the server");
                let result = api_result(client.upload::<Checked>("/api/v1/policy/check", file))?;
                bar.finish_and_clear();
                return Ok(match result {
                    Ok(checked) => {
                        outln!("{} is valid", file.display())?;
                        if let Some(meta) = &checked.meta {
                            print_meta(meta)?;
                        }
                        ExitCode::SUCCESS
                    }
                    Err(code) => code,
                });
            }
            let source = PolicySource::from_path(file)?;
            let bar = spinner("checking policy");
            let intercepts = config.enum_.intercept_names();
            let result = compile(&source, CompileOptions { plan: &config.dialing_plan, intercepts: Some(&intercepts) });
            bar.finish_and_clear();
            Ok(match result {
                Ok(p) => {
                    outln!("{} is valid", file.display())?;
                    print_meta(p.meta())?;
                    ExitCode::SUCCESS
                }
                Err(e) => print_diagnostics(&e.diagnostics),
            })
        }
        PolicyCommand::Install { file, target, actor } => {
            let bar = spinner("installing policy");
            let outcome = match place(config, target, actor.as_deref(), Access::Change)? {
                Place::Api(client) => api_result(client.upload::<VersionInfo>("/api/v1/policy", file))?,
                Place::Offline(service) => {
                    let source = PolicySource::from_path(file)?;
                    match service.install(&source, actor.as_deref().unwrap_or("cli")) {
                        Ok(info) => Ok(info),
                        Err(InstallError::Invalid(e)) => Err(print_diagnostics(&e.diagnostics)),
                        Err(InstallError::Io(e)) => return Err(e).context("policy store"),
                    }
                }
            };
            bar.finish_and_clear();
            Ok(match outcome {
                Ok(info) => {
                    print_installed(&info)?;
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            })
        }
        PolicyCommand::Uninstall { target, actor } => {
            let previous = match place(config, target, actor.as_deref(), Access::Change)? {
                Place::Api(client) => {
                    let answer: Uninstalled = api_result(client.delete("/api/v1/policy"))?
                        .map_err(|_| anyhow::anyhow!("uninstall refused"))?;
                    answer.uninstalled
                }
                Place::Offline(service) => service.uninstall(actor.as_deref().unwrap_or("cli"))?,
            };
            match previous {
                Some(v) => outln!("uninstalled version {v}: every call is now allowed")?,
                None => outln!("no policy was installed: every call is allowed")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show { target, json, text } => {
            let current: CurrentPolicy = match place(config, target, None, Access::Read)? {
                Place::Api(client) => {
                    api_result(client.get("/api/v1/policy"))?.map_err(|_| anyhow::anyhow!("show refused"))?
                }
                Place::Offline(service) => service.current()?,
            };
            if *json {
                outln!("{}", serde_json::to_string_pretty(&current)?)?;
            } else {
                print_current(&current, *text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::History { target, json } => {
            let history: Vec<HistoryEntry> = match place(config, target, None, Access::Read)? {
                Place::Api(client) => {
                    api_result(client.get("/api/v1/policy/history"))?.map_err(|_| anyhow::anyhow!("history refused"))?
                }
                Place::Offline(service) => service.history()?,
            };
            if *json {
                outln!("{}", serde_json::to_string_pretty(&history)?)?;
            } else {
                print_history(&history)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
