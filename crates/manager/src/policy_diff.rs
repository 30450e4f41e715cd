//! What one policy changes against another: rules added, removed and changed (by name), and
//! per number list the entries added and removed, with counts. Pure: text in, changes out.
//!
//! The engines keep a unified text diff of their stored versions (`/api/v1/policy/diff`); a
//! preview needs the policy's meaning instead (a rule moved in the file is no change, a list
//! file is compared entry by entry), so the policy is read as TOML here. Numbers in lists are
//! compared as written (trimmed, comments and blank lines dropped): the manager has no
//! dialing plan, and the engine refuses what does not normalise.

use std::collections::{BTreeMap, BTreeSet};

use tollgate_api::manager::{ChangeCounts, LIST_SAMPLE, ListChange, PolicyChanges};

/// A policy as far as a comparison reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyShape {
    /// Rules by name, in file order of first appearance.
    pub rules: BTreeMap<String, toml::Value>,
    /// List names the policy declares in `[lists]`.
    pub lists: BTreeSet<String>,
    /// The schema it declares (1 when it says nothing).
    pub schema: i64,
}

/// Why a policy text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ShapeError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field at fault (`schema`, `rule[2].name`), or empty for the whole text.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    // Bytes, not a str slice: an offset inside a multi-byte character must not panic.
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Reads the rules, the declared lists and the schema of a policy text.
pub fn shape(text: &str) -> Result<PolicyShape, ShapeError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ShapeError {
        line: e.span().map(|s| line_of(text, s.start)),
        field: "policy".into(),
        message: format!("not valid TOML: {}", e.message()),
    })?;
    let schema = match table.get("schema") {
        None => 1,
        Some(v) => v.as_integer().ok_or_else(|| ShapeError {
            line: None,
            field: "schema".into(),
            message: "must be an integer".into(),
        })?,
    };
    let mut rules = BTreeMap::new();
    if let Some(list) = table.get("rule") {
        let Some(list) = list.as_array() else {
            return Err(ShapeError { line: None, field: "rule".into(), message: "must be [[rule]] tables".into() });
        };
        for (i, rule) in list.iter().enumerate() {
            let name = rule.get("name").and_then(|n| n.as_str()).map_or_else(|| format!("rule[{i}]"), str::to_string);
            rules.insert(name, rule.clone());
        }
    }
    let lists = match table.get("lists") {
        None => BTreeSet::new(),
        Some(toml::Value::Table(t)) => t.keys().cloned().collect(),
        Some(_) => {
            return Err(ShapeError { line: None, field: "lists".into(), message: "must be a table".into() });
        }
    };
    Ok(PolicyShape { rules, lists, schema })
}

/// The entries of a list's text: one number a line, `#` comments and blank lines dropped.
pub fn entries(text: &str) -> BTreeSet<&str> {
    text.lines().map(|l| l.split('#').next().unwrap_or_default().trim()).filter(|l| !l.is_empty()).collect()
}

/// One side of a comparison: a policy's shape and its lists' texts (by name; a declared list
/// without a text has no entries).
pub struct Side<'a> {
    /// The policy.
    pub shape: &'a PolicyShape,
    /// Its lists' texts.
    pub lists: &'a BTreeMap<String, String>,
}

/// What `new` changes against `old` (`None`: nothing installed).
pub fn changes(old: Option<&Side<'_>>, new: &Side<'_>) -> PolicyChanges {
    let empty_shape = PolicyShape::default();
    let empty_lists = BTreeMap::new();
    let old = old.map_or((&empty_shape, &empty_lists), |s| (s.shape, s.lists));
    let mut c = PolicyChanges::default();
    for (name, rule) in &new.shape.rules {
        match old.0.rules.get(name) {
            None => c.rules_added.push(name.clone()),
            Some(o) if o != rule => c.rules_changed.push(name.clone()),
            Some(_) => {}
        }
    }
    c.rules_removed = old.0.rules.keys().filter(|n| !new.shape.rules.contains_key(*n)).cloned().collect();
    let names: BTreeSet<&String> = old.0.lists.iter().chain(new.shape.lists.iter()).collect();
    for name in names {
        let (in_old, in_new) = (old.0.lists.contains(name), new.shape.lists.contains(name));
        let text = |lists: &'_ BTreeMap<String, String>, present: bool| -> String {
            if present { lists.get(name).cloned().unwrap_or_default() } else { String::new() }
        };
        let (old_text, new_text) = (text(old.1, in_old), text(new.lists, in_new));
        let (o, n) = (entries(&old_text), entries(&new_text));
        let added: Vec<&str> = n.difference(&o).copied().collect();
        let removed: Vec<&str> = o.difference(&n).copied().collect();
        if added.is_empty() && removed.is_empty() && in_old == in_new {
            continue;
        }
        let sample = |v: &[&str]| v.iter().take(LIST_SAMPLE).map(|s| s.to_string()).collect();
        c.lists.push(ListChange {
            list: name.clone(),
            new_list: !in_old,
            dropped_list: !in_new,
            added_count: added.len(),
            removed_count: removed.len(),
            added: sample(&added),
            removed: sample(&removed),
        });
    }
    c.counts = ChangeCounts {
        rules_added: c.rules_added.len(),
        rules_removed: c.rules_removed.len(),
        rules_changed: c.rules_changed.len(),
        entries_added: c.lists.iter().map(|l| l.added_count).sum(),
        entries_removed: c.lists.iter().map(|l| l.removed_count).sum(),
    };
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"schema = 1
name = "v1"
[lists]
robocallers = "lists/robocallers.txt"
vip = "lists/vip.txt"

[[rule]]
name = "block"
source = "list:robocallers"
action = "terminate"

[[rule]]
name = "forward"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"

[[rule]]
name = "gone"
destination = "+12125550111"
action = "terminate"
"#;

    const V2: &str = r#"schema = 1
name = "v2"
[lists]
robocallers = "lists/robocallers.txt"
fraud = "lists/fraud.txt"

# "forward" moved before "block" and changed its target; "gone" removed; "new" added.
[[rule]]
name = "forward"
destination = "+12125550122"
action = "redirect"
target = "+12125550177"

[[rule]]
name = "block"
source = "list:robocallers"
action = "terminate"

[[rule]]
name = "new"
destination = "+12125550144"
action = "terminate"
"#;

    fn lists(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rules_and_list_entries_added_removed_and_changed_are_counted() {
        let (s1, s2) = (shape(V1).unwrap(), shape(V2).unwrap());
        let l1 = lists(&[("robocallers", "+13125550666\n+13125550667\n# old\n"), ("vip", "+12125550100\n")]);
        let l2 = lists(&[("robocallers", "+13125550667\n+13125550668\n+13125550669\n"), ("fraud", "+15555550100\n")]);
        let c = changes(Some(&Side { shape: &s1, lists: &l1 }), &Side { shape: &s2, lists: &l2 });
        assert_eq!(c.rules_added, ["new"]);
        assert_eq!(c.rules_removed, ["gone"]);
        assert_eq!(c.rules_changed, ["forward"], "a moved rule is no change; a changed target is");
        let by_name: BTreeMap<&str, &ListChange> = c.lists.iter().map(|l| (l.list.as_str(), l)).collect();
        let robo = by_name["robocallers"];
        assert_eq!((robo.added_count, robo.removed_count), (2, 1));
        assert_eq!(robo.added, ["+13125550668", "+13125550669"]);
        assert_eq!(robo.removed, ["+13125550666"]);
        assert!(by_name["fraud"].new_list && by_name["fraud"].added_count == 1);
        assert!(by_name["vip"].dropped_list && by_name["vip"].removed_count == 1);
        assert_eq!(
            c.counts,
            ChangeCounts { rules_added: 1, rules_removed: 1, rules_changed: 1, entries_added: 3, entries_removed: 2 }
        );
    }

    #[test]
    fn the_same_policy_changes_nothing_and_against_nothing_everything_is_added() {
        let s1 = shape(V1).unwrap();
        let l1 = lists(&[("robocallers", "+13125550666\n"), ("vip", "")]);
        let side = Side { shape: &s1, lists: &l1 };
        assert!(changes(Some(&side), &side).is_empty());
        let c = changes(None, &side);
        assert_eq!(c.counts.rules_added, 3);
        assert_eq!(c.counts.entries_added, 1);
        assert_eq!(c.lists.len(), 2, "both lists are new: {:?}", c.lists);
    }

    #[test]
    fn a_long_list_change_is_counted_whole_and_sampled() {
        let s = shape(V1).unwrap();
        let big: String = (0..500).map(|i| format!("+1312555{i:04}\n")).collect();
        let (l0, l1) = (lists(&[]), lists(&[("robocallers", &big)]));
        let c = changes(Some(&Side { shape: &s, lists: &l0 }), &Side { shape: &s, lists: &l1 });
        assert_eq!(c.lists[0].added_count, 500);
        assert_eq!(c.lists[0].added.len(), LIST_SAMPLE);
    }

    #[test]
    fn an_unreadable_policy_names_its_line() {
        let e = shape("schema = 1\n[[rule]]\nname = \n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
        let e = shape("schema = \"two\"\n").unwrap_err();
        assert_eq!(e.field, "schema");
    }
}
