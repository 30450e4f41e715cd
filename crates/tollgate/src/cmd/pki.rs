//! `tollgate pki`: the built-in CA's command line. Thin: making, signing and reading
//! certificates is `tollgate_tls::pki`'s; this module checks paths, prints and says what next.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use tollgate_tls::CertInfo;
use tollgate_tls::pki::{CA_CERT_FILE, CA_KEY_FILE, Ca, IssueRequest, describe_file, issued_paths};

use crate::cli::PkiCommand;
use crate::config::Config;

/// Runs `tollgate pki ...`. `config` is `--config` (read only by `show` without files).
pub fn run(config: Option<&Path>, command: &PkiCommand) -> anyhow::Result<ExitCode> {
    match command {
        PkiCommand::Init { dir, name, validity } => init(dir, name, *validity),
        PkiCommand::Issue { role, host, ip, dns, validity, dir, out_dir, force } => {
            let request = IssueRequest {
                role: *role,
                host: host.clone(),
                ips: ip.clone(),
                dns_names: dns.clone(),
                validity: *validity,
            };
            issue(dir, out_dir.as_deref().unwrap_or(dir), &request, *force)
        }
        PkiCommand::Show { files, dir, json } => {
            let files = if files.is_empty() { default_show_files(config, dir)? } else { files.clone() };
            show(&files, *json)
        }
    }
}

fn init(dir: &Path, name: &str, validity: std::time::Duration) -> anyhow::Result<ExitCode> {
    let ca = Ca::init(dir, name, validity).with_context(|| format!("cannot make a CA in {}", dir.display()))?;
    let info = ca.info();
    outln!("CA made in {}:", dir.display())?;
    outln!("  {}  (the CA certificate: copy it to every server)", dir.join(CA_CERT_FILE).display())?;
    outln!("  {}  (the CA key, 0600: keep it on this host only)", dir.join(CA_KEY_FILE).display())?;
    outln!("  subject      {}", info.subject)?;
    outln!("  expires      {} ({} days)", tollgate_tls::format_time(info.not_after), days_left(info))?;
    outln!("  fingerprint  SHA256 {}", info.sha256_fingerprint)?;
    outln!("next: issue one certificate per server, e.g.")?;
    outln!("  tollgate pki issue --dir {} --role engine --host east-a --ip 10.0.0.11", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

fn issue(dir: &Path, out_dir: &Path, request: &IssueRequest, force: bool) -> anyhow::Result<ExitCode> {
    if !dir.join(CA_CERT_FILE).exists() || !dir.join(CA_KEY_FILE).exists() {
        bail!(
            "no CA in {}: make one first with `tollgate pki init --dir {}` (or give the CA's directory with --dir)",
            dir.display(),
            dir.display()
        );
    }
    if request.host.is_empty() || request.host.contains(['/', '\0']) || request.host.starts_with('.') {
        bail!("--host '{}' is not a host name (it also names the files <host>.crt and <host>.key)", request.host);
    }
    let (cert, key) = issued_paths(out_dir, &request.host);
    if !force {
        for path in [&cert, &key] {
            if path.exists() {
                bail!(
                    "{} already exists: to rotate the certificate of {}, issue it again with --force",
                    path.display(),
                    request.host
                );
            }
        }
    }
    let ca = Ca::load(dir).with_context(|| format!("the CA in {}", dir.display()))?;
    let issued = ca.issue(request).with_context(|| format!("cannot issue a certificate for {}", request.host))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    issued.write(&cert, &key)?;
    let info = &issued.info;
    outln!("{} certificate for {} issued by {}:", request.role, request.host, ca.info().subject)?;
    outln!("  {}", cert.display())?;
    outln!("  {}  (0600)", key.display())?;
    print_names(info)?;
    outln!("  serial       {}", info.serial)?;
    outln!("  expires      {} ({} days)", tollgate_tls::format_time(info.not_after), days_left(info))?;
    outln!("  fingerprint  SHA256 {}", info.sha256_fingerprint)?;
    let pki = tollgate_tls::pki::DEFAULT_PKI_DIR;
    outln!(
        "next: copy {}, {} and {} to {pki}/ on {} (the key 0600, owned by the user tollgate runs as), and set",
        dir.join(CA_CERT_FILE).display(),
        cert.display(),
        key.display(),
        request.host
    )?;
    outln!(
        "  [tls]\n  ca = \"{pki}/{CA_CERT_FILE}\"\n  cert = \"{pki}/{host}.crt\"\n  key = \"{pki}/{host}.key\"",
        host = request.host
    )?;
    if force {
        outln!("a running server picks a rotated certificate up within tls.reload_interval, or at once on SIGHUP")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `show` without files: the CA (`[tls] ca`, else `<dir>/ca.crt`) and `[tls] cert` if set.
fn default_show_files(config: Option<&Path>, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let config = Config::load(config)?;
    let ca = config.tls.ca.clone().unwrap_or_else(|| dir.join(CA_CERT_FILE));
    if !ca.exists() {
        bail!(
            "no CA certificate at {}: name certificate files, give the CA's directory with --dir, or set [tls] in the configuration",
            ca.display()
        );
    }
    let mut files = vec![ca];
    files.extend(config.tls.cert.clone());
    Ok(files)
}

/// One certificate as `show --json` prints it.
#[derive(Debug, Serialize)]
struct CertView {
    file: PathBuf,
    subject: String,
    issuer: String,
    role: Option<String>,
    host: Option<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<String>,
    is_ca: bool,
    serial: String,
    not_before: String,
    not_after: String,
    not_after_unix: u64,
    days_left: i64,
    expired: bool,
    sha256_fingerprint: String,
}

impl CertView {
    fn new(file: &Path, info: &CertInfo) -> CertView {
        CertView {
            file: file.to_path_buf(),
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            role: info.role.map(|r| r.to_string()),
            host: if info.is_ca { None } else { info.host() },
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.iter().map(ToString::to_string).collect(),
            is_ca: info.is_ca,
            serial: info.serial.clone(),
            not_before: tollgate_tls::format_time(info.not_before),
            not_after: tollgate_tls::format_time(info.not_after),
            not_after_unix: info.not_after.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            days_left: days_left(info),
            expired: info.not_after <= SystemTime::now(),
            sha256_fingerprint: info.sha256_fingerprint.clone(),
        }
    }
}

fn show(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut views = Vec::new();
    for file in files {
        let infos = describe_file(file)?;
        views.extend(infos.iter().map(|info| CertView::new(file, info)));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&views)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            outln!()?;
        }
        outln!("{}{}", v.file.display(), if v.is_ca { " (CA)" } else { "" })?;
        outln!("  subject      {}", v.subject)?;
        if let Some(role) = &v.role {
            outln!("  role         {role}")?;
        }
        if let Some(host) = &v.host {
            outln!("  host         {host}")?;
        }
        if !v.dns_names.is_empty() {
            outln!("  DNS names    {}", v.dns_names.join(", "))?;
        }
        if !v.ip_addresses.is_empty() {
            outln!("  IPs          {}", v.ip_addresses.join(", "))?;
        }
        outln!("  issuer       {}", v.issuer)?;
        outln!("  serial       {}", v.serial)?;
        outln!("  valid        {} .. {}", v.not_before, v.not_after)?;
        if v.expired {
            outln!("  days left    EXPIRED")?;
        } else {
            outln!("  days left    {}", v.days_left)?;
        }
        outln!("  fingerprint  SHA256 {}", v.sha256_fingerprint)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_names(info: &CertInfo) -> std::io::Result<()> {
    outln!("  subject      {}", info.subject)?;
    if !info.dns_names.is_empty() {
        outln!("  DNS names    {}", info.dns_names.join(", "))?;
    }
    if !info.ip_addresses.is_empty() {
        let ips: Vec<String> = info.ip_addresses.iter().map(ToString::to_string).collect();
        outln!("  IPs          {}", ips.join(", "))?;
    }
    Ok(())
}

/// Whole days until the certificate expires (negative once it has).
fn days_left(info: &CertInfo) -> i64 {
    let now = SystemTime::now();
    match info.not_after.duration_since(now) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -(e.duration().as_secs().div_ceil(86_400) as i64),
    }
}
