//! The node's operational state, read into the samples: temperatures (fast; drive sensors
//! slow), backups, replication and HA (medium), SMART (slow). The parsers are `hwmon`,
//! `tasks`, `vzdump_log`, `jobs`, `replication`, `ha` and `smart`; this is the I/O around them
//! and what the collector keeps between cycles.
//!
//! Why these intervals: a temperature changes within seconds and costs one small sysfs read
//! per sensor, so it is fast; but reading a `drivetemp` sensor sends a command to the disk
//! (and keeps some drives from spinning down, kernel `Documentation/hwmon/drivetemp.rst`), so
//! drive sensors are read with SMART. Backups, replication and HA change at most every few
//! minutes and are files that pmxcfs or Proxmox's daemons rewrite: the medium interval. SMART
//! runs `smartctl` once per disk, which costs milliseconds of CPU and I/O on the disk;
//! attributes move over hours and days, and smartd itself polls every 30 minutes: the slow
//! interval.
//!
//! Backups are read incrementally: the task index is followed from where it stopped (a rename
//! to `index.1` is noticed by the file's identity, a rewrite by its size), each backup task's
//! log is read once, when the index says the task ended, and a guest's own vzdump log only when
//! it changed. At start the agent reads `index.1` and `index` whole (Proxmox keeps at most
//! ~100 kB there) and the logs of the backup tasks they list.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::sample::{
    BackupJob, GuestBackup, GuestType, HaStatus, JobRun, ReplicationJob, RunState, SmartDisk,
    SourceError, Temperature,
};

use super::backup_history::{self, FileStamp, GuestResult, TaskEnd};
use super::command::CommandError;
use super::jobs::{self, JobConf};
use super::localtime::LocalZone;
use super::pmxcfs::VmListEntry;
use super::problem::Problems;
use super::storage::StorageConf;
use super::tasks::{self, Change, FileId, FileState, TailPosition, Upid, Which};
use super::{ha, hwmon, problem, read_bytes, replication, smart, vzdump_log, whole, Collector};

/// The most of a task log or index read at once; Proxmox's are far smaller.
const MAX_READ: u64 = 16 * 1024 * 1024;

const TASKS: &str = "var/log/pve/tasks";

/// A temperature sensor found when the chips were listed.
#[derive(Debug, Clone)]
pub(super) struct Sensor {
    /// Everything but the value.
    template: Temperature,
    /// Its `tempN_input`, relative to the root.
    input: String,
}

/// The hwmon chips as last listed: `(hwmonN, name)` pairs, and their sensors.
#[derive(Debug, Clone, Default)]
pub(super) struct Sensors {
    chips: Vec<(String, String)>,
    sensors: Vec<Sensor>,
}

/// What the medium cycle knows of the node, shared by backups, replication and HA.
pub(super) struct NodeView<'a> {
    pub node: &'a str,
    /// Every guest of the cluster (`.vmlist`).
    pub vmlist: &'a [VmListEntry],
    /// `storage.cfg`, to name the storage of an archive path.
    pub storages: &'a [StorageConf],
}

impl NodeView<'_> {
    fn local(&self, vmid: u32) -> bool {
        self.vmlist
            .iter()
            .any(|e| e.vmid == vmid && e.node == self.node)
    }

    fn node_of(&self, vmid: u32) -> Option<String> {
        self.vmlist
            .iter()
            .find(|e| e.vmid == vmid)
            .map(|e| e.node.clone())
    }

    /// The storage whose dump directory holds `archive` (`<path>/dump/...` of a `dir`-like
    /// storage).
    fn storage_of(&self, archive: &str) -> Option<String> {
        self.storages
            .iter()
            .filter_map(|s| Some((s, s.path.as_deref()?)))
            .find(|(_, path)| {
                archive
                    .strip_prefix(path.trim_end_matches('/'))
                    .is_some_and(|rest| rest.starts_with("/dump/"))
            })
            .map(|(s, _)| s.id.clone())
    }
}

impl Collector {
    // ---------------------------------------------------------------- temperatures

    /// The non-drive sensors' values (fast cycle). The chips are listed the first time and
    /// again when a sensor file vanished.
    pub(super) fn temperatures(&mut self, errors: &mut Vec<SourceError>) -> Vec<Temperature> {
        self.read_sensors(false, errors)
    }

    /// The drive sensors' values (slow cycle).
    pub(super) fn drive_temperatures(&mut self, errors: &mut Vec<SourceError>) -> Vec<Temperature> {
        self.read_sensors(true, errors)
    }

    /// Reads the value of every sensor that is (`drives`) or is not a `drivetemp` one.
    fn read_sensors(&mut self, drives: bool, errors: &mut Vec<SourceError>) -> Vec<Temperature> {
        if self.sensors.is_none() {
            self.list_sensors(errors);
        }
        let Some(listed) = self.sensors.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut vanished = false;
        for sensor in listed
            .sensors
            .iter()
            .filter(|s| (s.template.chip == "drivetemp") == drives)
        {
            let mut temperature = sensor.template.clone();
            match read_bytes(&self.root.join(&sensor.input)) {
                Ok(bytes) => {
                    let mut problems = Problems::new();
                    let text = problem::decode(&bytes, &mut problems);
                    match hwmon::parse_millidegrees(&text) {
                        Ok(value) => temperature.celsius = Some(value),
                        Err(message) => problems.line(1, message),
                    }
                    if !problems.is_empty() {
                        self.report(&format!("/{}", sensor.input), problems, errors);
                    }
                }
                Err(super::Error::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    vanished = true;
                }
                // A sensor that cannot be read now (`ENODATA`, `EIO`: many chips do that for a
                // sensor that is not wired) has no value; said once, not every cycle.
                Err(e) => self.note_absent(&sensor.input, &format!("{e}: no value for it")),
            }
            out.push(temperature);
        }
        if !vanished {
            self.sensors = Some(listed);
        }
        out
    }

    /// Lists the hwmon chips again when their set changed (medium cycle): a hot-plugged NVMe
    /// brings its sensors.
    pub(super) fn refresh_sensors(&mut self, errors: &mut Vec<SourceError>) {
        let chips = self.hwmon_chips(errors);
        if self.sensors.as_ref().map(|s| &s.chips) != Some(&chips) {
            self.list_sensors(errors);
        }
    }

    /// `(hwmonN, name)` of every chip, in hwmon order.
    fn hwmon_chips(&mut self, errors: &mut Vec<SourceError>) -> Vec<(String, String)> {
        let class = "sys/class/hwmon";
        let Ok(entries) = std::fs::read_dir(self.root.join(class)) else {
            self.note_absent("hwmon", "no /sys/class/hwmon: no temperatures");
            return Vec::new();
        };
        let mut dirs: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("hwmon"))
            .collect();
        dirs.sort_by_key(|n| (n.len(), n.clone()));
        dirs.into_iter()
            .map(|dir| {
                let name = self
                    .optional_source(
                        &format!("{class}/{dir}/name"),
                        whole(hwmon::parse_name),
                        errors,
                    )
                    .unwrap_or_else(|| dir.clone());
                (dir, name)
            })
            .collect()
    }

    fn list_sensors(&mut self, errors: &mut Vec<SourceError>) {
        let chips = self.hwmon_chips(errors);
        let mut sensors = Vec::new();
        for (dir, chip) in &chips {
            let base = format!("sys/class/hwmon/{dir}");
            let mut inputs = self.sensor_indexes(&base);
            let mut files_dir = base.clone();
            if inputs.is_empty() {
                files_dir = format!("{base}/device");
                inputs = self.sensor_indexes(&files_dir);
            }
            let device_path = self.root.join(&base).join("device");
            let device = std::fs::read_link(&device_path)
                .ok()
                .and_then(|link| link.file_name()?.to_str().map(str::to_owned))
                .unwrap_or_else(|| dir.clone());
            let disk = match chip.as_str() {
                "nvme" => first_entry(&device_path, hwmon::nvme_namespace),
                "drivetemp" => first_entry(&device_path.join("block"), |n| Some(n.to_owned())),
                _ => None,
            };
            for index in inputs {
                let file = |attr: &str| format!("{files_dir}/temp{index}_{attr}");
                let label = self.optional_source(&file("label"), whole(hwmon::parse_label), errors);
                let max = self
                    .optional_source(&file("max"), whole(hwmon::parse_threshold), errors)
                    .flatten();
                let crit = self
                    .optional_source(&file("crit"), whole(hwmon::parse_threshold), errors)
                    .flatten();
                sensors.push(Sensor {
                    template: Temperature {
                        chip: chip.clone(),
                        device: device.clone(),
                        sensor: format!("temp{index}"),
                        label,
                        disk: disk.clone(),
                        celsius: None,
                        max_celsius: max,
                        crit_celsius: crit,
                    },
                    input: file("input"),
                });
            }
        }
        self.sensors = Some(Sensors { chips, sensors });
    }

    /// The N of every `tempN_input` in `dir`, sorted.
    fn sensor_indexes(&self, dir: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.root.join(dir)) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| match hwmon::sensor_file(&n) {
                Some((index, hwmon::Attribute::Input)) => Some(index),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out
    }

    // ---------------------------------------------------------------- backups

    /// The backup jobs of this node and every local guest's backups (medium cycle).
    pub(super) fn backups(
        &mut self,
        view: &NodeView<'_>,
        errors: &mut Vec<SourceError>,
    ) -> (Vec<BackupJob>, Vec<GuestBackup>) {
        let zone = self.local_zone(errors);
        if self.root.join(TASKS).is_dir() {
            self.follow_task_index(view, &zone, errors);
        } else {
            self.note_absent("tasks", "no /var/log/pve/tasks: no backup history");
        }
        let running = self.running_backups(errors);
        self.read_guest_logs(view, &zone, errors);

        let (jobs, jobs_known) = self.backup_jobs(errors);
        let locals: Vec<&VmListEntry> =
            view.vmlist.iter().filter(|e| e.node == view.node).collect();
        let cluster: BTreeMap<u32, String> = view
            .vmlist
            .iter()
            .map(|e| (e.vmid, e.node.clone()))
            .collect();
        let pools = if jobs.iter().any(|j| j.pool.is_some()) {
            match self.optional_source("etc/pve/user.cfg", jobs::parse_pools, errors) {
                Some(pools) => Some(pools),
                None if !self.exists("etc/pve/user.cfg") => Some(BTreeMap::new()),
                None => None,
            }
        } else {
            Some(BTreeMap::new())
        };
        let mut out_jobs = Vec::new();
        let mut covering: HashMap<u32, Vec<String>> = HashMap::new();
        for job in &jobs {
            if job.node.as_deref().is_some_and(|n| n != view.node) {
                continue;
            }
            let selection = job.selection();
            let guests: Vec<u32> = selection
                .guests(&cluster, pools.as_ref().unwrap_or(&BTreeMap::new()))
                .into_iter()
                .filter(|v| locals.iter().any(|e| e.vmid == *v))
                .collect();
            if job.is_enabled() {
                for vmid in &guests {
                    covering.entry(*vmid).or_default().push(job.id.clone());
                }
            }
            let last_run = if job.legacy {
                None
            } else {
                self.job_run(job, &guests, errors)
            };
            out_jobs.push(BackupJob {
                id: job.id.clone(),
                schedule: job.schedule.clone(),
                enabled: job.is_enabled(),
                storage: job.storage.clone(),
                node: job.node.clone(),
                selection: selection.describe(),
                guests,
                comment: job.comment.clone(),
                last_run,
            });
        }
        let coverage_known = jobs_known && pools.is_some();
        let backups = locals
            .iter()
            .map(|entry| {
                let record = self.backup_history.guest(entry.vmid);
                GuestBackup {
                    vmid: entry.vmid,
                    kind: entry.kind,
                    jobs: coverage_known
                        .then(|| covering.get(&entry.vmid).cloned().unwrap_or_default()),
                    last_success: record.and_then(|r| r.last_success.clone()),
                    last_failure: record.and_then(|r| r.last_failure.clone()),
                    running: running.contains(&entry.vmid),
                }
            })
            .collect();
        (out_jobs, backups)
    }

    /// The node's zone (`/etc/localtime`); UTC without one.
    fn local_zone(&mut self, errors: &mut Vec<SourceError>) -> LocalZone {
        let path = self.root.join("etc/localtime");
        match read_bytes(&path) {
            Ok(bytes) => LocalZone::from_tzif(&bytes).unwrap_or_else(|message| {
                errors.push(SourceError {
                    source: "/etc/localtime".into(),
                    message: format!("{message}: vzdump's times are read as UTC"),
                });
                LocalZone::utc()
            }),
            Err(_) => {
                self.note_absent("localtime", "no /etc/localtime: the node runs on UTC");
                LocalZone::utc()
            }
        }
    }

    /// Reads what the index got since the last cycle, and the log of every backup task in it.
    fn follow_task_index(
        &mut self,
        view: &NodeView<'_>,
        zone: &LocalZone,
        errors: &mut Vec<SourceError>,
    ) {
        let dir = self.root.join(TASKS);
        let current = file_state(&dir.join("index"));
        let rotated = file_state(&dir.join("index.1"));
        let position = self.backup_history.index;
        let (change, reads) = tasks::plan(&position, current, rotated);
        match change {
            Change::Rotated => log::info!("task index rotated: reading the rest of index.1, then the new index"),
            Change::Shrunk => log::info!("task index got smaller: read again from its start"),
            Change::Lost if position.file.is_some() => log::warn!(
                "task index replaced twice since the last read: tasks that ended in between may be missed"
            ),
            _ => {}
        }
        let mut entries = Vec::new();
        for read in reads {
            let (name, state) = match read.which {
                Which::Current => ("index", current),
                Which::Rotated => ("index.1", rotated),
            };
            let Some(state) = state else { continue };
            let source = format!("/{TASKS}/{name}");
            let bytes = match read_from(&dir.join(name), state.id, read.from) {
                Ok(Some(bytes)) => bytes,
                // Renamed between the stat and the open: next cycle.
                Ok(None) => return,
                Err(message) => {
                    errors.push(SourceError { source, message });
                    return;
                }
            };
            let whole_lines = tasks::whole_lines(&bytes);
            let first_line = if read.from == 0 {
                1
            } else if Some(state.id) == position.file {
                self.backup_history.index_lines + 1
            } else {
                1
            };
            let mut problems = Problems::new();
            let text = problem::decode(whole_lines, &mut problems);
            let backup_task = |task: &Upid| task.kind == "vzdump" && task.node == view.node;
            entries.extend(tasks::parse_index_where(
                &text,
                first_line,
                backup_task,
                &mut problems,
            ));
            self.report(&source, problems, errors);
            let lines = text.lines().count();
            let offset = read.from + whole_lines.len() as u64;
            if read.which == Which::Current || current.is_none() {
                self.backup_history.index = TailPosition {
                    file: Some(state.id),
                    offset,
                };
                self.backup_history.index_lines = first_line - 1 + lines;
            }
        }
        for entry in entries {
            let guests = self.read_task_log(&entry, view, zone, errors);
            self.backup_history.record_task(
                &entry.upid,
                TaskEnd {
                    endtime: entry.endtime,
                    status: entry.status.clone(),
                    guests,
                },
            );
        }
    }

    /// Reads a finished backup task's log into the history; returns how many guests it tells
    /// of (`None`: no log).
    fn read_task_log(
        &mut self,
        entry: &tasks::IndexEntry,
        view: &NodeView<'_>,
        zone: &LocalZone,
        errors: &mut Vec<SourceError>,
    ) -> Option<usize> {
        let log_path = Upid::log_path(&entry.upid)?;
        let relative = format!("{TASKS}/{log_path}");
        let status = entry.status.as_deref();
        let storage_of = |archive: &str| view.storage_of(archive);
        // Each guest is recorded as its part of the log ends: a job's 200 guests are never
        // all in memory.
        let mut history = std::mem::take(&mut self.backup_history);
        let mut record = |guest: vzdump_log::GuestRun, head: &vzdump_log::VzdumpLog| {
            let result = backup_history::guest_result(
                &guest,
                head.storage.as_deref(),
                Some(&entry.upid),
                entry.endtime,
                status,
                zone,
                &storage_of,
            );
            if let Some(result) = result {
                history.record(guest.vmid, guest.kind, result);
            }
        };
        let read = self.read_vzdump_log(&relative, errors, &mut record);
        self.backup_history = history;
        match read {
            Some((log, 0)) => {
                // A job that failed before its first guest: each guest its command line
                // names failed with it.
                if let (Some(end), Some(status)) = (entry.endtime, status) {
                    if tasks::run_state(status) == RunState::Error {
                        for vmid in &log.listed {
                            self.backup_history.record(
                                *vmid,
                                None,
                                failure(
                                    end,
                                    log.job_error.as_deref().unwrap_or(status),
                                    &entry.upid,
                                ),
                            );
                        }
                    }
                }
                Some(0)
            }
            Some((_, seen)) => Some(seen),
            None => {
                if let (Some(end), Some(status)) = (entry.endtime, status) {
                    if let Some((vmid, result)) =
                        backup_history::index_result(&entry.task, &entry.upid, end, status)
                    {
                        self.backup_history.record(vmid, None, result);
                    }
                }
                None
            }
        }
    }

    /// Guests whose backup runs now (`active`): the VMID of a single-guest task, else the
    /// guest the task log last started and did not finish.
    fn running_backups(&mut self, errors: &mut Vec<SourceError>) -> Vec<u32> {
        let path = format!("{TASKS}/active");
        let Some(active) = self.optional_source(&path, tasks::parse_active, errors) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in active
            .iter()
            .filter(|e| e.task.kind == "vzdump" && e.endtime.is_none())
        {
            if let Ok(vmid) = entry.task.id.parse::<u32>() {
                out.push(vmid);
                continue;
            }
            let Some(log_path) = Upid::log_path(&entry.upid) else {
                continue;
            };
            let relative = format!("{TASKS}/{log_path}");
            if let Some((log, _)) = self.read_vzdump_log(&relative, errors, &mut |_, _| {}) {
                out.extend(
                    log.guests
                        .iter()
                        .filter(|g| g.outcome == vzdump_log::Outcome::Unfinished)
                        .map(|g| g.vmid),
                );
            }
        }
        out
    }

    /// Each local guest's `/var/log/vzdump/<type>-<vmid>.log`, when it changed.
    fn read_guest_logs(
        &mut self,
        view: &NodeView<'_>,
        zone: &LocalZone,
        errors: &mut Vec<SourceError>,
    ) {
        if !self.root.join("var/log/vzdump").is_dir() {
            return;
        }
        for entry in view.vmlist.iter().filter(|e| e.node == view.node) {
            let kind = match entry.kind {
                GuestType::Lxc => "lxc",
                _ => "qemu",
            };
            let relative = format!("var/log/vzdump/{kind}-{}.log", entry.vmid);
            let Ok(meta) = std::fs::metadata(self.root.join(&relative)) else {
                continue;
            };
            let stamp = FileStamp {
                ino: meta.ino(),
                size: meta.size(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            };
            if self.backup_history.guest_logs.get(&relative) == Some(&stamp) {
                continue;
            }
            let storage_of = |archive: &str| view.storage_of(archive);
            let mut results = Vec::new();
            let mut collect = |guest: vzdump_log::GuestRun, head: &vzdump_log::VzdumpLog| {
                let result = backup_history::guest_result(
                    &guest,
                    head.storage.as_deref(),
                    None,
                    None,
                    None,
                    zone,
                    &storage_of,
                );
                if let (Some(result), true) = (result, guest.vmid == entry.vmid) {
                    results.push((guest.kind, result));
                }
            };
            let Some(_) = self.read_vzdump_log(&relative, errors, &mut collect) else {
                continue;
            };
            self.backup_history.guest_logs.insert(relative, stamp);
            for (kind, result) in results {
                self.backup_history.record(entry.vmid, kind, result);
            }
        }
    }

    /// A vzdump log read a line at a time (`None`, and no error, when it does not exist). Each
    /// guest whose part of the log is over goes to `each` as soon as it is; what is left (the
    /// command line, the last guest) and how many guests the log started are returned.
    fn read_vzdump_log(
        &self,
        relative: &str,
        errors: &mut Vec<SourceError>,
        each: &mut dyn FnMut(vzdump_log::GuestRun, &vzdump_log::VzdumpLog),
    ) -> Option<(vzdump_log::VzdumpLog, usize)> {
        let path = self.root.join(relative);
        let source = format!("/{relative}");
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                errors.push(SourceError {
                    source,
                    message: format!("cannot read {}: {e}", path.display()),
                });
                return None;
            }
        };
        let mut lines = std::io::BufReader::with_capacity(16 * 1024, file.take(MAX_READ));
        let mut reader = vzdump_log::Reader::default();
        let mut problems = Problems::new();
        let mut bytes = Vec::new();
        let mut number = 0;
        loop {
            bytes.clear();
            match lines.read_until(b'\n', &mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    errors.push(SourceError {
                        source,
                        message: format!("cannot read {}: {e}", path.display()),
                    });
                    return None;
                }
            }
            number += 1;
            let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(text) => reader.line(text, &mut problems),
                Err(_) => {
                    problems.line(number, "bytes that are not UTF-8 (read as U+FFFD)");
                    reader.line(&String::from_utf8_lossy(line), &mut problems);
                }
            }
            for guest in reader.take_done() {
                each(guest, reader.head());
            }
        }
        self.report(&source, problems, errors);
        let seen = reader.guests_seen();
        let mut log = reader.finish();
        let rest = std::mem::take(&mut log.guests);
        for guest in &rest {
            each(guest.clone(), &log);
        }
        log.guests = rest;
        Some((log, seen))
    }

    /// The jobs of `jobs.cfg` and `vzdump.cron`; `false` when one of them could not be read
    /// (then nobody knows which guests no job covers).
    fn backup_jobs(&mut self, errors: &mut Vec<SourceError>) -> (Vec<JobConf>, bool) {
        let mut known = true;
        let mut jobs = Vec::new();
        for (path, parse) in [
            (
                "etc/pve/jobs.cfg",
                jobs::parse_jobs_cfg as fn(&str, &mut Problems) -> Result<Vec<JobConf>, String>,
            ),
            ("etc/pve/vzdump.cron", jobs::parse_vzdump_cron),
        ] {
            if !self.exists(path) {
                continue;
            }
            match self.optional_source(path, parse, errors) {
                Some(list) => jobs.extend(list),
                None => known = false,
            }
        }
        (jobs, known)
    }

    /// A job's last run on this node, from its state file and the task history. A run that
    /// failed before its first guest is recorded as a failure of each guest it selects here.
    fn job_run(
        &mut self,
        job: &JobConf,
        guests: &[u32],
        errors: &mut Vec<SourceError>,
    ) -> Option<JobRun> {
        let path = format!("var/lib/pve-manager/jobs/vzdump-{}.json", job.id);
        let state = self.optional_source(&path, jobs::parse_job_state, errors)??;
        let task = state.upid.as_deref().and_then(Upid::parse);
        let ended = state
            .upid
            .as_deref()
            .and_then(|u| self.backup_history.task(u))
            .cloned();
        let (run_state, status) = match state.state.as_str() {
            "created" => return None,
            "starting" => (RunState::Starting, None),
            "started" => match &ended {
                Some(TaskEnd {
                    status: Some(status),
                    ..
                }) => (tasks::run_state(status), Some(status.clone())),
                _ => (RunState::Running, None),
            },
            "stopped" => {
                let status = state
                    .msg
                    .clone()
                    .or_else(|| ended.as_ref().and_then(|e| e.status.clone()));
                (
                    status
                        .as_deref()
                        .map_or(RunState::Unknown, tasks::run_state),
                    status,
                )
            }
            _ => (RunState::Unknown, state.msg.clone()),
        };
        let run = JobRun {
            state: run_state,
            start_time: task.as_ref().map(|t| t.starttime).or(state.time),
            end_time: ended.as_ref().and_then(|e| e.endtime),
            status,
            upid: state.upid.clone(),
        };
        // The run failed before its first guest (its log tells of none): the job's guests
        // here were not backed up. A run whose task this agent never saw says nothing.
        let no_guest = ended.as_ref().is_some_and(|e| e.guests == Some(0));
        if run.state == RunState::Error && no_guest {
            if let Some(end) = run.end_time.or(run.start_time) {
                let message = run.status.clone().unwrap_or_else(|| "job failed".into());
                for vmid in guests {
                    let result = failure(end, &message, state.upid.as_deref().unwrap_or(""));
                    self.backup_history.record(*vmid, None, result);
                }
            }
        }
        Some(run)
    }

    // ---------------------------------------------------------------- replication, HA

    pub(super) fn replication(
        &mut self,
        view: &NodeView<'_>,
        errors: &mut Vec<SourceError>,
    ) -> Vec<ReplicationJob> {
        let path = "etc/pve/replication.cfg";
        if !self.exists(path) {
            return Vec::new();
        }
        let Some(configs) = self.optional_source(path, replication::parse_config, errors) else {
            return Vec::new();
        };
        if configs.iter().all(|c| !view.local(c.guest)) {
            return Vec::new();
        }
        let states = self
            .optional_source(
                "var/lib/pve-manager/pve-replication-state.json",
                replication::parse_state,
                errors,
            )
            .unwrap_or_default();
        replication::merge(&configs, |vmid| view.local(vmid), &states)
    }

    pub(super) fn ha(
        &mut self,
        view: &NodeView<'_>,
        errors: &mut Vec<SourceError>,
    ) -> Option<HaStatus> {
        let resources_path = "etc/pve/ha/resources.cfg";
        let status_path = "etc/pve/ha/manager_status";
        if !self.exists(resources_path) && !self.exists(status_path) {
            return None;
        }
        let resources = self
            .optional_source(resources_path, ha::parse_resources, errors)
            .unwrap_or_default();
        let manager = self
            .optional_source(status_path, ha::parse_manager_status, errors)
            .unwrap_or_default();
        let mut lrm = BTreeMap::new();
        for node in manager.nodes.keys() {
            let path = format!("etc/pve/nodes/{node}/lrm_status");
            if let Some(status) = self.optional_source(&path, ha::parse_lrm_status, errors) {
                lrm.insert(node.clone(), status);
            }
        }
        let quorate = self
            .optional_source("etc/pve/.members", super::pmxcfs::parse_members, errors)
            .and_then(|m| m.cluster)
            .and_then(|c| c.quorate);
        Some(ha::status(
            &resources,
            &manager,
            &lrm,
            |vmid| view.node_of(vmid),
            quorate,
        ))
    }

    // ---------------------------------------------------------------- SMART

    /// Every disk of `smartctl --scan`, read without waking it (slow cycle), and why there is
    /// no SMART data when there is none.
    pub(super) fn smart(
        &mut self,
        errors: &mut Vec<SourceError>,
    ) -> (Vec<SmartDisk>, Option<String>) {
        let scan = match self.runner.run_output("smartctl", &smart::SCAN_ARGS) {
            // Exit status bit 0: the command line did not parse (smartmontools before 7.0 has
            // no JSON output).
            Ok(output) if output.status.is_some_and(|s| s & 1 != 0) => {
                let note = "smartctl does not know --json (smartmontools 7.0 or later is needed): no SMART data";
                self.note_absent("smartctl --json", note);
                return (Vec::new(), Some(note.to_owned()));
            }
            Ok(output) => output,
            Err(CommandError::NotFound { .. }) => {
                let note = "smartctl is not installed (package smartmontools): no SMART data";
                self.note_absent("smartctl", note);
                return (Vec::new(), Some(note.to_owned()));
            }
            Err(e) => {
                let note = format!("smartctl --scan: {e}");
                self.note_absent("smartctl --scan", &note);
                return (Vec::new(), Some(note));
            }
        };
        let Some(devices) =
            self.command_output("smartctl --scan", &scan.stdout, smart::parse_scan, errors)
        else {
            return (Vec::new(), None);
        };
        let mut disks = Vec::with_capacity(devices.len());
        for device in &devices {
            let args = smart::device_args(&device.kind, &device.name);
            let source = format!("smartctl {}", device.name);
            let disk = match self.runner.run_output("smartctl", &args) {
                Ok(output) => {
                    let parse = |text: &str, problems: &mut Problems| {
                        smart::parse_device(device, text, output.status, problems)
                    };
                    let mut problems = Problems::new();
                    let parsed = parse(&output.stdout, &mut problems);
                    self.report(&source, problems, errors);
                    if let Err(message) = &parsed {
                        errors.push(SourceError {
                            source: source.clone(),
                            message: message.clone(),
                        });
                    }
                    parsed.unwrap_or_else(|message| SmartDisk {
                        device: device.name.clone(),
                        kind: device.kind.clone(),
                        protocol: device.protocol.clone().unwrap_or_default(),
                        exit_status: output.status.and_then(|s| u32::try_from(s).ok()),
                        message: Some(if output.stderr.is_empty() {
                            message
                        } else {
                            output.stderr.clone()
                        }),
                        ..SmartDisk::default()
                    })
                }
                Err(e) => {
                    // A timeout (a dying disk can take minutes per command) or a smartctl that
                    // vanished: said once per disk, and in the disk's entry.
                    self.note_absent(&source, &format!("{source}: {e}"));
                    SmartDisk {
                        device: device.name.clone(),
                        kind: device.kind.clone(),
                        protocol: device.protocol.clone().unwrap_or_default(),
                        message: Some(e.to_string()),
                        ..SmartDisk::default()
                    }
                }
            };
            disks.push(disk);
        }
        let denied = disks
            .iter()
            .filter(|d| smart::is_permission_denied(d))
            .count();
        let note = (denied > 0).then(|| {
            let note = format!(
                "smartctl may not open {denied} of {} disks (permission denied): the agent needs root, or CAP_SYS_RAWIO and CAP_SYS_ADMIN",
                disks.len()
            );
            self.note_absent("smartctl permission", &note);
            note
        });
        (disks, note)
    }
}

fn failure(end: u64, message: &str, upid: &str) -> GuestResult {
    GuestResult::Failure(common::sample::BackupFailure {
        end_time: end,
        message: message.to_owned(),
        upid: (!upid.is_empty()).then(|| upid.to_owned()),
    })
}

/// The first entry of `dir` that `map` takes, in name order.
fn first_entry(dir: &Path, map: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.iter().find_map(|n| map(n))
}

fn file_state(path: &Path) -> Option<FileState> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileState {
        id: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        size: meta.len(),
    })
}

/// Reads `path` from byte `from` to its end (at most `MAX_READ`), if it is still the file `id`
/// (`Ok(None)`: it was replaced since it was looked at).
fn read_from(path: &Path, id: FileId, from: u64) -> Result<Option<Vec<u8>>, String> {
    let describe = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(describe(e)),
    };
    let meta = file.metadata().map_err(describe)?;
    if meta.dev() != id.dev || meta.ino() != id.ino {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(from)).map_err(describe)?;
    let mut bytes = Vec::new();
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(describe)?;
    Ok(Some(bytes))
}
