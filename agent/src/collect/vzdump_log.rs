//! What a vzdump run wrote: the task log of a backup job (`/var/log/pve/tasks/<X>/<UPID>`) and
//! the per-guest log of the last run (`/var/log/vzdump/{qemu,lxc}-<vmid>.log`).
//!
//! Both are lines `LEVEL: message` (`INFO:`, `WARN:`, `ERROR:`), written by
//! pve-guest-common `PVE::VZDump::Plugin::debugmsg`; the per-guest log puts the local time
//! before each (`2026-11-25 01:00:02 INFO: ...`). pve-manager `PVE::VZDump`:
//! - `exec_backup`: `starting new backup job: vzdump <arguments>` (task log only), then each
//!   guest, then `Backup job finished successfully` / `with errors`, or
//!   `Backup job failed - <error>`;
//! - `exec_backup_task`, per guest: `Starting Backup of VM <vmid> (<qemu|lxc>)`,
//!   `Backup started at <local time>` (task log only), `creating vzdump archive '<path>'` (or
//!   `creating Proxmox Backup Server archive '<vm/100/...Z>'`), `archive file size: <1.52GB>`
//!   (`format_size`), then `Finished Backup of VM <vmid> (<HH:MM:SS>)` and `Backup finished at
//!   <local time>`, or `Backup of VM <vmid> failed - <error>` and `Failed at <local time>`
//!   (the `... at` lines in the task log only).
//!
//! A task log holds whatever else the guest plugins and hook scripts print: lines this parser
//! does not use are not problems. A line it does use that does not read (`Starting Backup of
//! VM abc`) is skipped and reported.

use common::sample::GuestType;

use super::localtime::LocalDateTime;
use super::problem::{numbered_lines, quote, set_once, Problems};

/// One vzdump log, read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VzdumpLog {
    /// `--storage` of the job's command line (task logs only).
    pub storage: Option<String>,
    /// The guests of the job as its command line names them (`vzdump 100 101 ...`); empty for
    /// `--all` and `--pool`.
    pub listed: Vec<u32>,
    pub guests: Vec<GuestRun>,
    /// The job as a whole failed (`Backup job failed - <error>`).
    pub job_error: Option<String>,
    /// The task's last line: `OK`, `WARNINGS: N` or the error (task logs only).
    pub task_status: Option<String>,
}

/// One guest's part of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestRun {
    pub vmid: u32,
    pub kind: Option<GuestType>,
    /// `Backup started at` (task log), else the time of its first line (per-guest log).
    pub started: Option<LocalDateTime>,
    /// `Backup finished at` / `Failed at` (task log), else the time of the line that ended it
    /// (per-guest log).
    pub ended: Option<LocalDateTime>,
    /// From `Finished Backup of VM <vmid> (HH:MM:SS)`.
    pub duration_seconds: Option<u64>,
    pub archive: Option<String>,
    pub size_bytes: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    Ok,
    Failed(String),
    /// Started, and the log ends (or the job stopped) before it finished.
    #[default]
    Unfinished,
}

/// Parses a task log or a per-guest log. Never fails: a log with no guest is a job that
/// failed before its first guest (or a log of something else). Each fact is taken from the
/// first line that gives it; a repeat (a damaged log, two logs run together) is reported.
pub fn parse(text: &str, problems: &mut Problems) -> Result<VzdumpLog, String> {
    let mut reader = Reader::default();
    for (_, line) in numbered_lines(text) {
        reader.line(line, problems);
    }
    Ok(reader.finish())
}

/// `parse` a line at a time, for logs read from a file without holding them whole (a job of
/// 200 guests writes a few hundred kB).
#[derive(Debug, Default)]
pub struct Reader {
    log: VzdumpLog,
    number: usize,
    /// Guests started so far.
    seen: usize,
}

impl Reader {
    /// What the log said so far: its command line, job error, task status, and the guests not
    /// yet taken by `take_done`.
    pub fn head(&self) -> &VzdumpLog {
        &self.log
    }

    /// How many guests the log started so far.
    pub fn guests_seen(&self) -> usize {
        self.seen
    }

    /// The guests whose part of the log is over (every one but the last started), for a
    /// reader that handles each guest as it goes instead of keeping a job's 200 in memory.
    /// Such a guest left unfinished is not failed by a job error that comes later.
    pub fn take_done(&mut self) -> Vec<GuestRun> {
        let keep = self.log.guests.len().min(1);
        let done = self.log.guests.len() - keep;
        self.log.guests.drain(..done).collect()
    }

    /// The next line (without its line end).
    pub fn line(&mut self, line: &str, problems: &mut Problems) {
        self.number += 1;
        let number = self.number;
        let log = &mut self.log;
        let (time, rest) = split_time(line);
        if let Some(status) = rest.strip_prefix("TASK ") {
            let status = match status.strip_prefix("ERROR: ") {
                Some(error) => error.to_owned(),
                None => status.to_owned(),
            };
            set_once(
                &mut log.task_status,
                status,
                number,
                "TASK status",
                problems,
            );
            return;
        }
        let Some((level, message)) = split_level(rest) else {
            return;
        };
        if let (Some(current), Some(time)) = (log.guests.last_mut(), time) {
            current.started.get_or_insert(time);
        }
        let before = log.guests.len();
        if let Err(message) = read_message(log, level, message, time, number, problems) {
            problems.line(number, message);
        }
        self.seen += log.guests.len() - before;
    }

    /// The log as read; a job that failed took down the guest it was backing up.
    pub fn finish(mut self) -> VzdumpLog {
        if let Some(error) = &self.log.job_error {
            for guest in &mut self.log.guests {
                if guest.outcome == Outcome::Unfinished {
                    guest.outcome = Outcome::Failed(error.clone());
                }
            }
        }
        self.log
    }
}

/// `2026-11-25 01:00:02 INFO: x` → the time and `INFO: x`; other lines unchanged.
fn split_time(line: &str) -> (Option<LocalDateTime>, &str) {
    match line.get(..19).and_then(LocalDateTime::parse) {
        Some(time) if line[19..].starts_with(' ') => (Some(time), &line[20..]),
        _ => (None, line),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Warn,
    Error,
}

fn split_level(line: &str) -> Option<(Level, &str)> {
    for (prefix, level) in [
        ("INFO: ", Level::Info),
        ("WARN: ", Level::Warn),
        ("ERROR: ", Level::Error),
    ] {
        if let Some(message) = line.strip_prefix(prefix) {
            return Some((level, message));
        }
    }
    None
}

fn read_message(
    log: &mut VzdumpLog,
    level: Level,
    message: &str,
    time: Option<LocalDateTime>,
    number: usize,
    problems: &mut Problems,
) -> Result<(), String> {
    if let Some(args) = message.strip_prefix("starting new backup job: vzdump") {
        if log.storage.is_some() || !log.listed.is_empty() {
            return Err("a second \"starting new backup job\" line: ignored".into());
        }
        read_command_line(log, args);
        return Ok(());
    }
    if let Some(rest) = message.strip_prefix("Starting Backup of VM ") {
        let (vmid, kind) = rest
            .split_once(' ')
            .and_then(|(vmid, kind)| Some((vmid.parse::<u32>().ok()?, kind)))
            .ok_or_else(|| format!("{} does not name a guest", quote(message)))?;
        let kind = match kind {
            "(qemu)" => Some(GuestType::Qemu),
            "(lxc)" => Some(GuestType::Lxc),
            _ => None,
        };
        log.guests.push(GuestRun {
            vmid,
            kind,
            started: time,
            ..GuestRun::default()
        });
        return Ok(());
    }
    if let Some(error) = message.strip_prefix("Backup job failed - ") {
        set_once(
            &mut log.job_error,
            error.to_owned(),
            number,
            "job error",
            problems,
        );
        return Ok(());
    }
    let Some(guest) = log.guests.last_mut() else {
        return Ok(());
    };
    if let Some(at) = message.strip_prefix("Backup started at ") {
        let at = local_time(at, message)?;
        set_once(
            &mut guest.started,
            at,
            number,
            "Backup started at",
            problems,
        );
    } else if let Some(at) = message
        .strip_prefix("Backup finished at ")
        .or_else(|| message.strip_prefix("Failed at "))
    {
        let at = local_time(at, message)?;
        set_once(&mut guest.ended, at, number, "Backup finished at", problems);
    } else if let Some(rest) = message.strip_prefix("Finished Backup of VM ") {
        let duration = rest
            .split_once(" (")
            .filter(|(vmid, _)| vmid.parse() == Ok(guest.vmid))
            .and_then(|(_, d)| d.strip_suffix(')'))
            .and_then(parse_duration)
            .ok_or_else(|| format!("{} does not read", quote(message)))?;
        finish(guest, Outcome::Ok, time)?;
        guest.duration_seconds = Some(duration);
    } else if let Some(rest) = message.strip_prefix("Backup of VM ") {
        if level == Level::Error {
            let (vmid, error) = rest
                .split_once(" failed - ")
                .ok_or_else(|| format!("{} does not read", quote(message)))?;
            if vmid.parse() != Ok(guest.vmid) {
                return Err(format!(
                    "{}: not the guest being backed up ({})",
                    quote(message),
                    guest.vmid
                ));
            }
            finish(guest, Outcome::Failed(error.to_owned()), time)?;
        }
    } else if let Some(rest) = message
        .strip_prefix("creating vzdump archive ")
        .or_else(|| message.strip_prefix("creating Proxmox Backup Server archive "))
        .or_else(|| message.strip_prefix("creating archive "))
    {
        let name = rest
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .ok_or_else(|| format!("{} does not read", quote(message)))?;
        set_once(
            &mut guest.archive,
            name.to_owned(),
            number,
            "archive",
            problems,
        );
    } else if let Some(size) = message.strip_prefix("archive file size: ") {
        let size = parse_size(size).ok_or_else(|| format!("{} does not read", quote(message)))?;
        set_once(
            &mut guest.size_bytes,
            size,
            number,
            "archive file size",
            problems,
        );
    }
    Ok(())
}

/// The guest's outcome, once; a per-guest log's line time is when it ended.
fn finish(
    guest: &mut GuestRun,
    outcome: Outcome,
    time: Option<LocalDateTime>,
) -> Result<(), String> {
    if guest.outcome != Outcome::Unfinished {
        return Err(format!("guest {} already ended: ignored", guest.vmid));
    }
    guest.outcome = outcome;
    if let Some(time) = time {
        guest.ended.get_or_insert(time);
    }
    Ok(())
}

fn local_time(at: &str, message: &str) -> Result<LocalDateTime, String> {
    LocalDateTime::parse(at).ok_or_else(|| format!("{}: not a time", quote(message)))
}

/// The arguments of `vzdump 100 101 --storage local --mode snapshot ...`: the VMIDs listed and
/// the storage. Values may be quoted (`--notes-template '{{guestname}}'`).
fn read_command_line(log: &mut VzdumpLog, args: &str) {
    let words = split_args(args);
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if let Some(option) = word.strip_prefix("--") {
            let value = words.get(i + 1).filter(|v| !v.starts_with("--"));
            if option == "storage" {
                log.storage = value.cloned();
            }
            i += if value.is_some() { 2 } else { 1 };
            continue;
        }
        log.listed.extend(
            word.split(',')
                .filter_map(|v| v.parse::<u32>().ok())
                .filter(|v| *v > 0),
        );
        i += 1;
    }
}

/// Splits a command line as a shell would split simple words and single or double quotes.
fn split_args(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `HH:MM:SS` (hours may have more digits) → seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let mut parts = text.split(':');
    let mut number = || -> Option<u64> {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (h, m, s) = (number()?, number()?, number()?);
    if parts.next().is_some() || m >= 60 || s >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// vzdump's `format_size`: `123KB`, `45MB` (whole), `1.52GB`, `2.01TB` (two decimals), in
/// powers of 1024. Also takes the `KiB` spelling.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    let power = match unit.trim() {
        "B" => 0,
        "KB" | "KiB" => 1,
        "MB" | "MiB" => 2,
        "GB" | "GiB" => 3,
        "TB" | "TiB" => 4,
        "PB" | "PiB" => 5,
        _ => return None,
    };
    let bytes = value * 1024f64.powi(power);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite, ≥ 0, < 2^63
    (bytes < 9.0e18).then(|| bytes.round() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<LocalDateTime> {
        LocalDateTime::parse(text)
    }

    fn read(text: &str) -> (VzdumpLog, Vec<String>) {
        let mut problems = Problems::new();
        let log = parse(text, &mut problems).unwrap();
        (log, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_job_of_two_guests_one_failing() {
        let (log, problems) = read(include_str!(
            "../../../fixtures/pve-node/var/log/pve/tasks/2/UPID:pve1:0003C4D8:0358F2A1:6B062502:vzdump::root@pam:"
        ));
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(log.storage.as_deref(), Some("local"));
        assert_eq!(log.listed, [100, 101]);
        assert_eq!(log.task_status.as_deref(), Some("job errors"));
        assert_eq!(log.guests.len(), 2);
        let vm = &log.guests[0];
        assert_eq!(vm.vmid, 100);
        assert_eq!(vm.kind, Some(GuestType::Qemu));
        assert_eq!(vm.outcome, Outcome::Ok);
        assert_eq!(vm.started, at("2026-11-25 01:00:03"));
        assert_eq!(vm.ended, at("2026-11-25 01:01:48"));
        assert_eq!(vm.duration_seconds, Some(105));
        assert_eq!(vm.size_bytes, Some(1_632_087_572)); // 1.52GB
        assert_eq!(
            vm.archive.as_deref(),
            Some("/var/lib/vz/dump/vzdump-qemu-100-2026_11_25-01_00_03.vma.zst")
        );
        let ct = &log.guests[1];
        assert_eq!(ct.kind, Some(GuestType::Lxc));
        assert_eq!(
            ct.outcome,
            Outcome::Failed(
                "command 'rsync --stats -h -X -A --numeric-ids -aH --delete --no-whole-file --sparse --one-file-system --relative '--exclude=/tmp/?*' '--exclude=/var/tmp/?*' '--exclude=/var/run/?*.pid' /proc/2467/root//./ /var/tmp/vzdumptmp41234_101' failed: exit code 23".into()
            )
        );
        assert_eq!(ct.ended, at("2026-11-25 01:02:10"));
    }

    #[test]
    fn a_reader_hands_over_each_guest_when_its_part_is_over() {
        let mut reader = Reader::default();
        let mut problems = Problems::new();
        let mut done = Vec::new();
        for line in include_str!(
            "../../../fixtures/pve-node/var/log/pve/tasks/2/UPID:pve1:0003C4D8:0358F2A1:6B062502:vzdump::root@pam:"
        )
        .lines()
        {
            reader.line(line, &mut problems);
            done.extend(reader.take_done().into_iter().map(|g| g.vmid));
        }
        assert_eq!(done, [100]);
        assert_eq!(reader.guests_seen(), 2);
        assert_eq!(reader.head().storage.as_deref(), Some("local"));
        let rest = reader.finish();
        assert_eq!(rest.guests.len(), 1);
        assert_eq!(rest.guests[0].vmid, 101);
        assert!(problems.is_empty());
    }

    #[test]
    fn per_guest_log_times_come_from_its_lines() {
        let text = "2026-11-25 01:01:48 INFO: Starting Backup of VM 101 (lxc)\n\
                    2026-11-25 01:01:48 INFO: status = running\n\
                    2026-11-25 01:02:10 ERROR: Backup of VM 101 failed - no space left\n";
        let (log, problems) = read(text);
        assert!(problems.is_empty());
        let ct = &log.guests[0];
        assert_eq!(
            (ct.started, ct.ended),
            (at("2026-11-25 01:01:48"), at("2026-11-25 01:02:10"))
        );
        assert_eq!(ct.outcome, Outcome::Failed("no space left".into()));
    }

    #[test]
    fn a_job_that_failed_before_its_guests_and_one_cut_short() {
        let (log, _) = read("INFO: starting new backup job: vzdump --all 1 --exclude 102 --storage nas --mode snapshot\nERROR: Backup job failed - interrupted by signal\nTASK ERROR: interrupted by signal\n");
        assert_eq!((log.listed.len(), log.storage.as_deref()), (0, Some("nas")));
        assert_eq!(log.job_error.as_deref(), Some("interrupted by signal"));
        assert!(log.guests.is_empty());
        let (log, _) = read("INFO: Starting Backup of VM 100 (qemu)\nINFO: Backup started at 2026-11-25 01:00:03\nERROR: Backup job failed - interrupted by signal\n");
        assert_eq!(
            log.guests[0].outcome,
            Outcome::Failed("interrupted by signal".into())
        );
        let (log, _) = read("INFO: Starting Backup of VM 100 (qemu)\nINFO: status = running\n");
        assert_eq!(log.guests[0].outcome, Outcome::Unfinished);
    }

    #[test]
    fn lines_it_uses_that_do_not_read_are_reported() {
        let (log, problems) = read("INFO: Starting Backup of VM x (qemu)\nINFO: Starting Backup of VM 7 (qemu)\nINFO: Backup started at yesterday\nINFO: archive file size: lots\nINFO: Finished Backup of VM 7 (1:2)\nsome output of a hook script\n");
        assert_eq!(log.guests.len(), 1);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("line 1: "));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512KB"), Some(524_288));
        assert_eq!(parse_size("45MB"), Some(47_185_920));
        assert_eq!(parse_size("1.52GB"), Some(1_632_087_572));
        assert_eq!(parse_size("2.01TB"), Some(2_210_018_371_830));
        assert_eq!(parse_size("3.5 GiB"), Some(3_758_096_384));
        for bad in ["", "GB", "1.2.3GB", "12XB", "-1GB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("00:01:45"), Some(105));
        assert_eq!(parse_duration("100:00:00"), Some(360_000));
        assert_eq!(parse_duration("00:61:00"), None);
        assert_eq!(parse_duration("1:2"), None);
        assert_eq!(
            split_args(" 100 101 --notes-template '{{guestname}} x' --storage local"),
            [
                "100",
                "101",
                "--notes-template",
                "{{guestname}} x",
                "--storage",
                "local"
            ]
        );
    }
}
