//! JSON documents that may be damaged: smartctl's output, the job and replication state files,
//! the HA manager's status.
//!
//! A document that parses is read as it is. One that does not (cut short, a stray byte) is
//! reported once with the line where it went wrong, and its whole lines before that line are
//! read: the open strings, arrays and objects are closed after the last whole value, so every
//! value written before the damage is still there and nothing after it is guessed. Pretty
//! printed documents (smartctl) keep everything above the damage; one-line documents
//! (Proxmox's `encode_json`) have nothing before their only line, so they are lost as a whole,
//! as the collector invariant allows for a file that is all one damaged line.

use serde_json::Value;

use super::problem::{quote, Problems};

/// Parses `text` as one JSON value. Text after the value is reported and ignored. A document
/// that does not parse is read up to the line before the damage (see the module doc); `Err`
/// only when nothing could be read at all.
pub fn parse(text: &str, problems: &mut Problems) -> Result<Value, String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match values.next() {
        Some(Ok(value)) => {
            let rest = &text[values.byte_offset()..];
            if !rest.trim().is_empty() {
                let junk = values.byte_offset() + rest.len() - rest.trim_start().len();
                let line = 1 + text[..junk].matches('\n').count();
                problems.line(
                    line,
                    format!(
                        "{} after the JSON document: ignored",
                        quote(rest.trim().lines().next().unwrap_or(""))
                    ),
                );
            }
            Ok(value)
        }
        None => Err("empty: no JSON document".into()),
        Some(Err(e)) => {
            // serde may notice the damage only on the line after it (a string cut by a line
            // end): step back a line or two until what is left closes.
            let line = e.line().max(1);
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for keep in (line.saturating_sub(3)..line).rev() {
                let kept: String = lines.iter().take(keep).copied().collect();
                if let Some(value) = close(&kept) {
                    problems.line(
                        (keep + 1).min(lines.len().max(1)),
                        format!("not JSON ({e}): the lines before it are read"),
                    );
                    return Ok(value);
                }
            }
            Err(format!("not JSON: {e}"))
        }
    }
}

/// The value of whole lines `prefix`, with its open containers closed after the last whole
/// value; `None` when that gives no object or array.
fn close(prefix: &str) -> Option<Value> {
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in prefix.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    if in_string || stack.is_empty() {
        return None;
    }
    // Drop what cannot end a value: a trailing comma, or a key whose value was on the lost
    // line (`"key":`).
    let mut text = prefix.trim_end().to_owned();
    loop {
        if let Some(stripped) = text.strip_suffix(',') {
            text = stripped.trim_end().to_owned();
        } else if text.ends_with(':') {
            let key_start = text[..text.len() - 1]
                .trim_end()
                .rfind('"')
                .and_then(|end| text[..end].rfind('"'))?;
            text.truncate(key_start);
            text = text.trim_end().to_owned();
        } else {
            break;
        }
    }
    while let Some(close) = stack.pop() {
        text.push(close);
    }
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> (Result<Value, String>, Vec<String>) {
        let mut problems = Problems::new();
        let value = parse(text, &mut problems);
        (value, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn whole_documents() {
        assert_eq!(read("{\"a\": 1}\n"), (Ok(json!({"a": 1})), vec![]));
        let (value, problems) = read("{\"a\": 1}\nthen garbage\n");
        assert_eq!(value, Ok(json!({"a": 1})));
        assert_eq!(
            problems,
            ["line 2: \"then garbage\" after the JSON document: ignored"]
        );
        assert!(read("").0.is_err());
        assert!(read("   \n").0.is_err());
        assert!(read("<html>").0.is_err());
    }

    #[test]
    fn a_cut_document_keeps_its_whole_lines() {
        let text = "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [\n      1,\n      2,\n      3\n    ],\n    \"d\": \"x\"\n  }\n}\n";
        // Cut inside the line of 3: 1 and 2 are kept, the cut value is not guessed.
        let cut = &text[..text.find("3\n").unwrap() + 1];
        let (value, problems) = read(cut);
        assert_eq!(value, Ok(json!({"a": 1, "b": {"c": [1, 2]}})));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("line 7: not JSON"), "{problems:?}");
        // Cut after a key whose value was lost.
        let (value, _) = read("{\n  \"a\": 1,\n  \"b\":\n");
        assert_eq!(value, Ok(json!({"a": 1})));
        // Damage in the middle.
        let (value, _) = read("{\n  \"a\": 1,\n  \"b\" x 2,\n  \"c\": 3\n}\n");
        assert_eq!(value, Ok(json!({"a": 1})));
        // One damaged line: nothing before it.
        assert!(read("{\"a\": 1, \"b\": ").0.is_err());
    }
}
