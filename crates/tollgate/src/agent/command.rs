//! `tollgate agent status | forced-standby on|off`: asks the running agent of this server (its
//! `[agent]` listen address and token), for when no manager is there to ask: a held standby
//! manager whose active is gone, a server taken out of the Director's hands.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::AgentCommand;
use crate::config::Config;

/// The agent's base URL: its listen address (the loopback address when it listens on all).
fn base_url(listen: std::net::SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Runs one command against the running agent.
pub fn run(config: &Config, command: &AgentCommand) -> anyhow::Result<ExitCode> {
    let agent = config.agent.as_ref().context("`tollgate agent ...` needs the agent's [agent] section (--config)")?;
    let base = base_url(agent.listen);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let request = match command {
        AgentCommand::Status => client.get(format!("{base}/agent/v1/status")),
        AgentCommand::ForcedStandby { setting } => {
            client.post(format!("{base}/agent/v1/forced-standby")).json(&json!({ "on": setting == "on" }))
        }
    };
    let response = request
        .bearer_auth(&agent.token)
        .send()
        .with_context(|| format!("the agent at {base} does not answer (is `tollgate agent` running?)"))?;
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("the agent at {base} refused: {}", body["error"].as_str().unwrap_or(status.as_str()));
    }
    match command {
        AgentCommand::Status => println!("{}", serde_json::to_string_pretty(&body)?),
        AgentCommand::ForcedStandby { .. } => {
            let held = body["forced_standby"] == true;
            println!(
                "{}: forced standby {}",
                body["server"].as_str().unwrap_or("this server"),
                if held { "on: its role takes over from nobody" } else { "off" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_listening_on_every_address_is_asked_on_loopback() {
        assert_eq!(base_url("0.0.0.0:7000".parse().unwrap()), "http://127.0.0.1:7000");
        assert_eq!(base_url("127.0.9.3:7001".parse().unwrap()), "http://127.0.9.3:7001");
        assert_eq!(base_url("[::1]:7002".parse().unwrap()), "http://[::1]:7002");
    }
}
