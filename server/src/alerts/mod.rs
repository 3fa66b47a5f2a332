//! Alerts: rules evaluated on the typed host state, a state machine per (rule, host, object),
//! silences and maintenance windows, acknowledgements, and an outbox of notification events.
//!
//! - `rules` — the built-in rules' stable names, levels and defaults;
//! - `config` — `[alerts]` of the server TOML: overrides by scope, custom rules, windows;
//! - `engine` — the state machine (time passed in; no I/O), and the rules' evaluation;
//! - `quiet` — silences, maintenance windows (time-zone aware), globs and matchers;
//! - `forecast` — days until a storage is full, from its last 24 h;
//! - `summary` — the one-line text of an alert;
//! - `worker` — the alert thread: fed by the host state's events, wakes when the next
//!   absence check, silence or window is due, writes changes and events to the store.
//!
//! The rest of the server sees `Alerts` (in the `Context`): the latest `AlertView` for pages,
//! the API and `/metrics`, and `reload` after an acknowledgement or silence was stored.

pub mod config;
pub mod engine;
pub mod forecast;
pub mod quiet;
pub mod rules;
pub mod summary;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use config::AlertsConfig;
pub use engine::AlertRow;
pub use worker::spawn;

use crate::state::HostEvent;
use crate::store::alerts::{AlertState, Severity};
use crate::store::Store;
use quiet::Silence;

/// How many host events the alert thread's queue holds. Events beyond are dropped (counted);
/// the thread then walks every host's current state (a catch-up), so nothing is missed for
/// long.
pub const QUEUE: usize = 16 * 1024;

/// What the alert thread is woken with.
pub(crate) enum Input {
    Host(HostEvent),
    /// Look at the command queue (and the shutdown flag).
    Wake,
}

/// A request to the alert thread.
pub(crate) enum Command {
    /// Silences or acknowledgements changed in the database; answered once the view shows it.
    Reload(Option<mpsc::SyncSender<()>>),
}

/// A host's open alerts, counted for badges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostAlerts {
    pub critical: usize,
    pub warning: usize,
    pub pending: usize,
    /// Firing, but silenced, suppressed or acknowledged.
    pub quiet: usize,
}

impl HostAlerts {
    pub fn firing(&self) -> usize {
        self.critical + self.warning
    }

    /// The worst severity firing (quiet ones included), if any.
    pub fn worst(&self) -> Option<Severity> {
        if self.critical > 0 {
            Some(Severity::Critical)
        } else if self.warning > 0 {
            Some(Severity::Warning)
        } else {
            None
        }
    }
}

/// One maintenance window as the pages list it.
#[derive(Debug, Clone)]
pub struct WindowInfo {
    pub name: String,
    pub schedule: String,
    pub matchers: String,
    pub active: bool,
}

/// The alerts as the alert thread last published them.
#[derive(Debug, Clone, Default)]
pub struct AlertView {
    /// When it was made (Unix seconds).
    pub at: i64,
    /// Open alerts: firing first, worst first, oldest first.
    pub rows: Vec<AlertRow>,
    /// Silences not yet ended.
    pub silences: Vec<Silence>,
    pub windows: Vec<WindowInfo>,
    by_host: HashMap<String, HostAlerts>,
    by_guest: HashMap<(String, u32), Severity>,
}

impl AlertView {
    pub fn new(
        at: i64,
        rows: Vec<AlertRow>,
        silences: Vec<Silence>,
        windows: Vec<WindowInfo>,
    ) -> AlertView {
        let mut by_host: HashMap<String, HostAlerts> = HashMap::new();
        let mut by_guest: HashMap<(String, u32), Severity> = HashMap::new();
        for row in &rows {
            let counts = by_host.entry(row.rec.host.clone()).or_default();
            match row.rec.state {
                AlertState::Pending => counts.pending += 1,
                AlertState::Firing => {
                    match row.rec.severity {
                        Severity::Critical => counts.critical += 1,
                        Severity::Warning => counts.warning += 1,
                    }
                    if row.is_quiet() || row.acknowledged(at) {
                        counts.quiet += 1;
                    }
                    if let Some(vmid) = row.rec.guest {
                        let slot = by_guest
                            .entry((row.rec.host.clone(), vmid))
                            .or_insert(row.rec.severity);
                        *slot = (*slot).max(row.rec.severity);
                    }
                }
                AlertState::Resolved => {}
            }
        }
        AlertView {
            at,
            rows,
            silences,
            windows,
            by_host,
            by_guest,
        }
    }

    /// The counts of host `name`'s open alerts.
    pub fn host(&self, name: &str) -> HostAlerts {
        self.by_host.get(name).copied().unwrap_or_default()
    }

    /// The worst firing alert about guest `vmid` of host `host`.
    pub fn guest(&self, host: &str, vmid: u32) -> Option<Severity> {
        self.by_guest.get(&(host.to_owned(), vmid)).copied()
    }

    pub fn firing(&self) -> impl Iterator<Item = &AlertRow> {
        self.rows
            .iter()
            .filter(|r| r.rec.state == AlertState::Firing)
    }
}

/// Counters for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct AlertStats {
    pub samples_evaluated: AtomicU64,
    /// Wall time spent evaluating samples (the rules and the state machine, not the writes).
    pub evaluation_nanos: AtomicU64,
    pub firing_events: AtomicU64,
    pub repeat_events: AtomicU64,
    pub resolved_events: AtomicU64,
    /// Times events were lost and every host was looked at again.
    pub catch_ups: AtomicU64,
    pub write_failures: AtomicU64,
}

/// The alerts part of the server's shared context.
pub struct Alerts {
    config: AlertsConfig,
    view: Mutex<Arc<AlertView>>,
    input: Mutex<Option<SyncSender<Input>>>,
    commands: Mutex<Vec<Command>>,
    /// The `alert_control` generation the alert thread last loaded.
    generation: AtomicI64,
    pub stats: AlertStats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Alerts {
    pub fn new(config: AlertsConfig) -> Alerts {
        Alerts {
            config,
            view: Mutex::new(Arc::new(AlertView::default())),
            input: Mutex::new(None),
            commands: Mutex::new(Vec::new()),
            generation: AtomicI64::new(i64::MIN),
            stats: AlertStats::default(),
        }
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The alerts as last published (cheap: an `Arc`).
    pub fn view(&self) -> Arc<AlertView> {
        lock(&self.view).clone()
    }

    fn publish(&self, view: AlertView) {
        *lock(&self.view) = Arc::new(view);
    }

    /// Wakes the alert thread (without waiting when its queue is full: it is awake then).
    pub(crate) fn wake(&self) {
        if let Some(tx) = lock(&self.input).as_ref() {
            let _ = tx.try_send(Input::Wake);
        }
    }

    fn command(&self, command: Command) {
        lock(&self.commands).push(command);
        self.wake();
    }

    /// After this process stored an acknowledgement or a silence: has the alert thread load
    /// it and waits (at most `timeout`) until the view shows it. `false` when it did not
    /// answer in time (or is not running).
    pub fn reload(&self, timeout: Duration) -> bool {
        if lock(&self.input).is_none() {
            return false;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Reload(Some(tx)));
        rx.recv_timeout(timeout).is_ok()
    }

    /// Called by the roster watch: when another process (the command line) acknowledged an
    /// alert or changed silences, has the alert thread load it.
    pub fn check_external_changes(&self, store: &Store) -> crate::Result<()> {
        let generation = store.alert_control_generation()?;
        if self.generation.load(Ordering::Relaxed) != generation && lock(&self.input).is_some() {
            self.generation.store(generation, Ordering::Relaxed);
            self.command(Command::Reload(None));
        }
        Ok(())
    }

    fn take_commands(&self) -> Vec<Command> {
        std::mem::take(&mut *lock(&self.commands))
    }
}

/// An alert as the API and `alerts --json` show it (documented in the README).
pub fn alert_json(
    rec: &crate::store::alerts::AlertRecord,
    quiet: Option<&quiet::QuietReason>,
    now: i64,
) -> serde_json::Value {
    let ack = rec.ack.as_ref();
    serde_json::json!({
        "id": rec.id,
        "rule": rec.rule,
        "severity": rec.severity.as_str(),
        "state": rec.state.as_str(),
        "host": rec.host,
        "object": rec.object,
        "guest": rec.guest,
        "label": rec.label,
        "summary": rec.summary,
        "value": rec.value.filter(|v| v.is_finite()),
        "threshold": rec.threshold.filter(|v| v.is_finite()),
        "since": rec.since,
        "fired_at": rec.fired_at,
        "changed_at": rec.changed_at,
        "resolved_at": rec.resolved_at,
        "resolution": rec.resolution,
        "live": rec.live,
        "silenced": quiet.is_some(),
        "silenced_by": quiet.map(quiet::QuietReason::describe),
        "suppressed_by": rec.suppressed_by,
        "acknowledged": ack.is_some_and(|a| a.holds(now)),
        "acknowledged_by": ack.map(|a| a.by.as_str()),
        "acknowledged_at": ack.map(|a| a.at),
        "ack_comment": ack.and_then(|a| a.comment.as_deref()),
        "ack_expires_at": ack.and_then(|a| a.expires_at),
        "repeats": rec.repeats,
    })
}

/// A silence as the API and `silences --json` show it.
pub fn silence_json(s: &Silence, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "matchers": s.matchers.describe(),
        "host": s.matchers.hosts.first(),
        "guest": s.matchers.guests.first(),
        "rule": s.matchers.rules.first(),
        "tag": s.matchers.tags.first(),
        "object": s.matchers.objects.first(),
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "active": s.active_at(now),
        "comment": s.comment,
        "created_by": s.created_by,
    })
}
