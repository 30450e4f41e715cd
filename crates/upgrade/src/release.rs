//! Release names ("0.2.0", "12.4.0.0.0_41.1.0") and the patterns a bundle upgrades from
//! ("0.1.x", as seed 000 writes its upgrade paths: "Policy Management 12.2.x to 12.4").
//!
//! A release is an opaque, validated name: the Upgrade Director only ever compares releases for
//! equality (the procedure's target against what a server runs), so no ordering is defined.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest release name accepted.
pub const MAX_RELEASE_LEN: usize = 64;

/// A release name: 1 to [`MAX_RELEASE_LEN`] characters of `A-Z a-z 0-9 . _ - +`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Release(String);

/// Why a release name or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid release {text:?}: {reason}")]
pub struct ReleaseError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn check(text: &str) -> Result<(), ReleaseError> {
    let reason = if text.is_empty() {
        "empty"
    } else if text.len() > MAX_RELEASE_LEN {
        "longer than 64 characters"
    } else if !text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')) {
        "only letters, digits and . _ - + are allowed"
    } else if !text.chars().any(|c| c.is_ascii_alphanumeric()) {
        // "." and ".." would name directories other than a release's own.
        "at least one letter or digit is needed"
    } else {
        return Ok(());
    };
    Err(ReleaseError { text: text.to_string(), reason })
}

impl Release {
    /// Parses a release name.
    pub fn new(text: &str) -> Result<Self, ReleaseError> {
        check(text)?;
        Ok(Release(text.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Release {
    type Error = ReleaseError;
    fn try_from(text: String) -> Result<Self, ReleaseError> {
        check(&text)?;
        Ok(Release(text))
    }
}

impl From<Release> for String {
    fn from(r: Release) -> String {
        r.0
    }
}

impl std::str::FromStr for Release {
    type Err = ReleaseError;
    fn from_str(s: &str) -> Result<Self, ReleaseError> {
        Release::new(s)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A release or a family of releases: `0.1.4` (exactly), `0.1.x` or `0.1.*` (every release
/// that starts with `0.1.`), `*` (any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleasePattern(String);

impl ReleasePattern {
    /// Parses a pattern.
    pub fn new(text: &str) -> Result<Self, ReleaseError> {
        if text == "*" {
            return Ok(ReleasePattern(text.to_string()));
        }
        let stem = text.strip_suffix(".x").or_else(|| text.strip_suffix(".*")).unwrap_or(text);
        check(stem)?;
        if stem.contains('*') {
            return Err(ReleaseError { text: text.to_string(), reason: "a wildcard may only end the pattern" });
        }
        Ok(ReleasePattern(text.to_string()))
    }

    /// Whether `release` belongs to the pattern.
    pub fn matches(&self, release: &Release) -> bool {
        let p = self.0.as_str();
        if p == "*" {
            return true;
        }
        match p.strip_suffix(".x").or_else(|| p.strip_suffix(".*")) {
            Some(stem) => {
                release.as_str().len() > stem.len() + 1
                    && release.as_str().starts_with(stem)
                    && release.as_str().as_bytes().get(stem.len()) == Some(&b'.')
            }
            None => release.as_str() == p,
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReleasePattern {
    type Error = ReleaseError;
    fn try_from(text: String) -> Result<Self, ReleaseError> {
        ReleasePattern::new(&text)
    }
}

impl From<ReleasePattern> for String {
    fn from(p: ReleasePattern) -> String {
        p.0
    }
}

impl fmt::Display for ReleasePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `release` matches one of `patterns`.
pub fn matches_any(patterns: &[ReleasePattern], release: &Release) -> bool {
    patterns.iter().any(|p| p.matches(release))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Release {
        Release::new(s).unwrap()
    }

    #[test]
    fn release_names_are_validated() {
        assert!(Release::new("12.4.0.0.0_41.1.0").is_ok());
        assert!(Release::new("0.2.0+build.7").is_ok());
        assert!(Release::new("").is_err());
        assert!(Release::new("0.1 beta").is_err());
        assert!(Release::new("../etc").is_err());
        assert!(Release::new("..").is_err() && Release::new(".").is_err(), "directory names");
        assert!(Release::new(&"1".repeat(65)).is_err());
        let err = serde_json::from_str::<Release>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("only letters"), "{err}");
    }

    #[test]
    fn patterns_match_families() {
        let p = ReleasePattern::new("0.1.x").unwrap();
        assert!(p.matches(&r("0.1.0")));
        assert!(p.matches(&r("0.1.12")));
        assert!(!p.matches(&r("0.1")));
        assert!(!p.matches(&r("0.10.1")));
        assert!(!p.matches(&r("0.2.0")));
        let exact = ReleasePattern::new("0.2.0").unwrap();
        assert!(exact.matches(&r("0.2.0")));
        assert!(!exact.matches(&r("0.2.01")));
        assert!(ReleasePattern::new("*").unwrap().matches(&r("anything")));
        assert!(ReleasePattern::new("0.*.1").is_err());
        assert!(ReleasePattern::new("12.2.*").unwrap().matches(&r("12.2.1.0.0_6.1.0")));
    }
}
