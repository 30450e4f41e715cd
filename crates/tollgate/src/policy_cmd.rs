//! `tollgate policy ...`: against a running tollgate (API) or a state directory (offline).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::ProgressBar;
use tollgate_policy::service::{CurrentPolicy, InstallError, PolicyService};
use tollgate_policy::store::{HistoryEntry, HistoryEvent, PolicyStore, VersionInfo};
use tollgate_policy::{CompileOptions, Diagnostic, PolicyMeta, PolicySource, compile};

use crate::api_client::{ApiClient, ApiError};
use crate::cli::{PolicyCommand, Target};
use crate::config::Config;

/// Where a command acts.
enum Place {
    Api(ApiClient),
    Offline(PolicyService),
}

fn place(config: &Config, target: &Target) -> anyhow::Result<Place> {
    match &target.state_dir {
        Some(dir) => {
            let store = PolicyStore::open(dir.join("policy"))?;
            let service = PolicyService::open(store, config.dialing_plan.clone(), config.enum_.intercept_names())?;
            Ok(Place::Offline(service))
        }
        None => {
            let base = target.api.clone().unwrap_or_else(|| config.api_url());
            let token = target.token.clone().or_else(|| config.cli_token());
            Ok(Place::Api(ApiClient::new(&base, token, target.actor.as_deref())?))
        }
    }
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
        Err(ApiError::Other(e)) => Err(e),
    }
}

fn print_meta(meta: &PolicyMeta) {
    println!("name      {}", meta.name);
    if !meta.description.is_empty() {
        println!("about     {}", meta.description);
    }
    println!("sha256    {}", meta.sha256);
    println!("rules     {} ({} enabled)", meta.rules, meta.enabled_rules);
    for (name, size) in &meta.lists {
        println!("list      {name}: {size} numbers");
    }
}

fn print_installed(info: &VersionInfo) {
    println!(
        "installed version {} ({}, {} rules) at {} by {}",
        info.version,
        info.name,
        info.rules,
        info.installed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        info.actor
    );
}

fn print_current(current: &CurrentPolicy, text: bool) {
    match (&current.version, &current.info) {
        (Some(v), Some(info)) => println!(
            "version   {v} (installed {} by {}, from {})",
            info.installed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            info.actor,
            info.source_file
        ),
        _ => {
            println!("no policy installed: every call is allowed");
            return;
        }
    }
    print_meta(&current.meta);
    println!();
    println!("{:>3}  {:>5}  {:<36} action", "#", "line", "rule");
    for r in &current.rules {
        let name = if r.enabled { r.name.clone() } else { format!("{} (disabled)", r.name) };
        println!("{:>3}  {:>5}  {:<36} {}", r.index, r.line, name, r.action);
    }
    if text {
        println!("\n{}", current.text);
    }
}

fn print_history(history: &[HistoryEntry]) {
    if history.is_empty() {
        println!("no policy was ever installed");
    }
    let v = |v: Option<u64>| v.map_or("none".to_string(), |v| format!("v{v}"));
    for h in history {
        let what = match h.event {
            HistoryEvent::Install => format!("install    {:<6} (was {})", v(h.version), v(h.previous)),
            HistoryEvent::Uninstall => format!("uninstall  {:<6} (was {})", "", v(h.previous)),
        };
        println!("{}  {what}  by {}", h.at.format("%Y-%m-%d %H:%M:%S UTC"), h.actor);
    }
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
                print!("{}", m.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file, target, local } => {
            if target.api.is_some() && !local {
                let client = ApiClient::new(
                    target.api.as_deref().unwrap_or_default(),
                    target.token.clone().or_else(|| config.cli_token()),
                    target.actor.as_deref(),
                )?;
                let bar = spinner("checking policy on the server");
                let result = api_result(client.upload::<serde_json::Value>("/api/v1/policy/check", file))?;
                bar.finish_and_clear();
                return Ok(match result {
                    Ok(v) => {
                        println!("{} is valid", file.display());
                        if let Ok(meta) = serde_json::from_value::<PolicyMeta>(v["meta"].clone()) {
                            print_meta(&meta);
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
                    println!("{} is valid", file.display());
                    print_meta(p.meta());
                    ExitCode::SUCCESS
                }
                Err(e) => print_diagnostics(&e.diagnostics),
            })
        }
        PolicyCommand::Install { file, target } => {
            let bar = spinner("installing policy");
            let outcome = match place(config, target)? {
                Place::Api(client) => api_result(client.upload::<VersionInfo>("/api/v1/policy", file))?,
                Place::Offline(service) => {
                    let source = PolicySource::from_path(file)?;
                    match service.install(&source, target.actor.as_deref().unwrap_or("cli")) {
                        Ok(info) => Ok(info),
                        Err(InstallError::Invalid(e)) => Err(print_diagnostics(&e.diagnostics)),
                        Err(InstallError::Io(e)) => return Err(e).context("policy store"),
                    }
                }
            };
            bar.finish_and_clear();
            Ok(match outcome {
                Ok(info) => {
                    print_installed(&info);
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            })
        }
        PolicyCommand::Uninstall { target } => {
            let previous = match place(config, target)? {
                Place::Api(client) => {
                    let v: serde_json::Value = api_result(client.delete("/api/v1/policy"))?
                        .map_err(|_| anyhow::anyhow!("uninstall refused"))?;
                    v["uninstalled"].as_u64()
                }
                Place::Offline(service) => service.uninstall(target.actor.as_deref().unwrap_or("cli"))?,
            };
            match previous {
                Some(v) => println!("uninstalled version {v}: every call is now allowed"),
                None => println!("no policy was installed: every call is allowed"),
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show { target, json, text } => {
            let current: CurrentPolicy = match place(config, target)? {
                Place::Api(client) => {
                    api_result(client.get("/api/v1/policy"))?.map_err(|_| anyhow::anyhow!("show refused"))?
                }
                Place::Offline(service) => service.current()?,
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&current)?);
            } else {
                print_current(&current, *text);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::History { target, json } => {
            let history: Vec<HistoryEntry> = match place(config, target)? {
                Place::Api(client) => {
                    api_result(client.get("/api/v1/policy/history"))?.map_err(|_| anyhow::anyhow!("history refused"))?
                }
                Place::Offline(service) => service.history()?,
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                print_history(&history);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
