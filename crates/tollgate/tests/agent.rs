//! The agent on one server (issue 6): signed release bundles built from this binary are
//! staged, preflighted and installed; the role process runs the release in force and reports
//! it; an older release's policy schema limit is enforced; backups are taken before an
//! upgrade; a backout restores the previous release. A tampered bundle (payload or manifest),
//! a bundle signed by an unknown key and a bundle of the wrong type are refused with a clear
//! reason and nothing changes on the server.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, text, tollgate_bin, wait_until};
use serde_json::Value;
use tollgate_api::agent::{
    self, AgentStatus, Backup, HealthAnswer, PreflightAnswer, RestoreAnswer, RestoreRequest, StagedBundle,
    VersionRequest,
};
use tollgate_api::{BlockingClient, ClientError, ErrorCode};

struct AgentProcess {
    child: Child,
    client: BlockingClient,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl AgentProcess {
    fn status(&self) -> AgentStatus {
        self.client.get(agent::STATUS).unwrap()
    }

    fn preflight(&self, version: &str) -> Result<PreflightAnswer, ClientError> {
        self.client.post(agent::PREFLIGHT, &VersionRequest { version: version.into() })
    }

    fn install(&self, version: &str) -> Result<AgentStatus, ClientError> {
        self.client.post(agent::INSTALL, &VersionRequest { version: version.into() })
    }

    fn backups(&self) -> Vec<Backup> {
        self.client.get(agent::BACKUPS).unwrap()
    }

    fn stage(&self, file: &Path) -> Result<agent::StageAnswer, ClientError> {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        agent::stage_blocking(&self.client, &name, std::fs::read(file).unwrap())
    }
}

/// The refusal's code and message (the call must have failed with an answer of the agent).
fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Api { body, .. }) => (body.code, body.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn release(args: &[&str]) {
    let out = Command::new(tollgate_bin()).arg("release").args(args).output().unwrap();
    assert!(out.status.success(), "release {args:?}: {:?}", text(&out));
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = Command::new(tollgate_bin()).args(["release", "keygen", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    (key, text(&out).0.trim().to_string())
}

fn bundle(dir: &Path, key: &Path, app: &str, version: &str, schema: Option<i64>) -> PathBuf {
    let out = dir.join(format!("tollgate-{app}-{version}.tgb"));
    let mut args = vec!["build", "--key", key.to_str().unwrap(), "--application", app, "--version", version];
    let s = schema.map(|s| s.to_string());
    if let Some(s) = &s {
        args.extend_from_slice(&["--max-policy-schema", s]);
    }
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    release(&args);
    out
}

/// A copy of the bundle with one byte of `member` changed (a well-formed archive, so only the
/// digests and the signature can catch it).
fn tampered(file: &Path, member: &str) -> PathBuf {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path == member {
            let i = data.len() / 2;
            data[i] ^= 0x01;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, &path, data.as_slice()).unwrap();
    }
    let bytes = out.into_inner().unwrap().finish().unwrap();
    let name = format!("tampered-{}-{}", member.replace('/', "_"), file.file_name().unwrap().to_string_lossy());
    let path = file.with_file_name(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bundles_are_verified_staged_installed_and_backed_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = keygen(d, "release.key");
    let (rogue_key, _) = keygen(d, "rogue.key");
    let v1 = bundle(d, &key, "engine", "1.0.0", Some(1));
    let v2 = bundle(d, &key, "engine", "2.0.0", None);
    let wrong_type = bundle(d, &key, "probe", "2.0.0", None);
    let rogue = bundle(d, &rogue_key, "engine", "2.0.9", None); // another file name than v2

    // The engine this agent runs.
    let (api_port, enum_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let role_config = d.join("engine.toml");
    std::fs::write(
        &role_config,
        format!(
            "[node]\nname = \"engine-x\"\nstate_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[enum]\nlisten_udp = [\"127.0.0.1:{enum_port}\"]\nlisten_tcp = [\"127.0.0.1:{enum_port}\"]\n[probe]\nhep_udp = []\nhep_tcp = []\n",
            d.join("engine-state").display()
        ),
    )
    .unwrap();
    let token = "agent-token-0123456789";
    let agent_config = d.join("agent.toml");
    let agent_port = free_port("127.0.0.1");
    std::fs::write(
        &agent_config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{agent_port}\"\nserver = \"engine-x\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"{}\"\ndir = \"{}\"\ntrusted_keys = [\"{public}\"]\ntoken = \"{token}\"\n",
            role_config.display(),
            d.join("agent").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(tollgate_bin())
        .args(["--log", "warn", "--config"])
        .arg(&agent_config)
        .arg("agent")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("tollgate agent ready:"))
        .unwrap();
    let api = line.split_whitespace().find_map(|w| w.strip_prefix("api=")).unwrap().to_string();
    let client = BlockingClient::new(&api, Some(token.into()), Duration::from_secs(120)).unwrap();
    let agent = AgentProcess { child, client };
    assert_eq!(agent.status().release, None);

    // Refused, each with its reason, and nothing staged.
    for (file, reason) in [
        (tampered(&v2, "payload/tollgate"), "sha256"),
        (tampered(&v2, "manifest.toml"), "signature"),
        (rogue.clone(), "unknown key"),
        (wrong_type.clone(), "probe bundle cannot be staged on a engine server"),
    ] {
        let (code, msg) = refusal(agent.stage(&file));
        assert_eq!(code, ErrorCode::Invalid, "{msg}");
        let msg = msg.to_lowercase();
        assert!(msg.contains(reason), "{file:?}: {msg}");
        assert_eq!(agent.status().staged, Vec::<StagedBundle>::new(), "nothing staged after {file:?}");
    }

    // v1: staged, preflighted, installed; the engine reports it and its schema limit.
    assert_eq!(agent.stage(&v1).unwrap().staged, "1.0.0");
    assert_eq!(agent.preflight("1.0.0").unwrap().version, "1.0.0");
    let body = agent.install("1.0.0").unwrap();
    assert_eq!(body.release.as_deref(), Some("1.0.0"));
    let version: Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{api_port}/api/v1/version")).unwrap().json().unwrap();
    assert_eq!((version["release"].as_str(), version["max_policy_schema"].as_i64()), (Some("1.0.0"), Some(1)));
    // Release 1.0.0 reads schema 1 only: a schema-2 policy is refused by the engine itself.
    let policy = d.join("v2.toml");
    let install_policy = || {
        Command::new(tollgate_bin())
            .arg("--config")
            .arg(&role_config)
            .args(["policy", "install"])
            .arg(&policy)
            .output()
            .unwrap()
    };
    std::fs::write(&policy, "schema = 2\nname = \"velocity-v2\"\n[[rule]]\nname = \"v\"\nsource = \"+1312*\"\nvelocity = { calls = 3, window = \"1m\" }\naction = \"terminate\"\n").unwrap();
    let out = install_policy();
    assert!(!out.status.success() && text(&out).1.contains("needs a newer release"), "{:?}", text(&out));

    // Two bundles staged: preflight refuses (exactly one), then v2 alone installs.
    agent.stage(&v2).unwrap();
    agent.stage(&bundle(d, &key, "engine", "2.0.1", None)).unwrap();
    let (code, msg) = refusal(agent.preflight("2.0.0"));
    assert!(code == ErrorCode::Invalid && msg.contains("2.0.1"), "{code:?}: {msg}");
    std::fs::remove_file(d.join("agent/staging/tollgate-engine-2.0.1.tgb")).unwrap();
    let body = agent.install("2.0.0").unwrap();
    assert_eq!((body.release.as_deref(), body.previous_release.as_deref()), (Some("2.0.0"), Some("1.0.0")));
    let out = install_policy();
    assert!(out.status.success(), "release 2.0.0 reads schema 2: {:?}", text(&out));
    let backups = agent.backups();
    assert!(backups.iter().any(|b| b.name.contains("pre-upgrade-2.0.0")), "{backups:?}");

    // Health, then a backout to 1.0.0.
    let health: HealthAnswer = agent.client.get(agent::HEALTH).unwrap();
    let classes: Vec<&str> = health.health.classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(classes, vec!["disk", "hardware", "proc", "net", "replication", "alarms", "tls", "system", "upgrade"]);
    assert!(health.text.contains("Running modules in class disk..."));
    // The role has no [tls]: the class says so, and the facts come along.
    assert!(health.text.contains("Running modules in class tls... OK  (no [tls]"), "{}", health.text);
    assert_eq!(health.health.tls.as_ref().map(|t| t.enabled), Some(false));

    // `tollgate agent ...` asks this server's running agent directly (no manager needed).
    let cli = |args: &[&str]| {
        let out =
            Command::new(tollgate_bin()).arg("--config").arg(&agent_config).arg("agent").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        text(&out).0
    };
    assert!(cli(&["forced-standby", "on"]).contains("engine-x: forced standby on"));
    assert!(agent.status().forced_standby);
    assert!(d.join("agent").join("forced-standby").exists(), "kept where the role process watches it");
    assert!(cli(&["forced-standby", "off"]).contains("engine-x: forced standby off"));
    assert!(!agent.status().forced_standby);
    let status: AgentStatus = serde_json::from_str(&cli(&["status"])).unwrap();
    assert_eq!(status.release.as_deref(), Some("2.0.0"), "{status:?}");
    let body: AgentStatus = agent.client.post_empty(agent::BACKOUT).unwrap();
    assert_eq!(body.release.as_deref(), Some("1.0.0"));
    wait_until(10, "the engine on 1.0.0 again", || {
        reqwest::blocking::get(format!("http://127.0.0.1:{api_port}/api/v1/version"))
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v["release"] == "1.0.0")
    });

    // Restoring the backup taken before the upgrade to 2.0.0 brings the state of that moment
    // back: the schema-2 policy installed since is gone from the history.
    let history = || -> String {
        let token = std::fs::read_to_string(d.join("engine-state/cli-token")).unwrap();
        reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{api_port}/api/v1/policy/history"))
            .bearer_auth(token.trim())
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    // The schema-2 policy was the only install: before the upgrade the history was empty.
    assert!(history().contains("\"event\":\"install\""), "{}", history());
    let name = agent.backups().into_iter().map(|b| b.name).find(|n| n.ends_with("pre-upgrade-2.0.0.tar.gz")).unwrap();
    let body: RestoreAnswer = agent.client.post(agent::RESTORE, &RestoreRequest { name: name.clone() }).unwrap();
    assert_eq!(body.restored, name);
    wait_until(10, "the restored engine answering", || {
        reqwest::blocking::get(format!("http://127.0.0.1:{api_port}/api/v1/version"))
            .is_ok_and(|r| r.status().is_success())
    });
    let after = history();
    assert!(after.starts_with('[') && !after.contains("\"event\":\"install\""), "history after the restore: {after}");
}
