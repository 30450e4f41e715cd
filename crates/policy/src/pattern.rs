//! Number patterns a rule matches a source or destination against.

use tollgate_number::{DialingPlan, E164};

/// One way a rule names numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumberPattern {
    /// Every number (and an absent calling number).
    Any,
    /// Exactly this number.
    Exact(E164),
    /// Every number whose digits start with these digits (`+1212*`).
    Prefix(String),
    /// Every number in the named list.
    List(String),
}

impl NumberPattern {
    /// Parses `any`, `*`, `list:NAME`, `+DIGITS*` (prefix) or a number in any form the dialing
    /// plan accepts.
    pub(crate) fn parse(text: &str, plan: &DialingPlan) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("any") || t == "*" {
            return Ok(NumberPattern::Any);
        }
        if let Some(name) = t.strip_prefix("list:") {
            let name = name.trim();
            if name.is_empty() {
                return Err("`list:` needs a list name, e.g. \"list:robocallers\"".into());
            }
            return Ok(NumberPattern::List(name.to_string()));
        }
        if let Some(prefix) = t.strip_suffix('*') {
            let digits: String = prefix
                .strip_prefix('+')
                .ok_or_else(|| format!("prefix {t:?} must be in international form, e.g. \"+1212*\""))?
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("prefix {t:?} must be '+', 1 to 15 digits and '*'"));
            }
            if digits.starts_with('0') {
                return Err(format!("prefix {t:?}: country codes never start with 0"));
            }
            return Ok(NumberPattern::Prefix(digits));
        }
        plan.normalize(t).map(NumberPattern::Exact).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        let plan = DialingPlan::nanp();
        assert_eq!(NumberPattern::parse("any", &plan), Ok(NumberPattern::Any));
        assert_eq!(NumberPattern::parse("*", &plan), Ok(NumberPattern::Any));
        assert_eq!(NumberPattern::parse("list:robo", &plan), Ok(NumberPattern::List("robo".into())));
        assert_eq!(NumberPattern::parse("+1 212*", &plan), Ok(NumberPattern::Prefix("1212".into())));
        assert_eq!(
            NumberPattern::parse("212-555-1234", &plan),
            Ok(NumberPattern::Exact("+12125551234".parse().unwrap()))
        );
    }

    #[test]
    fn rejects_bad_forms_with_reasons() {
        let plan = DialingPlan::nanp();
        assert!(NumberPattern::parse("212*", &plan).unwrap_err().contains("international form"));
        assert!(NumberPattern::parse("+*", &plan).is_err());
        assert!(NumberPattern::parse("+0*", &plan).is_err());
        assert!(NumberPattern::parse("list:", &plan).is_err());
        assert!(NumberPattern::parse("12x", &plan).unwrap_err().contains("'x'"));
    }
}
