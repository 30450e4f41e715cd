//! Claiming and releasing the service address an SRP pair serves on.
//!
//! Two modes:
//! * `bind` (default): the service address is already routed to this server (both chassis on
//!   one host, a loopback address, or a network where the SBC lists both chassis and the
//!   Standby simply does not answer). Claiming is binding the ENUM listener.
//! * `ip`: the address moves between the chassis. Claiming adds it to `interface` (`ip addr
//!   add`) and announces it with gratuitous ARP (`arping -U`, iputils), so neighbours update
//!   their caches at once; releasing removes it. Needs CAP_NET_ADMIN.

use std::net::IpAddr;

use tokio::process::Command;

pub use tollgate_config::service_address::{ServiceAddressConfig, ServiceAddressMode};

/// The service address of this chassis.
#[derive(Debug, Clone)]
pub struct ServiceAddress {
    config: ServiceAddressConfig,
    ips: Vec<IpAddr>,
    /// Claimed since the last release: a service retrying what does not serve yet does not
    /// claim again what it holds.
    claimed: bool,
}

async fn run(program: &str, args: &[String]) -> anyhow::Result<()> {
    let out =
        Command::new(program).args(args).output().await.map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        anyhow::bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())
    }
}

impl ServiceAddress {
    /// The service address for these listener addresses.
    pub fn new(config: ServiceAddressConfig, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut ips: Vec<IpAddr> = ips.into_iter().filter(|ip| !ip.is_unspecified()).collect();
        ips.sort();
        ips.dedup();
        ServiceAddress { config, ips, claimed: false }
    }

    fn with_prefix(&self, ip: &IpAddr) -> String {
        let len = self.config.prefix_len.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
        format!("{ip}/{len}")
    }

    /// Makes the addresses this chassis', unless they are since the last claim (a service
    /// retrying what does not serve yet). The error, for the SRP alarm, names the service IP.
    pub async fn claim(&mut self) -> Result<(), String> {
        if !self.claimed {
            self.add().await.map_err(|e| format!("service IP: {e:#}"))?;
            self.claimed = true;
        }
        Ok(())
    }

    /// Adds the addresses to the interface and announces them. Repeatable: an address already
    /// present is fine.
    async fn add(&self) -> anyhow::Result<()> {
        if self.config.mode == ServiceAddressMode::Bind {
            return Ok(());
        }
        let dev = &self.config.interface;
        for ip in &self.ips {
            // "File exists" when it is already there (a restart while Active): fine.
            if let Err(e) =
                run("ip", &["addr".into(), "add".into(), self.with_prefix(ip), "dev".into(), dev.clone()]).await
                && !e.to_string().contains("File exists")
            {
                return Err(e);
            }
            if ip.is_ipv4() {
                // In the background: arping takes a second (two announcements), and the SRP
                // runtime waiting for it would send no hello meanwhile, so the mate would take
                // the chassis for dead in the middle of a switchover.
                let args: Vec<String> = vec![
                    "-U".into(),
                    "-c".into(),
                    "2".into(),
                    "-w".into(),
                    "1".into(),
                    "-I".into(),
                    dev.clone(),
                    ip.to_string(),
                ];
                tokio::spawn(async move {
                    run("arping", &args)
                        .await
                        .unwrap_or_else(|e| tracing::warn!(error = %e, "gratuitous ARP not sent"));
                });
            }
        }
        Ok(())
    }

    /// Gives the addresses up (claimed again by the next [`ServiceAddress::claim`], whatever
    /// the outcome).
    pub async fn release(&mut self) -> anyhow::Result<()> {
        self.claimed = false;
        if self.config.mode == ServiceAddressMode::Bind {
            return Ok(());
        }
        for ip in &self.ips {
            let args = ["addr".into(), "del".into(), self.with_prefix(ip), "dev".into(), self.config.interface.clone()];
            if let Err(e) = run("ip", &args).await
                && !e.to_string().contains("Cannot assign")
                && !e.to_string().contains("Address not found")
            {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// How long [`bind_retrying`] keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Every 5 ms for up to 5 s: at a switchover on one host the mate may still hold the
    /// sockets for a moment (a chassis taking the service).
    WaitForMate,
    /// One try (the SRP runtime's retries after a failed claim, which its loop waits for).
    Once,
}

/// Binds a pair's service sockets with `bind`, as patiently as `patience` says. The last error,
/// for the SRP runtime.
pub async fn bind_retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    patience: Patience,
    mut bind: impl FnMut() -> F,
) -> Result<T, String> {
    let deadline = match patience {
        Patience::WaitForMate => std::time::Instant::now() + std::time::Duration::from_secs(5),
        Patience::Once => std::time::Instant::now(),
    };
    loop {
        match bind().await {
            Ok(bound) => return Ok(bound),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "{what} busy; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
