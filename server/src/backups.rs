//! The cluster's backups as the Backups view, the host page and `/api/backups` show them: one
//! row per guest of every host, judged at `now` against the `backup_stale` threshold that the
//! alert settings give that guest (default 26 h). Built from the typed host state; the same
//! verdicts as the `backup_*` alert rules (`alerts::engine::operations`), so a red row and a
//! firing alert agree.

use std::sync::Arc;

use common::sample::{BackupFailure, BackupJob, BackupRun, GuestBackup, GuestType, MediumSample};
use serde::Serialize;

use crate::alerts::config::{AlertsConfig, RuleTable};
use crate::alerts::engine::operations::backup_failed;
use crate::alerts::quiet::Subject;
use crate::alerts::rules::Builtin;
use crate::state::HostState;

/// How a guest's backups stand, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    /// The newest backup failed.
    Failed,
    /// A job covers it and its last good backup is older than the threshold, or there is none.
    Stale,
    /// No enabled job covers it.
    NotCovered,
    /// A backup of it runs now (and nothing above holds).
    Running,
    Ok,
    /// The jobs could not be read and it has no backup: nothing to judge by.
    Unknown,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Failed => "failed",
            BackupStatus::Stale => "stale",
            BackupStatus::NotCovered => "not_covered",
            BackupStatus::Running => "running",
            BackupStatus::Ok => "ok",
            BackupStatus::Unknown => "unknown",
        }
    }

    /// Red (failed, stale), amber (no job) or none.
    pub fn is_bad(self) -> bool {
        matches!(self, BackupStatus::Failed | BackupStatus::Stale)
    }
}

/// One guest's backups, judged. Its jobs are resolved when shown or serialized (`jobs`): a
/// big fleet's page judges every guest but lists few.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRow<'a> {
    pub host: &'a str,
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestType,
    pub name: Option<&'a str>,
    pub status: BackupStatus,
    /// Seconds since the last good backup ended.
    pub age_seconds: Option<i64>,
    /// The `backup_stale` warning level for this guest, hours.
    pub threshold_hours: f64,
    pub last_success: Option<&'a BackupRun>,
    pub last_failure: Option<&'a BackupFailure>,
    pub running: bool,
    /// The enabled jobs that cover it; null when they could not be read.
    #[serde(rename = "jobs", serialize_with = "serialize_jobs")]
    pub job_refs: JobRefs<'a>,
}

/// A guest's job ids and the node's jobs they name.
#[derive(Debug, Clone, Copy)]
pub struct JobRefs<'a> {
    pub ids: Option<&'a [String]>,
    pub all: &'a [BackupJob],
}

impl<'a> JobRefs<'a> {
    /// The jobs, in the guest's order; `None` when they could not be read.
    pub fn resolve(&self) -> Option<Vec<&'a BackupJob>> {
        let all = self.all;
        self.ids.map(|ids| {
            ids.iter()
                .filter_map(|id| all.iter().find(|j| &j.id == id))
                .collect()
        })
    }
}

impl BackupRow<'_> {
    pub fn jobs(&self) -> Option<Vec<&BackupJob>> {
        self.job_refs.resolve()
    }
}

fn serialize_jobs<S: serde::Serializer>(refs: &JobRefs<'_>, s: S) -> Result<S::Ok, S::Error> {
    refs.resolve().serialize(s)
}

/// The `backup_stale` threshold (hours) for a guest.
pub fn stale_threshold_hours(
    rules: &RuleTable,
    host: &str,
    vmid: u32,
    tags: &[String],
    object: &str,
) -> f64 {
    let id = RuleTable::builtin(Builtin::BackupStale);
    let subject = Subject {
        host,
        rule: rules.name(id),
        object,
        guest: Some(vmid),
        tags,
    };
    rules
        .settings(id, &subject)
        .levels
        .or(Builtin::BackupStale.default_levels())
        .map_or(26.0, |l| l.warning)
}

/// The rows of one host, by vmid.
pub fn host_rows<'a>(state: &'a HostState, alerts: &AlertsConfig, now: i64) -> Vec<BackupRow<'a>> {
    let Some(medium) = state.medium() else {
        return Vec::new();
    };
    let sorted = medium.guests.windows(2).all(|w| w[0].vmid < w[1].vmid);
    let mut rows: Vec<BackupRow<'a>> = medium
        .backups
        .iter()
        .map(|b| row(state, medium, sorted, b, &alerts.rules, now))
        .collect();
    rows.sort_by_key(|r| r.vmid);
    rows
}

/// Every host's rows, worst first, then oldest backup first.
pub fn cluster_rows<'a>(
    hosts: &'a [Arc<HostState>],
    alerts: &AlertsConfig,
    now: i64,
) -> Vec<BackupRow<'a>> {
    let mut rows = cluster_rows_unsorted(hosts, alerts, now);
    sort_rows(&mut rows);
    rows
}

/// Every host's rows, by host and vmid (a big fleet's page filters before it sorts).
pub fn cluster_rows_unsorted<'a>(
    hosts: &'a [Arc<HostState>],
    alerts: &AlertsConfig,
    now: i64,
) -> Vec<BackupRow<'a>> {
    hosts
        .iter()
        .flat_map(|h| host_rows(h, alerts, now))
        .collect()
}

/// Worst first, then oldest backup first, then by host and vmid.
pub fn sort_rows(rows: &mut [BackupRow<'_>]) {
    rows.sort_by(row_order);
}

/// The order of `sort_rows`.
pub fn row_order(a: &BackupRow<'_>, b: &BackupRow<'_>) -> std::cmp::Ordering {
    a.status
        .cmp(&b.status)
        .then(
            b.age_seconds
                .unwrap_or(i64::MAX)
                .cmp(&a.age_seconds.unwrap_or(i64::MAX)),
        )
        .then(a.host.cmp(b.host))
        .then(a.vmid.cmp(&b.vmid))
}

/// Counts by status, for the Backups view's head.
pub fn counts(rows: &[BackupRow<'_>]) -> [(BackupStatus, usize); 6] {
    let mut out = [
        (BackupStatus::Failed, 0),
        (BackupStatus::Stale, 0),
        (BackupStatus::NotCovered, 0),
        (BackupStatus::Running, 0),
        (BackupStatus::Ok, 0),
        (BackupStatus::Unknown, 0),
    ];
    for r in rows {
        if let Some(slot) = out.iter_mut().find(|(s, _)| *s == r.status) {
            slot.1 += 1;
        }
    }
    out
}

fn row<'a>(
    state: &'a HostState,
    medium: &'a MediumSample,
    configs_sorted: bool,
    b: &'a GuestBackup,
    rules: &RuleTable,
    now: i64,
) -> BackupRow<'a> {
    // Agents list configs by vmid: a binary search, not a walk, per guest.
    let config = if configs_sorted {
        medium
            .guests
            .binary_search_by_key(&b.vmid, |c| c.vmid)
            .ok()
            .map(|i| &medium.guests[i])
    } else {
        medium.guest_config(b.vmid)
    };
    let name = config
        .map(|c| c.name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            state
                .fast()
                .and_then(|f| f.guests.iter().find(|g| g.vmid == b.vmid))
                .and_then(|g| g.name.as_deref())
        });
    let tags: &[String] = config.map(|c| c.tags.as_slice()).unwrap_or_default();
    let threshold_hours = stale_threshold_hours(
        rules,
        state.name(),
        b.vmid,
        tags,
        itoa::Buffer::new().format(b.vmid),
    );
    let age_seconds = b
        .last_success
        .as_ref()
        .map(|s| (now - i64::try_from(s.end_time).unwrap_or(i64::MAX)).max(0));
    let job_refs = JobRefs {
        ids: b.jobs.as_deref(),
        all: &medium.backup_jobs,
    };
    let covered = b.jobs.as_ref().map(|j| !j.is_empty());
    #[allow(clippy::cast_precision_loss)]
    let too_old = age_seconds.map_or(true, |a| a as f64 > threshold_hours * 3600.0);
    let status = if backup_failed(b) {
        BackupStatus::Failed
    } else if covered == Some(false) {
        BackupStatus::NotCovered
    } else if b.running {
        BackupStatus::Running
    } else if covered == Some(true) && too_old {
        BackupStatus::Stale
    } else if covered.is_none() && age_seconds.is_none() {
        BackupStatus::Unknown
    } else {
        BackupStatus::Ok
    };
    BackupRow {
        host: state.name(),
        vmid: b.vmid,
        kind: b.kind,
        name,
        status,
        age_seconds,
        threshold_hours,
        last_success: b.last_success.as_ref(),
        last_failure: b.last_failure.as_ref(),
        running: b.running,
        job_refs,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{Host, HostStatus};
    use common::sample::GuestConfig;

    fn host_with(backups: Vec<GuestBackup>) -> HostState {
        let mut state = HostState::new(Host {
            id: 1,
            name: "pve1".into(),
            agent_version: None,
            proxmox_version: None,
            zfs_version: None,
            status: HostStatus::Online,
            status_changed_at: None,
            last_seen_at: None,
            inserted_at: 0,
            updated_at: 0,
        });
        state.medium = Some(Arc::new(crate::state::Latest {
            collected_at: 0,
            sample: MediumSample {
                backups,
                guests: vec![GuestConfig {
                    vmid: 100,
                    name: "web".into(),
                    tags: vec!["weekly".into()],
                    ..GuestConfig::default()
                }],
                backup_jobs: vec![BackupJob {
                    id: "backup-1".into(),
                    schedule: Some("01:00".into()),
                    enabled: true,
                    ..BackupJob::default()
                }],
                ..MediumSample::default()
            },
        }));
        state
    }

    fn guest(
        vmid: u32,
        jobs: Option<&[&str]>,
        ok: Option<u64>,
        failed: Option<u64>,
    ) -> GuestBackup {
        GuestBackup {
            vmid,
            jobs: jobs.map(|j| j.iter().map(|s| (*s).to_owned()).collect()),
            last_success: ok.map(|end_time| BackupRun {
                end_time,
                ..BackupRun::default()
            }),
            last_failure: failed.map(|end_time| BackupFailure {
                end_time,
                message: "boom".into(),
                upid: None,
            }),
            ..GuestBackup::default()
        }
    }

    #[test]
    fn statuses_and_thresholds() {
        let now = 100 * 3600;
        let job = Some(&["backup-1"][..]);
        let state = host_with(vec![
            guest(100, job, Some(now as u64 - 30 * 3600), None),
            guest(101, job, Some(now as u64 - 3600), Some(now as u64 - 1800)),
            guest(102, Some(&[]), Some(now as u64 - 3600), None),
            guest(103, job, Some(now as u64 - 3600), None),
            guest(104, job, None, None),
            guest(105, None, None, None),
        ]);
        let config = AlertsConfig::default();
        let rows = host_rows(&state, &config, now);
        let got: Vec<(u32, BackupStatus)> = rows.iter().map(|r| (r.vmid, r.status)).collect();
        assert_eq!(
            got,
            [
                (100, BackupStatus::Stale),
                (101, BackupStatus::Failed),
                (102, BackupStatus::NotCovered),
                (103, BackupStatus::Ok),
                (104, BackupStatus::Stale),
                (105, BackupStatus::Unknown),
            ]
        );
        assert_eq!(rows[0].name, Some("web"));
        assert_eq!(rows[0].age_seconds, Some(30 * 3600));
        assert_eq!(rows[0].jobs().unwrap()[0].id, "backup-1");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["jobs"][0]["schedule"], "01:00");
        assert_eq!(
            serde_json::to_value(&rows[5]).unwrap()["jobs"],
            serde_json::Value::Null
        );
        // A weekly guest by tag: 30 h is fine for it.
        let table: toml::Table = toml::from_str(
            "[[rules.backup_stale]]\ntags = [\"weekly\"]\nwarning = 170\ncritical = 340\nclear = 170\n",
        )
        .unwrap();
        let config = AlertsConfig::from_toml(toml::Value::Table(table)).unwrap();
        let rows = host_rows(&state, &config, now);
        assert_eq!(
            (rows[0].status, rows[0].threshold_hours),
            (BackupStatus::Ok, 170.0)
        );
        let hosts = vec![Arc::new(state)];
        let all = cluster_rows(&hosts, &AlertsConfig::default(), now);
        assert_eq!(all[0].status, BackupStatus::Failed);
        assert_eq!(counts(&all)[1], (BackupStatus::Stale, 2));
    }
}
