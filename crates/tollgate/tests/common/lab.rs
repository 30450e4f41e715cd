//! A whole lab topology (`tollgate lab up`: a manager pair, two engine clusters of 2+1, a probe
//! pair, a collector, each server an agent and its role in one process group), stopped with
//! `tollgate lab down` when dropped, even when the test panics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{text, tollgate_bin};

/// A running lab.
pub struct Lab {
    dir: tempfile::TempDir,
    /// `lab.json`: token, managers, servers.
    pub info: Value,
    /// The operators' token.
    pub token: String,
    /// The managers' API URLs.
    pub managers: Vec<String>,
    /// Each server's role API, by hostname.
    apis: BTreeMap<String, String>,
    http: reqwest::blocking::Client,
}

impl Lab {
    /// `tollgate lab up` on 127.0.`net`.x with the engines' ENUM service on `enum_port`.
    pub fn up(net: u8, enum_port: u16) -> Lab {
        let mut dir = tempfile::tempdir().unwrap();
        // TOLLGATE_KEEP_LAB=1 keeps the lab's directory (configurations, logs) for a post-mortem.
        dir.disable_cleanup(std::env::var_os("TOLLGATE_KEEP_LAB").is_some());
        let path = dir.path().join("lab");
        let started = Instant::now();
        let out = Command::new(tollgate_bin())
            .args(["lab", "up", "--net", &net.to_string(), "--enum-port", &enum_port.to_string(), "--dir"])
            .arg(&path)
            .output()
            .expect("run tollgate lab up");
        let mut lab = Lab {
            dir,
            info: Value::Null,
            token: String::new(),
            managers: Vec::new(),
            apis: BTreeMap::new(),
            http: reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        assert!(out.status.success(), "tollgate lab up: {:?}", text(&out));
        eprintln!("lab up in {:.1} s", started.elapsed().as_secs_f64());
        lab.info = serde_json::from_slice(&std::fs::read(path.join("lab.json")).expect("lab.json")).unwrap();
        lab.token = lab.info["token"].as_str().unwrap().to_string();
        lab.managers =
            lab.info["managers"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
        for s in lab.info["servers"].as_array().unwrap() {
            lab.apis.insert(s["hostname"].as_str().unwrap().into(), s["api"].as_str().unwrap().into());
        }
        lab
    }

    /// The lab's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    /// Every server's hostname and application type.
    pub fn servers(&self) -> Vec<(String, String)> {
        let list = self.info["servers"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|s| {
                let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                (field("hostname"), field("application"))
            })
            .collect()
    }

    /// A manager's answer to `/api/v1/manager/ha` (None: it does not answer within a second).
    pub fn manager_ha(&self, url: &str) -> Option<Value> {
        let quick = reqwest::blocking::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
        quick.get(format!("{url}/api/v1/manager/ha")).send().ok().and_then(|r| r.json().ok())
    }

    /// The active manager's URL (waits up to 30 s, through a failover).
    pub fn active(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for m in &self.managers {
                if self.manager_ha(m).is_some_and(|h| h["ha"] == "Active") {
                    return m.clone();
                }
            }
            assert!(Instant::now() < deadline, "no active manager for 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// GET on the active manager (retried through a failover).
    pub fn get(&self, path: &str) -> Value {
        for _ in 0..20 {
            let m = self.active();
            if let Ok(r) = self.http.get(format!("{m}{path}")).bearer_auth(&self.token).send()
                && r.status().is_success()
            {
                return r.json().unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("GET {path} failed on every manager");
    }

    /// POST JSON on the active manager: status and answer.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let m = self.active();
        let r = self.http.post(format!("{m}{path}")).bearer_auth(&self.token).json(&body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// Pushes a policy through the active manager: status and answer.
    pub fn push_policy(&self, policy: &str) -> (u16, Value) {
        let m = self.active();
        let r = self
            .http
            .post(format!("{m}/api/v1/policy/push?name=lab.toml"))
            .bearer_auth(&self.token)
            .body(policy.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// `tollgate <args> --json --api <active manager> --token <token>`, its JSON answer.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = Command::new(tollgate_bin())
            .args(args)
            .args(["--json", "--api", &self.active(), "--token", &self.token])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{args:?}: {:?}", text(&out)))
    }

    /// `show srp info` of a server's role (None while it does not answer).
    pub fn srp_info(&self, hostname: &str) -> Option<Value> {
        let r = self.http.get(format!("{}/api/v1/srp/show/info", self.apis[hostname])).bearer_auth(&self.token).send();
        r.ok().filter(|r| r.status().is_success()).and_then(|r| r.json::<Value>().ok()).map(|v| v["data"].clone())
    }

    fn pids_file(&self) -> PathBuf {
        self.path().join("pids")
    }

    /// A server's process group (its agent and role).
    pub fn pgid(&self, hostname: &str) -> String {
        let text = std::fs::read_to_string(self.pids_file()).unwrap();
        text.lines().find(|l| l.ends_with(&format!(" {hostname}"))).unwrap().split(' ').next().unwrap().to_string()
    }

    /// Sends `signal` (KILL, STOP, CONT) to a server: its agent and its role process.
    pub fn signal(&self, hostname: &str, signal: &str) {
        let pgid = self.pgid(hostname);
        let _ = Command::new("kill").args([&format!("-{signal}"), "--", &format!("-{pgid}")]).status();
    }

    /// Starts a killed server's agent again (it starts the release in force), detached in its
    /// own process group like the lab's other agents; `lab down` stops it.
    #[allow(clippy::zombie_processes)]
    pub fn restart_server(&self, hostname: &str) {
        use std::os::unix::process::CommandExt;
        let sdir = self.path().join("servers").join(hostname);
        let log = std::fs::OpenOptions::new().append(true).open(sdir.join("agent.log")).unwrap();
        let child = Command::new(tollgate_bin())
            .args(["--log", "info", "--config"])
            .arg(sdir.join("agent.toml"))
            .arg("agent")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let pids = self.pids_file();
        let text = std::fs::read_to_string(&pids).unwrap();
        let kept: String =
            text.lines().filter(|l| !l.ends_with(&format!(" {hostname}"))).map(|l| format!("{l}\n")).collect();
        std::fs::write(&pids, format!("{kept}{} {hostname}\n", child.id())).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Stopped servers would not stop: wake them first.
        for line in std::fs::read_to_string(self.pids_file()).unwrap_or_default().lines() {
            if let Some(pgid) = line.split(' ').next() {
                let _ = Command::new("kill").args(["-CONT", "--", &format!("-{pgid}")]).status();
            }
        }
        let out = Command::new(tollgate_bin()).args(["lab", "down", "--dir"]).arg(self.path()).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("tollgate lab down failed: {:?}", text(&o)),
            Err(e) => eprintln!("cannot run tollgate lab down: {e}"),
        }
    }
}
