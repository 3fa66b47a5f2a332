//! The delivery thread. It owns no state that matters across restarts — that is all in the
//! database (`store::notify`) — and in a loop:
//!
//! 1. routes outbox events newer than `routed_until` (`plan::plan`) and writes their
//!    deliveries, grouped into messages, in one transaction per batch;
//! 2. attempts every message that is due: held and escalation messages are first checked
//!    against the alert's current state; the channel's rate limit may postpone it; the
//!    request is made with no lock held; then, in a transaction of its own, the message is
//!    marked sent (only after the receiver accepted it), retried later (backoff with jitter)
//!    or dead-lettered;
//! 3. calls the heartbeat URL when due;
//! 4. sleeps until the next message is due, the next heartbeat, or a wake-up (the alert thread
//!    wrote events, shutdown). Nothing runs on a fixed tick.
//!
//! Ingestion never waits for it: it is told of new events with a `try_send`, reads and writes
//! the database in short transactions through `lock_for_background`, and never holds the lock
//! across network I/O.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::channels::{self, Outcome};
use super::config::NotifyConfig;
use super::message::{AlertEvent, Message};
use super::plan::{plan, retry_delay, RateLimit};
use super::{Notifier, Tally};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::store::alerts::AlertState;
use crate::store::notify::{DueMessage, MessageEnd, NewDelivery, RoutedEvent};

/// Outbox events routed per transaction.
const ROUTE_BATCH: usize = 500;
/// Due messages read at a time.
const SEND_BATCH: usize = 100;
/// After a database error, try again after this long.
const DB_RETRY_S: i64 = 5;
const PRUNE_EVERY_S: i64 = 86400;

/// Starts the delivery thread.
pub fn spawn(ctx: Arc<Context>) -> Result<JoinHandle<()>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    *super::lock(&ctx.notifier.wake) = Some(tx);
    let config = ctx.config.notify.clone();
    if config.channels.is_empty() {
        log::info!(
            "notifications: no channel configured ([notify.channels.*]); events stay in the outbox"
        );
    } else {
        log::info!(
            "notifications: {} channels ({}), {} routes",
            config.channels.len(),
            config
                .channels
                .values()
                .map(|c| format!("{} {}", c.name, c.kind.type_name()))
                .collect::<Vec<_>>()
                .join(", "),
            config.routes.len()
        );
    }
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            let now = common::time::now_unix();
            let mut worker = Worker {
                ctx,
                config,
                rx,
                limits: HashMap::new(),
                unrecorded: HashSet::new(),
                next_heartbeat: now,
                heartbeat_failing: false,
                next_prune: now + 3600,
                db_retry_at: None,
                db_failing: false,
            };
            worker.run();
        })
        .map_err(|e| Error::Usage(format!("cannot start the delivery thread: {e}")))
}

struct Worker {
    ctx: Arc<Context>,
    config: NotifyConfig,
    rx: Receiver<()>,
    limits: HashMap<String, RateLimit>,
    /// Messages a receiver accepted whose `sent` could not be written yet: written, never
    /// sent again.
    unrecorded: HashSet<i64>,
    next_heartbeat: i64,
    heartbeat_failing: bool,
    next_prune: i64,
    db_retry_at: Option<i64>,
    db_failing: bool,
}

impl Worker {
    fn notifier(&self) -> &Notifier {
        &self.ctx.notifier
    }

    fn run(&mut self) {
        loop {
            if self.ctx.shutting_down() {
                break;
            }
            let now = common::time::now_unix();
            let ok = self.route(now).and_then(|()| self.deliver());
            self.db_result(ok, now);
            self.heartbeat(common::time::now_unix());
            self.prune(common::time::now_unix());
            if self.ctx.shutting_down() {
                break;
            }
            let timeout = self.timeout();
            match self.rx.recv_timeout(timeout) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn db_result(&mut self, result: Result<()>, now: i64) {
        match result {
            Ok(()) => {
                if self.db_failing {
                    log::info!("notifications: the database works again");
                }
                self.db_failing = false;
                self.db_retry_at = None;
            }
            Err(e) => {
                if !self.db_failing {
                    log::error!("notifications: database error (retried in {DB_RETRY_S} s): {e}");
                }
                self.db_failing = true;
                self.db_retry_at = Some(now + DB_RETRY_S);
            }
        }
    }

    /// Until the next message is due, the next heartbeat or prune; a wake-up ends it early.
    fn timeout(&self) -> Duration {
        let now = common::time::now_unix();
        // While the database fails, due messages wait for the retry, not a busy loop.
        let next_message = if self.db_failing {
            None
        } else {
            match self.ctx.store.next_message_due() {
                Ok(t) => t,
                Err(e) => {
                    log::error!("notifications: reading the next due time: {e}");
                    Some(now + DB_RETRY_S)
                }
            }
        };
        let heartbeat = self.config.heartbeat.as_ref().map(|_| self.next_heartbeat);
        let due = [
            next_message,
            heartbeat,
            Some(self.next_prune),
            self.db_retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + 3600);
        Duration::from_secs(u64::try_from(due - now).unwrap_or(0))
    }

    /// Routes every outbox event not routed yet.
    fn route(&mut self, now: i64) -> Result<()> {
        let store = &self.ctx.store;
        loop {
            let after = store.notify_routed_until()?;
            let rows = store.outbox(after, ROUTE_BATCH)?;
            let Some(last) = rows.last().map(|r| r.id) else {
                return Ok(());
            };
            let mut routed = Vec::with_capacity(rows.len());
            for row in &rows {
                let event = match AlertEvent::parse(&row.event.payload) {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!("notifications: outbox event {} skipped: {e}", row.event.key);
                        continue;
                    }
                };
                let earlier = if event.is_resolved() {
                    store.alert_channels(event.alert_id)?
                } else {
                    Vec::new()
                };
                let targets = plan(&self.config, &event, &earlier, now);
                if targets.is_empty() {
                    log::debug!("notifications: {} goes to no channel", event.key);
                    continue;
                }
                for t in targets.iter().filter(|t| t.held) {
                    log::info!(
                        "notifications: {} to {} waits for the end of quiet hours ({})",
                        event.key,
                        t.channel,
                        super::message::time(t.due_at)
                    );
                }
                routed.push(RoutedEvent {
                    outbox_id: row.id,
                    host: event.host.clone(),
                    deliveries: targets
                        .into_iter()
                        .map(|t| NewDelivery {
                            channel: t.channel,
                            escalation: t.escalation,
                            due_at: t.due_at,
                            held: t.held,
                        })
                        .collect(),
                });
            }
            store.save_routes(&routed, last, self.config.group_window_s, now)?;
            if rows.len() < ROUTE_BATCH {
                return Ok(());
            }
        }
    }

    /// Attempts every due message.
    fn deliver(&mut self) -> Result<()> {
        loop {
            let now = common::time::now_unix();
            let due = self.ctx.store.due_messages(now, SEND_BATCH)?;
            let mut progressed = false;
            for message in &due {
                if self.ctx.shutting_down() {
                    return Ok(());
                }
                progressed |= self.attempt(message)?;
            }
            if due.len() < SEND_BATCH || !progressed {
                return Ok(());
            }
        }
    }

    /// One attempt of `m`; `false` when it was only postponed (rate limit).
    fn attempt(&mut self, m: &DueMessage) -> Result<bool> {
        let store = &self.ctx.store;
        let now = common::time::now_unix();
        if self.unrecorded.contains(&m.id) {
            store.finish_message(m.id, MessageEnd::Sent, m.attempts + 1, None, &[], now)?;
            self.unrecorded.remove(&m.id);
            return Ok(true);
        }
        let Some(channel) = self.config.channel(&m.channel).cloned() else {
            let error = format!("channel {:?} is not configured any more", m.channel);
            log::error!("notifications: message {} dead-lettered: {error}", m.id);
            store.finish_message(m.id, MessageEnd::Dead, m.attempts, Some(&error), &[], now)?;
            self.notifier().count(&m.channel, Tally::Dead);
            return Ok(true);
        };
        // Which events still have something to say.
        let mut events = Vec::new();
        let mut left_out = Vec::new();
        for e in &m.events {
            let event = match AlertEvent::parse(&e.payload) {
                Ok(ev) => ev,
                Err(err) => {
                    log::warn!(
                        "notifications: outbox event {} left out: {err}",
                        e.outbox_id
                    );
                    left_out.push(e.outbox_id);
                    continue;
                }
            };
            if (m.held || m.escalation) && !self.still_worth_it(&event, m, now)? {
                left_out.push(e.outbox_id);
                continue;
            }
            events.push(event);
        }
        if events.is_empty() {
            log::info!(
                "notifications: message {} to {} dropped: its alerts ended (or were \
                 acknowledged) before it was due",
                m.id,
                m.channel
            );
            store.finish_message(m.id, MessageEnd::Dropped, m.attempts, None, &left_out, now)?;
            self.notifier().count(&m.channel, Tally::Dropped);
            return Ok(true);
        }
        if let Some(per_minute) = channel.rate_per_minute {
            let limit = self
                .limits
                .entry(channel.name.clone())
                .or_insert_with(|| RateLimit::new(per_minute, now));
            if let Err(at) = limit.take(now) {
                log::debug!("notifications: {} rate-limited until {at}", channel.name);
                store.postpone_message(m.id, at)?;
                return Ok(false);
            }
        }
        let oldest = events.iter().map(|e| e.at).min().unwrap_or(now);
        let message = Message::new(
            format!("notify/{}", m.id),
            events,
            self.config.public_url.as_deref(),
            m.escalation,
        );
        let outcome = channels::send(
            &channel,
            &message,
            self.config.timeout,
            self.config.ca_file.as_deref(),
        );
        let now = common::time::now_unix();
        let attempts = m.attempts + 1;
        match outcome {
            Outcome::Accepted => {
                log::info!(
                    "notifications: sent {} to {} ({}, attempt {attempts}, {} s after the \
                     event): {}",
                    message.id,
                    channel.name,
                    channel.kind.type_name(),
                    now - oldest,
                    message.title()
                );
                self.notifier().count(&channel.name, Tally::Sent);
                if let Err(e) =
                    store.finish_message(m.id, MessageEnd::Sent, attempts, None, &left_out, now)
                {
                    // Never sent twice while this process runs; after a crash, the
                    // idempotency key lets the receiver drop the resend.
                    self.unrecorded.insert(m.id);
                    return Err(e);
                }
            }
            Outcome::Retry { error, retry_after } if attempts < self.config.max_attempts => {
                let delay = retry_delay(
                    attempts,
                    self.config.retry_base_s,
                    self.config.retry_max_s,
                    fastrand::f64(),
                    retry_after,
                );
                log::warn!(
                    "notifications: {} to {} failed (attempt {attempts} of {}; next in {delay} \
                     s): {error}",
                    message.id,
                    channel.name,
                    self.config.max_attempts
                );
                self.notifier().count(&channel.name, Tally::Failed);
                store.retry_message(m.id, attempts, now + delay, &error)?;
            }
            Outcome::Retry { error, .. } | Outcome::Rejected(error) => {
                log::error!(
                    "notifications: {} to {} dead-lettered after {attempts} attempts: {error} \
                     (listed on the Alerts page)",
                    message.id,
                    channel.name
                );
                self.notifier().count(&channel.name, Tally::Dead);
                store.finish_message(
                    m.id,
                    MessageEnd::Dead,
                    attempts,
                    Some(&error),
                    &left_out,
                    now,
                )?;
            }
        }
        Ok(true)
    }

    /// For a message held by quiet hours or an escalation: whether `event` is still worth
    /// sending at `now`. Firing and repeat events only while the alert fires (and, for an
    /// escalation, is not acknowledged); a resolved one only where its alert was announced.
    fn still_worth_it(&self, event: &AlertEvent, m: &DueMessage, now: i64) -> Result<bool> {
        if event.is_resolved() {
            return self.ctx.store.announced_on(event.alert_id, &m.channel);
        }
        let Some(alert) = self.ctx.store.alert(event.alert_id)? else {
            return Ok(false);
        };
        let firing = alert.state == AlertState::Firing;
        let acked = alert.ack.as_ref().is_some_and(|a| a.holds(now));
        Ok(firing && !(m.escalation && acked))
    }

    fn heartbeat(&mut self, now: i64) {
        let Some(hb) = &self.config.heartbeat else {
            return;
        };
        if now < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now + hb.interval_s;
        // Only a server whose database answers says it is alive.
        let result = self
            .ctx
            .store
            .ping()
            .map_err(|e| format!("not called: the database does not answer ({e})"))
            .and_then(|()| {
                channels::heartbeat(&hb.url, self.config.timeout, self.config.ca_file.as_deref())
            });
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(()) => {
                self.notifier().heartbeats_ok.fetch_add(1, Relaxed);
                if self.heartbeat_failing {
                    log::info!("notifications: the heartbeat URL answers again");
                }
                self.heartbeat_failing = false;
            }
            Err(e) => {
                self.notifier().heartbeats_failed.fetch_add(1, Relaxed);
                if !self.heartbeat_failing {
                    log::warn!("notifications: heartbeat failed: {e}");
                }
                self.heartbeat_failing = true;
            }
        }
    }

    fn prune(&mut self, now: i64) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_EVERY_S;
        let before = now - self.ctx.config.alerts.history_days * 86400;
        match self.ctx.store.prune_notifications(before) {
            Ok(0) => {}
            Ok(n) => log::info!("notifications: pruned {n} old delivery rows"),
            Err(e) => log::error!("notifications: pruning: {e}"),
        }
    }
}
