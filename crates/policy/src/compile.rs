//! Validation and compilation of a policy file into indexes.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use tollgate_number::DialingPlan;
use toml::Spanned;

use crate::decision::{Action, Direction, RedirectTarget, Termination};
use crate::direction::{DirectionClassifier, InternalRange};
use crate::error::{Diagnostics, PolicyError};
use crate::lists::{NumberList, count_lines, load_list_sized};
use crate::pattern::NumberPattern;
use crate::sections;
use crate::source::{PolicySource, RawInternal, RawPolicy, RawRule, RawRuleBatch};
use crate::time_window::TimeWindow;
use crate::trie::DigitTrie;
use crate::velocity::{MAX_VELOCITY_CALLS, Velocity};
use crate::{OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};

/// Longest rule name, characters: a rule's name is stored in every record it decides.
pub const MAX_RULE_NAME: usize = 128;

/// What compilation needs besides the policy itself.
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions<'a> {
    /// Dialing plan used to normalise numbers written in the policy and its lists.
    pub plan: &'a DialingPlan,
    /// Intercept names the engine knows; `None` skips that check (e.g. `policy check` without
    /// an engine configuration).
    pub intercepts: Option<&'a [String]>,
}

/// Facts about a compiled policy, for display and records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMeta {
    /// The policy's `name`, or the file name.
    pub name: String,
    /// The policy's `description`.
    pub description: String,
    /// The schema version it was written in.
    pub schema: i64,
    /// SHA-256 of the policy text, hex.
    pub sha256: String,
    /// Rules in the file (enabled or not).
    pub rules: usize,
    /// Enabled rules.
    pub enabled_rules: usize,
    /// Each list's name and number count.
    pub lists: BTreeMap<String, usize>,
}

/// One rule as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    /// Position in the file (0-based).
    pub index: usize,
    /// Rule name.
    pub name: String,
    /// Line in the file.
    pub line: usize,
    /// False for `enabled = false` rules, which never match.
    pub enabled: bool,
    /// The action, in words.
    pub action: String,
}

/// A pattern after list names are resolved to list indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CompiledPattern {
    Any,
    Exact(u64),
    Prefix(String),
    List(usize),
}

/// A validated rule.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) name: Arc<str>,
    pub(crate) line: usize,
    pub(crate) enabled: bool,
    pub(crate) source: Vec<CompiledPattern>,
    pub(crate) destination: Vec<CompiledPattern>,
    /// Bit set of [`Direction::bit`]; all four bits for "any".
    pub(crate) directions: u8,
    /// Empty: always. Otherwise the rule applies when any window contains the call time.
    pub(crate) windows: Vec<TimeWindow>,
    /// Schema 2: the rule matches only above this many calls from the caller in the window.
    pub(crate) velocity: Option<Velocity>,
    /// Schema 2: the rule matches only when the caller has more calls than this in progress.
    pub(crate) concurrent: Option<u32>,
    pub(crate) action: Action,
}

impl CompiledRule {
    pub(crate) fn source_any(&self) -> bool {
        self.source.contains(&CompiledPattern::Any)
    }

    pub(crate) fn destination_any(&self) -> bool {
        self.destination.contains(&CompiledPattern::Any)
    }
}

/// Rule ids indexed by the numbers one side (source or destination) of a rule names.
#[derive(Debug, Clone, Default)]
pub(crate) struct SideIndex {
    pub(crate) exact: FxHashMap<u64, SmallVec<[u32; 2]>>,
    pub(crate) prefixes: DigitTrie<SmallVec<[u32; 2]>>,
    /// (list index, rules naming that list), one entry per referenced list.
    pub(crate) lists: Vec<(usize, Vec<u32>)>,
}

impl SideIndex {
    fn add(&mut self, rule: u32, pattern: &CompiledPattern) {
        match pattern {
            CompiledPattern::Any => {}
            CompiledPattern::Exact(n) => self.exact.entry(*n).or_default().push(rule),
            CompiledPattern::Prefix(p) => self.prefixes.entry(p.as_bytes(), SmallVec::new).push(rule),
            CompiledPattern::List(l) => match self.lists.iter_mut().find(|(id, _)| id == l) {
                Some((_, rules)) => rules.push(rule),
                None => self.lists.push((*l, vec![rule])),
            },
        }
    }
}

/// A policy ready to evaluate. Immutable: installing a new policy builds a new value.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) meta: PolicyMeta,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) source_index: SideIndex,
    pub(crate) destination_index: SideIndex,
    /// Enabled rules whose source and destination are both "any", ascending.
    pub(crate) any_any: Vec<u32>,
    pub(crate) classifier: DirectionClassifier,
    pub(crate) lists: Vec<NumberList>,
    /// Where each list was read from (the store copies them when installing).
    pub(crate) list_files: BTreeMap<String, std::path::PathBuf>,
}

impl CompiledPolicy {
    /// The empty policy: no rules, every call allowed. In force when nothing is installed.
    pub fn allow_all() -> Self {
        CompiledPolicy {
            meta: PolicyMeta { name: "(none: default allow)".into(), schema: SCHEMA_VERSION, ..Default::default() },
            rules: Vec::new(),
            source_index: SideIndex::default(),
            destination_index: SideIndex::default(),
            any_any: Vec::new(),
            classifier: DirectionClassifier::default(),
            lists: Vec::new(),
            list_files: BTreeMap::new(),
        }
    }

    /// Facts about the policy.
    pub fn meta(&self) -> &PolicyMeta {
        &self.meta
    }

    /// The rules, in file order.
    pub fn rules(&self) -> Vec<RuleSummary> {
        self.rules
            .iter()
            .enumerate()
            .map(|(index, r)| RuleSummary {
                index,
                name: r.name.to_string(),
                line: r.line,
                enabled: r.enabled,
                action: r.action.to_string(),
            })
            .collect()
    }

    /// The terminate intercept names the policy uses (so an engine can check it knows them).
    pub fn intercepts_used(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| match &r.action {
                Action::Terminate(Termination::Intercept(n)) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Validates and compiles a policy. Every problem found is reported, each with file, line and
/// field; nothing is installed by this function.
///
/// A policy laid out as a preamble followed by `[[rule]]` sections (every policy tollgate
/// writes, and the usual hand-written one) is parsed a batch of rules at a time, each batch
/// compiled and dropped before the next is parsed ([`crate::sections`]): a policy of 100,000
/// rules then needs a few MB for parsing instead of 30 times its size. Any other layout, and
/// any policy the TOML parser refuses, is parsed whole, so every diagnostic is the one the
/// whole file gives.
pub fn compile(source: &PolicySource, opts: CompileOptions<'_>) -> Result<CompiledPolicy, PolicyError> {
    compile_in_batches(source, opts, sections::BATCH_BYTES)
}

/// [`compile`] with rule sections batched by at least `batch_bytes` (tests use tiny batches).
pub(crate) fn compile_in_batches(
    source: &PolicySource,
    opts: CompileOptions<'_>,
    batch_bytes: usize,
) -> Result<CompiledPolicy, PolicyError> {
    if let Some(split) = sections::split(&source.text, batch_bytes)
        && let Some(result) = compile_split(source, opts, &split)
    {
        return result;
    }
    compile_whole(source, opts)
}

/// Compiles a policy parsed as one TOML document.
pub(crate) fn compile_whole(source: &PolicySource, opts: CompileOptions<'_>) -> Result<CompiledPolicy, PolicyError> {
    let mut diags = Diagnostics::new(&source.file, &source.text);
    let mut raw: RawPolicy = match toml::from_str(&source.text) {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(e.span().map(|s| s.start), "", format!("TOML syntax: {}", e.message().trim()));
            return diags.into_result(CompiledPolicy::allow_all());
        }
    };
    let rules = std::mem::take(&mut raw.rules);
    let count = rules.len();
    compile_raw(source, opts, diags, raw, count, std::iter::once(Some(rules))).unwrap_or_else(|| {
        Err(PolicyError::single(&source.file, None, "", "internal error: a parsed policy lost its rules"))
    })
}

/// Compiles a policy from its preamble and its batches of rule sections, each parsed on its
/// own. `None` when the preamble holds rules or any part does not parse: the caller then
/// parses the file whole, which gives the diagnostics of the whole file.
pub(crate) fn compile_split(
    source: &PolicySource,
    opts: CompileOptions<'_>,
    split: &sections::Split,
) -> Option<Result<CompiledPolicy, PolicyError>> {
    let text = &source.text;
    let raw: RawPolicy = toml::from_str(&text[..split.preamble_end]).ok()?;
    if !raw.rules.is_empty() {
        return None;
    }
    let batches = split.batches.iter().map(|range| {
        let batch: RawRuleBatch = toml::from_str(&text[range.clone()]).ok()?;
        Some(batch.rules.into_iter().map(|rule| RawRule::shifted(rule, range.start)).collect::<Vec<_>>())
    });
    compile_raw(source, opts, Diagnostics::new(&source.file, text), raw, split.sections, batches)
}

/// Validates and compiles a parsed preamble (`raw`, its rules taken out) and its rules, given
/// as batches in file order (`None`: a batch that did not parse, which ends compilation with
/// `None`). `rule_count` is how many rules the batches hold, for reserving memory.
fn compile_raw(
    source: &PolicySource,
    opts: CompileOptions<'_>,
    mut diags: Diagnostics<'_>,
    raw: RawPolicy,
    rule_count: usize,
    batches: impl Iterator<Item = Option<Vec<Spanned<RawRule>>>>,
) -> Option<Result<CompiledPolicy, PolicyError>> {
    let schema = match &raw.schema {
        None => {
            diags.push(Some(0), "schema", format!("missing `schema = {SCHEMA_VERSION}` at the top of the file"));
            SCHEMA_VERSION
        }
        Some(s) if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(s.get_ref()) => {
            diags.push(
                Some(s.span().start),
                "schema",
                format!(
                    "schema {} is not supported by this tollgate (it reads schemas {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})",
                    s.get_ref()
                ),
            );
            SCHEMA_VERSION
        }
        Some(s) => *s.get_ref(),
    };

    let default_zone = match &raw.timezone {
        Some(tz) => {
            if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
                diags.push(Some(tz.span().start), "timezone", format!("unknown time zone {:?}", tz.get_ref()));
            }
            tz.get_ref().clone()
        }
        None => "UTC".to_string(),
    };

    let ranges = compile_internal(&raw.internal, opts.plan, &mut diags);

    let mut lists = Vec::new();
    let mut list_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut list_files = BTreeMap::new();
    for (name, path) in &raw.lists {
        let field = format!("lists.{}", name.get_ref());
        let at = Some(path.span().start);
        let file = match source.lists.resolve(name.get_ref(), path.get_ref()) {
            Ok(p) => p,
            Err(msg) => {
                diags.push(at, field, msg);
                continue;
            }
        };
        let label = file.display().to_string();
        // The set is sized from the line count; a file that cannot be counted is read all the
        // same, and the read reports why.
        let expected = File::open(&file).and_then(count_lines).unwrap_or(0);
        match File::open(&file) {
            Err(e) => diags.push(at, field, format!("cannot open list file {label}: {e}")),
            Ok(f) => {
                match load_list_sized(name.get_ref(), BufReader::with_capacity(1 << 16, f), &label, opts.plan, expected)
                {
                    Ok(list) => {
                        list_ids.insert(name.get_ref().clone(), lists.len());
                        list_files.insert(name.get_ref().clone(), file.clone());
                        lists.push(list);
                    }
                    Err(problems) => diags.extend(problems),
                }
            }
        }
        // A list that failed to load still counts as declared, so rules naming it do not also
        // report "unknown list".
        list_ids.entry(name.get_ref().clone()).or_insert(usize::MAX);
    }

    let mut rules = Vec::with_capacity(rule_count);
    let mut names = HashSet::with_capacity(rule_count);
    let mut i = 0usize;
    for batch in batches {
        for raw_rule in &batch? {
            let ctx = RuleContext { index: i, opts, list_ids: &list_ids, default_zone: &default_zone, schema };
            if let Some(name) = &raw_rule.get_ref().name
                && !names.insert(name.get_ref().trim().to_string())
            {
                diags.push(
                    Some(name.span().start),
                    format!("rule[{i}].name"),
                    format!("duplicate rule name {:?}; rule names must be unique", name.get_ref().trim()),
                );
            }
            if let Some(rule) = compile_rule(raw_rule, &ctx, &mut diags) {
                rules.push(rule);
            }
            i += 1;
        }
    }
    drop(names);

    if !diags.list.is_empty() {
        return Some(diags.into_result(CompiledPolicy::allow_all()));
    }

    let mut source_index = SideIndex::default();
    let mut destination_index = SideIndex::default();
    let mut any_any = Vec::new();
    for (id, rule) in rules.iter().enumerate().filter(|(_, r)| r.enabled) {
        let id = id as u32;
        let (s_any, d_any) = (rule.source_any(), rule.destination_any());
        if s_any && d_any {
            any_any.push(id);
            continue;
        }
        if !s_any {
            rule.source.iter().for_each(|p| source_index.add(id, p));
        }
        if !d_any {
            rule.destination.iter().for_each(|p| destination_index.add(id, p));
        }
    }

    let meta = PolicyMeta {
        name: raw.name.clone().unwrap_or_else(|| source.file.clone()),
        description: raw.description.clone().unwrap_or_default(),
        schema,
        sha256: hex::encode(Sha256::digest(source.text.as_bytes())),
        rules: rules.len(),
        enabled_rules: rules.iter().filter(|r| r.enabled).count(),
        lists: lists.iter().map(|l| (l.name().to_string(), l.len())).collect(),
    };
    Some(Ok(CompiledPolicy {
        meta,
        rules,
        source_index,
        destination_index,
        any_any,
        classifier: DirectionClassifier::new(&ranges),
        lists,
        list_files,
    }))
}

fn compile_internal(
    raw: &[toml::Spanned<RawInternal>],
    plan: &DialingPlan,
    diags: &mut Diagnostics<'_>,
) -> Vec<InternalRange> {
    let mut ranges: Vec<(InternalRange, usize, String)> = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let label = r.name.clone().unwrap_or_else(|| format!("internal[{i}]"));
        let field = format!("internal[{i}]");
        let at = spanned.span().start;
        let range = match (&r.prefix, &r.from, &r.to) {
            (Some(prefix), None, None) => {
                match NumberPattern::parse(&format!("{}*", prefix.get_ref().trim_end_matches('*')), plan) {
                    Ok(NumberPattern::Prefix(p)) => Some(InternalRange::Prefix(p)),
                    Ok(_) | Err(_) => {
                        diags.push(
                            Some(prefix.span().start),
                            format!("{field}.prefix"),
                            format!("{:?} is not a prefix in international form, e.g. \"+1212555\"", prefix.get_ref()),
                        );
                        None
                    }
                }
            }
            (None, Some(from), Some(to)) => {
                let parse = |s: &toml::Spanned<String>, name: &str, diags: &mut Diagnostics<'_>| match plan
                    .normalize(s.get_ref())
                {
                    Ok(n) => Some(n),
                    Err(e) => {
                        diags.push(Some(s.span().start), format!("{field}.{name}"), e.to_string());
                        None
                    }
                };
                match (parse(from, "from", diags), parse(to, "to", diags)) {
                    (Some(a), Some(b)) if a.len() != b.len() => {
                        diags.push(
                            Some(at),
                            field.clone(),
                            format!("from {a} and to {b} must have the same number of digits"),
                        );
                        None
                    }
                    (Some(a), Some(b)) if a > b => {
                        diags.push(Some(at), field.clone(), format!("from {a} is after to {b}"));
                        None
                    }
                    (Some(a), Some(b)) => Some(InternalRange::Span { from: a, to: b }),
                    _ => None,
                }
            }
            _ => {
                diags.push(Some(at), field.clone(), "give either `prefix`, or both `from` and `to`");
                None
            }
        };
        if let Some(range) = range {
            if let Some((_, _, other)) = ranges.iter().find(|(r, _, _)| r.overlaps(&range)) {
                diags.push(
                    Some(at),
                    field,
                    format!("range {label:?} overlaps range {other:?}; internal ranges must not overlap"),
                );
            }
            ranges.push((range, at, label));
        }
    }
    ranges.into_iter().map(|(r, _, _)| r).collect()
}

struct RuleContext<'a> {
    index: usize,
    opts: CompileOptions<'a>,
    list_ids: &'a BTreeMap<String, usize>,
    default_zone: &'a str,
    schema: i64,
}

fn compile_rule(
    spanned: &toml::Spanned<RawRule>,
    ctx: &RuleContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<CompiledRule> {
    let raw = spanned.get_ref();
    let at = spanned.span().start;
    let i = ctx.index;
    let before = diags.list.len();
    let name: Arc<str> = match &raw.name {
        Some(n) if n.get_ref().trim().chars().count() > MAX_RULE_NAME || n.get_ref().chars().any(char::is_control) => {
            diags.push(
                Some(n.span().start),
                format!("rule[{i}].name"),
                format!("a rule name has at most {MAX_RULE_NAME} characters and no control characters"),
            );
            Arc::from(format!("rule[{i}]"))
        }
        Some(n) if !n.get_ref().trim().is_empty() => Arc::from(n.get_ref().trim()),
        _ => {
            diags.push(Some(at), format!("rule[{i}].name"), "every rule needs a non-empty `name`");
            Arc::from(format!("rule[{i}]"))
        }
    };
    let source = compile_side(raw.source.as_ref(), "source", ctx, diags);
    let destination = compile_side(raw.destination.as_ref(), "destination", ctx, diags);
    let directions = compile_directions(raw.direction.as_ref(), i, diags);
    let windows = compile_windows(raw.time.as_ref(), i, ctx.default_zone, diags);
    let velocity = compile_velocity(raw.velocity.as_ref(), ctx, diags);
    let concurrent = compile_concurrent(raw.concurrent.as_ref(), ctx, diags);
    let action = compile_action(raw, at, ctx, diags);
    if diags.list.len() > before {
        return None;
    }
    Some(CompiledRule {
        name,
        line: diags.line_of(at),
        enabled: raw.enabled.unwrap_or(true),
        source,
        destination,
        directions,
        windows,
        velocity,
        concurrent,
        action: action?,
    })
}

/// Maximum of `concurrent`.
const MAX_CONCURRENT: i64 = 100_000;

fn compile_concurrent(
    value: Option<&toml::Spanned<i64>>,
    ctx: &RuleContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<u32> {
    let value = value?;
    let field = format!("rule[{}].concurrent", ctx.index);
    let at = Some(value.span().start);
    if ctx.schema < 2 {
        diags.push(at, field, "concurrent needs `schema = 2` (run `tollgate policy migrate FILE`)");
        return None;
    }
    match *value.get_ref() {
        n @ 1..=MAX_CONCURRENT => Some(n as u32),
        n => {
            diags.push(at, field, format!("{n} is out of range 1..={MAX_CONCURRENT} (calls in progress)"));
            None
        }
    }
}

/// Parses a window length: whole seconds as an integer, or a duration string (`90s`, `5m`,
/// `1h`, `1h 30m`; humantime, as durations in the configuration).
fn window_secs(value: &toml::Value) -> Result<u32, String> {
    let secs = match value {
        toml::Value::Integer(n) => *n,
        // Digits alone are seconds, as before durations were parsed by humantime.
        toml::Value::String(s) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            s.trim().parse().unwrap_or(i64::MAX)
        }
        toml::Value::String(s) => {
            let d = humantime::parse_duration(s.trim())
                .map_err(|e| format!("{s:?} is not a duration like \"60s\", \"5m\" or \"1h\": {e}"))?;
            if d.subsec_nanos() != 0 {
                return Err(format!("{s:?}: the window is whole seconds"));
            }
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
        }
        other => return Err(format!("expected seconds or a string like \"60s\", found {}", other.type_str())),
    };
    if !(1..=86_400).contains(&secs) {
        return Err(format!("the window must be 1 s to 24 h, not {secs} s"));
    }
    Ok(secs as u32)
}

fn compile_velocity(
    value: Option<&toml::Spanned<toml::Value>>,
    ctx: &RuleContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<Velocity> {
    let value = value?;
    let field = format!("rule[{}].velocity", ctx.index);
    let at = Some(value.span().start);
    if ctx.schema < 2 {
        diags.push(at, field, "velocity needs `schema = 2` (run `tollgate policy migrate FILE`)");
        return None;
    }
    let Some(table) = value.get_ref().as_table() else {
        diags.push(at, field, "expected a table like { calls = 5, window = \"60s\" }");
        return None;
    };
    if let Some(unknown) = table.keys().find(|k| !matches!(k.as_str(), "calls" | "window")) {
        diags.push(at, format!("{field}.{unknown}"), "unknown field; velocity takes `calls` and `window`");
        return None;
    }
    let calls = match table.get("calls").map(|v| v.as_integer()) {
        Some(Some(n)) if (1..=i64::from(MAX_VELOCITY_CALLS)).contains(&n) => n as u32,
        Some(Some(n)) => {
            diags.push(at, format!("{field}.calls"), format!("{n} is out of range 1..={MAX_VELOCITY_CALLS}"));
            return None;
        }
        Some(None) => {
            diags.push(at, format!("{field}.calls"), "expected a whole number of calls");
            return None;
        }
        None => {
            diags.push(at, format!("{field}.calls"), "missing; the rule matches above this many calls in the window");
            return None;
        }
    };
    let window = match table.get("window").map(window_secs) {
        Some(Ok(w)) => w,
        Some(Err(msg)) => {
            diags.push(at, format!("{field}.window"), msg);
            return None;
        }
        None => {
            diags.push(at, format!("{field}.window"), "missing; e.g. window = \"60s\"");
            return None;
        }
    };
    Some(Velocity { calls, window_secs: window })
}

fn values_of(value: &toml::Value) -> Result<Vec<&str>, String> {
    match value {
        toml::Value::String(s) => Ok(vec![s.as_str()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| format!("expected a string, found {}", v.type_str())))
            .collect(),
        other => Err(format!("expected a string or an array of strings, found {}", other.type_str())),
    }
}

fn compile_side(
    value: Option<&toml::Spanned<toml::Value>>,
    side: &str,
    ctx: &RuleContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Vec<CompiledPattern> {
    let field = format!("rule[{}].{side}", ctx.index);
    let Some(value) = value else { return vec![CompiledPattern::Any] };
    let at = Some(value.span().start);
    let texts = match values_of(value.get_ref()) {
        Ok(t) if t.is_empty() => {
            diags.push(at, field, "empty list; use \"any\" to match every number");
            return Vec::new();
        }
        Ok(t) => t,
        Err(msg) => {
            diags.push(at, field, msg);
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        match NumberPattern::parse(text, ctx.opts.plan) {
            Ok(NumberPattern::Any) => out.push(CompiledPattern::Any),
            Ok(NumberPattern::Exact(n)) => out.push(CompiledPattern::Exact(n.as_u64())),
            Ok(NumberPattern::Prefix(p)) => out.push(CompiledPattern::Prefix(p)),
            Ok(NumberPattern::List(name)) => match ctx.list_ids.get(&name) {
                Some(&id) => out.push(CompiledPattern::List(id)),
                None => diags.push(
                    at,
                    field.clone(),
                    format!(
                        "unknown list {name:?}; declare it under [lists] (declared: {})",
                        if ctx.list_ids.is_empty() {
                            "none".to_string()
                        } else {
                            ctx.list_ids.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ),
            },
            Err(msg) => diags.push(at, field.clone(), format!("bad number {text:?}: {msg}")),
        }
    }
    out
}

fn compile_directions(value: Option<&toml::Spanned<toml::Value>>, i: usize, diags: &mut Diagnostics<'_>) -> u8 {
    const ALL: u8 = 0b1111;
    let Some(value) = value else { return ALL };
    let field = format!("rule[{i}].direction");
    let at = Some(value.span().start);
    let texts = match values_of(value.get_ref()) {
        Ok(t) => t,
        Err(msg) => {
            diags.push(at, field, msg);
            return ALL;
        }
    };
    let mut bits = 0u8;
    for t in texts {
        let t = t.trim().to_ascii_lowercase();
        if t == "any" {
            bits |= ALL;
        } else if let Some(d) = Direction::parse(&t) {
            bits |= d.bit();
        } else {
            diags.push(
                at,
                field.clone(),
                format!("unknown direction {t:?} (use inbound, outbound, internal, transit or any)"),
            );
        }
    }
    bits
}

fn compile_windows(
    value: Option<&toml::Spanned<toml::Value>>,
    i: usize,
    default_zone: &str,
    diags: &mut Diagnostics<'_>,
) -> Vec<TimeWindow> {
    let Some(value) = value else { return Vec::new() };
    let field = format!("rule[{i}].time");
    let at = Some(value.span().start);
    let tables: Vec<&toml::Table> = match value.get_ref() {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(items) => match items.iter().map(|v| v.as_table()).collect::<Option<Vec<_>>>() {
            Some(t) => t,
            None => {
                diags.push(at, field, "expected a table { days, hours, zone } or an array of them");
                return Vec::new();
            }
        },
        other => {
            diags.push(at, field, format!("expected a table {{ days, hours, zone }}, found {}", other.type_str()));
            return Vec::new();
        }
    };
    let mut windows = Vec::new();
    for table in tables {
        if let Some(unknown) = table.keys().find(|k| !matches!(k.as_str(), "days" | "hours" | "zone")) {
            diags.push(at, format!("{field}.{unknown}"), "unknown field (expected days, hours, zone)");
            continue;
        }
        let days = match table.get("days").map(values_of) {
            None => Ok(Vec::new()),
            Some(Ok(d)) => Ok(d.into_iter().map(String::from).collect()),
            Some(Err(e)) => Err(e),
        };
        let hours = match table.get("hours") {
            None => Ok(None),
            Some(toml::Value::String(h)) => Ok(Some(h.as_str())),
            Some(other) => Err(format!("hours must be a string like \"09:00-17:00\", found {}", other.type_str())),
        };
        let zone = match table.get("zone") {
            None => Ok(default_zone),
            Some(toml::Value::String(z)) => Ok(z.as_str()),
            Some(other) => Err(format!("zone must be a string, found {}", other.type_str())),
        };
        match (days, hours, zone) {
            (Ok(days), Ok(hours), Ok(zone)) => match TimeWindow::parse(&days, hours, zone) {
                Ok(w) => windows.push(w),
                Err(msg) => diags.push(at, field.clone(), msg),
            },
            (Err(msg), _, _) | (_, Err(msg), _) | (_, _, Err(msg)) => diags.push(at, field.clone(), msg),
        }
    }
    windows
}

fn compile_action(raw: &RawRule, rule_at: usize, ctx: &RuleContext<'_>, diags: &mut Diagnostics<'_>) -> Option<Action> {
    let i = ctx.index;
    let Some(action) = &raw.action else {
        diags.push(
            Some(rule_at),
            format!("rule[{i}].action"),
            "every rule needs an `action` (allow, terminate or redirect)",
        );
        return None;
    };
    let at = Some(action.span().start);
    let misplaced = |name: &str, present: bool, diags: &mut Diagnostics<'_>| {
        if present {
            diags.push(
                at,
                format!("rule[{i}].{name}"),
                format!("`{name}` does not apply to action {:?}", action.get_ref()),
            );
        }
    };
    match action.get_ref().trim().to_ascii_lowercase().as_str() {
        "allow" => {
            misplaced("intercept", raw.intercept.is_some(), diags);
            misplaced("cause", raw.cause.is_some(), diags);
            misplaced("target", raw.target.is_some(), diags);
            Some(Action::Allow)
        }
        "terminate" => {
            misplaced("target", raw.target.is_some(), diags);
            match (&raw.intercept, &raw.cause) {
                (Some(_), Some(c)) => {
                    diags.push(
                        Some(c.span().start),
                        format!("rule[{i}].cause"),
                        "give either `intercept` or `cause`, not both",
                    );
                    None
                }
                (None, Some(c)) => {
                    let code = *c.get_ref();
                    if (400..=699).contains(&code) {
                        Some(Action::Terminate(Termination::Reject(code as u16)))
                    } else {
                        diags.push(
                            Some(c.span().start),
                            format!("rule[{i}].cause"),
                            format!("cause {code} is not a SIP reject status (400 to 699)"),
                        );
                        None
                    }
                }
                (intercept, None) => {
                    let name =
                        intercept.as_ref().map(|s| s.get_ref().trim().to_string()).unwrap_or_else(|| "default".into());
                    let at = intercept.as_ref().map(|s| s.span().start).or(at);
                    if let Some(known) = ctx.opts.intercepts
                        && !known.contains(&name)
                    {
                        diags.push(
                            at,
                            format!("rule[{i}].intercept"),
                            format!(
                                "unknown intercept {name:?}; the engine configuration defines: {}",
                                known.join(", ")
                            ),
                        );
                        return None;
                    }
                    Some(Action::Terminate(Termination::Intercept(Arc::from(name))))
                }
            }
        }
        "redirect" => {
            misplaced("intercept", raw.intercept.is_some(), diags);
            misplaced("cause", raw.cause.is_some(), diags);
            let Some(target) = &raw.target else {
                diags.push(at, format!("rule[{i}].target"), "redirect needs a `target` (a number or a sip: URI)");
                return None;
            };
            let t = target.get_ref().trim();
            let lower = t.to_ascii_lowercase();
            if lower.starts_with("sip:") || lower.starts_with("sips:") {
                if t.len() < 6 || t.contains(char::is_whitespace) || t.contains('!') {
                    diags.push(
                        Some(target.span().start),
                        format!("rule[{i}].target"),
                        format!("{t:?} is not a usable SIP URI"),
                    );
                    return None;
                }
                Some(Action::Redirect(RedirectTarget::Uri(Arc::from(t))))
            } else {
                let number = lower.strip_prefix("tel:").map(|_| &t[4..]).unwrap_or(t);
                match ctx.opts.plan.normalize(number) {
                    Ok(n) => Some(Action::Redirect(RedirectTarget::Number(n))),
                    Err(e) => {
                        diags.push(
                            Some(target.span().start),
                            format!("rule[{i}].target"),
                            format!("bad number {t:?}: {e}"),
                        );
                        None
                    }
                }
            }
        }
        other => {
            diags.push(
                at,
                format!("rule[{i}].action"),
                format!("unknown action {other:?} (use allow, terminate or redirect)"),
            );
            None
        }
    }
}

#[cfg(test)]
mod window_tests {
    use super::window_secs;

    #[test]
    fn windows_read_as_before_and_as_humantime_durations() {
        let s = |t: &str| window_secs(&toml::Value::String(t.into()));
        for (text, secs) in [("60s", 60), ("5m", 300), ("1h", 3600), ("90", 90), ("1h 30m", 5400), ("24h", 86_400)] {
            assert_eq!(s(text), Ok(secs), "{text}");
        }
        assert_eq!(window_secs(&toml::Value::Integer(60)), Ok(60));
        assert!(s("2d").unwrap_err().contains("the window must be 1 s to 24 h"));
        assert!(s("1500ms").unwrap_err().contains("whole seconds"));
        assert!(s("soon").unwrap_err().contains("is not a duration like"));
        assert!(s("").unwrap_err().contains("is not a duration like"));
    }
}
