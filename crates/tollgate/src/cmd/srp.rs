//! `tollgate srp ...`: the SRP commands against a running engine's API, typed by
//! `tollgate_api::srp`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use tollgate_api::BlockingClient;
use tollgate_api::srp::{ForcedStandbyBody, NackBody, SrpCommand as Command, SrpReply, SrpView, SwitchoverQuery};
use tollgate_srp::runtime::SrpData;

use crate::cli::{SrpCommand, Target};
use crate::config::Config;

/// Long enough for a switchover to finish.
const TIMEOUT: Duration = Duration::from_secs(600);

fn client(config: &Config, target: &Target) -> anyhow::Result<BlockingClient> {
    let base = target.api.clone().unwrap_or_else(|| config.api_url());
    let token = target.token.clone().or_else(|| config.cli_token());
    let tls = crate::roles::tls::cli_tls(config, &base)?;
    Ok(BlockingClient::with_tls(&base, token, TIMEOUT, tls.as_ref())?)
}

/// `nack micro-chkpt-cmd N` -> N.
fn nack_cmd(words: &[String]) -> anyhow::Result<u16> {
    match words {
        [a, b, n] if a == "nack" && b == "micro-chkpt-cmd" => {
            n.parse().map_err(|_| anyhow!("micro-chkpt-cmd must be a number 1..=255, not {n:?}"))
        }
        _ => bail!("expected `nack micro-chkpt-cmd N`, got `{}`", words.join(" ")),
    }
}

/// An answer whose data is only printed as text: its data is decoded by type but not kept.
type TextReply = SrpReply<serde::de::IgnoredAny>;

/// Runs an SRP command; prints the engine's text (or, for `show --json`, its data as JSON).
pub fn run(config: &Config, command: &SrpCommand) -> anyhow::Result<ExitCode> {
    let reply: TextReply = match command {
        SrpCommand::Show { what, json, target } => {
            let view = SrpView::from_words(what)?;
            let api = client(config, target)?;
            if *json {
                // The data decoded by its type, then printed: what the contract says, not
                // whatever the server sent.
                let answer = api.get_text(&view.path())?;
                let reply = SrpData::decode_reply(view, &answer)
                    .map_err(|e| anyhow!("the engine's answer to show srp {view} does not decode: {e}"))?;
                println!("{}", serde_json::to_string_pretty(&reply.data)?);
                return Ok(ExitCode::SUCCESS);
            }
            api.get(&view.path())?
        }
        SrpCommand::ValidateSwitchover { target } => {
            client(config, target)?.post_empty(&Command::ValidateSwitchover.path())?
        }
        SrpCommand::InitiateSwitchover { force, target } => {
            client(config, target)?.post_empty(&SwitchoverQuery { force: *force }.path())?
        }
        SrpCommand::InitiateAudit { target } => client(config, target)?.post_empty(&Command::InitiateAudit.path())?,
        SrpCommand::Disable { words, target } => {
            let body = NackBody { cmd: nack_cmd(words)?, enable: false };
            client(config, target)?.post(&Command::Nack.path(), &body)?
        }
        SrpCommand::Enable { words, target } => {
            let body = NackBody { cmd: nack_cmd(words)?, enable: true };
            client(config, target)?.post(&Command::Nack.path(), &body)?
        }
        SrpCommand::ForcedStandby { setting, target } => {
            let body = ForcedStandbyBody { on: setting == "on" };
            client(config, target)?.post(&Command::ForcedStandby.path(), &body)?
        }
        SrpCommand::ValidateConfiguration { target } => {
            client(config, target)?.post_empty(&Command::ValidateConfiguration.path())?
        }
    };
    print!("{}", reply.text);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_help_of_srp_show_lists_every_view() {
        let mut cli = crate::cli::Cli::command();
        let show = cli.find_subcommand_mut("srp").unwrap().find_subcommand_mut("show").unwrap();
        let help = show.render_long_help().to_string();
        for view in SrpView::all() {
            assert!(help.contains(view.name()), "`srp show --help` does not list {view}:\n{help}");
        }
    }

    #[test]
    fn nack_words_are_checked() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(nack_cmd(&words(&["nack", "micro-chkpt-cmd", "2"])).unwrap(), 2);
        assert!(nack_cmd(&words(&["nack", "micro-chkpt-cmd", "x"])).is_err());
        assert!(nack_cmd(&words(&["ack", "micro-chkpt-cmd", "1"])).is_err());
    }
}
