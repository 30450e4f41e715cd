//! Fitting text into a chart without a font engine: an upper estimate of a label's width in
//! the font the stylesheet sets for chart text (DejaVu Sans, else Verdana, which is as wide),
//! and truncation with an ellipsis when a label would not fit (the full text then goes into
//! the element's `<title>`).

/// Width of `c` in DejaVu Sans, in em, rounded up.
fn char_em(c: char) -> f64 {
    match c {
        'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' | 'I' => 0.34,
        ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.45,
        'm' | 'w' | 'M' | 'W' | '@' | '%' => 1.0,
        'A'..='Z' => 0.80,
        '0'..='9' | 'a'..='z' | '+' | '#' | '_' | '=' | '<' | '>' => 0.66,
        c if c.is_ascii() => 0.66,
        // Arrows, accented and other letters; wide scripts take a full em or more.
        _ => 1.1,
    }
}

/// An upper estimate of the width of `text` at `font_px` (in the SVG's user units).
pub fn width(text: &str, font_px: f64) -> f64 {
    text.chars().map(char_em).sum::<f64>() * font_px
}

/// `text` if it fits into `max` user units at `font_px`; else its longest prefix that fits with
/// `…` after it. The second value is true when the text was shortened.
pub fn fit(text: &str, font_px: f64, max: f64) -> (String, bool) {
    if width(text, font_px) <= max {
        return (text.to_string(), false);
    }
    let budget = max - char_em('…') * font_px;
    let mut used = 0.0;
    let mut out = String::new();
    for c in text.chars() {
        let w = char_em(c) * font_px;
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_grow_with_the_text_and_the_font() {
        assert_eq!(width("", 12.0), 0.0);
        assert!(width("reject-known-robocallers", 12.0) > width("reject", 12.0));
        assert!(width("WWW", 12.0) > width("iii", 12.0));
        assert_eq!(width("abc", 24.0), 2.0 * width("abc", 12.0));
        // A 40-character rule name at 12 px needs about 300 units: the estimate is not below
        // what DejaVu Sans draws (0.6 em per lower-case letter on average).
        let name = "reject-known-robocallers-and-spoofed-cli";
        assert_eq!(name.len(), 40);
        assert!(width(name, 12.0) >= 0.6 * 12.0 * 40.0 * 0.9);
    }

    #[test]
    fn labels_that_fit_are_kept_and_others_end_in_an_ellipsis_within_the_room() {
        let texts = ["", "a", "block-browser-test → terminate", "+12125550155", "Ünïcödé → ok", &"x".repeat(300)];
        for text in texts {
            for max in [0.0, 5.0, 20.0, 100.0, 230.0, 400.0, 5000.0] {
                let (shown, cut) = fit(text, 12.0, max);
                if cut {
                    assert!(shown.ends_with('…'), "{shown}");
                    let kept = shown.trim_end_matches('…');
                    assert!(text.starts_with(kept), "{text:?} -> {shown:?}");
                    assert!(width(&shown, 12.0) <= max.max(width("…", 12.0)), "{shown:?} wider than {max}");
                } else {
                    assert_eq!(shown, text);
                    assert!(width(text, 12.0) <= max);
                }
            }
        }
    }
}
