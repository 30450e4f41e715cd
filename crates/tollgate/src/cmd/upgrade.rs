//! `tollgate upgrade status | select | start | continue | rollback | audit | log`: the Upgrade
//! Manager from the command line, against the active manager's API (typed with
//! `tollgate_api::manager`), with a progress bar per running action.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use tollgate_api::manager::{
    ActionRequest, AuditEntry, DirectionWord, HaStatus, LogEntry, NextAnswer, NextRequest, ProcedureAnswer,
    ProcedureRequest, StartedAction, SystemStatus,
};
use tollgate_api::{BlockingClient, ErrorCode};

use crate::cli::{StepArgs, Target, UpgradeCommand};
use crate::config::Config;

/// How long `--all` keeps asking while the next action waits (a server restarting, a bundle
/// being staged, a promoted manager waiting to hear from a server).
const WAITING_LIMIT: Duration = Duration::from_secs(180);

/// How long the CLI waits for one answer.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(600);

/// A client of the running server `target` names (its `--api`, else this configuration's API)
/// with its `--token` (else this server's CLI token).
pub fn client(config: &Config, target: &Target) -> anyhow::Result<BlockingClient> {
    let base = target.api.clone().unwrap_or_else(|| config.api_url());
    let token = target.token.clone().or_else(|| config.cli_token());
    let tls = crate::roles::tls::cli_tls(config, &base)?;
    Ok(BlockingClient::with_tls(&base, token, CLI_TIMEOUT, tls.as_ref())?)
}

/// The manager pair a command drives: the manager `--api` names and its mate, learnt from its
/// answer. The manager cluster's own upgrade or backout restarts each manager in turn, the one
/// named too: the CLI then asks the other one, and while neither answers as the active one (a
/// failover under way) it waits, up to [`WAITING_LIMIT`].
pub struct Managers<'a> {
    config: &'a Config,
    target: &'a Target,
    /// Managers known, the one named first.
    known: std::cell::RefCell<Vec<String>>,
}

impl<'a> Managers<'a> {
    /// The pair of the manager `target` names.
    pub fn new(config: &'a Config, target: &'a Target) -> Self {
        let named = target.api.clone().unwrap_or_else(|| config.api_url());
        Managers { config, target, known: std::cell::RefCell::new(vec![named.trim_end_matches('/').to_string()]) }
    }

    fn client_of(&self, url: &str) -> anyhow::Result<BlockingClient> {
        client(self.config, &Target { api: Some(url.to_string()), ..self.target.clone() })
    }

    /// Asks `url` for its HA role (true: Active), learning its mate; None when it does not
    /// answer.
    fn ha(&self, url: &str) -> anyhow::Result<Option<(BlockingClient, bool)>> {
        let api = self.client_of(url)?;
        let Ok(ha) = api.get::<HaStatus>("/api/v1/manager/ha") else { return Ok(None) };
        let mate = ha.mate.as_deref().map(|m| m.trim_end_matches('/')).unwrap_or_default();
        let new = !mate.is_empty() && !self.known.borrow().iter().any(|k| k == mate);
        if new {
            self.known.borrow_mut().push(mate.to_string());
        }
        Ok(Some((api, ha.is_active())))
    }

    /// The active manager.
    pub fn active(&self) -> anyhow::Result<BlockingClient> {
        self.active_at().map(|(_, api)| api)
    }

    /// The active manager and its URL.
    fn active_at(&self) -> anyhow::Result<(String, BlockingClient)> {
        let deadline = Instant::now() + WAITING_LIMIT;
        loop {
            let mut standby = None;
            // A mate learnt on the way is asked in the same round.
            let mut i = 0;
            loop {
                // (The list is not borrowed while `ha` may add to it.)
                let next = self.known.borrow().get(i).cloned();
                let Some(url) = next else { break };
                match self.ha(&url)? {
                    Some((api, true)) => return Ok((url, api)),
                    Some((api, false)) => {
                        standby.get_or_insert((url, api));
                    }
                    None => {}
                }
                i += 1;
            }
            let known = self.known.borrow().clone();
            // A manager without a mate answers alone; one that does not answer before its mate
            // is known is asked anyway (the request then says it cannot be reached).
            if known.len() == 1 {
                return match standby {
                    Some(s) => Ok(s),
                    None => Ok((known[0].clone(), self.client_of(&known[0])?)),
                };
            }
            if Instant::now() > deadline {
                return standby.ok_or_else(|| {
                    anyhow!("no manager of the pair ({}) answered for {} s", known.join(", "), WAITING_LIMIT.as_secs())
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// GETs `path` from the active manager; when that one stops answering meanwhile (it is
    /// being restarted), asks again, up to [`WAITING_LIMIT`].
    fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let deadline = Instant::now() + WAITING_LIMIT;
        loop {
            let (url, api) = self.active_at()?;
            match api.get::<T>(path) {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() < deadline && self.ha(&url)?.is_none() => {
                    tracing::debug!(error = %e, "the active manager stopped answering; asking again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The whole status from the active manager.
    fn status(&self) -> anyhow::Result<SystemStatus> {
        self.get("/api/v1/upgrade/status")
    }
}

/// The seed's grid as text.
pub fn grid(status: &SystemStatus) -> String {
    let mut out = String::new();
    let manager = &status.manager;
    out.push_str(&format!(
        "manager {} ({}, release {}); current bundle: {}\n",
        manager.hostname,
        manager.ha,
        manager.release,
        status.procedure.as_ref().map(|p| p.label.as_str()).unwrap_or("(none)")
    ));
    out.push_str(&format!(
        "{:<24} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
        "Name", "Alarm", "UpToD", "Server Role", "Prev Rel", "Running Rel", "Upgrade Operation"
    ));
    let severity = |s: &Option<tollgate_alarms::Severity>| s.map(|s| s.to_string()).unwrap_or_default();
    for c in &status.clusters {
        let next = c.upgrade.preferred.as_ref().map(|p| p.label.as_str());
        out.push_str(&format!(
            "{:<24} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
            format!("{} ({})", c.name, c.application),
            severity(&c.alarm_severity),
            c.up_to_date.to_string(),
            c.status.to_string(),
            "",
            "",
            match (&c.running, next) {
                (Some(r), _) => r.label.clone(),
                (None, Some(n)) => format!("next: {n}"),
                (None, None) => String::new(),
            }
        ));
        for sv in &c.servers {
            out.push_str(&format!(
                "  {:<22} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
                sv.hostname,
                severity(&sv.alarm_severity),
                sv.up_to_date.to_string(),
                sv.role.to_string(),
                sv.prev_release.as_deref().unwrap_or_default(),
                sv.running_release,
                sv.operation.text()
            ));
        }
    }
    out
}

/// Prints `value` as pretty JSON.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs an upgrade command.
pub fn run(config: &Config, command: &UpgradeCommand) -> anyhow::Result<ExitCode> {
    match command {
        UpgradeCommand::Status { json, target } => {
            let status: SystemStatus = client(config, target)?.get("/api/v1/upgrade/status")?;
            match json {
                true => print_json(&status)?,
                false => print!("{}", grid(&status)),
            }
        }
        UpgradeCommand::Select { release, target } => {
            let api = client(config, target)?;
            let request = ProcedureRequest { release: Some(release.clone()) };
            let r: ProcedureAnswer = api.post("/api/v1/upgrade/procedure", &request)?;
            let label = r.procedure.map(|p| p.label).unwrap_or_default();
            println!("current bundle: {label} (staging it on the servers)");
        }
        UpgradeCommand::Start(args) | UpgradeCommand::Continue(args) => step(config, args, DirectionWord::Upgrade)?,
        UpgradeCommand::Rollback(args) => step(config, args, DirectionWord::Backout)?,
        UpgradeCommand::Audit { json, target } => {
            let audit: Vec<AuditEntry> = Managers::new(config, target).active()?.get("/api/v1/upgrade/audit")?;
            if *json {
                print_json(&audit)?;
            } else {
                for a in &audit {
                    let at = a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    println!(
                        "{:<20} {:<16} {:<10} {} {}",
                        at.chars().take(19).collect::<String>(),
                        a.user,
                        format!("{:?}", a.outcome),
                        a.operation,
                        a.detail
                    );
                }
            }
        }
        UpgradeCommand::Log { cluster, json, target } => {
            let path = match cluster {
                Some(c) => format!("/api/v1/upgrade/log?cluster={c}"),
                None => "/api/v1/upgrade/log".to_string(),
            };
            let log: Vec<LogEntry> = client(config, target)?.get(&path)?;
            match json {
                true => print_json(&log)?,
                false => print!("{}", log_table(&log)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The upgrade log as the seed's table.
pub fn log_table(log: &[LogEntry]) -> String {
    let mut out = format!(
        "{:>4} {:>6} {:<44} {:<20} {:<20} {:>8} {:<8} {:<14} {:<12} {:<10} {}\n",
        "ID", "Parent", "Action Name", "Start", "End", "Duration", "Scope", "Hostname", "Result", "Mode", "Description"
    );
    let time = |t: &chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).chars().take(19).collect::<String>()
    };
    for LogEntry { entry: e, duration, .. } in log {
        out.push_str(&format!(
            "{:>4} {:>6} {:<44} {:<20} {:<20} {:>8} {:<8} {:<14} {:<12} {:<10} {}\n",
            e.id,
            e.parent_id,
            e.action_name,
            time(&e.start),
            e.end.as_ref().map(time).unwrap_or_default(),
            duration,
            e.scope.to_string(),
            e.hostname,
            e.result.to_string(),
            e.mode.to_string(),
            e.description
        ));
    }
    out
}

/// Whether `cluster` is done in `direction`, from the status.
fn cluster_done(status: &SystemStatus, cluster: &str, direction: DirectionWord) -> bool {
    status.clusters.iter().find(|c| c.name == cluster).is_some_and(|c| match direction {
        DirectionWord::Upgrade => c.upgrade.done,
        DirectionWord::Backout | DirectionWord::Rollback => c.backout.done,
    })
}

/// Starts the next action(s) and follows them; with `--all`, until done.
fn step(config: &Config, args: &StepArgs, direction: DirectionWord) -> anyhow::Result<()> {
    let bars = MultiProgress::new();
    let mut waiting_since: Option<Instant> = None;
    // Failures from before this command (being retried now) do not stop it; new ones do.
    let managers = Managers::new(config, &args.target);
    let failures_before = managers.status()?.failures;
    loop {
        let api = managers.active()?;
        let (started, done, waiting): (Vec<String>, bool, Option<String>) = match &args.cluster {
            Some(cluster) => {
                let request = ActionRequest { cluster: cluster.clone(), direction: Some(direction), action: None };
                match api.post::<_, StartedAction>("/api/v1/upgrade/action", &request) {
                    Ok(r) => (vec![r.action], false, None),
                    // Refused: done in that direction, or waiting (the status says which).
                    Err(e) if e.code() == Some(ErrorCode::Conflict) => {
                        match cluster_done(&managers.status()?, cluster, direction) {
                            true => (vec![], true, None),
                            false => (vec![], false, Some(e.body().map(|b| b.message.clone()).unwrap_or_default())),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let r: NextAnswer = api.post("/api/v1/upgrade/next", &NextRequest { direction })?;
                let started = r.started.into_iter().map(|a| a.action).collect();
                let refused: Vec<String> = r
                    .refused
                    .iter()
                    .map(|a| format!("{}: {}", a.action, a.reason.as_deref().unwrap_or_default()))
                    .collect();
                let waiting = (!refused.is_empty()).then(|| refused.join("; "));
                (started, r.done, waiting)
            }
        };
        if done {
            let what = if direction == DirectionWord::Upgrade { "upgraded" } else { "backed out" };
            say(&bars, &format!("done: every cluster is {what}"));
            return Ok(());
        }
        for a in &started {
            say(&bars, &format!("started: {a}"));
        }
        if started.is_empty() {
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() > WAITING_LIMIT || !args.all {
                bail!("no action could start: {}", waiting.unwrap_or_else(|| "nothing to do".into()));
            }
        } else {
            waiting_since = None;
        }
        if args.no_wait {
            return Ok(());
        }
        follow(&managers, &bars)?;
        // A failed action stops here: the operator looks, then retries (the seed's
        // UPGRADE_OPERATION_FAILED is raised meanwhile).
        let status = managers.status()?;
        let new_failures: Vec<String> = status
            .failures
            .iter()
            .filter(|(scope, why)| failures_before.get(*scope) != Some(*why))
            .map(|(scope, why)| format!("{scope}: {why}"))
            .collect();
        if !new_failures.is_empty() {
            bail!("failed: {}", new_failures.join("; "));
        }
        if !args.all {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A line above the bars, or on stdout when the bars are hidden (not a terminal).
fn say(bars: &MultiProgress, line: &str) {
    if bars.is_hidden() || bars.println(line).is_err() {
        println!("{line}");
    }
}

/// Shows a progress bar per running action until none runs; fails on a failed action.
fn follow(managers: &Managers<'_>, bars: &MultiProgress) -> anyhow::Result<()> {
    let style = ProgressStyle::with_template("{prefix:<20} [{bar:30}] {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut shown: BTreeMap<String, ProgressBar> = Default::default();
    loop {
        // The manager cluster's own failover moves the active manager mid-way.
        let status = managers.status()?;
        let mut running = BTreeSet::new();
        for c in &status.clusters {
            if let Some(r) = &c.running {
                running.insert(c.name.clone());
                let bar = shown.entry(c.name.clone()).or_insert_with(|| {
                    let b = bars.add(ProgressBar::new(100));
                    b.set_style(style.clone());
                    b.set_prefix(c.name.clone());
                    b
                });
                bar.set_position(r.percent);
                bar.set_message(format!("{} — {} ({}/{}) {}s", r.label, r.step, r.step_index, r.steps, r.elapsed_secs));
            }
            for sv in &c.servers {
                if sv.operation.failed() && shown.contains_key(&c.name) && !running.contains(&c.name) {
                    for b in shown.values() {
                        b.abandon();
                    }
                    bail!("{}: {}", sv.hostname, sv.operation.text());
                }
            }
        }
        let finished: Vec<String> = shown.keys().filter(|k| !running.contains(*k)).cloned().collect();
        for k in finished {
            if let Some(b) = shown.remove(&k) {
                b.set_position(100);
                b.finish_with_message("done");
            }
        }
        if running.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use serde_json::json;

    use super::*;

    /// A stand-in for one manager of a pair: answers `/api/v1/manager/ha` with `ha` (and its
    /// mate), and `/api/v1/upgrade/status` with its own name, until it is stopped.
    struct Stub {
        url: String,
        ha: Arc<Mutex<&'static str>>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Stub {
        fn start(listener: std::net::TcpListener, name: &'static str, mate: String, ha: &'static str) -> Stub {
            let url = format!("http://{}", listener.local_addr().unwrap());
            let role = Arc::new(Mutex::new(ha));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let shared = role.clone();
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    listener.set_nonblocking(true).unwrap();
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new()
                        .route(
                            "/api/v1/manager/ha",
                            get(move || {
                                let ha = *shared.lock().unwrap();
                                let mate = mate.clone();
                                async move { axum::Json(json!({ "hostname": name, "ha": ha, "mate": mate })) }
                            }),
                        )
                        .route(
                            "/api/v1/upgrade/status",
                            get(move || async move { axum::Json(json!({ "from": name })) }),
                        );
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            });
            Stub { url, ha: role, stop: Some(stop), thread: Some(thread) }
        }

        fn stop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    impl Drop for Stub {
        fn drop(&mut self) {
            self.stop();
        }
    }

    #[test]
    fn the_cli_follows_the_active_manager_while_the_one_it_was_given_restarts() {
        let (la, lb) =
            (std::net::TcpListener::bind("127.0.0.1:0").unwrap(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let (ua, ub) = (format!("http://{}", la.local_addr().unwrap()), format!("http://{}", lb.local_addr().unwrap()));
        let mut a = Stub::start(la, "mgr-a", ub.clone(), "Standby");
        let b = Stub::start(lb, "mgr-b", ua.clone(), "Active");
        let config = Config::default();
        let target = Target { api: Some(a.url.clone()), token: Some("t".into()) };
        let managers = Managers::new(&config, &target);
        // Given the standby, the CLI asks its mate, the active one.
        assert_eq!(managers.get::<serde_json::Value>("/api/v1/upgrade/status").unwrap()["from"], "mgr-b");
        // The one named is stopped (backed out): the CLI goes on with the pair it knows.
        a.stop();
        assert_eq!(managers.get::<serde_json::Value>("/api/v1/upgrade/status").unwrap()["from"], "mgr-b");
        // The active one goes away too, and the other comes back as active a moment later: the
        // CLI waits for it instead of failing.
        *b.ha.lock().unwrap() = "Standby";
        let relisten = std::net::TcpListener::bind(a.url.trim_start_matches("http://")).unwrap();
        let back = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            Stub::start(relisten, "mgr-a", ub, "Active")
        });
        assert_eq!(managers.get::<serde_json::Value>("/api/v1/upgrade/status").unwrap()["from"], "mgr-a");
        drop(back.join().unwrap());
    }
}
