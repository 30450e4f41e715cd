//! `tollgate srp ...`: seed 003's SRP commands against a running engine's API.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::api_client::{ApiClient, ApiError};
use crate::cli::{SrpCommand, Target};
use crate::config::Config;

fn client(config: &Config, target: &Target) -> anyhow::Result<ApiClient> {
    ApiClient::for_running(config, target, "SRP commands talk to a running engine")
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

/// Runs an SRP command; prints the engine's text (or JSON) answer.
pub fn run(config: &Config, command: &SrpCommand) -> anyhow::Result<ExitCode> {
    let (target, path, body, json_out): (&Target, String, Option<Value>, bool) = match command {
        SrpCommand::Show { what, json, target } => {
            (target, format!("/api/v1/srp/show/{}", what.join("-").to_lowercase()), None, *json)
        }
        SrpCommand::ValidateSwitchover { target } => (target, "/api/v1/srp/validate-switchover".into(), None, false),
        SrpCommand::InitiateSwitchover { force, target } => {
            (target, format!("/api/v1/srp/initiate-switchover?force={force}"), None, false)
        }
        SrpCommand::InitiateAudit { target } => (target, "/api/v1/srp/initiate-audit".into(), None, false),
        SrpCommand::Disable { words, target } => {
            (target, "/api/v1/srp/nack".into(), Some(json!({"cmd": nack_cmd(words)?, "enable": false})), false)
        }
        SrpCommand::Enable { words, target } => {
            (target, "/api/v1/srp/nack".into(), Some(json!({"cmd": nack_cmd(words)?, "enable": true})), false)
        }
        SrpCommand::ForcedStandby { setting, target } => {
            (target, "/api/v1/srp/forced-standby".into(), Some(json!({"on": setting == "on"})), false)
        }
        SrpCommand::ValidateConfiguration { target } => {
            (target, "/api/v1/srp/validate-configuration".into(), None, false)
        }
    };
    let api = client(config, target)?;
    let answer: Value = if path.starts_with("/api/v1/srp/show/") {
        api.get(&path).map_err(ApiError::into_anyhow)?
    } else {
        api.post_json(&path, body).map_err(ApiError::into_anyhow)?
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer["data"])?);
    } else {
        print!("{}", answer["text"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
