//! `tollgate upgrade status | select | start | continue | rollback | log` and `tollgate health`:
//! the Upgrade Manager from the command line, against the active manager's API, with a progress
//! bar per running action.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api_client::{ApiClient, ApiError};
use crate::cli::{BackupCommand, HealthArgs, StepArgs, Target, UpgradeCommand};
use crate::config::Config;

/// How long `--all` keeps asking while the next action waits (a server restarting, a bundle
/// being staged, a promoted manager waiting to hear from a server).
const WAITING_LIMIT: Duration = Duration::from_secs(180);

fn client(config: &Config, target: &Target) -> anyhow::Result<ApiClient> {
    ApiClient::for_running(config, target, "upgrade commands talk to a running manager")
}

/// The active manager of the pair `target` names: the same one, or its mate when it is the
/// standby (after a failover of the manager cluster the CLI follows the active one).
fn active(config: &Config, target: &Target) -> anyhow::Result<ApiClient> {
    Managers::new(config, target).active()
}

/// The manager pair a command drives: the manager `--api` names and its mate, learnt from its
/// answer. The manager cluster's own upgrade or backout restarts each manager in turn, the one
/// named too: the CLI then asks the other one, and while neither answers as the active one (a
/// failover under way) it waits, up to [`WAITING_LIMIT`].
struct Managers<'a> {
    config: &'a Config,
    target: &'a Target,
    /// Managers known, the one named first.
    known: std::cell::RefCell<Vec<String>>,
}

impl<'a> Managers<'a> {
    fn new(config: &'a Config, target: &'a Target) -> Self {
        let named = target.api.clone().unwrap_or_else(|| config.api_url());
        Managers { config, target, known: std::cell::RefCell::new(vec![named.trim_end_matches('/').to_string()]) }
    }

    fn client_of(&self, url: &str) -> anyhow::Result<ApiClient> {
        client(self.config, &Target { api: Some(url.to_string()), ..self.target.clone() })
    }

    /// Asks `url` for its HA role (true: Active), learning its mate; None when it does not
    /// answer.
    fn ha(&self, url: &str) -> anyhow::Result<Option<(ApiClient, bool)>> {
        let api = self.client_of(url)?;
        let Ok(ha) = api.get::<Value>("/api/v1/manager/ha") else { return Ok(None) };
        let mate = ha["mate"].as_str().map(|m| m.trim_end_matches('/')).unwrap_or_default();
        let new = !mate.is_empty() && !self.known.borrow().iter().any(|k| k == mate);
        if new {
            self.known.borrow_mut().push(mate.to_string());
        }
        Ok(Some((api, ha["ha"] == "Active")))
    }

    /// The active manager.
    fn active(&self) -> anyhow::Result<ApiClient> {
        self.active_at().map(|(_, api)| api)
    }

    /// The active manager and its URL.
    fn active_at(&self) -> anyhow::Result<(String, ApiClient)> {
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
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAITING_LIMIT;
        loop {
            let (url, api) = self.active_at()?;
            match api.get::<Value>(path) {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() < deadline && self.ha(&url)?.is_none() => {
                    tracing::debug!(error = %e.into_anyhow(), "the active manager stopped answering; asking again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into_anyhow()),
            }
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The seed's grid as text.
pub fn grid(status: &Value) -> String {
    let mut out = String::new();
    let manager = &status["manager"];
    out.push_str(&format!(
        "manager {} ({}, release {}); current bundle: {}\n",
        s(&manager["hostname"]),
        s(&manager["ha"]),
        s(&manager["release"]),
        status["procedure"]["label"].as_str().unwrap_or("(none)")
    ));
    out.push_str(&format!(
        "{:<24} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
        "Name", "Alarm", "UpToD", "Server Role", "Prev Rel", "Running Rel", "Upgrade Operation"
    ));
    for c in status["clusters"].as_array().into_iter().flatten() {
        let next = c["upgrade"]["preferred"]["label"].as_str();
        out.push_str(&format!(
            "{:<24} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
            format!("{} ({})", s(&c["name"]), s(&c["application"])),
            s(&c["alarm_severity"]),
            s(&c["up_to_date"]),
            s(&c["status"]),
            "",
            "",
            c["running"]["label"].as_str().map(str::to_string).unwrap_or_else(|| match next {
                Some(n) => format!("next: {n}"),
                None => String::new(),
            })
        ));
        for sv in c["servers"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<22} {:<9} {:<5} {:<15} {:<12} {:<12} {}\n",
                s(&sv["hostname"]),
                s(&sv["alarm_severity"]),
                s(&sv["up_to_date"]),
                s(&sv["role"]),
                s(&sv["prev_release"]),
                s(&sv["running_release"]),
                s(&sv["operation"]["text"])
            ));
        }
    }
    out
}

/// Runs an upgrade command.
pub fn run(config: &Config, command: &UpgradeCommand) -> anyhow::Result<ExitCode> {
    match command {
        UpgradeCommand::Status { json, target } => {
            let status: Value = client(config, target)?.get("/api/v1/upgrade/status").map_err(ApiError::into_anyhow)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", grid(&status));
            }
        }
        UpgradeCommand::Select { release, target } => {
            let api = client(config, target)?;
            let r: Value = api
                .post_json("/api/v1/upgrade/procedure", Some(json!({ "release": release })))
                .map_err(ApiError::into_anyhow)?;
            println!("current bundle: {} (staging it on the servers)", s(&r["procedure"]["label"]));
        }
        UpgradeCommand::Start(args) | UpgradeCommand::Continue(args) => step(config, args, "upgrade")?,
        UpgradeCommand::Rollback(args) => step(config, args, "backout")?,
        UpgradeCommand::Audit { json, target } => {
            let audit: Value = active(config, target)?.get("/api/v1/upgrade/audit").map_err(ApiError::into_anyhow)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&audit)?);
            } else {
                for a in audit.as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {:<16} {:<10} {} {}",
                        s(&a["at"]).chars().take(19).collect::<String>(),
                        s(&a["user"]),
                        s(&a["outcome"]),
                        s(&a["operation"]),
                        s(&a["detail"])
                    );
                }
            }
        }
        UpgradeCommand::Log { cluster, json, target } => {
            let path = match cluster {
                Some(c) => format!("/api/v1/upgrade/log?cluster={c}"),
                None => "/api/v1/upgrade/log".to_string(),
            };
            let log: Value = client(config, target)?.get(&path).map_err(ApiError::into_anyhow)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&log)?);
            } else {
                print!("{}", log_table(&log));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The upgrade log as the seed's table.
pub fn log_table(log: &Value) -> String {
    let mut out = format!(
        "{:>4} {:>6} {:<44} {:<20} {:<20} {:>8} {:<8} {:<14} {:<12} {:<10} {}\n",
        "ID", "Parent", "Action Name", "Start", "End", "Duration", "Scope", "Hostname", "Result", "Mode", "Description"
    );
    let time = |v: &Value| v.as_str().map(|t| t.chars().take(19).collect::<String>()).unwrap_or_default();
    for e in log.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:>4} {:>6} {:<44} {:<20} {:<20} {:>8} {:<8} {:<14} {:<12} {:<10} {}\n",
            s(&e["id"]),
            s(&e["parent_id"]),
            s(&e["action_name"]),
            time(&e["start"]),
            time(&e["end"]),
            s(&e["duration"]),
            s(&e["scope"]),
            s(&e["hostname"]),
            s(&e["result"]),
            s(&e["mode"]),
            s(&e["description"])
        ));
    }
    out
}

/// Starts the next action(s) and follows them; with `--all`, until done.
fn step(config: &Config, args: &StepArgs, direction: &str) -> anyhow::Result<()> {
    let bars = MultiProgress::new();
    let mut waiting_since: Option<Instant> = None;
    // Failures from before this command (being retried now) do not stop it; new ones do.
    let managers = Managers::new(config, &args.target);
    let failures_before = managers.get("/api/v1/upgrade/status")?["failures"].clone();
    loop {
        let api = managers.active()?;
        let (started, done, waiting): (Vec<String>, bool, Option<String>) = match &args.cluster {
            Some(cluster) => {
                match api.post_json::<Value>(
                    "/api/v1/upgrade/action",
                    Some(json!({ "cluster": cluster, "direction": direction })),
                ) {
                    Ok(r) => (vec![s(&r["action"])], false, None),
                    Err(ApiError::Other(e)) if e.to_string().contains("is done in that direction") => {
                        (vec![], true, None)
                    }
                    Err(ApiError::Other(e)) => (vec![], false, Some(e.to_string())),
                    Err(e) => return Err(e.into_anyhow()),
                }
            }
            None => {
                let r: Value = api
                    .post_json("/api/v1/upgrade/next", Some(json!({ "direction": direction })))
                    .map_err(ApiError::into_anyhow)?;
                let started = r["started"].as_array().into_iter().flatten().map(|a| s(&a["action"])).collect();
                let refused: Vec<String> = r["refused"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| format!("{}: {}", s(&a["action"]), s(&a["reason"])))
                    .collect();
                let waiting = (!refused.is_empty()).then(|| refused.join("; "));
                (started, r["done"].as_bool().unwrap_or(false), waiting)
            }
        };
        if done {
            say(
                &bars,
                &format!("done: every cluster is {}", if direction == "upgrade" { "upgraded" } else { "backed out" }),
            );
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
        let status = managers.get("/api/v1/upgrade/status")?;
        let new_failures: Vec<String> = status["failures"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(scope, why)| failures_before[scope.as_str()] != **why)
            .map(|(scope, why)| format!("{scope}: {}", s(why)))
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
    let mut shown: std::collections::BTreeMap<String, ProgressBar> = Default::default();
    loop {
        // The manager cluster's own failover moves the active manager mid-way.
        let status = managers.get("/api/v1/upgrade/status")?;
        let mut running = std::collections::BTreeSet::new();
        for c in status["clusters"].as_array().into_iter().flatten() {
            let name = s(&c["name"]);
            if let Some(r) = c["running"].as_object() {
                running.insert(name.clone());
                let bar = shown.entry(name.clone()).or_insert_with(|| {
                    let b = bars.add(ProgressBar::new(100));
                    b.set_style(style.clone());
                    b.set_prefix(name.clone());
                    b
                });
                bar.set_position(r["percent"].as_u64().unwrap_or(0));
                bar.set_message(format!(
                    "{} — {} ({}/{}) {}s",
                    s(&r["label"]),
                    s(&r["step"]),
                    s(&r["step_index"]),
                    s(&r["steps"]),
                    s(&r["elapsed_secs"])
                ));
            }
            for sv in c["servers"].as_array().into_iter().flatten() {
                if sv["operation"]["failed"] == true && shown.contains_key(&name) && !running.contains(&name) {
                    for b in shown.values() {
                        b.abandon();
                    }
                    bail!("{}: {}", s(&sv["hostname"]), s(&sv["operation"]["text"]));
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

/// `tollgate health`: every server's syscheck through the manager, or this server's through
/// its agent (`--local`). Exit status 1 when a class failed.
pub fn health(config: &Config, args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let answer: Value = if args.local {
        let agent = config.agent.as_ref().ok_or_else(|| anyhow!("--local needs an [agent] section"))?;
        let base = format!("http://{}", agent.listen);
        ApiClient::new(&base, Some(agent.token.clone()), None)?
            .get("/agent/v1/health")
            .map_err(ApiError::into_anyhow)?
    } else {
        client(config, &args.target)?.get("/api/v1/health").map_err(ApiError::into_anyhow)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if args.local {
        print!("{}", s(&answer["text"]));
    } else {
        for server in answer["servers"].as_array().into_iter().flatten() {
            println!("== {} ({})", s(&server["hostname"]), s(&server["cluster"]));
            print!("{}", s(&server["text"]));
        }
        println!("system: {}", if answer["ok"] == true { "OK" } else { "FAILED" });
    }
    Ok(if answer["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `tollgate backup system | list | restore`.
pub fn backup(config: &Config, command: &BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::System { why, target } => {
            let pb = ProgressBar::new_spinner();
            pb.set_message("backing up every server");
            pb.enable_steady_tick(Duration::from_millis(120));
            let r: Result<Value, _> = active(config, target)?.post_json("/api/v1/backup", Some(json!({ "why": why })));
            pb.finish_and_clear();
            let r = r.map_err(ApiError::into_anyhow)?;
            for server in r["servers"].as_array().into_iter().flatten() {
                match server.get("error") {
                    Some(e) => println!("{:<14} FAILED {}", s(&server["hostname"]), s(e)),
                    None => println!(
                        "{:<14} {} ({} bytes)",
                        s(&server["hostname"]),
                        s(&server["backup"]["name"]),
                        s(&server["backup"]["bytes"])
                    ),
                }
            }
            println!("manager state: {}", s(&r["manager_state"]));
            return Ok(if r["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        BackupCommand::List { target } => {
            let list: Value = active(config, target)?.get("/api/v1/backups").map_err(ApiError::into_anyhow)?;
            for server in list.as_array().into_iter().flatten() {
                for b in server["backups"].as_array().into_iter().flatten() {
                    println!("{:<14} {:<60} {:>12}", s(&server["hostname"]), s(&b["name"]), s(&b["bytes"]));
                }
            }
        }
        BackupCommand::Restore { server, name, target } => {
            let r: Value = active(config, target)?
                .post_json("/api/v1/restore", Some(json!({ "hostname": server, "name": name })))
                .map_err(ApiError::into_anyhow)?;
            println!("{server}: restored {}", s(&r["restored"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::get;

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
                                async move { axum::Json(json!({ "ha": ha, "mate": mate })) }
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
        assert_eq!(managers.get("/api/v1/upgrade/status").unwrap()["from"], "mgr-b");
        // The one named is stopped (backed out): the CLI goes on with the pair it knows.
        a.stop();
        assert_eq!(managers.get("/api/v1/upgrade/status").unwrap()["from"], "mgr-b");
        // The active one goes away too, and the other comes back as active a moment later: the
        // CLI waits for it instead of failing.
        *b.ha.lock().unwrap() = "Standby";
        let relisten = std::net::TcpListener::bind(a.url.trim_start_matches("http://")).unwrap();
        let back = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            Stub::start(relisten, "mgr-a", ub, "Active")
        });
        assert_eq!(managers.get("/api/v1/upgrade/status").unwrap()["from"], "mgr-a");
        drop(back.join().unwrap());
    }
}
