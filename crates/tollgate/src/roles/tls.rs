//! A role's TLS material from `[tls]`, the TLS of its HTTP listeners and clients, the rule
//! for its listeners without TLS, and what a role does with its material besides presenting
//! it ([`supervise`]): reload on SIGHUP, the expiry alarms, the facts `GET /api/v1/tls` and
//! `tollgate health` report.
//!
//! Per listener: the web UI and API (`serve`, engine, collector) and the manager's API accept
//! any client (browsers, the CLI; a certificate, if presented, must be of the CA), or only
//! clients with a certificate when `tls.require_client_certificates`; they speak TLS 1.2 and
//! 1.3 (browsers reach them). The agent's API accepts only managers, TLS 1.3. Routes for
//! other servers (ingest, the manager pair's) check the client certificate's role themselves
//! (`tollgate_web::http::MachinePeer`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tollgate_alarms::{self as alarms, Alarms};
use tollgate_api::TlsConfig;
use tollgate_api::tls::{Expiry, TlsCertificate, TlsStatus};
use tollgate_tls::tokio_rustls::TlsAcceptor;
use tollgate_tls::{CertInfo, ClientPolicy, Plaintext, Reloaded, RoleSet, TlsFiles, TlsMaterial, Versions};
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
    // `systemctl reload` (SIGHUP) reloads it at once: [`supervise`] registers that reload.
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

/// The longest time between two expiry checks (also run at start and after each reload).
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// What [`supervise`] keeps for a role's material: the alarms it raises, the last SIGHUP
/// reload's failure.
struct Supervisor {
    material: TlsMaterial,
    alarms: Box<dyn AsRef<Alarms> + Send + Sync>,
    node: String,
    warning_secs: i64,
    last_error: Mutex<Option<String>>,
}

/// Supervises the process's TLS material: a SIGHUP reloads it at once (logged; a bad file
/// keeps the material in force and counts a failure), its expiry is checked at start, after
/// each SIGHUP reload and at least hourly (alarms TLS_CERT_EXPIRING and
/// TLS_CERT_EXPIRY_CRITICAL, raised for `node` and cleared once a rotated certificate is in
/// force). Returns what `GET /api/v1/tls` reports. Call once per process, inside the runtime,
/// after [`crate::roles::reload::spawn_handler`].
pub fn supervise<A>(material: &TlsMaterial, config: &Config, alarms: A, node: &str) -> tollgate_web::TlsStatusFn
where
    A: AsRef<Alarms> + Send + Sync + 'static,
{
    let sup = Arc::new(Supervisor {
        material: material.clone(),
        alarms: Box::new(alarms),
        node: node.to_string(),
        warning_secs: i64::try_from(config.tls.expiry_warning_secs).unwrap_or(i64::MAX),
        last_error: Mutex::new(None),
    });
    sup.check_expiry();
    let hook = sup.clone();
    crate::roles::reload::on_reload("TLS certificates", move || hook.reload_now());
    // The file watch (tls.reload_interval) may put a rotated certificate in force between
    // SIGHUPs: checking as often keeps the alarms in step with it (the check reads memory).
    let every = Duration::from_secs(config.tls.reload_interval_secs).clamp(Duration::from_secs(1), EXPIRY_CHECK_EVERY);
    let periodic = sup.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            periodic.check_expiry();
        }
    });
    Arc::new(move || sup.status())
}

impl Supervisor {
    /// Reloads the material now (SIGHUP).
    fn reload_now(&self) -> anyhow::Result<()> {
        let outcome = self.material.reload();
        let result = match outcome {
            Ok(Reloaded::Changed(leaf)) => {
                self.material.log_changed(leaf.as_deref());
                Ok(())
            }
            Ok(Reloaded::Unchanged) => {
                tracing::info!("TLS material unchanged");
                Ok(())
            }
            Err(e) => Err(e),
        };
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = result.as_ref().err().map(ToString::to_string);
        self.check_expiry();
        result.context("TLS material not reloaded; the material in force stays")
    }

    /// Raises or clears the expiry alarms for the certificate and the CA in force.
    fn check_expiry(&self) {
        let status = self.status();
        let alarms = (*self.alarms).as_ref();
        let certificate = format!("{} certificate", self.node);
        let ca = format!("{} CA", self.node);
        let mut cas = status.ca.iter().collect::<Vec<_>>();
        cas.sort_by_key(|c| c.seconds_left);
        for (scope, cert) in [(certificate, status.certificate.as_ref()), (ca, cas.first().copied())] {
            let level = cert.map_or(Expiry::Ok, |c| c.expiry(self.warning_secs));
            let detail = || {
                cert.map_or_else(String::new, |c| {
                    format!("{} expires {} ({} days left)", c.subject, c.not_after, c.days_left())
                })
            };
            alarms.set(alarms::TLS_CERT_EXPIRING, &scope, level == Expiry::Warning, detail);
            alarms.set(alarms::TLS_CERT_EXPIRY_CRITICAL, &scope, level == Expiry::Critical, detail);
        }
    }

    /// The facts of the material in force.
    fn status(&self) -> TlsStatus {
        let now = SystemTime::now();
        TlsStatus {
            enabled: true,
            certificate: self.material.leaf().map(|c| certificate(&c, now)),
            ca: self.material.ca().iter().map(|c| certificate(c, now)).collect(),
            expiry_warning_secs: self.warning_secs,
            reloads: self.material.reloads(),
            reload_failures: self.material.reload_failures(),
            last_reload_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// A certificate's facts as the API reports them, `now` being when they are taken.
fn certificate(info: &CertInfo, now: SystemTime) -> TlsCertificate {
    let unix = |t: SystemTime| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    TlsCertificate {
        subject: info.subject.clone(),
        role: info.role.map(|r| r.to_string()),
        host: if info.is_ca { None } else { info.host() },
        issuer: info.issuer.clone(),
        serial: info.serial.clone(),
        sha256_fingerprint: info.sha256_fingerprint.clone(),
        not_after_unix: unix(info.not_after),
        not_after: tollgate_tls::format_time(info.not_after),
        seconds_left: unix(info.not_after) - unix(now),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tollgate_tls::Role;
    use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, IssueRequest, issued_paths};

    use super::*;

    fn issue(ca: &Ca, dir: &Path, days: u64) -> TlsFiles {
        let request = IssueRequest {
            role: Role::Engine,
            host: "east-a".into(),
            ips: vec![],
            dns_names: vec![],
            validity: Duration::from_secs(days * 86_400),
        };
        let (cert, key) = issued_paths(dir, "east-a");
        ca.issue(&request).unwrap().write(&cert, &key).unwrap();
        TlsFiles { ca: dir.join("ca.crt"), cert: Some(cert), key: Some(key) }
    }

    fn raised(alarms: &Alarms) -> Vec<(&'static str, String)> {
        alarms.active().iter().map(|a| (a.def.name, a.scope.clone())).collect()
    }

    #[test]
    fn expiry_alarms_follow_the_certificate_in_force_and_clear_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), "test CA", DEFAULT_CA_VALIDITY).unwrap();
        let files = issue(&ca, dir.path(), 20);
        let alarms = Arc::new(Alarms::default());
        let sup = Supervisor {
            material: TlsMaterial::load(files).unwrap(),
            alarms: Box::new(alarms.clone()),
            node: "east-a".into(),
            warning_secs: 30 * 86_400,
            last_error: Mutex::new(None),
        };
        sup.check_expiry();
        assert_eq!(raised(&alarms), [("TLS_CERT_EXPIRING", "east-a certificate".to_string())]);
        let status = sup.status();
        let leaf = status.certificate.clone().unwrap();
        assert_eq!((leaf.role.as_deref(), leaf.host.as_deref()), (Some("engine"), Some("east-a")));
        assert!((19..=20).contains(&leaf.days_left()), "{leaf:?}");

        // Within a week: critical instead of major.
        issue(&ca, dir.path(), 3);
        sup.reload_now().unwrap();
        assert_eq!(raised(&alarms), [("TLS_CERT_EXPIRY_CRITICAL", "east-a certificate".to_string())]);

        // A rotated certificate of a year clears them; the reload is counted.
        issue(&ca, dir.path(), 365);
        sup.reload_now().unwrap();
        assert!(raised(&alarms).is_empty(), "{:?}", raised(&alarms));
        let names: Vec<(bool, &str)> = alarms.history().iter().map(|e| (e.raised, e.name)).collect();
        assert_eq!(
            names,
            [
                (true, "TLS_CERT_EXPIRING"),
                (false, "TLS_CERT_EXPIRING"),
                (true, "TLS_CERT_EXPIRY_CRITICAL"),
                (false, "TLS_CERT_EXPIRY_CRITICAL")
            ]
        );
        let status = sup.status();
        assert_eq!((status.reloads, status.reload_failures, status.last_reload_error), (2, 0, None));
        let serial = status.certificate.unwrap().serial;

        // A broken file: the certificate in force stays, the failure is counted and reported.
        std::fs::write(dir.path().join("east-a.crt"), "not a certificate").unwrap();
        let e = sup.reload_now().unwrap_err();
        assert!(format!("{e:#}").contains("east-a.crt"), "{e:#}");
        let status = sup.status();
        assert_eq!(status.certificate.unwrap().serial, serial);
        assert_eq!(status.reload_failures, 1);
        assert!(status.last_reload_error.is_some_and(|e| e.contains("east-a.crt")));
        assert!(raised(&alarms).is_empty());
    }
}
