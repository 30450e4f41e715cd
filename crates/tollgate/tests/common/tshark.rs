//! tshark on a capture: its output for some arguments, and its SIP statistics.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `tshark -r PCAP ARGS...`'s standard output (the test fails if tshark does).
pub fn output(pcap: &Path, args: &[&str]) -> String {
    let out =
        Command::new("tshark").arg("-r").arg(pcap).args(args).output().expect("run tshark (Debian package tshark)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tshark {args:?}: {report} {}", String::from_utf8_lossy(&out.stderr));
    report
}

/// `tshark -z sip,stat`: messages per request method and per response code (tshark reassembles
/// SIP over TCP for it too).
pub fn sip_stat(pcap: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let report = output(pcap, &["-q", "-z", "sip,stat"]);
    let (mut requests, mut responses) = (BTreeMap::new(), BTreeMap::new());
    let mut in_requests = false;
    for line in report.lines() {
        if line.contains("List of SIP Request methods") {
            in_requests = true;
        }
        let Some((name, count)) = line.split_once(':') else { continue };
        let Some(n) = count.trim().strip_suffix(" Packets").and_then(|n| n.trim().parse::<u64>().ok()) else {
            continue;
        };
        let name = name.trim();
        if in_requests {
            requests.insert(name.to_string(), n);
        } else if let Some(code) = name.strip_prefix("SIP ").and_then(|r| r.split_whitespace().next()) {
            responses.insert(code.to_string(), n);
        }
    }
    assert!(!requests.is_empty(), "no SIP in tshark's report:\n{report}");
    (requests, responses)
}

/// A JSON object of counts (`{"INVITE": 12, ...}`) as a map, to compare with [`sip_stat`]'s.
pub fn counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object().expect("an object of counts").iter().map(|(k, n)| (k.clone(), n.as_u64().expect("a count"))).collect()
}
