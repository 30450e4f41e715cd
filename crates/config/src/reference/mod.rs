//! The configuration reference: every option of every table of `tollgate.toml` with its type,
//! default, unit and description, rendered as Markdown (docs/CONFIG.md) or as the man page
//! tollgate.toml(5) by `tollgate config reference`.
//!
//! The descriptions, types and units are written in [`sections`]; the defaults are read from
//! the code: the built-in default configuration, plus [`SAMPLE`] for the tables that are absent
//! by default (`[srp]`, `[agent]`, `[manager]`, arrays of tables), read through the
//! configuration types so that every option they leave out takes its default. The tests check
//! that the reference names exactly the fields the configuration types read, table by table.

mod render;
mod sections;

pub use render::{Format, render};
pub use sections::SECTIONS;

use crate::Config;

/// One option of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key in its table.
    pub key: &'static str,
    /// The kind of value, as an operator writes it (`integer`, `duration`, `` `text` or `json` ``).
    pub ty: &'static str,
    /// The unit of a number (`ms`, `s`, `MiB`, `days`), or empty.
    pub unit: &'static str,
    /// Must be written whenever its table is.
    pub required: bool,
    /// What it does.
    pub about: &'static str,
}

/// One table of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Its path: `api`, `srp.checkpoint`; `[]` marks an array of tables (`enum.devices[]`);
    /// empty for the keys at the top of the file.
    pub path: &'static str,
    /// What it is for.
    pub about: &'static str,
    /// Absent unless written (`[srp]`, `[agent]`, `[manager]`, arrays of tables).
    pub optional: bool,
    /// Its options.
    pub entries: &'static [Entry],
}

impl Section {
    /// The table's header as written in a file: `[api]`, `[[enum.devices]]`, or `(top level)`.
    pub fn header(&self) -> String {
        if self.path.is_empty() {
            "(top level)".to_string()
        } else if self.path.ends_with("[]") {
            format!("[[{}]]", self.path.replace("[]", ""))
        } else {
            format!("[{}]", self.path.replace("[]", ""))
        }
    }
}

/// The required options of the tables that are absent by default, and one element of each
/// array of tables: read with the built-in defaults, they give every other option its default.
pub const SAMPLE: &str = r#"
[enum]
devices = [{ name = "sbc-nyc-1", addresses = ["10.10.0.5/32"] }]

[srp]
node_id = "engine-a"
bind_address = "10.0.0.11:7501"
peer_address = "10.0.0.12:7501"
shared_key = "at least 16 bytes, the same on both"
chassis_mode = "primary"
priority = 1
monitor = [{ kind = "aaa", targets = ["10.0.0.50:1812"] }]

[agent]
listen = "10.0.0.11:7000"
server = "east-a"
app_type = "engine"
role = "engine"
role_config = "/etc/tollgate/tollgate.toml"
dir = "/var/lib/tollgate/agent"
trusted_keys = ["<public key printed by tollgate release keygen>"]
token = "at least 16 characters"

[manager]
hostname = "mgr-a"
agent_token = "at least 16 characters"
bundles = "/var/lib/tollgate/bundles"
trusted_keys = ["<public key printed by tollgate release keygen>"]
sites = [{ name = "east" }]
segments = [{ name = "segment-1" }]

[[manager.clusters]]
name = "managers"
application = "manager"
site = "east"
servers = [{ hostname = "mgr-a", role = "Active", agent = "http://10.0.0.1:7000" }]
"#;

/// [`SAMPLE`] as the configuration types read and write it, every option it leaves out with its
/// default: the value every default of the reference is taken from.
pub fn defaults() -> toml::Value {
    // What a file holding only the sample reads as: every option it leaves out takes the
    // default the configuration types give it (`config_version` too: 1 when absent).
    let config: Config = toml::from_str(SAMPLE).expect("the sample is a configuration");
    toml::Value::try_from(config).expect("a configuration is TOML")
}

/// The value at a section's path (`manager.clusters[].servers[]`: the first element of each
/// array) in `root`.
pub fn table_at<'a>(root: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    let mut at = root;
    if path.is_empty() {
        return Some(at);
    }
    for part in path.split('.') {
        let (name, array) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        at = at.get(name)?;
        if array {
            at = at.get(0)?;
        }
    }
    Some(at)
}

/// The default of `entry` in `section`, as shown in the reference: a TOML value, `required`, or
/// `unset` (an optional value with no default; its description says what that means).
pub fn default_text(defaults: &toml::Value, section: &Section, entry: &Entry) -> String {
    let value = table_at(defaults, section.path).and_then(|t| t.get(entry.key));
    match (value, entry.required) {
        (Some(_), true) if section.optional => "required".to_string(),
        (Some(v), true) => format!("{}; required when the table is written", inline(v)),
        (Some(v), false) => inline(v),
        (None, true) => "required".to_string(),
        (None, false) => "unset".to_string(),
    }
}

/// A value on one line, as TOML writes it inline.
pub fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(t) => {
            let fields: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {}", inline(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
