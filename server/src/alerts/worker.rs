//! The alert thread. It owns the `Engine` and:
//!
//! - waits on one queue for host events (a new newest sample, a status change, a host added
//!   or removed; fed by `HostStates` with `try_send`, so ingestion never waits for it) and
//!   wake-ups (commands, shutdown), with a timeout that ends when the next thing is due — an
//!   absence check, a silence or window starting or ending, an acknowledgement expiring, the
//!   daily history pruning. Nothing runs on a fixed tick;
//! - on each event re-reads the host's current snapshot (`HostStates::get_by_id`) and
//!   evaluates what is newer than what it evaluated: when events were lost (a full queue,
//!   counted by `HostStates::dropped_events`), it walks every host once (a catch-up), so the
//!   state converges anyway;
//! - after each batch of events writes the engine's changes and events in one short
//!   transaction (`Store::save_alert_changes`; retried with the next batch when it fails)
//!   and publishes a new `AlertView` (at once when a state changed, else at most once a
//!   second while only values move).
//!
//! It never holds the ingestion lock while evaluating: rules read the typed snapshots; only
//! the forecast reads history, through `Store::query_series`, at most every 10 minutes per
//! storage.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::events::MetricKind;

use super::engine::Engine;
use super::forecast::{self, History};
use super::quiet::Silence;
use super::{AlertView, Alerts, Command, Input, WindowInfo, QUEUE};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::state::HostEvent;
use crate::store::{Retention, SeriesQuery, Store};

/// At most this many queued events are handled before changes are written.
const BATCH: usize = 4096;
/// While only values change, the view is republished at most this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// A failed write is retried after this long (or with the next batch).
const RETRY_AFTER_S: i64 = 5;
/// How often old history is pruned.
const PRUNE_EVERY_S: i64 = 86400;

/// The store as the forecast reads it.
struct StoreHistory<'a> {
    store: &'a Store,
    retention: &'a Retention,
}

impl History for StoreHistory<'_> {
    fn points(&self, host_id: i64, series: &str, from: i64, to: i64) -> Vec<(i64, f64)> {
        let query = SeriesQuery {
            host_id,
            name: series,
            from,
            to,
            max_points: forecast::MAX_POINTS,
        };
        match self.store.query_series(&query, self.retention, to) {
            Ok(points) => points.iter().map(|p| (p.t, p.avg)).collect(),
            Err(e) => {
                log::warn!("reading {series} of host {host_id} for a forecast: {e}");
                Vec::new()
            }
        }
    }
}

/// Loads the open alerts and silences, seeds the engine with the hosts as they are, and
/// starts the alert thread. Subscribes before seeding, so no change in between is missed.
pub fn spawn(ctx: Arc<Context>) -> Result<JoinHandle<()>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Input>(QUEUE);
    ctx.hosts.subscribe_with(tx.clone(), Input::Host);
    *super::lock(&ctx.alerts.input) = Some(tx);
    let now = common::time::now_unix();
    let generation = ctx.store.alert_control_generation()?;
    ctx.alerts.generation.store(generation, Ordering::Relaxed);
    let loaded = ctx.store.load_alerts()?;
    let open = loaded.open.len();
    let silences = ctx
        .store
        .silences(now, None)?
        .iter()
        .map(Silence::from_record)
        .collect();
    let mut engine = Engine::new(ctx.alerts.config(), loaded, silences, now);
    engine.seed(&ctx.hosts.snapshot(), now);
    log::info!(
        "alerts: {} rules, {open} open alerts loaded{}",
        engine.rules().len(),
        if ctx.alerts.config().enabled {
            ""
        } else {
            " (alerting disabled in the config)"
        }
    );
    let dropped = ctx.hosts.dropped_events();
    std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || {
            let mut worker = Worker {
                ctx,
                engine,
                rx,
                dropped,
                last_publish: None,
                retry_at: None,
                next_prune: now,
                failing: false,
                waiters: Vec::new(),
            };
            worker.run();
        })
        .map_err(|e| Error::Usage(format!("cannot start the alert thread: {e}")))
}

struct Worker {
    ctx: Arc<Context>,
    engine: Engine,
    rx: Receiver<Input>,
    /// `HostStates::dropped_events` when last looked at.
    dropped: u64,
    last_publish: Option<Instant>,
    retry_at: Option<i64>,
    next_prune: i64,
    failing: bool,
    waiters: Vec<SyncSender<()>>,
}

impl Worker {
    fn alerts(&self) -> &Alerts {
        &self.ctx.alerts
    }

    fn run(&mut self) {
        loop {
            let now = common::time::now_unix();
            let timeout = self.timeout(now);
            let first = match self.rx.recv_timeout(timeout) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.ctx.shutting_down() {
                self.write();
                break;
            }
            let now = common::time::now_unix();
            if let Some(input) = first {
                self.handle(input, now);
                let more: Vec<Input> = self.rx.try_iter().take(BATCH).collect();
                for input in more {
                    self.handle(input, now);
                }
            }
            self.commands(now);
            self.catch_up(now);
            for host_id in self.engine.due_hosts(now) {
                match self.ctx.hosts.get_by_id(host_id) {
                    Some(state) => self.engine.evaluate_absence(&state, now),
                    None => self.engine.remove_host(host_id, now),
                }
            }
            if self.engine.quiet_changed(now) {
                self.recheck_absence(now);
            }
            if self.retry_at.map_or(true, |t| now >= t) {
                self.write();
            }
            self.publish(now);
            self.prune(now);
            self.count();
        }
        self.count();
    }

    /// How long to wait for the next event: until the next thing is due.
    fn timeout(&mut self, now: i64) -> Duration {
        let mut due = [
            self.engine.next_due(now),
            self.retry_at,
            Some(self.next_prune),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(3600), |t| {
            Duration::from_secs(u64::try_from(t - now).unwrap_or(0))
        });
        let (changed, _) = self.engine.view_changed();
        if changed {
            let publish = self.last_publish.map_or(Duration::ZERO, |at| {
                PUBLISH_EVERY.saturating_sub(at.elapsed())
            });
            due = due.min(publish);
        }
        due
    }

    fn handle(&mut self, input: Input, now: i64) {
        let Input::Host(event) = input else {
            return; // a wake-up: commands and the shutdown flag are looked at after the batch
        };
        match event {
            HostEvent::Sample { host_id, kind, .. } => {
                if let Some(state) = self.ctx.hosts.get_by_id(host_id) {
                    self.evaluate(&state, kind, now);
                }
            }
            HostEvent::Status { host_id, .. } | HostEvent::Added { host_id } => {
                if let Some(state) = self.ctx.hosts.get_by_id(host_id) {
                    self.engine.evaluate_absence(&state, now);
                }
            }
            HostEvent::Removed { host_id } => self.engine.remove_host(host_id, now),
        }
    }

    fn evaluate(&mut self, state: &crate::state::HostState, kind: MetricKind, now: i64) {
        let history = StoreHistory {
            store: &self.ctx.store,
            retention: &self.ctx.config.retention,
        };
        let started = Instant::now();
        let evaluated = self.engine.evaluate_sample(state, kind, now, &history);
        if evaluated {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let stats = &self.ctx.alerts.stats;
            stats.evaluation_nanos.fetch_add(nanos, Ordering::Relaxed);
            stats.samples_evaluated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events were dropped: every host is looked at (what it has newer than what was
    /// evaluated, and its absence rules), and hosts gone meanwhile lose their alerts.
    fn catch_up(&mut self, now: i64) {
        let dropped = self.ctx.hosts.dropped_events();
        if dropped == self.dropped {
            return;
        }
        log::warn!(
            "alerts: {} host events were dropped (the alert thread fell behind); looking at \
             every host again",
            dropped - self.dropped
        );
        self.dropped = dropped;
        self.ctx
            .alerts
            .stats
            .catch_ups
            .fetch_add(1, Ordering::Relaxed);
        let hosts = self.ctx.hosts.snapshot();
        let known: std::collections::HashSet<i64> = hosts.iter().map(|h| h.host.id).collect();
        for state in &hosts {
            for kind in MetricKind::ALL {
                self.evaluate(state, kind, now);
            }
            self.engine.evaluate_absence(state, now);
        }
        for host_id in self.engine.open_host_ids() {
            if !known.contains(&host_id) {
                self.engine.remove_host(host_id, now);
            }
        }
    }

    fn recheck_absence(&mut self, now: i64) {
        for host_id in self.engine.hosts_with_absence_alerts() {
            if let Some(state) = self.ctx.hosts.get_by_id(host_id) {
                self.engine.evaluate_absence(&state, now);
            }
        }
    }

    fn commands(&mut self, now: i64) {
        let commands = self.alerts().take_commands();
        if commands.is_empty() {
            return;
        }
        for command in commands {
            match command {
                Command::Reload(waiter) => self.waiters.extend(waiter),
            }
        }
        let loaded = self
            .ctx
            .store
            .alert_control_generation()
            .and_then(|generation| {
                let silences = self.ctx.store.silences(now, None)?;
                let acks = self.ctx.store.alert_acks(&self.engine.open_ids())?;
                Ok((generation, silences, acks))
            });
        match loaded {
            Ok((generation, silences, acks)) => {
                self.alerts()
                    .generation
                    .store(generation, Ordering::Relaxed);
                self.engine
                    .set_silences(silences.iter().map(Silence::from_record).collect());
                self.engine.set_acks(&acks);
                self.recheck_absence(now);
            }
            Err(e) => log::error!("alerts: reading silences and acknowledgements: {e}"),
        }
    }

    fn write(&mut self) {
        let changes = self.engine.take_changes();
        if changes.is_empty() {
            self.retry_at = None;
            return;
        }
        match self.ctx.store.save_alert_changes(&changes) {
            Ok(()) => {
                if !changes.events.is_empty() {
                    self.ctx.notifier.wake();
                }
                if self.failing {
                    log::info!("alerts: writing to the database works again");
                }
                self.failing = false;
                self.retry_at = None;
            }
            Err(e) => {
                if !self.failing {
                    log::error!("alerts: cannot write alert changes (kept, retried): {e}");
                }
                self.failing = true;
                self.ctx
                    .alerts
                    .stats
                    .write_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.engine.restore_changes(changes);
                self.retry_at = Some(common::time::now_unix() + RETRY_AFTER_S);
            }
        }
    }

    fn publish(&mut self, now: i64) {
        let (changed, urgent) = self.engine.view_changed();
        let waiting = !self.waiters.is_empty();
        let recent = self
            .last_publish
            .is_some_and(|at| at.elapsed() < PUBLISH_EVERY);
        if (changed && (urgent || !recent)) || waiting {
            let rows = self.engine.view(now);
            let windows = self
                .engine
                .windows()
                .iter()
                .map(|w| WindowInfo {
                    name: w.name.clone(),
                    schedule: w.describe(),
                    matchers: w.matchers.describe(),
                    active: w.active_at(now),
                })
                .collect();
            let silences = self.engine.silences().to_vec();
            self.alerts()
                .publish(AlertView::new(now, rows, silences, windows));
            self.last_publish = Some(Instant::now());
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.try_send(());
        }
    }

    fn prune(&mut self, now: i64) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_EVERY_S;
        let before = now - self.alerts().config().history_days * 86400;
        match self.ctx.store.prune_alert_history(before) {
            Ok(0) => {}
            Ok(n) => log::info!("alerts: pruned {n} rows of alert history older than the limit"),
            Err(e) => log::error!("alerts: pruning history: {e}"),
        }
    }

    fn count(&self) {
        let c = self.engine.counters;
        let stats = &self.ctx.alerts.stats;
        stats
            .firing_events
            .store(c.firing_events, Ordering::Relaxed);
        stats
            .repeat_events
            .store(c.repeat_events, Ordering::Relaxed);
        stats
            .resolved_events
            .store(c.resolved_events, Ordering::Relaxed);
    }
}
