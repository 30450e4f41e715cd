//! The policy lifecycle through the CLI and the HTTP API of a running engine, checked with dig.

mod common;

use common::{Engine, EngineOptions, free_port, temp_file, text};

const POLICY: &str = r#"
schema = 1
name = "lifecycle"

[[internal]]
name = "office"
prefix = "+1212555"

[lists]
robocallers = "lists/robo.txt"

[[rule]]
name = "block-robocallers"
source = "list:robocallers"
action = "terminate"
cause = 603

[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"

[[rule]]
name = "redirect"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
"#;

fn short(e: &Engine, name: &str) -> String {
    e.dig(&["+short", "NAPTR", name]).trim().to_string()
}

fn status(e: &Engine, name: &str) -> String {
    let out = e.dig(&["NAPTR", name]);
    out.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("").to_string()
}

const INTERCEPT: &str = "1.1.1.0.5.5.5.2.1.2.1.e164.arpa.";
const REDIRECT: &str = "2.2.1.0.5.5.5.2.1.2.1.e164.arpa.";
const FROM_ROBO: &str = "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa.";

fn assert_policy_in_force(e: &Engine) {
    assert_eq!(short(e, INTERCEPT), r#"100 10 "u" "E2U+sip" "!^.*$!sip:intercept@127.0.0.1:5090!" ."#);
    assert_eq!(short(e, REDIRECT), r#"100 10 "u" "E2U+sip" "!^.*$!sip:+12125550199@127.0.0.1:5080!" ."#);
    assert_eq!(short(e, FROM_ROBO), r#"100 10 "u" "E2U+sip" "!^.*$!sip:603@reject.tollgate.invalid!" ."#);
}

fn assert_everything_allowed(e: &Engine) {
    for name in [INTERCEPT, REDIRECT, FROM_ROBO] {
        assert_eq!(status(e, name), "NXDOMAIN", "{name} should be allowed");
    }
}

fn policy_dir(policy: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = temp_file("policy.toml", policy);
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/robo.txt"), "+13125550666\n3125550667\n").unwrap();
    (dir, path)
}

#[test]
fn install_reject_bad_policies_uninstall_and_survive_restart() {
    let mut e = Engine::start(EngineOptions { node: "lifecycle".into(), role: "engine", ..Default::default() });
    assert_everything_allowed(&e);

    let (_dir, path) = policy_dir(POLICY);
    let path_s = path.to_str().unwrap();
    let out = e.cli(&["policy", "install", path_s, "--api", &e.api, "--actor", "alice"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("installed version 1 (lifecycle, 3 rules)"), "{stdout}");
    assert_policy_in_force(&e);

    // Bad policies are refused with file, line and field, and change nothing.
    let bad = [
        ("syntax.toml", "schema = 1\n[[rule]]\nname = \"x\"\naction = allow\n", "syntax.toml:4: TOML syntax"),
        (
            "list.toml",
            "schema = 1\n[[rule]]\nname = \"x\"\nsource = \"list:nope\"\naction = \"allow\"\n",
            "list.toml:4: rule[0].source: unknown list \"nope\"",
        ),
        (
            "ranges.toml",
            "schema = 1\n[[internal]]\nprefix = \"+1212\"\n[[internal]]\nprefix = \"+121255\"\n",
            "ranges.toml:4: internal[1]: range \"internal[1]\" overlaps range \"internal[0]\"",
        ),
        (
            "number.toml",
            "schema = 1\n[[rule]]\nname = \"x\"\ndestination = \"+1212555012x\"\naction = \"allow\"\n",
            "number.toml:4: rule[0].destination: bad number \"+1212555012x\"",
        ),
        (
            "intercept.toml",
            "schema = 1\n[[rule]]\nname = \"x\"\naction = \"terminate\"\nintercept = \"nowhere\"\n",
            "intercept.toml:5: rule[0].intercept: unknown intercept \"nowhere\"",
        ),
    ];
    for (name, body, expected) in bad {
        let (_d, p) = temp_file(name, body);
        let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{name} must be refused: {stdout}");
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert!(stderr.contains(expected), "{name}: expected {expected:?} in:\n{stderr}");
        // The local check reports the same.
        let out = e.cli(&["policy", "check", p.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(text(&out).1.contains(expected), "{}", text(&out).1);
    }
    assert_policy_in_force(&e);

    let out = e.cli(&["policy", "show", "--api", &e.api]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("version   1 (installed"), "{stdout}");
    assert!(stdout.contains("by alice"), "{stdout}");
    assert!(stdout.contains("list      robocallers: 2 numbers"), "{stdout}");
    assert!(stdout.contains("block-robocallers"), "{stdout}");

    // Uninstall: the same calls are allowed.
    let out = e.cli(&["policy", "uninstall", "--api", &e.api, "--actor", "bob"]);
    assert!(text(&out).0.contains("uninstalled version 1"), "{:?}", text(&out));
    assert_everything_allowed(&e);

    let out = e.cli(&["policy", "history", "--api", &e.api]);
    let (stdout, _) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("install    v1") && lines[0].ends_with("by alice via cli"), "{stdout}");
    assert!(
        lines[1].contains("uninstall") && lines[1].contains("(was v1)") && lines[1].ends_with("by bob via cli"),
        "{stdout}"
    );

    // The state survives a restart: uninstalled stays uninstalled; a reinstall is in force after.
    e.restart();
    assert_everything_allowed(&e);
    let out = e.cli(&["policy", "install", path_s, "--api", &e.api]);
    assert!(text(&out).0.contains("installed version 2"), "{:?}", text(&out));
    // The install time histogram counts the one install since the restart.
    let metrics = reqwest_get(&format!("{}/metrics", e.api));
    assert!(metrics.contains("# TYPE tollgate_policy_install_seconds histogram"), "{metrics}");
    assert!(metrics.contains("tollgate_policy_install_seconds_count 1\n"), "{metrics}");
    e.restart();
    assert_policy_in_force(&e);

    // Metrics tell which version is in force.
    let metrics = reqwest_get(&format!("{}/metrics", e.api));
    assert!(metrics.contains("tollgate_policy_version 2"), "{metrics}");
    assert!(metrics.contains("tollgate_enum_decisions_total{action=\"terminate\",direction=\"inbound\"}"), "{metrics}");
}

#[test]
fn offline_install_is_in_force_at_next_start() {
    let port = free_port("127.0.0.1");
    let mut e = Engine::start(EngineOptions {
        node: "offline".into(),
        role: "engine",
        enum_listen: vec![format!("127.0.0.1:{port}").parse().unwrap()],
        ..Default::default()
    });
    e.stop();
    let (_dir, path) = policy_dir(POLICY);
    let state = e.state.to_str().unwrap().to_string();
    let out = e.cli(&["policy", "install", path.to_str().unwrap(), "--state-dir", &state]);
    assert!(out.status.success(), "{:?}", text(&out));
    e.restart();
    assert_policy_in_force(&e);
    // lookup reads the same state directory and explains the decision.
    let out = e.cli(&["lookup", "--from", "312-555-0666", "--to", "2125550100", "--state-dir", &state]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("rule      block-robocallers (line 12)"), "{stdout}");
    assert!(stdout.contains("\"!^.*$!sip:603@reject.tollgate.invalid!\""), "{stdout}");
}

#[test]
fn api_requires_authentication_and_the_right_role() {
    let e = Engine::start(EngineOptions {
        node: "token".into(),
        role: "engine",
        token: Some("s3cret".into()),
        ..Default::default()
    });
    let (_dir, path) = policy_dir(POLICY);
    let p = path.to_str().unwrap();
    let state = e.state.to_str().unwrap().to_string();

    // Without a token: 401, before anything is uploaded.
    let anonymous = reqwest::blocking::get(format!("{}/api/v1/policy", e.api)).unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let out = e.cli(&["policy", "install", p, "--api", &e.api, "--token", "wrong"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("401 Unauthorized"), "{:?}", text(&out));
    // It says what to do, and does not call a server that answered unreachable.
    assert!(text(&out).1.contains("give one with --token"), "{:?}", text(&out));
    assert!(!text(&out).1.contains("unreachable") && !text(&out).1.contains("cannot reach"), "{:?}", text(&out));
    assert_everything_allowed(&e);

    // A viewer may look but not install.
    let out = e.cli(&["token", "create", "watcher", "--role", "viewer", "--state-dir", &state]);
    assert!(out.status.success(), "{:?}", text(&out));
    let viewer = text(&out).0.trim().to_string();
    let out = e.cli(&["policy", "install", p, "--api", &e.api, "--token", &viewer]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("403 Forbidden") && text(&out).1.contains("needs the operator role"),
        "{:?}",
        text(&out)
    );
    let out = e.cli(&["policy", "show", "--api", &e.api, "--token", &viewer]);
    assert!(text(&out).0.contains("no policy installed"), "{:?}", text(&out));

    // An operator token installs; so does the token from the configuration (admin).
    let out = e.cli(&["token", "create", "deployer", "--role", "operator", "--state-dir", &state]);
    let operator = text(&out).0.trim().to_string();
    let out = e.cli(&["policy", "install", p, "--api", &e.api, "--token", &operator]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_policy_in_force(&e);
    let out = e.cli(&["policy", "uninstall", "--api", &e.api, "--token", "s3cret"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = e.cli(&["policy", "history", "--api", &e.api, "--token", &viewer]);
    let history = text(&out).0;
    assert!(history.contains("by deployer") && history.contains("by config-token"), "{history}");

    // A revoked token stops working at once (the running server rereads the user database).
    e.cli(&["token", "revoke", "deployer", "--state-dir", &state]);
    let out = e.cli(&["policy", "show", "--api", &e.api, "--token", &operator]);
    assert!(text(&out).1.contains("401"), "{:?}", text(&out));
}

fn reqwest_get(url: &str) -> String {
    reqwest::blocking::get(url).and_then(|r| r.text()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

#[test]
fn migrate_ports_a_schema_1_file_and_reports_the_change() {
    let (dir, path) =
        common::temp_file("old.toml", "# office\nschema = 1\n[[rule]]\nname = \"a\"\naction = \"allow\"\n");
    let out = std::process::Command::new(common::tollgate_bin())
        .args(["policy", "migrate", path.to_str().unwrap(), "--write"])
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(stderr.contains("old.toml:2: schema: schema 1 -> 2"), "{stderr}");
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(new.starts_with("# office\nschema = 2\n"), "{new}");
    assert!(std::fs::read_to_string(dir.path().join("old.schema1.bak")).unwrap().contains("schema = 1"));
    // The migrated file is a valid policy; a second migration changes nothing.
    let check = std::process::Command::new(common::tollgate_bin())
        .args(["policy", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", common::text(&check));
    let again = std::process::Command::new(common::tollgate_bin())
        .args(["policy", "migrate", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(common::text(&again).1.contains("nothing to change"));
}

/// `config check FILE` lists every problem at once, each with its line and field (`--config`
/// still works); `config migrate` ports a previous release's file and reports each change.
#[test]
fn config_check_lists_every_problem_and_migrate_ports_an_old_file() {
    let run = |args: &[&str]| std::process::Command::new(common::tollgate_bin()).args(args).output().unwrap();
    let (dir, bad) = common::temp_file(
        "bad.toml",
        "[node]\nname = \"*\"\n[api]\nidle_timeout = \"soon\"\n[spool]\nsegment_mb = 0\n[agent]\nrole = \"router\"\n",
    );
    for out in
        [run(&["config", "check", bad.to_str().unwrap()]), run(&["--config", bad.to_str().unwrap(), "config", "check"])]
    {
        let (_, stderr) = common::text(&out);
        assert!(!out.status.success());
        for want in [
            "configuration is invalid (5 problems):",
            "bad.toml:2: node.name: ",
            "bad.toml:4: api.idle_timeout: \"soon\" is not a duration",
            "bad.toml:6: spool.segment_mb: must be between 1 and 1024 (is 0)",
            "bad.toml:7: agent: missing field `listen`",
            "bad.toml:8: agent.role: unknown variant `router`",
        ] {
            assert!(stderr.contains(want), "{want:?} in {stderr}");
        }
    }

    let old = dir.path().join("old.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &old,
        format!("# engine\n[node]\nstate_dir = \"{}\"\n[api]\nidle_timeout_secs = 90 # LB\n", state.display()),
    )
    .unwrap();
    let new = dir.path().join("new.toml");
    let out = run(&["config", "migrate", old.to_str().unwrap(), "--out", new.to_str().unwrap()]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(stdout.contains("config_version 1 -> 2: 2 changes"), "{stdout}");
    assert!(
        stdout.contains(
            "line 5: renamed: api.idle_timeout_secs: api.idle_timeout_secs = 90 is now api.idle_timeout = \"1m 30s\""
        ),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&new).unwrap();
    assert!(
        text.starts_with("# engine\nconfig_version = 2\n\n[node]\n")
            && text.ends_with("idle_timeout = \"1m 30s\" # LB\n"),
        "{text}"
    );
    let check = run(&["config", "check", new.to_str().unwrap()]);
    assert!(check.status.success(), "{:?}", common::text(&check));
    // The old file still reads, and check says it can be ported.
    let check = run(&["config", "check", old.to_str().unwrap()]);
    assert!(common::text(&check).0.contains("`tollgate config migrate FILE` ports it"), "{:?}", common::text(&check));
    // Without --out: the file on standard output, the report on standard error.
    let out = run(&["config", "migrate", old.to_str().unwrap()]);
    assert_eq!(common::text(&out).0, text);
    assert!(common::text(&out).1.contains("renamed: api.idle_timeout_secs"));
}
