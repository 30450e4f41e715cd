//! The manager's console in headless Chromium (Debian chromium + chromium-driver over WebDriver,
//! as tests/upgrade_ui.rs) on a whole lab topology (`tollgate lab up`): an operator logs in with
//! user and password, reads the topology (every server drawn with its HA state), drills down to
//! a server, runs an upgrade step (Initiate upgrade of the standby manager) from the Upgrade page with the login session (no token in the
//! page), acknowledges an alarm, and finds both in the audit with their name, beside a change
//! made with the shared token on behalf of a person named in `X-Actor`. Unknown paths get the
//! designed 404 page; a viewer is refused what needs an operator; the users, made on the active
//! manager only, log in to the standby (the active copies its user database to its mate). Screenshots of each page go
//! to docs/screenshots/console-*.png.
//!
//! Fails when chromium or chromedriver is not installed (they are prerequisites, not options).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::chromium::{Driver, browser};
use common::lab::Lab;
use common::{text, tollgate_bin};
use fantoccini::{Client, Locator};
use serde_json::Value;

/// The lab's network (127.0.81.x) and ENUM port: other labs use 77 to 80, and port 53.
const NET: u8 = 81;
const ENUM_PORT: u16 = 5391;
const PASSWORD: &str = "console-test-password";

fn screenshot_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("console-{name}.png"))
}

/// Saves the page as docs/screenshots/console-`name`.png and adds its serious accessibility
/// violations (axe-core) to `found`, checked at the end of the test.
async fn shoot(c: &Client, name: &str, found: &mut Vec<String>) {
    std::fs::write(screenshot_path(name), c.screenshot().await.unwrap()).unwrap();
    found.extend(common::axe::serious_violations(c, name).await);
}

/// Adds `name` with `role` to the active manager's user database (`tollgate user set`); the
/// active manager copies it to its mate.
fn add_user(lab: &Lab, name: &str, role: &str) {
    let state = lab.path().join("servers").join("mgr-a").join("state");
    let out = Command::new(tollgate_bin())
        .args(["user", "set", name, "--role", role, "--password", PASSWORD, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "tollgate user set {name} on mgr-a: {:?}", text(&out));
}

/// Runs `script` in the page until it returns something other than null (up to `limit`).
async fn wait_for(c: &Client, limit: Duration, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(v) = c.execute(script, vec![]).await
            && !v.is_null()
        {
            return v;
        }
        if Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!("timed out after {} s waiting for {what} on {url}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Logs in through the login form the console sent the browser to.
async fn log_in(c: &Client, name: &str) {
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    wait_for(c, Duration::from_secs(20), "the login", "return document.getElementById('user') ? true : null;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_reads_the_topology_upgrades_acknowledges_and_is_audited() {
    let binary = common::chromium::require_binary();
    let lab = tokio::task::block_in_place(|| Lab::up(NET, ENUM_PORT));
    add_user(&lab, "olga", "operator");
    add_user(&lab, "vera", "viewer");
    add_user(&lab, "ada", "admin");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &binary, profile.path(), (1400, 1100)).await;
    let outcome =
        tokio::spawn(drive(c.clone(), lab.managers[0].clone(), lab.managers[1].clone(), lab.token.clone())).await;
    let _ = c.close().await;
    drop(driver);
    drop(lab);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drive(c: Client, manager: String, standby: String, token: String) {
    let mut a11y = Vec::new();
    // The active manager (mgr-a in a fresh lab) sends a visitor without a session to log in.
    c.goto(&format!("{manager}/topology")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    shoot(&c, "login", &mut a11y).await;
    log_in(&c, "olga").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/topology", "back where the visitor was going");

    // Topology: every server drawn, grouped, with its HA state.
    let drawn = c
        .execute(
            r##"return [...document.querySelectorAll("#topology g.server")].map(g => ({
                 server: g.dataset.server, cluster: g.dataset.cluster, ha: g.dataset.ha, health: g.dataset.health,
                 site: g.closest("g.site").dataset.site, w: g.getBBox().width }));"##,
            vec![],
        )
        .await
        .unwrap();
    let drawn = drawn.as_array().unwrap();
    assert_eq!(drawn.len(), 11, "every lab server is drawn: {drawn:#?}");
    let ha_of = |server: &str| {
        drawn.iter().find(|d| d["server"] == server).unwrap_or_else(|| panic!("{server} not drawn"))["ha"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ha_of("mgr-a"), "Active");
    assert_eq!(ha_of("mgr-b"), "Standby");
    for cluster in ["engine-east", "engine-west"] {
        let mut states: Vec<String> =
            drawn.iter().filter(|d| d["cluster"] == cluster).map(|d| d["ha"].as_str().unwrap().to_string()).collect();
        states.sort();
        assert_eq!(states, ["Active", "Spare", "Standby"], "{cluster} is a 2+1 cluster: {drawn:#?}");
    }
    assert!(drawn.iter().all(|d| d["w"].as_f64().unwrap() > 100.0), "each server is a drawn box");
    assert!(
        drawn.iter().all(|d| d["health"] == "true" || d["health"] == "false"),
        "every agent's health report is drawn: {drawn:#?}"
    );
    shoot(&c, "topology", &mut a11y).await;

    // Drill down to a server.
    c.find(Locator::Css("#topology a[href='/topology/east-a']")).await.unwrap().click().await.unwrap();
    let server = wait_for(
        &c,
        Duration::from_secs(30),
        "the server page",
        r##"const s = document.getElementById("server"); return s ? { server: s.dataset.server,
             ha: document.getElementById("ha-state").textContent, release: document.getElementById("running").textContent,
             health: (document.getElementById("health") || {}).textContent || "" } : null;"##,
    )
    .await;
    assert_eq!(server["server"], "east-a");
    assert_eq!(server["ha"], ha_of("east-a"));
    assert_eq!(server["release"], "1.0.0");
    assert!(!server["health"].as_str().unwrap().is_empty(), "its health: {server}");
    shoot(&c, "server", &mut a11y).await;

    // Upgrade: the page acts with the login session (no token box).
    c.goto(&format!("{manager}/upgrade")).await.unwrap();
    wait_for(
        &c,
        Duration::from_secs(30),
        "the grid",
        r##"return !document.getElementById("app").hidden && document.querySelectorAll("#grid tr.server").length === 11
             && document.getElementById("login").hidden ? true : null;"##,
    )
    .await;
    c.find(Locator::Id("bundle")).await.unwrap().select_by_value("2.0.0").await.unwrap();
    c.find(Locator::Id("select-bundle")).await.unwrap().click().await.unwrap();
    wait_for(
        &c,
        Duration::from_secs(30),
        "the selected bundle",
        r##"return document.getElementById("message").textContent.includes("Current bundle: tollgate-2.0.0") ? true : null;"##,
    )
    .await;
    // The manager cluster moves first (the Director's system order): its standby, mgr-b.
    let row = "#grid tr.cluster[data-cluster='mgr']";
    let next = wait_for(
        &c,
        Duration::from_secs(60),
        "the Upgrade button of the manager cluster",
        &format!(
            r##"const r = document.querySelector("{row}"); if (r && !r.classList.contains("selected")) r.click();
               const b = document.getElementById("upgrade-button");
               return r && r.classList.contains("selected") && b.dataset.state === "ready" && !b.disabled ? b.dataset.next : null;"##
        ),
    )
    .await;
    let action = next.as_str().unwrap().trim_end_matches(" (next)").to_string();
    assert_eq!(action, "Initiate upgrade mgr-b");
    c.find(Locator::Id("upgrade-button")).await.unwrap().click().await.unwrap();
    // The action's group in the log ends with Success and a real duration.
    let group = wait_for(
        &c,
        Duration::from_secs(180),
        "the action to finish",
        r##"const err = document.querySelector("#message.error"); if (err) return { error: err.textContent };
           const g = [...document.querySelectorAll("#log tbody[data-group]")].find(b =>
             b.querySelector("tr.action-row td.description").textContent.includes("User initiated action: Initiate upgrade"));
           if (!g) return null;
           const head = g.querySelector("tr.action-row");
           return head.cells[8].textContent === "Success" ? { steps: Number(g.dataset.steps),
             duration: head.cells[5].textContent, step_durations: [...g.querySelectorAll("tr.step-row td.duration")].map(t => t.textContent) } : null;"##,
    )
    .await;
    assert!(group.get("error").is_none(), "the action was refused: {group}");
    assert!(group["steps"].as_u64().unwrap() >= 2, "the action's steps are grouped under it: {group}");
    let duration = group["duration"].as_str().unwrap();
    assert!(duration.ends_with(" s") && duration != "0.00 s", "a real duration: {group}");
    shoot(&c, "upgrade", &mut a11y).await;

    // Alarms: the mixed version the step left is listed; acknowledge the first one.
    c.goto(&format!("{manager}/alarms")).await.unwrap();
    let key = wait_for(
        &c,
        Duration::from_secs(60),
        "an alarm to acknowledge",
        r##"const r = document.querySelector("#active tr[data-acked=false] button.ack");
           if (!r) { setTimeout(() => location.reload(), 1000); return null; }
           return r.closest("tr").dataset.key;"##,
    )
    .await;
    let key = key.as_str().unwrap().to_string();
    c.find(Locator::Css(&format!("#active tr[data-key='{key}'] button.ack"))).await.unwrap().click().await.unwrap();
    let acked = wait_for(
        &c,
        Duration::from_secs(20),
        "the acknowledgement",
        &format!(
            r##"const r = document.querySelector("#active tr[data-key='{key}']");
               return r && r.dataset.acked === "true" ? r.querySelector("td.ack").textContent : null;"##
        ),
    )
    .await;
    assert!(acked.as_str().unwrap().starts_with("olga at "), "{acked}");
    shoot(&c, "alarms", &mut a11y).await;

    // A request made with the shared token on behalf of a person (X-Actor): refused (east-b
    // does not run 2.0.0 yet) and audited with the person's name.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{manager}/api/v1/upgrade/action"))
        .bearer_auth(&token)
        .header("x-actor", "Carol Jones")
        .json(&serde_json::json!({ "cluster": "engine-east",
            "action": { "kind": "FailoverToNewVersion", "cluster": "engine-east", "server": "east-b" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409, "{}", resp.text().await.unwrap_or_default());

    // Audit: who did what, by name.
    c.goto(&format!("{manager}/audit")).await.unwrap();
    let audit = c
        .execute(
            r##"return [...document.querySelectorAll("#audit tbody tr[data-user]")].map(r => [r.dataset.user, r.dataset.operation]);"##,
            vec![],
        )
        .await
        .unwrap();
    let audit: Vec<(String, String)> = serde_json::from_value(audit).unwrap();
    let has = |user: &str, op: &str| audit.iter().any(|(u, o)| u == user && o.starts_with(op));
    assert!(has("olga", &action), "{audit:#?}");
    assert!(has("olga", "Acknowledge alarm"), "{audit:#?}");
    assert!(audit.iter().any(|(u, _)| u == "Carol Jones via config-token"), "{audit:#?}");
    shoot(&c, "audit", &mut a11y).await;

    // Unknown paths: the designed 404 page.
    c.goto(&format!("{manager}/no/such/page")).await.unwrap();
    let status = c.find(Locator::Id("error")).await.unwrap().attr("data-status").await.unwrap();
    assert_eq!(status.as_deref(), Some("404"));
    shoot(&c, "404", &mut a11y).await;

    // A viewer sees the alarms but may not acknowledge, and may not act on upgrades.
    c.goto(&format!("{manager}/topology")).await.unwrap();
    c.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    wait_for(
        &c,
        Duration::from_secs(10),
        "the login page",
        "return document.querySelector('input[name=password]') ? true : null;",
    )
    .await;
    c.goto(&format!("{manager}/alarms")).await.unwrap();
    log_in(&c, "vera").await;
    let buttons =
        c.execute(r##"return document.querySelectorAll("#active button.ack").length;"##, vec![]).await.unwrap();
    assert_eq!(buttons, 0, "no Acknowledge button for a viewer");
    c.goto(&format!("{manager}/upgrade")).await.unwrap();
    let refusal = wait_for(
        &c,
        Duration::from_secs(60),
        "the viewer's refusal",
        &format!(
            r##"const r = document.querySelector("{row}"); if (r && !r.classList.contains("selected")) r.click();
               const b = document.getElementById("upgrade-button");
               const m = document.getElementById("message");
               if (m.classList.contains("error")) return m.textContent;
               if (r && r.classList.contains("selected") && b.dataset.state === "ready" && !b.disabled && !window.clicked) {{
                 window.clicked = true; b.click(); }}
               return null;"##
        ),
    )
    .await;
    assert_eq!(refusal, "vera may not do this (needs operator)");

    // An admin's Users page lists the manager's users.
    c.goto(&format!("{manager}/topology")).await.unwrap();
    c.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    wait_for(
        &c,
        Duration::from_secs(10),
        "the login page",
        "return document.querySelector('input[name=password]') ? true : null;",
    )
    .await;
    c.goto(&format!("{manager}/users")).await.unwrap();
    log_in(&c, "ada").await;
    let users = c
        .execute(r##"return [...document.querySelectorAll("#users tr[data-user]")].map(r => r.dataset.user);"##, vec![])
        .await
        .unwrap();
    for name in ["ada", "olga", "vera"] {
        assert!(users.as_array().unwrap().iter().any(|u| u == name), "{name} listed: {users}");
    }
    shoot(&c, "users", &mut a11y).await;

    // Analytics over the lab's collector cluster, in the same design.
    c.goto(&format!("{manager}/analytics?dataset=ENUM&view=Average+CPS&grouping=Minute&range=1h")).await.unwrap();
    let sources = c.find(Locator::Id("sources")).await.unwrap().text().await.unwrap();
    assert!(sources.contains("collector") && sources.contains("answered by collector-a"), "{sources}");
    shoot(&c, "analytics", &mut a11y).await;

    // The users, made on the active manager only, log in to the standby too: it has their
    // password hashes from its mate.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = http
            .post(format!("{standby}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("name=olga&password={PASSWORD}"))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 303 && resp.headers().contains_key("set-cookie") {
            break;
        }
        assert!(Instant::now() < deadline, "olga cannot log in to the standby manager: {}", resp.status());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every page shot above passes the accessibility audit.
    common::axe::assert_none(&a11y);
}
