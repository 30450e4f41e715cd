//! The process's open-file limit (RLIMIT_NOFILE): raised from the soft to the hard limit at the
//! start of every long-running role, and checked against the configured connection limits.
//!
//! systemd starts services with a soft limit of 1024 and a much higher hard limit; a server
//! that keeps 1024 would run out of descriptors long before the machine does, and then the
//! spool cannot open a segment. tollgate uses no `select(2)`, so the higher limit is safe.

use std::io;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::cli::Command;

/// Descriptors a role needs beyond its client connections: stdio, the runtime, the listening
/// sockets, refused connections lingering (`tollgate_listener::LINGER_MAX` per listener), open
/// spool segments, the record store, outgoing connections (see the descriptor
/// budget in default-config.toml).
pub const PROCESS_RESERVE: u64 = 128;

/// The open-file limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit (what `open` and `accept` run into); `None`: unlimited.
    pub soft: Option<u64>,
    /// The hard limit; `None`: unlimited.
    pub hard: Option<u64>,
}

/// The limit in force now.
pub fn current() -> OpenFileLimit {
    let l = getrlimit(Resource::Nofile);
    OpenFileLimit { soft: l.current, hard: l.maximum }
}

/// Raises the soft limit to the hard limit (where the hard limit is unlimited, to the kernel's
/// per-process maximum, `/proc/sys/fs/nr_open`). Returns the limit in force afterwards.
pub fn raise() -> io::Result<OpenFileLimit> {
    let before = current();
    let target = match before.hard {
        Some(hard) => Some(hard),
        None => std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|t| t.trim().parse().ok()),
    };
    if let Some(target) = target
        && before.soft.is_some_and(|soft| soft < target)
    {
        setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: before.hard })?;
    }
    Ok(current())
}

/// Whether `command` runs a long-running role (a server process).
pub fn is_long_running(command: &Command) -> bool {
    matches!(
        command,
        Command::Serve(_)
            | Command::Engine(_)
            | Command::Collector(_)
            | Command::Probe(_)
            | Command::Agent { command: None }
            | Command::Manager
    )
}

/// Raises the limit for a long-running role and logs the result.
pub fn raise_for(command: &Command) {
    if !is_long_running(command) {
        return;
    }
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    match raise() {
        Ok(l) => tracing::info!("open-file limit: {} (hard limit {})", show(l.soft), show(l.hard)),
        Err(e) => {
            let l = current();
            tracing::warn!("cannot raise the open-file limit {} to the hard limit {}: {e}", show(l.soft), show(l.hard))
        }
    }
}

/// A warning when the connection limits `caps` (field name, connections) plus
/// [`PROCESS_RESERVE`] exceed the soft limit `soft`; `None` when they fit.
pub fn over_budget(soft: Option<u64>, caps: &[(&str, u64)]) -> Option<String> {
    let soft = soft?;
    let needed = caps.iter().map(|(_, n)| n).sum::<u64>() + PROCESS_RESERVE;
    if needed <= soft {
        return None;
    }
    let fields = caps.iter().map(|(f, n)| format!("{f} {n}")).collect::<Vec<_>>().join(" + ");
    Some(format!(
        "the open-file limit {soft} is below what the connection limits may use ({fields} + {PROCESS_RESERVE} for the \
         process = {needed}): raise LimitNOFILE (systemd) or `ulimit -n`, or lower those limits; until then, \
         listeners that run out of descriptors pause accepting, and records may fail to be written"
    ))
}

/// Logs a warning when the connection limits do not fit in the open-file limit in force.
pub fn check(caps: &[(&str, u64)]) {
    if let Some(warning) = over_budget(current().soft, caps) {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_are_checked_against_the_open_file_limit() {
        let caps = [("api.max_connections", 256), ("probe.hep_tcp_max_connections", 64)];
        assert_eq!(over_budget(Some(1024), &caps), None, "the defaults fit in 1024");
        assert_eq!(over_budget(None, &caps), None);
        let w = over_budget(Some(400), &caps).unwrap();
        assert!(w.contains("api.max_connections 256 + probe.hep_tcp_max_connections 64 + 128"), "{w}");
        assert!(w.contains("open-file limit 400"), "{w}");
    }

    #[test]
    fn raising_keeps_the_hard_limit_and_reaches_it() {
        let before = current();
        let after = raise().unwrap();
        assert_eq!(after.hard, before.hard);
        if let (Some(soft), Some(hard)) = (after.soft, after.hard) {
            assert_eq!(soft, hard);
        }
    }
}
