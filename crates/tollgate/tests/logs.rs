//! The log on standard error as journald or Loki read it: no colour codes when standard error
//! is not a terminal, and with `--log-format json` (or `[log] format = "json"`) every line one
//! JSON object with the stable keys. The binary runs with standard error a pipe; the commands
//! bind nothing or only ports the kernel picks, so these tests need no lock and no root.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `tollgate` without the caller's log or configuration settings.
fn tollgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    for var in ["TOLLGATE_CONFIG", "TOLLGATE_TOKEN", "TOLLGATE_LOG", "TOLLGATE_LOG_FORMAT", "NO_COLOR"] {
        c.env_remove(var);
    }
    c
}

/// A pcap file with its header and no packets: `probe --pcap` on it logs at start (the
/// open-file limit) and reports no calls.
fn empty_pcap(dir: &Path) -> PathBuf {
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    let path = dir.join("empty.pcap");
    std::fs::write(&path, header).unwrap();
    path
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run tollgate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("the log is UTF-8")
}

/// Every line of `log` as a JSON object with timestamp, level, target and message.
fn json_events(log: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(!log.trim().is_empty(), "there is a log");
    log.lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{log}"));
            let object = value.as_object().unwrap_or_else(|| panic!("not an object: {line}")).clone();
            for key in ["timestamp", "level", "target", "message"] {
                assert!(object.get(key).is_some_and(|v| v.is_string()), "{key} missing or not a string: {line}");
            }
            let time = object["timestamp"].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "timestamp {time:?} is not RFC 3339");
            let level = object["level"].as_str().unwrap();
            assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level), "level {level:?}: {line}");
            object
        })
        .collect()
}

#[test]
fn text_logs_into_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = empty_pcap(dir.path());
    let out = run(tollgate().args(["probe", "--pcap"]).arg(&pcap));
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("INFO") && log.contains("open-file limit"), "an info line was logged: {log:?}");
    assert!(!out.stderr.contains(&0x1b), "no ESC byte in a piped text log: {log:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_stable_keys_to_the_final_error() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = empty_pcap(dir.path());
    let out = run(tollgate().args(["--log-format", "json", "probe", "--pcap"]).arg(&pcap));
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&stderr(&out));
    let limit = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("open-file limit"))
        .expect("the open-file limit is logged");
    assert_eq!((limit["level"].as_str(), limit["target"].as_str()), (Some("INFO"), Some("tollgate::fd_limit")));

    // A command that fails ends its JSON log with the error as an event, not a bare line; the
    // environment variable selects the format as the flag does.
    let missing = dir.path().join("missing.pcap");
    let out = run(tollgate().env("TOLLGATE_LOG_FORMAT", "json").args(["probe", "--pcap"]).arg(&missing));
    assert!(!out.status.success());
    let events = json_events(&stderr(&out));
    let last = events.last().unwrap();
    assert_eq!(last["level"].as_str(), Some("ERROR"));
    assert!(last["message"].as_str().unwrap().contains("missing.pcap"), "{last:?}");
}

#[test]
fn the_configuration_file_sets_the_log_format_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = empty_pcap(dir.path());
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, "[log]\nformat = \"json\"\nlevel = \"info\"\n").unwrap();
    let out = run(tollgate().arg("--config").arg(&config).args(["probe", "--pcap"]).arg(&pcap));
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&stderr(&out));
    assert!(events.iter().any(|e| e["message"].as_str().unwrap().starts_with("open-file limit")), "{events:?}");

    let out = run(tollgate().arg("--config").arg(&config).args(["--log-format", "text", "probe", "--pcap"]).arg(&pcap));
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("open-file limit") && !log.trim_start().starts_with('{'), "text wins: {log:?}");

    // The configuration's level applies too: at warn, the info line is gone.
    std::fs::write(&config, "[log]\nformat = \"json\"\nlevel = \"warn\"\n").unwrap();
    let out = run(tollgate().arg("--config").arg(&config).args(["probe", "--pcap"]).arg(&pcap));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("open-file limit"), "{}", stderr(&out));

    // A [log] the file cannot hold is reported by the configuration's check, with its line.
    std::fs::write(&config, "[node]\nname = \"a\"\n[log]\nformat = \"xml\"\n").unwrap();
    let out = run(tollgate().arg("--config").arg(&config).args(["config", "check"]));
    assert!(!out.status.success());
    let log = stderr(&out);
    assert!(log.contains("tollgate.toml:4: log.format: unknown variant `xml`"), "{log}");
}

/// A whole server's life in JSON: `serve` from its first start (the demo policy installed, an
/// event with a field of its own) to its shutdown on SIGTERM, every line of its standard error
/// one object. Only ports the kernel picks are bound.
#[test]
fn a_servers_whole_log_is_json_from_start_to_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    let text = "[node]\nstate_dir = \"state\"\n[log]\nformat = \"json\"\n\
                [enum]\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n\
                [api]\nlisten = \"127.0.0.1:0\"\n[probe]\nhep_udp = []\nhep_tcp = []\n";
    std::fs::write(&config, text).unwrap();
    let mut child = tollgate()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        err.read_to_string(&mut text).unwrap();
        text
    });
    // A server that never becomes ready is stopped, so the reads below end.
    let pid = child.id();
    let (done, stopped) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if stopped.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let ready = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("tollgate ready:"));
    let term = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    done.send(()).unwrap();
    watchdog.join().unwrap();
    let log = log.join().unwrap();
    assert!(ready && term.success(), "the server became ready: {log}");
    assert!(status.success(), "a clean shutdown on SIGTERM ({status}): {log}");
    let events = json_events(&log);
    let demo = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("installed the demo policy"))
        .unwrap_or_else(|| panic!("the first start is logged: {log}"));
    assert!(demo["version"].is_u64(), "the event's own field is beside the stable keys: {demo:?}");
    assert_eq!(demo["target"].as_str(), Some("tollgate::roles::serve"));
    assert!(events.iter().any(|e| e["message"] == "shutting down"), "{log}");
}
