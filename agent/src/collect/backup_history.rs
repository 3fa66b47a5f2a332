//! What the agent has learnt of backups so far: per guest the last good and the last failed
//! backup, the end of each backup task, and where it stopped reading the task index and the
//! per-guest vzdump logs. The collector feeds it what it reads (`collect::operations`); this
//! module does no I/O.
//!
//! Results are kept by end time: a result older than the one held is ignored, so reading the
//! same run twice (from the task log and from the guest's own vzdump log) changes nothing.

use std::collections::{BTreeMap, HashMap};

use common::sample::{BackupFailure, BackupRun, GuestType};

use super::localtime::{LocalDateTime, LocalZone};
use super::tasks::{TailPosition, Upid};
use super::vzdump_log::{GuestRun, Outcome};

/// Backup task ends kept for the jobs' last runs: far more than the index holds.
const MAX_TASKS: usize = 4096;

/// One guest's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestRecord {
    pub kind: Option<GuestType>,
    pub last_success: Option<BackupRun>,
    pub last_failure: Option<BackupFailure>,
}

/// How a backup task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub endtime: Option<u64>,
    pub status: Option<String>,
    /// How many guests its log tells of; `None` when the log was not read (gone).
    pub guests: Option<usize>,
}

/// A per-guest vzdump log as last read: identity, size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

#[derive(Debug, Default)]
pub struct BackupHistory {
    /// Where the task index was read up to.
    pub index: TailPosition,
    /// Lines of the current index before `index.offset`, for the line numbers of problems.
    pub index_lines: usize,
    guests: HashMap<u32, GuestRecord>,
    /// Backup tasks by UPID.
    tasks: BTreeMap<String, TaskEnd>,
    /// Per-guest vzdump logs as last read, by their path.
    pub guest_logs: HashMap<String, FileStamp>,
}

/// One guest's part of a run, turned into UNIX times.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestResult {
    Success(BackupRun),
    Failure(BackupFailure),
}

impl BackupHistory {
    pub fn guest(&self, vmid: u32) -> Option<&GuestRecord> {
        self.guests.get(&vmid)
    }

    /// How a backup task ended, if it did and is known.
    pub fn task(&self, upid: &str) -> Option<&TaskEnd> {
        self.tasks.get(upid)
    }

    pub fn record_task(&mut self, upid: &str, end: TaskEnd) {
        self.tasks.insert(upid.to_owned(), end);
        while self.tasks.len() > MAX_TASKS {
            // UPIDs of one node sort by pid, not time; dropping any old one is fine here.
            if let Some(first) = self.tasks.keys().next().cloned() {
                self.tasks.remove(&first);
            }
        }
    }

    /// Records a guest's result; one older than what is held changes nothing.
    pub fn record(&mut self, vmid: u32, kind: Option<GuestType>, result: GuestResult) {
        let record = self.guests.entry(vmid).or_default();
        if kind.is_some() {
            record.kind = kind;
        }
        match result {
            GuestResult::Success(run) => {
                let newer = record.last_success.as_ref().map_or(true, |held| {
                    run.end_time > held.end_time
                        || (run.end_time == held.end_time && richer(&run, held))
                });
                if newer {
                    record.last_success = Some(run);
                }
            }
            GuestResult::Failure(failure) => {
                let newer = record
                    .last_failure
                    .as_ref()
                    .map_or(true, |held| failure.end_time > held.end_time);
                if newer {
                    record.last_failure = Some(failure);
                }
            }
        }
    }
}

/// Of two records of the same run, the one that knows more (a task log names the storage, a
/// per-guest log does not).
fn richer(new: &BackupRun, held: &BackupRun) -> bool {
    let known = |r: &BackupRun| {
        usize::from(r.storage.is_some())
            + usize::from(r.size_bytes.is_some())
            + usize::from(r.upid.is_some())
            + usize::from(r.duration_seconds.is_some())
    };
    known(new) > known(held)
}

/// What a backup log says of one guest's part of a run; `None` while it runs. `end` is when
/// the task ended (index), used for a guest whose log has no time; a guest left unfinished by
/// a task that ended counts as failed with the task's status. `storage` is the job's
/// (`--storage`); without it `storage_of` names the storage of the archive's path (per-guest
/// logs).
pub fn guest_result(
    guest: &GuestRun,
    storage: Option<&str>,
    upid: Option<&str>,
    end: Option<u64>,
    status: Option<&str>,
    zone: &LocalZone,
    storage_of: &dyn Fn(&str) -> Option<String>,
) -> Option<GuestResult> {
    let unix = |t: Option<LocalDateTime>| -> Option<u64> {
        t.and_then(|t| u64::try_from(zone.to_unix(t)).ok())
    };
    let end_time = unix(guest.ended).or(end)?;
    let start = unix(guest.started);
    Some(match &guest.outcome {
        Outcome::Ok => GuestResult::Success(BackupRun {
            end_time,
            duration_seconds: guest
                .duration_seconds
                .or_else(|| start.map(|s| end_time.saturating_sub(s))),
            size_bytes: guest.size_bytes,
            storage: storage
                .map(str::to_owned)
                .or_else(|| guest.archive.as_deref().and_then(storage_of)),
            archive: guest.archive.clone(),
            upid: upid.map(str::to_owned),
        }),
        Outcome::Failed(message) => GuestResult::Failure(BackupFailure {
            end_time,
            message: message.clone(),
            upid: upid.map(str::to_owned),
        }),
        Outcome::Unfinished => {
            // Still running, unless the task ended.
            let end = end?;
            GuestResult::Failure(BackupFailure {
                end_time: end.max(end_time),
                message: format!(
                    "the backup did not finish (task: {})",
                    status.unwrap_or("no status")
                ),
                upid: upid.map(str::to_owned),
            })
        }
    })
}

/// What the index alone says of a single-guest backup task (`vzdump` with the VMID as the
/// UPID's id) whose log is gone.
pub fn index_result(task: &Upid, upid: &str, end: u64, status: &str) -> Option<(u32, GuestResult)> {
    let vmid: u32 = task.id.parse().ok()?;
    let result = if super::tasks::run_state(status) == common::sample::RunState::Error {
        GuestResult::Failure(BackupFailure {
            end_time: end,
            message: status.to_owned(),
            upid: Some(upid.to_owned()),
        })
    } else {
        GuestResult::Success(BackupRun {
            end_time: end,
            duration_seconds: Some(end.saturating_sub(task.starttime)),
            upid: Some(upid.to_owned()),
            ..BackupRun::default()
        })
    };
    Some((vmid, result))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn success(end: u64) -> GuestResult {
        GuestResult::Success(BackupRun {
            end_time: end,
            ..BackupRun::default()
        })
    }

    fn failure(end: u64, message: &str) -> GuestResult {
        GuestResult::Failure(BackupFailure {
            end_time: end,
            message: message.into(),
            upid: None,
        })
    }

    #[test]
    fn newer_results_win_and_repeats_change_nothing() {
        let mut history = BackupHistory::default();
        history.record(100, Some(GuestType::Qemu), success(200));
        history.record(100, None, success(100));
        history.record(100, None, failure(300, "disk full"));
        history.record(100, None, failure(250, "older"));
        history.record(100, None, failure(300, "disk full"));
        let record = history.guest(100).unwrap();
        assert_eq!(record.kind, Some(GuestType::Qemu));
        assert_eq!(record.last_success.as_ref().unwrap().end_time, 200);
        assert_eq!(record.last_failure.as_ref().unwrap().message, "disk full");
        // The same run with more detail replaces the poorer record of it.
        history.record(
            100,
            None,
            GuestResult::Success(BackupRun {
                end_time: 200,
                storage: Some("nas".into()),
                ..BackupRun::default()
            }),
        );
        assert_eq!(
            history
                .guest(100)
                .unwrap()
                .last_success
                .as_ref()
                .unwrap()
                .storage
                .as_deref(),
            Some("nas")
        );
    }

    #[test]
    fn single_guest_tasks_from_the_index_alone() {
        let upid = "UPID:pve1:00001234:00ABCDEF:6744C2C2:vzdump:101:root@pam:";
        let task = Upid::parse(upid).unwrap();
        let (vmid, result) = index_result(&task, upid, 0x6744_C300, "OK").unwrap();
        assert_eq!(vmid, 101);
        match result {
            GuestResult::Success(run) => assert_eq!(run.duration_seconds, Some(0x3E)),
            other => panic!("{other:?}"),
        }
        let (_, result) = index_result(&task, upid, 0x6744_C300, "WARNINGS: 2").unwrap();
        assert!(matches!(result, GuestResult::Success(_)));
        let (_, result) = index_result(&task, upid, 0x6744_C300, "job errors").unwrap();
        assert!(matches!(result, GuestResult::Failure(f) if f.message == "job errors"));
        let several =
            Upid::parse("UPID:pve1:00001234:00ABCDEF:6744C2C2:vzdump::root@pam:").unwrap();
        assert_eq!(index_result(&several, upid, 1, "OK"), None);
    }
}
