//! `tollgate token ...`: API tokens, in the state directory's user database.

use std::process::ExitCode;

use tollgate_web::auth::parse_expiry;

use super::user::{Missing, open, role};
use crate::cli::TokenCommand;
use crate::config::Config;

/// Runs a token command.
pub fn run(config: &Config, command: &TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::List { state_dir } => {
            let now = chrono::Utc::now();
            for t in open(config, state_dir, Missing::Refuse)?.tokens() {
                let expires = match t.expires_at {
                    None => String::new(),
                    Some(at) if t.expired(now) => format!(" expired {}", at.format("%Y-%m-%d %H:%M UTC")),
                    Some(at) => format!(" expires {}", at.format("%Y-%m-%d %H:%M UTC")),
                };
                outln!(
                    "{:<20} {:<9} created {}{expires}",
                    t.name,
                    t.role.as_str(),
                    t.created_at.format("%Y-%m-%d %H:%M UTC")
                )?;
            }
        }
        TokenCommand::Create { name, role: r, expires, state_dir } => {
            let expires_at = expires.as_deref().map(|e| parse_expiry(e, chrono::Utc::now())).transpose()?;
            let secret = open(config, state_dir, Missing::Create)?.create_token(name, role(r)?, expires_at)?;
            outln!("{secret}")?;
            match expires_at {
                Some(at) => eprintln!(
                    "token {name} created, valid until {}; this is the only time its secret is shown",
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                None => eprintln!("token {name} created; this is the only time its secret is shown"),
            }
        }
        TokenCommand::Revoke { name, state_dir } => {
            open(config, state_dir, Missing::Refuse)?.revoke_token(name)?;
            outln!("token {name} revoked")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
