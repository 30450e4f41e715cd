//! systemd readiness, as the packaged `Type=notify` units use it: the test owns the unix
//! datagram socket systemd would own (NOTIFY_SOCKET) and checks what the engine tells it.
//! `READY=1` comes once the role answers (a query sent when it arrives is answered),
//! SIGHUP is a reload (`RELOADING=1`, then `READY=1` again; the process keeps serving), SIGTERM
//! is `STOPPING=1` and a clean exit. Binds only ports the kernel picks on 127.0.0.1.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{dig, free_port, tollgate_bin};

/// The service manager's end: a datagram socket the role notifies.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        // Only a guard against a test hanging forever when nothing comes; no assertion rests on it.
        socket.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        NotifySocket { socket, path, _dir: dir }
    }

    /// The next message, as its `KEY=value` lines.
    fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification from the role (none came)");
        String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string).collect()
    }
}

/// The engine under test, killed if the test fails half-way.
struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill -{sig}");
}

/// Starts `tollgate engine` on kernel-picked ports, as a unit does (`--config FILE engine`),
/// with `env` and `--log log`; standard error is piped when `log` is "info" (the test reads it);
/// returns the process, its ENUM port and its state directory's guard.
fn start_engine(env: &[(&str, &std::ffi::OsStr)], log: &str) -> (Role, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    let api = free_port("127.0.0.1");
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"notify-test\"\nstate_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:{api}\"\n\n\
             [enum]\nlisten_udp = [\"127.0.0.1:{port}\"]\nlisten_tcp = [\"127.0.0.1:{port}\"]\nudp_workers = 1\n\n\
             [probe]\nhep_udp = []\nhep_tcp = []\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let child = Command::new(tollgate_bin())
        .envs(env.iter().copied())
        .env_remove("TOLLGATE_CONFIG")
        .arg("--config")
        .arg(&config)
        .args(["--log", log, "engine"])
        .stdout(Stdio::null())
        .stderr(if log == "info" { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .expect("start tollgate engine");
    (Role(child), port, dir)
}

/// The health-check name (`enum.health_check_name`) answered by the engine on `port`.
fn health(port: u16) -> String {
    let port = port.to_string();
    dig(&["@127.0.0.1", "-p", &port, "+short", "+tries=1", "+time=5", "health.tollgate.", "A"]).trim().to_string()
}

#[test]
fn ready_comes_when_the_engine_answers_and_a_reload_and_stop_are_announced() {
    let notify = NotifySocket::new();
    let (mut role, port, _dir) = start_engine(&[("NOTIFY_SOCKET", notify.path.as_os_str())], "warn");

    // The first thing the engine says is READY=1, with its ready line as the status.
    let first = notify.next();
    assert!(first.iter().any(|l| l == "READY=1"), "{first:?}");
    assert!(first.iter().any(|l| l.starts_with("STATUS=tollgate ready: node=notify-test")), "{first:?}");
    // Nothing else waited for: what systemd starts after this unit finds the engine answering.
    assert_eq!(health(port), "127.0.0.1", "READY=1 came before the engine answered");

    // SIGHUP (ExecReload) is a reload, not the end of the process.
    signal(&role.0, "HUP");
    let reloading = notify.next();
    assert!(reloading.iter().any(|l| l == "RELOADING=1"), "{reloading:?}");
    assert!(reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    let ready_again = notify.next();
    assert!(ready_again.iter().any(|l| l == "READY=1"), "{ready_again:?}");
    assert!(role.0.try_wait().unwrap().is_none(), "SIGHUP ended the engine");
    assert_eq!(health(port), "127.0.0.1", "the engine stopped answering after a reload");

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&role.0, "TERM");
    let stopping = notify.next();
    assert!(stopping.iter().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let status = role.0.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn a_notify_socket_nobody_listens_on_does_not_stop_the_engine() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nobody-here");
    let (mut role, port, _state) = start_engine(&[("NOTIFY_SOCKET", gone.as_os_str())], "info");
    let mut log = BufReader::new(role.0.stderr.take().unwrap()).lines().map_while(Result::ok);
    // The failed READY=1 is logged, after the listeners are bound; the engine serves on.
    let failed = log.find(|l| l.contains("cannot notify the service manager")).expect("no notify failure logged");
    assert!(failed.contains("WARN"), "{failed}");
    assert_eq!(health(port), "127.0.0.1");
    signal(&role.0, "HUP");
    // The reload (whose notifications fail too) has run when its line is logged.
    log.find(|l| l.contains("reload requested")).expect("the SIGHUP was not taken as a reload");
    assert_eq!(health(port), "127.0.0.1");
    assert!(role.0.try_wait().unwrap().is_none(), "the engine ended");
}
