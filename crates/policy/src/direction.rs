//! Internal number ranges and the call direction they imply.
//!
//! A range is either a prefix (`+1212555`, every number starting so, of any length) or a span
//! of same-length numbers (`+12125550000` to `+12125550999`). Spans are decomposed into the
//! smallest set of prefixes that covers exactly them, so classification is a digit-trie walk.

use tollgate_number::E164;

use crate::decision::Direction;
use crate::trie::DigitTrie;

/// One internal range as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InternalRange {
    /// Every number whose digits start with these digits.
    Prefix(String),
    /// Every number of the same length between the two, inclusive.
    Span { from: E164, to: E164 },
}

/// A covering prefix, with the exact number length it applies to (`None`: any length).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cover {
    prefix: String,
    len: Option<usize>,
}

impl InternalRange {
    fn covers(&self) -> Vec<Cover> {
        match self {
            InternalRange::Prefix(p) => vec![Cover { prefix: p.clone(), len: None }],
            InternalRange::Span { from, to } => {
                let (lo, hi) = (from.digits(), to.digits());
                let mut out = Vec::new();
                cover_span(lo.as_str(), hi.as_str(), &mut out);
                let len = lo.as_str().len();
                out.into_iter().map(|prefix| Cover { prefix, len: Some(len) }).collect()
            }
        }
    }

    /// True when some number belongs to both ranges.
    pub(crate) fn overlaps(&self, other: &InternalRange) -> bool {
        let (a, b) = (self.covers(), other.covers());
        a.iter().any(|x| b.iter().any(|y| covers_overlap(x, y)))
    }
}

fn covers_overlap(x: &Cover, y: &Cover) -> bool {
    let nested = x.prefix.starts_with(&y.prefix) || y.prefix.starts_with(&x.prefix);
    if !nested {
        return false;
    }
    let longest = x.prefix.len().max(y.prefix.len());
    match (x.len, y.len) {
        (None, None) => true,
        (Some(l), None) | (None, Some(l)) => longest <= l,
        (Some(l), Some(m)) => l == m,
    }
}

/// Appends the minimal prefixes covering every digit string of `lo.len()` digits in `lo..=hi`.
/// `lo` and `hi` have the same length and `lo <= hi`.
fn cover_span(lo: &str, hi: &str, out: &mut Vec<String>) {
    if lo == hi {
        out.push(lo.to_string());
        return;
    }
    let i = lo.bytes().zip(hi.bytes()).take_while(|(a, b)| a == b).count();
    let common = &lo[..i];
    let (l, h) = (lo.as_bytes()[i], hi.as_bytes()[i]);
    let lo_rest_zero = lo[i + 1..].bytes().all(|b| b == b'0');
    let hi_rest_nine = hi[i + 1..].bytes().all(|b| b == b'9');
    if lo_rest_zero && hi_rest_nine && l == b'0' && h == b'9' {
        out.push(common.to_string());
        return;
    }
    let rest = lo.len() - i - 1;
    if lo_rest_zero {
        out.push(format!("{common}{}", l as char));
    } else {
        cover_span(lo, &format!("{common}{}{}", l as char, "9".repeat(rest)), out);
    }
    for d in (l + 1)..h {
        out.push(format!("{common}{}", d as char));
    }
    if hi_rest_nine {
        out.push(format!("{common}{}", h as char));
    } else {
        cover_span(&format!("{common}{}{}", h as char, "0".repeat(rest)), hi, out);
    }
}

/// Decides whether numbers are internal, and so the direction of calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirectionClassifier {
    trie: DigitTrie<Vec<Option<usize>>>,
}

impl DirectionClassifier {
    pub(crate) fn new(ranges: &[InternalRange]) -> Self {
        let mut trie: DigitTrie<Vec<Option<usize>>> = DigitTrie::default();
        for range in ranges {
            for cover in range.covers() {
                trie.entry(cover.prefix.as_bytes(), Vec::new).push(cover.len);
            }
        }
        DirectionClassifier { trie }
    }

    /// True if `number` is in one of the internal ranges.
    pub(crate) fn is_internal(&self, number: E164) -> bool {
        let digits = number.digits();
        let len = digits.as_bytes().len();
        let mut internal = false;
        self.trie.for_each_prefix_of(digits.as_bytes(), |_, lens| {
            internal |= lens.iter().any(|l| l.is_none_or(|l| l == len));
        });
        internal
    }

    /// The direction of a call from `source` (unknown callers count as external) to
    /// `destination`.
    pub(crate) fn classify(&self, source: Option<E164>, destination: E164) -> Direction {
        let from_inside = source.is_some_and(|s| self.is_internal(s));
        match (from_inside, self.is_internal(destination)) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::Transit,
        }
    }
}

/// Internal number ranges given as text (`+1212555*` prefixes or `+12125550000-+12125550999`
/// spans), for components that classify calls without a policy (the probe).
#[derive(Debug, Clone, Default)]
pub struct InternalNumbers {
    classifier: DirectionClassifier,
}

impl InternalNumbers {
    /// Parses the ranges; the error names the bad one.
    pub fn parse(ranges: &[String], plan: &tollgate_number::DialingPlan) -> Result<Self, String> {
        let mut parsed: Vec<InternalRange> = Vec::new();
        for text in ranges {
            let t = text.trim();
            let range = if let Some((a, b)) = t.split_once('-').filter(|(a, _)| a.starts_with('+') && !a.ends_with('*'))
            {
                let from = plan.normalize(a).map_err(|e| format!("range {t:?}: {e}"))?;
                let to = plan.normalize(b).map_err(|e| format!("range {t:?}: {e}"))?;
                if from.len() != to.len() || from > to {
                    return Err(format!("range {t:?}: both ends need the same number of digits, lowest first"));
                }
                InternalRange::Span { from, to }
            } else {
                let digits = t.trim_end_matches('*').trim_start_matches('+');
                if !t.starts_with('+') || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "range {t:?}: use a prefix like \"+1212555*\" or a span like \"+12125550000-+12125550999\""
                    ));
                }
                InternalRange::Prefix(digits.to_string())
            };
            if let Some(other) = parsed.iter().find(|r| r.overlaps(&range)) {
                return Err(format!("range {t:?} overlaps {other:?}"));
            }
            parsed.push(range);
        }
        Ok(InternalNumbers { classifier: DirectionClassifier::new(&parsed) })
    }

    /// True if `number` is internal.
    pub fn contains(&self, number: E164) -> bool {
        self.classifier.is_internal(number)
    }

    /// The direction of a call.
    pub fn classify(&self, source: Option<E164>, destination: Option<E164>) -> Direction {
        let from_inside = source.is_some_and(|s| self.contains(s));
        let to_inside = destination.is_some_and(|d| self.contains(d));
        match (from_inside, to_inside) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::Transit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        s.parse().unwrap()
    }

    fn span(a: &str, b: &str) -> InternalRange {
        InternalRange::Span { from: n(a), to: n(b) }
    }

    fn cover(lo: &str, hi: &str) -> Vec<String> {
        let mut out = Vec::new();
        cover_span(lo, hi, &mut out);
        out
    }

    #[test]
    fn span_decomposition_is_minimal_and_exact() {
        assert_eq!(cover("1000", "1999"), vec!["1"]);
        assert_eq!(cover("1200", "1299"), vec!["12"]);
        assert_eq!(cover("1234", "1234"), vec!["1234"]);
        assert_eq!(cover("1200", "1549"), vec!["12", "13", "14", "150", "151", "152", "153", "154"]);
        assert_eq!(cover("1205", "1213"), vec!["1205", "1206", "1207", "1208", "1209", "1210", "1211", "1212", "1213"]);
    }

    #[test]
    fn span_cover_matches_brute_force() {
        for (lo, hi) in [("1037", "1962"), ("1000", "1000"), ("1099", "1100"), ("1001", "1998")] {
            let prefixes = cover(lo, hi);
            let (l, h): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
            for v in 1000..=1999u32 {
                let s = v.to_string();
                let covered = prefixes.iter().filter(|p| s.starts_with(p.as_str())).count();
                assert_eq!(covered, usize::from((l..=h).contains(&v)), "{lo}-{hi} at {s}");
            }
        }
    }

    #[test]
    fn classifies_directions() {
        let c =
            DirectionClassifier::new(&[InternalRange::Prefix("1212555".into()), span("+13125550000", "+13125550499")]);
        assert_eq!(c.classify(Some(n("+12125551234")), n("+13125550100")), Direction::Internal);
        assert_eq!(c.classify(Some(n("+12125551234")), n("+13125550500")), Direction::Outbound);
        assert_eq!(c.classify(Some(n("+442079460000")), n("+12125559999")), Direction::Inbound);
        assert_eq!(c.classify(None, n("+12125559999")), Direction::Inbound);
        assert_eq!(c.classify(Some(n("+442079460000")), n("+33140000000")), Direction::Transit);
        // Spans apply only to numbers of their own length.
        assert!(!c.is_internal(n("+131255500001")));
        assert!(c.is_internal(n("+121255500001")));
    }

    #[test]
    fn internal_numbers_from_text() {
        let plan = tollgate_number::DialingPlan::nanp();
        let n = InternalNumbers::parse(&["+1212555*".into(), "+13125550000-+13125550499".into()], &plan).unwrap();
        assert_eq!(n.classify(Some(self::n("+12125551234")), Some(self::n("+13125550100"))), Direction::Internal);
        assert_eq!(n.classify(None, Some(self::n("+14155550000"))), Direction::Transit);
        assert!(InternalNumbers::parse(&["1212*".into()], &plan).unwrap_err().contains("prefix like"));
        assert!(InternalNumbers::parse(&["+1212*".into(), "+121255*".into()], &plan).unwrap_err().contains("overlaps"));
    }

    #[test]
    fn overlap_detection() {
        let p = |s: &str| InternalRange::Prefix(s.into());
        assert!(p("1212").overlaps(&p("121255")));
        assert!(!p("1212").overlaps(&p("1213")));
        assert!(span("+12125550000", "+12125550999").overlaps(&span("+12125550500", "+12125551500")));
        assert!(!span("+12125550000", "+12125550999").overlaps(&span("+12125551000", "+12125551999")));
        assert!(p("1212555").overlaps(&span("+12125550000", "+12125550999")));
        assert!(!p("12125550000000").overlaps(&span("+12125550000", "+12125550999")));
        // Same digits, different lengths never overlap.
        assert!(!span("+1212555000", "+1212555999").overlaps(&span("+12125550000", "+12125559999")));
    }
}
