//! The collector's charts and pages in headless Chromium, as an operator reads them (issue 16
//! item 2 and the error pages of item 3): a rule name of 40 characters is drawn whole inside
//! its chart (the rendered text's bounding box lies inside the SVG), every chart text lies
//! inside its chart, hovering a bar and a time bucket shows its value in the tooltip, Top 10
//! ranks each number once with its directions as a breakdown, the Dashboard refreshes its live
//! part in place (no page reload), and an unknown path gets the designed 404 page.
//! Screenshots go to docs/screenshots/.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::chromium::{Driver, browser};
use common::{Engine, EngineOptions, temp_file, text, wait_until};
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, Locator};

/// Exactly 40 characters.
const RULE: &str = "reject-known-robocallers-and-spoofed-cli";

const POLICY: &str = r#"
schema = 1
name = "charts-test"
[[internal]]
prefix = "+1212555"
[[rule]]
name = "reject-known-robocallers-and-spoofed-cli"
destination = "+12125550155"
action = "terminate"
cause = 603
"#;

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (up to 20 s) until `script` (a function body) returns true.
async fn wait_js(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if c.execute(script, vec![]).await.ok().and_then(|v| v.as_bool()) == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: never true:\n{}", c.source().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The texts of every chart on the page that do not lie inside their SVG (rendered boxes,
/// with half a pixel of rounding).
async fn texts_outside_their_chart(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            r#"const out = [];
               for (const svg of document.querySelectorAll("svg.chart")) {
                 const s = svg.getBoundingClientRect();
                 for (const t of svg.querySelectorAll("text")) {
                   const r = t.getBoundingClientRect();
                   if (r.width === 0) continue;
                   if (r.left < s.left - 0.5 || r.right > s.right + 0.5 || r.top < s.top - 0.5 || r.bottom > s.bottom + 0.5)
                     out.push(t.textContent + " at " + JSON.stringify([r.left, r.right]) + " in " + JSON.stringify([s.left, s.right]));
                 }
               }
               return out;"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Moves the pointer onto the element matched by `css` and returns the tooltip's text.
async fn hover(c: &Client, css: &str) -> String {
    let el = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let actions = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: el,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    c.perform_actions(actions).await.unwrap();
    wait_js(
        c,
        "the tooltip shows",
        r#"const t = document.getElementById("tip"); return !!t && !t.hidden && t.textContent.length > 0;"#,
    )
    .await;
    c.find(Locator::Id("tip")).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_show_long_labels_whole_hover_values_and_pages_refresh_in_place() {
    let e = Engine::start(EngineOptions { node: "charts-ui".into(), ..Default::default() });
    let password = e.admin_password.clone().expect("the admin password is printed on first start");
    let (_d, p) = temp_file("charts-test.toml", POLICY);
    let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    for _ in 0..25 {
        let answer = e.dig(&["+short", "NAPTR", "5.5.1.0.5.5.5.2.1.2.1.e164.arpa."]);
        assert!(answer.contains("sip:603@reject.tollgate.invalid"), "{answer}");
    }
    tokio::task::block_in_place(|| {
        wait_until(30, "the queries at the collector", || {
            let v = e.get_json("/api/v1/analytics?dataset=ENUM&view=Actions%20by%20Rule&grouping=Minute&range=1h");
            v["summary"].as_array().unwrap().iter().any(|r| r["key"] == RULE && r["count"] == 25)
        })
    });

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, std::path::Path::new("/usr/bin/chromium"), profile.path(), (1280, 1400)).await;
    let shots = screenshots();

    // An unknown path: the designed page, in the frame of every page, also before login.
    c.goto(&format!("{}/no-such-page", e.api)).await.unwrap();
    let page = c.find(Locator::Id("error-page")).await.expect("the designed 404 page").text().await.unwrap();
    assert!(page.contains("404") && page.contains("Page not found") && page.contains("/no-such-page"), "{page}");
    assert_eq!(c.find(Locator::Css("header .brand")).await.unwrap().text().await.unwrap(), "tollgate");
    let styled =
        c.execute("return getComputedStyle(document.querySelector('header')).backgroundColor;", vec![]).await.unwrap();
    assert_eq!(styled, "rgb(20, 50, 79)", "the served stylesheet applies");
    std::fs::write(shots.join("not-found.png"), c.screenshot().await.unwrap()).unwrap();

    // Log in.
    c.goto(&format!("{}/login", e.api)).await.unwrap();
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(&password).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("live")).await.unwrap();

    // Decisions by rule: the 40-character name is drawn whole, inside the chart.
    c.goto(&format!("{}/analytics?dataset=ENUM&view=Actions+by+Rule&grouping=Minute&range=1h", e.api)).await.unwrap();
    let label = c
        .execute(
            r#"const t = [...document.querySelectorAll("svg.chart text.bar-label")].find(t => t.textContent.includes(arguments[0]));
               if (!t) return null;
               const svg = t.closest("svg"), b = t.getBBox(), v = svg.viewBox.baseVal;
               const r = t.getBoundingClientRect(), s = svg.getBoundingClientRect();
               return { text: t.textContent, bbox: [b.x, b.x + b.width, v.x, v.x + v.width],
                        rect: [r.left, r.right, s.left, s.right] };"#,
            vec![serde_json::json!(RULE)],
        )
        .await
        .unwrap();
    assert_eq!(label["text"], format!("{RULE} → terminate"), "the label is whole: {label}");
    let b: Vec<f64> = serde_json::from_value(label["bbox"].clone()).unwrap();
    assert!(b[0] >= b[2] && b[1] <= b[3], "the label's box {:?} lies inside the viewBox {:?}", &b[..2], &b[2..]);
    let r: Vec<f64> = serde_json::from_value(label["rect"].clone()).unwrap();
    assert!(r[0] >= r[2] && r[1] <= r[3], "the rendered label {:?} lies inside the chart {:?}", &r[..2], &r[2..]);
    assert_eq!(texts_outside_their_chart(&c).await, Vec::<String>::new());
    // Hovering the bar shows its value.
    let tip = hover(&c, &format!("svg.chart rect.bar[data-tip^='{RULE}']")).await;
    assert_eq!(tip, format!("{RULE} → terminate: 25"));
    // The keyboard reaches the same value: focusing the bar shows it too.
    c.execute(
        "document.getElementById('tip').hidden = true; document.querySelector('svg.chart rect.bar').focus();",
        vec![],
    )
    .await
    .unwrap();
    wait_js(&c, "the tooltip shows on focus", r#"return !document.getElementById("tip").hidden;"#).await;
    assert_eq!(c.find(Locator::Id("tip")).await.unwrap().text().await.unwrap(), format!("{RULE} → terminate: 25"));
    std::fs::write(shots.join("analytics-rules.png"), c.screenshot().await.unwrap()).unwrap();

    // Top 10 Destination: the number once, its direction as a breakdown.
    c.goto(&format!("{}/analytics?dataset=ENUM&view=Top+10+Destination&grouping=Minute&range=1h", e.api))
        .await
        .unwrap();
    let table = c.find(Locator::Css("table.results")).await.unwrap().text().await.unwrap();
    assert_eq!(table.matches("+12125550155").count(), 1, "{table}");
    assert!(table.contains("inbound 25"), "{table}");

    // Average CPS over the last 15 minutes (a preset): hovering a bucket with records shows
    // its time and value; the peak and busy hour are beside the average.
    c.goto(&format!("{}/analytics?dataset=ENUM&view=Average+CPS", e.api)).await.unwrap();
    c.find(Locator::Css("nav.presets a[data-range='15m']")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("svg.chart.time")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert!(url.query().unwrap_or("").contains("range=15m"), "{url}");
    for id in ["average-cps", "peak-cps", "busy-hour"] {
        let v = c.find(Locator::Id(id)).await.unwrap().text().await.unwrap();
        assert_ne!(v, "–", "#{id} has a value");
    }
    let hit = "svg.chart.time rect.hit:not([data-v='']):not([data-v='0'])";
    let want = c.find(Locator::Css(hit)).await.unwrap().attr("data-tip").await.unwrap().unwrap();
    let tip = hover(&c, hit).await;
    assert_eq!(tip, want);
    assert!(tip.contains(" UTC\n") && tip.contains(" decisions/s"), "{tip}");
    assert_eq!(texts_outside_their_chart(&c).await, Vec::<String>::new());
    std::fs::write(shots.join("analytics-cps.png"), c.screenshot().await.unwrap()).unwrap();

    // Another time zone: the same bucket's time in that zone's 24-hour clock.
    let utc_time = want.lines().next().unwrap().trim_end_matches(" UTC").to_string();
    let t = chrono::NaiveDateTime::parse_from_str(&utc_time, "%Y-%m-%d %H:%M").unwrap().and_utc();
    let tokyo = (t + chrono::Duration::hours(9)).format("%Y-%m-%d %H:%M JST").to_string();
    c.goto(&format!("{}/analytics?dataset=ENUM&view=Average+CPS&grouping=Minute&range=15m&tz=Asia%2FTokyo", e.api))
        .await
        .unwrap();
    let zone = c.find(Locator::Css("select#tz option:checked")).await.unwrap().text().await.unwrap();
    assert_eq!(zone, "Asia/Tokyo");
    let tips = c
        .execute(
            "return [...document.querySelectorAll('svg.chart.time rect.hit')].map(r => r.getAttribute('data-tip'));",
            vec![],
        )
        .await
        .unwrap();
    assert!(tips.as_array().unwrap().iter().any(|t| t.as_str().unwrap().starts_with(&tokyo)), "{tokyo} in {tips}");

    // The Dashboard refreshes its live part in place: the page is not reloaded (a mark set on
    // the page survives) and the live part is replaced.
    c.goto(&format!("{}/", e.api)).await.unwrap();
    assert!(c.find(Locator::Css("meta[http-equiv=refresh]")).await.is_err(), "no full-page reload");
    c.execute("window.pageMark = 'still here';", vec![]).await.unwrap();
    wait_js(
        &c,
        "the live part refreshed",
        r#"return !!document.getElementById("live").getAttribute("data-refreshed");"#,
    )
    .await;
    assert_eq!(c.execute("return window.pageMark || null;", vec![]).await.unwrap(), "still here");
    let live = c.find(Locator::Id("live")).await.unwrap().text().await.unwrap();
    assert!(live.contains("charts-test") && live.contains("Decisions by rule"), "{live}");
    assert!(live.contains("Engine decisions (ENUM and SIP): decisions/s, last hour"), "{live}");
    assert_eq!(texts_outside_their_chart(&c).await, Vec::<String>::new());
    std::fs::write(shots.join("dashboard.png"), c.screenshot().await.unwrap()).unwrap();
    c.close().await.unwrap();
}
