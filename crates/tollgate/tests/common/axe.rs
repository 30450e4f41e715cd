//! An automated accessibility audit of the page a browser shows: axe-core (vendored in
//! `tests/assets/axe-core`) injected through WebDriver, run against WCAG 2.1 A and AA rules.
//! WebDriver's script evaluation is not subject to the page's Content-Security-Policy, so the
//! pages stay as strict as in production.

use fantoccini::Client;
use serde::Deserialize;

/// One rule the page breaks, with the elements that break it.
#[derive(Debug, Deserialize)]
pub struct Violation {
    /// axe's rule id (`color-contrast`, `label`, ...).
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// What the rule asks.
    pub help: String,
    /// The offending elements.
    pub nodes: Vec<Node>,
}

/// An element that breaks a rule.
#[derive(Debug, Deserialize)]
pub struct Node {
    /// CSS selectors that find it.
    pub target: Vec<serde_json::Value>,
    /// axe's explanation for this element.
    #[serde(rename = "failureSummary")]
    pub failure_summary: Option<String>,
}

impl Violation {
    /// True for the impacts an operator would notice: `serious` and `critical`.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// The axe-core source.
fn axe_source() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/assets/axe-core/axe.min.js");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Runs axe on the current page (WCAG 2.0/2.1 A and AA, best practices off) and returns every
/// violation.
pub async fn audit(c: &Client) -> Vec<Violation> {
    let script = format!(
        "{}\nconst done = arguments[arguments.length - 1];\n\
         axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\n\
           .then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify({{ error: String(e) }})));",
        axe_source()
    );
    let answer = c.execute_async(&script, vec![]).await.expect("run axe-core in the page");
    let text = answer.as_str().unwrap_or_else(|| panic!("axe answered {answer}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("axe's answer is not a list of violations ({e}): {text}"))
}

/// The serious or critical accessibility violations of the current page (`what`), one text
/// per rule naming the elements; empty when there are none.
pub async fn serious_violations(c: &Client, what: &str) -> Vec<String> {
    audit(c)
        .await
        .into_iter()
        .filter(Violation::is_serious)
        .map(|v| {
            let nodes: Vec<String> = v
                .nodes
                .iter()
                .map(|n| format!("{:?}: {}", n.target, n.failure_summary.as_deref().unwrap_or("")))
                .collect();
            format!("{what}: {} ({}): {}\n    {}", v.id, v.impact.unwrap_or_default(), v.help, nodes.join("\n    "))
        })
        .collect()
}

/// Panics, listing every page's violations, if `found` (from [`serious_violations`]) is not
/// empty.
pub fn assert_none(found: &[String]) {
    assert!(found.is_empty(), "accessibility violations (axe-core):\n  {}", found.join("\n  "));
}
