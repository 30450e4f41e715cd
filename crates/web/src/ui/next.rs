//! Where to go after login: only a path on this server.
//!
//! Browsers are generous with what they take for another site: `//evil`, `/\evil`, `\\evil`,
//! `/<TAB>/evil` (tabs and newlines are dropped) all leave the origin. A `next` target is
//! accepted only if
//! - it has at most [`MAX_NEXT`] bytes,
//! - it starts with one `/` not followed by `/` or `\`,
//! - it holds no backslash, whitespace or control character,
//! - percent-decoded once (by anything that decodes it again) it still starts that way and
//!   holds no backslash or control character, and
//! - a WHATWG URL parser resolving it against this server stays on this server.
//!
//! Anything else goes to `/`.

use url::Url;

/// Longest `next` target kept.
pub const MAX_NEXT: usize = 2048;

/// One `/` not followed by `/` or `\`, and no backslash or control character anywhere.
fn rooted_path(s: &str) -> bool {
    s.starts_with('/')
        && !matches!(s.as_bytes().get(1), Some(b'/' | b'\\'))
        && !s.chars().any(|c| c == '\\' || c.is_control())
}

fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// True if `next` is a path on this server.
pub fn is_local(next: &str) -> bool {
    const HERE: &str = "http://tollgate.invalid/";
    if next.len() > MAX_NEXT
        || !rooted_path(next)
        || next.chars().any(char::is_whitespace)
        || !rooted_path(&percent_decoded(next))
    {
        return false;
    }
    let Ok(base) = Url::parse(HERE) else { return false };
    base.join(next).is_ok_and(|u| u.origin() == base.origin() && u.username().is_empty() && u.password().is_none())
}

/// The target to redirect to after login: `next` when it is local, else `/`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if is_local(n) => n,
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_server_are_followed() {
        for ok in
            ["/", "/policies", "/analytics?dataset=ENUM&view=Top+10+Source", "/policies/diff?from=1&to=2", "/a%20b"]
        {
            assert!(is_local(ok), "{ok:?} refused");
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for evil in [
            "/\\evil.example",
            "//evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "%2F%2Fevil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/%09/evil.example",
            "/%0A/evil.example",
            "/\u{0000}/evil.example",
            "/\u{3000}/evil.example",
            "/ok\\..\\evil",
            "/ok#\\evil",
        ] {
            assert!(!is_local(evil), "{evil:?} accepted");
            assert_eq!(safe_next(Some(evil)), "/");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(MAX_NEXT)))), "/");
    }
}
