//! Where a policy file's `[[rule]]` sections are, so a policy of 100,000 rules is parsed a
//! batch of rules at a time.
//!
//! The TOML parser holds every token, every parse event and a tree of the whole document
//! before it hands anything over: about 30 bytes of memory per byte of policy (300 MB for a
//! 10 MB policy of 100,000 rules). A policy is a preamble (`schema`, `name`, `[lists]`,
//! `[[internal]]`, ...) followed by `[[rule]]` sections, each a complete table of its own,
//! so the preamble and each batch of rule sections are separate TOML documents whose values
//! are exactly the ones the whole file holds.
//!
//! This module finds those boundaries with the TOML lexer (so a `[[rule]]` inside a
//! multi-line string or a multi-line array is never taken for a header). A file whose layout
//! is anything else (a table other than a rule's after the first rule, a quoted key in a
//! header, a header the lexer cannot read) gets no split: it is parsed whole, as before.

use std::ops::Range;

use toml_parser::Source;
use toml_parser::lexer::TokenKind;

/// Rule sections are grouped into batches of at least this many bytes (a batch ends at a
/// section boundary): small enough that parsing one takes a few MB, large enough that the
/// per-document cost of the parser does not show.
pub(crate) const BATCH_BYTES: usize = 64 << 10;

/// A policy file cut into its preamble and batches of rule sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// The preamble is `text[..preamble_end]`: everything before the first `[[rule]]`.
    pub(crate) preamble_end: usize,
    /// Consecutive byte ranges covering `text[preamble_end..]`, each starting with `[[rule]]`.
    pub(crate) batches: Vec<Range<usize>>,
    /// How many `[[rule]]` sections the batches hold.
    pub(crate) sections: usize,
}

/// A table header: `[a.b]` or `[[a.b]]`.
struct Header<'t> {
    start: usize,
    array: bool,
    /// The dotted key's parts (all bare keys).
    keys: Vec<&'t str>,
}

impl Header<'_> {
    fn is_rule(&self) -> bool {
        self.array && self.keys == ["rule"]
    }

    fn is_inside_rule(&self) -> bool {
        self.keys.len() > 1 && self.keys[0] == "rule"
    }
}

/// Tokens of a document, without the ones between items of a header.
struct Tokens<'t> {
    text: &'t str,
    lexer: std::iter::Peekable<toml_parser::lexer::Lexer<'t>>,
}

impl<'t> Tokens<'t> {
    fn next(&mut self) -> Option<(TokenKind, Range<usize>)> {
        self.lexer.next().map(|t| (t.kind(), t.span().start()..t.span().end()))
    }

    fn next_significant(&mut self) -> Option<(TokenKind, Range<usize>)> {
        loop {
            match self.next()? {
                (TokenKind::Whitespace, _) => continue,
                other => return Some(other),
            }
        }
    }

    /// Reads a header whose first `[` is at `start`; `None` for anything but bare dotted keys
    /// followed by the end of the line.
    fn header(&mut self, start: usize) -> Option<Header<'t>> {
        let array = self.lexer.peek().is_some_and(|t| t.kind() == TokenKind::LeftSquareBracket);
        if array {
            self.next();
        }
        let mut keys = Vec::new();
        loop {
            match self.next_significant()? {
                (TokenKind::Atom, span) => keys.push(&self.text[span]),
                _ => return None,
            }
            match self.next_significant()? {
                (TokenKind::Dot, _) => continue,
                (TokenKind::RightSquareBracket, _) => break,
                _ => return None,
            }
        }
        if array && self.next()?.0 != TokenKind::RightSquareBracket {
            return None;
        }
        match self.next_significant()? {
            (TokenKind::Comment, _) => match self.next()?.0 {
                TokenKind::Newline | TokenKind::Eof => {}
                _ => return None,
            },
            (TokenKind::Newline | TokenKind::Eof, _) => {}
            _ => return None,
        }
        Some(Header { start, array, keys })
    }
}

/// Cuts `text` into its preamble and batches of rule sections of at least `batch_bytes`.
/// `None` when the file has no rule section or a layout this does not split (see the module
/// documentation); such a file is parsed whole.
pub(crate) fn split(text: &str, batch_bytes: usize) -> Option<Split> {
    let mut tokens = Tokens { text, lexer: Source::new(text).lex().peekable() };
    // True at the start of a line outside any value, where a header may begin.
    let mut line_start = true;
    // Open `[` and `{` of the value being read.
    let mut depth = 0usize;
    let mut preamble_end = None;
    let mut batches = Vec::new();
    let mut batch_start = 0usize;
    let mut sections = 0usize;
    while let Some((kind, span)) = tokens.next() {
        match kind {
            TokenKind::Eof => break,
            TokenKind::Whitespace | TokenKind::Comment => {}
            TokenKind::Newline if depth == 0 => line_start = true,
            TokenKind::Newline => {}
            TokenKind::LeftSquareBracket if line_start => {
                let header = tokens.header(span.start)?;
                sections += usize::from(header.is_rule());
                match preamble_end {
                    None if header.is_rule() => {
                        preamble_end = Some(header.start);
                        batch_start = header.start;
                    }
                    None => {}
                    Some(_) if header.is_inside_rule() => {}
                    Some(_) if !header.is_rule() => return None,
                    Some(_) if header.start - batch_start >= batch_bytes => {
                        batches.push(batch_start..header.start);
                        batch_start = header.start;
                    }
                    Some(_) => {}
                }
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                line_start = false;
                depth += 1;
            }
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                line_start = false;
                depth = depth.checked_sub(1)?;
            }
            _ => line_start = false,
        }
    }
    let preamble_end = preamble_end?;
    batches.push(batch_start..text.len());
    Some(Split { preamble_end, batches, sections })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "schema = 2\nname = \"p\"\n[lists]\nrobo = \"robo.txt\"\n\
        [[rule]]\nname = \"a\"\naction = \"allow\"\n\
        [[rule]] # second\nname = \"b\"\naction = \"allow\"\n[rule.time]\ndays = [\"mon\"]\n\
        [[ rule ]]\nname = \"c\"\naction = \"allow\"\n";

    fn starts(text: &str, batch: usize) -> Option<(usize, Vec<usize>)> {
        split(text, batch).map(|s| (s.preamble_end, s.batches.iter().map(|b| b.start).collect()))
    }

    #[test]
    fn rule_sections_are_batched_after_the_preamble() {
        let first = POLICY.find("[[rule]]").unwrap();
        let second = POLICY.find("[[rule]] #").unwrap();
        let third = POLICY.find("[[ rule ]]").unwrap();
        assert_eq!(starts(POLICY, 1), Some((first, vec![first, second, third])));
        assert_eq!(starts(POLICY, 1 << 20), Some((first, vec![first])));
        let s = split(POLICY, 1).unwrap();
        assert_eq!(s.batches.last().unwrap().end, POLICY.len());
        assert_eq!(s.sections, 3);
        assert!(s.batches.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn the_preamble_is_what_comes_before_the_first_rule() {
        let first = POLICY.find("[[rule]]").unwrap();
        assert_eq!(crate::source::preamble(POLICY), &POLICY[..first]);
        let unusual = "schema = 2\n[[rule]]\nname = \"a\"\n[lists]\nx = \"x.txt\"\n";
        assert_eq!(crate::source::preamble(unusual), unusual);
    }

    #[test]
    fn headers_inside_strings_and_arrays_are_not_headers() {
        let text = "schema = 2\nx = \"\"\"\n[[rule]]\n\"\"\"\ny = [\n[1],\n]\n[[rule]]\nname = \"a\"\n\
            description = '''\n[[rule]]\n'''\naction = \"allow\"\n";
        let rule = text.find("[[rule]]\nname").unwrap();
        assert_eq!(starts(text, 1), Some((rule, vec![rule])));
    }

    #[test]
    fn other_layouts_are_not_split() {
        for text in [
            "schema = 2\n",
            "schema = 2\n[[rule]]\nname = \"a\"\n[lists]\nx = \"x.txt\"\n",
            "schema = 2\n[[\"rule\"]]\nname = \"a\"\n",
            "schema = 2\n[[rule]]\nname = \"a\"\n[\"rule\".time]\n",
            "schema = 2\n[[rule]]\nname = \"a\"\n[rule]\n",
            "schema = 2\n[[rule]] x = 1\n",
            "schema = 2\n[[rule]\n",
            "schema = 2\n]\n[[rule]]\n",
        ] {
            assert_eq!(split(text, 1), None, "{text}");
        }
    }
}
