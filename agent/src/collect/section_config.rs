//! Proxmox section config files (`jobs.cfg`, `replication.cfg`, `ha/resources.cfg`), read as
//! pve-common `PVE::SectionConfig::parse_config` reads them:
//!
//! - `#` lines (after optional blanks) are skipped anywhere;
//! - a section starts with `type: id` (`^(\S+):\s*(\S+)\s*$`);
//! - its properties are the following `<blank>key [value]` lines
//!   (`^\s+(\S+)(\s+(.*\S))?\s*$`), up to the first empty line;
//! - a repeated property is an error there (the section keeps its first value here);
//! - a line that is none of these is ignored with a warning.
//!
//! Every ignored line is reported here, and the rest is read. What each type and key means
//! is for the caller (`jobs`, `replication`, `ha`).

use super::problem::{numbered_lines, quote, Problems};

/// One section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub kind: String,
    pub id: String,
    /// The line of its header.
    pub line: usize,
    /// Its properties in file order: key, value (none for a bare key), line.
    pub properties: Vec<(String, Option<String>, usize)>,
}

impl Section {
    /// The value of `key`; `Some(None)` for a bare key.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.properties
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_deref())
    }

    /// The value of `key` when it has one.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).flatten()
    }

    /// The line of `key`.
    pub fn line_of(&self, key: &str) -> usize {
        self.properties
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or(self.line, |(_, _, line)| *line)
    }
}

/// Splits the file into sections. `valid_id` says whether an id is one the section's type
/// takes; a section with an invalid id is skipped (and reported), as Proxmox skips it.
pub fn parse(
    text: &str,
    valid_id: impl Fn(&str, &str) -> bool,
    problems: &mut Problems,
) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    // Inside a section: whether it is kept (`Some`) or skipped (`None`).
    let mut current: Option<Option<usize>> = None;
    for (number, line) in numbered_lines(text) {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.is_empty() {
            current = None;
            continue;
        }
        let Some(section) = current else {
            match header(line) {
                Some((kind, id)) if valid_id(&kind, id) => {
                    out.push(Section {
                        kind,
                        id: id.to_owned(),
                        line: number,
                        properties: Vec::new(),
                    });
                    current = Some(Some(out.len() - 1));
                }
                Some((kind, id)) => {
                    problems.line(
                        number,
                        format!("{kind} id {} is not valid: section skipped", quote(id)),
                    );
                    current = Some(None);
                }
                None => problems.line(
                    number,
                    format!(
                        "{} is not a \"type: id\" section header: ignored",
                        quote(line)
                    ),
                ),
            }
            continue;
        };
        let Some(index) = section else { continue };
        let section = &mut out[index];
        match property(line) {
            None => problems.line(
                number,
                format!(
                    "{} is not a property of {}: ignored",
                    quote(line),
                    section.id
                ),
            ),
            Some((key, _)) if section.get(key).is_some() => problems.line(
                number,
                format!(
                    "{}: duplicate property {key}: the first is kept",
                    section.id
                ),
            ),
            Some((key, value)) => {
                section
                    .properties
                    .push((key.to_owned(), value.map(str::to_owned), number));
            }
        }
    }
    out
}

/// `vzdump: backup-1` → (`vzdump`, `backup-1`).
fn header(line: &str) -> Option<(String, &str)> {
    let (kind, id) = line.split_once(':')?;
    let id = id.trim();
    let ok = !kind.is_empty()
        && !kind.contains(char::is_whitespace)
        && !id.is_empty()
        && !id.contains(char::is_whitespace);
    ok.then(|| (kind.to_ascii_lowercase(), id))
}

/// `<blank>key [value]` → the key and the trimmed value.
fn property(line: &str) -> Option<(&str, Option<&str>)> {
    if !line.starts_with(char::is_whitespace) {
        return None;
    }
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(match trimmed.split_once(char::is_whitespace) {
        Some((key, value)) => (key, Some(value.trim())),
        None => (trimmed, None),
    })
}

/// pve-common `PVE::JSONSchema` `pve-configid`: `^[a-z][a-z0-9_-]+$`, any case.
pub fn is_config_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sections_properties_and_what_is_ignored() {
        let text = "# comment\nvzdump: backup-1\n\tschedule 21:00\n\tall 1\n\tenabled\nstray line\n\nnot a header\nvzdump: bad id\n\nvzdump: 2bad\n\tschedule x\n\nrealm-sync: sync-1\n\tschedule daily\n\tschedule twice\n";
        let mut problems = Problems::new();
        let sections = parse(text, |_, id| is_config_id(id), &mut problems);
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].kind, "vzdump");
        assert_eq!(sections[0].value("schedule"), Some("21:00"));
        assert_eq!(sections[0].get("enabled"), Some(None));
        assert_eq!(sections[0].line_of("all"), 4);
        assert_eq!(sections[1].kind, "realm-sync");
        assert_eq!(sections[1].value("schedule"), Some("daily"));
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(6), Some(8), Some(9), Some(11), Some(16)]);
    }
}
