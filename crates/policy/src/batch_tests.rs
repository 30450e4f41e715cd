//! Compiling a policy a batch of rules at a time gives exactly what compiling it whole gives:
//! the same compiled policy, or the same diagnostics (file, line, field, message).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use tollgate_number::DialingPlan;

use crate::compile::{CompileOptions, compile_in_batches, compile_split, compile_whole};
use crate::sections;
use crate::source::PolicySource;

const PREAMBLE: &str = "# test policy\r\nschema = 2\nname = \"batches\"\ntimezone = \"Europe/Paris\"\n\
    [[internal]]\nname = \"hq\"\nprefix = \"+1212555\"\n[lists]\nrobo = \"robo.txt\"\n";

/// Rules using every field, spread over subtables, inline tables, arrays over several lines
/// and comments.
const RULES: &str = r#"
[[rule]]
name = "robo"
source = "list:robo"
action = "terminate"
cause = 603

[[rule]] # prefix and array
name = "premium"
destination = [
  "+1900*",   # premium
  "+1976*",
]
direction = ["inbound", "transit"]
action = "terminate"
intercept = "default"

[[rule]]
name = "office-hours"
destination = "+12125550122"
action = "redirect"
target = "sip:desk@example.net"
[rule.time]
days = ["mon-fri"]
hours = "09:00-17:00"

[[rule]]
name = "burst"
source = "+13125550666"
velocity = { calls = 5, window = "60s" }
concurrent = 3
enabled = false
action = "allow"
description = '''
[[rule]]
not a header
'''

[[rule]]
name = "redirect"
destination = "+12125550111"
action = "redirect"
target = "+12125550199"
"#;

/// The `robo` list, written once for every test of this module.
fn robo_list() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("robo.txt"), "+13125550666\n+13125550667\n").unwrap();
        dir
    });
    dir.path().join("robo.txt")
}

fn source(text: &str) -> PolicySource {
    PolicySource::from_text("p.toml", text, BTreeMap::from([("robo".to_string(), robo_list())]))
}

thread_local! {
    /// Whether the last [`both`] compiled the policy batch by batch.
    static BATCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn was_batched() -> bool {
    BATCHED.with(std::cell::Cell::get)
}

/// Compiles `text` whole and in batches of one rule each; both results, as text.
fn both(text: &str) -> (String, String) {
    let plan = DialingPlan::nanp();
    let intercepts = vec!["default".to_string()];
    let opts = CompileOptions { plan: &plan, intercepts: Some(&intercepts) };
    let src = source(text);
    let whole = format!("{:?}", compile_whole(&src, opts));
    BATCHED.with(|b| b.set(false));
    if let Some(split) = sections::split(text, 1) {
        // Whether the batches are compiled or the file is parsed whole after all.
        let direct = compile_split(&src, opts, &split).map(|r| format!("{r:?}"));
        if direct.is_some() {
            assert_eq!(direct.as_deref(), Some(whole.as_str()));
        }
        BATCHED.with(|b| b.set(direct.is_some()));
    }
    let batched = format!("{:?}", compile_in_batches(&src, opts, 1));
    (whole, batched)
}

#[test]
fn a_valid_policy_compiles_the_same_in_batches() {
    let text = format!("{PREAMBLE}{RULES}");
    let split = sections::split(&text, 1).expect("the policy is split");
    assert_eq!(split.sections, 5);
    assert_eq!(split.batches.len(), 5);
    let (whole, batched) = both(&text);
    assert!(whole.starts_with("Ok("), "{whole}");
    assert!(was_batched());
    assert_eq!(whole, batched);
}

#[test]
fn diagnostics_in_later_batches_name_the_same_lines() {
    let bad = RULES
        .replace("target = \"+12125550199\"", "target = \"not a number\"")
        .replace("name = \"redirect\"", "name = \"robo\"")
        .replace("cause = 603", "cause = 999")
        .replace("window = \"60s\"", "window = \"2d\"");
    let text = format!("{PREAMBLE}{bad}");
    let (whole, batched) = both(&text);
    assert!(whole.starts_with("Err("), "{whole}");
    assert!(was_batched());
    assert_eq!(whole, batched);
    // Line numbers are the file's, not the batch's: `target` of the last rule.
    let line = text.lines().position(|l| l.contains("not a number")).unwrap() + 1;
    assert!(batched.contains(&format!("line: Some({line}), field: \"rule[4].target\"")), "{batched}");
}

#[test]
fn toml_errors_in_any_batch_are_those_of_the_whole_file() {
    for bad in [
        RULES.replace("cause = 603", "cause = \"603\""),
        RULES.replace("concurrent = 3", "concurrent = 3\ncolour = \"red\""),
        RULES.replace("name = \"redirect\"", "name = \"redirect"),
        RULES.replace("name = \"redirect\"", "name = \"redirect\"\nname = \"twice\""),
        format!("{RULES}[rule]\nname = \"x\"\n"),
        RULES.replace("[[rule]] # prefix", "[[rule]] # prefix\n[lists]\nmore = \"x.txt\"\n"),
    ] {
        let text = format!("{PREAMBLE}{bad}");
        let (whole, batched) = both(&text);
        assert!(whole.starts_with("Err("), "{whole}");
        assert!(!was_batched(), "{text}");
        assert_eq!(whole, batched);
    }
}

#[test]
fn a_preamble_with_inline_rules_is_compiled_whole() {
    let text = format!("rule = [{{ name = \"x\", action = \"allow\" }}]\n{PREAMBLE}{RULES}");
    let (whole, batched) = both(&text);
    assert!(!was_batched());
    assert_eq!(whole, batched);
}

/// Lines policies are made of, valid and not: headers of every kind, keys of rules and of the
/// preamble, multi-line strings and arrays that hide headers, stray brackets.
const LINES: &[&str] = &[
    "schema = 2",
    "[lists]",
    "robo = \"robo.txt\"",
    "[[rule]]",
    "[[ rule ]] # comment",
    "[rule.time]",
    "[[\"rule\"]]",
    "[rule]",
    "[other]",
    "name = \"a\"",
    "name = \"b\"",
    "action = \"allow\"",
    "action = \"terminate\"",
    "cause = 603",
    "destination = \"+12125550111\"",
    "source = \"list:robo\"",
    "days = [\"mon-fri\"]",
    "target = \"+12125550199\"",
    "x = [",
    "[1],",
    "]",
    "description = '''",
    "'''",
    "s = \"\"\"",
    "\"\"\"",
    "rule = 1",
    "v = { calls = 5, window = \"60s\" }",
    "# comment",
    "",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever the file, batches give what the whole file gives.
    #[test]
    fn any_file_compiles_the_same_in_batches(
        lines in proptest::collection::vec(proptest::sample::select(LINES), 0..40),
        crlf in proptest::bool::ANY,
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let (whole, batched) = both(&text);
        proptest::prop_assert_eq!(whole, batched);
    }
}

/// Lines of a preamble.
const PREAMBLE_LINES: &[&str] =
    &["schema = 2", "name = \"p\"", "timezone = \"UTC\"", "# comment", "", "[lists]\nrobo = \"robo.txt\""];

/// Lines of a rule section, most of them valid, some not (for diagnostics and TOML errors).
const RULE_LINES: &[&str] = &[
    "name = \"a\"",
    "name = \"b\"",
    "name = \"c\"",
    "action = \"allow\"",
    "action = \"terminate\"",
    "action = \"redirect\"",
    "cause = 603",
    "cause = 999",
    "target = \"+12125550199\"",
    "destination = \"+12125550111\"",
    "destination = \"bad\"",
    "source = \"list:robo\"",
    "source = \"list:nope\"",
    "direction = [\n  \"inbound\",\n  \"transit\",\n]",
    "description = '''\n[[rule]]\n'''",
    "velocity = { calls = 5, window = \"60s\" }",
    "[rule.time]\ndays = [\"mon-fri\"]",
    "colour = \"red\"",
    "# comment",
    "",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Policies of the usual layout (most of them compiled batch by batch), valid or not:
    /// batches give what the whole file gives.
    #[test]
    fn any_policy_of_rule_sections_compiles_the_same_in_batches(
        preamble in proptest::collection::vec(proptest::sample::select(PREAMBLE_LINES), 0..5),
        rules in proptest::collection::vec(
            (proptest::sample::select(&["[[rule]]", "[[ rule ]] # next"][..]),
             proptest::collection::vec(proptest::sample::select(RULE_LINES), 0..6)),
            1..8,
        ),
    ) {
        let mut text = preamble.join("\n");
        for (header, body) in &rules {
            text.push('\n');
            text.push_str(header);
            for line in body {
                text.push('\n');
                text.push_str(line);
            }
        }
        text.push('\n');
        let (whole, batched) = both(&text);
        proptest::prop_assert_eq!(whole, batched);
    }
}
