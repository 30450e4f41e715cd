//! Behaviour of policy files as operators write them: decisions, errors, the store.

use std::collections::BTreeMap;
use std::fs;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use tollgate_number::{DialingPlan, E164};
use tollgate_policy::store::{HistoryEvent, PolicyStore};
use tollgate_policy::{
    Action, CallQuery, CompileOptions, CompiledPolicy, Direction, PolicyError, PolicySource, RedirectTarget,
    Termination, compile,
};

fn n(s: &str) -> E164 {
    s.parse().unwrap()
}

fn wednesday_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 17, 0, 0).unwrap() // 12:00 in New York
}

fn opts(plan: &DialingPlan) -> CompileOptions<'_> {
    CompileOptions { plan, intercepts: None }
}

fn compile_text(text: &str) -> Result<CompiledPolicy, PolicyError> {
    let plan = DialingPlan::nanp();
    compile(&PolicySource::from_text("test.toml", text, BTreeMap::new()), opts(&plan))
}

fn decide(p: &CompiledPolicy, from: Option<&str>, to: &str) -> (Option<String>, Action, Direction) {
    let q = CallQuery { source: from.map(n), destination: n(to), at: wednesday_noon() };
    let d = p.evaluate(&q);
    let (explained, _) = p.explain(&q);
    assert_eq!(d, explained, "indexed and linear evaluation disagree for {from:?} -> {to}");
    (d.rule.map(|r| r.name.to_string()), d.action, d.direction)
}

const BASIC: &str = r#"
schema = 1
name = "basic"

[[internal]]
name = "hq"
prefix = "+1212555"

[[rule]]
name = "terminate-to-intercept"
destination = "+12125550111"
action = "terminate"
intercept = "announcement"

[[rule]]
name = "redirect-sales"
destination = "212-555-0122"
action = "redirect"
target = "+12125550199"

[[rule]]
name = "reject-premium"
destination = "+1900*"
direction = "outbound"
action = "terminate"
cause = 603

[[rule]]
name = "redirect-to-uri"
source = "+13125550000"
destination = "any"
action = "redirect"
target = "sip:ivr@10.0.0.5"
"#;

#[test]
fn actions_follow_the_rules() {
    let p = compile_text(BASIC).unwrap();
    assert_eq!(p.meta().name, "basic");
    assert_eq!(p.meta().rules, 4);
    let (rule, action, _) = decide(&p, Some("+14155550000"), "+12125550111");
    assert_eq!(rule.as_deref(), Some("terminate-to-intercept"));
    assert_eq!(action, Action::Terminate(Termination::Intercept("announcement".into())));

    let (rule, action, dir) = decide(&p, Some("+14155550000"), "+12125550122");
    assert_eq!(rule.as_deref(), Some("redirect-sales"));
    assert_eq!(action, Action::Redirect(RedirectTarget::Number(n("+12125550199"))));
    assert_eq!(dir, Direction::Inbound);

    // Premium numbers are rejected only when called from inside.
    let (rule, action, dir) = decide(&p, Some("+12125551000"), "+19005550000");
    assert_eq!((rule.as_deref(), dir), (Some("reject-premium"), Direction::Outbound));
    assert_eq!(action, Action::Terminate(Termination::Reject(603)));
    let (rule, action, dir) = decide(&p, Some("+14155550000"), "+19005550000");
    assert_eq!((rule, action, dir), (None, Action::Allow, Direction::Transit));

    let (rule, action, _) = decide(&p, Some("+13125550000"), "+14155551234");
    assert_eq!(rule.as_deref(), Some("redirect-to-uri"));
    assert_eq!(action, Action::Redirect(RedirectTarget::Uri("sip:ivr@10.0.0.5".into())));

    // Default: allow, no rule.
    let (rule, action, _) = decide(&p, None, "+12125550100");
    assert_eq!((rule, action), (None, Action::Allow));
}

#[test]
fn first_matching_rule_wins() {
    let p = compile_text(
        r#"
schema = 1
[[rule]]
name = "broad"
destination = "+1212*"
action = "allow"
[[rule]]
name = "narrow"
destination = "+12125550111"
action = "terminate"
[[rule]]
name = "catch-all"
action = "terminate"
cause = 486
"#,
    )
    .unwrap();
    assert_eq!(decide(&p, None, "+12125550111").0.as_deref(), Some("broad"));
    assert_eq!(decide(&p, None, "+13125550111").0.as_deref(), Some("catch-all"));
}

#[test]
fn any_any_rule_before_indexed_rules_wins() {
    let p = compile_text(
        r#"
schema = 1
[[rule]]
name = "everything-in-window"
time = { days = ["wed"], hours = "11:00-13:00", zone = "America/New_York" }
action = "terminate"
cause = 480
[[rule]]
name = "specific"
destination = "+12125550111"
action = "allow"
"#,
    )
    .unwrap();
    assert_eq!(decide(&p, None, "+12125550111").0.as_deref(), Some("everything-in-window"));
    let late =
        CallQuery { source: None, destination: n("+12125550111"), at: wednesday_noon() + chrono::Duration::hours(2) };
    assert_eq!(p.evaluate(&late).rule.unwrap().name.as_ref(), "specific");
}

#[test]
fn disabled_rules_never_match() {
    let p = compile_text("schema = 1\n[[rule]]\nname = \"off\"\nenabled = false\naction = \"terminate\"\n").unwrap();
    assert_eq!(decide(&p, None, "+12125550111").1, Action::Allow);
    assert_eq!(p.meta().enabled_rules, 0);
}

#[test]
fn direction_ranges_and_spans() {
    let p = compile_text(
        r#"
schema = 1
[[internal]]
name = "block-a"
from = "+12125550000"
to = "+12125550499"
[[internal]]
name = "block-b"
prefix = "+1312555"
[[rule]]
name = "internal-only"
direction = "internal"
action = "redirect"
target = "+12125550001"
[[rule]]
name = "inbound-or-outbound"
direction = ["inbound", "outbound"]
action = "terminate"
cause = 403
"#,
    )
    .unwrap();
    assert_eq!(decide(&p, Some("+12125550100"), "+13125550000").0.as_deref(), Some("internal-only"));
    assert_eq!(decide(&p, Some("+12125550600"), "+13125550000").0.as_deref(), Some("inbound-or-outbound"));
    assert_eq!(decide(&p, Some("+12125550100"), "+14155550000").0.as_deref(), Some("inbound-or-outbound"));
    assert_eq!(decide(&p, Some("+14155550000"), "+16175550000").0, None);
}

#[test]
fn number_lists_load_from_files_relative_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("lists")).unwrap();
    let mut list = String::from("# known robocallers\n");
    for i in 0..50_000u64 {
        list.push_str(&format!("+1312{:07}\n", i * 3));
    }
    fs::write(dir.path().join("lists/robo.txt"), list).unwrap();
    fs::write(
        dir.path().join("policy.toml"),
        r#"
schema = 1
[lists]
robocallers = "lists/robo.txt"
[[rule]]
name = "block-robocallers"
source = "list:robocallers"
action = "terminate"
cause = 603
"#,
    )
    .unwrap();
    let plan = DialingPlan::nanp();
    let source = PolicySource::from_path(&dir.path().join("policy.toml")).unwrap();
    let p = compile(&source, opts(&plan)).unwrap();
    assert_eq!(p.meta().lists.get("robocallers"), Some(&50_000));
    assert_eq!(decide(&p, Some("+13120000300"), "+12125550100").0.as_deref(), Some("block-robocallers"));
    assert_eq!(decide(&p, Some("+13120000301"), "+12125550100").0, None);
    assert_eq!(decide(&p, None, "+12125550100").0, None);
}

fn errors_of(text: &str) -> Vec<String> {
    compile_text(text).unwrap_err().diagnostics.iter().map(|d| d.to_string()).collect()
}

#[test]
fn syntax_errors_name_the_line() {
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"x\"\naction = allow\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.toml:4: TOML syntax"), "{errs:?}");
}

#[test]
fn unknown_list_is_named_with_line_and_field() {
    let errs = errors_of("schema = 1\n\n[[rule]]\nname = \"x\"\nsource = \"list:nope\"\naction = \"allow\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.toml:5: rule[0].source: unknown list \"nope\""), "{errs:?}");
}

#[test]
fn overlapping_direction_ranges_are_rejected() {
    let errs = errors_of(
        "schema = 1\n[[internal]]\nname = \"a\"\nprefix = \"+1212\"\n[[internal]]\nname = \"b\"\nfrom = \"+12125550000\"\nto = \"+12125550999\"\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.toml:5: internal[1]: range \"b\" overlaps range \"a\""), "{errs:?}");
}

#[test]
fn bad_numbers_are_named() {
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"x\"\ndestination = \"+1212555012x\"\naction = \"allow\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.toml:4: rule[0].destination: bad number \"+1212555012x\""), "{errs:?}");
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"x\"\naction = \"redirect\"\ntarget = \"12\"\n");
    assert!(errs[0].contains("rule[0].target: bad number \"12\""), "{errs:?}");
}

#[test]
fn rule_names_that_every_record_would_carry_are_bounded() {
    let long = "n".repeat(129);
    let errs = errors_of(&format!("schema = 1\n[[rule]]\nname = \"{long}\"\naction = \"allow\"\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.toml:3: rule[0].name: a rule name has at most 128 characters"), "{errs:?}");
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"a\\u0007b\"\naction = \"allow\"\n");
    assert!(errs[0].contains("rule[0].name: "), "{errs:?}");
    assert!(
        compile_text(&format!("schema = 1\n[[rule]]\nname = \"{}\"\naction = \"allow\"\n", "n".repeat(128))).is_ok()
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors_of(
        r#"schema = 1
[[rule]]
name = "a"
action = "explode"
[[rule]]
name = "a"
action = "allow"
[[rule]]
name = "c"
action = "terminate"
cause = 200
[[rule]]
name = "d"
action = "redirect"
[[rule]]
name = "e"
direction = "sideways"
time = { days = ["someday"] }
action = "allow"
cause = 486
"#,
    );
    let joined = errs.join("\n");
    for expected in [
        "test.toml:4: rule[0].action: unknown action \"explode\"",
        "rule[1].name: duplicate rule name \"a\"",
        "test.toml:11: rule[2].cause: cause 200 is not a SIP reject status",
        "rule[3].target: redirect needs a `target`",
        "rule[4].direction: unknown direction \"sideways\"",
        "rule[4].time: unknown day \"someday\"",
        "rule[4].cause: `cause` does not apply to action \"allow\"",
    ] {
        assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
    }
}

#[test]
fn schema_and_unknown_fields() {
    let errs = errors_of("name = \"x\"\n");
    assert!(errs[0].contains("schema: missing `schema = 2`"), "{errs:?}");
    let errs = errors_of("schema = 9\n");
    assert!(errs[0].starts_with("test.toml:1: schema: schema 9 is not supported"), "{errs:?}");
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"x\"\nacton = \"allow\"\n");
    assert!(errs[0].starts_with("test.toml:4: TOML syntax: unknown field `acton`"), "{errs:?}");
}

#[test]
fn unknown_intercepts_are_rejected_when_the_engine_lists_them() {
    let plan = DialingPlan::nanp();
    let known = vec!["default".to_string()];
    let source = PolicySource::from_text(
        "t.toml",
        "schema = 1\n[[rule]]\nname = \"x\"\naction = \"terminate\"\nintercept = \"mars\"\n",
        BTreeMap::new(),
    );
    let err = compile(&source, CompileOptions { plan: &plan, intercepts: Some(&known) }).unwrap_err();
    assert!(err.to_string().contains("unknown intercept \"mars\""), "{err}");
}

#[test]
fn missing_list_file_and_bad_list_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.txt"), "+13125550000\nhello\n").unwrap();
    fs::write(
        dir.path().join("p.toml"),
        "schema = 1\n[lists]\nmissing = \"nope.txt\"\nbad = \"bad.txt\"\n[[rule]]\nname = \"x\"\nsource = [\"list:missing\", \"list:bad\"]\naction = \"allow\"\n",
    )
    .unwrap();
    let plan = DialingPlan::nanp();
    let err = compile(&PolicySource::from_path(&dir.path().join("p.toml")).unwrap(), opts(&plan)).unwrap_err();
    let joined = err.to_string();
    assert!(joined.contains(":3: lists.missing: cannot open list file"), "{joined}");
    assert!(joined.contains("bad.txt:2: lists.bad: invalid character 'h'"), "{joined}");
    assert!(!joined.contains("unknown list"), "{joined}");
}

/// Numbers the generated policies are asked about.
const NUMBERS: &[&str] =
    &["+12125550100", "+12125550111", "+13125550666", "+14155550000", "+19005550000", "+12125559999"];
/// Sources and destinations of generated rules: exact numbers of [`NUMBERS`], nested
/// prefixes of them, prefixes nothing matches, and `any`.
const PATTERNS: &[&str] =
    &["any", "+12125550100", "+12125550111", "+13125550666", "+1212*", "+1212555*", "+1*", "+1900*", "+4*"];
const DIRECTIONS: &[&str] = &["any", "inbound", "outbound", "internal", "transit"];

/// One generated rule.
#[derive(Debug, Clone)]
struct RuleSpec {
    sources: (&'static str, &'static str),
    destination: &'static str,
    direction: &'static str,
    enabled: bool,
    /// Only between 16:00 and 18:00 UTC (the queries are at noon: such a rule never matches).
    timed: bool,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    use proptest::sample::select;
    (
        select(PATTERNS),
        select(PATTERNS),
        select(PATTERNS),
        select(DIRECTIONS),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(s1, s2, destination, direction, enabled, timed)| RuleSpec {
            sources: (s1, s2),
            destination,
            direction,
            enabled,
            timed,
        })
}

/// The policy file of `rules`, in order, after an internal prefix.
fn policy_text(rules: &[RuleSpec]) -> String {
    let mut text = String::from("schema = 1\n[[internal]]\nprefix = \"+1212555\"\n");
    for (r, rule) in rules.iter().enumerate() {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{r}\"\nsource = [\"{}\", \"{}\"]\ndestination = \"{}\"\ndirection = \"{}\"\nenabled = {}\naction = \"terminate\"\ncause = {}\n",
            rule.sources.0,
            rule.sources.1,
            rule.destination,
            rule.direction,
            rule.enabled,
            480 + r,
        ));
        if rule.timed {
            text.push_str("time = { hours = \"16:00-18:00\", zone = \"UTC\" }\n");
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The indexed evaluation (hash maps, digit trie) decides every call as the linear scan of
    /// the rules does, for any policy built from overlapping exact numbers, prefixes, `any`,
    /// directions, disabled and timed rules (`decide` compares the two).
    #[test]
    fn indexed_evaluation_agrees_with_linear_scan_on_random_policies(rules in prop::collection::vec(rule_spec(), 0..12)) {
        let text = policy_text(&rules);
        let p = compile_text(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        for from in NUMBERS.iter().map(|s| Some(*s)).chain([None]) {
            for to in NUMBERS {
                decide(&p, from, to);
            }
        }
    }
}

#[test]
fn store_keeps_versions_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = PolicyStore::open(dir.path().join("policy")).unwrap();
    assert_eq!(store.current_version().unwrap(), None);
    let plan = DialingPlan::nanp();
    let lists_dir = tempfile::tempdir().unwrap();
    fs::write(lists_dir.path().join("l.txt"), "+13125550666\n").unwrap();
    fs::write(
        lists_dir.path().join("p.toml"),
        "schema = 1\nname = \"v\"\n[lists]\nl = \"l.txt\"\n[[rule]]\nname = \"x\"\nsource = \"list:l\"\naction = \"terminate\"\n",
    )
    .unwrap();
    let source = PolicySource::from_path(&lists_dir.path().join("p.toml")).unwrap();
    let compiled = compile(&source, opts(&plan)).unwrap();
    let v1 = store.install(&source, &compiled, "alice").unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.lists.get("l"), Some(&1));
    let v2 = store.install(&source, &compiled, "bob").unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(store.current_version().unwrap(), Some(2));

    // The stored copy is self-contained: the original list may disappear.
    fs::remove_file(lists_dir.path().join("l.txt")).unwrap();
    let reopened = PolicyStore::open(dir.path().join("policy")).unwrap();
    let (version, loaded) = reopened.load_current(opts(&plan)).unwrap().unwrap();
    assert_eq!(version, 2);
    assert_eq!(loaded.meta().sha256, compiled.meta().sha256);
    let q = CallQuery { source: Some(n("+13125550666")), destination: n("+12125550100"), at: Utc::now() };
    assert_eq!(loaded.evaluate(&q).rule.unwrap().name.as_ref(), "x");

    assert_eq!(reopened.uninstall("carol").unwrap(), Some(2));
    assert_eq!(reopened.current_version().unwrap(), None);
    assert!(reopened.load_current(opts(&plan)).unwrap().is_none());
    let history = reopened.history().unwrap();
    let events: Vec<_> = history.iter().map(|h| (h.event, h.version, h.previous, h.actor.as_str())).collect();
    assert_eq!(
        events,
        vec![
            (HistoryEvent::Install, Some(1), None, "alice"),
            (HistoryEvent::Install, Some(2), Some(1), "bob"),
            (HistoryEvent::Uninstall, None, Some(2), "carol"),
        ]
    );
    assert_eq!(reopened.versions().unwrap().len(), 2);
}

const VELOCITY: &str = r#"
schema = 2
[[rule]]
name = "vip"
source = "+13125550001"
action = "allow"
[[rule]]
name = "robocall-velocity"
source = "+1312*"
velocity = { calls = 3, window = "1m" }
action = "terminate"
cause = 603
"#;

#[test]
fn velocity_blocks_a_caller_above_n_calls_in_the_window() {
    use tollgate_policy::VelocityTable;
    let p = compile_text(VELOCITY).unwrap();
    assert_eq!(p.meta().schema, 2);
    let table = VelocityTable::default();
    let at = |secs: i64| wednesday_noon() + chrono::Duration::seconds(secs);
    let call = |from: &str, secs: i64| {
        let q = CallQuery { source: Some(n(from)), destination: n("+12125550100"), at: at(secs) };
        let (explained, verdicts) = p.explain_with(&q, &table);
        let d = p.evaluate_with(&q, &table);
        assert_eq!(d, explained, "explain (without counting) agrees with evaluation (counting)");
        (d.rule.map(|r| r.name.to_string()), verdicts.last().and_then(|v| v.failed.clone()))
    };
    let robo = "+13125550666";
    assert_eq!(call(robo, 0), (None, Some("velocity".into())));
    assert_eq!(call(robo, 10), (None, Some("velocity".into())));
    assert_eq!(call(robo, 20), (None, Some("velocity".into())));
    assert_eq!(call(robo, 30).0.as_deref(), Some("robocall-velocity"), "the fourth call in a minute");
    assert_eq!(call(robo, 40).0.as_deref(), Some("robocall-velocity"));
    // A minute after the burst began the oldest calls have left the window.
    assert_eq!(call(robo, 95).0, None);
    // An earlier rule that matches stops evaluation: the VIP's calls are never counted.
    for s in 0..10 {
        assert_eq!(call("+13125550001", s).0.as_deref(), Some("vip"));
    }
    // Another caller has its own count; without memory velocity never matches.
    assert_eq!(call("+13125550777", 41).0, None);
    let q = CallQuery { source: Some(n(robo)), destination: n("+12125550100"), at: at(41) };
    assert_eq!(p.evaluate(&q).rule, None);
}

#[test]
fn velocity_is_schema_2_and_checked() {
    let old = VELOCITY.replace("schema = 2", "schema = 1");
    let errs = errors_of(&old);
    assert!(errs.iter().any(|e| e.contains("rule[1].velocity") && e.contains("schema = 2")), "{errs:?}");
    for (bad, field) in [
        ("velocity = { calls = 0, window = \"1m\" }", "velocity.calls"),
        ("velocity = { calls = 3, window = \"2d\" }", "velocity.window"),
        ("velocity = { calls = 3 }", "velocity.window"),
        ("velocity = { calls = 3, window = 100000 }", "velocity.window"),
        ("velocity = { calls = 3, window = 60, burst = 2 }", "velocity.burst"),
        ("velocity = 5", "velocity"),
    ] {
        let errs = errors_of(&VELOCITY.replace("velocity = { calls = 3, window = \"1m\" }", bad));
        assert!(errs.iter().any(|e| e.contains(&format!("rule[1].{field}"))), "{bad}: {errs:?}");
    }
    let errs = errors_of("schema = 3\n");
    assert!(errs.iter().any(|e| e.contains("schemas 1 to 2")), "{errs:?}");
}

#[test]
fn a_migrated_schema_1_policy_decides_every_call_the_same() {
    let old = compile_text(BASIC).unwrap();
    let migrated = tollgate_policy::migrate::migrate("basic.toml", BASIC).unwrap();
    assert_eq!(migrated.changes.len(), 1);
    let new = compile_text(&migrated.text).unwrap();
    assert_eq!(new.meta().schema, 2);
    assert_eq!(old.rules(), new.rules());
    for from in [None, Some("+13125550666"), Some("+12125550100"), Some("+14155550000")] {
        for to in ["+12125550100", "+12125550111", "+12125550122", "+19995550000"] {
            assert_eq!(decide(&old, from, to), decide(&new, from, to), "{from:?} -> {to}");
        }
    }
}

#[test]
fn concurrent_calls_above_the_limit_are_terminated() {
    use tollgate_policy::VelocityTable;
    let p = compile_text(
        "schema = 2\n[[rule]]\nname = \"too-many-at-once\"\nsource = \"+1312*\"\nconcurrent = 2\naction = \"terminate\"\ncause = 486\n",
    )
    .unwrap();
    let table = VelocityTable::default();
    let robo = n("+13125550666");
    let q = CallQuery { source: Some(robo), destination: n("+12125550100"), at: wednesday_noon() };
    let rule = |t: &VelocityTable| p.evaluate_with(&q, t).rule.map(|r| r.name.to_string());
    table.call_started(robo);
    assert_eq!(rule(&table), None, "one in progress: this call would be the second");
    assert_eq!(p.explain_with(&q, &table).1.last().unwrap().failed.as_deref(), Some("concurrent"));
    table.call_started(robo);
    assert_eq!(rule(&table).as_deref(), Some("too-many-at-once"), "two in progress: this call would be the third");
    table.call_ended(robo);
    assert_eq!(rule(&table), None);
    let errs = errors_of("schema = 1\n[[rule]]\nname = \"x\"\nconcurrent = 2\naction = \"allow\"\n");
    assert!(errs.iter().any(|e| e.contains("rule[0].concurrent") && e.contains("schema = 2")), "{errs:?}");
    for bad in ["-1", "0"] {
        let errs = errors_of(&format!("schema = 2\n[[rule]]\nname = \"x\"\nconcurrent = {bad}\naction = \"allow\"\n"));
        assert!(errs.iter().any(|e| e.contains("rule[0].concurrent") && e.contains("out of range")), "{bad}: {errs:?}");
    }
}
