//! Hostile-input tests of the agent's API and of the files tollgate leaves on disk (issue 11,
//! items 8 and 14), with a real `tollgate agent`, a real `tollgate serve` and the real CLI:
//!
//! * bodies before authentication: a caller without the agent's token, or with a wrong one, is
//!   refused from the headers, before the body is read, and cannot make the agent hold a large
//!   body in memory; an authenticated body over its route's limit is refused with nothing kept;
//! * secrets and callers' numbers on disk: whatever the umask tollgate is started with, its
//!   state (records, spool, policy store, users, tokens), its backups and its signing keys are
//!   for its owner only, and state left open by an older release is closed at start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Engine, EngineOptions, TrackedClient, peak_memory_kib, text, tollgate_bin, wait_until};

const MIB: u64 = 1 << 20;
const TOKEN: &str = "agent-token-0123456789";

/// `tollgate <args>` started the way a careless operator's shell would, with `umask 000`.
fn under_umask_000(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg("umask 000; exec \"$0\" \"$@\"").arg(tollgate_bin()).args(args);
    c
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// Every file and directory under `root` (itself included) that the group or others can use,
/// with its mode; directories that are not exactly 0700. A running server deletes files
/// (shipped spool segments, SQLite journals) while the walk goes on: a file gone between
/// listing and looking is skipped, not an error.
fn not_private(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", p.display()),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let m = meta.permissions().mode() & 0o7777;
        if m & 0o077 != 0 || (meta.is_dir() && m != 0o700) {
            bad.push(format!("{} {m:o}", p.display()));
        }
        if meta.is_dir() {
            match std::fs::read_dir(&p) {
                Ok(entries) => stack.extend(entries.filter_map(|e| e.ok()).map(|e| e.path())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", p.display()),
            }
        }
    }
    bad
}

/// Every file under `root`, relative (files and directories that vanish during the walk of a
/// running server are skipped).
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else { continue };
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Waits for the line of `child`'s output that starts with `prefix`; the rest of its output is
/// read (and dropped) on a thread of its own, so the process never writes into a closed pipe.
fn ready_line(child: &mut Child, prefix: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.by_ref().map_while(Result::ok).find(|l| l.starts_with(prefix));
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    line.unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

/// A running `tollgate agent` (no release installed: only the agent itself runs).
struct Agent {
    child: Child,
    /// `host:port` of its API.
    addr: String,
    /// Its directory (`[agent] dir`).
    dir: PathBuf,
}

impl Agent {
    /// Starts an agent in `dir` for the role configuration `role_config`, with `extra` lines in
    /// its `[agent]` section; `umask_000` starts it from a shell with `umask 000`.
    fn start(dir: &Path, role_config: &Path, extra: &str, umask_000: bool) -> Agent {
        let key = dir.join("release.key");
        let out = Command::new(tollgate_bin()).args(["release", "keygen", "--out"]).arg(&key).output().unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
        let public = text(&out).0.trim().to_string();
        let agent_dir = dir.join("agent");
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nlisten = \"127.0.0.1:0\"\nserver = \"engine-x\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"{}\"\ndir = \"{}\"\ntrusted_keys = [\"{public}\"]\ntoken = \"{TOKEN}\"\n{extra}",
                role_config.display(),
                agent_dir.display()
            ),
        )
        .unwrap();
        let args = ["--log", "warn", "--config", config.to_str().unwrap(), "agent"];
        let mut command = if umask_000 {
            under_umask_000(&args)
        } else {
            let mut c = Command::new(tollgate_bin());
            c.args(args);
            c
        };
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let line = ready_line(&mut child, "tollgate agent ready:");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("api=http://"))
            .expect("api= in the ready line")
            .to_string();
        Agent { child, addr, dir: agent_dir }
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
    }

    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r =
            Self::client().post(format!("http://{}{path}", self.addr)).bearer_auth(TOKEN).json(body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn healthy(&self) -> bool {
        Self::client()
            .get(format!("http://{}/agent/v1/status", self.addr))
            .bearer_auth(TOKEN)
            .send()
            .is_ok_and(|r| r.status().is_success())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What happened to a body streamed at a server.
#[derive(Debug)]
struct Upload {
    /// The answer's status code.
    status: u16,
    /// The answer's body.
    answer: String,
    /// Bytes of the body sent when the answer arrived.
    sent_when_answered: u64,
    /// Bytes of the body sent in all (the server closed the connection before the rest).
    sent: u64,
    /// The server closed the connection after answering.
    closed: bool,
}

/// POSTs a body of `total` bytes to `path` over a raw connection, streaming it 1 MiB at a time
/// while reading the answer. The length is announced in `Content-Length`, or with `chunked`
/// the body is sent in chunks of unannounced total length.
fn stream_body(addr: &str, path: &str, authorization: Option<&str>, total: u64, chunked: bool) -> Upload {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let length =
        if chunked { "Transfer-Encoding: chunked\r\n".to_string() } else { format!("Content-Length: {total}\r\n") };
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n{auth}{length}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let mut writer = stream.try_clone().unwrap();
    let counter = sent.clone();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0x5au8; MIB as usize];
        let mut done = 0u64;
        while done < total {
            let n = (total - done).min(MIB) as usize;
            let result = if chunked {
                writer
                    .write_all(format!("{n:x}\r\n").as_bytes())
                    .and_then(|()| writer.write_all(&chunk[..n]))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&chunk[..n])
            };
            if result.is_err() {
                return;
            }
            done += n as u64;
            counter.store(done, Ordering::SeqCst);
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    stream.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let mut sent_when_answered = None;
    let mut closed = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if sent_when_answered.is_none() && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    sent_when_answered = Some(sent.load(Ordering::SeqCst));
                    // From now on only wait a while to see whether the server closes.
                    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    let response = String::from_utf8_lossy(&got).into_owned();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let answer = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Upload {
        status,
        answer,
        sent_when_answered: sent_when_answered.unwrap_or(u64::MAX),
        sent: sent.load(Ordering::SeqCst),
        closed,
    }
}

/// A minimal role configuration (the agent reads it; with no release installed it runs no role).
fn role_config(dir: &Path) -> PathBuf {
    let path = dir.join("role.toml");
    std::fs::write(&path, format!("[node]\nname = \"engine-x\"\nstate_dir = \"{}\"\n", dir.join("state").display()))
        .unwrap();
    path
}

/// A 500 MiB bundle upload with `authorization` is refused from its headers: answered 401 after
/// a small part was sent, the connection closed, the agent's memory not grown by the body.
fn refused_before_the_body(authorization: Option<&str>) {
    let _g = crate::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), &role_config(dir.path()), "", false);
    let before = peak_memory_kib(agent.child.id()) * 1024;
    let up = stream_body(&agent.addr, "/agent/v1/stage?name=evil.tgb", authorization, 500 * MIB, false);
    let peak = peak_memory_kib(agent.child.id()) * 1024;
    eprintln!(
        "unauthenticated 500 MiB upload ({authorization:?}): {up:?}; agent peak memory {} MiB (before: {} MiB)",
        peak / MIB,
        before / MIB
    );
    assert_eq!(up.status, 401, "{up:?}");
    assert!(up.answer.contains("token"), "{up:?}");
    assert!(
        up.sent_when_answered < 64 * MIB,
        "answered only after {} MiB of the body were read",
        up.sent_when_answered / MIB
    );
    assert!(up.closed && up.sent < 500 * MIB, "the connection stayed open for the rest of the body: {up:?}");
    assert!(peak < 100 * MIB, "the agent's peak memory grew to {} MiB", peak / MIB);
    assert!(files(&dir.path().join("agent/staging")).is_empty(), "something was staged");
    assert!(agent.healthy(), "the agent no longer answers");
}

#[test]
fn an_unauthenticated_bundle_upload_is_refused_before_its_body_is_read() {
    refused_before_the_body(None);
}

#[test]
fn a_bundle_upload_with_a_wrong_token_is_refused_before_its_body_is_read() {
    refused_before_the_body(Some("Bearer agent-token-0123456780"));
}

#[test]
fn an_authenticated_body_over_its_routes_limit_is_refused_and_nothing_is_kept() {
    let _g = crate::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), &role_config(dir.path()), "max_bundle_mb = 1\n", false);
    let staging = dir.path().join("agent/staging");
    let bearer = format!("Bearer {TOKEN}");
    // Announced too large: refused at once. Not announced (chunked): refused once 1 MiB is in.
    for chunked in [false, true] {
        let up = stream_body(&agent.addr, "/agent/v1/stage?name=big.tgb", Some(&bearer), 64 * MIB, chunked);
        assert_eq!(up.status, 413, "chunked={chunked}: {up:?}");
        assert!(up.answer.contains("agent.max_bundle_mb"), "the answer names the setting: {up:?}");
        assert!(up.sent_when_answered < 32 * MIB, "chunked={chunked}: {up:?}");
        assert!(files(&staging).is_empty(), "chunked={chunked}: left in staging: {:?}", files(&staging));
    }
    // Within the limit, a body that is no bundle is read, refused, and not kept either.
    let up = stream_body(&agent.addr, "/agent/v1/stage?name=small.tgb", Some(&bearer), MIB / 2, false);
    assert_eq!(up.status, 422, "{up:?}");
    assert!(files(&staging).is_empty(), "left in staging: {:?}", files(&staging));
    // The JSON routes take small bodies only.
    let pad = "x".repeat(MIB as usize);
    let (status, body) = agent.post_json("/agent/v1/preflight", &serde_json::json!({ "version": "1.0.0", "pad": pad }));
    assert_eq!(status, 413, "{body}");
    assert!(agent.healthy());
}

/// A `tollgate serve` started from a shell with `umask 000`.
struct OpenServer {
    child: Child,
    api: String,
    udp: std::net::SocketAddr,
    config: PathBuf,
}

impl OpenServer {
    fn start(dir: &Path) -> OpenServer {
        let port = crate::common::free_port("127.0.0.1");
        let config = dir.join("tollgate.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"engine-open\"\nstate_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[spool]\nfsync_ms = 50\n\n[enum]\nlisten_udp = [\"127.0.0.1:{port}\"]\nlisten_tcp = [\"127.0.0.1:{port}\"]\nudp_workers = 2\n\n[probe]\nhep_udp = []\nhep_tcp = []\n",
                dir.join("state").display()
            ),
        )
        .unwrap();
        let mut child = under_umask_000(&["--config", config.to_str().unwrap(), "--log", "warn", "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let line = ready_line(&mut child, "tollgate ready:");
        let field =
            |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap().to_string();
        let udp = field("enum_udp").split(',').next().unwrap().parse().unwrap();
        OpenServer { child, api: field("api"), udp, config }
    }
}

impl Drop for OpenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends ENUM queries until the records reach the record store (the collector of `serve`).
fn traffic_until_stored(udp: std::net::SocketAddr, api: &str, token: &str) {
    let mut client = TrackedClient::new(udp);
    for n in 0..50 {
        client.ask(n);
    }
    assert!(!client.answered.is_empty(), "no query was answered");
    let http = reqwest::blocking::Client::new();
    wait_until(120, "records in the record store", || {
        http.get(format!("{api}/api/v1/devices?dataset=ENUM"))
            .bearer_auth(token)
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    });
}

#[test]
fn a_server_started_with_umask_000_keeps_records_tokens_and_policies_private() {
    let dir = tempfile::tempdir().unwrap();
    let server = OpenServer::start(dir.path());
    let state = dir.path().join("state");
    let token = std::fs::read_to_string(state.join("cli-token")).unwrap().trim().to_string();
    traffic_until_stored(server.udp, &server.api, &token);
    // A token created with the CLI (users.json rewritten), from a shell with umask 000 too.
    let out =
        under_umask_000(&["--config", server.config.to_str().unwrap(), "token", "create", "ci", "--role", "viewer"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let all = files(&state);
    for expected in ["records.db", "users.json", "cli-token", "ingest-token", "policy/current"] {
        assert!(all.iter().any(|f| f == expected), "{expected} not in {all:?}");
    }
    assert!(all.iter().any(|f| f.starts_with("spool/")), "no spool in {all:?}");
    assert!(all.iter().any(|f| f.starts_with("policy/versions/")), "no policy version in {all:?}");
    let bad = not_private(&state);
    assert!(bad.is_empty(), "group or other can use: {bad:#?}");
}

#[test]
fn a_state_directory_left_open_by_an_older_release_is_made_private_at_start() {
    let mut engine = Engine::start(EngineOptions::default());
    let token = engine.cli_token();
    traffic_until_stored(engine.udp, &engine.api, &token);
    engine.stop();
    // What an older release (umask 022, or an operator's chmod) left behind.
    let status = Command::new("chmod").args(["-R", "go+rwX"]).arg(&engine.state).status().unwrap();
    assert!(status.success());
    assert!(!not_private(&engine.state).is_empty());
    engine.start_again();
    let bad = not_private(&engine.state);
    assert!(bad.is_empty(), "still open after the start: {bad:#?}");
}

#[test]
fn agent_backups_holding_the_role_tokens_are_private() {
    let engine = Engine::start(EngineOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), &engine.config, "", true);
    let (status, body) = agent.post_json("/agent/v1/backup", &serde_json::json!({ "why": "manual" }));
    assert_eq!(status, 200, "{body}");
    let backups = agent.dir.join("backups");
    let name = body["name"].as_str().unwrap();
    assert_eq!(mode(&backups.join(name)), 0o600, "the backup holds the cli-token");
    let bad = not_private(&agent.dir);
    assert!(bad.is_empty(), "group or other can use: {bad:#?}");
    // It holds the role's admin token indeed.
    let out = Command::new("tar").arg("tzf").arg(backups.join(name)).output().unwrap();
    assert!(text(&out).0.lines().any(|l| l == "state/cli-token"), "{:?}", text(&out));
}

#[test]
fn release_keygen_with_umask_000_writes_the_key_into_a_new_private_file() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh key file.
    let fresh = dir.path().join("fresh.key");
    let out = under_umask_000(&["release", "keygen", "--out", fresh.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(mode(&fresh), 0o600);
    // A file someone else made world-writable and holds open: the key must not go into it.
    let planted = dir.path().join("release.key");
    std::fs::write(&planted, "").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut watcher = std::fs::File::open(&planted).unwrap();
    let out = under_umask_000(&["release", "keygen", "--out", planted.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(mode(&planted), 0o600);
    let key = std::fs::read_to_string(&planted).unwrap();
    assert_eq!(key.trim().len(), 64, "{key:?}");
    let mut seen = String::new();
    watcher.read_to_string(&mut seen).unwrap();
    assert!(seen.is_empty(), "the signing key went into a file another process held open");
}

/// Two agents on one directory used to run side by side, staging, installing and backing out
/// over each other. A second one is now refused at start, naming the first one's pid.
#[test]
fn a_second_agent_on_the_same_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = Agent::start(dir.path(), &role_config(dir.path()), "", false);
    let out = Command::new(tollgate_bin())
        .args(["--log", "warn", "--config"])
        .arg(dir.path().join("agent.toml"))
        .arg("agent")
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success(), "the second agent must not run");
    assert!(
        err.contains("agent directory") && err.contains(&format!("in use by pid {}", first.child.id())),
        "the error names the holder: {err}"
    );
    assert!(first.healthy(), "the first agent keeps serving");
}
