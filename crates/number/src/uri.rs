//! Telephone numbers carried in `sip:`, `sips:` and `tel:` URIs, as SBCs send them (for example
//! in the EDNS0 ENUM Source-URI option or a P-Asserted-Identity header).

use crate::{DialingPlan, E164, NumberError};

/// Extracts and normalises the telephone number of a URI.
///
/// * `tel:+1-212-555-1234;phone-context=...` -> the number before any parameter;
/// * `sip:+12125551234@host;user=phone`, `sips:2125551234@host` -> the user part, without
///   user parameters (`;npdi`, `;rn=` ...);
/// * a bare number (no scheme) is normalised as is.
///
/// Angle brackets and a display name (`"Alice" <sip:...>`) are tolerated.
pub fn number_from_uri(uri: &str, plan: &DialingPlan) -> Result<E164, NumberError> {
    let mut s = uri.trim();
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>'))
        && open < close
    {
        s = &s[open + 1..close];
    }
    let lower_scheme = s.get(..5).map(|p| p.to_ascii_lowercase());
    let user = match lower_scheme.as_deref() {
        Some("sips:") => user_part(&s[5..]),
        Some(p) if p.starts_with("sip:") => user_part(&s[4..]),
        Some(p) if p.starts_with("tel:") => &s[4..],
        _ if s.contains(':') || s.contains('@') => {
            return Err(NumberError::BadUri { uri: uri.to_string(), reason: "unsupported URI scheme" });
        }
        _ => s,
    };
    let number = user.split(';').next().unwrap_or_default();
    if number.is_empty() {
        return Err(NumberError::BadUri { uri: uri.to_string(), reason: "empty user part" });
    }
    plan.normalize(&percent_decode_plus(number))
}

/// The user part of a SIP URI body (`user@host...`), or the empty string when there is none.
fn user_part(rest: &str) -> &str {
    match rest.find('@') {
        Some(at) => &rest[..at],
        None => "",
    }
}

/// Decodes `%2B` (an escaped `+`), the one escape SBCs commonly put in number user parts.
fn percent_decode_plus(s: &str) -> String {
    s.replace("%2B", "+").replace("%2b", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        s.parse().unwrap()
    }

    #[test]
    fn extracts_from_common_uri_forms() {
        let plan = DialingPlan::nanp();
        for uri in [
            "sip:+12125551234@sbc.example.net;user=phone",
            "sip:2125551234@10.0.0.1:5060",
            "sips:12125551234@example.com",
            "SIP:+12125551234@example.com",
            "tel:+1-212-555-1234",
            "tel:+12125551234;npdi;rn=+12125550000",
            "\"Alice\" <sip:+12125551234;npdi@example.com>",
            "<sip:%2B12125551234@example.com>",
            "+12125551234",
        ] {
            assert_eq!(number_from_uri(uri, &plan).unwrap(), n("+12125551234"), "{uri}");
        }
    }

    #[test]
    fn rejects_uris_without_numbers() {
        let plan = DialingPlan::nanp();
        assert!(matches!(number_from_uri("sip:example.com", &plan), Err(NumberError::BadUri { .. })));
        assert!(matches!(number_from_uri("mailto:a@b", &plan), Err(NumberError::BadUri { .. })));
        assert!(matches!(number_from_uri("sip:alice@example.com", &plan), Err(NumberError::InvalidCharacter { .. })));
    }
}
