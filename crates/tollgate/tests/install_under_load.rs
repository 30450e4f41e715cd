//! Installing policies while dnsperf (a real DNS load generator) queries the engine: no query
//! is lost, every answer is a valid one, and every answered query is on record.

mod common;

use std::process::Command;

use common::{Engine, EngineOptions, temp_file, text};

fn dnsperf_field(out: &str, name: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in dnsperf output:\n{out}"))
}

#[test]
fn policy_installs_under_dnsperf_load_drop_nothing() {
    let e = Engine::start(EngineOptions { node: "load".into(), role: "engine", ..Default::default() });

    // Two policies to alternate between; one with a 200,000-number list so compiling it takes
    // real time while queries keep flowing.
    let (dir, small) = temp_file(
        "small.toml",
        "schema = 1\n[[rule]]\nname = \"t\"\ndestination = \"+12125550111\"\naction = \"terminate\"\n",
    );
    let list: String = (0..200_000u64).map(|i| format!("+1646{i:07}\n")).collect();
    std::fs::write(dir.path().join("big.txt"), list).unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(
        &big,
        "schema = 1\n[lists]\nbig = \"big.txt\"\n[[rule]]\nname = \"b\"\nsource = \"list:big\"\naction = \"terminate\"\ncause = 486\n[[rule]]\nname = \"r\"\ndestination = \"+12125550111\"\naction = \"redirect\"\ntarget = \"+12125550199\"\n",
    )
    .unwrap();

    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, "1.1.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR\n0.0.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR\n")
        .unwrap();
    let port = e.udp.port().to_string();
    let perf = std::thread::spawn({
        let queries = queries.clone();
        move || {
            Command::new("dnsperf")
                .args(["-s", "127.0.0.1", "-p", &port, "-d"])
                .arg(&queries)
                .args(["-l", "8", "-Q", "3000", "-c", "4"])
                .output()
                .expect("run dnsperf (Debian package dnsperf)")
        }
    });

    let mut installs = 0;
    for i in 0..12 {
        let file = if i % 2 == 0 { &big } else { &small };
        let out = e.cli(&["policy", "install", file.to_str().unwrap(), "--api", &e.api]);
        assert!(out.status.success(), "{:?}", text(&out));
        installs += 1;
    }
    assert!(!perf.is_finished(), "the installs must overlap the load; make the dnsperf run longer");
    let out = perf.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "dnsperf failed:\n{report}{}", String::from_utf8_lossy(&out.stderr));

    let sent = dnsperf_field(&report, "Queries sent:");
    let completed = dnsperf_field(&report, "Queries completed:");
    let lost = dnsperf_field(&report, "Queries lost:");
    assert!(sent > 10_000, "too little load to mean anything:\n{report}");
    assert_eq!(lost, 0, "queries lost during {installs} installs:\n{report}");
    assert_eq!(completed, sent, "{report}");
    let codes = report.lines().find(|l| l.contains("Response codes:")).unwrap_or_default();
    assert!(!codes.contains("SERVFAIL") && !codes.contains("FORMERR") && !codes.contains("REFUSED"), "{codes}");

    // Every answered query is on record.
    let spool = e.state.join("spool");
    let dump = e.cli(&["spool", "dump", "--dir", spool.to_str().unwrap()]);
    let lines = text(&dump).0;
    let records = lines.lines().count() as u64;
    assert_eq!(records, completed, "one record per answered query");
    let mut versions: Vec<u64> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["policy_version"].as_u64())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert!(versions.len() >= 6, "answers came from many installed versions during the load: {versions:?}");

    // The engine kept answering with the last policy installed (the small one).
    let v = e.dig(&["+short", "NAPTR", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(v.contains("sip:intercept@127.0.0.1:5090"), "{v}");
    let history = e.cli(&["policy", "history", "--api", &e.api]);
    assert_eq!(text(&history).0.lines().count(), installs);
}
