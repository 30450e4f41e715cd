//! The canonical E.164 number value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::NumberError;

/// Minimum digits of an accepted international number (country code + subscriber number).
pub(crate) const MIN_DIGITS: usize = 3;
/// Maximum digits E.164 allows.
pub(crate) const MAX_DIGITS: usize = 15;

/// A validated E.164 number: 3 to 15 digits, the first not zero.
///
/// Because the first digit is never zero, the digits are recovered exactly from the integer
/// value, so the number is stored as a `u64`. It displays as `+` followed by the digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(u64);

impl E164 {
    /// Builds a number from its digits (no `+`). Fails unless the input is 3..=15 ASCII digits
    /// with a non-zero first digit.
    pub fn from_digits(digits: &str) -> Result<Self, NumberError> {
        Self::from_digit_bytes(digits.as_bytes(), digits)
    }

    /// Same as [`E164::from_digits`] on bytes; `context` is the original input for messages.
    pub(crate) fn from_digit_bytes(digits: &[u8], context: &str) -> Result<Self, NumberError> {
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::TooLong { input: context.to_string(), digits: digits.len() });
        }
        if digits.len() < MIN_DIGITS {
            return Err(NumberError::TooShort { input: context.to_string(), digits: digits.len(), min: MIN_DIGITS });
        }
        if digits[0] == b'0' {
            return Err(NumberError::LeadingZero { input: context.to_string() });
        }
        let mut value: u64 = 0;
        for (position, &b) in digits.iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(NumberError::InvalidCharacter { input: context.to_string(), ch: b as char, position });
            }
            value = value * 10 + u64::from(b - b'0');
        }
        Ok(E164(value))
    }

    /// The number as an integer (the digits read as a decimal number).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds a number from [`E164::as_u64`]. Returns `None` if the value has fewer than 3 or
    /// more than 15 digits.
    pub fn from_u64(value: u64) -> Option<Self> {
        let len = decimal_len(value);
        (MIN_DIGITS..=MAX_DIGITS).contains(&len).then_some(E164(value))
    }

    /// The digits without `+`, most significant first, in a fixed buffer (no allocation).
    pub fn digits(self) -> Digits {
        let len = decimal_len(self.0);
        let mut buf = [0u8; MAX_DIGITS];
        let mut v = self.0;
        for slot in buf[..len].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        Digits { buf, len: len as u8 }
    }

    /// Number of digits (3..=15).
    pub fn len(self) -> usize {
        decimal_len(self.0)
    }

    /// Always false: an `E164` has at least three digits. Present for API symmetry with `len`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// True if the number's digits start with `prefix` (digits only, no `+`).
    pub fn starts_with(self, prefix: &str) -> bool {
        self.digits().as_str().starts_with(prefix)
    }
}

/// Number of decimal digits of `v` (0 has one digit).
fn decimal_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// The digits of an [`E164`] in a stack buffer.
#[derive(Clone, Copy)]
pub struct Digits {
    buf: [u8; MAX_DIGITS],
    len: u8,
}

impl Digits {
    /// The digits as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written into the buffer.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }

    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164(+{})", self.0)
    }
}

impl FromStr for E164 {
    type Err = NumberError;

    /// Parses strict E.164 text: `+` followed by digits. Use [`crate::DialingPlan::normalize`]
    /// for anything else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        match trimmed.strip_prefix('+') {
            Some(rest) => Self::from_digit_bytes(rest.as_bytes(), s),
            None if trimmed.is_empty() => Err(NumberError::Empty),
            None => Err(NumberError::BadUri { uri: s.to_string(), reason: "E.164 text must start with '+'" }),
        }
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_digits_and_integer() {
        let n = E164::from_digits("12125551234").unwrap();
        assert_eq!(n.to_string(), "+12125551234");
        assert_eq!(n.digits().as_str(), "12125551234");
        assert_eq!(n.len(), 11);
        assert_eq!(E164::from_u64(n.as_u64()), Some(n));
    }

    #[test]
    fn rejects_bad_digit_strings() {
        assert!(matches!(E164::from_digits(""), Err(NumberError::Empty)));
        assert!(matches!(E164::from_digits("12"), Err(NumberError::TooShort { .. })));
        assert!(matches!(E164::from_digits("1234567890123456"), Err(NumberError::TooLong { .. })));
        assert!(matches!(E164::from_digits("0123"), Err(NumberError::LeadingZero { .. })));
        assert!(matches!(E164::from_digits("12a4"), Err(NumberError::InvalidCharacter { ch: 'a', position: 2, .. })));
    }

    #[test]
    fn fifteen_digits_fit() {
        let n = E164::from_digits("999999999999999").unwrap();
        assert_eq!(n.digits().as_str(), "999999999999999");
    }

    #[test]
    fn parses_plus_form_and_serde() {
        let n: E164 = "+442079460000".parse().unwrap();
        assert_eq!(n.as_u64(), 442079460000);
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+442079460000\"");
        let back: E164 = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        assert!("442079460000".parse::<E164>().is_err());
    }

    #[test]
    fn prefix_test_uses_digits() {
        let n: E164 = "+12125551234".parse().unwrap();
        assert!(n.starts_with("1212"));
        assert!(!n.starts_with("1213"));
    }
}
