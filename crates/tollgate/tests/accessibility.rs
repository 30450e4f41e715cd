//! Every page of the web console passes an automated accessibility audit (axe-core, vendored,
//! in headless Chromium): WCAG 2.1 A and AA, no serious or critical violation (contrast,
//! form labels, names of links and buttons, keyboard access, document language and title).

mod common;

use common::axe::{assert_none, serious_violations};
use common::chromium::{Driver, browser};
use common::{Engine, EngineOptions};
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collector_page_passes_the_accessibility_audit() {
    let e = Engine::start(EngineOptions { node: "a11y-test".into(), ..Default::default() });
    let password = e.admin_password.clone().expect("the admin password is printed on first start");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, std::path::Path::new("/usr/bin/chromium"), profile.path(), (1280, 1200)).await;

    c.goto(&format!("{}/login", e.api)).await.unwrap();
    let mut found = serious_violations(&c, "/login").await;
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(&password).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("account")).await.unwrap();

    // Calls, so that the charts have bars (each focusable, with its value) to audit.
    for _ in 0..3 {
        e.dig(&["+short", "NAPTR", "5.5.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    }
    tokio::task::block_in_place(|| {
        common::wait_until(30, "the calls at the collector", || {
            let v = e.get_json("/api/v1/analytics?dataset=ENUM&view=Actions%20by%20Rule&grouping=Minute&range=1h");
            v["total"].as_u64().is_some_and(|n| n >= 3)
        })
    });

    for path in [
        "/",
        "/analytics?dataset=ENUM&view=Actions+by+Rule&grouping=Minute&range=1h",
        "/analytics",
        "/analytics?dataset=ENUM&view=Top+10+Destination&grouping=Hour&range=24h",
        "/policies",
        "/alarms",
        "/users",
        "/account",
        "/no-such-page",
    ] {
        c.goto(&format!("{}{path}", e.api)).await.unwrap();
        found.extend(serious_violations(&c, path).await);
    }
    c.close().await.unwrap();
    assert_none(&found);
}
