//! Proxmox tasks: UPIDs, the task index `/var/log/pve/tasks/index` (and `index.1`), the list of
//! active tasks `/var/log/pve/tasks/active`, and how to follow the index without reading it
//! again every cycle.
//!
//! Formats, from pve-common:
//! - A UPID is `UPID:$node:$pid:$pstart:$starttime:$type:$id:$user:` with the three numbers in
//!   upper-case hex, 8 digits (pstart 8 or 9) (`PVE::Tools::upid_encode`/`upid_decode`). The
//!   task's log is `/var/log/pve/tasks/<last digit of starttime>/<UPID>`.
//! - `index`: one finished task per line, `UPID ENDTIME STATUS`, ENDTIME 8 hex digits, STATUS
//!   `OK`, `WARNINGS: N` or the error (`PVE::RESTEnvironment::active_workers` appends them;
//!   `PVE::API2::Tasks` reads them with `^(\S+)(\s([0-9A-Za-z]{8})(\s(\S.*))?)?$`). When the
//!   file grows past 50 000 bytes, `active_workers` renames it to `index.1` and the next task
//!   starts a new `index`.
//! - `active`: `UPID SAVED [ENDTIME [STATUS]]`, SAVED 0 or 1, the running tasks and the last
//!   few finished ones (`PVE::INotify::read_active_workers`).
//! - A task log ends with `TASK OK`, `TASK WARNINGS: N` or `TASK ERROR: <message>`
//!   (`PVE::Tools::upid_read_status`).

use common::sample::RunState;

use super::problem::{numbered_lines, quote, Problems};

/// A decoded UPID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    /// When the task started, UNIX seconds.
    pub starttime: u64,
    /// `vzdump`, `qmstart`, `vzstart`, `qmigrate`, ...
    pub kind: String,
    /// The task's object, often a VMID; may be empty (`vzdump` of several guests).
    pub id: String,
    pub user: String,
}

impl Upid {
    /// Decodes a UPID as `PVE::Tools::upid_decode` does; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Upid> {
        let rest = text.strip_prefix("UPID:")?.strip_suffix(':')?;
        let fields: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, kind, id, user] = fields[..] else {
            return None;
        };
        let node_ok = !node.is_empty()
            && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !node.starts_with('-')
            && !node.ends_with('-');
        let hex = |s: &str, lengths: &[usize]| -> Option<u64> {
            if !lengths.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(s, 16).ok()
        };
        let word = |s: &str| !s.bytes().any(|b| b.is_ascii_whitespace());
        if !node_ok || kind.is_empty() || user.is_empty() || !word(kind) || !word(id) {
            return None;
        }
        if !word(user) {
            return None;
        }
        Some(Upid {
            node: node.to_owned(),
            pid: u32::try_from(hex(pid, &[8])?).ok()?,
            pstart: hex(pstart, &[8, 9])?,
            starttime: hex(starttime, &[8])?,
            kind: kind.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        })
    }

    /// The task log's path under `/var/log/pve/tasks/`: `<last starttime digit>/<UPID>`.
    pub fn log_path(upid: &str) -> Option<String> {
        let starttime = upid.split(':').nth(4)?;
        let digit = starttime.chars().last()?;
        Some(format!("{digit}/{upid}"))
    }
}

/// A finished task of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub upid: String,
    pub task: Upid,
    /// When it ended, UNIX seconds.
    pub endtime: Option<u64>,
    /// `OK`, `WARNINGS: N`, or the error.
    pub status: Option<String>,
}

/// Parses index lines (a whole file, or what was appended since the last read). A line that is
/// no `UPID ENDTIME STATUS` is skipped and reported with its number plus `first_line - 1`.
pub fn parse_index(text: &str, first_line: usize, problems: &mut Problems) -> Vec<IndexEntry> {
    parse_index_where(text, first_line, |_| true, problems)
}

/// `parse_index`, keeping only the entries `keep` wants (the collector keeps backup tasks: an
/// index holds a thousand lines of every kind).
pub fn parse_index_where(
    text: &str,
    first_line: usize,
    keep: impl Fn(&Upid) -> bool,
    problems: &mut Problems,
) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_index_line(line) {
            Some(entry) if keep(&entry.task) => out.push(entry),
            Some(_) => {}
            None => problems.line(
                number + first_line - 1,
                format!("{} is not \"UPID ENDTIME STATUS\"", quote(line)),
            ),
        }
    }
    out
}

fn parse_index_line(line: &str) -> Option<IndexEntry> {
    let (upid, rest) = match line.split_once(' ') {
        Some((upid, rest)) => (upid, Some(rest)),
        None => (line, None),
    };
    let task = Upid::parse(upid)?;
    let (endtime, status) = match rest {
        None => (None, None),
        Some(rest) => {
            let (hex, status) = match rest.split_once(' ') {
                Some((hex, status)) => (hex, Some(status)),
                None => (rest, None),
            };
            if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let status = match status {
                Some(s) if s.trim().is_empty() || s.starts_with(char::is_whitespace) => {
                    return None
                }
                Some(s) => Some(s.trim_end().to_owned()),
                None => None,
            };
            (u64::from_str_radix(hex, 16).ok(), status)
        }
    };
    Some(IndexEntry {
        upid: upid.to_owned(),
        task,
        endtime,
        status,
    })
}

/// A task of `active`: running (`endtime` none) or recently finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEntry {
    pub upid: String,
    pub task: Upid,
    pub endtime: Option<u64>,
    pub status: Option<String>,
}

/// Parses `active`; lines that are no `UPID SAVED [ENDTIME [STATUS]]` are skipped and reported.
pub fn parse_active(text: &str, problems: &mut Problems) -> Result<Vec<ActiveEntry>, String> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, ' ');
        let upid = fields.next().unwrap_or("");
        let saved = fields.next();
        let rest = fields.next();
        let entry = Upid::parse(upid)
            .filter(|_| matches!(saved, Some("0" | "1")))
            .and_then(|task| {
                let (endtime, status) = match rest {
                    None => (None, None),
                    Some(rest) => {
                        let parsed = parse_index_line(&format!("{upid} {rest}"))?;
                        (parsed.endtime, parsed.status)
                    }
                };
                Some(ActiveEntry {
                    upid: upid.to_owned(),
                    task,
                    endtime,
                    status,
                })
            });
        match entry {
            Some(entry) => out.push(entry),
            None => problems.line(
                number,
                format!("{} is not \"UPID SAVED [ENDTIME [STATUS]]\"", quote(line)),
            ),
        }
    }
    Ok(out)
}

/// How a task ended, from its status text: `OK`, `WARNINGS: N`, anything else is an error
/// (`PVE::Tools::upid_status_is_error`).
pub fn run_state(status: &str) -> RunState {
    if status == "OK" {
        RunState::Ok
    } else if status
        .strip_prefix("WARNINGS: ")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        RunState::Warnings
    } else {
        RunState::Error
    }
}

// ------------------------------------------------------------------ following the index

/// A file's identity: a rename keeps it, a new file gets another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What is known of a file now: its identity and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    pub id: FileId,
    pub size: u64,
}

/// Where the reader of the index stopped: the file it read last and the offset after its last
/// whole line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailPosition {
    pub file: Option<FileId>,
    pub offset: u64,
}

/// Which of the two files a read is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `index`
    Current,
    /// `index.1`
    Rotated,
}

/// One read to do: `which` from byte `from` to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailRead {
    pub which: Which,
    pub from: u64,
}

/// What happened to the index since the last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First read: both files from the start.
    First,
    /// Same file, maybe grown.
    Grown,
    /// The file was renamed to `index.1` and a new one started; its rest is read first.
    Rotated,
    /// The same file got smaller (truncated or rewritten in place): read again from the start.
    Shrunk,
    /// The file we read is gone from both names (rotated twice, or deleted): what it got after
    /// our last read is lost; `index.1` and `index` are read whole.
    Lost,
}

/// The reads that bring the reader up to date, given what it read last and the two files now
/// (`None`: the file does not exist). Pure: the caller stats and reads.
pub fn plan(
    position: &TailPosition,
    current: Option<FileState>,
    rotated: Option<FileState>,
) -> (Change, Vec<TailRead>) {
    let read = |which, from| TailRead { which, from };
    let mut reads = Vec::new();
    let Some(last) = position.file else {
        if rotated.is_some() {
            reads.push(read(Which::Rotated, 0));
        }
        if current.is_some() {
            reads.push(read(Which::Current, 0));
        }
        return (Change::First, reads);
    };
    if let Some(now) = current.filter(|c| c.id == last) {
        if now.size < position.offset {
            return (Change::Shrunk, vec![read(Which::Current, 0)]);
        }
        return (Change::Grown, vec![read(Which::Current, position.offset)]);
    }
    let change = match rotated {
        Some(old) if old.id == last => {
            reads.push(read(Which::Rotated, position.offset.min(old.size)));
            Change::Rotated
        }
        Some(_) => {
            reads.push(read(Which::Rotated, 0));
            Change::Lost
        }
        None => Change::Lost,
    };
    if current.is_some() {
        reads.push(read(Which::Current, 0));
    }
    (change, reads)
}

/// The whole lines of `bytes` (up to and including the last `\n`); a line still being written
/// is left for the next read.
pub fn whole_lines(bytes: &[u8]) -> &[u8] {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BACKUP: &str = "UPID:pve1:000A1B2C:0358F2A1:6744C2C2:vzdump::root@pam:";

    #[test]
    fn upids_as_pve_common_reads_them() {
        let upid = Upid::parse(BACKUP).unwrap();
        assert_eq!(
            upid,
            Upid {
                node: "pve1".into(),
                pid: 0x000A_1B2C,
                pstart: 0x0358_F2A1,
                starttime: 0x6744_C2C2,
                kind: "vzdump".into(),
                id: String::new(),
                user: "root@pam".into(),
            }
        );
        assert_eq!(Upid::log_path(BACKUP).unwrap(), format!("2/{BACKUP}"));
        let nine = "UPID:pve-2:0000F00D:1358F2A10:6744C2CF:qmstart:100:admin@pve!token:";
        let upid = Upid::parse(nine).unwrap();
        assert_eq!((upid.pstart, upid.id.as_str()), (0x1_358F_2A10, "100"));
        assert_eq!(Upid::log_path(nine).unwrap(), format!("F/{nine}"));
        for bad in [
            "",
            "UPID:pve1:000A1B2C:0358F2A1:6744C2C2:vzdump::root@pam",
            "UPID:-pve:000A1B2C:0358F2A1:6744C2C2:vzdump::root@pam:",
            "UPID:pve1:A1B2C:0358F2A1:6744C2C2:vzdump::root@pam:",
            "UPID:pve1:000A1B2C:0358F2A1:6744C2CG:vzdump::root@pam:",
            "UPID:pve1:000A1B2C:0358F2A1:6744C2C2:::root@pam:",
            "UPID:pve1:000A1B2C:0358F2A1:6744C2C2:vzdump:::",
            "UPID:pve1:000A1B2C:0358F2A1:6744C2C2:vzdump:1:2:root@pam:",
        ] {
            assert_eq!(Upid::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn index_lines() {
        let text = format!(
            "{BACKUP} 6744C9D0 OK\n\
             UPID:pve1:000B0001:0358F2A1:6744D000:qmstart:100:root@pam: 6744D003 WARNINGS: 1\n\
             garbage line\n\
             UPID:pve1:000B0002:0358F2A1:6744D100:vzdump:101:root@pam: 6744D1FF job errors\n\
             UPID:pve1:000B0003:0358F2A1:6744D200:vzdump:101:root@pam:\n"
        );
        let mut problems = Problems::new();
        let entries = parse_index(&text, 10, &mut problems);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].endtime, Some(0x6744_C9D0));
        assert_eq!(entries[0].status.as_deref(), Some("OK"));
        assert_eq!(entries[1].status.as_deref(), Some("WARNINGS: 1"));
        assert_eq!(entries[2].status.as_deref(), Some("job errors"));
        assert_eq!(
            (entries[3].endtime, entries[3].status.as_deref()),
            (None, None)
        );
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["line 12: \"garbage line\" is not \"UPID ENDTIME STATUS\""]
        );
    }

    #[test]
    fn active_lines() {
        let text = format!(
            "UPID:pve1:000B0009:0358F2A1:6744E000:vzdump::root@pam: 0\n{BACKUP} 1 6744C9D0 OK\n{BACKUP} 2\n"
        );
        let mut problems = Problems::new();
        let entries = parse_active(&text, &mut problems).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].endtime, None);
        assert_eq!(entries[1].status.as_deref(), Some("OK"));
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn states_of_statuses() {
        assert_eq!(run_state("OK"), RunState::Ok);
        assert_eq!(run_state("WARNINGS: 3"), RunState::Warnings);
        assert_eq!(run_state("WARNINGS: x"), RunState::Error);
        assert_eq!(run_state("job errors"), RunState::Error);
        assert_eq!(run_state("unexpected status"), RunState::Error);
    }

    fn state(ino: u64, size: u64) -> Option<FileState> {
        Some(FileState {
            id: FileId { dev: 1, ino },
            size,
        })
    }

    fn at(ino: u64, offset: u64) -> TailPosition {
        TailPosition {
            file: Some(FileId { dev: 1, ino }),
            offset,
        }
    }

    fn r(which: Which, from: u64) -> TailRead {
        TailRead { which, from }
    }

    #[test]
    fn the_first_read_takes_both_files_whole() {
        let (change, reads) = plan(&TailPosition::default(), state(2, 100), state(1, 50_000));
        assert_eq!(change, Change::First);
        assert_eq!(reads, [r(Which::Rotated, 0), r(Which::Current, 0)]);
        let (_, reads) = plan(&TailPosition::default(), None, None);
        assert_eq!(reads, []);
    }

    #[test]
    fn a_grown_index_is_read_from_where_it_stopped() {
        let (change, reads) = plan(&at(2, 100), state(2, 180), state(1, 50_000));
        assert_eq!(change, Change::Grown);
        assert_eq!(reads, [r(Which::Current, 100)]);
        // Nothing new: one read of nothing (the caller skips it).
        assert_eq!(
            plan(&at(2, 180), state(2, 180), None).1,
            [r(Which::Current, 180)]
        );
    }

    #[test]
    fn a_rotated_index_is_finished_then_the_new_one_read() {
        // index (ino 2) was renamed to index.1; a new index (ino 3) started.
        let (change, reads) = plan(&at(2, 49_000), state(3, 80), state(2, 50_040));
        assert_eq!(change, Change::Rotated);
        assert_eq!(reads, [r(Which::Rotated, 49_000), r(Which::Current, 0)]);
        // Renamed, and no new index yet.
        let (change, reads) = plan(&at(2, 49_000), None, state(2, 50_040));
        assert_eq!(change, Change::Rotated);
        assert_eq!(reads, [r(Which::Rotated, 49_000)]);
    }

    #[test]
    fn a_shrunk_or_lost_index_is_noticed() {
        let (change, reads) = plan(&at(2, 500), state(2, 80), None);
        assert_eq!(change, Change::Shrunk);
        assert_eq!(reads, [r(Which::Current, 0)]);
        let (change, reads) = plan(&at(2, 500), state(4, 80), state(3, 50_000));
        assert_eq!(change, Change::Lost);
        assert_eq!(reads, [r(Which::Rotated, 0), r(Which::Current, 0)]);
    }

    #[test]
    fn only_whole_lines_are_taken() {
        assert_eq!(whole_lines(b"a\nb\nc"), b"a\nb\n");
        assert_eq!(whole_lines(b"abc"), b"");
        assert_eq!(whole_lines(b""), b"");
    }
}
