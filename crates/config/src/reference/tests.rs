//! The reference against the configuration types: the same tables, the same fields, the same
//! required fields, and types that match the values.

use std::collections::BTreeSet;

use super::*;

/// The fields the configuration types read in the table at `path`: from serde's own list of
/// expected fields when a key it does not know is put into the table (every table that refuses
/// unknown keys), else the keys the table is written with.
fn fields_read(path: &str) -> BTreeSet<String> {
    let mut value = defaults();
    let table = table_at_mut(&mut value, path).unwrap_or_else(|| panic!("no table {path:?} in the defaults"));
    let written: BTreeSet<String> = table.as_table().unwrap().keys().cloned().collect();
    table.as_table_mut().unwrap().insert("zz_not_an_option".into(), toml::Value::Integer(0));
    let message = match value.try_into::<Config>() {
        Ok(_) => return written,
        Err(e) => e.to_string(),
    };
    let Some(expected) = message.split("unknown field `zz_not_an_option`, expected").nth(1) else {
        return written;
    };
    // "`a`, `b` or `c`", then "\nin `table`".
    let expected = expected.lines().next().unwrap_or_default();
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn table_at_mut<'a>(root: &'a mut toml::Value, path: &str) -> Option<&'a mut toml::Value> {
    let mut at = root;
    if path.is_empty() {
        return Some(at);
    }
    for part in path.split('.') {
        let (name, array) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        at = at.get_mut(name)?;
        if array {
            at = at.get_mut(0)?;
        }
    }
    Some(at)
}

/// The keys of `path` the reference names: its options and the tables below it.
fn named(path: &str) -> BTreeSet<String> {
    let section = SECTIONS.iter().find(|s| s.path == path).unwrap();
    let mut keys: BTreeSet<String> = section.entries.iter().map(|e| e.key.to_string()).collect();
    for child in SECTIONS {
        let parent_and_name = child.path.trim_end_matches("[]").rsplit_once('.');
        let (parent, name) = match parent_and_name {
            Some((parent, name)) => (parent, name),
            None if !child.path.is_empty() => ("", child.path.trim_end_matches("[]")),
            None => continue,
        };
        if parent == path {
            keys.insert(name.to_string());
        }
    }
    keys
}

#[test]
fn every_field_of_every_table_is_in_the_reference_and_nothing_else() {
    for section in SECTIONS {
        // Old names of renamed options (`idle_timeout_secs`) are read too, as aliases; the
        // reference names them in the description of the new one.
        let mut read = fields_read(section.path);
        for entry in section.entries {
            let path = format!("{}.{}", section.path, entry.key);
            for old in crate::migrate::old_names(&path) {
                let old = old.rsplit('.').next().unwrap();
                assert!(entry.about.contains(&format!("`{old}`")), "{path}: its old name {old} is described");
                read.remove(old);
            }
            // Other aliases, documented as such.
            for alias in entry.about.split("Also read as `").skip(1) {
                read.remove(alias.split('`').next().unwrap());
            }
        }
        assert_eq!(
            named(section.path),
            read,
            "the reference of {} and the fields its type reads differ",
            section.header()
        );
    }
    let paths: BTreeSet<&str> = SECTIONS.iter().map(|s| s.path).collect();
    assert_eq!(paths.len(), SECTIONS.len(), "each table once");
}

#[test]
fn every_table_of_the_configuration_has_a_section() {
    // Every table below a table of the reference (struct or array of tables) is one too.
    fn walk(value: &toml::Value, path: &str, out: &mut Vec<String>) {
        let Some(table) = value.as_table() else { return };
        for (k, v) in table {
            let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            match v {
                toml::Value::Table(_) => {
                    out.push(child.clone());
                    walk(v, &child, out);
                }
                toml::Value::Array(items) if items.first().is_some_and(toml::Value::is_table) => {
                    let child = format!("{child}[]");
                    out.push(child.clone());
                    walk(&items[0], &child, out);
                }
                _ => {}
            }
        }
    }
    let mut tables = Vec::new();
    walk(&defaults(), "", &mut tables);
    // The five answers of [enum.answers] and [sip_redirect.answers] (and a SIP client's own)
    // are values (inline tables), described as options.
    tables.retain(|t| {
        !t.starts_with("enum.answers.")
            && !t.starts_with("sip_redirect.answers.")
            && !t.starts_with("sip_redirect.clients[].")
    });
    for table in tables {
        assert!(SECTIONS.iter().any(|s| s.path == table), "{table} has no section in the reference");
    }
}

#[test]
fn required_options_are_the_ones_the_types_require() {
    for section in SECTIONS {
        for entry in section.entries {
            let mut value = defaults();
            let table = table_at_mut(&mut value, section.path).unwrap();
            table.as_table_mut().unwrap().remove(entry.key);
            let result = value.try_into::<Config>();
            let name = format!("{}.{}", section.header(), entry.key);
            match (entry.required, result) {
                (true, Ok(_)) => panic!("{name} is marked required, but a table without it reads"),
                (true, Err(e)) => assert!(e.to_string().contains("missing field"), "{name}: {e}"),
                (false, Err(e)) => panic!("{name} is not marked required, but a table without it does not read: {e}"),
                (false, Ok(_)) => {}
            }
        }
    }
}

#[test]
fn types_match_the_values() {
    let defaults = defaults();
    for section in SECTIONS {
        let table = table_at(&defaults, section.path).unwrap();
        for entry in section.entries {
            let Some(value) = table.get(entry.key) else { continue };
            let ok = match value {
                toml::Value::Integer(_) => entry.ty == "integer",
                toml::Value::Float(_) => entry.ty == "number",
                toml::Value::Boolean(_) => entry.ty == "boolean",
                toml::Value::Array(_) => entry.ty.starts_with("list of"),
                toml::Value::Table(_) => entry.ty == "answer",
                toml::Value::String(_) => {
                    !entry.ty.starts_with("list of") && !["integer", "boolean"].contains(&entry.ty)
                }
                _ => false,
            };
            assert!(ok, "{}.{}: type {:?}, value {value}", section.header(), entry.key, entry.ty);
            assert!(!entry.about.is_empty() && entry.about.ends_with('.'), "{}: a sentence", entry.key);
        }
    }
}

#[test]
fn defaults_come_from_the_code() {
    let d = defaults();
    let find = |path: &str, key: &str| {
        let section = SECTIONS.iter().find(|s| s.path == path).unwrap();
        let entry = section.entries.iter().find(|e| e.key == key).unwrap();
        default_text(&d, section, entry)
    };
    assert_eq!(find("api", "listen"), "\"127.0.0.1:8080\"");
    assert_eq!(find("api", "idle_timeout"), "\"1m\"");
    assert_eq!(find("api", "token"), "unset");
    assert_eq!(find("srp", "node_id"), "required");
    assert_eq!(find("srp", "hello_interval_ms"), "3000");
    assert_eq!(find("srp.monitor[]", "probe_user"), "\"tollgate-srp-probe\"");
    assert_eq!(find("agent", "max_bundle_mb"), "512");
    assert_eq!(find("manager", "takeover_after"), "\"3s\"");
    assert_eq!(find("dialing_plan", "country_code"), "\"1\"; required when the table is written");
    assert_eq!(find("log", "format"), "\"text\"");
    assert_eq!(find("", "config_version"), "1", "a file without it is in the first format");
    assert_eq!(find("enum.answers", "allow"), "{ kind = \"no-record\" }; required when the table is written");
}

#[test]
fn every_table_is_in_the_commented_default_configuration() {
    for section in SECTIONS.iter().filter(|s| !s.path.is_empty()) {
        let name = section.path.replace("[]", "");
        let mentioned = [format!("[{name}]"), format!("[[{name}]]"), format!("{name} = ")]
            .iter()
            .any(|h| crate::DEFAULT_CONFIG.contains(h.as_str()))
            || crate::DEFAULT_CONFIG.contains(&format!("{} = ", name.rsplit('.').next().unwrap()));
        assert!(mentioned, "{} is neither set nor shown in default-config.toml", section.header());
    }
}

#[test]
fn the_man_page_names_every_table_and_option() {
    let page = render(Format::Man, "0.0.0");
    assert!(page.starts_with(".TH TOLLGATE.TOML 5 "));
    for section in SECTIONS {
        assert!(page.contains(&format!(".SS \"{}\"", section.header().replace('-', "\\-"))), "{}", section.path);
        for entry in section.entries {
            assert!(page.contains(&format!(".B \"{}\"\n", entry.key)), "{}", entry.key);
        }
    }
    assert!(page.lines().all(|l| !l.starts_with('\'')), "no line starts a roff request by accident");
}
