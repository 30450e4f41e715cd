//! `tollgate user ...` and `tollgate token ...`: the user database in the state directory.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tollgate_web::auth::{Auth, Role, parse_expiry};

use crate::cli::{TokenCommand, UserCommand};
use crate::config::Config;

fn open(config: &Config, state_dir: &Option<PathBuf>) -> anyhow::Result<Auth> {
    let dir = state_dir.clone().unwrap_or_else(|| config.node.state_dir.clone());
    let (auth, bootstrap) = Auth::open(&dir, None)?;
    if let Some(b) = bootstrap {
        println!(
            "created the user database in {}: user `admin`, password {} (shown only now)",
            dir.display(),
            b.admin_password
        );
    }
    Ok(auth)
}

fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow!("unknown role {s:?}: ingest, viewer, operator or admin"))
}

/// Runs a user command.
pub fn user(config: &Config, command: &UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::List { state_dir } => {
            for u in open(config, state_dir)?.users() {
                println!("{:<20} {:<9} created {}", u.name, u.role.as_str(), u.created_at.format("%Y-%m-%d %H:%M UTC"));
            }
        }
        UserCommand::Set { name, role: r, keep_password: true, state_dir, .. } => {
            open(config, state_dir)?.set_role(name, role(r)?)?;
            println!("user {name} is now {r} (password kept; open sessions have the new role at once)");
        }
        UserCommand::Set { name, role: r, password, state_dir, .. } => {
            let r = role(r)?;
            if r == Role::Ingest {
                bail!("users are viewers, operators or admins; ingest is for tokens");
            }
            let password = match password {
                Some(p) => p.clone(),
                None => {
                    eprintln!("password for {name} (10+ characters), then Enter:");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            open(config, state_dir)?.set_user(name, r, &password)?;
            println!("user {name} saved ({}); their open sessions have ended", r.as_str());
        }
        UserCommand::Remove { name, state_dir } => {
            open(config, state_dir)?.remove_user(name)?;
            println!("user {name} removed; their open sessions have ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a token command.
pub fn token(config: &Config, command: &TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::List { state_dir } => {
            let now = chrono::Utc::now();
            for t in open(config, state_dir)?.tokens() {
                let expires = match t.expires_at {
                    None => String::new(),
                    Some(at) if t.expired(now) => format!(" expired {}", at.format("%Y-%m-%d %H:%M UTC")),
                    Some(at) => format!(" expires {}", at.format("%Y-%m-%d %H:%M UTC")),
                };
                println!(
                    "{:<20} {:<9} created {}{expires}",
                    t.name,
                    t.role.as_str(),
                    t.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
        TokenCommand::Create { name, role: r, expires, state_dir } => {
            let expires_at = expires.as_deref().map(|e| parse_expiry(e, chrono::Utc::now())).transpose()?;
            let secret = open(config, state_dir)?.create_token(name, role(r)?, expires_at)?;
            println!("{secret}");
            match expires_at {
                Some(at) => eprintln!(
                    "token {name} created, valid until {}; this is the only time its secret is shown",
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                None => eprintln!("token {name} created; this is the only time its secret is shown"),
            }
        }
        TokenCommand::Revoke { name, state_dir } => {
            open(config, state_dir)?.revoke_token(name)?;
            println!("token {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
