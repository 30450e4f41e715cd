//! The Upgrade Manager page in headless Chromium (Debian chromium + chromium-driver, driven over
//! WebDriver by fantoccini, as in tests/browser.rs), on a whole lab topology (`tollgate lab up`,
//! every server on 1.0.0): the 2.0.0 bundle is selected with the page's selector, then the `mgr`
//! cluster is upgraded by clicking the Upgrade button once per action (the page follows the
//! active manager after "Failover to new version"), then `engine-east`, until its three servers
//! run 2.0.0. The upgrade log on the page lists every action. The screenshot of the grid taken
//! while engine-east is upgraded is docs/screenshots/upgrade-manager.png.
//!
//! Fails when chromium or chromedriver is not installed (they are prerequisites, not options).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::chromium::{Driver, browser};
use common::lab::Lab;
use fantoccini::{Client, Locator};
use serde::Deserialize;

/// The lab's network (127.0.79.x) and ENUM port: other labs may use 77 and 78, and port 53.
const NET: u8 = 79;
const ENUM_PORT: u16 = 5390;

/// How long one action may take on the page.
const ACTION_LIMIT: Duration = Duration::from_secs(180);

/// What the page shows, read from its DOM in one script.
#[derive(Debug, Default, Deserialize)]
struct Page {
    host: String,
    ha: String,
    notice: String,
    message: String,
    message_error: bool,
    procedure: String,
    selected: String,
    upgrade: Button,
    rows: Vec<Row>,
    log: Vec<LogRow>,
}

#[derive(Debug, Default, Deserialize)]
struct Button {
    text: String,
    state: String,
    next: String,
    title: String,
    disabled: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Row {
    server: String,
    cluster: String,
    up_to_date: String,
    role: String,
    running: String,
    operation: String,
    op_state: String,
}

#[derive(Debug, Default, Deserialize)]
struct LogRow {
    cluster: String,
    action: String,
    hostname: String,
    result: String,
    description: String,
}

const READ_PAGE: &str = r##"
const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : ""; };
const b = document.getElementById("upgrade-button");
const sel = document.querySelector("#grid tr.cluster.selected");
const cell = (r, c) => { const e = r.querySelector("td." + c); return e ? e.textContent.trim() : ""; };
return {
  host: location.host,
  ha: text("#ha"),
  notice: document.getElementById("notice") && !document.getElementById("notice").hidden ? text("#notice") : "",
  message: text("#message"),
  message_error: !!document.querySelector("#message.error"),
  procedure: text("#procedure"),
  selected: sel ? sel.dataset.cluster : "",
  upgrade: b ? { text: b.textContent.trim(), state: b.dataset.state || "", next: b.dataset.next || "",
                 title: b.title || "", disabled: b.disabled } : { text: "", state: "", next: "", title: "", disabled: true },
  rows: [...document.querySelectorAll("#grid tbody tr.server")].map(r => ({
    server: r.dataset.server, cluster: r.dataset.cluster, up_to_date: cell(r, "up-to-date"), role: cell(r, "role"),
    running: cell(r, "running"), operation: cell(r, "operation"),
    op_state: (r.querySelector("td.operation") || { dataset: {} }).dataset.state || "",
  })),
  log: [...document.querySelectorAll("#log tbody tr")].map(r => ({
    cluster: r.dataset.cluster || "", action: r.cells[2].textContent, hostname: r.cells[7].textContent,
    result: r.cells[8].textContent, description: r.cells[10].textContent,
  })),
};
"##;

/// Reads the page; None while it is being replaced (navigation to the mate manager).
async fn read(c: &Client) -> Option<Page> {
    let v = c.execute(READ_PAGE, vec![]).await.ok()?;
    serde_json::from_value(v).ok()
}

/// What the test saw along the way.
#[derive(Default)]
struct Seen {
    /// "Upgrade Operation" texts of running actions.
    progress: BTreeSet<String>,
    /// Notices (the manager failover).
    notices: BTreeSet<String>,
    /// Hosts the page was served from.
    hosts: BTreeSet<String>,
}

/// Polls the page until `done` holds, recording what it shows; panics after `limit`.
async fn wait_page(
    c: &Client,
    seen: &mut Seen,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Page) -> bool,
) -> Page {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        if let Some(p) = read(c).await {
            for r in p.rows.iter().filter(|r| r.op_state == "running") {
                seen.progress.insert(format!("{}: {}", r.server, r.operation));
            }
            if !p.notice.is_empty() {
                seen.notices.insert(p.notice.clone());
            }
            seen.hosts.insert(p.host.clone());
            if let Some(r) = p.rows.iter().find(|r| r.op_state == "failed") {
                panic!("{} failed on the page: {}\n{p:#?}", r.server, r.operation);
            }
            if done(&p) {
                return p;
            }
            last = Some(p);
        }
        if Instant::now() > deadline {
            panic!("timed out after {} s waiting for {what}; the page showed:\n{last:#?}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the cluster's row of the grid (rebuilt every second: retried when it goes stale).
async fn select_cluster(c: &Client, seen: &mut Seen, cluster: &str) {
    let css = format!("#grid tr.cluster[data-cluster=\"{cluster}\"]");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(row) = c.find(Locator::Css(&css)).await {
            let _ = row.click().await;
        }
        if read(c).await.is_some_and(|p| p.selected == cluster) {
            break;
        }
        assert!(Instant::now() < deadline, "cannot select the cluster row {cluster}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_page(c, seen, Duration::from_secs(10), "the selection", |p| p.upgrade.text.contains("Upgrade")).await;
}

fn cluster_idle(p: &Page, cluster: &str) -> bool {
    p.rows.iter().filter(|r| r.cluster == cluster).all(|r| r.op_state != "running")
}

/// Upgrades the selected `cluster` by clicking the Upgrade button until it is done: each click
/// starts the next preferred action, which must finish on the page before the next click. With
/// `shot`, saves a screenshot there while an action runs with the cluster in mixed version
/// (mid-way), preferably while a server upgrades. Returns the actions clicked and whether the
/// screenshot was taken.
async fn upgrade_cluster(c: &Client, seen: &mut Seen, cluster: &str, shot: Option<&Path>) -> (Vec<String>, bool) {
    let mut clicked = Vec::new();
    let mut shot_quality = 0;
    loop {
        let p = wait_page(c, seen, ACTION_LIMIT, &format!("the next action on {cluster}"), |p| {
            p.selected == cluster
                && cluster_idle(p, cluster)
                && ((p.upgrade.state == "ready" && !p.upgrade.disabled) || p.upgrade.state == "done")
        })
        .await;
        if p.upgrade.state == "done" {
            assert!(p.upgrade.text.contains("(done)"), "{:?}", p.upgrade);
            break;
        }
        assert!(clicked.len() < 10, "{cluster}: still not done after {clicked:?}");
        let label = p.upgrade.next.clone();
        assert!(p.upgrade.text.ends_with(&label), "the button names its action: {:?}", p.upgrade);
        assert!(!p.upgrade.title.is_empty(), "the button describes its action");
        let action = label.trim_end_matches(" (next)").to_string();
        eprintln!("{cluster}: clicking {:?} on {}", p.upgrade.text, p.host);
        let started = Instant::now();
        c.find(Locator::Id("upgrade-button")).await.unwrap().click().await.unwrap();
        // The action runs: the button waits (its title says why) and the Upgrade Operation column
        // shows the step; then the next action is offered (or the cluster is done).
        let mut waiting_titles = BTreeSet::new();
        let mut observed = false;
        let deadline = Instant::now() + ACTION_LIMIT;
        loop {
            let p = wait_page(c, seen, ACTION_LIMIT, &format!("{action} to finish"), |_| true).await;
            assert!(!p.message_error, "{action} refused: {}", p.message);
            if p.upgrade.state == "waiting" {
                assert!(p.upgrade.disabled, "the button is disabled while {action} runs");
                waiting_titles.insert(p.upgrade.title.clone());
            }
            let running = p.rows.iter().any(|r| r.cluster == cluster && r.op_state == "running");
            if running && p.selected == cluster {
                observed = true;
                // Mid-way: mixed version with an action running; best while a server upgrades.
                let mixed = ["1.0.0", "2.0.0"]
                    .iter()
                    .all(|release| p.rows.iter().any(|r| r.cluster == cluster && r.running == *release));
                let upgrading =
                    p.rows.iter().any(|r| r.op_state == "running" && r.operation.contains("Upgrading server"));
                let quality = if !mixed {
                    0
                } else if upgrading {
                    2
                } else {
                    1
                };
                if let Some(path) = shot.filter(|_| quality > shot_quality) {
                    std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
                    shot_quality = quality;
                }
            }
            let moved_on = p.upgrade.state == "done" || (p.upgrade.state == "ready" && p.upgrade.next != label);
            if p.selected == cluster && !running && moved_on {
                break;
            }
            assert!(Instant::now() < deadline, "{action} did not finish within {} s:\n{p:#?}", ACTION_LIMIT.as_secs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{cluster}: {action} finished on the page in {:.1} s (progress seen: {observed}; waiting: {waiting_titles:?})",
            started.elapsed().as_secs_f64()
        );
        clicked.push(action);
    }
    (clicked, shot_quality > 0)
}

fn server<'a>(p: &'a Page, hostname: &str) -> &'a Row {
    p.rows.iter().find(|r| r.server == hostname).unwrap_or_else(|| panic!("no row for {hostname}: {p:#?}"))
}

/// Asserts every server of `cluster` runs 2.0.0 and is up to date.
fn assert_on_target(p: &Page, cluster: &str, servers: &[&str]) {
    let rows: Vec<&Row> = p.rows.iter().filter(|r| r.cluster == cluster).collect();
    assert_eq!(rows.iter().map(|r| r.server.as_str()).collect::<Vec<_>>(), servers, "{cluster}'s servers");
    for r in rows {
        assert_eq!((r.running.as_str(), r.up_to_date.as_str()), ("2.0.0", "Y"), "{r:?}");
    }
}

/// Asserts the page's upgrade log (of the selected cluster) has a successful `action` entry.
fn assert_logged(p: &Page, cluster: &str, action: &str, hostname: &str) {
    assert!(
        p.log
            .iter()
            .any(|e| e.cluster == cluster && e.action == action && e.hostname == hostname && e.result == "Success"),
        "the upgrade log on the page has no successful {action:?} for {hostname}:\n{:#?}",
        p.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_a_manager_and_an_engine_cluster_from_the_upgrade_manager_page() {
    // A prerequisite, asserted as the other browser test does: a machine without Chromium
    // fails this test rather than passing it unseen.
    let binary = common::chromium::require_binary();
    let started = Instant::now();
    let lab = tokio::task::block_in_place(|| Lab::up(NET, ENUM_PORT));
    let info = lab.info.clone();
    let token = info["token"].as_str().unwrap().to_string();
    let managers: Vec<String> =
        info["managers"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &binary, profile.path(), (1400, 1300)).await;
    // The test runs in a task of its own so that the browser is closed even when it panics.
    let outcome = tokio::spawn(drive(c.clone(), token, managers)).await;
    let _ = c.close().await;
    drop(driver);
    drop(lab);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    eprintln!("upgrade_ui: {:.1} s in all", started.elapsed().as_secs_f64());
}

async fn drive(c: Client, token: String, managers: Vec<String>) {
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    let (mgr_a, mgr_b) = (host(&managers[0]), host(&managers[1]));
    let mut seen = Seen::default();

    // Opened on the standby manager (mgr-b), the page sends the browser to the active one.
    c.goto(&format!("{}/upgrade?token={token}", managers[1])).await.unwrap();
    let p = wait_page(&c, &mut seen, Duration::from_secs(30), "the page on the active manager", |p| {
        p.host == mgr_a && p.ha.contains("Active")
    })
    .await;
    assert!(p.notice.contains("Followed the active manager: mgr-b is the standby"), "{p:#?}");
    assert!(!c.current_url().await.unwrap().as_str().contains("token="), "the token is kept out of the history");
    assert_eq!(p.rows.len(), 11, "every lab server has a row: {p:#?}");
    assert!(p.rows.iter().all(|r| r.running == "1.0.0"), "{p:#?}");

    // Current bundle: 2.0.0, through the selector and the Select button.
    let bundle = c.find(Locator::Id("bundle")).await.unwrap();
    bundle.select_by_value("2.0.0").await.unwrap();
    c.find(Locator::Id("select-bundle")).await.unwrap().click().await.unwrap();
    let p = wait_page(&c, &mut seen, Duration::from_secs(15), "the selected bundle", |p| {
        p.procedure.contains("tollgate-2.0.0") && p.message.contains("Current bundle: tollgate-2.0.0")
    })
    .await;
    assert!(p.rows.iter().all(|r| r.up_to_date == "N"), "nothing runs 2.0.0 yet: {p:#?}");

    // The manager cluster first: Initiate upgrade mgr-b, Failover to new version (mgr-b becomes
    // the active manager: the page on mgr-a follows it), Initiate upgrade mgr-a.
    select_cluster(&c, &mut seen, "mgr").await;
    let (clicked, _) = upgrade_cluster(&c, &mut seen, "mgr", None).await;
    assert_eq!(
        clicked,
        ["Initiate upgrade mgr-b", "Failover to new version mgr", "Initiate upgrade mgr-a"],
        "the manager cluster's actions"
    );
    let p = read(&c).await.unwrap();
    assert_eq!(p.host, mgr_b, "after the manager failover the page is served by the new active manager");
    assert!(p.ha.contains("mgr-b: Active"), "{}", p.ha);
    assert!(
        seen.notices.iter().any(|n| n.contains("mgr-a is the standby manager: going to the active one")),
        "the page said where it went: {:?}",
        seen.notices
    );
    assert!(seen.hosts.contains(&mgr_a) && seen.hosts.contains(&mgr_b), "{:?}", seen.hosts);
    assert_on_target(&p, "mgr", &["mgr-a", "mgr-b"]);
    assert_logged(&p, "mgr", "Preflight Check", "mgr-b");
    assert_logged(&p, "mgr", "Upgrading server", "mgr-b");
    assert_logged(&p, "mgr", "Failover to new version", "mgr");
    assert_logged(&p, "mgr", "Preflight Check", "mgr-a");
    assert_logged(&p, "mgr", "Upgrading server", "mgr-a");

    // Then engine-east (2+1): the standby, failover, reapply the configuration, the spare, the
    // remaining server. The screenshot is taken mid-way, while a server upgrade runs after the
    // failover.
    select_cluster(&c, &mut seen, "engine-east").await;
    let shot = common::repo_path("docs/screenshots/upgrade-manager.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let (clicked, shot_taken) = upgrade_cluster(&c, &mut seen, "engine-east", Some(&shot)).await;
    assert_eq!(
        clicked,
        [
            "Initiate upgrade east-b",
            "Failover to new version engine-east",
            "Reapply configuration engine-east",
            "Initiate upgrade east-c",
            "Initiate upgrade east-a"
        ],
        "engine-east's actions"
    );
    let p = read(&c).await.unwrap();
    assert_on_target(&p, "engine-east", &["east-a", "east-b", "east-c"]);
    assert_eq!(server(&p, "east-b").role, "Active", "{p:#?}");
    assert!(
        server(&p, "east-a").operation.starts_with("Initiate upgrade Completed Successfully at"),
        "the Upgrade Operation column tells how the last action ended: {p:#?}"
    );
    assert!(p.rows.iter().filter(|r| r.cluster == "engine-west").all(|r| r.running == "1.0.0"));
    if !shot_taken {
        std::fs::write(&shot, c.screenshot().await.unwrap()).unwrap();
    }

    // The upgrade log on the page: every action, each with Result Success.
    for (action, hostname) in [
        ("Preflight Check", "east-b"),
        ("Upgrading server", "east-b"),
        ("Wait for replication to synchronize", "east-b"),
        ("Failover to new version", "engine-east"),
        ("Reapply configuration", "engine-east"),
        ("Preflight Check", "east-c"),
        ("Upgrading server", "east-c"),
        ("Preflight Check", "east-a"),
        ("Upgrading server", "east-a"),
    ] {
        assert_logged(&p, "engine-east", action, hostname);
    }
    assert!(p.log.iter().all(|e| e.cluster == "engine-east"), "the log shows the selected cluster");
    assert!(p.log.iter().all(|e| e.result == "Success"), "{:#?}", p.log);
    for server in ["east-b", "east-c", "east-a"] {
        let initiated = format!("User initiated action: Initiate upgrade {server}");
        assert!(p.log.iter().any(|e| e.description.starts_with(&initiated)), "{initiated:?} not logged: {:#?}", p.log);
    }

    assert!(
        seen.progress.iter().any(|t| t.contains("/3)") && t.contains('%')),
        "the Upgrade Operation column showed step n/3 and percent: {:?}",
        seen.progress
    );
    eprintln!("progress seen on the page: {:#?}", seen.progress);
    eprintln!("screenshot: {} ({})", shot.display(), if shot_taken { "mid-way" } else { "when done" });
}
