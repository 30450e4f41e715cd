//! `[shared_counters]`: velocity counters and calls in progress shared by every engine and probe
//! that names the same Redis (or Valkey) and namespace.

use serde::{Deserialize, Serialize};

use crate::{Problem, check_range, duration};

/// `[shared_counters]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedCountersConfig {
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS (verified against
    /// `[tls] ca` when set). Empty: counters are per engine process. With `sentinels`, its
    /// scheme, password and database apply to the master the sentinels name; its host is not
    /// used.
    pub url: String,
    /// Redis Sentinel addresses (`host:port`): the Redis used is the master they name
    /// `sentinel_master`, asked again on every reconnection (so a failover is followed).
    pub sentinels: Vec<String>,
    /// The master's name in the sentinels' configuration.
    pub sentinel_master: String,
    /// The prefix of the Redis keys: engines and probes with the same Redis and namespace share
    /// their counters (one namespace per engine cluster, or one for several clusters).
    pub namespace: String,
    /// How often the counted calls are sent and the others' read, ms.
    #[serde(rename = "interval", with = "duration::millis")]
    pub interval_ms: u64,
    /// How long batches stay in Redis for an engine that starts or comes back, seconds.
    #[serde(rename = "history", with = "duration::secs")]
    pub history_secs: u64,
    /// A probe not heard from for this long is forgotten with its calls in progress, seconds.
    #[serde(rename = "probe_ttl", with = "duration::secs")]
    pub probe_ttl_secs: u64,
    /// The longest one exchange with Redis may take before Redis counts as unreachable, ms.
    #[serde(rename = "timeout", with = "duration::millis")]
    pub timeout_ms: u64,
    /// Calls counted while Redis is unreachable, kept to be sent when it returns (the oldest are
    /// dropped beyond it, and counted).
    pub max_pending: u64,
}

impl Default for SharedCountersConfig {
    fn default() -> Self {
        SharedCountersConfig {
            url: String::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            namespace: "tollgate".into(),
            interval_ms: 20,
            history_secs: 300,
            probe_ttl_secs: 10,
            timeout_ms: 500,
            max_pending: 1_000_000,
        }
    }
}

impl SharedCountersConfig {
    /// True when counters are shared (a URL is set).
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The URL without its password, for logs and pages.
    pub fn redacted_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "(not a URL)".into(),
        }
    }

    /// Where the counters are, for logs, alarms and `lookup`: the URL without its password, or
    /// the sentinels and the master's name.
    pub fn shown_target(&self) -> String {
        if self.sentinels.is_empty() {
            self.redacted_url()
        } else {
            format!("master {} of sentinels {}", self.sentinel_master, self.sentinels.join(", "))
        }
    }

    /// The problems of the fields (`shared_counters.*`). Plain `redis://` to a host that is not
    /// loopback is one unless `allow_plaintext` (`[tls] allow_plaintext`), as for every link.
    pub fn problems(&self, out: &mut Vec<Problem>, allow_plaintext: bool) {
        if self.enabled() {
            match url::Url::parse(&self.url) {
                Ok(u) if !matches!(u.scheme(), "redis" | "rediss") => out.push(Problem::new(
                    "shared_counters.url",
                    format!("scheme {:?} is not redis:// or rediss:// (TLS)", u.scheme()),
                )),
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    out.push(Problem::new("shared_counters.url", "names no host (redis://HOST:PORT/DB)"))
                }
                Ok(u) if u.scheme() == "redis" && !allow_plaintext && !self.sentinels.is_empty() => {
                    for s in &self.sentinels {
                        let host = sentinel_address(s).map_or(s.clone(), |(h, _)| h);
                        if !is_loopback_host(&host) {
                            out.push(Problem::new(
                                "shared_counters.sentinels",
                                format!(
                                    "plain redis:// to {host} crosses the network: use rediss:// in url (TLS to the sentinels and the master), or set [tls] allow_plaintext = true"
                                ),
                            ));
                        }
                    }
                }
                Ok(u) if u.scheme() == "redis" && !allow_plaintext && !is_loopback(&u) => out.push(Problem::new(
                    "shared_counters.url",
                    format!(
                        "plain redis:// to {} crosses the network: use rediss:// (TLS), or set [tls] allow_plaintext = true",
                        u.host_str().unwrap_or("?")
                    ),
                )),
                Ok(_) => {}
                Err(e) => out.push(Problem::new(
                    "shared_counters.url",
                    format!("is not a URL like redis://127.0.0.1:6379/0: {e}"),
                )),
            }
        }
        for s in &self.sentinels {
            if sentinel_address(s).is_none() {
                out.push(Problem::new("shared_counters.sentinels", format!("{s:?} is not host:port")));
            }
        }
        if self.sentinels.is_empty() != self.sentinel_master.is_empty() {
            out.push(Problem::new(
                "shared_counters.sentinel_master",
                "sentinels and sentinel_master go together (the sentinels' addresses, and the master's name there)",
            ));
        }
        if !self.sentinels.is_empty() && !self.enabled() {
            out.push(Problem::new(
                "shared_counters.url",
                "is needed with sentinels: its scheme (rediss: TLS), password and database apply to the master",
            ));
        }
        let ns = &self.namespace;
        if ns.is_empty()
            || ns.len() > 64
            || !ns.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            out.push(Problem::new(
                "shared_counters.namespace",
                format!("{ns:?} must be 1 to 64 letters, digits, '-', '_', '.' or ':'"),
            ));
        }
        check_range(out, "shared_counters.interval", self.interval_ms, 5, 1_000);
        check_range(out, "shared_counters.history", self.history_secs, 10, 86_400);
        check_range(out, "shared_counters.probe_ttl", self.probe_ttl_secs, 2, 3_600);
        check_range(out, "shared_counters.timeout", self.timeout_ms, 50, 10_000);
        check_range(out, "shared_counters.max_pending", self.max_pending, 1_000, 100_000_000);
    }
}

/// True when the URL's host is a loopback address or `localhost`.
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Not a special scheme: the url crate leaves an IPv4 address as a domain.
        Some(url::Host::Domain(d)) => is_loopback_host(d),
        None => false,
    }
}

/// A sentinel's `host:port` (`[v6]:port` too) as host (without brackets) and port; none when
/// it is not one.
pub fn sentinel_address(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok()?))
}

/// True for `localhost` and loopback addresses.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Only {
            shared_counters: SharedCountersConfig,
        }
        let c: Only = toml::from_str(text).unwrap();
        let mut out = Vec::new();
        c.shared_counters.problems(&mut out, false);
        out.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_redis_url_and_sane_bounds_are_required() {
        let p = problems_of("[shared_counters]\nurl = \"redis://127.0.0.1:6379/0\"\ninterval = \"10ms\"\n");
        assert!(p.is_empty(), "{p:?}");
        assert!(problems_of("[shared_counters]\n").is_empty(), "off by default");
        let p = problems_of("[shared_counters]\nurl = \"http://x\"\n");
        assert!(p.iter().any(|p| p.contains("shared_counters.url") && p.contains("redis://")), "{p:?}");
        let p = problems_of("[shared_counters]\nurl = \"redis:///0\"\n");
        assert!(p.iter().any(|p| p.contains("names no host")), "{p:?}");
        let p = problems_of("[shared_counters]\nurl = \"redis://10.0.0.5:6379\"\n");
        assert!(p.iter().any(|p| p.contains("crosses the network") && p.contains("rediss://")), "{p:?}");
        assert!(problems_of("[shared_counters]\nurl = \"rediss://10.0.0.5:6379\"\n").is_empty());
        assert!(problems_of("[shared_counters]\nurl = \"redis://localhost:6379\"\n").is_empty());
        assert_eq!(sentinel_address("[::1]:26380"), Some(("::1".to_string(), 26380)));
        assert_eq!(sentinel_address("10.0.0.1:26379"), Some(("10.0.0.1".to_string(), 26379)));
        for bad in ["nohost", ":26379", "h:port", "h:70000"] {
            assert_eq!(sentinel_address(bad), None, "{bad}");
        }
        let sentinel = "[shared_counters]\nurl = \"redis://:pw@master/0\"\nsentinel_master = \"tg\"\n";
        assert!(problems_of(&format!("{sentinel}sentinels = [\"127.0.0.1:26379\", \"[::1]:26380\"]\n")).is_empty());
        let p = problems_of(&format!("{sentinel}sentinels = [\"10.0.0.1:26379\", \"nohost\"]\n"));
        assert!(p.iter().any(|p| p.contains("10.0.0.1 crosses the network")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("\"nohost\" is not host:port")), "{p:?}");
        let p = problems_of("[shared_counters]\nurl = \"redis://127.0.0.1\"\nsentinels = [\"127.0.0.1:26379\"]\n");
        assert!(p.iter().any(|p| p.contains("sentinel_master")), "{p:?}");
        let p = problems_of("[shared_counters]\nurl = \"rediss://r:6379\"\ninterval = \"2s\"\nnamespace = \"a b\"\n");
        assert!(p.iter().any(|p| p.contains("shared_counters.interval")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("shared_counters.namespace")), "{p:?}");
    }

    #[test]
    fn the_password_is_not_shown() {
        let c = SharedCountersConfig { url: "redis://:s3cret@r:6379/0".into(), ..Default::default() };
        assert_eq!(c.redacted_url(), "redis://:***@r:6379/0");
    }
}
