//! Porting a configuration file of an earlier release to the current format, keeping the
//! operator's comments and layout, and reporting every change (renamed, moved, new default,
//! removed), as the source documents' upgrade procedures do for their configuration files: no
//! setting is lost, every change is visible.
//!
//! The file says its format with `config_version = N` at the top; a file without it is in the
//! format of the release before versions were written ([`FIRST_VERSION`]). The rules are data:
//! [`STEPS`] holds, for each version, the rules that port a file of the version before it.
//! Files are edited as text at the spans `toml_edit` gives, so everything the rules do not
//! touch stays byte for byte.
//!
//! The agent runs [`migrate()`] on the role's configuration during an upgrade and keeps the
//! report with the upgrade log; backout puts the old file back.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::problems::{Locator, line_of, steps};

/// The format a file without `config_version` is in (the release before versions were written).
pub const FIRST_VERSION: u32 = 1;

/// The format this release writes.
pub const CURRENT_VERSION: u32 = 2;

/// How a value is rewritten when its key is renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// Kept as it is.
    Same,
    /// An integer of seconds becomes a duration string (`60` -> `"1m"`).
    SecsToDuration,
    /// An integer of milliseconds becomes a duration string (`500` -> `"500ms"`).
    MillisToDuration,
    /// An integer of minutes becomes a duration string (`60` -> `"1h"`).
    MinutesToDuration,
}

/// One rule of a step. Fields are dotted paths from the top of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A key gets a new name in the same table (its value converted).
    Rename {
        /// Old path.
        from: &'static str,
        /// New path (same table).
        to: &'static str,
        /// How the value is rewritten.
        convert: Convert,
    },
    /// A key moves to another table.
    Move {
        /// Old path.
        from: &'static str,
        /// New path.
        to: &'static str,
    },
    /// The default of a key changes: a file that does not set it gets the new behaviour, which
    /// the report says.
    NewDefault {
        /// The field.
        field: &'static str,
        /// The previous default, as TOML.
        old: &'static str,
        /// The new default, as TOML.
        new: &'static str,
    },
    /// A key is no longer read: its line is kept as a comment.
    Remove {
        /// The field.
        field: &'static str,
        /// Why, for the report.
        why: &'static str,
    },
}

/// The rules that port a file of version `to - 1` to version `to`.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The version a file has after this step.
    pub to: u32,
    /// Its rules, applied in order.
    pub rules: &'static [Rule],
}

/// Every step, oldest first.
pub const STEPS: &[Step] = &[Step {
    to: 2,
    rules: &[
        // Durations are written with their unit ("1m", "500ms") instead of in a unit the key
        // names; the old keys are still read.
        Rule::Rename { from: "api.idle_timeout_secs", to: "api.idle_timeout", convert: Convert::SecsToDuration },
        Rule::Rename {
            from: "probe.hep_tcp_idle_timeout_secs",
            to: "probe.hep_tcp_idle_timeout",
            convert: Convert::SecsToDuration,
        },
        Rule::Rename { from: "probe.setup_timeout_secs", to: "probe.setup_timeout", convert: Convert::SecsToDuration },
        Rule::Rename { from: "probe.idle_timeout_secs", to: "probe.idle_timeout", convert: Convert::SecsToDuration },
        Rule::Rename {
            from: "collector.maintenance_minutes",
            to: "collector.maintenance_interval",
            convert: Convert::MinutesToDuration,
        },
        Rule::Rename { from: "manager.poll_ms", to: "manager.poll_interval", convert: Convert::MillisToDuration },
        Rule::Rename { from: "manager.takeover_ms", to: "manager.takeover_after", convert: Convert::MillisToDuration },
        Rule::Rename {
            from: "manager.replication_timeout_s",
            to: "manager.replication_timeout",
            convert: Convert::SecsToDuration,
        },
    ],
}];

/// The old name of a field renamed by some step, for messages about a file not yet ported.
pub fn old_names(field: &str) -> impl Iterator<Item = &'static str> + '_ {
    STEPS.iter().flat_map(|s| s.rules).filter_map(move |r| match r {
        Rule::Rename { from, to, .. } | Rule::Move { from, to } if *to == field => Some(*from),
        _ => None,
    })
}

/// What kind of change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `config_version` written.
    Version,
    /// A key renamed.
    Renamed,
    /// A key moved to another table.
    Moved,
    /// A default that changed and applies to this file.
    NewDefault,
    /// A key no longer read (kept as a comment).
    Removed,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Version => "version",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Moved => "moved",
            ChangeKind::NewDefault => "new default",
            ChangeKind::Removed => "removed",
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The version whose step made it.
    pub version: u32,
    /// Line in the file given to that step (1-based; 0: not in the file).
    pub line: usize,
    /// What kind.
    pub kind: ChangeKind,
    /// The field, as it was.
    pub field: String,
    /// What was done, in words.
    pub description: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}: {}", self.line, self.kind.as_str(), self.field, self.description)
    }
}

/// Every change a migration made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The version the file was in.
    pub from_version: u32,
    /// The version it is in now.
    pub to_version: u32,
    /// The changes, step by step, each step's in file order.
    pub changes: Vec<Change>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "config_version {}: already current, nothing changed", self.to_version);
        }
        let n = self.changes.len();
        writeln!(
            f,
            "config_version {} -> {}: {n} change{}",
            self.from_version,
            self.to_version,
            if n == 1 { "" } else { "s" }
        )?;
        for c in &self.changes {
            writeln!(f, "  {c}")?;
        }
        Ok(())
    }
}

/// Why a file cannot be ported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateError(pub String);

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MigrateError {}

/// The version a configuration text says it is in ([`FIRST_VERSION`] without `config_version`).
pub fn version_of(text: &str) -> Result<u32, MigrateError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| MigrateError(format!("TOML syntax: {}", e.message())))?;
    match doc.get("config_version") {
        None => Ok(FIRST_VERSION),
        Some(item) => {
            let line = item.span().map_or(0, |s| line_of(text, s.start));
            item.as_integer().and_then(|v| u32::try_from(v).ok()).filter(|v| *v >= FIRST_VERSION).ok_or_else(|| {
                MigrateError(format!("{line}: config_version: must be a whole number from {FIRST_VERSION}"))
            })
        }
    }
}

/// Ports configuration `text` to [`CURRENT_VERSION`]: the new text and the report of every
/// change. A current file comes back unchanged with an empty report. A file of a newer
/// release is refused.
pub fn migrate(text: &str) -> Result<(String, Report), MigrateError> {
    migrate_with(text, STEPS, CURRENT_VERSION)
}

/// [`migrate()`] with a given table of steps (tests exercise every kind of rule).
pub fn migrate_with(text: &str, table: &[Step], current: u32) -> Result<(String, Report), MigrateError> {
    let from = version_of(text)?;
    if from > current {
        return Err(MigrateError(format!(
            "config_version {from} is newer than this release reads ({current}): it is for a later release"
        )));
    }
    let mut text = text.to_string();
    let mut changes = Vec::new();
    for step in table.iter().filter(|s| s.to > from && s.to <= current) {
        text = apply(&text, step, &mut changes)?;
    }
    Ok((text, Report { from_version: from, to_version: current, changes }))
}

/// An edit of the text: replace `range` with `with`.
struct Edit {
    range: Range<usize>,
    with: String,
}

fn apply(text: &str, step: &Step, changes: &mut Vec<Change>) -> Result<String, MigrateError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| MigrateError(format!("TOML syntax: {}", e.message())))?;
    let locator = Locator::new(text);
    let mut edits: Vec<Edit> = Vec::new();
    let mut step_changes = Vec::new();
    let change = |line: usize, kind, field: &str, description: String| Change {
        version: step.to,
        line,
        kind,
        field: field.to_string(),
        description,
    };
    for rule in step.rules {
        match *rule {
            Rule::Rename { from, to, convert } => {
                let Some((key, value)) = entry(&doc, from) else { continue };
                let line = line_of(text, key.start);
                if locator.has(to) {
                    return Err(MigrateError(format!("{line}: {from}: the file also sets {to}; keep one of them")));
                }
                let old_value = text[value.clone()].to_string();
                let new_value =
                    converted(&old_value, convert).map_err(|m| MigrateError(format!("{line}: {from}: {m}")))?;
                edits.push(Edit { range: key, with: last_key(to).to_string() });
                edits.push(Edit { range: value, with: new_value.clone() });
                step_changes.push(change(
                    line,
                    ChangeKind::Renamed,
                    from,
                    format!("{from} = {old_value} is now {to} = {new_value}"),
                ));
            }
            Rule::Move { from, to } => {
                let Some((key, value)) = entry(&doc, from) else { continue };
                let line = line_of(text, key.start);
                if locator.has(to) {
                    return Err(MigrateError(format!("{line}: {from}: the file also sets {to}; keep one of them")));
                }
                let value_text = text[value.clone()].to_string();
                let whole = line_range(text, key.start, value.end);
                edits.push(Edit { range: whole, with: String::new() });
                let (table, key_name) = to.rsplit_once('.').unwrap_or(("", to));
                edits.push(insert_in_table(text, &doc, table, &format!("{key_name} = {value_text}\n")));
                step_changes.push(change(line, ChangeKind::Moved, from, format!("moved to {to} = {value_text}")));
            }
            Rule::NewDefault { field, old, new } => {
                if locator.has(field) {
                    continue;
                }
                step_changes.push(change(
                    0,
                    ChangeKind::NewDefault,
                    field,
                    format!("not set in this file: the default is now {new} (was {old}); set {field} = {old} to keep the old behaviour"),
                ));
            }
            Rule::Remove { field, why } => {
                let Some((key, value)) = entry(&doc, field) else { continue };
                let line = line_of(text, key.start);
                let whole = line_range(text, key.start, value.end);
                let old = text[whole.clone()].trim_end_matches('\n').to_string();
                let commented: String =
                    old.lines().map(|l| format!("# (removed in config_version {}) {l}\n", step.to)).collect();
                edits.push(Edit { range: whole, with: commented });
                step_changes.push(change(
                    line,
                    ChangeKind::Removed,
                    field,
                    format!("no longer read ({why}); kept as a comment"),
                ));
            }
        }
    }
    // The version, at the top.
    match doc.get("config_version").and_then(|i| i.span()) {
        Some(span) => {
            edits.push(Edit { range: span.clone(), with: step.to.to_string() });
            step_changes.push(change(
                line_of(text, span.start),
                ChangeKind::Version,
                "config_version",
                format!("{} -> {}", step.to - 1, step.to),
            ));
        }
        None => {
            let at = top_of(text);
            edits.push(Edit { range: at..at, with: format!("config_version = {}\n\n", step.to) });
            step_changes.push(change(
                0,
                ChangeKind::Version,
                "config_version",
                format!("config_version = {} written at the top (the file had none: version {})", step.to, step.to - 1),
            ));
        }
    }
    step_changes.sort_by_key(|c| (c.line, c.kind == ChangeKind::Version));
    changes.extend(step_changes);
    edits.sort_by_key(|e| std::cmp::Reverse((e.range.start, e.range.end)));
    let mut out = text.to_string();
    for e in edits {
        out.replace_range(e.range, &e.with);
    }
    Ok(out)
}

fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The spans of the key and the value of `path` (a key of a table; no arrays).
fn entry(doc: &toml_edit::Document<&str>, path: &str) -> Option<(Range<usize>, Range<usize>)> {
    let all = steps(path);
    let mut item = doc.as_item();
    let (last, parents) = all.split_last()?;
    for step in parents {
        let crate::problems::Step::Key(k) = step else { return None };
        item = item.as_table_like()?.get(k)?;
    }
    let crate::problems::Step::Key(last) = last else { return None };
    let (key, value) = item.as_table_like()?.get_key_value(last)?;
    Some((key.span()?, value.span()?))
}

/// From the start of the line holding `start` to after the line end following `end`.
fn line_range(text: &str, start: usize, end: usize) -> Range<usize> {
    let from = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let to = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    from..to
}

/// Where `line` goes into table `table`: after its last key, or a new table at the end.
fn insert_in_table(text: &str, doc: &toml_edit::Document<&str>, table: &str, line: &str) -> Edit {
    let mut item = Some(doc.as_item());
    for k in table.split('.').filter(|k| !k.is_empty()) {
        item = item.and_then(|i| i.as_table_like()).and_then(|t| t.get(k));
    }
    let end = item.and_then(|i| i.as_table()).and_then(|t| {
        let last_value = t.iter().filter_map(|(_, v)| if v.is_value() { v.span() } else { None }).map(|s| s.end).max();
        last_value.or_else(|| t.span().map(|s| s.end))
    });
    match end {
        Some(end) => {
            let at = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
            let with = if at == text.len() && !text.ends_with('\n') { format!("\n{line}") } else { line.to_string() };
            Edit { range: at..at, with }
        }
        None => {
            let sep = if text.is_empty() || text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            Edit { range: text.len()..text.len(), with: format!("{sep}[{table}]\n{line}") }
        }
    }
}

/// The offset of the first line that is neither a comment nor blank.
fn top_of(text: &str) -> usize {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#')) {
            return at;
        }
        at += line.len();
    }
    // Only comments: after the leading comment block.
    text.len()
}

fn converted(value: &str, convert: Convert) -> Result<String, String> {
    let unit = match convert {
        Convert::Same => return Ok(value.to_string()),
        Convert::SecsToDuration => std::time::Duration::from_secs(1),
        Convert::MillisToDuration => std::time::Duration::from_millis(1),
        Convert::MinutesToDuration => std::time::Duration::from_secs(60),
    };
    let v = value.trim();
    if v.starts_with('"') {
        return Ok(v.to_string()); // already a duration string
    }
    let n: u64 = v.replace('_', "").parse().map_err(|_| format!("{v} is not a whole number"))?;
    Ok(format!("\"{}\"", crate::duration::text(n, unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration as the previous release wrote it: every key the current step renames.
    const PREVIOUS: &str = "# my engine\n\n[node]\nname = \"east-a\" # the name\n\n[api]\nlisten = \"127.0.0.1:8080\"\n# closes idle connections\nidle_timeout_secs = 60\n\n[probe]\nhep_tcp_idle_timeout_secs = 300\nsetup_timeout_secs = 180\nidle_timeout_secs = 14_400\n\n[collector]\nmaintenance_minutes = 60\n";

    #[test]
    fn the_previous_release_is_ported_keeping_comments_and_layout() {
        let (text, report) = migrate(PREVIOUS).unwrap();
        assert_eq!(
            text,
            "# my engine\n\nconfig_version = 2\n\n[node]\nname = \"east-a\" # the name\n\n[api]\nlisten = \"127.0.0.1:8080\"\n# closes idle connections\nidle_timeout = \"1m\"\n\n[probe]\nhep_tcp_idle_timeout = \"5m\"\nsetup_timeout = \"3m\"\nidle_timeout = \"4h\"\n\n[collector]\nmaintenance_interval = \"1h\"\n"
        );
        assert_eq!((report.from_version, report.to_version), (1, 2));
        let lines: Vec<String> = report.changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "line 0: version: config_version: config_version = 2 written at the top (the file had none: version 1)",
                "line 9: renamed: api.idle_timeout_secs: api.idle_timeout_secs = 60 is now api.idle_timeout = \"1m\"",
                "line 12: renamed: probe.hep_tcp_idle_timeout_secs: probe.hep_tcp_idle_timeout_secs = 300 is now probe.hep_tcp_idle_timeout = \"5m\"",
                "line 13: renamed: probe.setup_timeout_secs: probe.setup_timeout_secs = 180 is now probe.setup_timeout = \"3m\"",
                "line 14: renamed: probe.idle_timeout_secs: probe.idle_timeout_secs = 14_400 is now probe.idle_timeout = \"4h\"",
                "line 17: renamed: collector.maintenance_minutes: collector.maintenance_minutes = 60 is now collector.maintenance_interval = \"1h\"",
            ]
        );
        // The old and the new file mean the same configuration.
        assert_eq!(crate::Config::parse("old", PREVIOUS).unwrap(), {
            let mut c = crate::Config::parse("new", &text).unwrap();
            c.config_version = FIRST_VERSION;
            c
        });
        // A current file is left alone.
        let (again, report) = migrate(&text).unwrap();
        assert_eq!(again, text);
        assert!(report.changes.is_empty());
        assert_eq!(report.to_string(), "config_version 2: already current, nothing changed\n");
    }

    #[test]
    fn every_rule_of_every_step_ports_its_key_and_the_result_is_valid() {
        for step in STEPS {
            for rule in step.rules {
                let (from, to) = match rule {
                    Rule::Rename { from, to, .. } | Rule::Move { from, to } => (*from, *to),
                    Rule::NewDefault { .. } | Rule::Remove { .. } => continue,
                };
                let (table, key) = from.rsplit_once('.').unwrap();
                let body = if table == "manager" { MANAGER } else { "" };
                let value = if key == "poll_ms" { 7 } else { 7000 };
                let text = format!("[{table}]\n{body}{key} = {value}\n");
                let (out, report) = migrate_with(&text, STEPS, step.to).unwrap();
                let new_key = to.rsplit_once('.').unwrap().1;
                assert!(out.contains(&format!("\n{new_key} = \"")), "{rule:?}: {out}");
                assert!(!out.contains(&format!("\n{key} =")), "{rule:?}: {out}");
                assert!(report.changes.iter().any(|c| c.field == from && c.kind != ChangeKind::Version), "{rule:?}");
                let old = crate::Config::parse("old", &text).unwrap_or_else(|e| panic!("{rule:?}: {e}"));
                let mut new = crate::Config::parse("new", &out).unwrap_or_else(|e| panic!("{rule:?}: {e}\n{out}"));
                new.config_version = old.config_version;
                assert_eq!(old, new, "{rule:?}");
            }
        }
    }

    /// Every combination of the keys the current step renames (2^8 files): each ports to a file
    /// that means the same configuration, the report names exactly the keys present, and a
    /// second migration changes nothing.
    #[test]
    fn every_combination_of_old_keys_ports_to_the_same_configuration() {
        let rules: Vec<(&str, &str)> = STEPS
            .iter()
            .flat_map(|s| s.rules)
            .filter_map(|r| match r {
                Rule::Rename { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        let value = |key: &str| match key {
            "manager.poll_ms" => 499,
            "manager.takeover_ms" => 3001,
            _ => 61,
        };
        for mask in 0u32..(1 << rules.len()) {
            let chosen: Vec<&str> =
                rules.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, (from, _))| *from).collect();
            let mut text = String::from("# ported\n");
            for table in ["api", "probe", "collector", "manager"] {
                text.push_str(&format!("\n[{table}]\n"));
                if table == "manager" {
                    text.push_str(MANAGER);
                }
                for from in chosen.iter().filter(|f| f.starts_with(&format!("{table}."))) {
                    let key = from.rsplit_once('.').unwrap().1;
                    text.push_str(&format!("{key} = {} # was {key}\n", value(from)));
                }
            }
            let (out, report) = migrate(&text).unwrap();
            let renamed: Vec<&str> =
                report.changes.iter().filter(|c| c.kind == ChangeKind::Renamed).map(|c| c.field.as_str()).collect();
            let mut want = chosen.clone();
            want.sort();
            let mut got = renamed.clone();
            got.sort();
            assert_eq!(got, want, "{text}");
            assert_eq!(out.lines().count(), text.lines().count() + 2, "one line and a blank added: {out}");
            let old = crate::Config::parse("old", &text).unwrap();
            let mut new = crate::Config::parse("new", &out).unwrap();
            assert_eq!(new.config_version, CURRENT_VERSION);
            new.config_version = old.config_version;
            assert_eq!(old, new, "{text}\n{out}");
            assert_eq!(
                migrate(&out).unwrap(),
                (out.clone(), Report { from_version: 2, to_version: 2, changes: vec![] })
            );
        }
    }

    /// The required keys of a `[manager]` (and a topology with this manager in it).
    const MANAGER: &str = "hostname = \"m1\"\nagent_token = \"0123456789abcdef\"\nbundles = \"b\"\ntrusted_keys = [\"k\"]\nsites = [{ name = \"s\", primary = true }]\nclusters = [{ name = \"c\", application = \"manager\", designation = \"Primary\", site = \"s\", servers = [{ hostname = \"m1\", role = \"Active\", agent = \"http://127.0.0.1:7000\" }] }]\n";

    /// A table with one rule of each kind, to test the engine on each.
    const KINDS: &[Step] = &[
        Step { to: 2, rules: &[Rule::Rename { from: "a.old", to: "a.new", convert: Convert::Same }] },
        Step {
            to: 3,
            rules: &[
                Rule::Move { from: "a.new", to: "b.moved" },
                Rule::NewDefault { field: "b.size", old: "1", new: "2" },
                Rule::Remove { field: "a.gone", why: "nothing reads it" },
            ],
        },
    ];

    #[test]
    fn each_kind_of_rule_is_applied_and_reported() {
        let text = "[a]\nold = 1 # mine\ngone = true\nkept = 2\n";
        let (out, report) = migrate_with(text, KINDS, 3).unwrap();
        assert_eq!(
            out,
            "config_version = 3\n\n[a]\n# (removed in config_version 3) gone = true\nkept = 2\n\n[b]\nmoved = 1\n"
        );
        let kinds: Vec<(u32, ChangeKind, &str)> =
            report.changes.iter().map(|c| (c.version, c.kind, c.field.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (2, ChangeKind::Version, "config_version"),
                (2, ChangeKind::Renamed, "a.old"),
                (3, ChangeKind::NewDefault, "b.size"),
                (3, ChangeKind::Version, "config_version"),
                (3, ChangeKind::Moved, "a.new"),
                (3, ChangeKind::Removed, "a.gone"),
            ]
        );
        // Only the steps above the file's version run.
        let (out, report) = migrate_with("config_version = 2\n[a]\nnew = 5\n[b]\nsize = 1\n", KINDS, 3).unwrap();
        assert_eq!(out, "config_version = 3\n[a]\n[b]\nsize = 1\nmoved = 5\n");
        assert_eq!(report.changes.len(), 2, "{report}");
        // Nothing to do but the version.
        let (out, report) = migrate_with("", KINDS, 3).unwrap();
        assert_eq!(out, "config_version = 3\n\n");
        assert_eq!(report.changes.iter().filter(|c| c.kind == ChangeKind::NewDefault).count(), 1);
    }

    #[test]
    fn newer_conflicting_and_broken_files_are_refused() {
        let e = migrate("config_version = 9\n").unwrap_err().to_string();
        assert!(e.contains("config_version 9 is newer than this release reads (2)"), "{e}");
        let e = migrate("config_version = \"two\"\n").unwrap_err().to_string();
        assert_eq!(e, "1: config_version: must be a whole number from 1");
        let e = migrate("[api]\nidle_timeout_secs = 5\nidle_timeout = \"5s\"\n").unwrap_err().to_string();
        assert_eq!(e, "2: api.idle_timeout_secs: the file also sets api.idle_timeout; keep one of them");
        assert!(migrate("[api\n").unwrap_err().to_string().starts_with("TOML syntax"));
    }

    #[test]
    fn the_embedded_default_is_current() {
        assert_eq!(version_of(crate::DEFAULT_CONFIG).unwrap(), CURRENT_VERSION);
        let (out, report) = migrate(crate::DEFAULT_CONFIG).unwrap();
        assert_eq!(out, crate::DEFAULT_CONFIG);
        assert!(report.changes.is_empty());
    }
}
