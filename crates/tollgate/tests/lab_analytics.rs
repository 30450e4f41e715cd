//! The manager's Analytics across collector clusters, on a whole lab (`tollgate lab up`): calls
//! answered by both engines are stored by the lab's collector; the manager asks the collector
//! through its agent and shows the same counts the test made. A collector that does not answer
//! is named with its reason, and the manager still answers.

mod common;

use common::lab::Lab;
use common::{dig, wait_until};
use serde_json::Value;

const NET: u8 = 83;
const ENUM_PORT: u16 = 5393;

/// The reverse ENUM name of `number` (`+12125550199` -> `9.9.1.0...e164.arpa.`).
fn enum_name(number: &str) -> String {
    number.trim_start_matches('+').chars().rev().flat_map(|c| [c, '.']).collect::<String>() + "e164.arpa."
}

/// The count of `number` in the manager's Top 10 Destination of the last hour, and the answer.
fn destination_count(lab: &Lab, number: &str) -> (u64, Value) {
    let v = lab.get("/api/v1/analytics?dataset=ENUM&view=Top%2010%20Destination&grouping=Minute&range=1h");
    let count = v["result"]["summary"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["key"] == number)
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    (count, v)
}

#[test]
fn the_manager_shows_every_collector_clusters_calls_and_names_one_that_does_not_answer() {
    let lab = Lab::up(NET, ENUM_PORT);
    let engines: Vec<String> =
        lab.info["enum"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    let number = "+12125550199";
    // 7 queries to each engine: the collector stores 14 records for this number.
    let mut sent = 0;
    for engine in &engines {
        let (ip, port) = engine.rsplit_once(':').unwrap();
        for _ in 0..7 {
            let answer = dig(&[&format!("@{ip}"), "-p", port, "+tries=1", "+time=5", "NAPTR", &enum_name(number)]);
            assert!(answer.contains("status: NOERROR"), "{engine}: {answer}");
            sent += 1;
        }
    }
    wait_until(60, "the manager's Analytics count every call the test made", || {
        destination_count(&lab, number).0 == sent
    });
    let (_, v) = destination_count(&lab, number);
    assert_eq!(
        v["sources"],
        serde_json::json!([{"cluster": "collector", "server": "collector-a", "error": null}]),
        "{v}"
    );
    assert!(v["result"]["total"].as_u64().unwrap() >= sent, "{v}");

    // The console's Analytics page draws the same merged view (server-rendered: the table
    // ranks the number with the test's count, the sources line names the collector).
    let m = lab.active();
    let page = reqwest::blocking::Client::new()
        .get(format!("{m}/analytics?dataset=ENUM&view=Top+10+Destination&grouping=Minute&range=1h"))
        .bearer_auth(&lab.token)
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("answered by collector-a"), "{html}");
    // The Device selector lists the engines that answered, which the collector has records of.
    let device = html.split(r#"id="device""#).nth(1).unwrap_or_default();
    let device = &device[..device.find("</select>").unwrap()];
    assert!(device.contains("<option>east-a</option>") && device.contains("<option>west-a</option>"), "{device}");
    let table = html.split("<table").nth(1).unwrap_or_default();
    assert!(table.contains(number) && table.contains(&format!(">{sent}<")), "{table}");

    // Without an answer from the collector (its server frozen), the manager says which cluster
    // is missing and why, and still answers.
    lab.signal("collector-a", "STOP");
    let v = lab.get("/api/v1/analytics?dataset=ENUM&view=Average%20CPS&grouping=Minute&range=1h");
    lab.signal("collector-a", "CONT");
    assert_eq!(v["sources"][0]["cluster"], "collector", "{v}");
    assert_eq!(v["sources"][0]["server"], Value::Null, "{v}");
    assert!(v["sources"][0]["error"].as_str().is_some_and(|e| e.contains("collector-a")), "{v}");
    assert_eq!(v["result"], Value::Null, "{v}");

    // A selector the collectors would refuse is refused by the manager, naming it.
    let m = lab.active();
    let r = reqwest::blocking::Client::new()
        .get(format!("{m}/api/v1/analytics?view=Loudest"))
        .bearer_auth(&lab.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().unwrap();
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Loudest")), "{body}");
    // And no token, no Analytics.
    let r = reqwest::blocking::Client::new().get(format!("{m}/api/v1/analytics")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
