//! A role's TLS material from `[tls]`, the TLS of its HTTP listeners and clients, and the rule
//! for its listeners without TLS.
//!
//! Per listener: the web UI and API (`serve`, engine, collector) and the manager's API accept
//! any client (browsers, the CLI; a certificate, if presented, must be of the CA), or only
//! clients with a certificate when `tls.require_client_certificates`; they speak TLS 1.2 and
//! 1.3 (browsers reach them). The agent's API accepts only managers, TLS 1.3. Routes for
//! other servers (ingest, the manager pair's) check the client certificate's role themselves
//! (`tollgate_web::http::MachinePeer`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tollgate_api::TlsConfig;
use tollgate_tls::tokio_rustls::TlsAcceptor;
use tollgate_tls::{ClientPolicy, Plaintext, RoleSet, TlsFiles, TlsMaterial, Versions};
use tollgate_web::server::HttpServer;

/// The ALPN protocol of every tollgate HTTP link.
const HTTP11: &[u8] = b"http/1.1";

use crate::config::Config;

/// The process's TLS material when `[tls]` names a certificate, checked and watched for
/// rotation (every `tls.reload_interval`); `None` without `[tls]`. Call once per process,
/// inside the runtime.
pub fn material(config: &Config) -> anyhow::Result<Option<TlsMaterial>> {
    let tls = &config.tls;
    let (Some(ca), Some(cert), Some(key)) = (&tls.ca, &tls.cert, &tls.key) else {
        return Ok(None);
    };
    let files = TlsFiles { ca: ca.clone(), cert: Some(cert.clone()), key: Some(key.clone()) };
    let material = TlsMaterial::load(files).context("[tls]")?;
    if let Some(leaf) = material.leaf() {
        tracing::info!(
            subject = %leaf.subject,
            role = leaf.role.map_or("none", |r| r.as_str()),
            not_after = %tollgate_tls::format_time(leaf.not_after),
            "TLS certificate loaded"
        );
    }
    material.spawn_watch(Duration::from_secs(tls.reload_interval_secs));
    Ok(Some(material))
}

/// The TLS material of a client process (the CLI, `tollgate lab`) from `[tls]`: the CA to
/// verify servers with, and the certificate to present when its key is readable. A person
/// running the CLI may not be allowed to read the server's key: then the client verifies the
/// server and presents no certificate. `None` without `[tls] ca`.
pub fn client_material(config: &Config) -> anyhow::Result<Option<TlsMaterial>> {
    let tls = &config.tls;
    let Some(ca) = &tls.ca else { return Ok(None) };
    let readable = |p: &std::path::Path| std::fs::File::open(p).is_ok();
    let (cert, key) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) if readable(key) && readable(cert) => (Some(cert.clone()), Some(key.clone())),
        _ => (None, None),
    };
    let material = TlsMaterial::load(TlsFiles { ca: ca.clone(), cert, key }).context("[tls]")?;
    Ok(Some(material))
}

/// Before binding the listener `setting` on `addr`: without `material` (no `[tls]`), checks
/// that it may serve plain HTTP ([`check_plaintext`]).
pub fn before_bind(
    config: &Config,
    material: Option<&TlsMaterial>,
    setting: &str,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    match material {
        Some(_) => Ok(()),
        None => check_plaintext(config, setting, addr),
    }
}

/// Puts `server` (the listener `setting`) on TLS with `material` when there is some,
/// accepting clients by `policy`.
pub fn secure(
    server: HttpServer,
    material: Option<&TlsMaterial>,
    setting: &str,
    policy: ClientPolicy,
    versions: Versions,
) -> anyhow::Result<HttpServer> {
    let Some(material) = material else { return Ok(server) };
    let tls = tollgate_tls::server_config(material, policy, versions, &[HTTP11])
        .with_context(|| format!("the TLS configuration of {setting}"))?;
    Ok(server.with_tls(TlsAcceptor::from(tls)))
}

/// The client policy of a web UI and API listener (`serve`, engine, collector, manager).
pub fn web_policy(config: &Config) -> ClientPolicy {
    if config.tls.require_client_certificates { ClientPolicy::only(RoleSet::ANY) } else { ClientPolicy::OPTIONAL }
}

/// The TLS configuration of a client of servers of `servers`, presenting `material`'s
/// certificate; `None` without material (plain HTTP).
pub fn client(material: Option<&TlsMaterial>, servers: RoleSet) -> anyhow::Result<Option<TlsConfig>> {
    let Some(material) = material else { return Ok(None) };
    let config = tollgate_tls::client_config(material, servers, Versions::Tls12And13, &[HTTP11])
        .context("the TLS client configuration")?;
    Ok(Some(config))
}

/// The TLS a CLI command speaks to the server at `base`: for an `https://` URL, a
/// configuration verifying the server against `[tls] ca` (any server role), presenting
/// `[tls]`'s certificate when its key is readable ([`client_material`]); `None` for `http://`.
pub fn cli_tls(config: &Config, base: &str) -> anyhow::Result<Option<TlsConfig>> {
    if !base.starts_with("https://") {
        return Ok(None);
    }
    let material = client_material(config)?.with_context(|| {
        format!("{base} is HTTPS: set [tls] ca in the configuration to the CA that issued its certificate")
    })?;
    client(Some(&material), RoleSet::SERVERS)
}

/// The URL scheme of this process's listeners: `https` with `[tls]`, else `http`.
pub fn scheme(config: &Config) -> &'static str {
    if config.tls.enabled() { "https" } else { "http" }
}

/// `addr` as a base URL of `scheme`, with `host` instead of an unspecified address
/// (`0.0.0.0` is not a name a certificate carries).
pub fn base_url(scheme: &str, addr: SocketAddr) -> String {
    let ip = addr.ip();
    let ip = if ip.is_unspecified() {
        if ip.is_ipv4() { std::net::IpAddr::from([127, 0, 0, 1]) } else { std::net::Ipv6Addr::LOCALHOST.into() }
    } else {
        ip
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Checks that the listener `setting` on `addr` may serve plain text (no `[tls]`): loopback,
/// or `tls.allow_plaintext` (then warns).
pub fn check_plaintext(config: &Config, setting: &str, addr: SocketAddr) -> anyhow::Result<()> {
    match tollgate_tls::check_plaintext(setting, addr, config.tls.allow_plaintext)? {
        Plaintext::Loopback => {}
        Plaintext::AllowedByConfig => tracing::warn!(
            listener = setting,
            %addr,
            "serving plain HTTP on a non-loopback address (tls.allow_plaintext = true): passwords and tokens cross the network in clear"
        ),
    }
    Ok(())
}
