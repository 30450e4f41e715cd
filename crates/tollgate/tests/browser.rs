//! The web UI in headless Chromium (Debian chromium + chromium-driver, driven over WebDriver
//! by fantoccini): log in, log out, log in from a hostile `next` link and stay on the server,
//! install a policy through the Policies page (forms carry CSRF tokens, the page's
//! Content-Security-Policy allows no inline style or script), send calls, and see the
//! Analytics chart change. Screenshots are saved in target/test-artifacts/.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::chromium::{Driver, browser};
use common::{Engine, EngineOptions, temp_file, wait_until};
use fantoccini::{Client, Locator};

const POLICY: &str = r#"
schema = 1
name = "browser-test"
[[internal]]
prefix = "+1212555"
[[rule]]
name = "block-browser-test"
destination = "+12125550155"
action = "terminate"
cause = 603
"#;

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (up to 15 s) until the element `id` holds `needle`, as a form submission completes;
/// returns its text.
async fn wait_for_text(c: &Client, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(el) = c.find(Locator::Id(id)).await
            && let Ok(t) = el.text().await
            && t.contains(needle)
        {
            return t;
        }
        if Instant::now() > deadline {
            panic!("#{id} never showed {needle:?}:\n{}", c.source().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn chart_total(c: &Client) -> f64 {
    let svg = c.find(Locator::Css("svg.chart")).await.expect("a chart");
    svg.attr("data-total").await.unwrap().unwrap_or_default().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_install_a_policy_and_see_the_analytics_chart_change() {
    let e = Engine::start(EngineOptions { node: "ui-test".into(), ..Default::default() });
    let password = e.admin_password.clone().expect("the admin password is printed on first start");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, std::path::Path::new("/usr/bin/chromium"), profile.path(), (1280, 1500)).await;
    let out = artifacts();

    // Pages need a login.
    c.goto(&format!("{}/analytics", e.api)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("not the password").await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "login-error", "Wrong user or password").await;
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(&password).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "show", "Show").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/analytics");

    // Log out (the form carries the session's CSRF token), then log in from a link whose
    // `next` a browser reads as another site (`/\evil.example` is `//evil.example` to
    // Chromium): the login ends on this server.
    c.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "login", "Log in").await;
    c.goto(&format!("{}/login?next=%2F%5Cevil.example", e.api)).await.unwrap();
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(&password).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "account", "admin").await;
    let here = c.current_url().await.unwrap();
    let authority = format!("{}:{}", here.host_str().unwrap_or_default(), here.port().unwrap_or(80));
    assert_eq!((authority.as_str(), here.path()), (e.api.trim_start_matches("http://"), "/"), "{here}");

    let view = format!("{}/analytics?dataset=ENUM&view=Actions+by+Rule&grouping=Minute&range=1h", e.api);
    c.goto(&view).await.unwrap();
    let before = chart_total(&c).await;
    assert!(!c.source().await.unwrap().contains("block-browser-test"));

    // Install a policy through the Policies page: first a broken one, refused inline.
    c.goto(&format!("{}/policies", e.api)).await.unwrap();
    let (_bad_dir, bad) =
        temp_file("broken.toml", "schema = 1\n[[rule]]\nname = \"x\"\nsource = \"list:missing\"\naction = \"allow\"\n");
    c.find(Locator::Id("policy-file")).await.unwrap().send_keys(bad.to_str().unwrap()).await.unwrap();
    c.find(Locator::Id("install")).await.unwrap().click().await.unwrap();
    let outcome = wait_for_text(&c, "outcome", "invalid").await;
    assert!(
        outcome.contains("unknown list \"missing\"") && outcome.contains("broken.toml 4 rule[0].source"),
        "{outcome}"
    );
    assert_eq!(
        c.find(Locator::Id("version")).await.unwrap().text().await.unwrap(),
        "1",
        "the demo policy stays in force"
    );
    let (_dir, good) = temp_file("browser-test.toml", POLICY);
    c.find(Locator::Id("policy-file")).await.unwrap().send_keys(good.to_str().unwrap()).await.unwrap();
    c.find(Locator::Id("install")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "outcome", "Installed version 2 (browser-test)").await;
    assert_eq!(c.find(Locator::Id("version")).await.unwrap().text().await.unwrap(), "2");
    std::fs::write(out.join("policies.png"), c.screenshot().await.unwrap()).unwrap();
    // The history links each install to a diff against the version before.
    c.find(Locator::LinkText("diff")).await.unwrap().click().await.unwrap();
    let diff = wait_for_text(&c, "diff", "browser-test").await;
    assert!(diff.contains("+name = \"browser-test\"") && diff.contains("-name = \"demo\""), "{diff}");
    c.goto(&format!("{}/policies", e.api)).await.unwrap();

    // Calls to the number the new rule blocks.
    for _ in 0..12 {
        let answer = e.dig(&["+short", "NAPTR", "5.5.1.0.5.5.5.2.1.2.1.e164.arpa."]);
        assert!(answer.contains("sip:603@reject.tollgate.invalid"), "{answer}");
    }
    // The harness's HTTP client is blocking: run it where blocking is allowed.
    tokio::task::block_in_place(|| {
        wait_until(30, "the calls at the collector", || {
            let v = e.get_json("/api/v1/analytics?dataset=ENUM&view=Actions%20by%20Rule&grouping=Minute&range=1h");
            v["summary"].as_array().unwrap().iter().any(|r| r["key"] == "block-browser-test" && r["count"] == 12)
        })
    });

    // The Analytics chart changed and the table names the rule.
    c.goto(&view).await.unwrap();
    let after = chart_total(&c).await;
    assert_eq!(after, before + 12.0, "the chart counts the 12 new calls");
    let table = c.find(Locator::Css("table.results")).await.unwrap().text().await.unwrap();
    assert!(table.contains("block-browser-test") && table.contains("terminate") && table.contains("12"), "{table}");
    std::fs::write(out.join("analytics.png"), c.screenshot().await.unwrap()).unwrap();

    // The selectors work from the page too: Top 10 Destination shows the blocked number.
    c.goto(&format!("{}/analytics?dataset=ENUM&view=Top+10+Destination&grouping=Hour&range=24h", e.api)).await.unwrap();
    let table = c.find(Locator::Css("table.results")).await.unwrap().text().await.unwrap();
    assert!(table.contains("+12125550155") && table.contains("inbound"), "{table}");

    c.goto(&format!("{}/", e.api)).await.unwrap();
    let dash = c.source().await.unwrap();
    assert!(dash.contains("v2") && dash.contains("browser-test"), "the dashboard shows the policy in force");
    std::fs::write(out.join("dashboard.png"), c.screenshot().await.unwrap()).unwrap();
    c.close().await.unwrap();
}
