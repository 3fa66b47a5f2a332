//! The rules and the state machine on sample sequences, with injected time and no sleeps.

use std::sync::Arc;

use common::events::MetricKind;
use common::sample::{
    FastSample, Filesystem, GuestConfig, GuestFast, GuestStatus, MediumSample, NetInterface,
    Storage, ZfsPool,
};

use super::config::AlertsConfig;
use super::engine::Engine;
use super::forecast::{History, NoHistory};
use super::quiet::{Matchers, Silence};
use crate::state::{HostState, Latest};
use crate::store::alerts::{
    Ack, AlertChanges, AlertRecord, AlertState, EventKind, LoadedAlerts, Severity,
};
use crate::store::{Host, HostStatus};

/// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600;

fn config(toml: &str) -> AlertsConfig {
    let table: toml::Table = toml::from_str(toml).unwrap();
    AlertsConfig::from_toml(toml::Value::Table(table)).unwrap()
}

fn host(status: HostStatus, changed_at: i64) -> Host {
    Host {
        id: 1,
        name: "pve1".into(),
        agent_version: None,
        proxmox_version: None,
        zfs_version: None,
        status,
        status_changed_at: Some(changed_at),
        last_seen_at: Some(changed_at),
        inserted_at: 0,
        updated_at: 0,
    }
}

/// One host, an engine, and the changes they produced so far.
struct Sim {
    engine: Engine,
    state: HostState,
    changes: Vec<AlertChanges>,
}

impl Sim {
    fn new(config: &AlertsConfig, now: i64) -> Sim {
        Sim::restarted(
            config,
            LoadedAlerts::default(),
            now,
            host(HostStatus::Online, now),
        )
    }

    fn restarted(config: &AlertsConfig, loaded: LoadedAlerts, now: i64, host: Host) -> Sim {
        let mut engine = Engine::new(config, loaded, Vec::new(), now);
        let state = HostState::new(host);
        engine.seed(&[Arc::new(state.clone())], now);
        let mut sim = Sim {
            engine,
            state,
            changes: Vec::new(),
        };
        sim.state.fast_interval = Some(30);
        sim
    }

    /// A fast sample collected at `t`, evaluated at `now`.
    fn fast_at(&mut self, t: i64, now: i64, sample: FastSample) {
        self.state.fast = Some(Arc::new(Latest {
            collected_at: t,
            sample,
        }));
        self.state.host.last_seen_at = Some(now);
        self.engine
            .evaluate_sample(&self.state, MetricKind::Fast, now, &NoHistory);
        self.collect();
    }

    fn fast(&mut self, t: i64, sample: FastSample) {
        self.fast_at(t, t, sample);
    }

    fn medium_with(&mut self, t: i64, sample: MediumSample, history: &dyn History) {
        self.state.medium = Some(Arc::new(Latest {
            collected_at: t,
            sample,
        }));
        self.engine
            .evaluate_sample(&self.state, MetricKind::Medium, t, history);
        self.collect();
    }

    fn medium(&mut self, t: i64, sample: MediumSample) {
        self.medium_with(t, sample, &NoHistory);
    }

    fn status(&mut self, status: HostStatus, at: i64) {
        self.state.host.status = status;
        self.state.host.status_changed_at = Some(at);
        self.engine.evaluate_absence(&self.state, at);
        self.collect();
    }

    /// Runs the timer up to `now` (what the worker does when `next_due` passes).
    fn tick(&mut self, now: i64) {
        for _ in self.engine.due_hosts(now) {
            self.engine.evaluate_absence(&self.state, now);
        }
        if self.engine.quiet_changed(now) {
            self.engine.evaluate_absence(&self.state, now);
        }
        self.collect();
    }

    fn collect(&mut self) {
        let changes = self.engine.take_changes();
        if !changes.is_empty() {
            self.changes.push(changes);
        }
    }

    /// Every event written so far, as `(key, kind)`.
    fn events(&self) -> Vec<(String, EventKind)> {
        self.changes
            .iter()
            .flat_map(|c| &c.events)
            .map(|e| (e.key.clone(), e.kind))
            .collect()
    }

    fn event_keys(&self) -> Vec<String> {
        self.events().into_iter().map(|(k, _)| k).collect()
    }

    /// The newest row written for `rule` (and `object`).
    fn last(&self, rule: &str, object: &str) -> Option<AlertRecord> {
        self.changes
            .iter()
            .flat_map(|c| &c.upserts)
            .rfind(|r| r.rule == rule && r.object == object)
            .cloned()
    }

    /// The open alerts as the pages see them.
    fn open(&mut self, now: i64) -> Vec<(String, String, AlertState, Severity)> {
        self.engine
            .view(now)
            .into_iter()
            .map(|r| (r.rec.rule, r.rec.object, r.rec.state, r.rec.severity))
            .collect()
    }
}

fn cpu(percent: f64) -> FastSample {
    FastSample {
        cpu_percent: Some(percent),
        ..FastSample::default()
    }
}

#[test]
fn a_threshold_fires_only_after_for() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    sim.fast(T0, cpu(20.0));
    assert!(sim.changes.is_empty(), "nothing for a fine value");
    for i in 1..=10 {
        sim.fast(T0 + 30 * i, cpu(95.0));
    }
    // Pending from T0+30; `for` is 5 minutes: still pending at T0+300.
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Pending);
    assert!(sim.events().is_empty());
    sim.fast(T0 + 330, cpu(95.0));
    let alert = sim.last("cpu_high", "").unwrap();
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.since, T0 + 30);
    assert_eq!(alert.fired_at, Some(T0 + 330));
    assert_eq!(alert.severity, Severity::Warning);
    assert_eq!(alert.threshold, Some(90.0));
    assert_eq!(alert.summary, "CPU 95 % (warning at 90 %)");
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
}

#[test]
fn hysteresis_holds_a_firing_alert_under_flapping_input() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    for i in 0..=10 {
        sim.fast(T0 + 30 * i, cpu(95.0));
    }
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
    // Flapping between 85 and 95: above clear (80), so it stays one firing alert.
    for i in 11..=60 {
        let v = if i % 2 == 0 { 85.0 } else { 95.0 };
        sim.fast(T0 + 30 * i, cpu(v));
    }
    assert_eq!(
        sim.open(T0 + 1800),
        [(
            "cpu_high".into(),
            String::new(),
            AlertState::Firing,
            Severity::Warning
        )]
    );
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/warning"],
        "no new event while flapping"
    );
    // Back at or under clear: resolved, and the resolution announced.
    sim.fast(T0 + 1830, cpu(80.0));
    let alert = sim.last("cpu_high", "").unwrap();
    assert_eq!(alert.state, AlertState::Resolved);
    assert_eq!(alert.resolved_at, Some(T0 + 1830));
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/warning", "alert/1/resolved"]
    );
    assert!(sim.open(T0 + 1830).is_empty());
}

#[test]
fn flapping_around_the_warning_level_never_fires() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    for i in 0..100 {
        let v = if i % 3 == 2 { 89.0 } else { 92.0 };
        sim.fast(T0 + 30 * i, cpu(v));
    }
    assert!(sim.events().is_empty());
    // Each pending stretch was cancelled and deleted, never kept as history.
    let deleted: usize = sim.changes.iter().map(|c| c.deletes.len()).sum();
    assert!(deleted >= 30, "{deleted}");
    assert!(sim
        .changes
        .iter()
        .flat_map(|c| &c.upserts)
        .all(|r| r.state == AlertState::Pending));
}

#[test]
fn critical_needs_for_too_and_is_announced_once() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    // 99 % from the start: fires critical after 5 minutes.
    for i in 0..=10 {
        sim.fast(T0 + 30 * i, cpu(99.0));
    }
    assert_eq!(
        sim.last("cpu_high", "").unwrap().severity,
        Severity::Critical
    );
    assert_eq!(sim.event_keys(), ["alert/1/firing/critical"]);
    // Down to warning, up to critical again for long: the same alert, no second event.
    sim.fast(T0 + 330, cpu(93.0));
    assert_eq!(
        sim.last("cpu_high", "").unwrap().severity,
        Severity::Warning
    );
    for i in 12..=30 {
        sim.fast(T0 + 30 * i, cpu(99.0));
    }
    assert_eq!(
        sim.last("cpu_high", "").unwrap().severity,
        Severity::Critical
    );
    assert_eq!(sim.event_keys(), ["alert/1/firing/critical"]);

    // Warning first, then critical for `for`: escalation announced with its own key.
    let mut sim = Sim::new(&config, T0);
    for i in 0..=10 {
        sim.fast(T0 + 30 * i, cpu(93.0));
    }
    for i in 11..=20 {
        sim.fast(T0 + 30 * i, cpu(99.0));
    }
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/warning"],
        "critical not yet for 5 minutes"
    );
    sim.fast(T0 + 30 * 21, cpu(99.0));
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/warning", "alert/1/firing/critical"]
    );
}

#[test]
fn clear_for_waits_before_resolving() {
    let config = config("[rules.cpu_high]\nclear_for = \"2m\"\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.fast(T0, cpu(95.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    sim.fast(T0 + 30, cpu(50.0));
    sim.fast(T0 + 90, cpu(50.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    sim.fast(T0 + 120, cpu(95.0)); // back: the clearing starts over
    sim.fast(T0 + 150, cpu(50.0));
    sim.fast(T0 + 240, cpu(50.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    sim.fast(T0 + 270, cpu(50.0));
    assert_eq!(
        sim.last("cpu_high", "").unwrap().state,
        AlertState::Resolved
    );
}

#[test]
fn repeats_until_acknowledged_and_again_after_the_ack_expires() {
    let config = config("repeat = \"1h\"\n[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    for i in 0..=120 {
        sim.fast(T0 + 60 * i, cpu(95.0));
    }
    assert_eq!(
        sim.event_keys(),
        [
            "alert/1/firing/warning",
            "alert/1/repeat/1",
            "alert/1/repeat/2"
        ]
    );
    let id = sim.last("cpu_high", "").unwrap().id;
    sim.engine.set_acks(&[(
        id,
        Ack {
            at: T0 + 7200,
            by: "admin".into(),
            comment: None,
            expires_at: Some(T0 + 4 * 3600),
        },
    )]);
    for i in 121..=239 {
        sim.fast(T0 + 60 * i, cpu(95.0));
    }
    assert_eq!(sim.event_keys().len(), 3, "acknowledged: no reminders");
    for i in 240..=242 {
        sim.fast(T0 + 60 * i, cpu(95.0));
    }
    assert_eq!(sim.event_keys().last().unwrap(), "alert/1/repeat/3");
    // Repeat 0 means never.
    let config = self::config("repeat = \"0s\"\n[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    for i in 0..=300 {
        sim.fast(T0 + 60 * i, cpu(95.0));
    }
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
}

#[test]
fn an_offline_host_fires_once_after_for_and_suppresses_its_other_alerts() {
    let config = config("repeat = \"1h\"\n[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.fast(T0, cpu(95.0));
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
    sim.status(HostStatus::Offline, T0 + 10);
    assert_eq!(
        sim.last("host_offline", "").unwrap().state,
        AlertState::Pending
    );
    assert_eq!(sim.engine.next_due(T0 + 10), Some(T0 + 130));
    sim.tick(T0 + 129);
    assert_eq!(
        sim.last("host_offline", "").unwrap().state,
        AlertState::Pending
    );
    sim.tick(T0 + 130);
    let offline = sim.last("host_offline", "").unwrap();
    assert_eq!(offline.state, AlertState::Firing);
    assert_eq!(offline.since, T0 + 10);
    assert_eq!(offline.severity, Severity::Critical);
    assert_eq!(
        sim.event_keys(),
        ["alert/1/firing/warning", "alert/2/firing/critical"]
    );
    // The host's other alerts are suppressed: marked, and no reminders for them.
    assert_eq!(
        sim.last("cpu_high", "").unwrap().suppressed_by.as_deref(),
        Some("host_offline")
    );
    // Reminders of the offline alert itself come from the timer.
    assert_eq!(sim.engine.next_due(T0 + 130), Some(T0 + 130 + 3600));
    sim.tick(T0 + 3730);
    assert_eq!(sim.event_keys().last().unwrap(), "alert/2/repeat/1");
    // The agent is back: resolved; replayed samples from the outage are not announced.
    sim.status(HostStatus::Online, T0 + 4000);
    assert_eq!(
        sim.last("host_offline", "").unwrap().state,
        AlertState::Resolved
    );
    assert_eq!(sim.event_keys().last().unwrap(), "alert/2/resolved");
    assert_eq!(sim.last("cpu_high", "").unwrap().suppressed_by, None);
    let events = sim.event_keys().len();
    sim.fast_at(T0 + 60, T0 + 4000, cpu(95.0));
    sim.fast_at(T0 + 90, T0 + 4000, cpu(95.0));
    assert_eq!(sim.event_keys().len(), events);
}

#[test]
fn host_offline_counts_from_the_servers_start_not_the_last_disconnect() {
    let config = AlertsConfig::default();
    // Offline since long before this server started (say it was down for an hour).
    let mut sim = Sim::restarted(
        &config,
        LoadedAlerts::default(),
        T0,
        host(HostStatus::Offline, T0 - 3600),
    );
    sim.engine.evaluate_absence(&sim.state, T0);
    sim.collect();
    let pending = sim.last("host_offline", "").unwrap();
    assert_eq!((pending.state, pending.since), (AlertState::Pending, T0));
    // Its agent reconnects within `for`: nothing was ever announced.
    sim.status(HostStatus::Online, T0 + 60);
    assert!(sim.events().is_empty());
    assert!(sim.open(T0 + 60).is_empty());
}

#[test]
fn a_stale_host_suppresses_its_alerts_and_offline_takes_over() {
    let config = config("[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.fast(T0, cpu(10.0));
    // Stale after 3 intervals (30 s), at least 90 s.
    assert_eq!(sim.engine.next_due(T0), Some(T0 + 91));
    sim.tick(T0 + 91);
    assert_eq!(
        sim.last("host_stale", "").unwrap().state,
        AlertState::Firing
    );
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
    sim.status(HostStatus::Offline, T0 + 100);
    sim.tick(T0 + 220);
    assert_eq!(
        sim.last("host_offline", "").unwrap().state,
        AlertState::Firing
    );
    assert_eq!(
        sim.last("host_stale", "").unwrap().state,
        AlertState::Resolved
    );
    sim.status(HostStatus::Online, T0 + 300);
    sim.fast(T0 + 300, cpu(10.0));
    assert!(sim.open(T0 + 300).is_empty());
}

#[test]
fn a_silence_holds_back_announcements_until_it_ends() {
    let config = config("[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.engine.set_silences(vec![Silence {
        id: 4,
        matchers: Matchers {
            hosts: vec!["pve*".into()],
            rules: vec!["cpu_high".into()],
            ..Matchers::default()
        },
        starts_at: T0,
        ends_at: T0 + 600,
        comment: "load test".into(),
        created_by: "admin".into(),
    }]);
    sim.fast(T0 + 30, cpu(95.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    assert!(sim.events().is_empty(), "silenced");
    let view = sim.engine.view(T0 + 60);
    assert_eq!(view[0].quiet, Some(super::quiet::QuietReason::Silence(4)));
    sim.fast(T0 + 570, cpu(95.0));
    assert!(sim.events().is_empty());
    sim.fast(T0 + 600, cpu(95.0));
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
    // A silence that ended while the alert resolved silently: nothing to close.
    let mut sim = Sim::new(&config, T0);
    sim.engine.set_silences(vec![Silence {
        id: 1,
        matchers: Matchers::default(),
        starts_at: T0,
        ends_at: T0 + 600,
        comment: String::new(),
        created_by: "admin".into(),
    }]);
    sim.fast(T0 + 30, cpu(95.0));
    sim.fast(T0 + 60, cpu(10.0));
    assert_eq!(
        sim.last("cpu_high", "").unwrap().state,
        AlertState::Resolved
    );
    assert!(sim.events().is_empty());
}

#[test]
fn a_maintenance_window_holds_back_announcements_across_a_dst_change() {
    let config = config(
        "[rules.cpu_high]\nfor = \"0s\"\n[[maintenance]]\nname = \"patch night\"\ndays = [\"sun\"]\n\
         start = \"02:00\"\nend = \"04:00\"\ntimezone = \"Europe/Berlin\"\n",
    );
    let unix = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second();
    // Spring forward, 2026-03-29: the window is 03:00–04:00 CEST = 01:00–02:00 UTC.
    let start = unix("2026-03-29T00:30:00Z");
    let mut sim = Sim::new(&config, start);
    sim.fast(unix("2026-03-29T01:00:00Z"), cpu(95.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    sim.fast(unix("2026-03-29T01:59:00Z"), cpu(95.0));
    assert!(sim.events().is_empty(), "inside the window");
    sim.fast(unix("2026-03-29T02:00:00Z"), cpu(95.0));
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"], "after it");
    // Fall back, 2026-10-25: 02:00 CEST–04:00 CET = 00:00–03:00 UTC, three hours.
    let mut sim = Sim::new(&config, unix("2026-10-24T23:00:00Z"));
    sim.fast(unix("2026-10-25T00:00:00Z"), cpu(95.0));
    sim.fast(unix("2026-10-25T02:59:00Z"), cpu(95.0));
    assert!(
        sim.events().is_empty(),
        "the window is three hours long that night"
    );
    sim.fast(unix("2026-10-25T03:00:00Z"), cpu(95.0));
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
}

#[test]
fn an_alert_that_fired_and_resolved_in_replayed_samples_is_recorded_not_announced() {
    let config = AlertsConfig::default();
    let now = T0 + 7200;
    let mut sim = Sim::new(&config, now);
    // The agent replays an hour-old backlog: 10 minutes of 95 %, then calm.
    for i in 0..20 {
        sim.fast_at(T0 + 30 * i, now, cpu(95.0));
    }
    for i in 20..40 {
        sim.fast_at(T0 + 30 * i, now, cpu(10.0));
    }
    let alert = sim.last("cpu_high", "").unwrap();
    assert_eq!(sim.events(), [], "{:?}", sim.changes);
    assert_eq!(alert.state, AlertState::Resolved);
    assert_eq!((alert.since, alert.fired_at), (T0, Some(T0 + 300)));
    assert!(!alert.live, "marked as seen only in replayed data");
    assert_eq!(alert.announced, None);
    assert!(sim.events().is_empty());
    // Still high when the replay reaches the present: announced then, as live.
    let mut sim = Sim::new(&config, now);
    for i in 0..=36 {
        sim.fast_at(now - 1200 + 30 * i, now, cpu(95.0));
    }
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
    assert!(sim.events().is_empty());
    sim.fast_at(now, now, cpu(95.0));
    assert_eq!(sim.event_keys(), ["alert/1/firing/warning"]);
    assert!(sim.last("cpu_high", "").unwrap().live);
    // Samples out of order are ignored by the alert they are older than.
    sim.fast_at(now - 1000, now, cpu(10.0));
    assert_eq!(sim.last("cpu_high", "").unwrap().state, AlertState::Firing);
}

fn guest(vmid: u32, status: GuestStatus) -> GuestFast {
    GuestFast {
        vmid,
        name: Some(format!("vm{vmid}")),
        status,
        ..GuestFast::default()
    }
}

fn configs(guests: &[(u32, bool, bool)]) -> MediumSample {
    MediumSample {
        guests: guests
            .iter()
            .map(|&(vmid, onboot, template)| GuestConfig {
                vmid,
                name: format!("vm{vmid}"),
                onboot,
                template,
                tags: vec!["prod".into()],
                ..GuestConfig::default()
            })
            .collect(),
        ..MediumSample::default()
    }
}

fn guests(list: Vec<GuestFast>) -> FastSample {
    FastSample {
        guests: list,
        ..FastSample::default()
    }
}

#[test]
fn guest_down_knows_running_onboot_templates_locks_and_departures() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    // 100: onboot; 101: no onboot, running; 102: a template; 103: stopped, never ran.
    sim.medium(
        T0,
        configs(&[
            (100, true, false),
            (101, false, false),
            (102, false, true),
            (103, false, false),
        ]),
    );
    sim.fast(
        T0,
        guests(vec![
            guest(100, GuestStatus::Running),
            guest(101, GuestStatus::Running),
            guest(102, GuestStatus::Stopped),
            guest(103, GuestStatus::Stopped),
        ]),
    );
    assert!(sim.changes.is_empty());
    // Both stop; 100 under a backup lock for a while.
    let mut locked = guest(100, GuestStatus::Stopped);
    locked.lock = Some("backup".into());
    for i in 1..=5 {
        sim.fast(
            T0 + 30 * i,
            guests(vec![
                locked.clone(),
                guest(101, GuestStatus::Stopped),
                guest(102, GuestStatus::Stopped),
                guest(103, GuestStatus::Stopped),
            ]),
        );
    }
    let down = sim.last("guest_down", "101").unwrap();
    assert_eq!(
        (down.state, down.severity),
        (AlertState::Firing, Severity::Warning)
    );
    assert_eq!(
        down.summary,
        "guest 101 (vm101) is stopped (it was running)"
    );
    assert!(
        sim.last("guest_down", "100").is_none(),
        "the lock explains it"
    );
    assert!(sim.last("guest_down", "102").is_none() && sim.last("guest_down", "103").is_none());
    // The backup is over, 100 is still stopped and has onboot: critical after `for`.
    for i in 6..=10 {
        sim.fast(
            T0 + 30 * i,
            guests(vec![
                guest(100, GuestStatus::Stopped),
                guest(101, GuestStatus::Stopped),
            ]),
        );
    }
    let down = sim.last("guest_down", "100").unwrap();
    assert_eq!(
        (down.state, down.severity),
        (AlertState::Firing, Severity::Critical)
    );
    // 101 runs again; 100 leaves the node (migrated or deleted): both resolve.
    sim.fast(T0 + 330, guests(vec![guest(101, GuestStatus::Running)]));
    assert_eq!(
        sim.last("guest_down", "101").unwrap().state,
        AlertState::Resolved
    );
    let gone = sim.last("guest_down", "100").unwrap();
    assert_eq!(gone.state, AlertState::Resolved);
    assert_eq!(gone.resolution.as_deref(), Some("gone"));
}

#[test]
fn an_empty_guest_list_with_a_read_error_does_not_resolve_anything() {
    let config = config("[rules.guest_down]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, configs(&[(100, true, false)]));
    sim.fast(T0, guests(vec![guest(100, GuestStatus::Stopped)]));
    assert_eq!(
        sim.last("guest_down", "100").unwrap().state,
        AlertState::Firing
    );
    let mut broken = guests(Vec::new());
    broken.errors.push(common::sample::SourceError {
        source: "etc/pve/.vmlist".into(),
        message: "unreadable".into(),
    });
    sim.fast(T0 + 30, broken);
    assert_eq!(sim.open(T0 + 30).len(), 1);
}

fn pools_and_storages(tank: &str, storage_used: u64) -> MediumSample {
    MediumSample {
        pools: vec![
            ZfsPool {
                name: "rpool".into(),
                health: "ONLINE".into(),
                size_bytes: Some(100),
                alloc_bytes: Some(10),
                ..ZfsPool::default()
            },
            ZfsPool {
                name: "tank".into(),
                health: tank.into(),
                ..ZfsPool::default()
            },
        ],
        filesystems: vec![Filesystem {
            mountpoint: "/tank/backup".into(),
            device: "tank/backup".into(),
            fstype: "zfs".into(),
            size_bytes: Some(100),
            used_bytes: Some(storage_used),
            avail_bytes: Some(100 - storage_used),
            ..Filesystem::default()
        }],
        storages: vec![Storage {
            id: "tank-vm".into(),
            kind: "zfspool".into(),
            enabled: true,
            active: Some(true),
            total_bytes: Some(100),
            used_bytes: Some(storage_used),
            pool: Some("tank/vm".into()),
            ..Storage::default()
        }],
        ..MediumSample::default()
    }
}

#[test]
fn an_unhealthy_pool_fires_at_once_and_suppresses_the_storages_on_it() {
    let config = config("[rules.storage_full]\nfor = \"0s\"\n[rules.fs_full]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("ONLINE", 50));
    assert!(sim.changes.is_empty());
    sim.medium(T0 + 300, pools_and_storages("DEGRADED", 97));
    let pool = sim.last("pool_unhealthy", "tank").unwrap();
    assert_eq!(
        (pool.state, pool.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert_eq!(pool.summary, "pool tank is DEGRADED");
    let storage = sim.last("storage_full", "tank-vm").unwrap();
    assert_eq!(storage.state, AlertState::Firing);
    assert_eq!(
        storage.suppressed_by.as_deref(),
        Some("pool_unhealthy tank")
    );
    let fs = sim.last("fs_full", "/tank/backup").unwrap();
    assert_eq!(fs.suppressed_by.as_deref(), Some("pool_unhealthy tank"));
    // Only the pool is announced: one message.
    assert_eq!(
        sim.event_keys(),
        [format!("alert/{}/firing/critical", pool.id)]
    );
    // Other states than ONLINE that are not known to lose data: warning.
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("OFFLINE", 10));
    assert_eq!(
        sim.last("pool_unhealthy", "tank").unwrap().severity,
        Severity::Warning
    );
    // The pool is repaired: resolved, and the storage alert announced if still full.
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("DEGRADED", 97));
    sim.medium(T0 + 300, pools_and_storages("ONLINE", 97));
    let pool = sim.last("pool_unhealthy", "tank").unwrap();
    assert_eq!(pool.state, AlertState::Resolved);
    let keys = sim.event_keys();
    assert!(
        keys.contains(&format!("alert/{}/resolved", pool.id)),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains("firing")).count(),
        3,
        "{keys:?}"
    );
}

struct Trend;

impl History for Trend {
    fn points(&self, _: i64, series: &str, from: i64, to: i64) -> Vec<(i64, f64)> {
        assert_eq!(series, "storage.tank-vm.used_bytes");
        // 1 % of the storage per hour over the last 24 h, 70 % now.
        (0..=24)
            .map(|h| (from + h * 3600, 46.0 + f64::from(i32::try_from(h).unwrap())))
            .filter(|(t, _)| *t <= to)
            .collect()
    }
}

#[test]
fn storage_fill_forecast_from_the_last_day() {
    let config = config("[rules.storage_fill_forecast]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.medium_with(T0, pools_and_storages("ONLINE", 70), &Trend);
    // 30 % left at 1 % per hour: 30 hours, 1.25 days: critical (under 2).
    let alert = sim.last("storage_fill_forecast", "tank-vm").unwrap();
    assert_eq!(
        (alert.state, alert.severity),
        (AlertState::Firing, Severity::Critical)
    );
    assert!(
        (alert.value.unwrap() - 1.25).abs() < 1e-6,
        "{:?}",
        alert.value
    );
    // Without history (a new storage): nothing, and nothing resolved either.
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("ONLINE", 70));
    assert!(sim.last("storage_fill_forecast", "tank-vm").is_none());
}

#[test]
fn net_errors_are_a_rate_and_a_counter_reset_is_not_a_spike() {
    let config = config("[rules.net_errors]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    let net = |rx_errors: u64| FastSample {
        net: vec![NetInterface {
            name: "eno1".into(),
            rx_errors,
            ..NetInterface::default()
        }],
        ..FastSample::default()
    };
    sim.fast(T0, net(1_000_000));
    assert!(sim.changes.is_empty(), "a total since boot is not a rate");
    sim.fast(T0 + 30, net(1_000_003));
    assert!(sim.changes.is_empty(), "6/min is under 10");
    sim.fast(T0 + 60, net(1_000_063));
    let alert = sim.last("net_errors", "eno1").unwrap();
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.value, Some(120.0));
    assert_eq!(alert.severity, Severity::Critical);
    sim.fast(T0 + 90, net(5)); // rebooted: skipped
    assert_eq!(
        sim.last("net_errors", "eno1").unwrap().state,
        AlertState::Firing
    );
    sim.fast(T0 + 120, net(5));
    assert_eq!(
        sim.last("net_errors", "eno1").unwrap().state,
        AlertState::Resolved
    );
}

#[test]
fn custom_rules_watch_any_stored_series_and_scopes_pick_thresholds() {
    let config = config(
        "[rules.busy_disk]\nseries = \"disk.*.busy_percent\"\nwarning = 80\ncritical = 95\nfor = \"0s\"\n\
         [[rules.cpu_high]]\nfor = \"0s\"\n[[rules.cpu_high]]\nhosts = [\"pve1\"]\nwarning = 50\nclear = 40\n",
    );
    let mut sim = Sim::new(&config, T0);
    let sample = FastSample {
        cpu_percent: Some(60.0),
        disks: vec![
            common::sample::Disk {
                name: "sda".into(),
                busy_percent: Some(85.0),
                ..common::sample::Disk::default()
            },
            common::sample::Disk {
                name: "sdb".into(),
                busy_percent: Some(10.0),
                ..common::sample::Disk::default()
            },
        ],
        ..FastSample::default()
    };
    sim.fast(T0, sample);
    let mut open: Vec<(String, String)> = sim
        .open(T0)
        .into_iter()
        .map(|(rule, object, _, _)| (rule, object))
        .collect();
    open.sort();
    assert_eq!(
        open,
        [
            ("busy_disk".to_owned(), "disk.sda.busy_percent".to_owned()),
            ("cpu_high".to_owned(), String::new())
        ]
    );
    assert_eq!(
        sim.last("busy_disk", "disk.sda.busy_percent")
            .unwrap()
            .summary,
        "disk.sda.busy_percent is 85 (warning at 80)"
    );
    // The disk leaves: its alert resolves as gone.
    sim.fast(T0 + 30, cpu(60.0));
    assert_eq!(
        sim.last("busy_disk", "disk.sda.busy_percent")
            .unwrap()
            .resolution
            .as_deref(),
        Some("gone")
    );
}

#[test]
fn a_restart_keeps_every_alerts_id_and_since_and_fires_nothing_again() {
    let config = config("repeat = \"1h\"\n[rules.cpu_high]\nfor = \"0s\"\n");
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("DEGRADED", 10));
    sim.fast(T0, cpu(95.0));
    assert_eq!(sim.event_keys().len(), 2);
    // What the store holds: the last row of each alert.
    let mut rows: std::collections::BTreeMap<i64, AlertRecord> = std::collections::BTreeMap::new();
    for r in sim.changes.iter().flat_map(|c| &c.upserts) {
        rows.insert(r.id, r.clone());
    }
    let before: Vec<(i64, i64)> = rows.values().map(|r| (r.id, r.since)).collect();
    assert_eq!(before.len(), 2, "pool and CPU: {before:?}");
    let cpu_id = sim.last("cpu_high", "").unwrap().id;
    let loaded = LoadedAlerts {
        open: rows.values().cloned().collect(),
        next_id: 3,
    };
    // The server restarts ten minutes later; the host reconnects and sends the same values.
    let restart = T0 + 600;
    let mut sim2 = Sim::restarted(
        &config,
        loaded,
        restart,
        host(HostStatus::Offline, T0 + 590),
    );
    sim2.engine.evaluate_absence(&sim2.state, restart);
    sim2.status(HostStatus::Online, restart + 5);
    sim2.medium(restart + 10, pools_and_storages("DEGRADED", 10));
    sim2.fast(restart + 10, cpu(95.0));
    assert!(sim2.events().is_empty(), "{:?}", sim2.events());
    let view = sim2.engine.view(restart + 10);
    let mut after: Vec<(i64, i64)> = view.iter().map(|r| (r.rec.id, r.rec.since)).collect();
    after.sort_unstable();
    assert_eq!(after, before);
    // A new alert gets a new id.
    let busy = FastSample {
        cpu_percent: Some(95.0),
        mem_total_bytes: Some(100),
        mem_used_bytes: Some(99),
        ..FastSample::default()
    };
    sim2.fast(restart + 40, busy.clone());
    sim2.fast(restart + 400, busy);
    // (3 was the host_offline pending while the agent reconnected, cancelled: never reused.)
    assert_eq!(sim2.last("memory_high", "").unwrap().id, 4);
    // The reminder of the old alert keeps counting from its last notification.
    sim2.fast(T0 + 3600, cpu(95.0));
    assert!(sim2
        .event_keys()
        .contains(&format!("alert/{cpu_id}/repeat/1")));
}

#[test]
fn a_guest_stopped_here_but_running_on_another_node_of_the_cluster_moved() {
    use common::sample::{Cluster, SlowSample};
    let config = config("[rules.guest_down]\nfor = \"0s\"\n");
    let node = |id: i64, name: &str| {
        let mut state = HostState::new(Host {
            id,
            name: name.into(),
            ..host(HostStatus::Online, T0)
        });
        state.fast_interval = Some(30);
        state.slow = Some(Arc::new(Latest {
            collected_at: T0,
            sample: SlowSample {
                cluster: Some(Cluster {
                    name: "homelab".into(),
                    ..Cluster::default()
                }),
                ..SlowSample::default()
            },
        }));
        state.medium = Some(Arc::new(Latest {
            collected_at: T0,
            sample: configs(&[(100, true, false)]),
        }));
        state
    };
    let mut a = node(1, "pve1");
    let mut b = node(2, "pve2");
    let mut engine = Engine::new(&config, LoadedAlerts::default(), Vec::new(), T0);
    engine.seed(&[Arc::new(a.clone()), Arc::new(b.clone())], T0);
    let fast = |engine: &mut Engine, state: &mut HostState, t: i64, list: Vec<GuestFast>| {
        state.fast = Some(Arc::new(Latest {
            collected_at: t,
            sample: guests(list),
        }));
        engine.evaluate_sample(state, MetricKind::Fast, t, &NoHistory);
    };
    fast(
        &mut engine,
        &mut a,
        T0,
        vec![guest(100, GuestStatus::Running)],
    );
    fast(&mut engine, &mut b, T0, Vec::new());
    // Migrated: running on pve2 while pve1's (late) sample still lists it, stopped.
    fast(
        &mut engine,
        &mut b,
        T0 + 30,
        vec![guest(100, GuestStatus::Running)],
    );
    fast(
        &mut engine,
        &mut a,
        T0 + 31,
        vec![guest(100, GuestStatus::Stopped)],
    );
    assert!(engine.view(T0 + 31).is_empty(), "a move, not a guest down");
    fast(&mut engine, &mut a, T0 + 61, Vec::new());
    // Stopped on pve2 now, with onboot: that one is down.
    fast(
        &mut engine,
        &mut b,
        T0 + 60,
        vec![guest(100, GuestStatus::Stopped)],
    );
    let view = engine.view(T0 + 60);
    assert_eq!(view.len(), 1);
    assert_eq!(
        (view[0].rec.host.as_str(), view[0].rec.rule.as_str()),
        ("pve2", "guest_down")
    );
}

#[test]
fn fast_samples_leave_alerts_of_medium_rules_alone() {
    let config = AlertsConfig::default();
    let mut sim = Sim::new(&config, T0);
    sim.medium(T0, pools_and_storages("ONLINE", 97));
    assert_eq!(
        sim.last("storage_full", "tank-vm").unwrap().state,
        AlertState::Pending
    );
    for i in 1..=20 {
        sim.fast(T0 + 30 * i, cpu(10.0));
    }
    let open: Vec<String> = sim
        .open(T0 + 600)
        .into_iter()
        .map(|(r, o, _, _)| format!("{r} {o}"))
        .collect();
    assert_eq!(open, ["fs_full /tank/backup", "storage_full tank-vm"]);
}
