//! Reload on SIGHUP (`systemctl reload`, the units' `ExecReload=/bin/kill -HUP $MAINPID`).
//!
//! The default action of SIGHUP is to end the process: every long-running role calls
//! [`spawn_handler`] first thing in its runtime, so a SIGHUP is caught and turned into a reload
//! instead. A reload tells systemd `RELOADING=1`, runs every hook registered with [`on_reload`]
//! (certificates, configuration parts that can change while running) in registration order,
//! logs each hook's outcome, and tells systemd `READY=1` again. A hook that fails is logged and
//! the role keeps running with what it had: a bad new file must not take a serving role down.
//!
//! This module is the one place for SIGHUP: work that wants to reload something registers a
//! hook here rather than installing its own signal handler.

use std::sync::{Arc, Mutex};

use crate::roles::notify;

/// What a hook does on reload; an error is logged with the hook's name.
pub type Hook = Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>;

/// The hooks run on every reload, in registration order.
static HOOKS: Mutex<Vec<(&'static str, Hook)>> = Mutex::new(Vec::new());

/// Registers `hook` under `name` (named in the log): it runs on every SIGHUP of this process,
/// on a blocking thread (it may read files).
pub fn on_reload(name: &'static str, hook: impl Fn() -> anyhow::Result<()> + Send + Sync + 'static) {
    HOOKS.lock().unwrap_or_else(|p| p.into_inner()).push((name, Arc::new(hook)));
}

/// What one reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Names of the hooks that succeeded.
    pub reloaded: Vec<&'static str>,
    /// Names of the hooks that failed, with their errors.
    pub failed: Vec<(&'static str, String)>,
}

/// Runs every registered hook once, logging each outcome.
pub fn run_hooks() -> Outcome {
    let hooks: Vec<(&'static str, Hook)> = HOOKS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut outcome = Outcome::default();
    for (name, hook) in hooks {
        match hook() {
            Ok(()) => {
                tracing::info!(what = name, "reloaded");
                outcome.reloaded.push(name);
            }
            Err(e) => {
                tracing::error!(what = name, error = %format!("{e:#}"), "reload failed; keeping what was in use");
                outcome.failed.push((name, format!("{e:#}")));
            }
        }
    }
    outcome
}

/// Catches SIGHUP for the rest of the process's life and reloads on each one. Must be called
/// inside the role's Tokio runtime; `role` names the process in the log. When the signal
/// cannot be caught (no signal support), logs why and returns: SIGHUP then keeps its default.
pub fn spawn_handler(role: &'static str) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(role, error = %e, "cannot catch SIGHUP: a reload signal would end the process");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(role, "reload requested (SIGHUP)");
            notify::reloading();
            let outcome = tokio::task::spawn_blocking(run_hooks).await.unwrap_or_default();
            let status = if outcome.failed.is_empty() {
                format!("{role} serving (reloaded: {})", names(&outcome.reloaded))
            } else {
                let failed: Vec<&str> = outcome.failed.iter().map(|(n, _)| *n).collect();
                format!("{role} serving (reload failed: {}; see the journal)", failed.join(", "))
            };
            notify::ready(&status);
        }
    });
}

fn names(list: &[&str]) -> String {
    if list.is_empty() { "nothing to reload".to_string() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_run_in_order_and_a_failure_does_not_stop_the_others() {
        on_reload("test-first", || Ok(()));
        on_reload("test-broken", || anyhow::bail!("cert.pem: no certificate"));
        on_reload("test-last", || Ok(()));
        let outcome = run_hooks();
        let ours: Vec<_> = outcome.reloaded.iter().filter(|n| n.starts_with("test-")).copied().collect();
        assert_eq!(ours, vec!["test-first", "test-last"]);
        assert_eq!(outcome.failed, vec![("test-broken", "cert.pem: no certificate".to_string())]);
    }
}
