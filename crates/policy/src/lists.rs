//! Number lists: files of one number per line, possibly millions of lines.
//!
//! Blank lines and `#` comments are ignored; every other line must normalise under the dialing
//! plan. Numbers are kept as a hash set of `u64` (8 bytes each plus table overhead), so
//! membership is one hash lookup whatever the list size.

use std::io::{self, BufRead, Read};

use rustc_hash::FxHashSet;
use tollgate_number::{DialingPlan, E164};

use crate::error::Diagnostic;

/// How many bad lines are reported before the loader stops listing them.
const MAX_REPORTED: usize = 20;

/// A loaded, normalised number list.
#[derive(Debug, Clone, Default)]
pub struct NumberList {
    name: String,
    numbers: FxHashSet<u64>,
}

impl NumberList {
    /// The list's name in the policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of distinct numbers.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// True when the list holds no number.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// True if `number` is in the list.
    pub fn contains(&self, number: E164) -> bool {
        self.numbers.contains(&number.as_u64())
    }
}

/// Reads a list. `file` names the file in diagnostics. Every bad line is an error (up to
/// [`MAX_REPORTED`] are listed, then a count), so a list is either loaded whole or not at all.
pub fn load_list(
    name: &str,
    reader: impl BufRead,
    file: &str,
    plan: &DialingPlan,
) -> Result<NumberList, Vec<Diagnostic>> {
    load_list_sized(name, reader, file, plan, 0)
}

/// Counts the lines of a list (its `\n` bytes, plus a last line without one): how many
/// numbers it holds at most, so its set is sized once instead of growing (each growth holds
/// the old table and the new one, twice its size, at the same time).
pub fn count_lines(mut reader: impl Read) -> io::Result<usize> {
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0usize, b'\n');
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        last = buf[n - 1];
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// [`load_list`] into a set with room for `expected` numbers from the start (e.g. the
/// [`count_lines`] of the file); the set is shrunk to what was loaded at the end.
pub fn load_list_sized(
    name: &str,
    reader: impl BufRead,
    file: &str,
    plan: &DialingPlan,
    expected: usize,
) -> Result<NumberList, Vec<Diagnostic>> {
    let mut numbers = FxHashSet::with_capacity_and_hasher(expected, Default::default());
    let mut problems = Vec::new();
    let mut bad_lines = 0usize;
    let mut reader = reader;
    let mut buf = Vec::with_capacity(64);
    let mut line_no = 0usize;
    let diag = |line: Option<usize>, message: String| Diagnostic {
        file: file.to_string(),
        line,
        field: format!("lists.{name}"),
        message,
    };
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                problems.push(diag(Some(line_no + 1), format!("cannot read: {e}")));
                return Err(problems);
            }
        }
        line_no += 1;
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => s,
            Err(_) => {
                bad_lines += 1;
                if problems.len() < MAX_REPORTED {
                    problems.push(diag(Some(line_no), "line is not valid UTF-8".into()));
                }
                continue;
            }
        };
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        match plan.normalize(entry) {
            Ok(n) => {
                numbers.insert(n.as_u64());
            }
            Err(e) => {
                bad_lines += 1;
                if problems.len() < MAX_REPORTED {
                    problems.push(diag(Some(line_no), e.to_string()));
                }
            }
        }
    }
    if bad_lines > problems.len() {
        problems.push(diag(None, format!("{} more bad lines not listed", bad_lines - problems.len())));
    }
    if problems.is_empty() {
        numbers.shrink_to_fit();
        Ok(NumberList { name: name.to_string(), numbers })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_numbers_in_any_plan_form_with_comments() {
        let text = "# robocallers\n+13125550666\n312-555-0667  # seen 2026-11\n\n13125550668\n";
        let list = load_list("robo", text.as_bytes(), "robo.txt", &DialingPlan::nanp()).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.contains("+13125550667".parse().unwrap()));
        assert!(!list.contains("+13125550669".parse().unwrap()));
    }

    #[test]
    fn bad_lines_are_reported_with_line_numbers() {
        let text = "+13125550666\nnot-a-number\n+13\n";
        let errs = load_list("robo", text.as_bytes(), "robo.txt", &DialingPlan::nanp()).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, Some(2));
        assert_eq!(errs[0].file, "robo.txt");
        assert_eq!(errs[0].field, "lists.robo");
        assert_eq!(errs[1].line, Some(3));
    }

    #[test]
    fn lines_are_counted_with_or_without_a_last_newline() {
        assert_eq!(count_lines(&b""[..]).unwrap(), 0);
        assert_eq!(count_lines(&b"+13125550666\n"[..]).unwrap(), 1);
        assert_eq!(count_lines(&b"+13125550666\n\n# x\n+13125550667"[..]).unwrap(), 4);
        let big = "+13125550666\n".repeat(100_000);
        assert_eq!(count_lines(big.as_bytes()).unwrap(), 100_000);
    }

    #[test]
    fn a_sized_list_holds_the_same_numbers() {
        let text = "+13125550666\n+13125550667\n+13125550666\n";
        let plan = DialingPlan::nanp();
        let sized = load_list_sized("robo", text.as_bytes(), "robo.txt", &plan, count_lines(text.as_bytes()).unwrap());
        let plain = load_list("robo", text.as_bytes(), "robo.txt", &plan).unwrap();
        let sized = sized.unwrap();
        assert_eq!((sized.len(), plain.len()), (2, 2));
        assert!(sized.contains("+13125550667".parse().unwrap()));
    }

    #[test]
    fn many_bad_lines_are_summarised() {
        let text = "x\n".repeat(100);
        let errs = load_list("l", text.as_bytes(), "l.txt", &DialingPlan::nanp()).unwrap_err();
        assert_eq!(errs.len(), MAX_REPORTED + 1);
        assert!(errs.last().unwrap().message.contains("80 more"));
    }
}
