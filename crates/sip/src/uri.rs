//! The parts of name-addrs and URIs a probe needs: the URI, the tag, the user part.

/// A From/To/P-Asserted-Identity value: `"Display" <uri>;params` or `uri;params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, without quotes.
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: &'a str,
    /// The `tag` parameter.
    pub tag: Option<&'a str>,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Reads a name-addr or addr-spec. Only the first of comma-separated values is read.
pub fn name_addr(value: &str) -> NameAddr<'_> {
    let v = value.trim_matches(is_ws);
    let (display, uri, params) = match (v.find('<'), v.find('>')) {
        (Some(open), Some(close)) if open < close => {
            let display = v[..open].trim_matches(is_ws).trim_matches('"');
            (Some(display).filter(|d| !d.is_empty()), &v[open + 1..close], &v[close + 1..])
        }
        _ => {
            // addr-spec: parameters after the URI belong to the header.
            let end = v.find([';', ',']).unwrap_or(v.len());
            (None, &v[..end], &v[end..])
        }
    };
    let params = params.split(',').next().unwrap_or("");
    let tag = params
        .split(';')
        .map(|p| p.trim_matches(is_ws))
        .find_map(|p| {
            // Parameter names are case-insensitive, and `=` may have whitespace around it
            // (RFC 3261 7.3.1, 25.1 EQUAL).
            let (name, value) = p.split_once('=')?;
            name.trim_matches(is_ws).eq_ignore_ascii_case("tag").then(|| value.trim_matches(is_ws))
        })
        .filter(|t| !t.is_empty());
    NameAddr { display, uri: uri.trim_matches(is_ws), tag }
}

/// The user part of a `sip:`/`sips:` URI (without user parameters), or the number of a `tel:`
/// URI.
pub fn user_part(uri: &str) -> Option<&str> {
    let uri = uri.trim_matches(is_ws);
    let lower3 = uri.get(..4).map(|s| s.to_ascii_lowercase());
    let rest = match lower3.as_deref() {
        Some("sip:") => &uri[4..],
        Some("sips") if uri.get(4..5) == Some(":") => &uri[5..],
        Some("tel:") => return Some(uri[4..].split(';').next().unwrap_or("")).filter(|s| !s.is_empty()),
        _ => return None,
    };
    let at = rest.find('@')?;
    Some(rest[..at].split(';').next().unwrap_or("")).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a = name_addr("\"Alice Smith\" <sip:+13125550666@10.0.0.2;user=phone>;tag=abc123");
        assert_eq!(
            a,
            NameAddr { display: Some("Alice Smith"), uri: "sip:+13125550666@10.0.0.2;user=phone", tag: Some("abc123") }
        );
        let b = name_addr("sip:bob@example.com;tag=9");
        assert_eq!(b, NameAddr { display: None, uri: "sip:bob@example.com", tag: Some("9") });
        let c = name_addr("<sip:c@d>\r\n ;tag=2");
        assert_eq!(c.tag, Some("2"));
        assert_eq!(name_addr("<tel:+12125550100>").uri, "tel:+12125550100");
        assert_eq!(name_addr("").uri, "");
    }

    #[test]
    fn the_tag_parameter_name_is_case_insensitive() {
        for (value, tag) in [
            ("<sip:a@b>;Tag=x1", Some("x1")),
            ("<sip:a@b>;TAG=x2", Some("x2")),
            ("<sip:a@b>;tAg=x3;other=1", Some("x3")),
            ("<sip:a@b> ; tag = x4", Some("x4")),
            ("sip:a@b;Tag=x5", Some("x5")),
            ("<sip:a@b>;tagx=no", None),
            ("<sip:a@b>;xtag=no", None),
            ("<sip:a@b;tag=in-uri>", None),
            ("<sip:a@b>;tag=", None),
        ] {
            assert_eq!(name_addr(value).tag, tag, "{value}");
        }
    }

    #[test]
    fn user_parts() {
        assert_eq!(user_part("sip:+12125550100@10.0.0.1:5060"), Some("+12125550100"));
        assert_eq!(user_part("SIPS:alice;npdi@example.com"), Some("alice"));
        assert_eq!(user_part("tel:+1-212-555-0100;phone-context=x"), Some("+1-212-555-0100"));
        assert_eq!(user_part("sip:example.com"), None);
        assert_eq!(user_part("mailto:a@b"), None);
        assert_eq!(user_part("sip:@host"), None);
    }
}
