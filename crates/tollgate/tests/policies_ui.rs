//! The manager console's Policies page in headless Chromium, on a whole lab (a manager pair,
//! two engine clusters of 2+1): an operator logs in with user and password, pushes a policy
//! with a number list to both engine clusters after its preview, previews the next one (the
//! counts per cluster, read from the page, against the test's own), pushes it, rolls back to
//! the first in one step from the versions table, sees the mixed-version refusal of a schema
//! the engines cannot read (Push stays disabled), and uninstalls from one cluster only after
//! ticking the confirmation that names the consequence. Each step is checked on the engines
//! themselves (a lookup on every engine server); the page passes the accessibility audit
//! (axe-core, WCAG 2.1 A/AA). Screenshots: docs/screenshots/policies*.png.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::chromium::{Driver, browser};
use common::lab::Lab;
use common::{temp_file, text, tollgate_bin};
use fantoccini::{Client, Locator};
use serde_json::Value;

const NET: u8 = 85;
const ENUM_PORT: u16 = 5395;
const USER: &str = "olga";
const PASSWORD: &str = "policies-ui-password-1";

const V1: &str = r#"schema = 1
name = "ui-v1"

[lists]
blocked = "lists/blocked.txt"

[[rule]]
name = "block-listed"
source = "list:blocked"
action = "terminate"
cause = 603

[[rule]]
name = "gone"
destination = "+12125550111"
action = "terminate"
cause = 404
"#;

const V2: &str = r#"schema = 1
name = "ui-v2"

[lists]
blocked = "lists/blocked.txt"

[[rule]]
name = "block-listed"
source = "list:blocked"
action = "terminate"
cause = 480

[[rule]]
name = "new-intercept"
destination = "+12125550144"
action = "terminate"
cause = 410
"#;

const V1_BLOCKED: [&str; 2] = ["+13125550701", "+13125550702"];
const V2_BLOCKED: [&str; 4] = ["+13125550702", "+13125550703", "+13125550704", "+13125550705"];

fn list_text(numbers: &[&str]) -> String {
    numbers.iter().map(|n| format!("{n}\n")).collect()
}

/// Waits (up to `secs`) until the first element matching `css` holds `needle`; its text.
async fn wait_text(c: &Client, css: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
            && t.contains(needle)
        {
            return t;
        }
        if Instant::now() > deadline {
            let message = c.find(Locator::Id("message")).await.ok();
            let message = match message {
                Some(m) => m.text().await.unwrap_or_default(),
                None => String::new(),
            };
            panic!("{css} never showed {needle:?} (message: {message:?})");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

async fn disabled(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.unwrap().prop("disabled").await.unwrap().as_deref() == Some("true")
}

/// Chooses the policy file and its list, previews, and waits for the preview of both clusters.
async fn preview(c: &Client, file: &std::path::Path, list: &std::path::Path) {
    c.find(Locator::Id("policy-file")).await.unwrap().clear().await.unwrap();
    c.find(Locator::Id("policy-file")).await.unwrap().send_keys(file.to_str().unwrap()).await.unwrap();
    c.find(Locator::Id("list-files")).await.unwrap().clear().await.unwrap();
    c.find(Locator::Id("list-files")).await.unwrap().send_keys(list.to_str().unwrap()).await.unwrap();
    click(c, "#preview-button").await;
    wait_text(c, "#preview-table tbody tr[data-cluster=engine-west]", "engine-west", 30).await;
}

/// The preview's count `k` on `cluster`'s row.
async fn count(c: &Client, cluster: &str, k: &str) -> usize {
    let css = format!("#preview-table tr[data-cluster={cluster}] td[data-k={k}]");
    c.find(Locator::Css(&css)).await.unwrap().text().await.unwrap().replace(',', "").parse().unwrap()
}

/// Ticks the confirmation, pushes, and waits for both clusters' status; the version pushed.
async fn confirm_and_push(c: &Client) -> u64 {
    assert!(disabled(c, "#push-button").await, "Push waits for the confirmation");
    click(c, "#push-confirm").await;
    assert!(!disabled(c, "#push-button").await);
    click(c, "#push-button").await;
    wait_text(c, "#message", "installed on engine-east, engine-west", 60).await;
    for cluster in ["engine-east", "engine-west"] {
        let row = wait_text(c, &format!("#push-table tr[data-cluster={cluster}]"), "installed", 5).await;
        assert!(row.contains(" ✓") && !row.contains('✗'), "{row}");
    }
    let v = c.find(Locator::Id("push-version")).await.unwrap().text().await.unwrap();
    v.trim_start_matches("(version ").trim_end_matches(')').parse().unwrap()
}

/// The rule each server of `cluster` matches for `from` -> `to` (None: allowed).
fn matched(lab: &Lab, cluster: &str, from: Option<&str>, to: &str) -> Vec<(String, Option<String>)> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut out = Vec::new();
    for s in lab.info["servers"].as_array().unwrap().iter().filter(|s| s["cluster"] == cluster) {
        let mut url = format!("{}/api/v1/lookup?to={}", s["api"].as_str().unwrap(), to.replace('+', "%2B"));
        if let Some(f) = from {
            url.push_str(&format!("&from={}", f.replace('+', "%2B")));
        }
        let v: Value = http.get(&url).bearer_auth(&lab.token).send().unwrap().json().unwrap();
        out.push((
            s["hostname"].as_str().unwrap().to_string(),
            v["decision"]["rule"]["name"].as_str().map(str::to_string),
        ));
    }
    assert!(out.len() >= 2, "{cluster}: {out:?}");
    out
}

fn expect(lab: &Lab, cluster: &str, from: Option<&str>, to: &str, rule: Option<&str>, why: &str) {
    tokio::task::block_in_place(|| {
        for (host, got) in matched(lab, cluster, from, to) {
            assert_eq!(got.as_deref(), rule, "{host} ({cluster}) {from:?} -> {to}: {why}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_a_policy_to_two_engine_clusters_and_roll_it_back_from_the_policies_page() {
    let binary = common::chromium::require_binary();
    let lab = tokio::task::block_in_place(|| Lab::up(NET, ENUM_PORT));
    // An operator with a password, on both managers.
    for m in ["mgr-a", "mgr-b"] {
        let state = lab.path().join("servers").join(m).join("state");
        let out = Command::new(tollgate_bin())
            .args(["user", "set", USER, "--role", "operator", "--password", PASSWORD, "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        assert!(out.status.success(), "tollgate user set on {m}: {:?}", text(&out));
    }
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &binary, profile.path(), (1400, 1500)).await;
    let lab = std::sync::Arc::new(lab);
    let outcome = tokio::spawn(drive(c.clone(), lab.clone())).await;
    let _ = c.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drive(c: Client, lab: std::sync::Arc<Lab>) {
    let active = tokio::task::block_in_place(|| lab.active());
    c.goto(&format!("{active}/policies")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"), "the page needs a login");
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys(USER).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    click(&c, "#login").await;
    // The lab's own policy, pushed when it came up, is the first version; no confirmation bar
    // is shown before a roll-back is asked for.
    wait_text(&c, "#versions tbody", "v1", 20).await;
    assert!(!c.find(Locator::Id("rollback-confirm")).await.unwrap().is_displayed().await.unwrap());

    let (_d1, v1_file) = temp_file("ui-v1.toml", V1);
    let (_l1, v1_list) = temp_file("blocked.txt", &list_text(&V1_BLOCKED));
    let (_d2, v2_file) = temp_file("ui-v2.toml", V2);
    let (_l2, v2_list) = temp_file("blocked.txt", &list_text(&V2_BLOCKED));

    // v1 with its list, to both engine clusters.
    preview(&c, &v1_file, &v1_list).await;
    wait_text(&c, "#validation", "Valid (checked by", 5).await;
    let v1 = confirm_and_push(&c).await;
    expect(&lab, "engine-east", None, "+12125550111", Some("gone"), "v1");
    expect(&lab, "engine-west", Some("+13125550701"), "+12125550100", Some("block-listed"), "v1's list");

    // The preview of v2, counted against the test's own.
    preview(&c, &v2_file, &v2_list).await;
    let names = |t: &str| -> BTreeSet<String> {
        let lines: Vec<&str> = t.lines().collect();
        lines.windows(2).filter(|w| w[0] == "[[rule]]").map(|w| w[1].to_string()).collect()
    };
    let (r1, r2) = (names(V1), names(V2));
    let (l1, l2): (BTreeSet<&str>, BTreeSet<&str>) = (V1_BLOCKED.into(), V2_BLOCKED.into());
    for cluster in ["engine-east", "engine-west"] {
        assert_eq!(count(&c, cluster, "rules_added").await, r2.difference(&r1).count(), "{cluster}");
        assert_eq!(count(&c, cluster, "rules_removed").await, r1.difference(&r2).count(), "{cluster}");
        assert_eq!(count(&c, cluster, "rules_changed").await, 1, "{cluster}: block-listed's cause");
        assert_eq!(count(&c, cluster, "entries_added").await, l2.difference(&l1).count(), "{cluster}");
        assert_eq!(count(&c, cluster, "entries_removed").await, l1.difference(&l2).count(), "{cluster}");
    }
    let row = c.find(Locator::Css("#preview-table tr[data-cluster=engine-east]")).await.unwrap().text().await.unwrap();
    assert!(row.contains(&format!("v{v1}")) && row.contains("east-a, east-b, east-c"), "{row}");
    let details = c.find(Locator::Id("preview-details")).await.unwrap().text().await.unwrap();
    assert!(details.contains("Rules removed: gone") && details.contains("+13125550701"), "{details}");
    // The page with a preview passes the accessibility audit (WCAG 2.1 A/AA, serious or critical).
    common::axe::assert_none(&common::axe::serious_violations(&c, "the Policies page with a preview").await);
    let shot = common::repo_path("docs/screenshots/policies-preview.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, c.screenshot().await.unwrap()).unwrap();
    let v2 = confirm_and_push(&c).await;
    assert!(v2 > v1);
    expect(&lab, "engine-east", None, "+12125550144", Some("new-intercept"), "v2");
    expect(&lab, "engine-west", Some("+13125550701"), "+12125550100", None, "v2's list has no 0701");

    // Roll back to v1 from its row: one step after the confirmation bar.
    click(&c, &format!("button.rollback[data-version=\"{v1}\"]")).await;
    let ask = wait_text(&c, "#rollback-text", &format!("Install v{v1}"), 5).await;
    assert!(ask.contains("engine-east, engine-west"), "{ask}");
    assert!(c.find(Locator::Id("rollback-confirm")).await.unwrap().is_displayed().await.unwrap());
    click(&c, "#rollback-go").await;
    wait_text(&c, "#message", &format!("Rolled back to v{v1}"), 60).await;
    assert!(
        !c.find(Locator::Id("rollback-confirm")).await.unwrap().is_displayed().await.unwrap(),
        "the confirmation bar goes once it is answered"
    );
    wait_text(&c, "#versions tbody tr:first-child", &format!("rollback to v{v1}"), 10).await;
    for cluster in ["engine-east", "engine-west"] {
        expect(&lab, cluster, None, "+12125550111", Some("gone"), "rolled back to v1");
        expect(&lab, cluster, None, "+12125550144", None, "v1 has no new-intercept");
        expect(&lab, cluster, Some("+13125550701"), "+12125550100", Some("block-listed"), "v1's list again");
    }

    // A schema the engines' release (1.0.0) cannot read: the refusal is on the page, Push stays
    // disabled even when confirmed.
    let (_d3, schema2) = temp_file("ui-schema2.toml", &V2.replace("schema = 1", "schema = 2"));
    preview(&c, &schema2, &v2_list).await;
    let refusal = wait_text(&c, "#refusal", "schema 2", 5).await;
    assert!(refusal.contains("Mixed versions") && refusal.contains("1.0.0"), "{refusal}");
    click(&c, "#push-confirm").await;
    assert!(disabled(&c, "#push-button").await, "a refused policy cannot be pushed");
    std::fs::write(common::repo_path("docs/screenshots/policies-refusal.png"), c.screenshot().await.unwrap()).unwrap();

    // Uninstall on engine-west: disabled until the consequence is confirmed.
    click(&c, "input[name=uninstall][value=engine-west]").await;
    assert!(disabled(&c, "#uninstall-button").await, "no uninstall without the confirmation");
    let label = c.find(Locator::Css("#uninstall")).await.unwrap().text().await.unwrap();
    assert!(label.contains("every call is allowed"), "{label}");
    click(&c, "#uninstall-confirm").await;
    click(&c, "#uninstall-button").await;
    wait_text(&c, "#uninstall-result", "every call is allowed there", 60).await;
    expect(&lab, "engine-west", None, "+12125550111", None, "uninstalled: every call is allowed");
    expect(&lab, "engine-east", None, "+12125550111", Some("gone"), "engine-east keeps its policy");
    wait_text(&c, "#versions tbody tr:first-child", "uninstall", 10).await;
    let first = c.find(Locator::Css("#versions tbody tr:first-child")).await.unwrap().text().await.unwrap();
    assert!(first.contains(USER), "the version names who did it: {first}");
    common::axe::assert_none(&common::axe::serious_violations(&c, "the Policies page after an uninstall").await);
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    std::fs::write(common::repo_path("docs/screenshots/policies.png"), c.screenshot().await.unwrap()).unwrap();
}
