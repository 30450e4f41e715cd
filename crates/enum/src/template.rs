//! URI templates for NAPTR answers (and the SIP redirect server's Contact URIs): literal text
//! with `{placeholders}`.

use std::fmt::Write;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// Called number, `+` form.
    Dest,
    /// Called number, digits only.
    DestDigits,
    /// Calling number, `+` form (empty when unknown).
    Source,
    /// Calling number, digits only (empty when unknown).
    SourceDigits,
    /// Redirect target: a `+` number or a SIP URI.
    Target,
    /// Redirect target number, digits only (empty for URI targets).
    TargetDigits,
    /// The intercept destination's configured value.
    Intercept,
    /// Reject cause (SIP status code).
    Cause,
    /// Name of the deciding rule (empty for the default).
    Rule,
    /// The SIP request's Request-URI, as sent (SIP redirect server only; an ENUM
    /// configuration refuses it).
    Ruri,
    /// The host (and `:port`, when given) of the SIP request's Request-URI (SIP redirect
    /// server only; an ENUM configuration refuses it).
    RuriHost,
}

/// Placeholders with a value only in a SIP request's answer, never in an ENUM (NAPTR) one.
pub const SIP_ONLY_VARS: [Var; 2] = [Var::Ruri, Var::RuriHost];

const VARS: [(&str, Var); 11] = [
    ("dest", Var::Dest),
    ("dest_digits", Var::DestDigits),
    ("source", Var::Source),
    ("source_digits", Var::SourceDigits),
    ("target", Var::Target),
    ("target_digits", Var::TargetDigits),
    ("intercept", Var::Intercept),
    ("cause", Var::Cause),
    ("rule", Var::Rule),
    ("ruri", Var::Ruri),
    ("ruri_host", Var::RuriHost),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template such as `sip:{dest}@10.0.0.1:5060`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// Values for rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct Values<'a> {
    /// See [`Var::Dest`].
    pub dest: &'a str,
    /// See [`Var::Source`].
    pub source: &'a str,
    /// See [`Var::Target`].
    pub target: &'a str,
    /// See [`Var::Intercept`].
    pub intercept: &'a str,
    /// See [`Var::Cause`].
    pub cause: Option<u16>,
    /// See [`Var::Rule`].
    pub rule: &'a str,
    /// See [`Var::Ruri`].
    pub ruri: &'a str,
    /// See [`Var::RuriHost`].
    pub ruri_host: &'a str,
}

impl Template {
    /// Parses a template. `{name}` inserts a value (see [`Var`]); `!` and `\` are refused because
    /// they would break the NAPTR regexp `!^.*$!URI!`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains('!') || text.contains('\\') {
            return Err(format!("template {text:?} must not contain '!' or '\\' (they delimit the NAPTR regexp)"));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("template {text:?} has an unclosed '{{'"))? + open;
            let name = &rest[open + 1..close];
            let var = VARS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
                format!(
                    "template {text:?} uses unknown placeholder {{{name}}} (known: {})",
                    VARS.iter().map(|(n, _)| format!("{{{n}}}")).collect::<Vec<_>>().join(", ")
                )
            })?;
            pieces.push(Piece::Var(var));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("template {text:?} has a stray '}}'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err("template is empty".into());
        }
        Ok(Template { text: text.to_string(), pieces })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if the template inserts `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.pieces.contains(&Piece::Var(var))
    }

    /// Renders into `out` (cleared first).
    pub fn render_into<'a>(&self, v: &Values<'a>, out: &mut String) {
        out.clear();
        let digits = |s: &'a str| s.trim_start_matches('+');
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::Dest) => out.push_str(v.dest),
                Piece::Var(Var::DestDigits) => out.push_str(digits(v.dest)),
                Piece::Var(Var::Source) => out.push_str(v.source),
                Piece::Var(Var::SourceDigits) => out.push_str(digits(v.source)),
                Piece::Var(Var::Target) => out.push_str(v.target),
                Piece::Var(Var::TargetDigits) => {
                    if v.target.starts_with('+') {
                        out.push_str(digits(v.target));
                    }
                }
                Piece::Var(Var::Intercept) => out.push_str(v.intercept),
                Piece::Var(Var::Cause) => {
                    if let Some(c) = v.cause {
                        let _ = write!(out, "{c}");
                    }
                }
                Piece::Var(Var::Rule) => out.push_str(v.rule),
                Piece::Var(Var::Ruri) => out.push_str(v.ruri),
                Piece::Var(Var::RuriHost) => out.push_str(v.ruri_host),
            }
        }
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders() {
        let t = Template::parse("sip:{dest}@10.0.0.1;src={source_digits};r={rule}").unwrap();
        let mut out = String::new();
        t.render_into(
            &Values { dest: "+12125550100", source: "+13125550666", rule: "r1", ..Default::default() },
            &mut out,
        );
        assert_eq!(out, "sip:+12125550100@10.0.0.1;src=13125550666;r=r1");
        let t = Template::parse("sip:{cause}@reject.tollgate.invalid").unwrap();
        t.render_into(&Values { cause: Some(603), ..Default::default() }, &mut out);
        assert_eq!(out, "sip:603@reject.tollgate.invalid");
        assert!(t.uses(Var::Cause) && !t.uses(Var::Dest));
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("sip:{nope}@x").unwrap_err().contains("unknown placeholder {nope}"));
        assert!(Template::parse("sip:{dest@x").unwrap_err().contains("unclosed"));
        assert!(Template::parse("sip:dest}@x").unwrap_err().contains("stray"));
        assert!(Template::parse("sip:a!b").unwrap_err().contains("'!'"));
        assert!(Template::parse("").is_err());
    }
}
