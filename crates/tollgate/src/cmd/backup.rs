//! `tollgate backup system | list | restore`: system backups through the active manager.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use indicatif::ProgressBar;
use reqwest::Method;
use tollgate_api::manager::{BackupRequest, RestoreAnswer, ServerBackups, SystemBackup, SystemRestoreRequest};
use tollgate_api::{BlockingClient, ErrorBody};

use crate::cli::BackupCommand;
use crate::cmd::upgrade::Managers;
use crate::config::Config;

/// `POST /api/v1/backup`. A partial backup answers 502 with the same [`SystemBackup`] body
/// (which servers failed), so the answer is decoded whatever its status.
fn system_backup(api: &BlockingClient, why: &str) -> anyhow::Result<SystemBackup> {
    let req = api.inner().request(Method::POST, "/api/v1/backup").json(&BackupRequest { why: Some(why.to_string()) });
    let resp = api.block_on(req.send()).map_err(|e| anyhow!("cannot reach {}: {e}", api.inner().base()))?;
    let status = resp.status();
    let bytes = api.block_on(resp.bytes())?;
    match serde_json::from_slice::<SystemBackup>(&bytes) {
        Ok(r) => Ok(r),
        Err(_) => Err(ErrorBody::from_response(status.as_u16(), &bytes).into()),
    }
}

/// Runs a backup command.
pub fn run(config: &Config, command: &BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::System { why, target } => {
            let api = Managers::new(config, target).active()?;
            let pb = ProgressBar::new_spinner();
            pb.set_message("backing up every server");
            pb.enable_steady_tick(Duration::from_millis(120));
            let r = system_backup(&api, why);
            pb.finish_and_clear();
            let r = r?;
            for server in &r.servers {
                match (&server.error, &server.backup) {
                    (Some(e), _) => println!("{:<14} FAILED {e}", server.hostname),
                    (None, Some(b)) => println!("{:<14} {} ({} bytes)", server.hostname, b.name, b.bytes),
                    (None, None) => println!("{:<14} FAILED no backup", server.hostname),
                }
            }
            println!("manager state: {}", r.manager_state.as_deref().unwrap_or_default());
            return Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        BackupCommand::List { target } => {
            let list: Vec<ServerBackups> = Managers::new(config, target).active()?.get("/api/v1/backups")?;
            for server in &list {
                for b in &server.backups {
                    println!("{:<14} {:<60} {:>12}", server.hostname, b.name, b.bytes);
                }
            }
        }
        BackupCommand::Restore { server, name, target } => {
            let request = SystemRestoreRequest { hostname: server.clone(), name: name.clone() };
            let r: RestoreAnswer = Managers::new(config, target).active()?.post("/api/v1/restore", &request)?;
            println!("{server}: restored {}", r.restored);
        }
    }
    Ok(ExitCode::SUCCESS)
}
