//! Porting a policy file to the newest schema, keeping the operator's layout and comments, and
//! reporting every change made (seed 001: configuration migrated between versions, nothing
//! lost, every change visible).
//!
//! Schema 1 -> 2: `schema = 2`. Schema 2 adds the `velocity` condition; nothing else changes
//! meaning, so no rule is rewritten. Rules that schema 2 reads differently would be rewritten
//! here and each rewrite reported.

use serde::Serialize;
use toml_edit::{DocumentMut, value};

use crate::{OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};

/// One change made by a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationChange {
    /// Line in the original file (1-based; 0 when added at the top).
    pub line: usize,
    /// The field changed.
    pub field: String,
    /// What was done.
    pub description: String,
}

/// The result of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migrated {
    /// The schema the file was written in.
    pub from_schema: i64,
    /// The schema it is in now.
    pub to_schema: i64,
    /// The new file text.
    pub text: String,
    /// Every change, in file order (empty: the file was already current).
    pub changes: Vec<MigrationChange>,
}

/// Why a file cannot be migrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// Not TOML.
    #[error("{file}: TOML syntax: {message}")]
    Syntax {
        /// File label.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// No schema, or one this version does not know.
    #[error("{file}:{line}: schema: {message}")]
    Schema {
        /// File label.
        file: String,
        /// Line of the `schema` key (0: missing).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The line of the top-level `schema = ...` key (0 when there is none).
fn schema_line(text: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            return 0; // past the top level
        }
        if let Some(rest) = t.strip_prefix("schema")
            && rest.trim_start().starts_with('=')
        {
            return i + 1;
        }
    }
    0
}

/// Migrates policy text (named `file` in messages) to [`SCHEMA_VERSION`].
pub fn migrate(file: &str, text: &str) -> Result<Migrated, MigrateError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| MigrateError::Syntax {
        file: file.into(),
        message: e.message().trim().to_string(),
    })?;
    let schema_line = schema_line(text);
    let from = match doc.get("schema").and_then(|s| s.as_integer()) {
        Some(v) => v,
        None => {
            return Err(MigrateError::Schema {
                file: file.into(),
                line: schema_line,
                message: "missing or not a whole number; a policy file starts with `schema = N`".into(),
            });
        }
    };
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&from) {
        return Err(MigrateError::Schema {
            file: file.into(),
            line: schema_line,
            message: format!(
                "schema {from} is not one this tollgate knows ({OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})"
            ),
        });
    }
    let mut changes = Vec::new();
    if from < 2 {
        // Keep the comment and spacing around the value.
        let decor = doc.get("schema").and_then(|i| i.as_value()).map(|v| v.decor().clone());
        doc["schema"] = value(2);
        if let (Some(decor), Some(v)) = (decor, doc.get_mut("schema").and_then(|i| i.as_value_mut())) {
            *v.decor_mut() = decor;
        }
        changes.push(MigrationChange {
            line: schema_line,
            field: "schema".into(),
            description: "schema 1 -> 2 (adds the velocity condition; every rule keeps its meaning)".into(),
        });
    }
    Ok(Migrated { from_schema: from, to_schema: SCHEMA_VERSION, text: doc.to_string(), changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_becomes_2_keeping_comments_and_layout() {
        let old = "# the office policy\nschema = 1   # format\nname = \"x\"\n\n[[rule]]\nname = \"a\"  # first\naction = \"allow\"\n";
        let m = migrate("p.toml", old).unwrap();
        assert_eq!((m.from_schema, m.to_schema), (1, 2));
        assert_eq!(m.text, old.replace("schema = 1", "schema = 2"));
        assert_eq!(m.changes.len(), 1);
        assert_eq!((m.changes[0].line, m.changes[0].field.as_str()), (2, "schema"));
        // Already current: nothing to do.
        let again = migrate("p.toml", &m.text).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(again.text, m.text);
    }

    #[test]
    fn bad_files_are_named() {
        assert!(matches!(migrate("p.toml", "schema = "), Err(MigrateError::Syntax { .. })));
        let e = migrate("p.toml", "name = \"x\"\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:0: schema: missing"), "{e}");
        let e = migrate("p.toml", "\nschema = 7\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:2: schema: schema 7"), "{e}");
    }
}
