//! Problems in a configuration file, each with the file, the line and the field, all of them at
//! once: the shape of the policy diagnostics ([`tollgate_policy::Diagnostic`]).
//!
//! Fields are dotted paths with indices (`manager.clusters[0].servers[1].role`); their lines are
//! found with `toml_edit`'s spans. A field the file does not set (a default that is out of
//! range with another setting) gets the line of the nearest table the file does have.

use std::fmt;

use tollgate_policy::Diagnostic;
use toml_edit::{Item, Value};

/// One problem in a configuration, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field at fault (`spool.segment_mb`, `agent.role`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A configuration that cannot be used, with every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems (file, line, field, message).
    pub diagnostics: Vec<Diagnostic>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One problem: one line, as before. Several: a count, then one per line.
        if let [d] = self.diagnostics.as_slice() {
            return write!(f, "{d}");
        }
        let n = self.diagnostics.len();
        write!(f, "configuration is invalid ({n} problems):")?;
        for d in &self.diagnostics {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// The 1-based line of `field` (a dotted path) in configuration `text`, or of the nearest table
/// of it the text has; `None` when the text has none of it (or is not TOML).
pub fn field_line(text: &str, field: &str) -> Option<usize> {
    Locator::new(text).line(field)
}

/// One step of a field path: a key or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[2].c` as steps.
pub(crate) fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Step::Key(name.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
        }
    }
    out
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Where a node of the document is: an item (table, array of tables, value) or a value inside
/// an array.
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn child(&self, step: &Step) -> Option<(Option<std::ops::Range<usize>>, Node<'a>)> {
        match (self, step) {
            (Node::Item(item), Step::Key(k)) => {
                let (key, child) = item.as_table_like()?.get_key_value(k)?;
                Some((key.span().or_else(|| child.span()), Node::Item(child)))
            }
            (Node::Value(Value::InlineTable(t)), Step::Key(k)) => {
                let (key, child) = t.get_key_value(k)?;
                Some((key.span().or_else(|| child.span()), Node::Item(child)))
            }
            (Node::Item(Item::Value(Value::Array(a))), Step::Index(i))
            | (Node::Value(Value::Array(a)), Step::Index(i)) => {
                let v = a.get(*i)?;
                Some((v.span(), Node::Value(v)))
            }
            _ => None,
        }
    }
}

/// Finds fields in a configuration text.
pub(crate) struct Locator<'t> {
    text: &'t str,
    doc: Option<toml_edit::Document<&'t str>>,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Locator<'t> {
        Locator { text, doc: toml_edit::Document::parse(text).ok() }
    }

    /// The span of the deepest part of `path` the file has, and whether the whole path was found.
    fn walk(&self, path: &str) -> (Option<std::ops::Range<usize>>, bool) {
        let Some(doc) = &self.doc else { return (None, false) };
        let mut best = None;
        let mut table: Option<&toml_edit::Table> = Some(doc.as_table());
        let mut node: Option<Node<'_>> = None;
        let all = steps(path);
        for step in &all {
            // Inside a table of an array of tables, keys are looked up in that table.
            if let (Some(t), Step::Key(k)) = (table, step) {
                let Some((key, child)) = t.get_key_value(k) else { return (best, false) };
                if let Some(span) = key.span().or_else(|| child.span()) {
                    best = Some(span);
                }
                table = child.as_table();
                node = Some(Node::Item(child));
                continue;
            }
            match (&node, step) {
                (Some(Node::Item(Item::ArrayOfTables(a))), Step::Index(i)) => {
                    let Some(t) = a.get(*i) else { return (best, false) };
                    if let Some(span) = t.span() {
                        best = Some(span);
                    }
                    table = Some(t);
                    node = None;
                }
                (Some(cur), _) => {
                    let Some((span, child)) = cur.child(step) else { return (best, false) };
                    if let Some(span) = span {
                        best = Some(span);
                    }
                    table = None;
                    node = Some(child);
                }
                (None, _) => return (best, false),
            }
        }
        (best, true)
    }

    /// The line of `path`, or of the deepest part of it in the file.
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        self.walk(path).0.map(|s| line_of(self.text, s.start))
    }

    /// Whether the file sets `path`.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.walk(path).1
    }

    /// The dotted path of the deepest field whose key or value holds byte `offset`.
    pub(crate) fn path_at(&self, offset: usize) -> Option<String> {
        let doc = self.doc.as_ref()?;
        let mut path = String::new();
        path_in_table(doc.as_table(), offset, &mut path).then_some(path)
    }

    /// The byte range of the whole `key = value` at `path`, or of a whole table with
    /// everything in it, to blank it out. A value inside an array takes the whole array with
    /// it (blanking one element could leave two commas in a row).
    pub(crate) fn entry_span(&self, path: &str) -> Option<std::ops::Range<usize>> {
        let doc = self.doc.as_ref()?;
        entry_in_table(doc.as_table(), &steps(path))
    }
}

/// The span of `key = value` (or of a table, from its header) for `steps` inside table `t`.
fn entry_in_table(t: &dyn toml_edit::TableLike, steps: &[Step]) -> Option<std::ops::Range<usize>> {
    let (Step::Key(k), rest) = steps.split_first()? else { return None };
    let (key, item) = t.get_key_value(k)?;
    match (item, rest) {
        (Item::ArrayOfTables(a), [Step::Index(i), rest @ ..]) => {
            let table = a.get(*i)?;
            if rest.is_empty() {
                let start = table.span()?.start;
                Some(start..end_of_table(table)?.max(start))
            } else {
                entry_in_table(table, rest)
            }
        }
        (Item::Table(table), []) => {
            let start = table.span().or_else(|| key.span())?.start;
            Some(start..end_of(item)?.max(start))
        }
        (Item::Table(table), rest) => entry_in_table(table, rest),
        (Item::Value(Value::InlineTable(inline)), [Step::Key(_), ..]) => entry_in_table(inline, rest),
        // A value, or one inside an array of values: the whole `key = ...`.
        (Item::Value(v), _) => {
            let start = key.span()?.start;
            Some(start..v.span()?.end.max(start))
        }
        _ => None,
    }
}

/// The end of everything an item holds.
fn end_of(item: &Item) -> Option<usize> {
    match item {
        Item::Table(t) => end_of_table(t),
        Item::ArrayOfTables(a) => a.iter().filter_map(end_of_table).max(),
        Item::Value(v) => v.span().map(|s| s.end),
        Item::None => None,
    }
}

fn end_of_table(t: &toml_edit::Table) -> Option<usize> {
    let inner = t.iter().filter_map(|(_, i)| end_of(i)).max();
    match (t.span().map(|s| s.end), inner) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `text` with `range` replaced by spaces, its line ends kept (so every line stays where it was).
pub(crate) fn blank(text: &mut String, range: std::ops::Range<usize>) {
    let spaces: String = text.as_bytes()[range.clone()].iter().map(|b| if *b == b'\n' { '\n' } else { ' ' }).collect();
    text.replace_range(range, &spaces);
}

fn contains(span: &Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.as_ref().is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn path_in_table(t: &dyn toml_edit::TableLike, offset: usize, path: &mut String) -> bool {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        let len = path.len();
        push_key(path, k);
        if contains(&key_span, offset) {
            return true;
        }
        if path_in_item(item, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn path_in_item(item: &Item, offset: usize, path: &mut String) -> bool {
    match item {
        Item::Table(t) => path_in_table(t, offset, path) || contains(&t.span(), offset),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if path_in_table(t, offset, path) || contains(&t.span(), offset) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        Item::Value(v) => path_in_value(v, offset, path),
        Item::None => false,
    }
}

fn path_in_value(v: &Value, offset: usize, path: &mut String) -> bool {
    match v {
        Value::InlineTable(t) => path_in_table(t, offset, path) || contains(&v.span(), offset),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if path_in_value(e, offset, path) {
                    return true;
                }
                path.truncate(len);
            }
            contains(&v.span(), offset)
        }
        _ => contains(&v.span(), offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[node]\nname = \"a\"\n\n[[manager.clusters]]\nname = \"c\"\nservers = [{ hostname = \"h\", role = \"x\" }]\n\n[[manager.clusters]]\nname = \"d\"\n";

    #[test]
    fn fields_are_found_at_their_line() {
        let l = Locator::new(TEXT);
        assert_eq!(l.line("node.name"), Some(2));
        assert_eq!(l.line("node"), Some(1));
        assert_eq!(l.line("node.state_dir"), Some(1), "the table's line for a field not set");
        assert!(!l.has("node.state_dir") && l.has("node.name"));
        assert_eq!(l.line("manager.clusters[1].name"), Some(9));
        assert_eq!(l.line("manager.clusters[0].servers[0].role"), Some(6));
        assert_eq!(l.line("spool.segment_mb"), None);
    }

    #[test]
    fn the_field_at_an_offset_is_named() {
        let l = Locator::new(TEXT);
        let at = |s: &str| l.path_at(TEXT.find(s).unwrap());
        assert_eq!(at("\"a\"").as_deref(), Some("node.name"));
        assert_eq!(at("\"x\"").as_deref(), Some("manager.clusters[0].servers[0].role"));
        assert_eq!(at("\"d\"").as_deref(), Some("manager.clusters[1].name"));
    }

    #[test]
    fn entries_are_blanked_whole() {
        let l = Locator::new(TEXT);
        let span = |p: &str| l.entry_span(p).map(|s| &TEXT[s]);
        assert_eq!(span("node.name"), Some("name = \"a\""));
        assert_eq!(span("node"), Some("[node]\nname = \"a\""));
        assert_eq!(span("manager.clusters[1]"), Some("[[manager.clusters]]\nname = \"d\""));
        assert_eq!(span("manager.clusters[1].name"), Some("name = \"d\""));
        assert_eq!(
            span("manager.clusters[0].servers[0].role"),
            Some("servers = [{ hostname = \"h\", role = \"x\" }]"),
            "the whole array"
        );
        assert_eq!(span("spool.segment_mb"), None);
    }

    #[test]
    fn paths_split_into_keys_and_indices() {
        assert_eq!(
            steps("a.b[2][3].c"),
            vec![Step::Key("a".into()), Step::Key("b".into()), Step::Index(2), Step::Index(3), Step::Key("c".into())]
        );
    }
}
