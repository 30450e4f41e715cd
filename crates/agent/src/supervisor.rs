//! The agent keeps its server's role process running: it starts the release in force, restarts
//! it when it dies (with a growing delay), and stops it gracefully for an upgrade.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::process::{Child, Command};

/// What to run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The release's binary.
    pub binary: PathBuf,
    /// Arguments (`--config FILE engine`).
    pub args: Vec<String>,
    /// Environment (release version, capabilities).
    pub env: Vec<(String, String)>,
    /// Where its output goes.
    pub log: PathBuf,
}

pub use tollgate_api::agent::ProcessStatus;

struct State {
    launch: Option<Launch>,
    child: Option<Child>,
    status: ProcessStatus,
    /// Stopped on purpose: do not restart.
    held: bool,
}

/// Supervises one role process.
#[derive(Clone)]
pub struct Supervisor {
    state: Arc<Mutex<State>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with nothing to run yet; its watch task runs until the runtime stops.
    pub fn new() -> Self {
        let s = Supervisor {
            state: Arc::new(Mutex::new(State {
                launch: None,
                child: None,
                status: ProcessStatus::default(),
                held: true,
            })),
        };
        tokio::spawn(s.clone().watch());
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process now.
    pub fn status(&self) -> ProcessStatus {
        self.lock().status.clone()
    }

    fn spawn(launch: &Launch) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&launch.log)?;
        Command::new(&launch.binary)
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // Under systemd the agent is the unit's main process and tells it when it is ready;
            // the role process must not (systemd refuses, and logs, notifications from others).
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
    }

    /// Starts `launch` (stopping what runs first).
    pub async fn start(&self, launch: Launch) -> anyhow::Result<()> {
        self.stop().await;
        let child =
            Self::spawn(&launch).map_err(|e| anyhow::anyhow!("cannot start {}: {e}", launch.binary.display()))?;
        let mut st = self.lock();
        st.status.pid = child.id();
        st.status.running = true;
        st.status.since = Some(Utc::now());
        st.child = Some(child);
        st.launch = Some(launch);
        st.held = false;
        Ok(())
    }

    /// Stops the process: SIGTERM, then SIGKILL after 10 s. It stays stopped until `start`.
    pub async fn stop(&self) {
        let child = {
            let mut st = self.lock();
            st.held = true;
            st.status.running = false;
            st.child.take()
        };
        if let Some(mut child) = child {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        self.lock().status.pid = None;
    }

    /// Restarts the process whenever it dies while not held, with a delay growing to 10 s.
    async fn watch(self) {
        let mut delay = Duration::from_millis(200);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let exited = {
                let mut st = self.lock();
                match st.child.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(status))) => {
                        st.child = None;
                        st.status.running = false;
                        st.status.pid = None;
                        st.status.last_exit = Some(status.to_string());
                        !st.held
                    }
                    _ => false,
                }
            };
            if exited {
                tracing::warn!("role process exited; restarting in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                // Decided and spawned under the lock: a `start` or `stop` meanwhile (an
                // install, a restore) wins, and no second process is started beside its own.
                let mut st = self.lock();
                if let (false, None, Some(launch)) = (st.held, st.child.as_ref(), st.launch.clone()) {
                    match Self::spawn(&launch) {
                        Ok(child) => {
                            st.status.pid = child.id();
                            st.status.running = true;
                            st.status.since = Some(Utc::now());
                            st.status.restarts += 1;
                            st.child = Some(child);
                        }
                        Err(e) => tracing::error!(error = %e, "cannot restart the role process"),
                    }
                }
            } else if self.lock().child.is_some() {
                delay = Duration::from_millis(200);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &std::path::Path, script: &str) -> Launch {
        let binary = dir.join("role.sh");
        std::fs::write(&binary, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        Launch { binary, args: Vec::new(), env: Vec::new(), log: dir.join("role.log") }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    /// A role that keeps dying is restarted with a growing delay (200 ms, 400 ms, ...): on the
    /// paused clock, the time between restarts is the supervisor's decision alone.
    #[tokio::test(start_paused = true)]
    async fn a_dying_role_is_restarted_with_a_growing_delay_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Supervisor::new();
        s.start(launch(dir.path(), "exit 3")).await.unwrap();
        let t0 = tokio::time::Instant::now();
        until("two restarts", || s.status().restarts >= 2).await;
        assert!(t0.elapsed() >= Duration::from_millis(600), "200 ms then 400 ms: {:?}", t0.elapsed());
        until("three restarts", || s.status().restarts >= 3).await;
        assert!(t0.elapsed() >= Duration::from_millis(1400), "then 800 ms: {:?}", t0.elapsed());
        assert!(s.status().last_exit.is_some_and(|e| e.contains('3')), "{:?}", s.status());
        // Held: no restart after a stop.
        s.stop().await;
        let restarts = s.status().restarts;
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(s.status().restarts, restarts);
        assert!(!s.status().running);
    }

    /// Under systemd the agent's NOTIFY_SOCKET is for the agent alone: the role process does
    /// not get it (systemd would log every READY=1 of the role as refused).
    #[tokio::test]
    async fn the_role_process_does_not_get_the_agents_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let mut l = launch(
            dir.path(),
            &format!("echo \"[$NOTIFY_SOCKET]\" > {}.tmp && mv {0}.tmp {0}\nexec sleep 600", seen.display()),
        );
        // As if the agent's own environment had it (setting the test's environment is unsound
        // with threads running): the role must not see it either way.
        l.env.push(("NOTIFY_SOCKET".to_string(), "/run/systemd/notify".to_string()));
        let s = Supervisor::new();
        s.start(l).await.unwrap();
        until("the role wrote what it saw", || seen.exists()).await;
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "[]\n");
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_role_is_reported_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Supervisor::new();
        s.start(launch(dir.path(), "exec sleep 600")).await.unwrap();
        let st = s.status();
        assert!(st.running && st.pid.is_some() && st.since.is_some(), "{st:?}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(s.status().restarts, 0);
        s.stop().await;
        let st = s.status();
        assert!(!st.running && st.pid.is_none(), "{st:?}");
    }
}
