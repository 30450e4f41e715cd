//! The CLI as a new operator meets it: output into a closed pipe, read commands on a mistyped
//! directory, a start on a busy port, flags that would do nothing, and messages that say what
//! happened. No fixed address is bound (only ports the kernel picks), so these tests need no
//! lock and no root.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tollgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    c.env_remove("TOLLGATE_CONFIG").env_remove("TOLLGATE_TOKEN").env("TOLLGATE_LOG", "warn");
    c
}

fn run(args: &[&str]) -> Output {
    tollgate().args(args).output().expect("run tollgate")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Runs `args` with standard output a pipe whose reader is already gone, as `| head` leaves
/// it once it has its lines; returns the exit status and standard error.
fn into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = tollgate().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run tollgate");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).to_string())
}

/// A policy with enough rules that its JSON is far larger than a pipe's buffer.
fn big_policy(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("schema = 2\nname = \"big\"\n");
    for i in 0..1500 {
        text.push_str(&format!(
            "\n[[rule]]\nname = \"redirect-{i}\"\ndestination = \"+1212555{i:04}\"\naction = \"redirect\"\ntarget = \"+12125559999\"\n"
        ));
    }
    let path = dir.join("big.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn policy_show_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = big_policy(dir.path());
    let state_s = state.to_str().unwrap();
    let out = run(&["policy", "install", policy.to_str().unwrap(), "--state-dir", state_s]);
    assert!(out.status.success(), "{:?}", text(&out));
    for args in [
        &["policy", "show", "--json", "--state-dir", state_s][..],
        &["policy", "show", "--text", "--state-dir", state_s][..],
    ] {
        let (status, stderr) = into_closed_pipe(args);
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn spool_dump_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    {
        let spool = tollgate_records::spool::Spool::open(&spool_dir, Default::default()).unwrap();
        let mut lane = spool.lane("test").unwrap();
        let record: tollgate_records::Record = serde_json::from_str(
            r#"{"kind":"sip_call","v":1,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","time":"2026-01-01T00:00:00Z","device":"probe-1","call_id":"a@b","source":"+13125550100","destination":"+12125550100","direction":"inbound","disposition":"answered","final_code":200,"pdd_ms":120,"duration_ms":5000,"answered_at":null,"ended_at":null}"#,
        )
        .unwrap();
        for _ in 0..2000 {
            lane.append(&record).unwrap();
        }
    }
    let dir_s = spool_dir.to_str().unwrap();
    let out = run(&["spool", "dump", "--dir", dir_s]);
    assert!(out.status.success(), "{:?}", text(&out).1);
    assert_eq!(text(&out).0.lines().count(), 2000);
    let (status, stderr) = into_closed_pipe(&["spool", "dump", "--dir", dir_s]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn any_command_printing_into_a_closed_pipe_exits_quietly() {
    // Commands that still print with println! are caught by the safety net.
    for args in [&["config", "default"][..], &["--help"][..], &["policy", "--help"][..]] {
        let (status, stderr) = into_closed_pipe(args);
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn read_commands_on_a_mistyped_state_directory_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("tollgate-dta");
    let typo_s = typo.to_str().unwrap();
    for args in [
        &["user", "list", "--state-dir", typo_s][..],
        &["token", "list", "--state-dir", typo_s][..],
        &["user", "remove", "alice", "--state-dir", typo_s][..],
        &["token", "revoke", "ci", "--state-dir", typo_s][..],
        &["policy", "show", "--state-dir", typo_s][..],
        &["policy", "history", "--state-dir", typo_s][..],
        &["lookup", "--to", "2125550100", "--state-dir", typo_s][..],
    ] {
        let out = run(args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded on a directory that does not exist: {stdout}");
        assert!(stderr.contains(typo_s), "{args:?}: the message names the directory: {stderr}");
        assert!(!stdout.contains("password"), "{args:?} made a user database: {stdout}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

#[test]
fn serve_on_a_busy_port_fails_before_creating_state_or_printing_a_password() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for role in ["serve", "collector"] {
        let mut child = tollgate()
            .args([role, "--state-dir", state.to_str().unwrap(), "--api-listen", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("`tollgate {role}` kept running on a busy API port");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("cannot bind the API listener {addr}")), "{stderr}");
        assert!(!stdout.contains("password"), "a password was printed: {stdout}");
        assert!(!state.exists(), "`tollgate {role}` created its state directory before failing to bind");
    }
}

#[test]
fn flags_that_would_do_nothing_are_refused() {
    for args in [
        &["collector", "--enum-listen", "127.0.0.1:5353"][..],
        &["collector", "--no-demo"][..],
        &["engine", "--no-demo"][..],
        &["probe", "--enum-listen", "127.0.0.1:5353"][..],
        &["probe", "--no-demo"][..],
        &["policy", "show", "--actor", "alice"][..],
        &["policy", "history", "--actor", "alice"][..],
        &["policy", "check", "p.toml", "--actor", "alice"][..],
        &["policy", "check", "p.toml", "--state-dir", "x"][..],
        &["health", "--state-dir", "x"][..],
        &["health", "--actor", "alice"][..],
        &["upgrade", "status", "--state-dir", "x"][..],
        &["srp", "show", "info", "--state-dir", "x"][..],
        &["backup", "list", "--actor", "alice"][..],
        &["lookup", "--to", "1", "--api", "http://127.0.0.1:1", "--at", "2026-01-01T00:00:00Z"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?} was accepted: {:?}", text(&out));
        let stderr = text(&out).1;
        assert!(stderr.contains("unexpected argument") || stderr.contains("cannot be used with"), "{args:?}: {stderr}");
    }
    // The flags that do something are still there.
    for args in [
        &["serve", "--help"][..],
        &["engine", "--help"][..],
        &["policy", "install", "--help"][..],
        &["policy", "uninstall", "--help"][..],
    ] {
        let out = run(args);
        let help = text(&out).0;
        assert!(out.status.success(), "{args:?}");
        let want = match args[0] {
            "serve" => "--no-demo",
            "engine" => "--enum-listen",
            _ => "--actor",
        };
        assert!(help.contains(want), "{args:?} lost {want}: {help}");
    }
}

#[test]
fn a_server_that_is_not_there_is_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api = format!("http://127.0.0.1:{port}");
    for args in [
        &["policy", "show", "--api", &api][..],
        &["analytics", "--api", &api][..],
        &["lookup", "--to", "2125550100", "--api", &api][..],
    ] {
        let out = run(args);
        let stderr = text(&out).1;
        assert!(!out.status.success());
        assert!(stderr.contains("connection refused"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error sending request"), "{args:?}: {stderr}");
    }
    // Policy commands also work offline, and say so.
    let out = run(&["policy", "show", "--api", &api]);
    assert!(text(&out).1.contains("--state-dir"), "{:?}", text(&out));
}

#[test]
fn user_set_reads_the_password_from_a_pipe_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let mut child = tollgate()
        .args(["user", "set", "alice", "--role", "viewer", "--state-dir", state_s])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("correct horse") && !stderr.contains("correct horse"), "{stdout}{stderr}");
    let out = run(&["user", "list", "--state-dir", state_s]);
    assert!(text(&out).0.lines().any(|l| l.starts_with("alice") && l.contains("viewer")), "{:?}", text(&out));
}

#[test]
fn user_set_on_a_terminal_does_not_echo_the_password() {
    // A terminal through util-linux `script` (a pseudo-terminal): whatever the terminal echoes
    // is in script's output. The password is typed only once the prompt is there.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let command = format!(
        "{} user set carol --role viewer --state-dir {}",
        env!("CARGO_BIN_EXE_tollgate"),
        state.to_str().unwrap()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TOLLGATE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script (Debian package util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(b"hidden-password-42\n").unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1000));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("password for carol"), "no prompt: {stdout}");
    assert!(stdout.contains("user carol saved"), "{stdout}");
    assert!(!stdout.contains("hidden-password-42"), "the terminal echoed the password:\n{stdout}");
}
