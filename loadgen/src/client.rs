//! A minimal blocking Phoenix Channels V2 client: connect, join `host:NAME`, push pre-built
//! payloads and wait for their replies, heartbeat, leave.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use common::events::{self, MetricKind};
use common::Frame;
use serde_json::json;
use tungstenite::{Message, WebSocket};

use crate::error::{Error, Result};

pub struct Client {
    socket: WebSocket<TcpStream>,
    topic: String,
    join_ref: String,
    next_ref: u64,
    /// The resumption ticket of the last ok join reply, if the server gave one.
    pub ticket: Option<String>,
}

/// What waiting for a reply gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Error(String),
}

impl Client {
    /// Connects to `url` (`ws://HOST:PORT/socket/websocket`; `?vsn=2.0.0` is added) and sets
    /// `timeout` on connect, reads and writes.
    pub fn connect(url: &str, timeout: Duration) -> Result<Client> {
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| Error::Setup(format!("{url}: only ws:// URLs are supported")))?;
        let addr = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| Error::Setup(format!("{authority}: cannot resolve")))?;
        let fail = |e: &dyn std::fmt::Display| Error::Connection(format!("{addr}: {e}"));
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(&e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| fail(&e))?;
        let full = format!("{url}?vsn={}", events::PROTOCOL_VSN);
        let (socket, _) = tungstenite::client(full.as_str(), stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => fail(&e),
            tungstenite::HandshakeError::Interrupted(_) => fail(&"handshake timed out"),
        })?;
        Ok(Client {
            socket,
            topic: String::new(),
            join_ref: String::new(),
            next_ref: 0,
            ticket: None,
        })
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Joins `host:NAME` with `token` and waits for the answer.
    pub fn join(&mut self, name: &str, token: &str) -> Result<Reply> {
        self.join_with_ticket(name, token, None)
    }

    /// Joins presenting `ticket` (from an earlier join's reply) with the token.
    pub fn join_with_ticket(
        &mut self,
        name: &str,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<Reply> {
        let join_ref = self.next_ref();
        self.topic = events::host_topic(name);
        self.join_ref.clone_from(&join_ref);
        let frame = Frame::new(
            Some(&join_ref),
            Some(&join_ref),
            &self.topic,
            events::PHX_JOIN,
            match ticket {
                Some(ticket) => {
                    json!({"token": token, "agent_version": "loadgen", "ticket": ticket})
                }
                None => json!({"token": token, "agent_version": "loadgen"}),
            },
        );
        self.send_text(frame.encode())?;
        self.wait_reply(&join_ref)
    }

    /// Pushes a fast sample whose `data` is the JSON text `data`; returns the message ref.
    /// The frame is assembled as text: host names and RFC 3339 times need no escaping, and
    /// re-serializing a 10 KiB sample per push would cost the machine we are measuring.
    pub fn push_fast(&mut self, collected_at: i64, data: &str) -> Result<String> {
        self.push(MetricKind::Fast, collected_at, data)
    }

    /// Pushes a sample of `kind` whose `data` is the JSON text `data`; returns the message ref.
    pub fn push(&mut self, kind: MetricKind, collected_at: i64, data: &str) -> Result<String> {
        let msg_ref = self.next_ref();
        let at = common::time::format_rfc3339(common::time::from_unix_seconds(collected_at));
        let text = format!(
            r#"["{}","{msg_ref}","{}","{}",{{"collected_at":"{at}","data":{data}}}]"#,
            self.join_ref,
            self.topic,
            kind.event()
        );
        self.send_text(text)?;
        Ok(msg_ref)
    }

    /// Sends a heartbeat; its reply is skipped by `wait_reply`.
    pub fn heartbeat(&mut self) -> Result<()> {
        let msg_ref = self.next_ref();
        let frame = Frame::heartbeat(&msg_ref);
        self.send_text(frame.encode())
    }

    /// Reads until the reply to `msg_ref`; other frames are skipped.
    pub fn wait_reply(&mut self, msg_ref: &str) -> Result<Reply> {
        loop {
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) => {
                    return Err(Error::Connection("the server closed the socket".into()))
                }
                Ok(_) => continue,
                Err(e) => return Err(Error::Connection(e.to_string())),
            };
            let Ok(frame) = Frame::decode(text.as_str()) else {
                continue;
            };
            if frame.event == events::PHX_CLOSE || frame.event == events::PHX_ERROR {
                return Err(Error::Connection(format!("server sent {}", frame.event)));
            }
            if frame.msg_ref.as_deref() != Some(msg_ref) {
                continue;
            }
            return Ok(match frame.as_reply() {
                Some(("ok", response)) => {
                    if let Some(ticket) = response.get("ticket").and_then(|t| t.as_str()) {
                        self.ticket = Some(ticket.to_owned());
                    }
                    Reply::Ok
                }
                _ => Reply::Error(frame.error_reason().unwrap_or("error").to_owned()),
            });
        }
    }

    /// Waits for anything from the server; `Ok(false)` on a read timeout, an error when the
    /// connection ended.
    pub fn idle(&mut self) -> Result<bool> {
        match self.socket.read() {
            Ok(Message::Close(_)) => Err(Error::Connection("closed".into())),
            Ok(Message::Text(text)) => match Frame::decode(text.as_str()) {
                Ok(f) if f.event == events::PHX_CLOSE || f.event == events::PHX_ERROR => {
                    Err(Error::Connection(format!("server sent {}", f.event)))
                }
                _ => Ok(true),
            },
            Ok(_) => Ok(true),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::Connection(e.to_string())),
        }
    }

    /// Changes the read timeout (for idling with a short tick).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        let _ = self.socket.get_ref().set_read_timeout(Some(timeout));
    }

    /// Closes politely without waiting long for the server's answer.
    pub fn close(mut self) {
        let _ = self
            .socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)));
        let _ = self.socket.close(None);
        for _ in 0..4 {
            if self.socket.read().is_err() {
                break;
            }
        }
    }

    fn send_text(&mut self, text: String) -> Result<()> {
        self.socket
            .send(Message::text(text))
            .map_err(|e| Error::Connection(e.to_string()))
    }
}
