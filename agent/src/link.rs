//! The agent's link to the server as one state machine: down (waiting to retry), connecting,
//! joining, up (samples in flight), and the way out on a stop (draining, leaving, closing).
//!
//! `Link::handle(event, now, outbox)` takes what happened and the current time and returns what
//! to do next as `Action`s: open a socket, send a frame, acknowledge a spooled sample, drop the
//! socket. `Link::deadline()` says when it next needs a `Timer` event. There is no socket and no
//! clock in here: the run loop (`run.rs`) does the I/O and blocks until the earliest of that
//! deadline, the next collection, a frame from the server or a stop request, so every path below
//! is unit-tested with made-up instants.
//!
//! Liveness: while up, a push must be answered within `REPLY_TIMEOUT`; when nothing has been
//! sent for `HEARTBEAT_EVERY` a heartbeat goes out and must be answered within the same time.
//! At the default 30 s collection interval the pushes themselves keep the server's idle timeout
//! at bay, so heartbeats only flow when samples do not.
//!
//! Messages are matched to replies by their ref: a counter per connection, the join being ref 1,
//! so a reply meant for an earlier connection can never be taken for one on this connection (the
//! connection also drops frames carrying another join ref).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::events::reason;

/// Opening the socket (TCP connect, TLS and WebSocket handshakes) must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A server restarting under a reconnect storm answers joins late (bcrypt work queues up);
/// waiting beats giving up and joining the back of the queue again.
/// (1000 agents at bcrypt cost 12 take ~100 s to verify on 2 cores; see `make bench`.)
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// A heartbeat goes out when nothing else has been sent for this long.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// A push or heartbeat without a reply for this long means the connection is dead.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pushes sent but not yet acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 32;
/// On a stop: how long to wait for the replies to pushes in flight before leaving ...
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// ... for the reply to the leave ...
pub const LEAVE_GRACE: Duration = Duration::from_millis(300);
/// ... and for the server to answer the WebSocket close. All three together (1 s) stay well
/// inside the 2 s a stop may take, even on a loaded machine.
pub const CLOSE_GRACE: Duration = Duration::from_millis(200);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// After the server refused our token, try again this rarely (the admin must fix the config).
const REJECTED_FIRST: Duration = Duration::from_secs(30);
const REJECTED_MAX: Duration = Duration::from_secs(300);
/// While the server's database fails (`try_later` joins, `store_failed` pushes), try again this
/// rarely: a join that succeeds does not reset it, only a stored sample does.
const BUSY_FIRST: Duration = Duration::from_secs(5);
const BUSY_MAX: Duration = Duration::from_secs(300);

/// A message ref, unique within one connection.
pub type Ref = u64;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Time passed; a deadline may be due.
    Timer,
    /// The socket is open (TCP, TLS and WebSocket handshakes done).
    Connected,
    /// The server answered our message `msg_ref` (join, push, heartbeat or leave).
    Reply {
        msg_ref: Ref,
        ok: bool,
        reason: Option<String>,
    },
    /// The server closed or crashed our channel (`phx_close`, `phx_error`).
    ChannelClosed { event: String },
    /// New samples are in the spool.
    Spooled,
    /// The push `msg_ref` could not be sent because its spooled sample is unreadable; the run
    /// loop has discarded it.
    Unsendable { msg_ref: Ref },
    /// The connection failed or was closed by the server.
    Failed(String),
    /// Ctrl+C or SIGTERM.
    Stop,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start opening a socket; report `Connected` or `Failed`.
    Connect,
    /// Send the join of our topic with this ref.
    Join { join_ref: Ref },
    /// Send the spooled sample `seq` with this ref.
    Push { seq: u64, msg_ref: Ref },
    /// Send a heartbeat with this ref.
    Heartbeat { msg_ref: Ref },
    /// The server stored sample `seq`: remove it from the spool.
    Ack { seq: u64 },
    /// The server will never accept sample `seq` (`reason`): remove it from the spool, loudly.
    Discard { seq: u64, reason: String },
    /// Leave the channel with this ref.
    Leave { msg_ref: Ref },
    /// Start the WebSocket closing handshake.
    Close,
    /// Drop the socket, whatever state it is in.
    Disconnect,
}

/// The spool as the link sees it: which samples wait to be sent.
pub trait Outbox {
    /// Up to `max` pending seqs greater than `after`, oldest first.
    fn pending_after(&self, after: u64, max: usize) -> Vec<u64>;
}

/// Where the link is.
#[derive(Debug)]
pub enum State {
    /// No socket; the next attempt is at `retry_at`.
    Down { retry_at: Instant },
    /// Opening the socket until `deadline`.
    Connecting { deadline: Instant },
    /// The join is sent; its answer is due by `deadline`.
    Joining { join_ref: Ref, deadline: Instant },
    /// Joined: samples flow.
    Up(Up),
    /// A stop came while pushes were in flight: waiting for their replies until `deadline`.
    Draining { window: Window, deadline: Instant },
    /// The leave is sent; its reply is awaited until `deadline` (late acks still count).
    Leaving {
        window: Window,
        leave_ref: Ref,
        deadline: Instant,
    },
    /// Our WebSocket close is sent; the server's is awaited until `deadline`.
    Closing { deadline: Instant },
    /// Done: the run loop ends.
    Stopped,
}

/// The joined state.
#[derive(Debug)]
pub struct Up {
    window: Window,
    /// Spooled samples up to this seq have been pushed on this connection.
    sent_up_to: u64,
    /// When we last sent anything.
    last_sent: Instant,
    heartbeat: Heartbeat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// None in flight: the next is due `HEARTBEAT_EVERY` after the last thing we sent.
    Idle,
    /// Sent; the reply is due by `deadline`.
    Awaiting { msg_ref: Ref, deadline: Instant },
}

/// The pushes in flight: ref → (spool seq, when sent). Refs grow with time, so the first entry
/// is the oldest.
#[derive(Debug, Default)]
pub struct Window {
    sent: BTreeMap<Ref, (u64, Instant)>,
}

impl Window {
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    fn oldest(&self) -> Option<Instant> {
        self.sent.values().next().map(|(_, at)| *at)
    }

    /// Settles the reply to `msg_ref` if it is one of ours; false if it is not. A refusal other
    /// than `store_failed` discards the sample; `store_failed` keeps it spooled for later, and is
    /// returned as `Err` so that the caller can decide.
    fn settle(
        &mut self,
        msg_ref: Ref,
        ok: bool,
        why: Option<String>,
        actions: &mut Vec<Action>,
    ) -> Settled {
        let Some((seq, _)) = self.sent.remove(&msg_ref) else {
            return Settled::NotOurs;
        };
        if ok {
            actions.push(Action::Ack { seq });
            return Settled::Done;
        }
        let why = why.unwrap_or_default();
        if common::events::reason_code(&why) == reason::STORE_FAILED {
            // The server could not store it (disk full?): keep it and try again later.
            return Settled::StoreFailed;
        }
        actions.push(Action::Discard { seq, reason: why });
        Settled::Done
    }
}

enum Settled {
    NotOurs,
    Done,
    StoreFailed,
}

/// The link: its state, the next message ref and the two reconnection backoffs.
#[derive(Debug)]
pub struct Link {
    state: State,
    last_ref: Ref,
    backoff: Backoff,
    rejected: Backoff,
    busy: Backoff,
}

impl Link {
    /// A link that connects at once.
    pub fn new(now: Instant) -> Link {
        Link {
            state: State::Down { retry_at: now },
            last_ref: 0,
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_MAX),
            rejected: Backoff::new(REJECTED_FIRST, REJECTED_MAX),
            busy: Backoff::new(BUSY_FIRST, BUSY_MAX),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// When the link next needs a `Timer` event; `None` once stopped.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Connecting { deadline }
            | State::Joining { deadline, .. }
            | State::Draining { deadline, .. }
            | State::Leaving { deadline, .. }
            | State::Closing { deadline } => Some(*deadline),
            State::Up(up) => Some(up.deadline()),
            State::Stopped => None,
        }
    }

    /// Feeds one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Instant, outbox: &dyn Outbox) -> Vec<Action> {
        let mut actions = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Stopped);
        self.state = match state {
            State::Down { retry_at } => self.down(retry_at, event, now, &mut actions),
            State::Connecting { deadline } => self.connecting(deadline, event, now, &mut actions),
            State::Joining { join_ref, deadline } => {
                self.joining(join_ref, deadline, event, now, outbox, &mut actions)
            }
            State::Up(up) => self.up(up, event, now, outbox, &mut actions),
            State::Draining { window, deadline } => {
                self.draining(window, deadline, event, now, &mut actions)
            }
            State::Leaving {
                window,
                leave_ref,
                deadline,
            } => self.leaving(window, leave_ref, deadline, event, now, &mut actions),
            State::Closing { deadline } => match event {
                Event::Failed(_) => stopped(&mut actions),
                Event::Timer if now >= deadline => stopped(&mut actions),
                _ => State::Closing { deadline },
            },
            State::Stopped => State::Stopped,
        };
        actions
    }

    fn next_ref(&mut self) -> Ref {
        self.last_ref += 1;
        self.last_ref
    }

    fn down(
        &mut self,
        retry_at: Instant,
        event: Event,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Stop => State::Stopped,
            Event::Timer if now >= retry_at => {
                actions.push(Action::Connect);
                State::Connecting {
                    deadline: now + CONNECT_TIMEOUT,
                }
            }
            _ => State::Down { retry_at },
        }
    }

    fn connecting(
        &mut self,
        deadline: Instant,
        event: Event,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Connected => {
                self.last_ref = 0;
                let join_ref = self.next_ref();
                actions.push(Action::Join { join_ref });
                State::Joining {
                    join_ref,
                    deadline: now + JOIN_TIMEOUT,
                }
            }
            Event::Failed(message) => self.retry(now, &message, actions),
            Event::Timer if now >= deadline => self.retry(
                now,
                &format!(
                    "no connection within {} s (handshakes unfinished)",
                    CONNECT_TIMEOUT.as_secs()
                ),
                actions,
            ),
            Event::Stop => stopped(actions),
            _ => State::Connecting { deadline },
        }
    }

    fn joining(
        &mut self,
        join_ref: Ref,
        deadline: Instant,
        event: Event,
        now: Instant,
        outbox: &dyn Outbox,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Reply {
                msg_ref, ok: true, ..
            } if msg_ref == join_ref => {
                self.backoff.reset();
                self.rejected.reset();
                let mut up = Up {
                    window: Window::default(),
                    sent_up_to: 0,
                    last_sent: now,
                    heartbeat: Heartbeat::Idle,
                };
                self.fill(&mut up, now, outbox, actions);
                State::Up(up)
            }
            Event::Reply {
                msg_ref,
                ok: false,
                reason,
            } if msg_ref == join_ref => {
                let why = reason.as_deref().unwrap_or("no reason given");
                if common::events::reason_code(why) == reason::TRY_LATER {
                    return self.try_later(now, why, actions);
                }
                self.rejected(now, why, actions)
            }
            Event::Timer if now >= deadline => self.retry(
                now,
                &format!("no answer to our join within {} s", JOIN_TIMEOUT.as_secs()),
                actions,
            ),
            Event::Failed(message) => self.retry(now, &message, actions),
            Event::ChannelClosed { event } => {
                self.retry(now, &format!("server sent {event} for our join"), actions)
            }
            // Nothing is in flight and nothing joined yet: there is nothing to leave.
            Event::Stop => stopped(actions),
            _ => State::Joining { join_ref, deadline },
        }
    }

    fn up(
        &mut self,
        mut up: Up,
        event: Event,
        now: Instant,
        outbox: &dyn Outbox,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Reply {
                msg_ref,
                ok,
                reason,
            } => {
                if let Heartbeat::Awaiting { msg_ref: hb, .. } = up.heartbeat {
                    if hb == msg_ref {
                        up.heartbeat = Heartbeat::Idle;
                        return State::Up(up);
                    }
                }
                match up.window.settle(msg_ref, ok, reason, actions) {
                    Settled::StoreFailed => {
                        return self.try_later(now, "server could not store a sample", actions)
                    }
                    Settled::Done if ok => self.busy.reset(),
                    Settled::NotOurs | Settled::Done => {}
                }
            }
            Event::Unsendable { msg_ref } => {
                up.window.sent.remove(&msg_ref);
            }
            Event::Timer => {
                if let Heartbeat::Awaiting { deadline, .. } = up.heartbeat {
                    if now >= deadline {
                        return self.retry(
                            now,
                            &format!(
                                "heartbeat not answered within {} s",
                                REPLY_TIMEOUT.as_secs()
                            ),
                            actions,
                        );
                    }
                }
                if up
                    .window
                    .oldest()
                    .is_some_and(|sent| now >= sent + REPLY_TIMEOUT)
                {
                    return self.retry(
                        now,
                        &format!("no reply to a push within {} s", REPLY_TIMEOUT.as_secs()),
                        actions,
                    );
                }
                if up.heartbeat == Heartbeat::Idle && now >= up.last_sent + HEARTBEAT_EVERY {
                    let msg_ref = self.next_ref();
                    actions.push(Action::Heartbeat { msg_ref });
                    up.heartbeat = Heartbeat::Awaiting {
                        msg_ref,
                        deadline: now + REPLY_TIMEOUT,
                    };
                    up.last_sent = now;
                }
            }
            Event::ChannelClosed { event } => {
                return self.retry(
                    now,
                    &format!("server sent {event} for our channel"),
                    actions,
                )
            }
            Event::Failed(message) => return self.retry(now, &message, actions),
            Event::Stop => {
                if up.window.is_empty() {
                    return self.leave(up.window, now, actions);
                }
                return State::Draining {
                    window: up.window,
                    deadline: now + DRAIN_GRACE,
                };
            }
            Event::Spooled | Event::Connected => {}
        }
        self.fill(&mut up, now, outbox, actions);
        State::Up(up)
    }

    fn draining(
        &mut self,
        mut window: Window,
        deadline: Instant,
        event: Event,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Reply {
                msg_ref,
                ok,
                reason,
            } => {
                // A store failure keeps the sample spooled: the next start sends it again.
                let _ = window.settle(msg_ref, ok, reason, actions);
            }
            Event::Unsendable { msg_ref } => {
                window.sent.remove(&msg_ref);
            }
            Event::Timer if now >= deadline => {
                log::info!(
                    "{} samples still unanswered; they stay in the spool",
                    window.len()
                );
                return self.leave(window, now, actions);
            }
            Event::Failed(_) | Event::ChannelClosed { .. } => return stopped(actions),
            _ => {}
        }
        if window.is_empty() {
            return self.leave(window, now, actions);
        }
        State::Draining { window, deadline }
    }

    fn leaving(
        &mut self,
        mut window: Window,
        leave_ref: Ref,
        deadline: Instant,
        event: Event,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match event {
            Event::Reply { msg_ref, .. } if msg_ref == leave_ref => close(now, actions),
            Event::Reply {
                msg_ref,
                ok,
                reason,
            } => {
                let _ = window.settle(msg_ref, ok, reason, actions);
                State::Leaving {
                    window,
                    leave_ref,
                    deadline,
                }
            }
            // The server closes the channel when it takes our leave.
            Event::ChannelClosed { .. } => close(now, actions),
            Event::Timer if now >= deadline => close(now, actions),
            Event::Failed(_) => stopped(actions),
            _ => State::Leaving {
                window,
                leave_ref,
                deadline,
            },
        }
    }

    /// Sends as many spooled samples as the window has room for.
    fn fill(&mut self, up: &mut Up, now: Instant, outbox: &dyn Outbox, actions: &mut Vec<Action>) {
        let room = MAX_IN_FLIGHT.saturating_sub(up.window.len());
        if room == 0 {
            return;
        }
        for seq in outbox.pending_after(up.sent_up_to, room) {
            let msg_ref = self.next_ref();
            actions.push(Action::Push { seq, msg_ref });
            up.window.sent.insert(msg_ref, (seq, now));
            up.sent_up_to = seq;
            up.last_sent = now;
        }
    }

    fn leave(&mut self, window: Window, now: Instant, actions: &mut Vec<Action>) -> State {
        let msg_ref = self.next_ref();
        actions.push(Action::Leave { msg_ref });
        State::Leaving {
            window,
            leave_ref: msg_ref,
            deadline: now + LEAVE_GRACE,
        }
    }

    /// The connection is lost (or never came): drop it and try again after the backoff.
    fn retry(&mut self, now: Instant, message: &str, actions: &mut Vec<Action>) -> State {
        actions.push(Action::Disconnect);
        let wait = self.backoff.next();
        log::warn!("{message}; retrying in {:.1} s", wait.as_secs_f64());
        State::Down {
            retry_at: now + wait,
        }
    }

    /// The server cannot store anything now: wait longer each time until a sample is stored.
    fn try_later(&mut self, now: Instant, why: &str, actions: &mut Vec<Action>) -> State {
        actions.push(Action::Disconnect);
        let wait = self.busy.next();
        log::warn!(
            "{why}; the server's database is failing, trying again in {:.0} s",
            wait.as_secs_f64()
        );
        State::Down {
            retry_at: now + wait,
        }
    }

    /// The server refused our join: the admin must act, so try again rarely.
    fn rejected(&mut self, now: Instant, why: &str, actions: &mut Vec<Action>) -> State {
        actions.push(Action::Disconnect);
        let wait = self.rejected.next();
        let hint = match why {
            reason::INVALID_TOKEN => {
                "the token in the config does not match this host's (rotate-token?)"
            }
            reason::UNKNOWN_HOST => {
                "no host of this name is registered on the server (register-host?)"
            }
            _ => "see the server's log",
        };
        log::error!(
            "server refused the join: {why} — {hint}; retrying in {} s",
            wait.as_secs()
        );
        State::Down {
            retry_at: now + wait,
        }
    }
}

impl Up {
    fn deadline(&self) -> Instant {
        let heartbeat = match self.heartbeat {
            Heartbeat::Idle => self.last_sent + HEARTBEAT_EVERY,
            Heartbeat::Awaiting { deadline, .. } => deadline,
        };
        match self.window.oldest() {
            Some(sent) => heartbeat.min(sent + REPLY_TIMEOUT),
            None => heartbeat,
        }
    }
}

fn close(now: Instant, actions: &mut Vec<Action>) -> State {
    actions.push(Action::Close);
    State::Closing {
        deadline: now + CLOSE_GRACE,
    }
}

fn stopped(actions: &mut Vec<Action>) -> State {
    actions.push(Action::Disconnect);
    State::Stopped
}

/// Capped exponential backoff with ±25 % jitter, so that a thousand agents do not reconnect to
/// a restarted server in the same instant.
#[derive(Debug)]
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

    /// The spool as a sorted list of pending seqs.
    struct Pending(Vec<u64>);

    impl Outbox for Pending {
        fn pending_after(&self, after: u64, max: usize) -> Vec<u64> {
            self.0
                .iter()
                .copied()
                .filter(|s| *s > after)
                .take(max)
                .collect()
        }
    }

    const NONE: Pending = Pending(Vec::new());

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ok(msg_ref: Ref) -> Event {
        Event::Reply {
            msg_ref,
            ok: true,
            reason: None,
        }
    }

    fn refused(msg_ref: Ref, why: &str) -> Event {
        Event::Reply {
            msg_ref,
            ok: false,
            reason: Some(why.into()),
        }
    }

    fn pushes(actions: &[Action]) -> Vec<(u64, Ref)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Push { seq, msg_ref } => Some((*seq, *msg_ref)),
                _ => None,
            })
            .collect()
    }

    fn is_down(link: &Link) -> Option<Instant> {
        match link.state() {
            State::Down { retry_at } => Some(*retry_at),
            _ => None,
        }
    }

    /// A link joined at `t0` with `pending` in the spool; returns it and the pushes it sent.
    fn joined(t0: Instant, pending: &Pending) -> (Link, Vec<(u64, Ref)>) {
        let mut link = Link::new(t0);
        assert_eq!(
            link.handle(Event::Timer, t0, pending),
            vec![Action::Connect]
        );
        assert_eq!(
            link.handle(Event::Connected, t0, pending),
            vec![Action::Join { join_ref: 1 }]
        );
        let actions = link.handle(ok(1), t0, pending);
        assert!(link.is_up(), "{:?}", link.state());
        (link, pushes(&actions))
    }

    #[test]
    fn connects_joins_and_sends_the_spool_oldest_first() {
        let t0 = Instant::now();
        let (link, sent) = joined(t0, &Pending(vec![4, 5, 9]));
        assert_eq!(sent, vec![(4, 2), (5, 3), (9, 4)]);
        // Nothing is due before the oldest push times out or a heartbeat is due.
        assert_eq!(link.deadline(), Some(t0 + REPLY_TIMEOUT));
    }

    #[test]
    fn join_refused_waits_long_and_names_the_reason() {
        let t0 = Instant::now();
        let mut link = Link::new(t0);
        link.handle(Event::Timer, t0, &NONE);
        link.handle(Event::Connected, t0, &NONE);
        let actions = link.handle(refused(1, reason::INVALID_TOKEN), t0 + ms(5), &NONE);
        assert_eq!(actions, vec![Action::Disconnect]);
        let retry_at = is_down(&link).expect("down after a refusal");
        let wait = retry_at - (t0 + ms(5));
        assert!(wait >= secs(22) && wait <= secs(38), "{wait:?}");
        // Nothing happens before the retry time; at it, a new attempt.
        assert_eq!(link.handle(Event::Timer, retry_at - ms(1), &NONE), vec![]);
        assert_eq!(
            link.handle(Event::Timer, retry_at, &NONE),
            vec![Action::Connect]
        );
        // A second refusal waits about twice as long.
        link.handle(Event::Connected, retry_at, &NONE);
        link.handle(refused(1, reason::UNKNOWN_HOST), retry_at, &NONE);
        let wait = is_down(&link).unwrap() - retry_at;
        assert!(wait >= secs(45) && wait <= secs(75), "{wait:?}");
    }

    #[test]
    fn join_timeout_retries_with_backoff() {
        let t0 = Instant::now();
        let mut link = Link::new(t0);
        link.handle(Event::Timer, t0, &NONE);
        link.handle(Event::Connected, t0, &NONE);
        assert_eq!(link.deadline(), Some(t0 + JOIN_TIMEOUT));
        // A reply to something else, and a timer before the deadline, change nothing.
        assert_eq!(link.handle(ok(7), t0 + secs(1), &NONE), vec![]);
        assert_eq!(link.handle(Event::Timer, t0 + secs(179), &NONE), vec![]);
        assert!(matches!(link.state(), State::Joining { .. }));
        let at = t0 + JOIN_TIMEOUT;
        assert_eq!(
            link.handle(Event::Timer, at, &NONE),
            vec![Action::Disconnect]
        );
        let wait = is_down(&link).unwrap() - at;
        assert!(wait >= ms(750) && wait <= ms(1250), "{wait:?}");
        // The answer to the abandoned join arriving now means nothing.
        assert_eq!(link.handle(ok(1), at, &NONE), vec![]);
        assert!(is_down(&link).is_some());
    }

    #[test]
    fn connect_timeout_and_failures_back_off_exponentially() {
        let t0 = Instant::now();
        let mut link = Link::new(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for attempt in 0..8 {
            assert_eq!(link.handle(Event::Timer, now, &NONE), vec![Action::Connect]);
            let actions = if attempt % 2 == 0 {
                link.handle(Event::Failed("refused".into()), now + ms(1), &NONE)
            } else {
                link.handle(Event::Timer, now + CONNECT_TIMEOUT, &NONE)
            };
            assert_eq!(actions, vec![Action::Disconnect]);
            let failed_at = if attempt % 2 == 0 {
                now + ms(1)
            } else {
                now + CONNECT_TIMEOUT
            };
            let retry_at = is_down(&link).unwrap();
            waits.push((retry_at - failed_at).as_secs_f64());
            now = retry_at;
        }
        for (i, wait) in waits.iter().enumerate() {
            let base = (1u64 << i).min(60) as f64;
            assert!(
                *wait >= base * 0.75 && *wait <= base * 1.25,
                "attempt {i}: {wait}"
            );
        }
        // A successful join resets the backoff.
        link.handle(Event::Timer, now, &NONE);
        link.handle(Event::Connected, now, &NONE);
        link.handle(ok(1), now, &NONE);
        link.handle(Event::Failed("reset by peer".into()), now, &NONE);
        assert!(is_down(&link).unwrap() - now <= ms(1250));
    }

    #[test]
    fn acks_out_of_order_acknowledge_the_right_samples_and_refill_the_window() {
        let t0 = Instant::now();
        let mut spool = Pending((1..=40).collect());
        let (mut link, sent) = joined(t0, &spool);
        assert_eq!(sent.len(), MAX_IN_FLIGHT);
        assert_eq!(sent[0], (1, 2));
        assert_eq!(sent[31], (32, 33));
        // Replies come back in another order; each acks its own sample and frees one slot.
        let actions = link.handle(ok(5), t0 + ms(10), &spool);
        assert_eq!(actions[0], Action::Ack { seq: 4 });
        assert_eq!(pushes(&actions), vec![(33, 34)]);
        spool.0.retain(|s| *s != 4);
        let actions = link.handle(ok(2), t0 + ms(11), &spool);
        assert_eq!(actions[0], Action::Ack { seq: 1 });
        assert_eq!(pushes(&actions), vec![(34, 35)]);
        spool.0.retain(|s| *s != 1);
        // A duplicate reply, or one to a ref we never sent, does nothing.
        assert_eq!(link.handle(ok(2), t0 + ms(12), &spool), vec![]);
        assert_eq!(link.handle(ok(999), t0 + ms(12), &spool), vec![]);
        // A permanent refusal discards that sample and moves on.
        let actions = link.handle(refused(3, reason::BAD_PAYLOAD), t0 + ms(13), &spool);
        assert_eq!(
            actions[0],
            Action::Discard {
                seq: 2,
                reason: reason::BAD_PAYLOAD.into()
            }
        );
        assert_eq!(pushes(&actions), vec![(35, 36)]);
    }

    #[test]
    fn a_store_failure_keeps_the_sample_and_reconnects() {
        let t0 = Instant::now();
        let (mut link, sent) = joined(t0, &Pending(vec![1, 2]));
        assert_eq!(sent, vec![(1, 2), (2, 3)]);
        let actions = link.handle(refused(2, reason::STORE_FAILED), t0 + ms(5), &NONE);
        assert_eq!(actions, vec![Action::Disconnect]);
        assert!(is_down(&link).is_some());
    }

    #[test]
    fn a_failing_server_database_makes_the_agent_back_off_until_a_sample_is_stored() {
        let t0 = Instant::now();
        let (mut link, _) = joined(t0, &Pending(vec![1]));
        link.handle(refused(2, reason::STORE_FAILED), t0, &NONE);
        let first = is_down(&link).unwrap() - t0;
        assert!(first >= secs(3), "{first:?}");
        // The server refuses joins while its database fails; the join that follows a refusal
        // waits about twice as long each time, however quickly the socket opens.
        let mut at = t0 + first;
        let mut previous = first;
        for _ in 0..3 {
            link.handle(Event::Timer, at, &NONE);
            link.handle(Event::Connected, at, &NONE);
            let why = "try_later: the server's database fails writes since 9 s ago: disk full";
            let actions = link.handle(refused(link.last_ref, why), at, &NONE);
            assert_eq!(actions, vec![Action::Disconnect]);
            let wait = is_down(&link).unwrap() - at;
            assert!(wait > previous, "{wait:?} after {previous:?}");
            previous = wait;
            at += wait;
        }
        // A join that succeeds does not reset it; a stored sample does.
        link.handle(Event::Timer, at, &NONE);
        link.handle(Event::Connected, at, &NONE);
        let spool = Pending(vec![1]);
        link.handle(ok(link.last_ref), at, &spool);
        link.handle(refused(link.last_ref, reason::STORE_FAILED), at, &NONE);
        let wait = is_down(&link).unwrap() - at;
        assert!(wait > secs(20), "{wait:?}");
        at += wait;
        link.handle(Event::Timer, at, &NONE);
        link.handle(Event::Connected, at, &NONE);
        link.handle(ok(link.last_ref), at, &spool);
        let actions = link.handle(ok(link.last_ref), at, &NONE);
        assert_eq!(actions, vec![Action::Ack { seq: 1 }]);
        link.handle(Event::Spooled, at, &Pending(vec![2]));
        link.handle(refused(link.last_ref, reason::STORE_FAILED), at, &NONE);
        let wait = is_down(&link).unwrap() - at;
        assert!(wait <= secs(7), "reset by the stored sample: {wait:?}");
    }

    #[test]
    fn heartbeat_only_when_idle_and_a_missed_one_drops_the_link() {
        let t0 = Instant::now();
        let mut spool = Pending(vec![]);
        let (mut link, _) = joined(t0, &spool);
        assert_eq!(link.deadline(), Some(t0 + HEARTBEAT_EVERY));
        // A sample at 20 s: pushed and acked; the heartbeat moves to 30 s after it.
        spool.0.push(1);
        let actions = link.handle(Event::Spooled, t0 + secs(20), &spool);
        assert_eq!(pushes(&actions), vec![(1, 2)]);
        spool.0.clear();
        assert_eq!(
            link.handle(ok(2), t0 + secs(20), &spool),
            vec![Action::Ack { seq: 1 }]
        );
        assert_eq!(link.deadline(), Some(t0 + secs(50)));
        assert_eq!(link.handle(Event::Timer, t0 + secs(49), &spool), vec![]);
        // Idle for 30 s: a heartbeat, answered.
        assert_eq!(
            link.handle(Event::Timer, t0 + secs(50), &spool),
            vec![Action::Heartbeat { msg_ref: 3 }]
        );
        assert_eq!(link.deadline(), Some(t0 + secs(80)));
        assert_eq!(link.handle(ok(3), t0 + secs(51), &spool), vec![]);
        assert_eq!(link.deadline(), Some(t0 + secs(80)));
        // The next one goes unanswered: at its deadline the link is dropped.
        assert_eq!(
            link.handle(Event::Timer, t0 + secs(80), &spool),
            vec![Action::Heartbeat { msg_ref: 4 }]
        );
        assert_eq!(link.handle(Event::Timer, t0 + secs(109), &spool), vec![]);
        assert_eq!(
            link.handle(Event::Timer, t0 + secs(110), &spool),
            vec![Action::Disconnect]
        );
        assert!(is_down(&link).is_some());
    }

    #[test]
    fn a_push_without_reply_drops_the_link() {
        let t0 = Instant::now();
        let (mut link, _) = joined(t0, &Pending(vec![1]));
        assert_eq!(link.deadline(), Some(t0 + REPLY_TIMEOUT));
        assert_eq!(
            link.handle(Event::Timer, t0 + REPLY_TIMEOUT, &Pending(vec![1])),
            vec![Action::Disconnect]
        );
    }

    #[test]
    fn server_close_mid_window_resends_the_unacked_samples_after_rejoining() {
        let t0 = Instant::now();
        let mut spool = Pending(vec![1, 2, 3]);
        let (mut link, sent) = joined(t0, &spool);
        assert_eq!(sent, vec![(1, 2), (2, 3), (3, 4)]);
        link.handle(ok(3), t0 + ms(1), &spool);
        spool.0.retain(|s| *s != 2);
        let actions = link.handle(
            Event::ChannelClosed {
                event: "phx_close".into(),
            },
            t0 + ms(2),
            &spool,
        );
        assert_eq!(actions, vec![Action::Disconnect]);
        // A reply from the dead connection arriving late is ignored.
        assert_eq!(link.handle(ok(2), t0 + ms(3), &spool), vec![]);
        let retry_at = is_down(&link).unwrap();
        spool.0.push(4);
        assert_eq!(
            link.handle(Event::Timer, retry_at, &spool),
            vec![Action::Connect]
        );
        assert_eq!(
            link.handle(Event::Connected, retry_at, &spool),
            vec![Action::Join { join_ref: 1 }]
        );
        // Everything still spooled goes again, refs starting over after the join.
        let actions = link.handle(ok(1), retry_at, &spool);
        assert_eq!(pushes(&actions), vec![(1, 2), (3, 3), (4, 4)]);
    }

    #[test]
    fn a_socket_failure_mid_window_also_reconnects() {
        let t0 = Instant::now();
        let (mut link, _) = joined(t0, &Pending(vec![1, 2]));
        let actions = link.handle(
            Event::Failed("server closed the connection".into()),
            t0 + ms(2),
            &NONE,
        );
        assert_eq!(actions, vec![Action::Disconnect]);
        assert!(is_down(&link).is_some());
    }

    #[test]
    fn stop_while_down_or_connecting_or_joining_ends_at_once() {
        let t0 = Instant::now();
        let mut link = Link::new(t0 + secs(5));
        assert_eq!(link.handle(Event::Stop, t0, &NONE), vec![]);
        assert!(link.is_stopped());
        assert_eq!(link.deadline(), None);

        let mut link = Link::new(t0);
        link.handle(Event::Timer, t0, &NONE);
        assert!(matches!(link.state(), State::Connecting { .. }));
        assert_eq!(
            link.handle(Event::Stop, t0 + ms(1), &NONE),
            vec![Action::Disconnect]
        );
        assert!(link.is_stopped());
        // A late `Connected` from the abandoned attempt changes nothing.
        assert_eq!(link.handle(Event::Connected, t0 + ms(2), &NONE), vec![]);
        assert!(link.is_stopped());

        let mut link = Link::new(t0);
        link.handle(Event::Timer, t0, &NONE);
        link.handle(Event::Connected, t0, &NONE);
        assert_eq!(
            link.handle(Event::Stop, t0 + ms(1), &NONE),
            vec![Action::Disconnect]
        );
        assert!(link.is_stopped());
    }

    #[test]
    fn stop_while_up_and_idle_leaves_then_closes() {
        let t0 = Instant::now();
        let (mut link, _) = joined(t0, &NONE);
        assert_eq!(
            link.handle(Event::Stop, t0 + secs(1), &NONE),
            vec![Action::Leave { msg_ref: 2 }]
        );
        assert_eq!(link.deadline(), Some(t0 + secs(1) + LEAVE_GRACE));
        // New samples are not sent any more.
        assert_eq!(
            link.handle(Event::Spooled, t0 + secs(1), &Pending(vec![7])),
            vec![]
        );
        assert_eq!(
            link.handle(ok(2), t0 + secs(1) + ms(3), &NONE),
            vec![Action::Close]
        );
        assert_eq!(link.deadline(), Some(t0 + secs(1) + ms(3) + CLOSE_GRACE));
        // The server's close (the socket ends) finishes it.
        assert_eq!(
            link.handle(Event::Failed("closed".into()), t0 + secs(1) + ms(4), &NONE),
            vec![Action::Disconnect]
        );
        assert!(link.is_stopped());
    }

    #[test]
    fn stop_while_draining_waits_for_acks_then_leaves() {
        let t0 = Instant::now();
        let spool = Pending(vec![1, 2, 3]);
        let (mut link, _) = joined(t0, &spool);
        let stop_at = t0 + secs(1);
        assert_eq!(link.handle(Event::Stop, stop_at, &spool), vec![]);
        assert!(matches!(link.state(), State::Draining { .. }));
        assert_eq!(link.deadline(), Some(stop_at + DRAIN_GRACE));
        // Acks still count; no new pushes go out.
        assert_eq!(
            link.handle(ok(3), stop_at + ms(10), &Pending(vec![1, 3, 4])),
            vec![Action::Ack { seq: 2 }]
        );
        assert_eq!(
            link.handle(ok(2), stop_at + ms(11), &Pending(vec![3, 4])),
            vec![Action::Ack { seq: 1 }]
        );
        // The last ack: leave at once.
        assert_eq!(
            link.handle(ok(4), stop_at + ms(12), &Pending(vec![4])),
            vec![Action::Ack { seq: 3 }, Action::Leave { msg_ref: 5 }]
        );
        // The leave goes unanswered: close at its deadline, then give up on the server's close.
        let left = stop_at + ms(12);
        assert_eq!(
            link.handle(Event::Timer, left + LEAVE_GRACE, &NONE),
            vec![Action::Close]
        );
        assert_eq!(
            link.handle(Event::Timer, left + LEAVE_GRACE + CLOSE_GRACE, &NONE),
            vec![Action::Disconnect]
        );
        assert!(link.is_stopped());
        // Stopping takes well under the 2 s allowed even when the server never answers.
        assert!(DRAIN_GRACE + LEAVE_GRACE + CLOSE_GRACE <= secs(1));
    }

    #[test]
    fn stop_while_draining_with_a_silent_server_leaves_at_the_deadline() {
        let t0 = Instant::now();
        let spool = Pending(vec![1, 2]);
        let (mut link, _) = joined(t0, &spool);
        link.handle(Event::Stop, t0, &spool);
        assert_eq!(
            link.handle(Event::Timer, t0 + DRAIN_GRACE - ms(1), &spool),
            vec![]
        );
        assert_eq!(
            link.handle(Event::Timer, t0 + DRAIN_GRACE, &spool),
            vec![Action::Leave { msg_ref: 4 }]
        );
        // An ack arriving while we leave still acknowledges its sample.
        assert_eq!(
            link.handle(ok(2), t0 + DRAIN_GRACE + ms(1), &spool),
            vec![Action::Ack { seq: 1 }]
        );
        // The server closing the socket ends it without waiting further.
        assert_eq!(
            link.handle(
                Event::Failed("eof".into()),
                t0 + DRAIN_GRACE + ms(2),
                &spool
            ),
            vec![Action::Disconnect]
        );
        assert!(link.is_stopped());
    }

    #[test]
    fn an_unsendable_sample_frees_its_slot() {
        let t0 = Instant::now();
        let spool: Pending = Pending((1..=33).collect());
        let (mut link, sent) = joined(t0, &spool);
        assert_eq!(sent.len(), MAX_IN_FLIGHT);
        let actions = link.handle(
            Event::Unsendable { msg_ref: 2 },
            t0,
            &Pending((2..=33).collect()),
        );
        assert_eq!(pushes(&actions), vec![(33, 34)]);
    }
}
