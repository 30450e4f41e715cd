//! systemd readiness notification (`Type=notify` units, see packaging/systemd/): each role
//! tells the service manager when its listeners are bound and serving (`READY=1`), when it
//! reloads (`RELOADING=1`, then `READY=1`) and when it shuts down (`STOPPING=1`).
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset (a role started from a shell, a test,
//! or by the agent, which removes the variable from its role process's environment: systemd
//! accepts notifications from the unit's main process only). A failure to notify is logged,
//! never fatal: a role that serves must not stop because its supervisor's socket went away.

use sd_notify::NotifyState;

/// The environment variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `states` to the service manager, if there is one.
fn send(states: &[NotifyState]) {
    if std::env::var_os(NOTIFY_SOCKET).is_none() {
        return;
    }
    // `false`: the environment is left as it is (changing it is unsound once threads run).
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// The role's listeners are bound and it serves; `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) has begun; [`ready`] follows when it is done.
pub fn reloading() {
    // MONOTONIC_USEC lets systemd match the reload to this message (required by
    // `Type=notify-reload`, accepted by `Type=notify`).
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    states.push(NotifyState::Status("reloading"));
    send(&states);
}

/// The role is shutting down (SIGINT or SIGTERM received).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}
