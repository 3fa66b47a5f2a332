//! The agent's loop: collect on schedule, spool, send, reconnect.
//!
//! Collection never waits for the network: every sample goes into the spool first and leaves
//! it only when the server's `phx_reply` says it is stored. While connected, the loop sends
//! spooled samples oldest first with a bounded number in flight, heartbeats every 30 s, and
//! treats a missed heartbeat or a stuck push as a dead connection. While disconnected it
//! retries with capped, jittered exponential backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::events::{reason, MetricKind};

use crate::collect::Collector;
use crate::config::AgentConfig;
use crate::connection::{self, Connection, Incoming};
use crate::error::{Error, Result};
use crate::spool::{Spool, SpoolConfig};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// A push without a reply for this long means the connection is dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pushes sent but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 32;
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// After the server refused our token, try again this rarely (the admin must fix the config).
const REJECTED_FIRST: Duration = Duration::from_secs(30);
const REJECTED_MAX: Duration = Duration::from_secs(300);

/// Runs until `shutdown` is set. Returns an error only when the agent cannot start at all.
pub fn run(config: &AgentConfig, shutdown: &AtomicBool) -> Result<()> {
    let tls = connection::tls_config(config.ca_file.as_deref())?;
    let spool_config = SpoolConfig {
        max_entries: config.spool_max_samples,
        max_bytes: config.spool_max_bytes,
    };
    let spool = Spool::open(&config.state_dir, spool_config)?;
    if !spool.is_empty() {
        log::info!(
            "{} samples from before the restart are waiting in {}",
            spool.len(),
            spool.path().display()
        );
    }
    let mut agent = Agent {
        config,
        collector: Collector::new(&config.root),
        spool,
        schedule: Schedule::new(config, Instant::now()),
        stamps: Stamps::default(),
        conn: None,
        in_flight: HashMap::new(),
        sent_up_to: 0,
        heartbeat: None,
        joining: None,
        next_connect: Instant::now(),
        backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_MAX),
        rejected_backoff: Backoff::new(REJECTED_FIRST, REJECTED_MAX),
    };
    log::info!(
        "agent {AGENT_VERSION} starting as host '{}' → {} (fast {} s, medium {} s, slow {} s)",
        config.host_id,
        config.server_url,
        config.fast.as_secs(),
        config.medium.as_secs(),
        config.slow.as_secs()
    );
    while !shutdown.load(Ordering::SeqCst) {
        agent.collect_due(Instant::now());
        agent.step(&tls);
    }
    agent.stop();
    Ok(())
}

struct Agent<'a> {
    config: &'a AgentConfig,
    collector: Collector,
    spool: Spool,
    schedule: Schedule,
    stamps: Stamps,
    conn: Option<Connection>,
    /// Message ref → (spool seq, when sent).
    in_flight: HashMap<String, (u64, Instant)>,
    /// Spooled samples up to this seq have been sent on the current connection.
    sent_up_to: u64,
    heartbeat: Option<(String, Instant)>,
    /// While the join is unanswered: its ref and how long we wait for the reply.
    joining: Option<(String, Instant)>,
    next_connect: Instant,
    backoff: Backoff,
    rejected_backoff: Backoff,
}

impl Agent<'_> {
    fn collect_due(&mut self, now: Instant) {
        for kind in self.schedule.due(now) {
            let collected_at =
                common::time::format_rfc3339(self.stamps.next(kind, SystemTime::now()));
            // Straight from the typed sample to text: no JSON tree of a big sample in memory.
            let payload = match kind {
                MetricKind::Fast => push_text(&collected_at, &self.collector.fast()),
                MetricKind::Medium => push_text(&collected_at, &self.collector.medium()),
                MetricKind::Slow => push_text(&collected_at, &self.collector.slow()),
            };
            let before = self.spool.dropped_total();
            match self.spool.append(kind.event(), &payload) {
                Ok(seq) => {
                    log::debug!("collected {} sample (spool seq {seq})", kind.as_str());
                    let dropped = self.spool.dropped_total() - before;
                    if dropped > 0 {
                        log::warn!(
                            "spool full: dropped the {dropped} oldest samples ({} dropped since start)",
                            self.spool.dropped_total()
                        );
                    }
                }
                // The sample is lost only if the connection is down too; nothing else we can do.
                Err(e) => log::error!("cannot spool a {} sample: {e}", kind.as_str()),
            }
        }
    }

    /// One turn: connect if due, else send what is pending and wait up to a tick for replies.
    fn step(&mut self, tls: &Arc<rustls::ClientConfig>) {
        if self.conn.is_none() {
            let now = Instant::now();
            if now < self.next_connect {
                let wake = self
                    .next_connect
                    .min(self.schedule.next_due())
                    .min(now + connection::TICK);
                std::thread::sleep(wake.saturating_duration_since(now));
                return;
            }
            self.connect(tls);
            return;
        }
        let result = match self.joining.clone() {
            Some((join_ref, deadline)) => self.await_join(&join_ref, deadline),
            None => self.exchange(),
        };
        match result {
            Ok(()) => {}
            Err(Error::Rejected { reason }) => self.rejected(&reason),
            Err(e) => {
                log::warn!("{e}; reconnecting");
                self.disconnect();
            }
        }
    }

    fn connect(&mut self, tls: &Arc<rustls::ClientConfig>) {
        let attempt = Connection::open(&self.config.server_url, tls, &self.config.host_id)
            .and_then(|mut conn| {
                conn.send_join(&self.config.token, AGENT_VERSION)
                    .map(|r| (conn, r))
            });
        match attempt {
            Ok((conn, join_ref)) => {
                self.conn = Some(conn);
                self.joining = Some((join_ref, Instant::now() + connection::JOIN_TIMEOUT));
                self.in_flight.clear();
                self.sent_up_to = 0;
                self.heartbeat = None;
            }
            Err(e) => {
                let wait = self.backoff.next();
                log::warn!("{e}; retrying in {:.1} s", wait.as_secs_f64());
                self.next_connect = Instant::now() + wait;
            }
        }
    }

    /// Waits (a tick at a time) for the answer to our join.
    fn await_join(&mut self, join_ref: &str, deadline: Instant) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(Error::Connection(format!(
                "no answer to our join within {} s",
                connection::JOIN_TIMEOUT.as_secs()
            )));
        }
        let Some(Incoming::Reply {
            msg_ref,
            ok,
            reason,
        }) = conn.poll()?
        else {
            return Ok(());
        };
        if msg_ref != join_ref {
            return Ok(());
        }
        self.joining = None;
        if !ok {
            return Err(Error::Rejected {
                reason: reason.unwrap_or_else(|| "no reason given".into()),
            });
        }
        log::info!(
            "connected to {} as host '{}'",
            self.config.server_url,
            self.config.host_id
        );
        if self.spool.len() > 1 {
            log::info!(
                "sending {} samples collected while disconnected",
                self.spool.len()
            );
        }
        self.backoff.reset();
        self.rejected_backoff.reset();
        self.schedule.next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
        Ok(())
    }

    fn rejected(&mut self, reason: &str) {
        self.conn = None;
        self.joining = None;
        let wait = self.rejected_backoff.next();
        let hint = match reason {
            reason::INVALID_TOKEN => {
                "the token in the config does not match this host's (rotate-token?)"
            }
            reason::UNKNOWN_HOST => {
                "no host of this name is registered on the server (register-host?)"
            }
            _ => "see the server's log",
        };
        log::error!(
            "server refused host '{}': {reason} — {hint}; retrying in {} s",
            self.config.host_id,
            wait.as_secs()
        );
        self.next_connect = Instant::now() + wait;
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.joining = None;
        self.in_flight.clear();
        self.heartbeat = None;
        let wait = self.backoff.next();
        self.next_connect = Instant::now() + wait;
    }

    /// Sends pending samples and a due heartbeat, then handles at most one incoming message.
    fn exchange(&mut self) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if self.in_flight.len() < MAX_IN_FLIGHT {
            let to_send: Vec<u64> = self
                .spool
                .pending_seqs()
                .filter(|seq| *seq > self.sent_up_to)
                .take(MAX_IN_FLIGHT - self.in_flight.len())
                .collect();
            for seq in to_send {
                match self.spool.read(seq) {
                    Ok(entry) => match conn.push(&entry.event, &entry.payload) {
                        Ok(msg_ref) => {
                            self.in_flight.insert(msg_ref, (seq, now));
                        }
                        // Not JSON: sending it again would never work; do not block the queue.
                        Err(Error::Parse { message, .. }) => {
                            log::error!("dropping spooled sample {seq}: {message}");
                            let _ = self.spool.ack(seq);
                        }
                        Err(e) => return Err(e),
                    },
                    Err(e) => {
                        log::error!("dropping spooled sample {seq}: {e}");
                        let _ = self.spool.ack(seq);
                    }
                }
                self.sent_up_to = seq;
            }
        }
        match &self.heartbeat {
            Some((_, sent)) if now.duration_since(*sent) > HEARTBEAT_EVERY => {
                return Err(Error::Connection("heartbeat not answered".into()));
            }
            Some(_) => {}
            None => {
                if self.schedule.heartbeat_due(now) {
                    self.heartbeat = Some((conn.heartbeat()?, now));
                }
            }
        }
        if self
            .in_flight
            .values()
            .any(|(_, sent)| now.duration_since(*sent) > REPLY_TIMEOUT)
        {
            return Err(Error::Connection(format!(
                "no reply to a push within {} s",
                REPLY_TIMEOUT.as_secs()
            )));
        }
        match conn.poll()? {
            Some(Incoming::Reply {
                msg_ref,
                ok,
                reason,
            }) => self.on_reply(&msg_ref, ok, reason),
            Some(Incoming::ChannelClosed { event }) => Err(Error::Connection(format!(
                "server sent {event} for our channel"
            ))),
            Some(Incoming::Other) | None => Ok(()),
        }
    }

    fn on_reply(&mut self, msg_ref: &str, ok: bool, reason: Option<String>) -> Result<()> {
        if self.heartbeat.as_ref().is_some_and(|(r, _)| r == msg_ref) {
            self.heartbeat = None;
            return Ok(());
        }
        let Some((seq, _)) = self.in_flight.remove(msg_ref) else {
            return Ok(());
        };
        if ok {
            return self.spool.ack(seq);
        }
        let reason = reason.unwrap_or_default();
        if reason == reason::STORE_FAILED {
            // The server could not store it (disk full?): keep it and try again later.
            return Err(Error::Connection("server could not store a sample".into()));
        }
        // The server will never accept this sample; keeping it would block the queue forever.
        log::error!("server refused spooled sample {seq} ({reason}); dropping it");
        self.spool.ack(seq)
    }

    /// Waits briefly for outstanding replies, then leaves the channel and closes the socket.
    fn stop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            log::info!("stopped ({} samples kept in the spool)", self.spool.len());
            return;
        };
        let deadline = Instant::now() + Duration::from_millis(700);
        while !self.in_flight.is_empty() && Instant::now() < deadline {
            match conn.poll() {
                Ok(Some(Incoming::Reply {
                    msg_ref, ok: true, ..
                })) => {
                    if let Some((seq, _)) = self.in_flight.remove(&msg_ref) {
                        let _ = self.spool.ack(seq);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        conn.close(Duration::from_millis(500));
        log::info!("stopped ({} samples kept in the spool)", self.spool.len());
    }
}

/// The JSON text of a `MetricPush` carrying `data`.
fn push_text<T: serde::Serialize>(collected_at: &str, data: &T) -> String {
    #[derive(serde::Serialize)]
    struct Push<'a, T> {
        collected_at: &'a str,
        data: &'a T,
    }
    // Serializing plain structs of numbers, strings and options cannot fail.
    serde_json::to_string(&Push { collected_at, data }).unwrap_or_default()
}

/// When each kind of sample and the heartbeat are next due, on the monotonic clock. Deadlines
/// advance by whole intervals from the start, so samples do not drift.
struct Schedule {
    next: [(MetricKind, Instant, Duration); 3],
    next_heartbeat: Instant,
}

impl Schedule {
    fn new(config: &AgentConfig, start: Instant) -> Schedule {
        Schedule {
            next: [
                (MetricKind::Fast, start, config.fast),
                (MetricKind::Medium, start, config.medium),
                (MetricKind::Slow, start, config.slow),
            ],
            next_heartbeat: start + HEARTBEAT_EVERY,
        }
    }

    /// The kinds due at `now`, each moved to its next deadline.
    fn due(&mut self, now: Instant) -> Vec<MetricKind> {
        let mut due = Vec::new();
        for (kind, next, interval) in &mut self.next {
            if now >= *next {
                due.push(*kind);
                *next += *interval;
                if *next <= now {
                    // We were stopped (suspend, debugger) for more than an interval: do not
                    // catch up with a burst of samples, just resume the rhythm.
                    *next = now + *interval;
                }
            }
        }
        due
    }

    fn next_due(&self) -> Instant {
        self.next
            .iter()
            .map(|(_, next, _)| *next)
            .min()
            .unwrap_or_else(Instant::now)
    }

    fn heartbeat_due(&mut self, now: Instant) -> bool {
        if now < self.next_heartbeat {
            return false;
        }
        self.next_heartbeat = now + HEARTBEAT_EVERY;
        true
    }
}

/// `collected_at` travels in whole seconds and the server keys points by (series, second), so
/// two samples of one kind must never share a second: a sample taken late, just before the
/// next one, would otherwise be stored as one point. The later sample is stamped one second
/// after the earlier instead (a shift of under a second, only when the loop ran late).
#[derive(Default)]
struct Stamps {
    last: [Option<SystemTime>; 3],
}

impl Stamps {
    fn next(&mut self, kind: MetricKind, now: SystemTime) -> SystemTime {
        let slot = &mut self.last[kind as usize];
        let second = common::time::from_unix_seconds(common::time::unix_seconds(now));
        let stamp = match *slot {
            Some(last) if second <= last => last + Duration::from_secs(1),
            _ => second,
        };
        *slot = Some(stamp);
        stamp
    }
}

/// Capped exponential backoff with ±25 % jitter, so that a thousand agents do not reconnect to
/// a restarted server in the same instant.
struct Backoff {
    first: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            current: first,
        }
    }

    fn next(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(0.75 + fastrand::f64() * 0.5)
    }

    fn reset(&mut self) {
        self.current = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_repeat_a_second_per_kind() {
        let mut stamps = Stamps::default();
        let t = common::time::from_unix_seconds(1000);
        let a = stamps.next(MetricKind::Fast, t + Duration::from_millis(400));
        let b = stamps.next(MetricKind::Fast, t + Duration::from_millis(900));
        let c = stamps.next(MetricKind::Medium, t + Duration::from_millis(900));
        assert_eq!(common::time::unix_seconds(a), 1000);
        assert_eq!(common::time::unix_seconds(b), 1001);
        assert_eq!(common::time::unix_seconds(c), 1000);
        let d = stamps.next(MetricKind::Fast, t + Duration::from_secs(5));
        assert_eq!(common::time::unix_seconds(d), 1005);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let waits: Vec<f64> = (0..10).map(|_| backoff.next().as_secs_f64()).collect();
        for (i, wait) in waits.iter().enumerate() {
            let base = (1u64 << i).min(60) as f64;
            assert!(
                *wait >= base * 0.75 && *wait <= base * 1.25,
                "attempt {i}: {wait}"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(1250));
    }

    #[test]
    fn schedule_does_not_drift_or_burst() {
        let config = AgentConfig::parse(
            "server_url = \"ws://x/\"\ntoken = \"t\"\nhost_id = \"h\"\n[intervals]\nfast_seconds = 10\nmedium_seconds = 30\nslow_seconds = 60\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let start = Instant::now();
        let mut schedule = Schedule::new(&config, start);
        assert_eq!(
            schedule.due(start),
            vec![MetricKind::Fast, MetricKind::Medium, MetricKind::Slow]
        );
        assert_eq!(schedule.due(start + Duration::from_secs(9)), vec![]);
        // Late by 3 s: the next deadline stays on the 10 s grid.
        assert_eq!(
            schedule.due(start + Duration::from_secs(13)),
            vec![MetricKind::Fast]
        );
        assert_eq!(schedule.due(start + Duration::from_secs(19)), vec![]);
        assert_eq!(
            schedule.due(start + Duration::from_secs(20)),
            vec![MetricKind::Fast]
        );
        // Stopped for 100 s: one sample of each, not a burst.
        assert_eq!(
            schedule.due(start + Duration::from_secs(120)),
            vec![MetricKind::Fast, MetricKind::Medium, MetricKind::Slow]
        );
        assert_eq!(schedule.due(start + Duration::from_secs(121)), vec![]);
    }
}
