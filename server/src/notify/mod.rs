//! Notifications: the alert outbox delivered through the channels people use, exactly once
//! per event and channel.
//!
//! - `config` — `[notify]`: channels, routes, quiet hours, escalation, retries, heartbeat;
//! - `message` — the one rendering of a message (title, text, link) every channel uses;
//! - `channels` — each service's request as data, and the blocking HTTP and SMTP senders;
//! - `plan` — routing, backoff and rate limits as pure functions of the time;
//! - `worker` — the delivery thread.
//!
//! The rest of the server sees `Notifier` (in the `Context`): `wake` (the alert thread calls it
//! after writing outbox events), counters for `/metrics`, and `send_test` for the dashboard's
//! "send test" button and `notify-test` on the command line.

pub mod channels;
pub mod config;
pub mod message;
pub mod plan;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, MutexGuard};

pub use config::NotifyConfig;
pub use worker::spawn;

/// What `/metrics` counts per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tally {
    /// The receiver accepted the message.
    Sent,
    /// An attempt failed; it will be tried again.
    Failed,
    /// Dead-lettered (attempts used up, or rejected).
    Dead,
    /// Held or escalated, and the alert ended meanwhile: nothing to say.
    Dropped,
}

impl Tally {
    pub fn as_str(self) -> &'static str {
        match self {
            Tally::Sent => "sent",
            Tally::Failed => "failed",
            Tally::Dead => "dead",
            Tally::Dropped => "dropped",
        }
    }
}

/// The last test of a channel from the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub at: i64,
    pub error: Option<String>,
}

/// The notification part of the server's shared context.
#[derive(Default)]
pub struct Notifier {
    wake: Mutex<Option<SyncSender<()>>>,
    counts: Mutex<BTreeMap<(String, Tally), u64>>,
    tests: Mutex<BTreeMap<String, TestResult>>,
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Notifier {
    /// Wakes the delivery thread (never waits: a pending wake-up is enough).
    pub fn wake(&self) {
        if let Some(tx) = lock(&self.wake).as_ref() {
            let _ = tx.try_send(());
        }
    }

    pub(crate) fn count(&self, channel: &str, result: Tally) {
        *lock(&self.counts)
            .entry((channel.to_owned(), result))
            .or_insert(0) += 1;
    }

    /// Every (channel, result) counted since the server started.
    pub fn counts(&self) -> Vec<(String, Tally, u64)> {
        lock(&self.counts)
            .iter()
            .map(|((c, r), n)| (c.clone(), *r, *n))
            .collect()
    }

    /// The last dashboard test of each channel.
    pub fn tests(&self) -> BTreeMap<String, TestResult> {
        lock(&self.tests).clone()
    }

    /// Sends a test message through `channel` now (blocking, bounded by the timeout) and
    /// remembers the result for the page.
    pub fn test(&self, config: &NotifyConfig, channel: &str, now: i64) -> Result<(), String> {
        let result = send_test(config, channel, now);
        lock(&self.tests).insert(
            channel.to_owned(),
            TestResult {
                at: now,
                error: result.as_ref().err().cloned(),
            },
        );
        result
    }
}

/// Sends a test message through channel `name` of `config` (blocking).
pub fn send_test(config: &NotifyConfig, name: &str, now: i64) -> Result<(), String> {
    let channel = config.channel(name).ok_or_else(|| {
        let names: Vec<&str> = config.channels.keys().map(String::as_str).collect();
        if names.is_empty() {
            format!("no channel {name:?}: the config has no [notify.channels.*]")
        } else {
            format!("no channel {name:?}; the config has: {}", names.join(", "))
        }
    })?;
    let message = message::Message::test(now, config.public_url.as_deref());
    match channels::send(channel, &message, config.timeout, config.ca_file.as_deref()) {
        channels::Outcome::Accepted => Ok(()),
        channels::Outcome::Retry { error, .. } | channels::Outcome::Rejected(error) => Err(error),
    }
}
