//! What a parser could not understand in a file it otherwise read.
//!
//! Every parser under `collect/` follows one rule: a line or field it cannot understand is
//! skipped and recorded here (with its line number and what was wrong), and the parser goes
//! on with the next line. Nothing short of an empty or wholly foreign file makes a parser give
//! up on the lines it did understand. Keys a parser does not use are not problems: they are
//! ignored without a word (a newer kernel or Proxmox adds keys all the time).
//!
//! The collector turns each problem into one entry of the sample's `errors` (`source` is the
//! file, `message` starts with `line N:`), at most `Collector`'s per-file limit of them, and
//! logs each distinct problem once.

use std::borrow::Cow;
use std::fmt;

/// One line or field a parser skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line number, for a problem with one line; `None` for one of the file as a
    /// whole (a line that is missing, a JSON document that does not parse).
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The problems met while parsing one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Line `number` (1-based) was skipped, or a field of it: `message` says what was wrong.
    pub fn line(&mut self, number: usize, message: impl Into<String>) {
        self.list.push(Problem {
            line: Some(number),
            message: message.into(),
        });
    }

    /// Something about the file as a whole that did not stop it being read.
    pub fn file(&mut self, message: impl Into<String>) {
        self.list.push(Problem {
            line: None,
            message: message.into(),
        });
    }

    /// Adds the problems of `other` (found while trying something that worked out).
    pub fn extend(&mut self, other: Problems) {
        self.list.extend(other.list);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.list.iter()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}

/// The longest piece of a bad line quoted in a message: enough to recognise it, and a file of
/// garbage cannot make the sample huge.
const QUOTE_CHARS: usize = 60;

/// Sets `slot` from a line of a key the kernel writes only once per file. A repeat can only be
/// damage (the tail of a line cut in two): it is reported and the first value is kept, so the
/// damage cannot change what the lines before it said.
pub fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    number: usize,
    key: &str,
    problems: &mut Problems,
) {
    if slot.is_some() {
        problems.line(number, format!("{key} repeated: the first value is kept"));
    } else {
        *slot = Some(value);
    }
}

/// `text` in quotes, shortened to `QUOTE_CHARS` characters: how messages show the bad line or
/// value.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// The text of a file's bytes. The files we read are ASCII or UTF-8; bytes that are not UTF-8
/// (an interface or guest name in another encoding, a corrupted file) are replaced by U+FFFD
/// and reported at the first line that has them, so the rest of the file is still read.
pub fn decode<'a>(bytes: &'a [u8], problems: &mut Problems) -> Cow<'a, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
            problems.line(line, "bytes that are not UTF-8 (read as U+FFFD)");
            String::from_utf8_lossy(bytes)
        }
    }
}

/// Lines with their 1-based numbers, as `str::lines` splits them (`\n` or `\r\n`).
pub fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line))
}

/// How Proxmox's schema reads a boolean (pve-common `PVE::JSONSchema::parse_boolean`, also
/// pve-container `check_type`): `1`, `on`, `yes`, `true` and `0`, `off`, `no`, `false`, any case.
pub fn parse_boolean(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["1", "on", "yes", "true"];
    const FALSE: [&str; 4] = ["0", "off", "no", "false"];
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decode_reports_the_first_line_with_bad_bytes() {
        let mut problems = Problems::new();
        assert_eq!(decode(b"a\nb\n", &mut problems), "a\nb\n");
        assert!(problems.is_empty());
        let text = decode(b"a\nb\xff\nc\xfe\n", &mut problems);
        assert_eq!(text, "a\nb\u{fffd}\nc\u{fffd}\n");
        assert_eq!(
            problems.into_vec(),
            [Problem {
                line: Some(2),
                message: "bytes that are not UTF-8 (read as U+FFFD)".into()
            }]
        );
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "x".repeat(200);
        let quoted = quote(&long);
        assert!(quoted.chars().count() < 70, "{quoted}");
        assert!(quoted.ends_with('…'));
        // Cut on a character boundary.
        let wide = "é".repeat(100);
        assert!(quote(&wide).starts_with("\"éé"));
    }

    #[test]
    fn booleans_as_proxmox_reads_them() {
        for t in ["1", "on", "YES", "True"] {
            assert_eq!(parse_boolean(t), Some(true), "{t}");
        }
        for f in ["0", "off", "No", "FALSE"] {
            assert_eq!(parse_boolean(f), Some(false), "{f}");
        }
        for bad in ["", "2", "enabled", " 1"] {
            assert_eq!(parse_boolean(bad), None, "{bad}");
        }
    }

    #[test]
    fn display_names_the_line() {
        let mut problems = Problems::new();
        problems.line(3, "bad");
        problems.file("no X line");
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["line 3: bad", "no X line"]);
    }
}
