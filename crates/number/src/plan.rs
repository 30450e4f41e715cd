//! Dialing plans: how a network writes numbers, and how to turn that into E.164.

use serde::{Deserialize, Serialize};

use crate::e164::{MAX_DIGITS, MIN_DIGITS};
use crate::{E164, NumberError};

/// The local numbering conventions of one network.
///
/// With the North American plan (the default), `2125551234`, `12125551234`, `+12125551234`,
/// `0112125551234` and `(212) 555-1234` all normalise to `+12125551234`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialingPlan {
    /// Country calling code of this network, digits only (e.g. `1`, `44`).
    pub country_code: String,
    /// National (trunk) prefix dialled before a national number (`1` in NANP, `0` in most of
    /// Europe); empty when the network has none.
    #[serde(default)]
    pub national_prefix: String,
    /// International prefix dialled before a country code (`011` in NANP, `00` in Europe).
    pub international_prefix: String,
    /// Accepted lengths of a national significant number (10 in NANP).
    pub national_number_lengths: Vec<usize>,
}

impl Default for DialingPlan {
    fn default() -> Self {
        Self::nanp()
    }
}

impl DialingPlan {
    /// The North American Numbering Plan: country code 1, trunk prefix 1, international
    /// prefix 011, ten-digit national numbers.
    pub fn nanp() -> Self {
        DialingPlan {
            country_code: "1".into(),
            national_prefix: "1".into(),
            international_prefix: "011".into(),
            national_number_lengths: vec![10],
        }
    }

    /// Checks the plan's own settings: digits only, a country code of 1 to 3 digits not
    /// starting with 0, and national lengths that leave room for the country code.
    pub fn validate(&self) -> Result<(), NumberError> {
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if self.country_code.is_empty()
            || self.country_code.len() > 3
            || !digits_only(&self.country_code)
            || self.country_code.starts_with('0')
        {
            return Err(NumberError::BadPlan(format!(
                "country_code {:?} must be 1 to 3 digits, not starting with 0",
                self.country_code
            )));
        }
        if !digits_only(&self.national_prefix) {
            return Err(NumberError::BadPlan(format!("national_prefix {:?} must be digits", self.national_prefix)));
        }
        if self.international_prefix.is_empty() || !digits_only(&self.international_prefix) {
            return Err(NumberError::BadPlan(format!(
                "international_prefix {:?} must be one or more digits",
                self.international_prefix
            )));
        }
        if self.national_number_lengths.is_empty() {
            return Err(NumberError::BadPlan("national_number_lengths is empty".into()));
        }
        for &len in &self.national_number_lengths {
            let total = len + self.country_code.len();
            if len == 0 || !(MIN_DIGITS..=MAX_DIGITS).contains(&total) {
                return Err(NumberError::BadPlan(format!(
                    "national number length {len} with country code {} gives {total} digits; \
                     E.164 numbers have {MIN_DIGITS} to {MAX_DIGITS}",
                    self.country_code
                )));
            }
        }
        Ok(())
    }

    /// Normalises what a person or an SBC wrote for a number into E.164.
    ///
    /// Accepted, in this order: `+` and international digits; the international prefix and
    /// international digits; the national prefix and a national number; a bare national
    /// number. Spaces, `-`, `.`, `(` and `)` are ignored. A `tel:`/`sip:` URI is not accepted
    /// here: use [`crate::uri::number_from_uri`].
    pub fn normalize(&self, input: &str) -> Result<E164, NumberError> {
        let mut digits = [0u8; 64];
        let mut n = 0usize;
        let mut plus = false;
        for (position, ch) in input.trim().chars().enumerate() {
            match ch {
                '0'..='9' => {
                    if n == digits.len() {
                        return Err(NumberError::TooLong { input: input.to_string(), digits: n + 1 });
                    }
                    digits[n] = ch as u8;
                    n += 1;
                }
                '+' if n == 0 && !plus => plus = true,
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(NumberError::InvalidCharacter { input: input.to_string(), ch, position });
                }
            }
        }
        let digits = &digits[..n];
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if plus {
            return E164::from_digit_bytes(digits, input);
        }
        let intl = self.international_prefix.as_bytes();
        if let Some(rest) = digits.strip_prefix(intl)
            && !rest.is_empty()
        {
            return E164::from_digit_bytes(rest, input);
        }
        let national = self.national_prefix.as_bytes();
        if !national.is_empty()
            && let Some(rest) = digits.strip_prefix(national)
            && self.national_number_lengths.contains(&rest.len())
        {
            return self.with_country_code(rest, input);
        }
        if self.national_number_lengths.contains(&digits.len()) {
            return self.with_country_code(digits, input);
        }
        Err(NumberError::NotInPlan {
            input: input.to_string(),
            digits: digits.len(),
            expected: self.national_number_lengths.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(" or "),
            intl: self.international_prefix.clone(),
        })
    }

    fn with_country_code(&self, national: &[u8], input: &str) -> Result<E164, NumberError> {
        let mut buf = [0u8; 32];
        let cc = self.country_code.as_bytes();
        let total = cc.len() + national.len();
        if total > buf.len() {
            return Err(NumberError::TooLong { input: input.to_string(), digits: total });
        }
        buf[..cc.len()].copy_from_slice(cc);
        buf[cc.len()..total].copy_from_slice(national);
        E164::from_digit_bytes(&buf[..total], input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> E164 {
        s.parse().unwrap()
    }

    #[test]
    fn nanp_forms_all_mean_the_same_number() {
        let plan = DialingPlan::nanp();
        for input in [
            "2125551234",
            "12125551234",
            "+12125551234",
            "01112125551234",
            "(212) 555-1234",
            "1-212-555-1234",
            " +1 212.555.1234 ",
        ] {
            assert_eq!(plan.normalize(input).unwrap(), e("+12125551234"), "{input}");
        }
    }

    #[test]
    fn nanp_international_prefix_reaches_other_countries() {
        let plan = DialingPlan::nanp();
        assert_eq!(plan.normalize("011442079460000").unwrap(), e("+442079460000"));
        // After 011 come the country code and number: 011 212 5551234 is Morocco (+212), not
        // New York. New York in international form is 011 1 212 555 1234 (tested above).
        assert_eq!(plan.normalize("0112125551234").unwrap(), e("+2125551234"));
    }

    #[test]
    fn european_plan_with_zero_trunk_prefix() {
        let plan = DialingPlan {
            country_code: "44".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            national_number_lengths: vec![9, 10],
        };
        plan.validate().unwrap();
        assert_eq!(plan.normalize("020 7946 0000").unwrap(), e("+442079460000"));
        assert_eq!(plan.normalize("00442079460000").unwrap(), e("+442079460000"));
        assert_eq!(plan.normalize("0012125551234").unwrap(), e("+12125551234"));
        assert_eq!(plan.normalize("+44 20 7946 0000").unwrap(), e("+442079460000"));
    }

    #[test]
    fn errors_name_the_problem() {
        let plan = DialingPlan::nanp();
        let err = plan.normalize("212555x234").unwrap_err();
        assert!(matches!(err, NumberError::InvalidCharacter { ch: 'x', position: 6, .. }), "{err:?}");
        assert!(err.to_string().contains("'x'"));
        let err = plan.normalize("5551234").unwrap_err();
        assert!(matches!(err, NumberError::NotInPlan { digits: 7, .. }), "{err:?}");
        assert!(err.to_string().contains("10 digits"), "{err}");
        assert!(matches!(plan.normalize("  "), Err(NumberError::Empty)));
        assert!(matches!(plan.normalize("+1234567890123456"), Err(NumberError::TooLong { .. })));
        assert!(matches!(plan.normalize("+0123456"), Err(NumberError::LeadingZero { .. })));
        assert!(matches!(plan.normalize("++12125551234"), Err(NumberError::InvalidCharacter { .. })));
        assert!(matches!(plan.normalize("011"), Err(NumberError::NotInPlan { .. })));
    }

    #[test]
    fn bad_plans_are_rejected() {
        let mut plan = DialingPlan::nanp();
        plan.country_code = "0".into();
        assert!(plan.validate().is_err());
        let mut plan = DialingPlan::nanp();
        plan.national_number_lengths = vec![20];
        assert!(plan.validate().is_err());
        let mut plan = DialingPlan::nanp();
        plan.international_prefix = "".into();
        assert!(plan.validate().is_err());
        DialingPlan::nanp().validate().unwrap();
    }
}
