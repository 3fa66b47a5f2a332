//! The alert state machine: observations in, alert changes and notification events out.
//! No I/O, no clock, no threads — time is passed in, so every rule can be tested on a sample
//! sequence without sleeping.
//!
//! An alert is (rule, host, object). For each observation of it:
//!
//! - none open and the condition holds (the value reaches `warning`, or the state is bad):
//!   a **pending** alert starts, `since` = the sample's time (or when the condition is known
//!   to have begun, e.g. the disconnect for `host_offline`);
//! - pending and the condition no longer holds: cancelled (deleted, never shown in history);
//!   still holding after `for`: **firing**, critical if the critical level held for `for`;
//! - firing: stays firing until the value is back at or past `clear` (hysteresis) for
//!   `clear_for`, then **resolved**. Severity follows the value (up to critical after
//!   `for`, back to warning as soon as it drops under critical).
//!
//! Time is the sample's `collected_at`; an observation older than the alert's newest is
//! ignored, so samples are taken in time order. A sample more than its host's stale limit
//! behind the clock is *replayed* (from an agent's spool): it moves the state machine like
//! any other, but nothing is announced from it — an alert that fires and resolves inside
//! replayed data is recorded with `live = false` and no event; one still firing when live
//! samples arrive is announced then.
//!
//! Announcements (outbox events with idempotency keys) happen only on live observations,
//! and only when the alert is neither silenced (a silence or a maintenance window matches) nor
//! suppressed: by its host being offline or stale (one message, not fifty), or, for storage
//! and ZFS filesystem alerts, by `pool_unhealthy` firing for the pool under them. A firing
//! alert is announced once (`firing/<severity>`; again if it becomes critical), then
//! repeated every `repeat` while nobody acknowledged it; `resolved` follows an announced
//! alert only. Absence rules (`host_offline`, `host_stale`) are evaluated on status changes and
//! at the times `next_due` asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use common::events::MetricKind;
use common::sample::{FastSample, GuestConfig, MediumSample, PoolHealth, SlowSample, SourceError};
use serde_json::json;

use super::config::{AlertsConfig, RuleId, RuleKind, RuleTable};
use super::forecast::{self, Forecast, History};
use super::quiet::{glob_match, Quiet, QuietReason, Silence, Subject};
use super::rules::{Builtin, Levels, Settings, Severity, Source};
use super::summary;

pub mod operations;
use crate::state::{HostState, Latest};
use crate::store::alerts::{
    Ack, AlertChanges, AlertRecord, AlertState, EventKind, LoadedAlerts, OutboxEvent,
};
use crate::store::HostStatus;

/// An open alert with what the engine keeps about it in memory only.
#[derive(Debug, Clone)]
pub struct Alert {
    pub rec: AlertRecord,
    pub rule: RuleId,
    /// The guest's tags (guest rules), for silences and overrides by tag.
    pub tags: Vec<String>,
    /// The ZFS pool this alert's object lives on (storages, ZFS filesystems).
    pub pool: Option<String>,
    /// Time of the newest observation.
    last_t: i64,
    /// Since when the critical level holds (continuously).
    crit_since: Option<i64>,
    /// Since when a firing alert's condition is gone (for `clear_for`).
    clear_since: Option<i64>,
    /// The sample kind that observes it (for "its object is gone").
    kind: Option<MetricKind>,
}

impl Alert {
    fn from_record(rec: AlertRecord, rule: RuleId) -> Alert {
        let last_t = rec.changed_at;
        Alert {
            crit_since: (rec.severity == Severity::Critical).then_some(rec.since),
            rec,
            rule,
            tags: Vec::new(),
            pool: None,
            last_t,
            clear_since: None,
            kind: None,
        }
    }

    fn is_firing(&self) -> bool {
        self.rec.state == AlertState::Firing
    }

    fn acked(&self, now: i64) -> bool {
        self.rec.ack.as_ref().is_some_and(|a| a.holds(now))
    }
}

/// What a rule saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A number, compared with the rule's levels.
    Value(f64),
    /// A state: bad with this severity, or fine (`None`).
    State(Option<Severity>),
    /// The object is there but its state says nothing now (a guest stopped under a lock):
    /// nothing changes, and it is not "gone".
    Hold,
}

/// One observation of a rule on a host.
#[derive(Debug, Clone, Copy)]
pub struct Obs<'a> {
    pub rule: RuleId,
    pub object: &'a str,
    pub guest: Option<u32>,
    pub label: Option<&'a str>,
    pub tags: &'a [String],
    pub pool: Option<&'a str>,
    pub reading: Reading,
    /// When the condition began, when the data says (a disconnect); else the sample's time.
    pub started: Option<i64>,
    /// The object's own levels (a sensor's max and crit), used unless the config sets levels
    /// for the rule.
    pub levels: Option<Levels>,
}

impl<'a> Obs<'a> {
    pub fn new(rule: RuleId, object: &'a str, reading: Reading) -> Obs<'a> {
        Obs {
            rule,
            object,
            guest: None,
            label: None,
            tags: &[],
            pool: None,
            reading,
            started: None,
            levels: None,
        }
    }
}

/// Per host: its open alerts and what rules remember between samples.
#[derive(Debug, Default)]
struct HostBook {
    name: String,
    alerts: Vec<Alert>,
    /// The newest `collected_at` evaluated, per sample kind.
    evaluated: [Option<i64>; 3],
    /// The previous fast sample (error counters become rates).
    prev_fast: Option<Arc<Latest<FastSample>>>,
    /// Guests seen running (or paused) since they were last absent from the node's list,
    /// sorted.
    was_up: Vec<u32>,
    /// Per storage: when its forecast was computed and what it said.
    forecasts: HashMap<String, (i64, Forecast)>,
    /// When the absence rules want to look at this host again.
    due: Option<i64>,
    cluster: Option<u32>,
    /// Per SMART device: its grown-defect count and when it last grew (`smart_degrading`).
    smart: HashMap<String, operations::DefectCount>,
}

fn kind_index(kind: MetricKind) -> usize {
    match kind {
        MetricKind::Fast => 0,
        MetricKind::Medium => 1,
        MetricKind::Slow => 2,
    }
}

/// What evaluation costs, counted by the engine (read by the worker for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub samples: u64,
    pub observations: u64,
    pub firing_events: u64,
    pub repeat_events: u64,
    pub resolved_events: u64,
}

/// One open or recently changed alert as pages, the API and `/metrics` show it.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub rec: AlertRecord,
    /// Why it is not announced, if it is quiet.
    pub quiet: Option<QuietReason>,
    pub tags: Vec<String>,
}

impl AlertRow {
    pub fn is_quiet(&self) -> bool {
        self.quiet.is_some() || self.rec.suppressed_by.is_some()
    }

    pub fn acknowledged(&self, now: i64) -> bool {
        self.rec.ack.as_ref().is_some_and(|a| a.holds(now))
    }
}

/// The engine (see the module doc).
pub struct Engine {
    rules: Arc<RuleTable>,
    enabled: bool,
    /// `[notify.repeat]`: reminder intervals by severity that replace the rules' `repeat`.
    repeat_by_severity: super::config::RepeatBySeverity,
    quiet: Quiet,
    books: HashMap<i64, HostBook>,
    clusters: HashMap<String, u32>,
    /// (cluster, vmid) → (host, time) of the newest sample that saw the guest running.
    guest_homes: HashMap<(u32, u32), (i64, i64)>,
    started_at: i64,
    next_id: i64,
    /// Ids changed since the last `take_changes`, and rows that left memory meanwhile.
    dirty: BTreeSet<i64>,
    closed: BTreeMap<i64, AlertRecord>,
    deleted: Vec<i64>,
    events: Vec<OutboxEvent>,
    /// (due time, host id) of every host with a due time.
    due: BTreeSet<(i64, i64)>,
    /// Something the pages show changed since the last `view`.
    view_changed: bool,
    /// A state changed (not only a value): worth showing without delay.
    structure_changed: bool,
    /// The earliest expiry of an acknowledgement (repeats resume then).
    ack_expiry: Option<i64>,
    /// `Quiet::generation` when last looked at.
    quiet_generation: u64,
    pub counters: Counters,
}

impl Engine {
    /// An engine with the open alerts of `loaded`, at `now`.
    pub fn new(
        config: &AlertsConfig,
        loaded: LoadedAlerts,
        silences: Vec<Silence>,
        now: i64,
    ) -> Engine {
        let mut quiet = Quiet::new(config.windows.clone());
        quiet.set_silences(silences);
        let mut engine = Engine {
            rules: config.rules.clone(),
            enabled: config.enabled,
            repeat_by_severity: config.repeat_by_severity,
            quiet,
            books: HashMap::new(),
            clusters: HashMap::new(),
            guest_homes: HashMap::new(),
            started_at: now,
            next_id: loaded.next_id.max(1),
            dirty: BTreeSet::new(),
            closed: BTreeMap::new(),
            deleted: Vec::new(),
            events: Vec::new(),
            due: BTreeSet::new(),
            view_changed: true,
            structure_changed: true,
            ack_expiry: None,
            quiet_generation: 0,
            counters: Counters::default(),
        };
        for rec in loaded.open {
            let reason = match engine.rules.id(&rec.rule) {
                None => Some("rule no longer configured"),
                Some(_) if !engine.enabled => Some("alerting disabled in the config"),
                Some(_) => None,
            };
            let Some(rule) = engine.rules.id(&rec.rule).filter(|_| reason.is_none()) else {
                let mut alert = Alert::from_record(rec, RuleId(0));
                engine.finish(&mut alert, now, reason);
                continue;
            };
            let book = engine.books.entry(rec.host_id).or_default();
            book.name.clone_from(&rec.host);
            book.alerts.push(Alert::from_record(rec, rule));
        }
        engine.ack_expiry = engine.earliest_ack_expiry();
        engine
    }

    fn earliest_ack_expiry(&self) -> Option<i64> {
        self.books
            .values()
            .flat_map(|b| &b.alerts)
            .filter_map(|a| a.rec.ack.as_ref()?.expires_at)
            .min()
    }

    /// Takes note of a host as it is now, without evaluating it: what it has already sent
    /// was evaluated by the server that stored it. Hosts in the database that are not in
    /// `hosts` lose their alerts ("host removed").
    pub fn seed(&mut self, hosts: &[Arc<HostState>], now: i64) {
        let known: HashSet<i64> = hosts.iter().map(|h| h.host.id).collect();
        let gone: Vec<i64> = self
            .books
            .keys()
            .filter(|id| !known.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.remove_host(id, now);
        }
        for state in hosts {
            let cluster = self.cluster_id(state);
            let book = self.books.entry(state.host.id).or_default();
            book.name.clone_from(&state.host.name);
            book.cluster = cluster;
            for kind in MetricKind::ALL {
                book.evaluated[kind_index(kind)] = state.collected_at(kind);
            }
            book.prev_fast.clone_from(&state.fast);
            if let Some(fast) = state.fast() {
                book.was_up = fast
                    .guests
                    .iter()
                    .filter(|g| g.status.is_up())
                    .map(|g| g.vmid)
                    .collect();
                book.was_up.sort_unstable();
                book.was_up.dedup();
            }
            for alert in &mut book.alerts {
                if let Some(vmid) = alert.rec.guest {
                    alert.tags = state
                        .guest_config(vmid)
                        .map(|c| c.tags.clone())
                        .unwrap_or_default();
                }
            }
            self.schedule(state, now);
        }
    }

    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    pub fn rules(&self) -> &Arc<RuleTable> {
        &self.rules
    }

    pub fn silences(&self) -> &[Silence] {
        self.quiet.silences()
    }

    pub fn windows(&self) -> &[super::quiet::Window] {
        self.quiet.windows()
    }

    fn cluster_id(&mut self, state: &HostState) -> Option<u32> {
        let name = state.cluster_name()?;
        let next = u32::try_from(self.clusters.len()).unwrap_or(u32::MAX);
        Some(*self.clusters.entry(name.to_owned()).or_insert(next))
    }

    /// Evaluates the newest sample of `kind` of `state`, unless it was evaluated already.
    /// Returns whether it was evaluated.
    pub fn evaluate_sample(
        &mut self,
        state: &HostState,
        kind: MetricKind,
        now: i64,
        history: &dyn History,
    ) -> bool {
        let Some(t) = state.collected_at(kind) else {
            return false;
        };
        let host_id = state.host.id;
        {
            let cluster = self.cluster_id(state);
            let book = self.books.entry(host_id).or_default();
            if book.name.is_empty() {
                book.name.clone_from(&state.host.name);
            }
            book.cluster = cluster;
            let seen = &mut book.evaluated[kind_index(kind)];
            if seen.is_some_and(|s| s >= t) {
                return false;
            }
            *seen = Some(t);
        }
        if !self.enabled {
            return true;
        }
        self.counters.samples += 1;
        // A sample older than the host's stale limit is replayed from the agent's spool.
        let live = now - t <= state.stale_after();
        match kind {
            MetricKind::Fast => {
                if let Some(latest) = state.fast.clone() {
                    self.fast_rules(state, &latest, live);
                    if let Some(book) = self.books.get_mut(&host_id) {
                        book.prev_fast = Some(latest.clone());
                    }
                    self.custom_rules(host_id, MetricKind::Fast, t, live, || {
                        latest.sample.series_points()
                    });
                    self.sweep(
                        host_id,
                        MetricKind::Fast,
                        t,
                        &sweepable_fast(&latest.sample),
                    );
                }
            }
            MetricKind::Medium => {
                if let Some(latest) = state.medium.clone() {
                    self.medium_rules(state, &latest, live, now, history);
                    self.operations_medium_rules(state, &latest, live);
                    self.custom_rules(host_id, MetricKind::Medium, t, live, || {
                        latest.sample.series_points()
                    });
                    self.sweep(
                        host_id,
                        MetricKind::Medium,
                        t,
                        &sweepable_medium(&latest.sample),
                    );
                }
            }
            MetricKind::Slow => {
                if let Some(latest) = state.slow.clone() {
                    self.operations_slow_rules(state, &latest, live);
                    self.custom_rules(host_id, MetricKind::Slow, t, live, || {
                        latest.sample.series_points()
                    });
                    self.sweep(
                        host_id,
                        MetricKind::Slow,
                        t,
                        &sweepable_slow(&latest.sample),
                    );
                }
            }
        }
        if live {
            self.announce(host_id, t, now);
        }
        if kind == MetricKind::Fast {
            // A fresh fast sample moves the stale deadline.
            self.evaluate_absence(state, now);
        }
        true
    }

    /// The absence rules of one host, at `now`: on status changes, and when due.
    pub fn evaluate_absence(&mut self, state: &HostState, now: i64) {
        let host_id = state.host.id;
        {
            let book = self.books.entry(host_id).or_default();
            if book.name.is_empty() {
                book.name.clone_from(&state.host.name);
            }
        }
        if !self.enabled {
            return;
        }
        let offline_rule = RuleTable::builtin(Builtin::HostOffline);
        let stale_rule = RuleTable::builtin(Builtin::HostStale);
        match state.host.status {
            HostStatus::Offline => {
                // A restart of this server is not an outage of every host: the time counts
                // from the disconnect or from this server's start, whichever is later.
                let since = state
                    .host
                    .status_changed_at
                    .unwrap_or(now)
                    .max(self.started_at);
                let mut obs = Obs::new(offline_rule, "", Reading::State(Some(Severity::Critical)));
                obs.started = Some(since);
                self.observe(host_id, &obs, now, true, None);
                let offline_firing = self.books.get(&host_id).is_some_and(|b| {
                    b.alerts
                        .iter()
                        .any(|a| a.rule == offline_rule && a.is_firing())
                });
                // Stale means "connected but silent"; once offline has fired it says more.
                let reading = if offline_firing {
                    Reading::State(None)
                } else {
                    Reading::Hold
                };
                self.observe(host_id, &Obs::new(stale_rule, "", reading), now, true, None);
            }
            HostStatus::Online | HostStatus::NeverConnected => {
                self.observe(
                    host_id,
                    &Obs::new(offline_rule, "", Reading::State(None)),
                    now,
                    true,
                    None,
                );
                let stale = state.host.status == HostStatus::Online
                    && stale_since(state).is_some_and(|since| now >= since);
                let reading = if stale {
                    Reading::State(Some(Severity::Warning))
                } else {
                    Reading::State(None)
                };
                let mut obs = Obs::new(stale_rule, "", reading);
                obs.started = stale_since(state);
                self.observe(host_id, &obs, now, true, None);
            }
        }
        self.announce(host_id, now, now);
        self.schedule(state, now);
    }

    /// A host was removed from the database: its alerts resolve ("host removed").
    pub fn remove_host(&mut self, host_id: i64, now: i64) {
        if let Some(mut book) = self.books.remove(&host_id) {
            for mut alert in book.alerts.drain(..) {
                self.finish(&mut alert, now, Some("host removed"));
            }
            if let Some(due) = book.due {
                self.due.remove(&(due, host_id));
            }
        }
        self.guest_homes.retain(|_, (h, _)| *h != host_id);
    }

    /// Hosts whose absence rules are due at `now`.
    pub fn due_hosts(&mut self, now: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(&(t, host_id)) = self.due.first() {
            if t > now {
                break;
            }
            self.due.remove(&(t, host_id));
            if let Some(book) = self.books.get_mut(&host_id) {
                book.due = None;
            }
            out.push(host_id);
        }
        out
    }

    /// Hosts with an open absence alert (re-checked when silences change).
    pub fn hosts_with_absence_alerts(&self) -> Vec<i64> {
        self.books
            .iter()
            .filter(|(_, b)| {
                b.alerts.iter().any(|a| {
                    matches!(
                        &self.rules.get(a.rule).kind,
                        RuleKind::Builtin(b) if b.is_absence_rule()
                    )
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The next moment something is due: a host's absence check, a silence or maintenance
    /// window starting or ending.
    pub fn next_due(&mut self, now: i64) -> Option<i64> {
        let host = self.due.first().map(|(t, _)| *t);
        let quiet = self.quiet.next_change(now);
        let acks = self.ack_expiry.filter(|t| *t > now);
        [host, quiet, acks].into_iter().flatten().min()
    }

    /// Whether silences or maintenance windows started or ended since the last call (or were
    /// replaced): absence alerts should then be looked at again, and the pages updated.
    pub fn quiet_changed(&mut self, now: i64) -> bool {
        let generation = self.quiet.generation(now);
        let changed = generation != self.quiet_generation;
        self.quiet_generation = generation;
        if changed {
            self.view_changed = true;
            self.structure_changed = true;
        }
        changed
    }

    /// Replaces the silences (after any change to them).
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.quiet.set_silences(silences);
        self.view_changed = true;
        self.structure_changed = true;
    }

    /// Sets the acknowledgements of open alerts as the database has them.
    pub fn set_acks(&mut self, acks: &[(i64, Ack)]) {
        let by_id: HashMap<i64, &Ack> = acks.iter().map(|(id, a)| (*id, a)).collect();
        for book in self.books.values_mut() {
            for alert in &mut book.alerts {
                let ack = by_id.get(&alert.rec.id).map(|a| (*a).clone());
                if alert.rec.ack != ack {
                    alert.rec.ack = ack;
                    self.view_changed = true;
                    self.structure_changed = true;
                }
            }
        }
        self.ack_expiry = self.earliest_ack_expiry();
    }

    /// Hosts the engine keeps a book for.
    pub fn open_host_ids(&self) -> Vec<i64> {
        self.books.keys().copied().collect()
    }

    /// Ids of every open alert.
    pub fn open_ids(&self) -> Vec<i64> {
        self.books
            .values()
            .flat_map(|b| b.alerts.iter().map(|a| a.rec.id))
            .collect()
    }

    /// What changed since the last call, for the store. Rows are in id order, so a resolved
    /// alert is written before the new alert of the same (rule, host, object).
    pub fn take_changes(&mut self) -> AlertChanges {
        let mut upserts = Vec::with_capacity(self.dirty.len());
        let open: HashMap<i64, &Alert> = if self.dirty.is_empty() {
            HashMap::new()
        } else {
            self.books
                .values()
                .flat_map(|b| &b.alerts)
                .filter(|a| self.dirty.contains(&a.rec.id))
                .map(|a| (a.rec.id, a))
                .collect()
        };
        for id in &self.dirty {
            let rec = match (self.closed.get(id), open.get(id)) {
                (Some(closed), _) => closed.clone(),
                (None, Some(alert)) => alert.rec.clone(),
                (None, None) => continue, // cancelled: in `deleted`
            };
            let mut rec = rec;
            rec.summary = summary::summary(&self.rules, &rec);
            upserts.push(rec);
        }
        self.dirty.clear();
        self.closed.clear();
        AlertChanges {
            upserts,
            deletes: std::mem::take(&mut self.deleted),
            events: std::mem::take(&mut self.events),
        }
    }

    /// Gives back changes the store could not write, to be written with the next ones.
    pub fn restore_changes(&mut self, changes: AlertChanges) {
        for rec in changes.upserts {
            self.dirty.insert(rec.id);
            if rec.state == AlertState::Resolved {
                self.closed.insert(rec.id, rec);
            }
        }
        let mut deleted = changes.deletes;
        deleted.append(&mut self.deleted);
        self.deleted = deleted;
        let mut events = changes.events;
        events.append(&mut self.events);
        self.events = events;
    }

    /// Whether the pages' view is out of date; `urgent` when a state (not only a value)
    /// changed.
    pub fn view_changed(&self) -> (bool, bool) {
        (self.view_changed, self.structure_changed)
    }

    /// Every open alert as the pages show it, worst first.
    pub fn view(&mut self, now: i64) -> Vec<AlertRow> {
        self.view_changed = false;
        self.structure_changed = false;
        let rules = self.rules.clone();
        let mut rows = Vec::new();
        for book in self.books.values() {
            for alert in &book.alerts {
                let subject = Subject {
                    host: &alert.rec.host,
                    rule: rules.name(alert.rule),
                    object: &alert.rec.object,
                    guest: alert.rec.guest,
                    tags: &alert.tags,
                };
                let quiet = self.quiet.reason(&subject, now);
                let mut rec = alert.rec.clone();
                rec.summary = summary::summary(&rules, &rec);
                rows.push(AlertRow {
                    rec,
                    quiet,
                    tags: alert.tags.clone(),
                });
            }
        }
        rows.sort_by(|a, b| {
            (b.rec.state == AlertState::Firing)
                .cmp(&(a.rec.state == AlertState::Firing))
                .then(b.rec.severity.cmp(&a.rec.severity))
                .then(a.rec.since.cmp(&b.rec.since))
                .then(a.rec.id.cmp(&b.rec.id))
        });
        rows
    }

    // ---------------------------------------------------------------- the rules

    fn fast_rules(&mut self, state: &HostState, latest: &Latest<FastSample>, live: bool) {
        let host_id = state.host.id;
        let t = latest.collected_at;
        let f = &latest.sample;
        let rule = RuleTable::builtin;
        let value = |engine: &mut Engine, b: Builtin, v: Option<f64>, object: &str| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let obs = Obs::new(rule(b), object, Reading::Value(v));
                engine.observe(host_id, &obs, t, live, Some(MetricKind::Fast));
            }
        };
        value(self, Builtin::CpuHigh, f.cpu_percent, "");
        let share = |part: Option<u64>, whole: Option<u64>| -> Option<f64> {
            let whole = whole.filter(|w| *w > 0)?;
            #[allow(clippy::cast_precision_loss)]
            Some(part? as f64 / whole as f64 * 100.0)
        };
        value(
            self,
            Builtin::MemoryHigh,
            share(f.mem_used_for_display(), f.mem_total_bytes),
            "",
        );
        value(
            self,
            Builtin::SwapHigh,
            share(f.swap_used_bytes(), f.swap_total_bytes),
            "",
        );
        let cpus = state
            .slow()
            .and_then(|s| s.cpu_count)
            .map(f64::from)
            .or_else(|| {
                f.cpu_per_core_percent.as_ref().and_then(|c| {
                    #[allow(clippy::cast_precision_loss)]
                    let n = c.len() as f64;
                    (n > 0.0).then_some(n)
                })
            });
        value(
            self,
            Builtin::LoadHigh,
            f.load5.zip(cpus).map(|(l, c)| l / c),
            "",
        );
        if let Some(p) = &f.pressure {
            value(self, Builtin::PressureHigh, p.cpu_some, "cpu");
            value(self, Builtin::PressureHigh, p.io_some, "io");
            value(self, Builtin::PressureHigh, p.memory_some, "memory");
        }
        // Error counters are totals since boot: a rate needs the previous sample.
        let previous = self
            .books
            .get(&host_id)
            .and_then(|b| b.prev_fast.clone())
            .filter(|p| p.collected_at < t);
        if let Some(previous) = previous {
            let dt = t - previous.collected_at;
            for n in &f.net {
                let Some(before) = previous.sample.net.iter().find(|p| p.name == n.name) else {
                    continue;
                };
                let now_errors = n.rx_errors.saturating_add(n.tx_errors);
                let then_errors = before.rx_errors.saturating_add(before.tx_errors);
                if now_errors < then_errors {
                    // Counters reset (reboot, driver reload): no rate this time, nothing gone.
                    let obs = Obs::new(rule(Builtin::NetErrors), &n.name, Reading::Hold);
                    self.observe(host_id, &obs, t, live, Some(MetricKind::Fast));
                    continue;
                }
                #[allow(clippy::cast_precision_loss)]
                let per_minute = (now_errors - then_errors) as f64 / dt as f64 * 60.0;
                value(self, Builtin::NetErrors, Some(per_minute), &n.name);
            }
        }
        self.guest_rules(state, latest, live);
        self.temperature_rules(host_id, &f.temperatures, t, live, MetricKind::Fast);
    }

    fn guest_rules(&mut self, state: &HostState, latest: &Latest<FastSample>, live: bool) {
        let host_id = state.host.id;
        let t = latest.collected_at;
        let down = RuleTable::builtin(Builtin::GuestDown);
        let memory = RuleTable::builtin(Builtin::GuestMemoryHigh);
        let guests = &latest.sample.guests;
        let configs: &[GuestConfig] = state.medium().map_or(&[], |m| m.guests.as_slice());
        // Agents list configs by vmid; a binary search then finds one in a few steps.
        let sorted = configs.windows(2).all(|w| w[0].vmid < w[1].vmid);
        let config_of = |vmid: u32| -> Option<&GuestConfig> {
            if sorted {
                configs
                    .binary_search_by_key(&vmid, |c| c.vmid)
                    .ok()
                    .map(|i| &configs[i])
            } else {
                configs.iter().find(|c| c.vmid == vmid)
            }
        };
        let (cluster, was_up) = match self.books.get_mut(&host_id) {
            Some(book) => (book.cluster, std::mem::take(&mut book.was_up)),
            None => return,
        };
        let mut now_up: Vec<u32> = Vec::with_capacity(guests.len());
        let mut vmid_text = itoa::Buffer::new();
        for g in guests {
            let object = vmid_text.format(g.vmid);
            let up = g.status.is_up();
            let stopped = g.status == common::sample::GuestStatus::Stopped;
            // Details (config, tags, name) matter only when something may be wrong or open.
            let open = self.books.get(&host_id).is_some_and(|b| {
                b.alerts
                    .iter()
                    .any(|a| a.rec.guest == Some(g.vmid) && (a.rule == down || a.rule == memory))
            });
            let memory_share = if up { g.mem_used_bytes } else { None }
                .zip(g.mem_limit_bytes.filter(|l| *l > 0))
                .map(|(used, limit)| {
                    #[allow(clippy::cast_precision_loss)]
                    let share = used as f64 / limit as f64 * 100.0;
                    share
                });
            if up {
                now_up.push(g.vmid);
                // Running on this node now: a stop elsewhere of the same vmid is a move.
                if let (Some(c), Err(_)) = (cluster, was_up.binary_search(&g.vmid)) {
                    self.guest_homes.insert((c, g.vmid), (host_id, t));
                }
            }
            let fine_memory = memory_share.map_or(true, |share| {
                // Overrides by tag need the guest's config; without them the host's settings
                // tell whether the share reaches a level.
                let subject = Subject {
                    host: &state.host.name,
                    rule: self.rules.name(memory),
                    object,
                    guest: Some(g.vmid),
                    tags: &[],
                };
                !self.rules.needs_tags(memory)
                    && self
                        .rules
                        .settings(memory, &subject)
                        .levels
                        .map_or(true, |l| l.level(share).is_none())
            });
            if up && !open && fine_memory {
                continue; // running, nothing open, memory fine: nothing to observe
            }
            let config = config_of(g.vmid);
            let tags: &[String] = config.map(|c| c.tags.as_slice()).unwrap_or_default();
            let label = g.name.as_deref().or(config.map(|c| c.name.as_str()));
            let base = Obs {
                guest: Some(g.vmid),
                label,
                tags,
                ..Obs::new(down, object, Reading::Hold)
            };
            let reading = if up {
                Reading::State(None)
            } else if stopped {
                let template = config.is_some_and(|c| c.template);
                let locked = g.lock.is_some() || config.is_some_and(|c| c.lock.is_some());
                // Running on another node of the same cluster now: it moved (a migration
                // whose lock this node's samples did not catch).
                let moved = cluster.is_some_and(|c| {
                    self.guest_homes.get(&(c, g.vmid)).is_some_and(|(h, _)| {
                        *h != host_id
                            && self
                                .books
                                .get(h)
                                .is_some_and(|b| b.was_up.binary_search(&g.vmid).is_ok())
                    })
                });
                let onboot = config.is_some_and(|c| c.onboot);
                if template || moved {
                    Reading::State(None)
                } else if locked {
                    Reading::Hold
                } else if onboot {
                    Reading::State(Some(Severity::Critical))
                } else if was_up.binary_search(&g.vmid).is_ok() {
                    Reading::State(Some(Severity::Warning))
                } else {
                    Reading::State(None)
                }
            } else {
                Reading::Hold // a status this server does not know
            };
            self.observe(
                host_id,
                &Obs { reading, ..base },
                t,
                live,
                Some(MetricKind::Fast),
            );
            if let Some(share) = memory_share {
                let obs = Obs {
                    rule: memory,
                    reading: Reading::Value(share),
                    ..base
                };
                self.observe(host_id, &obs, t, live, Some(MetricKind::Fast));
            }
        }
        // Seen running since it was last absent: running now, or before and still listed (a
        // list that came back empty with an error keeps what it had).
        let complete = !guests.is_empty() || latest.sample.errors.is_empty();
        let mut listed: Vec<u32> = guests.iter().map(|g| g.vmid).collect();
        listed.sort_unstable();
        let mut next: Vec<u32> = was_up
            .into_iter()
            .filter(|v| !complete || listed.binary_search(v).is_ok())
            .chain(now_up)
            .collect();
        next.sort_unstable();
        next.dedup();
        if let Some(book) = self.books.get_mut(&host_id) {
            book.was_up = next;
        }
    }

    fn medium_rules(
        &mut self,
        state: &HostState,
        latest: &Latest<MediumSample>,
        live: bool,
        now: i64,
        history: &dyn History,
    ) {
        let host_id = state.host.id;
        let t = latest.collected_at;
        let m = &latest.sample;
        let rule = RuleTable::builtin;
        let kind = Some(MetricKind::Medium);
        #[allow(clippy::cast_precision_loss)]
        let percent = |part: u64, whole: u64| part as f64 / whole as f64 * 100.0;
        for fs in &m.filesystems {
            let (Some(used), Some(avail)) = (fs.used_bytes, fs.avail_bytes) else {
                continue;
            };
            let usable = used.saturating_add(avail);
            if usable == 0 {
                continue;
            }
            let pool = (fs.fstype == "zfs")
                .then(|| fs.device.split('/').next())
                .flatten();
            let obs = Obs {
                pool,
                ..Obs::new(
                    rule(Builtin::FsFull),
                    &fs.mountpoint,
                    Reading::Value(percent(used, usable)),
                )
            };
            self.observe(host_id, &obs, t, live, kind);
        }
        for s in &m.storages {
            let usage = s
                .used_bytes
                .zip(s.total_bytes)
                .filter(|(_, total)| *total > 0 && s.enabled && s.active == Some(true));
            let Some((used, total)) = usage else {
                continue;
            };
            let pool = s.zfs_pool();
            let obs = Obs {
                pool,
                label: Some(s.kind.as_str()),
                ..Obs::new(
                    rule(Builtin::StorageFull),
                    &s.id,
                    Reading::Value(percent(used, total)),
                )
            };
            self.observe(host_id, &obs, t, live, kind);
            let reading = if live {
                #[allow(clippy::cast_precision_loss)]
                match self.forecast(host_id, &s.id, used as f64, total as f64, now, history) {
                    Forecast::Unknown => Reading::Hold,
                    Forecast::Never => Reading::State(None),
                    Forecast::Days(days) => Reading::Value(days),
                }
            } else {
                // A trend of the history up to now says nothing about a replayed moment.
                Reading::Hold
            };
            let reading = match reading {
                // "Never full" is fine whatever the levels are.
                Reading::State(None) => Reading::Value(f64::INFINITY),
                other => other,
            };
            let obs = Obs {
                pool,
                label: Some(s.kind.as_str()),
                ..Obs::new(rule(Builtin::StorageFillForecast), &s.id, reading)
            };
            self.observe(host_id, &obs, t, live, kind);
        }
        for p in &m.pools {
            let level = match &p.health {
                PoolHealth::Online => None,
                PoolHealth::Degraded
                | PoolHealth::Faulted
                | PoolHealth::Unavail
                | PoolHealth::Suspended => Some(Severity::Critical),
                _ => Some(Severity::Warning),
            };
            let obs = Obs {
                label: Some(p.health.as_str()),
                ..Obs::new(rule(Builtin::PoolUnhealthy), &p.name, Reading::State(level))
            };
            self.observe(host_id, &obs, t, live, kind);
            if let Some((alloc, size)) = p.alloc_bytes.zip(p.size_bytes.filter(|s| *s > 0)) {
                let obs = Obs::new(
                    rule(Builtin::PoolCapacity),
                    &p.name,
                    Reading::Value(percent(alloc, size)),
                );
                self.observe(host_id, &obs, t, live, kind);
            }
        }
    }

    /// The forecast of storage `id`, recomputed at most every `forecast::EVERY_S`.
    fn forecast(
        &mut self,
        host_id: i64,
        id: &str,
        used: f64,
        total: f64,
        now: i64,
        history: &dyn History,
    ) -> Forecast {
        let rule = RuleTable::builtin(Builtin::StorageFillForecast);
        let Some(book) = self.books.get_mut(&host_id) else {
            return Forecast::Unknown;
        };
        let subject = Subject {
            host: &book.name,
            rule: self.rules.name(rule),
            object: id,
            guest: None,
            tags: &[],
        };
        if !self.rules.settings(rule, &subject).enabled {
            return Forecast::Unknown;
        }
        if let Some((at, forecast)) = book.forecasts.get(id) {
            if now - at < forecast::EVERY_S {
                return *forecast;
            }
        }
        let series = common::series::SeriesName::Storage(
            id.to_owned(),
            common::series::StorageField::UsedBytes,
        )
        .to_string();
        let points = history.points(host_id, &series, now - forecast::WINDOW_S, now);
        let result = forecast::days_until_full(&points, used, total);
        book.forecasts.insert(id.to_owned(), (now, result));
        result
    }

    /// Custom rules on the stored series of a sample (computed only when there are some).
    fn custom_rules(
        &mut self,
        host_id: i64,
        kind: MetricKind,
        t: i64,
        live: bool,
        points: impl FnOnce() -> Vec<(String, f64)>,
    ) {
        if !self.rules.has_custom() {
            return;
        }
        let rules = self.rules.clone();
        let points = points();
        for (id, pattern) in rules.custom() {
            for (name, v) in points.iter().filter(|(n, _)| glob_match(pattern, n)) {
                let obs = Obs::new(id, name, Reading::Value(*v));
                self.observe(host_id, &obs, t, live, Some(kind));
            }
        }
    }

    // ---------------------------------------------------------------- the state machine

    /// Applies one observation at sample time `t`.
    pub fn observe(
        &mut self,
        host_id: i64,
        obs: &Obs<'_>,
        t: i64,
        live: bool,
        kind: Option<MetricKind>,
    ) {
        self.counters.observations += 1;
        let rules = self.rules.clone();
        let Some(book) = self.books.get_mut(&host_id) else {
            return;
        };
        let index = book
            .alerts
            .iter()
            .position(|a| a.rule == obs.rule && a.rec.object == obs.object);
        // The cheap, common case: all is well and nothing is open.
        if index.is_none() && !matches!(obs.reading, Reading::Value(_) | Reading::State(Some(_))) {
            return;
        }
        let subject = Subject {
            host: &book.name,
            rule: rules.name(obs.rule),
            object: obs.object,
            guest: obs.guest,
            tags: obs.tags,
        };
        let mut settings = rules.settings(obs.rule, &subject);
        if let Some(own) = obs.levels {
            // The object's own levels, unless the config set the rule's levels.
            let configured = match rules.get(obs.rule).kind {
                RuleKind::Builtin(b) => settings.levels != b.default_levels(),
                RuleKind::Custom { .. } => true,
            };
            if !configured {
                settings.levels = Some(own);
            }
        }
        let (level, cleared, threshold) = match obs.reading {
            Reading::Hold => {
                if let Some(i) = index {
                    let a = &mut book.alerts[i];
                    a.last_t = a.last_t.max(t);
                }
                return;
            }
            Reading::State(level) => (level, level.is_none(), None),
            Reading::Value(v) => match settings.levels {
                Some(levels) => {
                    let level = levels.level(v);
                    (
                        level,
                        levels.direction.cleared(v, levels.clear),
                        Some(levels.threshold(level.unwrap_or(Severity::Warning))),
                    )
                }
                None => (None, true, None),
            },
        };
        let value = match obs.reading {
            Reading::Value(v) => Some(v),
            Reading::State(Some(_)) => Some(1.0),
            _ => Some(0.0),
        };
        if !settings.enabled {
            // Not watched here (any more): what is open goes as if its object were gone.
            if let Some(i) = index {
                let mut alert = book.alerts.remove(i);
                self.finish(&mut alert, t, Some("rule disabled for it"));
            }
            return;
        }
        let Some(i) = index else {
            let Some(level) = level else { return };
            let id = self.next_id;
            self.next_id += 1;
            let since = obs.started.unwrap_or(t).min(t);
            let rec = AlertRecord {
                id,
                rule: rules.name(obs.rule).to_owned(),
                host_id,
                host: book.name.clone(),
                object: obs.object.to_owned(),
                guest: obs.guest,
                label: obs.label.map(str::to_owned),
                state: AlertState::Pending,
                severity: level,
                value,
                threshold,
                summary: String::new(),
                since,
                fired_at: None,
                changed_at: t,
                resolved_at: None,
                resolution: None,
                live,
                announced: None,
                last_notified_at: None,
                repeats: 0,
                suppressed_by: None,
                ack: None,
            };
            let mut alert = Alert {
                rec,
                rule: obs.rule,
                tags: obs.tags.to_vec(),
                pool: obs.pool.map(str::to_owned),
                last_t: t,
                crit_since: (level == Severity::Critical).then_some(since),
                clear_since: None,
                kind,
            };
            Self::progress(&mut alert, &settings, level, t, live);
            book.alerts.push(alert);
            self.dirty.insert(id);
            self.view_changed = true;
            self.structure_changed = true;
            return;
        };
        let a = &mut book.alerts[i];
        if t < a.last_t {
            return; // older than what it already saw
        }
        a.last_t = t;
        if kind.is_some() {
            a.kind = kind;
        }
        if a.rec.value != value || a.rec.threshold != threshold {
            a.rec.value = value;
            a.rec.threshold = threshold;
            self.view_changed = true;
        }
        if let Some(label) = obs.label {
            if a.rec.label.as_deref() != Some(label) {
                a.rec.label = Some(label.to_owned());
                self.dirty.insert(a.rec.id);
            }
        }
        if a.tags.as_slice() != obs.tags && obs.guest.is_some() {
            a.tags = obs.tags.to_vec();
        }
        if a.pool.as_deref() != obs.pool {
            a.pool = obs.pool.map(str::to_owned);
        }
        match a.rec.state {
            AlertState::Pending => match level {
                None => {
                    let alert = book.alerts.remove(i);
                    self.deleted.push(alert.rec.id);
                    self.dirty.remove(&alert.rec.id);
                    self.view_changed = true;
                    self.structure_changed = true;
                }
                Some(level) => {
                    if let Some(started) = obs.started {
                        if started > a.rec.since && started <= t {
                            a.rec.since = started;
                            self.dirty.insert(a.rec.id);
                        }
                    }
                    let before = (a.rec.state, a.rec.severity);
                    Self::progress(a, &settings, level, t, live);
                    if (a.rec.state, a.rec.severity) != before {
                        self.dirty.insert(a.rec.id);
                        self.structure_changed = true;
                        self.view_changed = true;
                    }
                }
            },
            AlertState::Firing => {
                if cleared {
                    let since = *a.clear_since.get_or_insert(t);
                    if t - since >= settings.clear_for_s {
                        let mut alert = book.alerts.remove(i);
                        self.finish(&mut alert, t, None);
                    }
                    return;
                }
                a.clear_since = None;
                let before = a.rec.severity;
                match level {
                    Some(Severity::Critical) => {
                        let since = *a.crit_since.get_or_insert(t);
                        if t - since >= settings.for_s {
                            a.rec.severity = Severity::Critical;
                        }
                    }
                    _ => {
                        a.crit_since = None;
                        a.rec.severity = Severity::Warning;
                    }
                }
                if a.rec.severity != before {
                    a.rec.changed_at = t;
                    self.dirty.insert(a.rec.id);
                    self.structure_changed = true;
                    self.view_changed = true;
                }
                if live && !a.rec.live {
                    a.rec.live = true;
                    self.dirty.insert(a.rec.id);
                }
            }
            AlertState::Resolved => {}
        }
    }

    /// A pending alert whose condition holds at `level` at `t`: fires once `for` is over.
    fn progress(a: &mut Alert, settings: &Settings, level: Severity, t: i64, live: bool) {
        if level == Severity::Critical {
            a.crit_since.get_or_insert(t);
        } else {
            a.crit_since = None;
        }
        let critical = a.crit_since.is_some_and(|c| t - c >= settings.for_s);
        if t - a.rec.since >= settings.for_s {
            a.rec.state = AlertState::Firing;
            a.rec.fired_at = Some(t);
            a.rec.changed_at = t;
            a.rec.live = live;
            a.rec.severity = if critical {
                Severity::Critical
            } else {
                Severity::Warning
            };
        } else if a.rec.severity != level {
            a.rec.severity = level;
        }
    }

    /// Ends an alert: resolved (firing) or cancelled (pending), with a `resolved` event when
    /// it was announced.
    fn finish(&mut self, alert: &mut Alert, t: i64, reason: Option<&str>) {
        self.view_changed = true;
        self.structure_changed = true;
        if alert.rec.state == AlertState::Pending {
            self.deleted.push(alert.rec.id);
            self.dirty.remove(&alert.rec.id);
            return;
        }
        alert.rec.state = AlertState::Resolved;
        alert.rec.resolved_at = Some(t.max(alert.rec.since));
        alert.rec.changed_at = t;
        alert.rec.resolution = reason.map(str::to_owned);
        if alert.rec.announced.is_some() {
            let tags = alert.tags.clone();
            self.event(&alert.rec, &tags, EventKind::Resolved, t, "resolved".into());
        }
        self.dirty.insert(alert.rec.id);
        self.closed.insert(alert.rec.id, alert.rec.clone());
    }

    /// Resolves alerts of rules of `kind` whose object this sample no longer has. `sweepable`
    /// says, per rule, whether the sample's list of its objects can be trusted to be complete
    /// (it is not empty, or the sample reports no error).
    fn sweep(
        &mut self,
        host_id: i64,
        kind: MetricKind,
        t: i64,
        sweepable: &dyn Fn(Builtin) -> bool,
    ) {
        let rules = self.rules.clone();
        let Some(book) = self.books.get_mut(&host_id) else {
            return;
        };
        let mut gone = Vec::new();
        book.alerts.retain(|a| {
            let of_kind = match &rules.get(a.rule).kind {
                // An alert remembers the kind that observed it (a rule may watch two: drive
                // temperatures come with the slow sample); one loaded from the database not.
                RuleKind::Builtin(b) => {
                    a.kind
                        .map_or(b.source() == Source::Sample(kind), |k| k == kind)
                        && sweepable(*b)
                }
                RuleKind::Custom { .. } => a.kind == Some(kind),
            };
            if of_kind && a.last_t < t {
                gone.push(a.clone());
                false
            } else {
                true
            }
        });
        for mut alert in gone {
            self.finish(&mut alert, t, Some("gone"));
        }
    }

    /// Announces what is due among host `host_id`'s alerts observed at `t` (a live pass).
    fn announce(&mut self, host_id: i64, t: i64, now: i64) {
        let rules = self.rules.clone();
        let Some(book) = self.books.get(&host_id) else {
            return;
        };
        // What suppresses: the host gone (offline, stale) or a pool under a storage.
        let offline = book
            .alerts
            .iter()
            .any(|a| a.is_firing() && a.rule == RuleTable::builtin(Builtin::HostOffline));
        let stale = book
            .alerts
            .iter()
            .any(|a| a.is_firing() && a.rule == RuleTable::builtin(Builtin::HostStale));
        let bad_pools: Vec<String> = book
            .alerts
            .iter()
            .filter(|a| a.is_firing() && a.rule == RuleTable::builtin(Builtin::PoolUnhealthy))
            .map(|a| a.rec.object.clone())
            .collect();
        let mut decisions = Vec::new();
        for (i, a) in book.alerts.iter().enumerate() {
            let builtin = match &rules.get(a.rule).kind {
                RuleKind::Builtin(b) => Some(*b),
                RuleKind::Custom { .. } => None,
            };
            let suppressed_by = if builtin != Some(Builtin::HostOffline) && offline {
                Some("host_offline".to_owned())
            } else if !builtin.is_some_and(Builtin::is_absence_rule) && stale {
                Some("host_stale".to_owned())
            } else {
                a.pool
                    .as_ref()
                    .filter(|p| bad_pools.contains(p) && builtin != Some(Builtin::PoolUnhealthy))
                    .map(|p| format!("pool_unhealthy {p}"))
            };
            let subject = Subject {
                host: &a.rec.host,
                rule: rules.name(a.rule),
                object: &a.rec.object,
                guest: a.rec.guest,
                tags: &a.tags,
            };
            let observed_now = a.last_t == t;
            let settings = rules.settings(a.rule, &subject);
            let quiet = if a.is_firing() && observed_now {
                self.quiet.reason(&subject, now)
            } else {
                None
            };
            let repeat_s = self
                .repeat_by_severity
                .get(a.rec.severity)
                .unwrap_or(settings.repeat_s);
            decisions.push((i, suppressed_by, quiet, observed_now, repeat_s));
        }
        let Some(book) = self.books.get_mut(&host_id) else {
            return;
        };
        let mut events = Vec::new();
        for (i, suppressed_by, quiet, observed_now, repeat_s) in decisions {
            let a = &mut book.alerts[i];
            if a.rec.suppressed_by != suppressed_by {
                a.rec.suppressed_by = suppressed_by;
                self.dirty.insert(a.rec.id);
                self.view_changed = true;
                self.structure_changed = true;
            }
            if !a.is_firing() || !observed_now {
                continue;
            }
            if !a.rec.live {
                a.rec.live = true;
                self.dirty.insert(a.rec.id);
            }
            if a.rec.suppressed_by.is_some() || quiet.is_some() {
                continue;
            }
            let severity = a.rec.severity;
            match a.rec.announced {
                None => events.push((
                    i,
                    EventKind::Firing,
                    format!("firing/{}", severity.as_str()),
                )),
                Some(Severity::Warning) if severity == Severity::Critical => {
                    events.push((i, EventKind::Firing, "firing/critical".to_owned()));
                }
                Some(_) => {
                    let due = a
                        .rec
                        .last_notified_at
                        .is_some_and(|last| now - last >= repeat_s);
                    if repeat_s > 0 && due && !a.acked(now) {
                        let n = a.rec.repeats + 1;
                        events.push((i, EventKind::Repeat, format!("repeat/{n}")));
                    }
                }
            }
        }
        for (i, kind, suffix) in events {
            let Some(book) = self.books.get_mut(&host_id) else {
                return;
            };
            let a = &mut book.alerts[i];
            match kind {
                EventKind::Firing => a.rec.announced = Some(a.rec.severity),
                EventKind::Repeat => a.rec.repeats += 1,
                EventKind::Resolved => {}
            }
            a.rec.last_notified_at = Some(now);
            let rec = a.rec.clone();
            let tags = a.tags.clone();
            self.dirty.insert(rec.id);
            self.event(&rec, &tags, kind, now, suffix);
        }
    }

    /// Writes an outbox event (and logs it: until notifications are delivered, the log is
    /// where an admin sees them).
    fn event(
        &mut self,
        rec: &AlertRecord,
        tags: &[String],
        kind: EventKind,
        at: i64,
        suffix: String,
    ) {
        let key = format!("alert/{}/{suffix}", rec.id);
        let summary = summary::summary(&self.rules, rec);
        match kind {
            EventKind::Firing => self.counters.firing_events += 1,
            EventKind::Repeat => self.counters.repeat_events += 1,
            EventKind::Resolved => self.counters.resolved_events += 1,
        }
        log::info!(
            "alert {} [{}] {} on {}{}{}: {summary} ({key})",
            kind.as_str(),
            rec.severity.as_str(),
            rec.rule,
            rec.host,
            if rec.object.is_empty() { "" } else { " " },
            rec.object
        );
        let payload = json!({
            "key": key,
            "event": kind.as_str(),
            "alert_id": rec.id,
            "rule": rec.rule,
            "severity": rec.severity.as_str(),
            "host": rec.host,
            "object": rec.object,
            "guest": rec.guest,
            "label": rec.label,
            "tags": tags,
            "summary": summary,
            "value": rec.value.filter(|v| v.is_finite()),
            "threshold": rec.threshold.filter(|v| v.is_finite()),
            "since": rec.since,
            "fired_at": rec.fired_at,
            "resolved_at": rec.resolved_at,
            "repeat": rec.repeats,
            "at": at,
        });
        self.events.push(OutboxEvent {
            key,
            alert_id: rec.id,
            kind,
            created_at: at,
            payload: payload.to_string(),
        });
    }

    /// Sets when host `state`'s absence rules want to look again.
    fn schedule(&mut self, state: &HostState, now: i64) {
        let host_id = state.host.id;
        let rules = self.rules.clone();
        let started_at = self.started_at;
        let Some(book) = self.books.get_mut(&host_id) else {
            return;
        };
        let mut due: Option<i64> = None;
        let mut at = |t: i64| {
            if t > now {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        let subject = Subject {
            host: &book.name,
            rule: "",
            object: "",
            guest: None,
            tags: &[],
        };
        let offline_rule = RuleTable::builtin(Builtin::HostOffline);
        let stale_rule = RuleTable::builtin(Builtin::HostStale);
        match state.host.status {
            HostStatus::Online => {
                if let Some(since) = stale_since(state) {
                    at(since);
                }
            }
            HostStatus::Offline => {
                let since = state.host.status_changed_at.unwrap_or(now).max(started_at);
                at(since + rules.settings(offline_rule, &subject).for_s);
            }
            HostStatus::NeverConnected => {}
        }
        for a in &book.alerts {
            if a.rule != offline_rule && a.rule != stale_rule {
                continue;
            }
            let settings = rules.settings(a.rule, &subject);
            match a.rec.state {
                AlertState::Pending => at(a.rec.since + settings.for_s),
                AlertState::Firing => {
                    if let (Some(last), true) = (a.rec.last_notified_at, settings.repeat_s > 0) {
                        at(last + settings.repeat_s);
                    }
                }
                AlertState::Resolved => {}
            }
        }
        if book.due != due {
            if let Some(old) = book.due {
                self.due.remove(&(old, host_id));
            }
            if let Some(new) = due {
                self.due.insert((new, host_id));
            }
            book.due = due;
        }
    }
}

/// When an online host became stale (or will): its stale limit after its newest fast sample
/// or after it came online, whichever is later — an agent that just reconnected is not stale
/// because its last sample before the outage is old (`HostState::is_stale` judges the
/// numbers shown; this judges the agent).
fn stale_since(state: &HostState) -> Option<i64> {
    let fast = state.fast.as_ref().map(|l| l.collected_at);
    let online = state
        .host
        .status_changed_at
        .filter(|_| state.host.status == HostStatus::Online);
    let base = fast.max(online).or(state.host.last_seen_at)?;
    Some(base + state.stale_after() + 1)
}

/// Whether a list in a sample can be trusted to be complete: it has entries, or the sample
/// says nothing went wrong reading it.
fn complete<T>(list: &[T], errors: &[SourceError]) -> bool {
    !list.is_empty() || errors.is_empty()
}

fn sweepable_fast(f: &FastSample) -> impl Fn(Builtin) -> bool + '_ {
    move |b| match b {
        Builtin::GuestDown | Builtin::GuestMemoryHigh => complete(&f.guests, &f.errors),
        Builtin::NetErrors => complete(&f.net, &f.errors),
        Builtin::PressureHigh => f.pressure.is_some() || f.errors.is_empty(),
        _ => f.errors.is_empty(),
    }
}

fn sweepable_medium(m: &MediumSample) -> impl Fn(Builtin) -> bool + '_ {
    move |b| match b {
        Builtin::FsFull => complete(&m.filesystems, &m.errors),
        Builtin::StorageFull | Builtin::StorageFillForecast => complete(&m.storages, &m.errors),
        Builtin::PoolUnhealthy | Builtin::PoolCapacity => complete(&m.pools, &m.errors),
        _ => m.errors.is_empty(),
    }
}

fn sweepable_slow(s: &SlowSample) -> impl Fn(Builtin) -> bool + '_ {
    move |_| s.errors.is_empty()
}
