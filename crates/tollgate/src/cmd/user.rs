//! `tollgate user ...`: the web UI's users, in the state directory's user database.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tollgate_web::auth::{Auth, Role};

use crate::cli::UserCommand;
use crate::config::Config;

/// What a command may do to a state directory without a user database.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Fail: a read (or a removal) must not create a database, with a new admin password, in
    /// a mistyped directory.
    Refuse,
    /// Create it (adding a user or a token to a server that has not started yet).
    Create,
}

/// Opens the user database of `state_dir` (default: node.state_dir).
pub(crate) fn open(config: &Config, state_dir: &Option<PathBuf>, missing: Missing) -> anyhow::Result<Auth> {
    let dir = state_dir.clone().unwrap_or_else(|| config.node.state_dir.clone());
    if missing == Missing::Refuse && !dir.join("users.json").is_file() {
        bail!(
            "no user database in {} (users.json): is it the state directory of a tollgate that has started \
             (node.state_dir, or --state-dir)?",
            dir.display()
        );
    }
    let (auth, bootstrap) = Auth::open(&dir, None)?;
    if let Some(b) = bootstrap {
        outln!(
            "created the user database in {}: user `admin`, password {} (shown only now)",
            dir.display(),
            b.admin_password
        )?;
    }
    Ok(auth)
}

/// A role by name.
pub(crate) fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow!("unknown role {s:?}: ingest, viewer, operator or admin"))
}

/// Runs a user command.
pub fn run(config: &Config, command: &UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::List { state_dir } => {
            for u in open(config, state_dir, Missing::Refuse)?.users() {
                outln!("{:<20} {:<9} created {}", u.name, u.role.as_str(), u.created_at.format("%Y-%m-%d %H:%M UTC"))?;
            }
        }
        UserCommand::Set { name, role: r, keep_password: true, state_dir, .. } => {
            open(config, state_dir, Missing::Refuse)?.set_role(name, role(r)?)?;
            outln!("user {name} is now {r} (password kept; open sessions have the new role at once)")?;
        }
        UserCommand::Set { name, role: r, password, state_dir, .. } => {
            let r = role(r)?;
            if r == Role::Ingest {
                bail!("users are viewers, operators or admins; ingest is for tokens");
            }
            let password = match password {
                Some(p) => p.clone(),
                None => read_password(name)?,
            };
            open(config, state_dir, Missing::Create)?.set_user(name, r, &password)?;
            outln!("user {name} saved ({}); their open sessions have ended", r.as_str())?;
        }
        UserCommand::Remove { name, state_dir } => {
            open(config, state_dir, Missing::Refuse)?.remove_user(name)?;
            outln!("user {name} removed; their open sessions have ended")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a new password: from a terminal without echo (asked twice), else one line of standard
/// input (a script's pipe).
fn read_password(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden(&format!("password for {name} (10+ characters): "))?;
    let again = prompt_hidden("the same password again: ")?;
    if first != again {
        bail!("the passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Prints `prompt` on standard error and reads one line from the terminal with echo off
/// (restored afterwards, also on error).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let before = tcgetattr(&stdin)?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    tcsetattr(&stdin, OptionalActions::Flush, &before)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_of_a_mistyped_state_directory_creates_nothing() {
        let config = Config::load(None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let typo = tmp.path().join("stat-dir");
        let err = open(&config, &Some(typo.clone()), Missing::Refuse).err().expect("refused");
        assert!(err.to_string().contains("no user database"), "{err}");
        assert!(!typo.exists(), "the mistyped directory was created");
        // Adding a user may create the database.
        open(&config, &Some(typo.clone()), Missing::Create).unwrap();
        assert!(typo.join("users.json").is_file());
    }
}
