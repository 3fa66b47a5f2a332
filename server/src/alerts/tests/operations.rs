//! The operational rules (backups, replication, HA, SMART, temperatures) on sample sequences,
//! with injected time.

use std::sync::Arc;

use common::events::MetricKind;
use common::sample::{
    BackupFailure, BackupRun, FastSample, GuestBackup, GuestType, HaService, HaStatus,
    MediumSample, ReplicationJob, SlowSample, SmartDisk, Temperature,
};

use super::{config, Sim, T0};
use crate::alerts::config::AlertsConfig;
use crate::alerts::forecast::NoHistory;
use crate::state::Latest;
use crate::store::alerts::{AlertState, Severity};

const HOUR: i64 = 3600;

impl Sim {
    fn slow(&mut self, t: i64, sample: SlowSample) {
        self.state.slow = Some(Arc::new(Latest {
            collected_at: t,
            sample,
        }));
        self.engine
            .evaluate_sample(&self.state, MetricKind::Slow, t, &NoHistory);
        self.collect();
    }

    /// The state and severity of the open alert of `rule` on `object`, if any.
    fn state_of(&mut self, rule: &str, object: &str, now: i64) -> Option<(AlertState, Severity)> {
        self.open(now)
            .into_iter()
            .find(|(r, o, _, _)| r == rule && o == object)
            .map(|(_, _, s, v)| (s, v))
    }
}

fn u(t: i64) -> u64 {
    u64::try_from(t).unwrap()
}

fn backup(vmid: u32, jobs: Option<&[&str]>, ok: Option<i64>, failed: Option<i64>) -> GuestBackup {
    GuestBackup {
        vmid,
        kind: GuestType::Lxc,
        jobs: jobs.map(|j| j.iter().map(|s| (*s).to_owned()).collect()),
        last_success: ok.map(|t| BackupRun {
            end_time: u(t),
            ..BackupRun::default()
        }),
        last_failure: failed.map(|t| BackupFailure {
            end_time: u(t),
            message: "command 'rsync' failed: exit code 23".into(),
            upid: None,
        }),
        running: false,
    }
}

fn backups(list: Vec<GuestBackup>) -> MediumSample {
    MediumSample {
        backups: list,
        ..MediumSample::default()
    }
}

#[test]
fn backup_failed_after_a_good_one_fires_and_a_new_good_one_resolves_it() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    let job = Some(&["backup-1"][..]);
    sim.medium(
        T0,
        backups(vec![backup(101, job, Some(T0 - 25 * HOUR), None)]),
    );
    assert!(sim.open(T0).is_empty());
    // The night's run failed: critical at once (`for` 0).
    sim.medium(
        T0 + 60,
        backups(vec![backup(
            101,
            job,
            Some(T0 - 25 * HOUR),
            Some(T0 - HOUR / 2),
        )]),
    );
    let alert = sim.last("backup_failed", "101").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert_eq!(alert.guest, Some(101));
    assert_eq!(
        alert.summary,
        "the last backup of guest 101 failed: command 'rsync' failed: exit code 23"
    );
    // A good backup after the failure ends it.
    sim.medium(
        T0 + 2 * HOUR,
        backups(vec![backup(101, job, Some(T0 + HOUR), Some(T0 - HOUR / 2))]),
    );
    assert_eq!(
        sim.last("backup_failed", "101").unwrap().state,
        AlertState::Resolved
    );
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/critical", "alert/1/resolved"]
    );
}

#[test]
fn backup_stale_counts_hours_since_the_last_good_backup_of_covered_guests() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    let job = Some(&["backup-1"][..]);
    let sample = || {
        backups(vec![
            backup(100, job, Some(T0), None),
            // No job covers 102: its old backup is not stale, it is not backed up.
            backup(102, Some(&[]), Some(T0 - 100 * HOUR), None),
            // Never backed up under a job: nothing to count from.
            backup(103, job, None, None),
        ])
    };
    sim.medium(T0 + 25 * HOUR, sample());
    assert_eq!(sim.state_of("backup_stale", "100", T0 + 25 * HOUR), None);
    sim.medium(T0 + 26 * HOUR, sample());
    assert_eq!(
        sim.state_of("backup_stale", "100", T0 + 26 * HOUR),
        Some((AlertState::Firing, Severity::Warning))
    );
    assert_eq!(
        sim.last("backup_stale", "100").unwrap().summary,
        "guest 100: last good backup 26 h ago (warning at 26 h)"
    );
    sim.medium(T0 + 50 * HOUR, sample());
    assert_eq!(
        sim.state_of("backup_stale", "100", T0 + 50 * HOUR),
        Some((AlertState::Firing, Severity::Critical))
    );
    assert_eq!(sim.state_of("backup_stale", "102", T0 + 50 * HOUR), None);
    assert_eq!(sim.state_of("backup_stale", "103", T0 + 50 * HOUR), None);
    // The next night's backup: resolved.
    sim.medium(
        T0 + 51 * HOUR,
        backups(vec![backup(100, job, Some(T0 + 51 * HOUR - 60), None)]),
    );
    assert_eq!(sim.state_of("backup_stale", "100", T0 + 51 * HOUR), None);
}

#[test]
fn backup_stale_threshold_follows_the_config() {
    let config = config(
        "[[rules.backup_stale]]\nwarning = 48\ncritical = 72\nclear = 48\n\
         [[rules.backup_stale]]\nguests = [200]\nwarning = 170\ncritical = 340\nclear = 170\n",
    );
    let mut sim = Sim::new(&config, T0);
    let job = Some(&["backup-1"][..]);
    let sample = backups(vec![
        backup(100, job, Some(T0), None),
        backup(200, job, Some(T0), None),
    ]);
    sim.medium(T0 + 30 * HOUR, sample.clone());
    assert!(sim.open(T0 + 30 * HOUR).is_empty());
    sim.medium(T0 + 49 * HOUR, sample.clone());
    assert!(sim
        .state_of("backup_stale", "100", T0 + 49 * HOUR)
        .is_some());
    assert_eq!(
        sim.state_of("backup_stale", "200", T0 + 49 * HOUR),
        None,
        "a weekly backup"
    );
}

#[test]
fn guest_not_backed_up_after_its_for_and_not_when_jobs_are_unknown() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    let sample = |jobs: Option<&[&str]>| backups(vec![backup(102, jobs, None, None)]);
    sim.medium(T0, sample(Some(&[])));
    assert_eq!(
        sim.state_of("guest_not_backed_up", "102", T0),
        Some((AlertState::Pending, Severity::Warning))
    );
    // jobs.cfg unreadable: nobody knows; the alert holds.
    sim.medium(T0 + 1800, sample(None));
    sim.medium(T0 + HOUR, sample(Some(&[])));
    let alert = sim.last("guest_not_backed_up", "102").unwrap();
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.summary, "guest 102 is in no enabled backup job");
    sim.medium(T0 + 2 * HOUR, sample(Some(&["backup-1"])));
    assert_eq!(
        sim.state_of("guest_not_backed_up", "102", T0 + 2 * HOUR),
        None
    );
    // Turned off for a guest.
    let off = config_off();
    let mut sim = Sim::new(&off, T0);
    sim.medium(T0, sample(Some(&[])));
    sim.medium(T0 + 2 * HOUR, sample(Some(&[])));
    assert!(sim.open(T0 + 2 * HOUR).is_empty());
}

fn config_off() -> AlertsConfig {
    config("[[rules.guest_not_backed_up]]\nguests = [102]\nenabled = false\n")
}

#[test]
fn replication_failing_by_fail_count() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    let job = |fail_count, enabled| MediumSample {
        replication: vec![ReplicationJob {
            id: "101-0".into(),
            guest: 101,
            target: "pve2".into(),
            schedule: "*/15".into(),
            enabled,
            fail_count,
            error: (fail_count > 0).then(|| "no route to host".into()),
            ..ReplicationJob::default()
        }],
        ..MediumSample::default()
    };
    sim.medium(T0, job(0, true));
    assert!(sim.open(T0).is_empty());
    sim.medium(T0 + 300, job(1, true));
    assert_eq!(
        sim.state_of("replication_failing", "101-0", T0 + 300),
        Some((AlertState::Firing, Severity::Warning))
    );
    sim.medium(T0 + 900, job(3, true));
    let alert = sim.last("replication_failing", "101-0").unwrap();
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(
        alert.summary,
        "replication 101-0 failed 3 times in a row (critical at 3): no route to host"
    );
    sim.medium(T0 + 1800, job(0, true));
    assert!(sim.open(T0 + 1800).is_empty());
    sim.medium(T0 + 2000, job(5, false));
    assert!(
        sim.open(T0 + 2000).is_empty(),
        "a disabled job is left alone"
    );
}

fn ha(master: &str, quorate: bool, state: &str) -> MediumSample {
    MediumSample {
        ha: Some(HaStatus {
            quorate: Some(quorate),
            master: Some(master.into()),
            services: vec![HaService {
                sid: "vm:102".into(),
                node: Some("pve2".into()),
                state: state.into(),
                ..HaService::default()
            }],
            ..HaStatus::default()
        }),
        ..MediumSample::default()
    }
}

#[test]
fn ha_error_is_judged_by_the_master_and_quorum_by_each_node() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    // This host is pve1 (its name); pve2 is master and judges vm:102.
    sim.medium(T0, ha("pve2", true, "error"));
    assert!(sim.open(T0).is_empty());
    sim.medium(T0 + 60, ha("pve1", true, "error"));
    let alert = sim.last("ha_error", "vm:102").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert_eq!(alert.summary, "HA resource vm:102 is error");
    sim.medium(T0 + 120, ha("pve1", true, "started"));
    assert!(sim.open(T0 + 120).is_empty());
    sim.medium(T0 + 180, ha("pve2", false, "started"));
    assert_eq!(
        sim.state_of("ha_error", "quorum", T0 + 180),
        Some((AlertState::Firing, Severity::Critical))
    );
    assert_eq!(
        sim.last("ha_error", "quorum").unwrap().summary,
        "this node is not in the quorate partition"
    );
}

fn disk(device: &str, f: impl FnOnce(&mut SmartDisk)) -> SmartDisk {
    let mut d = SmartDisk {
        device: device.into(),
        protocol: "ATA".into(),
        model: Some("WDC WD80EFZZ".into()),
        passed: Some(true),
        reallocated_sectors: Some(0),
        pending_sectors: Some(0),
        ..SmartDisk::default()
    };
    f(&mut d);
    d
}

fn smart(disks: Vec<SmartDisk>) -> SlowSample {
    SlowSample {
        smart: disks,
        ..SlowSample::default()
    }
}

#[test]
fn smart_failed_fires_holds_in_standby_and_goes_with_the_disk() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    sim.slow(
        T0,
        smart(vec![disk("/dev/sdb", |d| d.passed = Some(false))]),
    );
    let alert = sim.last("smart_failed", "/dev/sdb").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert_eq!(
        alert.summary,
        "disk /dev/sdb (WDC WD80EFZZ) fails its SMART health self-assessment"
    );
    assert_eq!(sim.state_of("smart_degrading", "/dev/sdb", T0), None);
    // Asleep: nothing known, the alert stays.
    sim.slow(
        T0 + 600,
        smart(vec![disk("/dev/sdb", |d| {
            d.passed = None;
            d.standby = true;
        })]),
    );
    assert!(sim.state_of("smart_failed", "/dev/sdb", T0 + 600).is_some());
    // Replaced: the device is gone from the scan.
    sim.slow(T0 + 1200, smart(vec![disk("/dev/sda", |_| {})]));
    let alert = sim.last("smart_failed", "/dev/sdb").unwrap();
    assert_eq!(alert.state, AlertState::Resolved);
    assert_eq!(alert.resolution.as_deref(), Some("gone"));
}

#[test]
fn smart_degrading_on_pending_sectors_growth_and_wear() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    sim.slow(
        T0,
        smart(vec![disk("/dev/sda", |d| d.pending_sectors = Some(8))]),
    );
    let alert = sim.last("smart_degrading", "/dev/sda").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Warning)
    );
    assert_eq!(alert.summary, "disk /dev/sda degrades: 8 pending sectors");
    // The pending sectors were reallocated: no longer pending, but the count grew.
    let grown = || smart(vec![disk("/dev/sda", |d| d.reallocated_sectors = Some(8))]);
    sim.slow(T0 + HOUR, grown());
    assert_eq!(
        sim.last("smart_degrading", "/dev/sda")
            .unwrap()
            .label
            .as_deref(),
        Some("8 reallocated sectors (grew in the last 7 days)")
    );
    sim.slow(T0 + 6 * 24 * HOUR, grown());
    assert!(sim
        .state_of("smart_degrading", "/dev/sda", T0 + 6 * 24 * HOUR)
        .is_some());
    // A week without growth: resolved.
    sim.slow(T0 + 8 * 24 * HOUR, grown());
    assert_eq!(
        sim.state_of("smart_degrading", "/dev/sda", T0 + 8 * 24 * HOUR),
        None
    );
    // An NVMe worn to 91 %: warning; spare under its threshold: critical.
    let nvme = |spare| {
        smart(vec![SmartDisk {
            device: "/dev/nvme1".into(),
            protocol: "NVMe".into(),
            passed: Some(true),
            percentage_used: Some(91),
            media_errors: Some(3),
            available_spare_percent: Some(spare),
            available_spare_threshold_percent: Some(10),
            ..SmartDisk::default()
        }])
    };
    let t = T0 + 9 * 24 * HOUR;
    sim.slow(t, nvme(100));
    assert_eq!(
        sim.state_of("smart_degrading", "/dev/nvme1", t),
        Some((AlertState::Firing, Severity::Warning))
    );
    sim.slow(t + HOUR, nvme(5));
    assert_eq!(
        sim.state_of("smart_degrading", "/dev/nvme1", t + HOUR),
        Some((AlertState::Firing, Severity::Critical))
    );
}

fn sensor(device: &str, celsius: f64, max: Option<f64>, crit: Option<f64>) -> Temperature {
    Temperature {
        chip: "coretemp".into(),
        device: device.into(),
        sensor: "temp1".into(),
        label: Some("Package id 0".into()),
        celsius: Some(celsius),
        max_celsius: max,
        crit_celsius: crit,
        ..Temperature::default()
    }
}

fn temps(list: Vec<Temperature>) -> FastSample {
    FastSample {
        temperatures: list,
        ..FastSample::default()
    }
}

#[test]
fn temp_high_uses_the_sensors_own_thresholds_else_the_defaults() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    let at = |sim: &mut Sim, i: i64, cpu: f64, acpi: f64| {
        sim.fast(
            T0 + 30 * i,
            temps(vec![
                sensor("coretemp.0", cpu, Some(84.0), Some(100.0)),
                sensor("hwmon0", acpi, None, None),
            ]),
        );
    };
    // 82 °C: under the package's own max (84), at the default warning (80) for the other.
    for i in 0..=4 {
        at(&mut sim, i, 82.0, 82.0);
    }
    assert_eq!(
        sim.state_of("temp_high", "coretemp.0/temp1", T0 + 120),
        None
    );
    assert_eq!(
        sim.state_of("temp_high", "hwmon0/temp1", T0 + 120),
        Some((AlertState::Firing, Severity::Warning))
    );
    for i in 5..=10 {
        at(&mut sim, i, 101.0, 70.0);
    }
    let alert = sim.last("temp_high", "coretemp.0/temp1").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert_eq!(
        alert.summary,
        "coretemp.0/temp1 (Package id 0) at 101 °C (critical at 100 °C)"
    );
    assert_eq!(sim.state_of("temp_high", "hwmon0/temp1", T0 + 300), None);
    // Hysteresis: 5 °C under max.
    at(&mut sim, 11, 80.0, 70.0);
    assert!(sim
        .state_of("temp_high", "coretemp.0/temp1", T0 + 330)
        .is_some());
    at(&mut sim, 12, 79.0, 70.0);
    assert_eq!(
        sim.state_of("temp_high", "coretemp.0/temp1", T0 + 360),
        None
    );
}

#[test]
fn temp_high_levels_in_the_config_apply_to_every_sensor() {
    let config =
        config("[rules.temp_high]\nwarning = 60\ncritical = 70\nclear = 55\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.fast(
        T0,
        temps(vec![sensor("coretemp.0", 65.0, Some(84.0), Some(100.0))]),
    );
    assert_eq!(
        sim.state_of("temp_high", "coretemp.0/temp1", T0),
        Some((AlertState::Firing, Severity::Warning))
    );
}

#[test]
fn drive_temperatures_from_slow_samples_outlive_fast_samples() {
    let config = config("[rules.temp_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    let mut drive = sensor("sda", 61.0, Some(60.0), Some(70.0));
    drive.chip = "drivetemp".into();
    sim.slow(
        T0,
        SlowSample {
            drive_temperatures: vec![drive],
            ..SlowSample::default()
        },
    );
    assert!(sim.state_of("temp_high", "sda/temp1", T0).is_some());
    for i in 1..=5 {
        sim.fast(T0 + 30 * i, temps(vec![]));
    }
    assert!(
        sim.state_of("temp_high", "sda/temp1", T0 + 150).is_some(),
        "a fast sample does not list drive sensors: not gone"
    );
    sim.slow(T0 + 600, SlowSample::default());
    assert_eq!(sim.state_of("temp_high", "sda/temp1", T0 + 600), None);
}
