//! ENUM domain names (RFC 6116 section 2.4): `+12125551234` under `e164.arpa.` is
//! `4.3.2.1.5.5.5.2.1.2.1.e164.arpa.`.
//!
//! Names are compared case-insensitively and with or without the trailing root dot.

use crate::{E164, NumberError};

/// A normalised ENUM suffix: lowercase, no leading dot, always ending in `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Suffix(String);

impl Suffix {
    /// Normalises a configured suffix (`e164.arpa`, `E164.ARPA.` and `.e164.arpa.` are all
    /// `e164.arpa.`). Rejects empty suffixes and labels longer than 63 octets.
    pub fn new(suffix: &str) -> Result<Self, NumberError> {
        let mut s = suffix.trim().trim_start_matches('.').to_ascii_lowercase();
        if !s.ends_with('.') {
            s.push('.');
        }
        if s == "." {
            return Err(NumberError::BadPlan(format!("ENUM suffix {suffix:?} is empty")));
        }
        for label in s.trim_end_matches('.').split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(NumberError::BadPlan(format!("ENUM suffix {suffix:?} has an empty or over-long label")));
            }
        }
        Ok(Suffix(s))
    }

    /// The standard public ENUM suffix, `e164.arpa.`.
    pub fn e164_arpa() -> Self {
        Suffix("e164.arpa.".to_string())
    }

    /// The suffix text, ending in `.`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Suffix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds the ENUM name of `number` under `suffix`.
pub fn to_enum_name(number: E164, suffix: &Suffix) -> String {
    let digits = number.digits();
    let mut out = String::with_capacity(digits.as_bytes().len() * 2 + suffix.as_str().len());
    for &d in digits.as_bytes().iter().rev() {
        out.push(d as char);
        out.push('.');
    }
    out.push_str(suffix.as_str());
    out
}

/// The labels of a name that sit in front of one of `suffixes`, most significant (leftmost)
/// label first, and the matched suffix. Returns `None` if the name is under none of them.
///
/// `name` may or may not end in `.`; comparison ignores ASCII case.
pub fn strip_suffix<'a, 's>(name: &'a str, suffixes: &'s [Suffix]) -> Option<(&'a str, &'s Suffix)> {
    let name = name.strip_suffix('.').unwrap_or(name);
    for suffix in suffixes {
        let sfx = suffix.as_str().trim_end_matches('.');
        if name.len() > sfx.len() + 1 {
            let split = name.len() - sfx.len();
            if name.is_char_boundary(split)
                && name[split..].eq_ignore_ascii_case(sfx)
                && name.as_bytes()[split - 1] == b'.'
            {
                return Some((&name[..split - 1], suffix));
            }
        } else if name.eq_ignore_ascii_case(sfx) {
            return Some(("", suffix));
        }
    }
    None
}

/// Reads a number from single-digit labels in ENUM (reversed) order, e.g. the part
/// `4.3.2.1.5.5.5.2.1.2.1` of an ENUM name. `name` is used in error messages.
pub fn number_from_reversed_labels(labels: &str, name: &str) -> Result<E164, NumberError> {
    let mut digits = [0u8; 16];
    let mut n = 0;
    for label in labels.rsplit('.') {
        let bytes = label.as_bytes();
        if bytes.len() != 1 || !bytes[0].is_ascii_digit() {
            return Err(NumberError::BadEnumLabel { name: name.to_string(), label: label.to_string() });
        }
        if n == digits.len() {
            return Err(NumberError::TooLong { input: name.to_string(), digits: n + 1 });
        }
        digits[n] = bytes[0];
        n += 1;
    }
    E164::from_digit_bytes(&digits[..n], name)
}

/// Parses a full ENUM name under one of `suffixes` into its number.
pub fn from_enum_name(name: &str, suffixes: &[Suffix]) -> Result<E164, NumberError> {
    let (labels, _) = strip_suffix(name, suffixes).ok_or_else(|| NumberError::OutsideSuffix {
        name: name.to_string(),
        suffixes: suffixes.iter().map(Suffix::as_str).collect::<Vec<_>>().join(", "),
    })?;
    if labels.is_empty() {
        return Err(NumberError::Empty);
    }
    number_from_reversed_labels(labels, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sfx(s: &str) -> Suffix {
        Suffix::new(s).unwrap()
    }

    #[test]
    fn rfc6116_example() {
        // RFC 6116 section 2.4: +44-20-7946-0148 -> 8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa.
        let n: E164 = "+442079460148".parse().unwrap();
        assert_eq!(to_enum_name(n, &sfx("e164.arpa")), "8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa.");
        assert_eq!(from_enum_name("8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa.", &[sfx("e164.arpa")]).unwrap(), n);
    }

    #[test]
    fn suffixes_normalise_and_match_case_insensitively() {
        let suffixes = [sfx(".E164.ARPA"), sfx("enum.example.net.")];
        assert_eq!(suffixes[0].as_str(), "e164.arpa.");
        let n = from_enum_name("4.3.2.1.5.5.5.2.1.2.1.E164.Arpa", &suffixes).unwrap();
        assert_eq!(n.to_string(), "+12125551234");
        let n = from_enum_name("4.3.2.1.5.5.5.2.1.2.1.enum.example.net.", &suffixes).unwrap();
        assert_eq!(n.to_string(), "+12125551234");
    }

    #[test]
    fn names_outside_or_malformed_are_errors() {
        let suffixes = [sfx("e164.arpa")];
        assert!(matches!(from_enum_name("4.3.2.1.example.com.", &suffixes), Err(NumberError::OutsideSuffix { .. })));
        assert!(matches!(from_enum_name("4.3.x.1.e164.arpa.", &suffixes), Err(NumberError::BadEnumLabel { .. })));
        assert!(matches!(from_enum_name("43.2.1.e164.arpa.", &suffixes), Err(NumberError::BadEnumLabel { .. })));
        assert!(matches!(from_enum_name("e164.arpa.", &suffixes), Err(NumberError::Empty)));
        assert!(matches!(
            from_enum_name("1.2.3.4.5.6.7.8.9.0.1.2.3.4.5.6.e164.arpa.", &suffixes),
            Err(NumberError::TooLong { .. })
        ));
        // A label ending in the suffix text but not on a label boundary is outside.
        assert!(strip_suffix("1.xe164.arpa.", &suffixes).is_none());
    }

    #[test]
    fn bad_suffixes_rejected() {
        assert!(Suffix::new("").is_err());
        assert!(Suffix::new(".").is_err());
        assert!(Suffix::new("a..b").is_err());
    }
}
