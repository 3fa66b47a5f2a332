//! The host channel: a state machine driven by incoming frames, producing the frames to send back.
//!
//! It knows nothing of sockets, so it is tested frame by frame. One socket carries at most one
//! host channel; a second join on the same socket replaces the first, as Phoenix does for a
//! duplicate join of the same topic.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::events::{self, reason, JoinParams, MetricKind, MetricPush};
use common::frame::channel_event;
use common::Frame;
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

    /// Handles one text frame; returns the frames to send, in order.
    pub fn handle_text(&mut self, text: &str) -> Vec<Frame> {
        match Frame::decode(text) {
            Ok(frame) => self.handle(frame),
            Err(e) => {
                Stats::add(&self.ctx.stats.bad_frames, 1);
                log::warn!("{}: dropped a frame: {e}", self.peer);
                Vec::new()
            }
        }
    }

    /// Handles one decoded frame.
    pub fn handle(&mut self, frame: Frame) -> Vec<Frame> {
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
        let push: MetricPush = match serde_json::from_value(frame.payload.clone()) {
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
        match ingest::ingest(
            self.ctx,
            joined.host_id,
            &joined.host_name,
            kind,
            collected_at,
            &push,
        ) {
            Ok(()) => vec![frame.reply_ok(json!({}))],
            Err(e) => {
                // Not acknowledged: the agent keeps the sample and sends it again later.
                log::error!("storing {} of {}: {e}", frame.event, joined.host_name);
                vec![frame.reply_error(reason::STORE_FAILED)]
            }
        }
    }

    fn join(&mut self, frame: Frame) -> Vec<Frame> {
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
        let params: Option<JoinParams> = serde_json::from_value(frame.payload.clone()).ok();
        let token = params.as_ref().map_or("", |p| p.token.as_str());
        let agent_version = params.as_ref().and_then(|p| p.agent_version.as_deref());
        let host_id = match self.ctx.auth.authenticate(&self.ctx.store, name, token) {
            Ok(Ok(id)) => id,
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
        let (kicked, marked) =
            self.ctx
                .registry
                .claim(host_id, self.conn_id, self.kick.clone(), || {
                    self.ctx.store.mark_online(host_id, agent_version, now)
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
        out.push(frame.reply_ok(json!({})));
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
            if let Err(e) = self.ctx.store.mark_offline(joined.host_id, now) {
                log::error!("marking {} offline: {e}", joined.host_name);
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
