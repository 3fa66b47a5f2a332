//! The rules on a node's operational state (issue 14): backups, replication and HA from the
//! medium sample, SMART from the slow one, temperatures from both (hwmon in the fast sample,
//! drive sensors in the slow one). Same state machine as every other rule; what these add is
//! how a sample becomes observations.

use std::collections::HashMap;

use common::events::MetricKind;
use common::sample::{GuestBackup, HaStatus, MediumSample, SlowSample, SmartDisk, Temperature};

use super::{Engine, Obs, Reading};
use crate::alerts::config::RuleTable;
use crate::alerts::rules::{Builtin, Direction, Levels, Severity};
use crate::state::{HostState, Latest};

/// How long a grown defect count keeps `smart_degrading` firing after it last grew.
pub const GROWTH_HOLD_S: i64 = 7 * 86400;

/// NVMe wear (`percentage_used`) at which `smart_degrading` warns, and goes critical.
pub const WEAR_WARNING: u32 = 90;
pub const WEAR_CRITICAL: u32 = 100;

/// A failure message is kept this long in an alert's label (the task log has the rest).
const MESSAGE_CHARS: usize = 200;

/// What `smart_degrading` remembers of a disk between slow samples (in memory only: after a
/// server restart, growth is counted from the first sample it sees).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DefectCount {
    /// Reallocated sectors + NVMe media errors.
    count: u64,
    /// When the count last went up.
    grew_at: Option<i64>,
}

/// `text` in at most `max` characters: its start and its end (where vzdump puts the exit
/// code) around an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if text.is_empty() {
        return "no message".into();
    }
    if count <= max {
        return text.to_owned();
    }
    let head = max * 2 / 5;
    let tail = max - head - 1;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// Whether guest `b`'s newest backup failed: a failure and no good backup after it.
pub fn backup_failed(b: &GuestBackup) -> bool {
    match (&b.last_failure, &b.last_success) {
        (Some(f), Some(s)) => f.end_time > s.end_time,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Hours between `end_time` and `now` (never negative).
pub fn age_hours(end_time: u64, now: i64) -> f64 {
    let end = i64::try_from(end_time).unwrap_or(i64::MAX);
    #[allow(clippy::cast_precision_loss)]
    let hours = (now.saturating_sub(end)).max(0) as f64 / 3600.0;
    hours
}

/// The node name this host has in its cluster (what HA and replication call it).
pub fn node_name(state: &HostState) -> &str {
    state
        .slow()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or(&state.host.name)
}

/// The severity of an HA resource's state, as the GUI shows it (`HaService::state`).
pub fn ha_state_severity(state: &str) -> Option<Severity> {
    match state {
        "error" | "fence" | "recovery" => Some(Severity::Critical),
        _ => None,
    }
}

/// Whether this node judges the HA resources: it is the CRM master, or nobody is and the
/// resource is on this node.
fn judges_ha(ha: &HaStatus, node: &str, service_node: Option<&str>) -> bool {
    match ha.master.as_deref() {
        Some(master) => master == node,
        None => service_node == Some(node),
    }
}

/// `smart_degrading`'s verdict on a disk now: the severity and why.
pub fn smart_degradation(d: &SmartDisk, grew: bool) -> Option<(Severity, String)> {
    let mut reasons: Vec<String> = Vec::new();
    let mut severity = None;
    let mut raise = |s: Severity, why: String, reasons: &mut Vec<String>| {
        severity = Some(severity.map_or(s, |old: Severity| old.max(s)));
        reasons.push(why);
    };
    if let Some(spare) = d.available_spare_percent {
        if let Some(threshold) = d.available_spare_threshold_percent {
            if spare < threshold {
                raise(
                    Severity::Critical,
                    format!("spare {spare} % under its threshold {threshold} %"),
                    &mut reasons,
                );
            }
        }
    }
    // Bit 1 (0x02) is the temperature warning: temp_high's business, not wear.
    if let Some(bits) = d.critical_warning.filter(|w| w & !0x02 != 0) {
        raise(
            Severity::Critical,
            format!("NVMe critical warning 0x{bits:02x}"),
            &mut reasons,
        );
    }
    if let Some(used) = d.percentage_used {
        if used >= WEAR_CRITICAL {
            raise(Severity::Critical, format!("wear {used} %"), &mut reasons);
        } else if used >= WEAR_WARNING {
            raise(Severity::Warning, format!("wear {used} %"), &mut reasons);
        }
    }
    for (count, what) in [
        (d.pending_sectors, "pending sectors"),
        (d.offline_uncorrectable, "offline uncorrectable sectors"),
    ] {
        if let Some(n) = count.filter(|n| *n > 0) {
            raise(Severity::Warning, format!("{n} {what}"), &mut reasons);
        }
    }
    if grew {
        let mut parts = Vec::new();
        if let Some(n) = d.reallocated_sectors.filter(|n| *n > 0) {
            parts.push(format!("{n} reallocated sectors"));
        }
        if let Some(n) = d.media_errors.filter(|n| *n > 0) {
            parts.push(format!("{n} media errors"));
        }
        raise(
            Severity::Warning,
            format!("{} (grew in the last 7 days)", parts.join(", ")),
            &mut reasons,
        );
    }
    severity.map(|s| (s, reasons.join(", ")))
}

/// A sensor's own levels: warning at `max`, critical at `crit`, clear 5 °C under warning. With
/// only one of them, the other follows (`crit` alone: warning 10 °C under it).
pub fn sensor_levels(t: &Temperature, defaults: Option<Levels>) -> Option<Levels> {
    let (warning, critical) = match (t.max_celsius, t.crit_celsius) {
        (Some(max), Some(crit)) if crit >= max => (max, crit),
        (Some(max), Some(_)) => (max, max),
        (Some(max), None) => (max, defaults.map_or(max, |d| d.critical.max(max))),
        (None, Some(crit)) => (crit - 10.0, crit),
        (None, None) => return None,
    };
    if !(warning.is_finite() && critical.is_finite()) {
        return None;
    }
    Some(Levels {
        warning,
        critical,
        clear: warning - 5.0,
        direction: Direction::Above,
    })
}

/// `coretemp.0/temp1`: a temperature alert's object.
pub fn sensor_object(t: &Temperature) -> String {
    format!("{}/{}", t.device, t.sensor)
}

impl Engine {
    pub(super) fn operations_medium_rules(
        &mut self,
        state: &HostState,
        latest: &Latest<MediumSample>,
        live: bool,
    ) {
        let host_id = state.host.id;
        let t = latest.collected_at;
        let m = &latest.sample;
        let rule = RuleTable::builtin;
        let kind = Some(MetricKind::Medium);
        let mut vmid_text = itoa::Buffer::new();
        for b in &m.backups {
            let object = vmid_text.format(b.vmid);
            let config = m.guest_config(b.vmid);
            let tags: &[String] = config.map(|c| c.tags.as_slice()).unwrap_or_default();
            let name = config.map(|c| c.name.as_str()).filter(|n| !n.is_empty());
            let failure = b.last_failure.as_ref().filter(|_| backup_failed(b));
            let message: Option<String> = failure.map(|f| shorten(&f.message, MESSAGE_CHARS));
            let base = Obs {
                guest: Some(b.vmid),
                tags,
                label: name,
                ..Obs::new(rule(Builtin::BackupFailed), object, Reading::Hold)
            };
            // A backup running now may be the one that mends it: hold until it ends.
            let failed = if b.running && failure.is_some() {
                Reading::Hold
            } else {
                Reading::State(failure.map(|_| Severity::Critical))
            };
            let obs = Obs {
                reading: failed,
                label: message.as_deref(),
                ..base
            };
            self.observe(host_id, &obs, t, live, kind);
            let covered = b.jobs.as_ref().map(|jobs| !jobs.is_empty());
            let not_covered = match covered {
                Some(covered) => Reading::State((!covered).then_some(Severity::Warning)),
                None => Reading::Hold, // the jobs could not be read: nobody knows
            };
            let obs = Obs {
                rule: rule(Builtin::GuestNotBackedUp),
                reading: not_covered,
                ..base
            };
            self.observe(host_id, &obs, t, live, kind);
            let stale = match (&b.last_success, covered) {
                (Some(s), Some(true)) => Reading::Value(age_hours(s.end_time, t)),
                (_, Some(false)) => Reading::State(None),
                _ => Reading::Hold,
            };
            let obs = Obs {
                rule: rule(Builtin::BackupStale),
                reading: stale,
                ..base
            };
            self.observe(host_id, &obs, t, live, kind);
        }
        for job in &m.replication {
            let config = m.guest_config(job.guest);
            let tags: &[String] = config.map(|c| c.tags.as_slice()).unwrap_or_default();
            let reading = if job.enabled {
                Reading::Value(f64::from(job.fail_count))
            } else {
                Reading::State(None)
            };
            let obs = Obs {
                guest: Some(job.guest),
                tags,
                label: job.error.as_deref(),
                ..Obs::new(rule(Builtin::ReplicationFailing), &job.id, reading)
            };
            self.observe(host_id, &obs, t, live, kind);
        }
        if let Some(ha) = &m.ha {
            let node = node_name(state);
            let quorum = match ha.quorate {
                Some(q) => Reading::State((!q).then_some(Severity::Critical)),
                None => Reading::Hold,
            };
            let obs = Obs::new(rule(Builtin::HaError), "quorum", quorum);
            self.observe(host_id, &obs, t, live, kind);
            for service in &ha.services {
                if !judges_ha(ha, node, service.node.as_deref()) {
                    continue;
                }
                let obs = Obs {
                    label: Some(service.state.as_str()),
                    ..Obs::new(
                        rule(Builtin::HaError),
                        &service.sid,
                        Reading::State(ha_state_severity(&service.state)),
                    )
                };
                self.observe(host_id, &obs, t, live, kind);
            }
        }
    }

    pub(super) fn operations_slow_rules(
        &mut self,
        state: &HostState,
        latest: &Latest<SlowSample>,
        live: bool,
    ) {
        let host_id = state.host.id;
        let t = latest.collected_at;
        let s = &latest.sample;
        let rule = RuleTable::builtin;
        let kind = Some(MetricKind::Slow);
        for d in &s.smart {
            let model = d.model.as_deref();
            if d.standby || d.passed.is_none() {
                // Asleep or unreadable this time: nothing is known, nothing is gone.
                for b in [Builtin::SmartFailed, Builtin::SmartDegrading] {
                    let obs = Obs::new(rule(b), &d.device, Reading::Hold);
                    self.observe(host_id, &obs, t, live, kind);
                }
                continue;
            }
            let failed = d.passed == Some(false);
            let obs = Obs {
                label: model,
                ..Obs::new(
                    rule(Builtin::SmartFailed),
                    &d.device,
                    Reading::State(failed.then_some(Severity::Critical)),
                )
            };
            self.observe(host_id, &obs, t, live, kind);
            let grew = self.defects_grew(host_id, d, t);
            // A failed disk has its own alert; degradation would only repeat it.
            let verdict = if failed {
                None
            } else {
                smart_degradation(d, grew)
            };
            let obs = Obs {
                label: verdict.as_ref().map(|(_, why)| why.as_str()),
                ..Obs::new(
                    rule(Builtin::SmartDegrading),
                    &d.device,
                    Reading::State(verdict.as_ref().map(|(s, _)| *s)),
                )
            };
            self.observe(host_id, &obs, t, live, kind);
        }
        self.temperature_rules(host_id, &s.drive_temperatures, t, live, MetricKind::Slow);
    }

    /// Whether disk `d`'s reallocated sectors + media errors went up within
    /// `GROWTH_HOLD_S` before `t` (as this process saw them).
    fn defects_grew(&mut self, host_id: i64, d: &SmartDisk, t: i64) -> bool {
        let Some(book) = self.books.get_mut(&host_id) else {
            return false;
        };
        let count = d
            .reallocated_sectors
            .unwrap_or(0)
            .saturating_add(d.media_errors.unwrap_or(0));
        let seen: &mut HashMap<String, DefectCount> = &mut book.smart;
        let entry = seen.entry(d.device.clone()).or_insert(DefectCount {
            count,
            grew_at: None,
        });
        if count > entry.count {
            entry.grew_at = Some(t);
        }
        entry.count = count;
        entry.grew_at.is_some_and(|g| t - g < GROWTH_HOLD_S)
    }

    pub(super) fn temperature_rules(
        &mut self,
        host_id: i64,
        sensors: &[Temperature],
        t: i64,
        live: bool,
        kind: MetricKind,
    ) {
        let rule = RuleTable::builtin(Builtin::TempHigh);
        let defaults = Builtin::TempHigh.default_levels();
        for sensor in sensors {
            let Some(celsius) = sensor.celsius.filter(|c| c.is_finite()) else {
                continue;
            };
            let object = sensor_object(sensor);
            let label = sensor.label.as_deref().or(sensor.disk.as_deref());
            let obs = Obs {
                label,
                levels: sensor_levels(sensor, defaults),
                ..Obs::new(rule, &object, Reading::Value(celsius))
            };
            self.observe(host_id, &obs, t, live, Some(kind));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use common::sample::{BackupFailure, BackupRun};

    #[test]
    fn a_failure_counts_only_without_a_later_success() {
        let run = |end_time| BackupRun {
            end_time,
            ..BackupRun::default()
        };
        let fail = |end_time| BackupFailure {
            end_time,
            message: "x".into(),
            upid: None,
        };
        let mut b = GuestBackup::default();
        assert!(!backup_failed(&b));
        b.last_failure = Some(fail(100));
        assert!(backup_failed(&b));
        b.last_success = Some(run(50));
        assert!(backup_failed(&b));
        b.last_success = Some(run(150));
        assert!(!backup_failed(&b));
        assert_eq!(age_hours(0, 7200), 2.0);
        assert_eq!(shorten("abcdefghij", 10), "abcdefghij");
        assert_eq!(shorten("abcdefghijk", 10), "abcd…ghijk");
        assert_eq!(shorten("", 10), "no message");
        assert_eq!(
            age_hours(9000, 7200),
            0.0,
            "a clock behind is no negative age"
        );
    }

    #[test]
    fn sensor_levels_from_max_and_crit() {
        let t = |max, crit| Temperature {
            max_celsius: max,
            crit_celsius: crit,
            ..Temperature::default()
        };
        let d = Builtin::TempHigh.default_levels();
        let l = sensor_levels(&t(Some(84.8), Some(94.8)), d).unwrap();
        assert_eq!((l.warning, l.critical, l.clear), (84.8, 94.8, 79.8));
        let l = sensor_levels(&t(None, Some(105.0)), d).unwrap();
        assert_eq!((l.warning, l.critical), (95.0, 105.0));
        let l = sensor_levels(&t(Some(70.0), None), d).unwrap();
        assert_eq!((l.warning, l.critical), (70.0, 95.0));
        assert!(sensor_levels(&t(None, None), d).is_none());
        l.check().unwrap();
    }

    #[test]
    fn smart_verdicts() {
        let ata = SmartDisk {
            pending_sectors: Some(8),
            offline_uncorrectable: Some(8),
            reallocated_sectors: Some(0),
            ..SmartDisk::default()
        };
        assert_eq!(
            smart_degradation(&ata, false),
            Some((
                Severity::Warning,
                "8 pending sectors, 8 offline uncorrectable sectors".into()
            ))
        );
        let nvme = SmartDisk {
            percentage_used: Some(91),
            media_errors: Some(3),
            available_spare_percent: Some(100),
            available_spare_threshold_percent: Some(10),
            critical_warning: Some(0x02),
            ..SmartDisk::default()
        };
        assert_eq!(
            smart_degradation(&nvme, false),
            Some((Severity::Warning, "wear 91 %".into()))
        );
        assert_eq!(
            smart_degradation(&nvme, true).unwrap().1,
            "wear 91 %, 3 media errors (grew in the last 7 days)"
        );
        let worn_out = SmartDisk {
            available_spare_percent: Some(5),
            ..nvme.clone()
        };
        assert_eq!(
            smart_degradation(&worn_out, false).unwrap().0,
            Severity::Critical
        );
        assert_eq!(smart_degradation(&SmartDisk::default(), false), None);
    }
}
