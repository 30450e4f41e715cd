//! Numbers as the charts and tables print them: thousands separators everywhere, a few
//! decimals only where the value has them.

/// A whole number with thousands separators (`1234567` -> `1,234,567`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value for a label: whole values with thousands separators, values of 10 or more with
/// one decimal, smaller ones with up to three (trailing zeros left out); `–` for a value that
/// is not a number.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    let text = if a == a.trunc() && a < 1e15 {
        thousands(a as u64)
    } else if a >= 10.0 {
        let tenths = (a * 10.0).round() as u64;
        if tenths.is_multiple_of(10) {
            thousands(tenths / 10)
        } else {
            format!("{}.{}", thousands(tenths / 10), tenths % 10)
        }
    } else {
        let s = format!("{a:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    };
    if text == "0" { text } else { format!("{sign}{text}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separate_every_third_digit() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (12_345, "12,345"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, text) in cases {
            assert_eq!(thousands(n), text);
        }
        // Every number up to 10^7: the digits are the number's, groups of three after the first.
        for n in (0..10_000_000u64).step_by(997) {
            let t = thousands(n);
            assert_eq!(t.replace(',', ""), n.to_string());
            let groups: Vec<&str> = t.split(',').collect();
            assert!((1..=3).contains(&groups[0].len()), "{t}");
            assert!(groups[1..].iter().all(|g| g.len() == 3), "{t}");
        }
    }

    #[test]
    fn values_print_with_separators_and_few_decimals() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (12.0, "12"),
            (12345.0, "12,345"),
            (12345.67, "12,345.7"),
            (12345.96, "12,346"),
            (10.04, "10"),
            (0.5, "0.5"),
            (0.0167, "0.017"),
            (0.0004, "0"),
            (2.25, "2.25"),
            (-1234.0, "-1,234"),
            (f64::NAN, "–"),
            (f64::INFINITY, "–"),
        ];
        for (v, text) in cases {
            assert_eq!(number(v), text, "{v}");
        }
    }
}
