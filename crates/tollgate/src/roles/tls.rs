//! A role's TLS material from `[tls]`, and the rule for its listeners without TLS.

// Wired into the listeners and clients by the HTTPS work (issue 13); until then unused.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tollgate_tls::{Plaintext, TlsFiles, TlsMaterial};

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
    // `systemctl reload` (SIGHUP) reloads the certificates at once, without waiting for the watch.
    let on_sighup = material.clone();
    crate::roles::reload::on_reload("tls certificates", move || {
        on_sighup.reload().map(|_| ()).map_err(|e| anyhow::anyhow!("[tls]: {e}"))
    });
    Ok(Some(material))
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
