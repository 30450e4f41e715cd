//! Reading Analytics views from a running collector and computing what they should say.

use std::collections::BTreeMap;

use super::Engine;

/// The top 10 as the store orders it: count descending, then number, then direction.
pub fn top10(counts: &BTreeMap<(String, String), u64>) -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = counts.iter().map(|((n, d), c)| (n.clone(), d.clone(), *c)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)).then_with(|| a.1.cmp(&b.1)));
    v.truncate(10);
    v
}

/// The whole-range rows of a view: (key, detail, count).
pub fn rows(v: &serde_json::Value) -> Vec<(String, String, u64)> {
    v["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// One Analytics view over the last 24 hours, by hour (dataset `ENUM` or `SIP`).
pub fn view(c: &Engine, dataset: &str, view: &str, device: &str) -> serde_json::Value {
    let path = format!(
        "/api/v1/analytics?dataset={dataset}&view={}&grouping=Hour&device={device}&range=24h",
        view.replace(' ', "%20")
    );
    c.get_json(&path)
}

/// Checks `<dataset> / Average CPS / Hour / <device>`: the hourly counts add up to `sent`, and
/// each finished hour shows its count / 3600 (the current hour: count over the seconds so far).
pub fn check_average_cps(c: &Engine, dataset: &str, device: &str, sent: u64) {
    let r = view(c, dataset, "Average CPS", device);
    assert_eq!(r["total"].as_u64(), Some(sent), "{dataset} {device}: {r}");
    let now = chrono::Utc::now().timestamp();
    let mut counted = 0;
    for p in r["series"].as_array().unwrap() {
        let (count, value) = (p["count"].as_u64().unwrap(), p["value"].as_f64().unwrap());
        let start = chrono::DateTime::parse_from_rfc3339(p["bucket"].as_str().unwrap()).unwrap().timestamp();
        let seconds = (now - start).clamp(1, 3600) as f64;
        counted += count;
        if start + 3600 <= now {
            assert!((value - count as f64 / 3600.0).abs() < 1e-9, "{device}: {p}");
        } else if count > 0 {
            assert!(
                value >= count as f64 / 3600.0 && value <= count as f64 / (seconds - 5.0).max(1.0),
                "{device}: {p}"
            );
        }
    }
    assert_eq!(counted, sent, "{dataset} {device}");
}

/// Raw records of the last two hours as CSV (header first).
pub fn export(c: &Engine, dataset: &str) -> String {
    let from = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let url = format!("{}/api/v1/export?dataset={dataset}&from={}&to={}", c.api, urlencode(&from), urlencode(&to));
    let resp = reqwest::blocking::Client::new().get(url).bearer_auth(c.cli_token()).send().unwrap();
    assert!(resp.status().is_success());
    resp.text().unwrap()
}

/// How many records of each called number the collector stored (ENUM dataset, the last two
/// hours: [`export`]).
pub fn stored_destinations(c: &Engine) -> std::collections::HashMap<String, u64> {
    let csv = export(c, "ENUM");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "destination").unwrap();
    let mut counts = std::collections::HashMap::new();
    for l in lines {
        *counts.entry(l.split(',').nth(col).unwrap().to_string()).or_default() += 1;
    }
    counts
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
