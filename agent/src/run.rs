//! The agent's loop: ask for collections on schedule, spool the samples, and drive the link to
//! the server.
//!
//! Collection never waits for the network, and the network never waits for a collection: the
//! collections run on the collector's thread (`worker.rs`), and every sample goes into the
//! spool first and leaves it only when the server's `phx_reply` says it is stored. The link's
//! state machine (`link.rs`) decides what to send and when to give up on a connection; this
//! loop does the I/O it asks for and then blocks in one `poll` until the earliest of: the next
//! collection due, the link's next deadline, the socket being ready, a sample being ready, or a
//! stop request (`wake.rs`). Nothing wakes the agent when there is nothing to do.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::events::MetricKind;
use common::sample::SourceError;

use crate::collect::Collector;
use crate::config::AgentConfig;
use crate::connection::{self, Connection, Incoming, Opening};
use crate::error::Result;
use crate::link::{Action, Event, Link, Outbox};
use crate::spool::{Spool, SpoolConfig};
use crate::wake::{self, Stop, Woke};
use crate::worker::{Collected, Collections};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// A spooled sample that the server has not acknowledged this long after it was collected is
/// synced to disk (at once while the link is not up). Acknowledged sooner, it never needs to be:
/// see the spool's "Durability".
pub const SYNC_GRACE: Duration = Duration::from_secs(1);
/// After a stop, how long collections already running may still take to be spooled (counted
/// from the stop, so it overlaps the link's own goodbye; `main` gives the loop 1.8 s in all).
pub const COLLECT_GRACE: Duration = Duration::from_millis(500);

/// Runs until `stop` is requested. Returns an error only when the agent cannot start at all.
pub fn run(config: &AgentConfig, stop: &Stop) -> Result<()> {
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
    log::info!(
        "agent {AGENT_VERSION} starting as host '{}' → {} (fast {} s, medium {} s, slow {} s)",
        config.host_id,
        config.server_url,
        config.fast.as_secs(),
        config.medium.as_secs(),
        config.slow.as_secs()
    );
    let mut collector = Collector::new(&config.root);
    collector.set_timeout(config.source_timeout);
    let collections = Collections::start(collector)?;
    let now = Instant::now();
    let mut agent = Agent {
        config,
        tls,
        collections,
        spool,
        schedule: Schedule::new(config, now),
        stamps: Stamps::default(),
        link: Link::new(now),
        socket: Socket::None,
        stop,
        stopping: false,
        stopped_at: None,
        fresh: None,
        sync_at: None,
        oversized: 0,
        spool_error: None,
        ticket: None,
    };
    agent.run();
    agent.finish_collections();
    agent.sync_spool(Instant::now());
    log::info!("stopped ({} samples kept in the spool)", agent.spool.len());
    Ok(())
}

struct Agent<'a> {
    config: &'a AgentConfig,
    tls: Arc<rustls::ClientConfig>,
    collections: Collections,
    spool: Spool,
    schedule: Schedule,
    stamps: Stamps,
    link: Link,
    socket: Socket,
    stop: &'a Stop,
    /// The stop request has been seen (and handed to the link).
    stopping: bool,
    /// When it was seen.
    stopped_at: Option<Instant>,
    /// The sample spooled last, kept until it is pushed so that it need not be read back.
    fresh: Option<Fresh>,
    /// When to sync the spool if its newest samples are still unacknowledged by then.
    sync_at: Option<Instant>,
    /// Samples dropped because the server could never accept them (too large).
    oversized: u64,
    /// Why the spool cannot be written, while it cannot.
    spool_error: Option<String>,
    /// The server's resumption ticket from the last join (memory only; see `Connection`).
    ticket: Option<String>,
}

struct Fresh {
    seq: u64,
    kind: MetricKind,
    payload: String,
}

/// The link's socket, as far as it got.
enum Socket {
    None,
    Opening(Opening),
    Open(Box<Connection>),
}

impl Outbox for Spool {
    fn pending_after(&self, after: u64, max: usize) -> Vec<u64> {
        self.pending_seqs()
            .skip_while(|seq| *seq <= after)
            .take(max)
            .collect()
    }
}

impl Agent<'_> {
    fn run(&mut self) {
        loop {
            if !self.stopping {
                self.request_due(Instant::now());
            }
            if self.spool_collected() {
                self.dispatch(Event::Spooled);
            }
            self.dispatch(Event::Timer);
            self.exchange();
            if self.link.is_stopped() {
                return;
            }
            self.sync_spool(Instant::now());
            let deadline = self.next_deadline();
            let stop = (!self.stopping).then_some(self.stop);
            let interest = match &self.socket {
                Socket::None => None,
                Socket::Opening(opening) => opening.interest(),
                Socket::Open(conn) => Some(conn.interest()),
            };
            let collected = Some(self.collections.signal());
            match wake::wait(interest, stop, collected, deadline) {
                Ok(Woke::Stop) => {
                    self.stopping = true;
                    self.stopped_at = Some(Instant::now());
                    self.dispatch(Event::Stop);
                }
                Ok(Woke::Ready) => self.advance_opening(),
                Ok(Woke::Timeout | Woke::Signalled) => {}
                Err(e) => {
                    // Not expected (poll fails only for bad arguments or no memory); wait out the
                    // deadline rather than spin.
                    log::error!("waiting for the socket failed: {e}");
                    if let Some(deadline) = deadline {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    }
                }
            }
        }
    }

    /// The earliest of the link's next deadline, the next collection (none once stopping) and
    /// the time to sync the spool.
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.link.deadline(),
            (!self.stopping).then(|| self.schedule.next_due()),
            self.sync_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Once the link has stopped: spools the collections still running that finish within
    /// `COLLECT_GRACE` of the stop. One stuck in a read that cannot be interrupted is not
    /// waited for longer (process exit ends it).
    fn finish_collections(&mut self) {
        let deadline = self.stopped_at.unwrap_or_else(Instant::now) + COLLECT_GRACE;
        loop {
            self.spool_collected();
            let busy: Vec<&str> = [MetricKind::Fast, MetricKind::Medium, MetricKind::Slow]
                .into_iter()
                .filter(|kind| self.collections.is_busy(*kind))
                .map(MetricKind::as_str)
                .collect();
            if busy.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                log::warn!(
                    "not waiting for collections still running ({}; the collector is in {})",
                    busy.join(", "),
                    self.collections.activity()
                );
                return;
            }
            let signal = Some(self.collections.signal());
            if wake::wait(None, None, signal, Some(deadline)).is_err() {
                return;
            }
        }
    }

    /// Asks the collector's thread for the kinds of sample that are due (a kind whose previous
    /// collection has not finished is skipped: see `worker`).
    fn request_due(&mut self, now: Instant) {
        for kind in self.schedule.due(now) {
            // A spool that cannot be written is reported in every sample until it can.
            let spool_error = self.spool_error.as_ref().map(|message| SourceError {
                source: "spool".into(),
                message: message.clone(),
            });
            let stamps = &mut self.stamps;
            let collected_at =
                || common::time::format_rfc3339(stamps.next(kind, SystemTime::now()));
            self.collections
                .request(kind, collected_at, spool_error.into_iter().collect());
        }
    }

    /// Puts the samples the collector has finished into the spool; whether there were any.
    fn spool_collected(&mut self) -> bool {
        let collected = self.collections.finished();
        let any = !collected.is_empty();
        for Collected { kind, payload } in collected {
            // Not synced yet: it is pushed at once, and a sample the server stored needs no
            // copy on disk (`sync_spool` makes it durable if that does not happen soon).
            let seq = match self.spool.append_unsynced(kind.event(), &payload) {
                Ok(seq) => {
                    if self.spool_error.take().is_some() {
                        log::warn!("the spool can be written again");
                    }
                    log::debug!("collected {} sample (spool seq {seq})", kind.as_str());
                    Some(seq)
                }
                // Full disk or the like: sent from memory (bounded) instead, and the error
                // (which names the file) goes with the next samples.
                Err(e) => {
                    if self.spool_error.is_none() {
                        log::error!(
                            "cannot spool a {} sample: {e}; sending from memory until it can \
                             (such samples are lost if the agent stops before they are sent)",
                            kind.as_str()
                        );
                    }
                    self.spool_error = Some(e.to_string());
                    let held = self.spool.hold(kind.event(), &payload);
                    if held.is_none() {
                        log::error!("a {} sample is lost: too large to hold", kind.as_str());
                    }
                    held
                }
            };
            if let Some(seq) = seq {
                self.fresh = Some(Fresh { seq, kind, payload });
            }
        }
        any
    }

    /// Syncs the spool when an unacknowledged sample in it is not on disk yet and either the
    /// link is not up (no acknowledgement is coming soon) or `SYNC_GRACE` has passed.
    fn sync_spool(&mut self, now: Instant) {
        if !self.spool.needs_sync() {
            self.sync_at = None;
            return;
        }
        let sync_at = *self.sync_at.get_or_insert(now + SYNC_GRACE);
        if self.link.is_up() && now < sync_at {
            return;
        }
        match self.spool.sync() {
            Ok(()) => self.sync_at = None,
            Err(e) => {
                log::error!("{e}");
                self.sync_at = Some(now + SYNC_GRACE);
            }
        }
    }

    /// Feeds `event` to the link and carries out what it asks, feeding back what that causes.
    fn dispatch(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let was_up = self.link.is_up();
            let actions = self.link.handle(event, Instant::now(), &self.spool);
            if !was_up && self.link.is_up() {
                if let Socket::Open(conn) = &self.socket {
                    self.ticket = conn.ticket().map(str::to_owned);
                }
                self.joined();
            }
            for action in actions {
                if let Some(event) = self.perform(action) {
                    events.push_back(event);
                }
            }
        }
    }

    fn joined(&self) {
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
    }

    /// Does one thing the link asked; the event it leads to, if any.
    fn perform(&mut self, action: Action) -> Option<Event> {
        let failed = |e: crate::Error| Some(Event::Failed(e.to_string()));
        match action {
            Action::Connect => {
                log::debug!("connecting to {}", self.config.server_url);
                match Opening::start(&self.config.server_url, &self.tls, &self.config.host_id) {
                    Ok(opening) => self.socket = Socket::Opening(opening),
                    Err(e) => return failed(e),
                }
                None
            }
            Action::Disconnect => {
                self.socket = Socket::None;
                None
            }
            Action::Ack { seq } => {
                if let Err(e) = self.spool.ack(seq) {
                    // Still pending: it is sent again on the next connection.
                    log::error!("cannot record the acknowledgement of sample {seq}: {e}");
                }
                None
            }
            Action::Discard { seq, reason } => {
                log::error!("server refused spooled sample {seq} ({reason}); dropping it");
                let _ = self.spool.ack(seq);
                None
            }
            Action::Push { seq, msg_ref } => {
                let Socket::Open(conn) = &mut self.socket else {
                    return Some(Event::Failed("not connected".into()));
                };
                let push = |conn: &mut Connection, event: &str, payload: &str| {
                    match conn.push(msg_ref, event, payload) {
                        // Too large for the server: without the details of its errors, if
                        // that is what made it large; else it can never be sent.
                        Err(crate::Error::TooLarge { .. }) if trim_errors(payload).is_some() => {
                            let trimmed = trim_errors(payload).unwrap_or_default();
                            log::warn!(
                                "sample {seq}: {} bytes with its errors, too large for the \
                                 server; sending it with the errors counted, not listed",
                                payload.len()
                            );
                            conn.push(msg_ref, event, &trimmed)
                        }
                        other => other,
                    }
                };
                let sent = match self.fresh.take() {
                    Some(fresh) if fresh.seq == seq => {
                        push(conn, fresh.kind.event(), &fresh.payload)
                    }
                    fresh => {
                        self.fresh = fresh;
                        self.spool
                            .read(seq)
                            .and_then(|entry| push(conn, &entry.event, &entry.payload))
                    }
                };
                match sent {
                    Ok(()) => None,
                    // Unreadable or not JSON: sending it again would never work; do not block
                    // the queue.
                    Err(e @ crate::Error::TooLarge { .. }) => {
                        self.oversized += 1;
                        log::error!(
                            "dropping sample {seq}: {e}; it can never be sent ({} dropped as \
                             too large since the agent started)",
                            self.oversized
                        );
                        let _ = self.spool.ack(seq);
                        Some(Event::Unsendable { msg_ref })
                    }
                    Err(e @ (crate::Error::Parse { .. } | crate::Error::Spool { .. })) => {
                        log::error!("dropping spooled sample {seq}: {e}");
                        let _ = self.spool.ack(seq);
                        Some(Event::Unsendable { msg_ref })
                    }
                    Err(e) => failed(e),
                }
            }
            Action::Join { join_ref } => {
                let ticket = self.ticket.clone();
                self.send(|conn, token| {
                    conn.join(join_ref, token, AGENT_VERSION, ticket.as_deref())
                })
            }
            Action::Heartbeat { msg_ref } => {
                log::debug!("sending heartbeat {msg_ref}");
                self.send(|conn, _| conn.heartbeat(msg_ref))
            }
            Action::Leave { msg_ref } => self.send(|conn, _| conn.leave(msg_ref)),
            Action::Close => self.send(|conn, _| conn.close()),
        }
    }

    fn send(&mut self, write: impl FnOnce(&mut Connection, &str) -> Result<()>) -> Option<Event> {
        let Socket::Open(conn) = &mut self.socket else {
            return Some(Event::Failed("not connected".into()));
        };
        write(conn, &self.config.token)
            .err()
            .map(|e| Event::Failed(e.to_string()))
    }

    /// With the socket ready while opening: takes the opening a step further.
    fn advance_opening(&mut self) {
        let Socket::Opening(opening) = &mut self.socket else {
            return;
        };
        match opening.advance() {
            Ok(None) => {}
            Ok(Some(conn)) => {
                self.socket = Socket::Open(Box::new(conn));
                self.dispatch(Event::Connected);
            }
            Err(e) => self.dispatch(Event::Failed(e.to_string())),
        }
    }

    /// Writes out what is queued and handles everything that has arrived, without waiting.
    fn exchange(&mut self) {
        if let Socket::Open(conn) = &mut self.socket {
            if let Err(e) = conn.flush_if_unflushed() {
                self.dispatch(Event::Failed(e.to_string()));
            }
        }
        while let Socket::Open(conn) = &mut self.socket {
            let event = match conn.read() {
                Ok(None) => return,
                Ok(Some(Incoming::Reply {
                    msg_ref,
                    ok,
                    reason,
                })) => Event::Reply {
                    msg_ref,
                    ok,
                    reason,
                },
                Ok(Some(Incoming::ChannelClosed { event })) => Event::ChannelClosed { event },
                Ok(Some(Incoming::Other)) => continue,
                Err(e) => Event::Failed(e.to_string()),
            };
            self.dispatch(event);
        }
    }
}

/// When each kind of sample is next due, on the monotonic clock. Deadlines
/// advance by whole intervals from the start, so samples do not drift.
struct Schedule {
    next: [(MetricKind, Instant, Duration); 3],
}

impl Schedule {
    fn new(config: &AgentConfig, start: Instant) -> Schedule {
        Schedule {
            next: [
                (MetricKind::Fast, start, config.fast),
                (MetricKind::Medium, start, config.medium),
                (MetricKind::Slow, start, config.slow),
            ],
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

/// A push payload (`{"collected_at": ..., "data": {..., "errors": [...]}}`) with its errors
/// replaced by one entry counting them; `None` when it has none to remove or is not JSON.
fn trim_errors(payload: &str) -> Option<String> {
    let mut push: serde_json::Value = serde_json::from_str(payload).ok()?;
    let errors = push.get_mut("data")?.get_mut("errors")?.as_array_mut()?;
    let count = errors.len();
    let only_count = errors.first().is_some_and(|e| e["source"] == "agent") && count == 1;
    if count == 0 || only_count {
        return None;
    }
    *errors = vec![serde_json::json!({
        "source": "agent",
        "message": format!("{count} errors left out: the sample was too large to send with them"),
    })];
    serde_json::to_string(&push).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_too_large_samples_errors_are_counted_instead_of_listed() {
        let payload = serde_json::json!({
            "collected_at": "2026-01-01T00:00:00Z",
            "data": {"load1": 1.5, "errors": [
                {"source": "/proc/stat", "message": "x".repeat(5000)},
                {"source": "/proc/meminfo", "message": "y"},
            ]},
        })
        .to_string();
        let trimmed = trim_errors(&payload).unwrap();
        assert!(trimmed.len() < 300, "{trimmed}");
        let value: serde_json::Value = serde_json::from_str(&trimmed).unwrap();
        assert_eq!(value["data"]["load1"], 1.5);
        assert_eq!(
            value["data"]["errors"][0]["message"],
            "2 errors left out: the sample was too large to send with them"
        );
        // Trimmed once, there is nothing more to take away.
        assert_eq!(trim_errors(&trimmed), None);
        assert_eq!(trim_errors(r#"{"data":{"load1":1}}"#), None);
        assert_eq!(trim_errors("not json"), None);
    }

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
