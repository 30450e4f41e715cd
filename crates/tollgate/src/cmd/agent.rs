//! `tollgate agent status | forced-standby on|off`: asks the running agent of this server (its
//! `[agent]` listen address and token), for when no manager is there to ask: a held standby
//! manager whose active is gone, a server taken out of the Director's hands.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tollgate_api::agent::{self, AgentStatus, ForcedStandbyRequest};
use tollgate_api::{BlockingClient, ClientError};

use crate::cli::AgentCommand;
use crate::config::Config;

/// The agent's base URL: its listen address (the loopback address when it listens on all),
/// `https://` when `[tls]` is configured.
pub fn base_url(config: &Config, listen: std::net::SocketAddr) -> String {
    crate::roles::tls::base_url(crate::roles::tls::scheme(config), listen)
}

/// A client of the agent at `base` with its token. Over TLS the agent accepts only a
/// manager's certificate: the configuration's `[tls]` must be one (a manager's host).
pub fn agent_client(config: &Config, base: &str, token: &str, timeout: Duration) -> anyhow::Result<BlockingClient> {
    let tls = crate::roles::tls::cli_tls(config, base)?;
    Ok(BlockingClient::with_tls(base, Some(token.to_string()), timeout, tls.as_ref())?)
}

/// A client of this server's running agent (its `[agent]` listen address and token), and the
/// agent's base URL (for messages).
pub fn local_client(config: &Config) -> anyhow::Result<(BlockingClient, String)> {
    let agent = config.agent.as_ref().context("`tollgate agent ...` needs the agent's [agent] section (--config)")?;
    let base = base_url(config, agent.listen);
    Ok((agent_client(config, &base, &agent.token, Duration::from_secs(10))?, base))
}

/// Runs one command against the running agent.
pub fn run(config: &Config, command: &AgentCommand) -> anyhow::Result<ExitCode> {
    let (client, base) = local_client(config)?;
    let explain = |e: ClientError| match e {
        ClientError::Unreachable { reason, .. } => {
            anyhow::anyhow!("the agent at {base} does not answer (is `tollgate agent` running?): {reason}")
        }
        ClientError::Api { body, .. } => anyhow::anyhow!("the agent at {base} refused: {}", body.message),
        e => anyhow::anyhow!(e),
    };
    match command {
        AgentCommand::Status => {
            let status: AgentStatus = client.get(agent::STATUS).map_err(explain)?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        AgentCommand::ForcedStandby { setting } => {
            let request = ForcedStandbyRequest { on: setting == "on" };
            let status: AgentStatus = client.post(agent::FORCED_STANDBY, &request).map_err(explain)?;
            let server = if status.server.is_empty() { "this server" } else { status.server.as_str() };
            println!(
                "{server}: forced standby {}",
                if status.forced_standby { "on: its role takes over from nobody" } else { "off" }
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
        let plain = Config::default();
        assert_eq!(base_url(&plain, "0.0.0.0:7000".parse().unwrap()), "http://127.0.0.1:7000");
        assert_eq!(base_url(&plain, "127.0.9.3:7001".parse().unwrap()), "http://127.0.9.3:7001");
        assert_eq!(base_url(&plain, "[::1]:7002".parse().unwrap()), "http://[::1]:7002");
        let mut tls = Config::default();
        tls.tls.cert = Some("/etc/tollgate/pki/east-a.crt".into());
        assert_eq!(base_url(&tls, "0.0.0.0:7000".parse().unwrap()), "https://127.0.0.1:7000");
    }
}
