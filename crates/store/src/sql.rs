//! The little SQL both backends share: values, and a row-streaming query interface.
//!
//! Queries shared by the backends are written once with `$1, $2, ...` placeholders, each first
//! appearing in order; PostgreSQL reads them natively and SQLite numbers `$N` names by first
//! appearance, so the same text binds the same values in both.

use crate::StoreError;

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    I64(i64),
    /// Text.
    Text(String),
}

impl Value {
    /// The integer, or 0.
    pub fn i64(&self) -> i64 {
        match self {
            Value::I64(v) => *v,
            Value::Text(t) => t.parse().unwrap_or(0),
            Value::Null => 0,
        }
    }

    /// The text, or the empty string.
    pub fn text(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::I64(v) => v.to_string(),
            Value::Null => String::new(),
        }
    }

    /// The text, or `None` for NULL.
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            other => Some(other.text()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

/// Runs shared SQL.
pub(crate) trait Sql {
    /// Calls `row` for each result row, in order, without collecting them.
    fn for_each(
        &self,
        sql: &str,
        params: &[Value],
        row: &mut dyn FnMut(&[Value]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs a statement; returns rows changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;

    /// All result rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut rows = Vec::new();
        self.for_each(sql, params, &mut |r| {
            rows.push(r.to_vec());
            Ok(())
        })?;
        Ok(rows)
    }
}
