//! `tollgate health`: every server's syscheck through the manager, or this server's through its
//! agent (`--local`). Exit status 1 when a class failed.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tollgate_api::ErrorCode;
use tollgate_api::agent::{self, HealthAnswer};
use tollgate_api::manager::SystemHealth;

use crate::cli::HealthArgs;
use crate::cmd::upgrade::{CLI_TIMEOUT, client};
use crate::config::Config;

/// Runs `tollgate health`.
pub fn run(config: &Config, args: &HealthArgs) -> anyhow::Result<ExitCode> {
    if args.local {
        let agent = config.agent.as_ref().ok_or_else(|| anyhow!("--local needs an [agent] section"))?;
        let base = crate::cmd::agent::base_url(config, agent.listen);
        let answer: HealthAnswer =
            crate::cmd::agent::agent_client(config, &base, &agent.token, CLI_TIMEOUT)?.get(agent::HEALTH)?;
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&answer)?),
            false => print!("{}", answer.text),
        }
        return Ok(if answer.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let api = client(config, &args.target)?;
    let answer: SystemHealth = match api.get("/api/v1/health") {
        Ok(a) => a,
        // Engines, collectors and probes have no system-wide health: only a manager does.
        Err(e) if e.code() == Some(ErrorCode::NotFound) => bail!(
            "{} is not a tollgate manager (it has no system health): give the manager's API with --api, \
             or use --local for this server's agent",
            api.inner().base()
        ),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        for server in &answer.servers {
            println!("== {} ({})", server.hostname, server.cluster);
            print!("{}", server.text);
        }
        println!("system: {}", if answer.ok { "OK" } else { "FAILED" });
    }
    Ok(if answer.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::cli::Target;

    #[test]
    fn a_server_that_is_not_a_manager_is_named_as_such() {
        // An engine's API: no /api/v1/health.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        });
        let args = HealthArgs {
            local: false,
            json: false,
            target: Target { api: Some(url.clone()), token: Some("t".into()) },
        };
        let e = run(&Config::default(), &args).unwrap_err().to_string();
        assert!(e.contains(&format!("{url} is not a tollgate manager")), "{e}");
        assert!(!e.contains("404"), "{e}");
        server.join().unwrap();
    }
}
