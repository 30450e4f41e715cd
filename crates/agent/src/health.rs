//! `tollgate health`: the seed's syscheck, class by class ("Running modules in class disk...
//! OK"), for one server. Classes: disk, hardware (memory and load), proc, net, replication (an
//! SRP engine's copy), alarms, system (time sync, /tmp permissions), upgrade (the release in
//! force).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

pub use tollgate_api::agent::{ClassResult, Health, Verdict};

/// What the checks look at.
pub struct Inputs<'a> {
    /// The server's name.
    pub server: &'a str,
    /// Directory whose disk is checked.
    pub dir: &'a Path,
    /// Whether the role process runs.
    pub process_running: bool,
    /// The role's API base URL (`http://...`), for net, replication and alarms.
    pub role_api: Option<&'a str>,
    /// A token for the role's API.
    pub role_token: Option<&'a str>,
    /// TLS for the role's API (`https://`), when the role serves it.
    pub role_tls: Option<&'a tollgate_api::TlsConfig>,
    /// The release in force and the expected one (`None`: no expectation).
    pub release: (&'a str, Option<&'a str>),
}

fn result(class: &str, verdict: Verdict, detail: impl Into<String>) -> ClassResult {
    ClassResult { class: class.to_string(), verdict, detail: detail.into() }
}

async fn disk(dir: &Path) -> ClassResult {
    let out = Command::new("df").args(["-P", "-B1"]).arg(dir).output().await;
    let Ok(out) = out else { return result("disk", Verdict::Info, "df not available") };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(fields) = text.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()) else {
        return result("disk", Verdict::Info, "df printed nothing");
    };
    let (size, avail) =
        (fields.get(1).and_then(|v| v.parse::<u64>().ok()), fields.get(3).and_then(|v| v.parse::<u64>().ok()));
    match (size, avail) {
        (Some(size), Some(avail)) if size > 0 => {
            let pct = avail as f64 * 100.0 / size as f64;
            let detail = format!("{} MiB free ({pct:.0}%) under {}", avail >> 20, dir.display());
            if avail < 100 << 20 || pct < 5.0 {
                result("disk", Verdict::Failure, detail)
            } else {
                result("disk", Verdict::Ok, detail)
            }
        }
        _ => result("disk", Verdict::Info, "cannot read df's output"),
    }
}

/// The hardware class from `/proc/meminfo` and `/proc/loadavg`: a failure when less than 5 %
/// (or 64 MiB) of the memory is available, worth a look when the load is above twice the CPUs.
fn hardware(meminfo: &str, loadavg: &str, cpus: usize) -> ClassResult {
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim_start_matches(':').split_whitespace().next()?.parse::<u64>().ok())
    };
    let load = loadavg.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
    let (Some(total), Some(avail), Some(load)) = (kib("MemTotal"), kib("MemAvailable"), load) else {
        return result("hardware", Verdict::Info, "cannot read /proc/meminfo or /proc/loadavg");
    };
    let pct = if total == 0 { 0.0 } else { avail as f64 * 100.0 / total as f64 };
    let detail = format!("{} MiB memory available ({pct:.0}%); load {load:.2} on {cpus} CPU(s)", avail >> 10);
    if avail < 64 << 10 || pct < 5.0 {
        result("hardware", Verdict::Failure, detail)
    } else if load > 2.0 * cpus.max(1) as f64 {
        result("hardware", Verdict::Info, detail)
    } else {
        result("hardware", Verdict::Ok, detail)
    }
}

fn hardware_now() -> ClassResult {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    hardware(&read("/proc/meminfo"), &read("/proc/loadavg"), cpus)
}

async fn system() -> ClassResult {
    let tmp_ok = std::fs::metadata("/tmp").map(|m| m.permissions().mode() & 0o7777 == 0o1777).unwrap_or(false);
    let sync = Command::new("timedatectl").args(["show", "-p", "NTPSynchronized", "--value"]).output().await;
    let sync = match sync {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim() == "yes"),
        _ => None,
    };
    match (tmp_ok, sync) {
        (false, _) => result("system", Verdict::Failure, "/tmp is not drwxrwxrwt (1777)"),
        (true, Some(false)) => result("system", Verdict::Failure, "the clock is not synchronised (NTP)"),
        (true, Some(true)) => result("system", Verdict::Ok, "/tmp 1777; clock synchronised"),
        (true, None) => result("system", Verdict::Info, "/tmp 1777; no time-sync information (timedatectl)"),
    }
}

/// What the checks read of the role's `show srp info` answer (the rest is ignored).
#[derive(serde::Deserialize)]
struct SrpInfo {
    #[serde(default)]
    data: SrpInfoData,
}

#[derive(Default, serde::Deserialize)]
struct SrpInfoData {
    #[serde(default)]
    chassis_state: Option<String>,
    #[serde(default)]
    ready: bool,
}

/// The tls class from the role's TLS facts: the certificate presented, its role and expiry;
/// INFO within `tls.expiry_warning`, FAILURE within a week of expiry (or past it).
fn tls_class(
    status: Result<tollgate_api::tls::TlsStatus, String>,
) -> (ClassResult, Option<tollgate_api::tls::TlsStatus>) {
    use tollgate_api::tls::Expiry;
    let status = match status {
        Ok(s) => s,
        Err(e) => return (result("tls", Verdict::Info, format!("cannot read the role's TLS facts: {e}")), None),
    };
    if !status.enabled {
        return (result("tls", Verdict::Ok, "no [tls]: plain HTTP, loopback only unless allowed"), Some(status));
    }
    let mut detail = match &status.certificate {
        Some(c) => format!(
            "{} (role {}), expires {} ({} days left)",
            c.subject,
            c.role.as_deref().unwrap_or("none"),
            c.not_after,
            c.days_left()
        ),
        None => "no certificate presented".to_string(),
    };
    if let Some(e) = &status.last_reload_error {
        detail.push_str(&format!("; last reload failed: {e}"));
    }
    let nearest = status.nearest_expiry();
    if let Some((c, level)) = nearest
        && level != Expiry::Ok
        && !status.certificate.as_ref().is_some_and(|leaf| std::ptr::eq(c, leaf))
    {
        detail.push_str(&format!("; the CA {} expires {}", c.subject, c.not_after));
    }
    let verdict = match nearest.map(|(_, level)| level) {
        Some(Expiry::Critical) => Verdict::Failure,
        Some(Expiry::Warning) => {
            detail.push_str("; rotate it (tollgate pki issue --force)");
            Verdict::Info
        }
        _ => Verdict::Ok,
    };
    (result("tls", verdict, detail), Some(status))
}

/// Runs every class.
pub async fn check(i: Inputs<'_>) -> Health {
    let mut classes = vec![disk(i.dir).await, hardware_now()];
    let mut tls = None;
    classes.push(if i.process_running {
        result("proc", Verdict::Ok, "the role process runs")
    } else {
        result("proc", Verdict::Failure, "the role process is not running")
    });
    match i.role_api {
        Some(api) => {
            let client = tollgate_api::Client::with_tls(
                api,
                i.role_token.map(str::to_string),
                Duration::from_secs(3),
                i.role_tls,
            );
            let net = match &client {
                Ok(c) => c.get_text("/healthz").await.is_ok(),
                Err(_) => false,
            };
            classes.push(if net {
                result("net", Verdict::Ok, format!("{api} answers"))
            } else {
                result("net", Verdict::Failure, format!("{api} does not answer"))
            });
            let client = client.map_err(|e| e.to_string());
            let srp = match &client {
                Ok(c) => c.get::<SrpInfo>("/api/v1/srp/show/info").await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            classes.push(match srp {
                Ok(v) => {
                    let state = v.data.chassis_state.unwrap_or_else(|| "?".to_string());
                    let ready = v.data.ready;
                    if state == "Active" || ready {
                        result("replication", Verdict::Ok, format!("SRP {state}, copy synchronised: {ready}"))
                    } else {
                        result("replication", Verdict::Failure, format!("SRP {state}, copy not synchronised"))
                    }
                }
                Err(_) => result("replication", Verdict::Ok, "no SRP pair on this server"),
            });
            let alarms = match &client {
                Ok(c) => c.get::<tollgate_api::web::RoleAlarms>("/api/v1/alarms").await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            classes.push(match alarms {
                Ok(v) => {
                    let active = v.active.len();
                    if active == 0 {
                        result("alarms", Verdict::Ok, "no active alarms")
                    } else {
                        result("alarms", Verdict::Info, format!("{active} active alarm(s)"))
                    }
                }
                Err(e) => result("alarms", Verdict::Info, format!("cannot read alarms: {e}")),
            });
            let status = match &client {
                Ok(c) => c.get::<tollgate_api::tls::TlsStatus>(tollgate_api::tls::TLS).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            let (class, status) = tls_class(status);
            classes.push(class);
            tls = status;
        }
        None => classes.push(result("net", Verdict::Info, "no role API to check")),
    }
    classes.push(system().await);
    let (running, expected) = i.release;
    classes.push(match expected {
        Some(want) if want != running => {
            result("upgrade", Verdict::Failure, format!("runs {running}, expected {want}"))
        }
        _ => result("upgrade", Verdict::Ok, format!("runs {running}")),
    });
    Health { server: i.server.to_string(), classes, tls }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_api::tls::{TlsCertificate, TlsStatus};

    #[test]
    fn tls_warns_within_the_window_and_fails_within_a_week() {
        let status = |days: i64| TlsStatus {
            enabled: true,
            certificate: Some(TlsCertificate {
                subject: "O=tollgate, OU=engine, CN=east-a".into(),
                role: Some("engine".into()),
                not_after: "2027-01-01 00:00:00 UTC".into(),
                seconds_left: days * 86_400 + 60,
                ..TlsCertificate::default()
            }),
            expiry_warning_secs: 30 * 86_400,
            ..TlsStatus::default()
        };
        let (ok, facts) = tls_class(Ok(status(200)));
        assert_eq!(ok.verdict, Verdict::Ok, "{}", ok.detail);
        assert!(ok.detail.contains("CN=east-a (role engine), expires 2027-01-01 00:00:00 UTC (200 days left)"));
        assert_eq!(facts, Some(status(200)));
        let (warn, _) = tls_class(Ok(status(20)));
        assert_eq!(warn.verdict, Verdict::Info, "{}", warn.detail);
        assert!(warn.detail.contains("rotate"), "{}", warn.detail);
        assert_eq!(tls_class(Ok(status(3))).0.verdict, Verdict::Failure);
        assert_eq!(tls_class(Ok(TlsStatus::default())).0.verdict, Verdict::Ok);
        assert_eq!(tls_class(Err("404".into())).0.verdict, Verdict::Info);
    }

    const MEMINFO: &str = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   12288000 kB\n";

    #[test]
    fn hardware_fails_on_low_memory_and_flags_high_load() {
        let ok = hardware(MEMINFO, "0.50 0.40 0.30 1/200 999", 2);
        assert_eq!(ok.verdict, Verdict::Ok, "{}", ok.detail);
        assert!(ok.detail.contains("12000 MiB memory available (50%)"), "{}", ok.detail);
        assert_eq!(hardware(MEMINFO, "4.10 3.0 2.0 1/200 999", 2).verdict, Verdict::Info);
        let low = MEMINFO.replace("12288000", "512000");
        let bad = hardware(&low, "0.1 0.1 0.1 1/1 1", 2);
        assert_eq!(bad.verdict, Verdict::Failure, "{}", bad.detail);
        assert_eq!(hardware("", "", 2).verdict, Verdict::Info);
    }
}
