//! Cluster-wide policy on the manager, on a whole lab (`tollgate lab up`: a manager pair, two
//! engine clusters of 2+1, each server an agent and its role in its own process).
//!
//! Shown: a policy with a number list pushed to both engine clusters is recorded as a version
//! with every server's result and the person named in `X-Actor`; the preview of the next one
//! counts the rules and list entries it adds, removes and changes (against the test's own
//! count) per cluster, and shows the mixed-version refusal of a schema the engines' release
//! cannot read (refused on push too, nothing recorded); after the push and a roll-back to the
//! first version the engines answer per that version again (lookups on every engine server);
//! an uninstall without the confirmation is refused and changes nothing, with it the cluster
//! named allows every call while the other keeps its policy; the standby manager has every
//! version after its sync.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::lab::Lab;
use common::wait_until;
use serde_json::{Value, json};

const NET: u8 = 84;
const ENUM_PORT: u16 = 5394;

const V1: &str = r#"schema = 1
name = "policy-v1"

[lists]
blocked = "lists/blocked.txt"

[[rule]]
name = "block-listed"
source = "list:blocked"
action = "terminate"
cause = 603

[[rule]]
name = "forward-sales"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"

[[rule]]
name = "gone"
destination = "+12125550111"
action = "terminate"
cause = 404
"#;

const V2: &str = r#"schema = 1
name = "policy-v2"

[lists]
blocked = "lists/blocked.txt"

[[rule]]
name = "forward-sales"
destination = "+12125550122"
action = "redirect"
target = "+12125550177"

[[rule]]
name = "block-listed"
source = "list:blocked"
action = "terminate"
cause = 603

[[rule]]
name = "new-intercept"
destination = "+12125550144"
action = "terminate"
cause = 410

[[rule]]
name = "night-line"
destination = "+12125550155"
action = "terminate"
cause = 480
"#;

const V1_BLOCKED: [&str; 3] = ["+13125550601", "+13125550602", "+13125550603"];
const V2_BLOCKED: [&str; 5] = ["+13125550602", "+13125550603", "+13125550604", "+13125550605", "+13125550606"];

fn list_text(numbers: &[&str]) -> String {
    numbers.iter().map(|n| format!("{n}\n")).collect::<String>() + "# end of list\n"
}

/// The names of a policy's `[[rule]]` sections (the line after each header).
fn rule_names(text: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "[[rule]]")
        .filter_map(|w| w[1].strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_string())
        .collect()
}

struct Ops<'a> {
    lab: &'a Lab,
    http: reqwest::blocking::Client,
}

impl Ops<'_> {
    fn send(&self, method: reqwest::Method, url: &str, body: Option<Value>, actor: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method, url).bearer_auth(&self.lab.token);
        if let Some(a) = actor {
            req = req.header("x-actor", a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: Value, actor: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::POST, &format!("{}{path}", self.lab.active()), Some(body), actor)
    }

    fn versions(&self, manager: &str) -> Option<Vec<u64>> {
        let (code, body) = self.send(reqwest::Method::GET, &format!("{manager}/api/v1/policy/versions"), None, None);
        (code == 200).then(|| body.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect())
    }

    /// The rule every engine server that answers matches for `from` -> `to` (None: allowed),
    /// one answer per server.
    fn matched(&self, cluster: &str, from: Option<&str>, to: &str) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for s in self.lab.info["servers"].as_array().unwrap() {
            if s["cluster"] != cluster {
                continue;
            }
            let mut url = format!("{}/api/v1/lookup?to={}", s["api"].as_str().unwrap(), to.replace('+', "%2B"));
            if let Some(f) = from {
                url.push_str(&format!("&from={}", f.replace('+', "%2B")));
            }
            let r = self.http.get(&url).bearer_auth(&self.lab.token).send().unwrap();
            assert_eq!(r.status().as_u16(), 200, "lookup on {}", s["hostname"]);
            let v: Value = r.json().unwrap();
            let rule = v["decision"]["rule"]["name"].as_str().map(str::to_string);
            out.push((s["hostname"].as_str().unwrap().to_string(), rule));
        }
        assert!(out.len() >= 2, "{cluster}: {out:?}");
        out
    }

    /// Asserts that every server of `cluster` matches `rule` for the call.
    fn expect(&self, cluster: &str, from: Option<&str>, to: &str, rule: Option<&str>, why: &str) {
        for (host, got) in self.matched(cluster, from, to) {
            assert_eq!(got.as_deref(), rule, "{host} ({cluster}) {from:?} -> {to}: {why}");
        }
    }
}

#[test]
fn policies_are_versioned_previewed_pushed_rolled_back_and_uninstalled_cluster_wide() {
    let lab = Lab::up(NET, ENUM_PORT);
    let ops =
        Ops { lab: &lab, http: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap() };
    let clusters = ["engine-east", "engine-west"];
    let active = lab.active();
    let standby = lab.managers.iter().find(|m| **m != active).unwrap().clone();

    // v1, with its list, to both engine clusters, on behalf of alice.
    let (code, body) = ops.post(
        "/api/v1/policy/push",
        json!({ "policy": V1, "name": "v1.toml", "lists": { "blocked": list_text(&V1_BLOCKED) } }),
        Some("alice"),
    );
    assert_eq!(code, 200, "{body:#}");
    let v1 = body["version"].as_u64().unwrap();
    let pushed: Vec<&str> =
        body["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap()).collect();
    assert_eq!(pushed, clusters);
    assert!(
        body["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true && c["servers"].as_array().unwrap().len() == 3),
        "{body:#}"
    );
    let shown = lab.get(&format!("/api/v1/policy/versions/{v1}"));
    assert_eq!(shown["text"], V1);
    assert_eq!(shown["kind"], "push");
    assert!(shown["actor"].as_str().unwrap().starts_with("alice via "), "{}", shown["actor"]);
    for c in clusters {
        ops.expect(c, None, "+12125550111", Some("gone"), "v1 terminates the gone number");
        ops.expect(c, Some("+13125550601"), "+12125550100", Some("block-listed"), "v1's list blocks 0601");
    }

    // The preview of v2: counts against the test's own.
    let (r1, r2) = (rule_names(V1), rule_names(V2));
    let (l1, l2): (BTreeSet<&str>, BTreeSet<&str>) = (V1_BLOCKED.into(), V2_BLOCKED.into());
    let v2 = json!({ "policy": V2, "name": "v2.toml", "lists": { "blocked": list_text(&V2_BLOCKED) } });
    let (code, preview) = ops.post("/api/v1/policy/preview", v2.clone(), None);
    assert_eq!(code, 200, "{preview:#}");
    assert!(preview["refusal"].is_null(), "{preview:#}");
    let previewed: Vec<&str> =
        preview["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap()).collect();
    assert_eq!(previewed, clusters, "both engine clusters receive it");
    for c in preview["clusters"].as_array().unwrap() {
        assert_eq!(c["baseline"], "manager");
        assert_eq!(c["installed_version"], v1);
        let counts = &c["changes"]["counts"];
        assert_eq!(counts["rules_added"], r2.difference(&r1).count(), "{c:#}");
        assert_eq!(counts["rules_removed"], r1.difference(&r2).count(), "{c:#}");
        assert_eq!(counts["rules_changed"], 1, "forward-sales's target changed: {c:#}");
        assert_eq!(counts["entries_added"], l2.difference(&l1).count(), "{c:#}");
        assert_eq!(counts["entries_removed"], l1.difference(&l2).count(), "{c:#}");
        assert_eq!(c["changes"]["rules_removed"], json!(["gone"]));
        assert_eq!(c["changes"]["lists"][0]["removed"], json!(["+13125550601"]));
    }

    // A schema the engines' release (1.0.0) cannot read: the preview shows the refusal, the
    // push is refused and nothing is recorded.
    let schema2 = V2.replace("schema = 1", "schema = 2");
    let (code, preview) = ops.post("/api/v1/policy/preview", json!({ "policy": schema2 }), None);
    assert_eq!(code, 200, "{preview:#}");
    let refusal = preview["refusal"].as_str().expect("the mixed-version refusal in the preview");
    assert!(refusal.contains("schema 2") && refusal.contains("east-a") && refusal.contains("1.0.0"), "{refusal}");
    assert_eq!(preview["blockers"].as_array().unwrap().len(), 6, "every engine server: {preview:#}");
    let before = ops.versions(&active).unwrap();
    let (code, body) = ops.post("/api/v1/policy/push", json!({ "policy": schema2 }), None);
    assert_eq!((code, body["code"].as_str()), (409, Some("conflict")), "{body:#}");
    assert_eq!(ops.versions(&active).unwrap(), before, "a refused push is no version");

    // v2 pushed: the engines answer per v2.
    let (code, body) = ops.post("/api/v1/policy/push", v2, Some("bob"));
    assert_eq!(code, 200, "{body:#}");
    let v2n = body["version"].as_u64().unwrap();
    for c in clusters {
        ops.expect(c, None, "+12125550111", None, "v2 has no rule for the gone number");
        ops.expect(c, None, "+12125550144", Some("new-intercept"), "v2's new rule");
        ops.expect(c, Some("+13125550601"), "+12125550100", None, "v2's list no longer has 0601");
        ops.expect(c, Some("+13125550606"), "+12125550100", Some("block-listed"), "v2's list has 0606");
    }

    // Roll back to v1 in one step: a new version, and the engines answer per v1 again.
    let (code, body) = ops.post("/api/v1/policy/rollback", json!({ "version": v1 }), Some("carol"));
    assert_eq!(code, 200, "{body:#}");
    let v3 = body["version"].as_u64().unwrap();
    assert!(v3 > v2n);
    let shown = lab.get(&format!("/api/v1/policy/versions/{v3}"));
    assert_eq!(
        (shown["kind"].as_str(), shown["label"].as_str()),
        (Some("rollback"), Some(format!("rollback to v{v1}").as_str()))
    );
    assert_eq!(shown["rollback_of"], v1);
    assert_eq!(shown["text"], V1);
    for c in clusters {
        ops.expect(c, None, "+12125550111", Some("gone"), "rolled back to v1");
        ops.expect(c, None, "+12125550144", None, "v1 has no new-intercept");
        ops.expect(c, Some("+13125550601"), "+12125550100", Some("block-listed"), "v1's list again");
        ops.expect(c, Some("+13125550606"), "+12125550100", None, "v1's list has no 0606");
    }

    // Uninstall: refused without the confirmation (nothing changes), done with it on the
    // cluster named only.
    let (code, body) = ops.post("/api/v1/policy/uninstall", json!({ "clusters": ["engine-west"] }), None);
    assert_eq!((code, body["code"].as_str()), (428, Some("confirmation_required")), "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("every call is allowed"), "{body:#}");
    let (code, body) =
        ops.post("/api/v1/policy/uninstall", json!({ "clusters": ["engine-west"], "confirm": "yes" }), None);
    assert_eq!(code, 428, "{body:#}");
    ops.expect("engine-west", None, "+12125550111", Some("gone"), "a refused uninstall changes nothing");
    let (code, body) = ops.post(
        "/api/v1/policy/uninstall",
        json!({ "clusters": ["engine-west"], "confirm": "every call is allowed" }),
        Some("dave"),
    );
    assert_eq!(code, 200, "{body:#}");
    let v4 = body["version"].as_u64().unwrap();
    ops.expect("engine-west", None, "+12125550111", None, "uninstalled: every call is allowed");
    ops.expect("engine-east", None, "+12125550111", Some("gone"), "the other cluster keeps its policy");
    let (code, body) = ops.post("/api/v1/policy/rollback", json!({ "version": v4 }), None);
    assert_eq!(code, 409, "an uninstall is no version to roll back to: {body:#}");

    // The preview now compares engine-west with nothing.
    let (_, preview) = ops.post("/api/v1/policy/preview", json!({ "policy": V1, "clusters": ["engine-west"] }), None);
    assert_eq!(preview["clusters"][0]["baseline"], "nothing", "{preview:#}");
    assert_eq!(preview["clusters"][0]["changes"]["counts"]["rules_added"], 3, "{preview:#}");

    // Every version, newest first, and the standby has them after its sync.
    let all = ops.versions(&active).unwrap();
    assert_eq!(&all[..4], &[v4, v3, v2n, v1]);
    wait_until(30, "the standby manager has every policy version", || ops.versions(&standby).as_ref() == Some(&all));
    let listed = lab.cli_json(&["cluster-policy", "versions"]);
    let listed: Vec<u64> = listed.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(listed, all, "`tollgate cluster-policy versions` lists what the API does");

    // The CLI: its uninstall without the confirmation is refused; a push reads the lists the
    // policy declares, relative to its file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("v1.toml"), V1).unwrap();
    std::fs::write(dir.path().join("lists/blocked.txt"), list_text(&V1_BLOCKED)).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::tollgate_bin())
            .args(args)
            .args(["--api", &lab.active(), "--token", &lab.token])
            .output()
            .unwrap();
        (out.status.success(), common::text(&out))
    };
    let (ok, out) = cli(&["cluster-policy", "uninstall", "--cluster", "engine-east"]);
    assert!(!ok && out.1.contains("every call is allowed"), "{out:?}");
    ops.expect("engine-east", None, "+12125550111", Some("gone"), "a refused uninstall changes nothing");
    let v1_file = dir.path().join("v1.toml");
    let (ok, out) =
        cli(&["cluster-policy", "push", v1_file.to_str().unwrap(), "--cluster", "engine-west", "--actor", "erin"]);
    assert!(ok, "{out:?}");
    assert!(out.0.contains("engine-west") && out.0.contains("done"), "{out:?}");
    ops.expect("engine-west", None, "+12125550111", Some("gone"), "v1 again on engine-west, from the CLI");
    ops.expect("engine-west", Some("+13125550601"), "+12125550100", Some("block-listed"), "with its list");
    let newest = &lab.get("/api/v1/policy/versions")[0];
    assert!(newest["actor"].as_str().unwrap().starts_with("erin via "), "{newest}");

    let audit = lab.get("/api/v1/upgrade/audit");
    let ops_seen: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|a| a["operation"].as_str()).collect();
    assert!(ops_seen.iter().any(|o| o.contains(&format!("rollback to v{v1}"))), "{ops_seen:?}");
    assert!(
        audit.as_array().unwrap().iter().any(|a| a["user"].as_str().unwrap().starts_with("dave via ")),
        "{audit:#}"
    );
}
