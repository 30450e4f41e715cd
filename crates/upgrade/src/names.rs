//! Text made safe to use as (part of) a file name or a query-string word.

/// `text` with every character other than an ASCII letter, a digit, `.`, `-` or `_` replaced
/// by `_` (no `/`, no spaces, nothing a URL or a shell would need to escape).
pub fn file_word(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_safe_characters() {
        assert_eq!(super::file_word("pre-upgrade 2.0.0/x_y"), "pre-upgrade_2.0.0_x_y");
    }
}
