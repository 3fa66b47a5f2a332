//! The host channel: a state machine driven by incoming frames, producing the frames to send back.
//!
//! It knows nothing of sockets, so it is tested frame by frame (the tests at the bottom). One
//! socket carries at most one host channel; a second join on the same socket replaces the
//! first, as Phoenix does for a duplicate join of the same topic.
//!
//! A frame is read as a `RawFrame`: its payload stays the text it came in until the event says
//! what it is, so a sample's `data` is parsed once, straight into its typed form
//! (`crate::ingest`), and stored as received.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::events::{self, reason, JoinParams, MetricKind, RawMetricPush};
use common::frame::channel_event;
use common::{Frame, RawFrame};
use serde_json::json;

use crate::auth::AuthFailure;
use crate::context::{Context, Stats};
use crate::ingest;

struct Joined {
    host_id: i64,
    host_name: String,
    topic: String,
    join_ref: Option<String>,
}

pub struct Channel<'a> {
    ctx: &'a Context,
    conn_id: u64,
    kick: Arc<AtomicBool>,
    joined: Option<Joined>,
    peer: String,
}

impl<'a> Channel<'a> {
    /// A channel for connection `conn_id`; `kick` is set when a newer connection of the same host
    /// takes over.
    pub fn new(ctx: &'a Context, conn_id: u64, kick: Arc<AtomicBool>, peer: String) -> Channel<'a> {
        Channel {
            ctx,
            conn_id,
            kick,
            joined: None,
            peer,
        }
    }

    /// The host this socket has joined as, if any.
    pub fn host_name(&self) -> Option<&str> {
        self.joined.as_ref().map(|j| j.host_name.as_str())
    }

    /// The id of the host this socket has joined as, if any.
    pub fn host_id(&self) -> Option<i64> {
        self.joined.as_ref().map(|j| j.host_id)
    }

    /// Handles one text frame; returns the frames to send, in order.
    pub fn handle_text(&mut self, text: &str) -> Vec<Frame> {
        match RawFrame::decode(text) {
            Ok(frame) => self.handle(&frame),
            Err(e) => {
                Stats::add(&self.ctx.stats.bad_frames, 1);
                log::warn!("{}: dropped a frame: {e}", self.peer);
                Vec::new()
            }
        }
    }

    /// Handles one decoded frame.
    pub fn handle(&mut self, frame: &RawFrame<'_>) -> Vec<Frame> {
        if frame.topic == events::PHOENIX_TOPIC && frame.event == events::HEARTBEAT {
            return vec![frame.reply_ok(json!({}))];
        }
        if frame.event == events::PHX_JOIN {
            return self.join(frame);
        }
        let Some(joined) = self.joined.as_ref().filter(|j| j.topic == frame.topic) else {
            // Phoenix answers messages for channels this socket has not joined like this.
            let mut reply = frame.reply_error(reason::UNMATCHED_TOPIC);
            reply.join_ref = None;
            return vec![reply];
        };
        if frame.event == events::PHX_LEAVE {
            let close = channel_event(joined.join_ref.as_deref(), &joined.topic, events::PHX_CLOSE);
            self.leave();
            return vec![frame.reply_ok(json!({})), close];
        }
        let Some(kind) = MetricKind::from_event(&frame.event) else {
            log::warn!(
                "{}: unknown event {:?} on {}",
                self.peer,
                frame.event,
                frame.topic
            );
            return vec![frame.reply_error(reason::UNKNOWN_EVENT)];
        };
        let push = match RawMetricPush::parse(frame.payload) {
            Ok(push) => push,
            Err(e) => {
                Stats::add(&self.ctx.stats.bad_frames, 1);
                log::warn!(
                    "{}: {} from {}: bad payload: {e}",
                    self.peer,
                    frame.event,
                    joined.host_name
                );
                return vec![frame.reply_error(reason::BAD_PAYLOAD)];
            }
        };
        let collected_at = match common::time::parse_rfc3339(&push.collected_at) {
            Ok(t) => t,
            Err(e) => {
                log::warn!(
                    "{}: {} from {}: {e}",
                    self.peer,
                    frame.event,
                    joined.host_name
                );
                return vec![frame.reply_error(reason::BAD_PAYLOAD)];
            }
        };
        let now = common::time::now_unix();
        let skew = i64::try_from(self.ctx.config.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
        if let Some((code, message)) =
            ingest::check_collected_at(collected_at, now, skew, self.ctx.config.retention.raw)
        {
            Stats::add(&self.ctx.stats.samples_refused, 1);
            log::warn!(
                "{}: {} from {} refused: {message}",
                self.peer,
                frame.event,
                joined.host_name
            );
            return vec![frame.reply_refusal(code, &message)];
        }
        match ingest::ingest(
            self.ctx,
            joined.host_id,
            &joined.host_name,
            kind,
            collected_at,
            push.data.get(),
        ) {
            Ok(()) => vec![frame.reply_ok(json!({}))],
            Err(e) if e.is_series_cap() => {
                Stats::add(&self.ctx.stats.samples_refused, 1);
                let message = match &e {
                    crate::Error::Store(message) => message.clone(),
                    other => other.to_string(),
                };
                log::warn!(
                    "{}: {} from {} refused: {message}",
                    self.peer,
                    frame.event,
                    joined.host_name
                );
                vec![frame.reply_refusal(reason::TOO_MANY_SERIES, &message)]
            }
            Err(e) => {
                // Not acknowledged: the agent keeps the sample and sends it again later.
                log::error!("storing {} of {}: {e}", frame.event, joined.host_name);
                vec![frame.reply_error(reason::STORE_FAILED)]
            }
        }
    }

    fn join(&mut self, frame: &RawFrame<'_>) -> Vec<Frame> {
        let mut out = Vec::new();
        // A new join replaces this socket's current channel (Phoenix closes the old one first).
        if let Some(old) = &self.joined {
            out.push(channel_event(
                old.join_ref.as_deref(),
                &old.topic,
                events::PHX_CLOSE,
            ));
            self.leave();
        }
        let Some(name) = events::host_from_topic(&frame.topic) else {
            Stats::add(&self.ctx.stats.joins_rejected, 1);
            log::warn!("{}: join refused: bad topic {:?}", self.peer, frame.topic);
            out.push(frame.reply_error(reason::BAD_TOPIC));
            return out;
        };
        // A store that cannot write would fail every sample: say so before any bcrypt, and
        // let the agent back off instead of reconnecting every second.
        if let Err(why) = self.ctx.store.health() {
            Stats::add(&self.ctx.stats.joins_rejected, 1);
            log::warn!("{}: join of {name} deferred: {why}", self.peer);
            out.push(frame.reply_refusal(reason::TRY_LATER, &why));
            return out;
        }
        let params: Option<JoinParams> = serde_json::from_str(frame.payload.get()).ok();
        let token = params.as_ref().map_or("", |p| p.token.as_str());
        let agent_version = params.as_ref().and_then(|p| p.agent_version.as_deref());
        let ticket = params.as_ref().and_then(|p| p.ticket.as_deref());
        let (host_id, next_ticket) =
            match self
                .ctx
                .auth
                .authenticate_with_ticket(&self.ctx.store, name, token, ticket)
            {
                Ok(Ok(joined)) => joined,
                Ok(Err(failure)) => {
                    Stats::add(&self.ctx.stats.joins_rejected, 1);
                    match failure {
                        AuthFailure::UnknownHost => {
                            log::warn!("{}: join refused: no host named '{name}'", self.peer)
                        }
                        AuthFailure::InvalidToken => {
                            log::warn!("{}: join refused: wrong token for host '{name}'", self.peer)
                        }
                    }
                    out.push(frame.reply_error(failure.reason()));
                    return out;
                }
                Err(e) => {
                    log::error!("join of {name}: {e}");
                    out.push(frame.reply_error(reason::STORE_FAILED));
                    return out;
                }
            };
        let now = common::time::now_unix();
        // Database and memory change under the registry's lock, in the same order.
        let (kicked, marked) =
            self.ctx
                .registry
                .claim(host_id, self.conn_id, self.kick.clone(), || {
                    let row = self.ctx.store.mark_online(host_id, agent_version, now)?;
                    if let Some(row) = row {
                        self.ctx.hosts.set_row(row);
                    }
                    Ok::<(), crate::Error>(())
                });
        if let Err(e) = marked {
            log::error!("marking {name} online: {e}");
        }
        if kicked {
            log::info!(
                "{}: host {name} reconnected; closing its previous connection",
                self.peer
            );
        }
        log::info!(
            "{}: host {name} joined (agent {})",
            self.peer,
            agent_version.unwrap_or("unknown version")
        );
        self.joined = Some(Joined {
            host_id,
            host_name: name.to_owned(),
            topic: frame.topic.clone(),
            join_ref: frame.join_ref.clone(),
        });
        // The agent learns the largest frame it may send (a sample beyond it could never be
        // stored, and must not be sent again forever).
        let mut response = json!({"max_frame_bytes": self.ctx.config.max_frame_bytes});
        if let Some(ticket) = next_ticket {
            response["ticket"] = json!(ticket);
        }
        out.push(frame.reply_ok(response));
        out
    }

    /// A newer connection took over this host: the frames that tell the client its channel is
    /// closed. The host stays online; it belongs to the new connection now.
    pub fn kicked(&mut self) -> Vec<Frame> {
        match self.joined.take() {
            Some(j) => vec![channel_event(
                j.join_ref.as_deref(),
                &j.topic,
                events::PHX_CLOSE,
            )],
            None => Vec::new(),
        }
    }

    /// The server is stopping: the frames that close this socket's channel (before the socket
    /// itself is closed and the host marked offline by `end`).
    pub fn closing(&self) -> Vec<Frame> {
        self.joined
            .iter()
            .map(|j| channel_event(j.join_ref.as_deref(), &j.topic, events::PHX_CLOSE))
            .collect()
    }

    /// Leaves the current channel: the host goes offline if this connection still owns it.
    fn leave(&mut self) {
        let Some(joined) = self.joined.take() else {
            return;
        };
        let now = common::time::now_unix();
        let released = self.ctx.registry.release(joined.host_id, self.conn_id, || {
            match self.ctx.store.mark_offline(joined.host_id, now) {
                Ok(Some(row)) => self.ctx.hosts.set_row(row),
                Ok(None) => {}
                Err(e) => log::error!("marking {} offline: {e}", joined.host_name),
            }
        });
        if released {
            log::info!("{}: host {} is offline", self.peer, joined.host_name);
        }
    }

    /// The connection is over (closed, failed, timed out, or the server stops).
    pub fn end(&mut self) {
        self.leave();
    }
}

impl Drop for Channel<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::ServerConfig;
    use crate::state::HostStates;
    use crate::store::{HostStatus, Store, Synchronous};
    use crate::testutil::TempDir;

    struct Fixture {
        ctx: Context,
        token: String,
        host_id: i64,
        _dir: TempDir,
    }

    /// A context over a fresh database with host `pve1` registered (bcrypt cost 4).
    fn fixture(label: &str) -> Fixture {
        let dir = TempDir::new(label);
        let config = ServerConfig {
            bcrypt_cost: 4,
            database: dir.path().join("t.db"),
            ..ServerConfig::default()
        };
        let store = Store::open(&config.database, Synchronous::Normal).unwrap();
        let token = crate::auth::generate_token().unwrap();
        let hash = crate::auth::hash_secret(&token, 4).unwrap();
        let host_id = store.create_host("pve1", &hash, 1).unwrap().id;
        let hosts = HostStates::load(&store).unwrap();
        let ctx = Context::new(
            config,
            store,
            hosts,
            Arc::new(crate::shutdown::Shutdown::new()),
        );
        Fixture {
            ctx,
            token,
            host_id,
            _dir: dir,
        }
    }

    fn channel(f: &Fixture, conn_id: u64) -> (Channel<'_>, Arc<AtomicBool>) {
        let kick = Arc::new(AtomicBool::new(false));
        let channel = Channel::new(&f.ctx, conn_id, kick.clone(), format!("test-{conn_id}"));
        (channel, kick)
    }

    /// Sends one text frame; the frames sent back, as wire text (a join reply's resumption
    /// ticket left out: it differs every time; `tickets_let_a_rejoin_skip_bcrypt` checks it).
    fn send(channel: &mut Channel<'_>, text: &str) -> Vec<String> {
        channel
            .handle_text(text)
            .into_iter()
            .map(|mut frame| {
                if let Some(response) = frame.payload.get_mut("response") {
                    if let Some(map) = response.as_object_mut() {
                        map.remove("ticket");
                    }
                }
                frame.encode()
            })
            .collect()
    }

    fn join(f: &Fixture, channel: &mut Channel<'_>) {
        let frame = format!(
            r#"["1","1","host:pve1","phx_join",{{"token":"{}","agent_version":"0.9"}}]"#,
            f.token
        );
        assert_eq!(
            send(channel, &frame),
            [
                r#"["1","1","host:pve1","phx_reply",{"status":"ok","response":{"max_frame_bytes":1048576}}]"#
            ]
        );
    }

    fn push(event: &str, msg_ref: u32, collected_at: &str, data: &str) -> String {
        format!(
            r#"["1","{msg_ref}","host:pve1","{event}",{{"collected_at":"{collected_at}","data":{data}}}]"#
        )
    }

    fn status(f: &Fixture) -> (HostStatus, HostStatus) {
        let stored = f.ctx.store.host_by_id(f.host_id).unwrap().unwrap().status;
        let memory = f.ctx.hosts.get("pve1").unwrap().host.status;
        (stored, memory)
    }

    #[test]
    fn heartbeats_are_answered_without_a_join() {
        let f = fixture("ch-heartbeat");
        let (mut ch, _) = channel(&f, 1);
        assert_eq!(
            send(&mut ch, r#"[null,"7","phoenix","heartbeat",{}]"#),
            [r#"[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]"#]
        );
    }

    #[test]
    fn what_is_not_a_frame_gets_no_answer_and_is_counted() {
        let f = fixture("ch-garbage");
        let (mut ch, _) = channel(&f, 1);
        for bad in ["", "{}", "[1,2,3]", r#"[null,null,5,"e",{}]"#, "\u{0}"] {
            assert!(send(&mut ch, bad).is_empty(), "{bad:?}");
        }
        assert_eq!(f.ctx.stats.bad_frames.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn joins_are_refused_with_a_reason() {
        let f = fixture("ch-refused");
        let (mut ch, _) = channel(&f, 1);
        for (frame, reason) in [
            (
                r#"["1","1","host:pve1","phx_join",{"token":"wrong"}]"#,
                "invalid_token",
            ),
            (r#"["1","1","host:pve1","phx_join",{}]"#, "invalid_token"),
            (
                r#"["1","1","host:nobody","phx_join",{"token":"x"}]"#,
                "unknown_host",
            ),
            (
                r#"["1","1","host:bad name","phx_join",{"token":"x"}]"#,
                "bad_topic",
            ),
            (r#"["1","1","room:lobby","phx_join",{}]"#, "bad_topic"),
        ] {
            let replies = send(&mut ch, frame);
            assert_eq!(replies.len(), 1, "{frame}");
            assert!(
                replies[0].ends_with(&format!(
                    r#""phx_reply",{{"status":"error","response":{{"reason":"{reason}"}}}}]"#
                )),
                "{frame}: {replies:?}"
            );
        }
        assert_eq!(f.ctx.stats.joins_rejected.load(Ordering::Relaxed), 5);
        assert_eq!(
            status(&f),
            (HostStatus::NeverConnected, HostStatus::NeverConnected)
        );
        assert_eq!(ch.host_name(), None);
    }

    #[test]
    fn a_joined_host_is_online_and_its_pushes_are_stored_and_held_in_memory() {
        let f = fixture("ch-push");
        let (mut ch, _) = channel(&f, 1);
        join(&f, &mut ch);
        assert_eq!(ch.host_name(), Some("pve1"));
        assert_eq!(status(&f), (HostStatus::Online, HostStatus::Online));
        let state = f.ctx.hosts.get("pve1").unwrap();
        assert_eq!(state.host.agent_version.as_deref(), Some("0.9"));

        let data = r#"{"load1":0.25,"guests":[{"vmid":100,"status":"running"}]}"#;
        assert_eq!(
            send(
                &mut ch,
                &push("metric:fast", 2, "2026-11-25T12:00:00Z", data)
            ),
            [r#"["1","2","host:pve1","phx_reply",{"status":"ok","response":{}}]"#]
        );
        let state = f.ctx.hosts.get("pve1").unwrap();
        assert_eq!(state.fast().unwrap().load1, Some(0.25));
        assert_eq!(state.guest_counts().running, 1);
        let latest = f.ctx.store.all_latest().unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].data, data, "stored as sent");
        assert!(f
            .ctx
            .store
            .series_names(f.host_id)
            .unwrap()
            .contains(&"guest.100.running".to_owned()));
        assert_eq!(f.ctx.stats.samples_ingested.load(Ordering::Relaxed), 1);

        let slow = r#"{"pve_version":"8.2.4"}"#;
        send(
            &mut ch,
            &push("metric:slow", 3, "2026-11-25T12:00:00Z", slow),
        );
        assert_eq!(
            f.ctx.hosts.get("pve1").unwrap().proxmox_version(),
            Some("8.2.4")
        );
    }

    #[test]
    fn bad_pushes_are_answered_with_errors() {
        let f = fixture("ch-bad-push");
        let (mut ch, _) = channel(&f, 1);
        join(&f, &mut ch);
        let error = |msg_ref: u32, reason: &str| {
            format!(
                r#"["1","{msg_ref}","host:pve1","phx_reply",{{"status":"error","response":{{"reason":"{reason}"}}}}]"#
            )
        };
        assert_eq!(
            send(&mut ch, &push("metric:fast", 2, "yesterday", "{}")),
            [error(2, "bad_payload")]
        );
        assert_eq!(
            send(
                &mut ch,
                r#"["1","3","host:pve1","metric:fast",{"data":{}}]"#
            ),
            [error(3, "bad_payload")]
        );
        assert_eq!(
            send(&mut ch, r#"["1","4","host:pve1","metric:fast",[1]]"#),
            [error(4, "bad_payload")]
        );
        assert_eq!(
            send(&mut ch, r#"["1","5","host:pve1","metric:other",{}]"#),
            [error(5, "unknown_event")]
        );
        // Another shape of data is stored (kept as latest) but not in memory as a sample.
        assert_eq!(
            send(
                &mut ch,
                &push("metric:fast", 6, "2026-11-25T12:00:00Z", r#"{"load1":"x"}"#)
            ),
            [r#"["1","6","host:pve1","phx_reply",{"status":"ok","response":{}}]"#]
        );
        assert!(f.ctx.hosts.get("pve1").unwrap().fast.is_none());
        assert_eq!(f.ctx.store.all_latest().unwrap().len(), 1);
    }

    #[test]
    fn pushes_before_a_join_are_for_an_unmatched_topic() {
        let f = fixture("ch-unmatched");
        let (mut ch, _) = channel(&f, 1);
        assert_eq!(
            send(
                &mut ch,
                &push("metric:fast", 2, "2026-11-25T12:00:00Z", "{}")
            ),
            [
                r#"[null,"2","host:pve1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
            ]
        );
        assert!(f.ctx.store.all_latest().unwrap().is_empty());
    }

    #[test]
    fn leave_closes_the_channel_and_the_host_goes_offline() {
        let f = fixture("ch-leave");
        let (mut ch, _) = channel(&f, 1);
        join(&f, &mut ch);
        assert_eq!(
            send(&mut ch, r#"["1","9","host:pve1","phx_leave",{}]"#),
            [
                r#"["1","9","host:pve1","phx_reply",{"status":"ok","response":{}}]"#,
                r#"["1","1","host:pve1","phx_close",{}]"#
            ]
        );
        assert_eq!(status(&f), (HostStatus::Offline, HostStatus::Offline));
        assert_eq!(ch.host_name(), None);
    }

    #[test]
    fn tickets_let_a_rejoin_skip_bcrypt() {
        let f = fixture("ch-ticket");
        let (mut ch, _) = channel(&f, 1);
        let join = |ticket: &str| {
            format!(
                r#"["1","1","host:pve1","phx_join",{{"token":"{}","ticket":"{ticket}"}}]"#,
                f.token
            )
        };
        let replies = ch.handle_text(&join(""));
        let ticket = replies[0].payload["response"]["ticket"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(ticket.starts_with("1."), "{ticket}");
        let bcrypt_runs = f.ctx.auth.verifications();
        assert_eq!(bcrypt_runs, 1);
        // A new connection (the server forgot which tokens it verified: a new context would
        // too) presents the ticket with its token: no bcrypt.
        let (mut again, _) = channel(&f, 2);
        f.ctx.auth.forget_verified();
        let replies = again.handle_text(&join(&ticket));
        assert_eq!(replies[0].payload["status"], "ok");
        assert_eq!(f.ctx.auth.verifications(), bcrypt_runs);
        // A ticket with another token, a forged one, or one after rotate-token: bcrypt decides.
        let (mut third, _) = channel(&f, 3);
        let wrong =
            format!(r#"["1","1","host:pve1","phx_join",{{"token":"x","ticket":"{ticket}"}}]"#);
        let refused = third.handle_text(&wrong);
        assert_eq!(
            refused[0].payload["response"]["reason"], "invalid_token",
            "{refused:?}"
        );
        assert_eq!(f.ctx.auth.verifications(), bcrypt_runs + 1);
        // The last character changed (to one it is not: a fixed 'A' matched one ticket in 64).
        let last = if ticket.ends_with('A') { 'B' } else { 'A' };
        let forged = format!("{}{last}", &ticket[..ticket.len() - 1]);
        f.ctx.auth.forget_verified();
        assert_eq!(third.handle_text(&join(&forged))[0].payload["status"], "ok");
        assert_eq!(f.ctx.auth.verifications(), bcrypt_runs + 2);
        let new_token = crate::auth::generate_token().unwrap();
        let new_hash = crate::auth::hash_secret(&new_token, 4).unwrap();
        f.ctx.store.set_token_hash("pve1", &new_hash, 2).unwrap();
        f.ctx.auth.forget_verified();
        let replies = third.handle_text(&join(&ticket));
        assert_eq!(
            replies.last().unwrap().payload["response"]["reason"],
            "invalid_token"
        );
    }

    #[test]
    fn a_second_join_on_the_socket_closes_the_first() {
        let f = fixture("ch-rejoin");
        let (mut ch, _) = channel(&f, 1);
        join(&f, &mut ch);
        let frame = format!(
            r#"["5","5","host:pve1","phx_join",{{"token":"{}"}}]"#,
            f.token
        );
        assert_eq!(
            send(&mut ch, &frame),
            [
                r#"["1","1","host:pve1","phx_close",{}]"#,
                r#"["5","5","host:pve1","phx_reply",{"status":"ok","response":{"max_frame_bytes":1048576}}]"#
            ]
        );
        assert_eq!(status(&f), (HostStatus::Online, HostStatus::Online));
    }

    #[test]
    fn a_newer_connection_takes_the_host_over_and_the_old_one_does_not_mark_it_offline() {
        let f = fixture("ch-kick");
        let (mut old, old_kick) = channel(&f, 1);
        join(&f, &mut old);
        let (mut new, new_kick) = channel(&f, 2);
        join(&f, &mut new);
        assert!(old_kick.load(Ordering::SeqCst));
        assert!(!new_kick.load(Ordering::SeqCst));
        assert_eq!(
            old.kicked().iter().map(Frame::encode).collect::<Vec<_>>(),
            [r#"["1","1","host:pve1","phx_close",{}]"#]
        );
        old.end();
        drop(old);
        assert_eq!(status(&f), (HostStatus::Online, HostStatus::Online));
        assert_eq!(
            new.closing().iter().map(Frame::encode).collect::<Vec<_>>(),
            [r#"["1","1","host:pve1","phx_close",{}]"#]
        );
        drop(new);
        assert_eq!(status(&f), (HostStatus::Offline, HostStatus::Offline));
    }
}
