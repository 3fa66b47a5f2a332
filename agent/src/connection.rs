//! One WebSocket to the server (`ws://`, or `wss://` through rustls) speaking Phoenix Channels
//! V2: join `host:<name>`, push, heartbeat, leave.
//!
//! Nothing here blocks. `Opening` is a connection being opened (TCP connect, TLS handshake,
//! WebSocket handshake), resumed each time its socket is ready; `Connection` is an open one whose
//! reads return `None` when nothing has arrived and whose writes queue what the socket does not
//! take yet. Both say which readiness they wait for (`interest`), and the run loop polls that
//! socket together with the stop signal and its next deadline — so a silent or black-holed server
//! never holds the agent, and a stop is seen at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use common::events::{self, JoinParams};
use common::Frame;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{ClientHandshake, Request};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::error::{Error, Result};
use crate::link::Ref;
use crate::wake::Interest;

const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
const READ_BUFFER_BYTES: usize = 4096;

/// A non-blocking TCP stream that remembers which way it last would have blocked, so that the
/// run loop knows what to wait for after a handshake step returned `WouldBlock`.
pub struct Tcp {
    stream: TcpStream,
    blocked: Interest,
}

impl Tcp {
    fn note<T>(&mut self, result: std::io::Result<T>, way: Interest) -> std::io::Result<T> {
        if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            self.blocked = way;
        }
        result
    }
}

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let result = self.stream.read(buf);
        self.note(result, Interest::Read)
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.stream.write(buf);
        self.note(result, Interest::Write)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A plain or TLS TCP stream.
pub enum Stream {
    Plain(Tcp),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Tcp>>),
}

impl Stream {
    fn tcp(&self) -> &Tcp {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The TLS settings for `wss://`: Mozilla's roots (webpki-roots) plus the PEM certificates in
/// `ca_file`, for a server with a private CA.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let bad = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("ca_file: cannot read PEM certificates: {e}")))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("ca_file: bad PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(bad("ca_file: no certificates in the file".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("ca_file: unusable certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Connection(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection being opened: resume it with `advance` when its socket is ready for `interest`.
pub struct Opening {
    url: String,
    topic: String,
    step: Step,
}

/// Where the opening is.
enum Step {
    /// TCP connect in progress to `addr`; the `rest` are tried in turn if it fails.
    Tcp {
        socket: Socket,
        addr: SocketAddr,
        rest: Vec<SocketAddr>,
        then: Then,
    },
    /// TLS handshake in progress.
    Tls {
        stream: Box<rustls::StreamOwned<rustls::ClientConnection, Tcp>>,
        request: Box<Request>,
    },
    /// WebSocket handshake in progress.
    WebSocket(Box<MidHandshake<ClientHandshake<Stream>>>),
    /// Failed (or already open); advancing further is an error.
    Done,
}

/// What follows the TCP connect.
struct Then {
    request: Box<Request>,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// One step's outcome.
enum Progress {
    /// Go on at once with this step.
    Next(Step),
    /// Wait for the socket, then go on with this step.
    Wait(Step),
    Open(Box<Connection>),
}

impl Opening {
    /// Starts opening a connection to `url` for `host`: checks the URL, resolves the name (the
    /// one step that may block, in the system's resolver) and starts the TCP connect.
    pub fn start(url: &str, tls: &Arc<rustls::ClientConfig>, host: &str) -> Result<Opening> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| Error::Connection(format!("{what} {url}: {e}"));
        let request = url
            .into_client_request()
            .map_err(|e| fail("bad server_url", &e))?;
        let uri = request.uri().clone();
        let secure = uri.scheme_str() == Some("wss");
        let hostname = uri
            .host()
            .ok_or_else(|| fail("no host in", &"server_url"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let mut addrs: Vec<SocketAddr> = (hostname.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| fail("cannot resolve", &e))?
            .collect();
        if addrs.is_empty() {
            return Err(fail("no address for", &hostname));
        }
        let tls = if secure {
            let name =
                ServerName::try_from(hostname).map_err(|e| fail("bad TLS server name in", &e))?;
            Some((tls.clone(), name))
        } else {
            None
        };
        let opening = Opening {
            url: url.to_owned(),
            topic: events::host_topic(host),
            step: Step::Done,
        };
        let first = addrs.remove(0);
        let then = Then {
            request: Box::new(request),
            tls,
        };
        let step = match opening.connect(first, addrs, then)? {
            Progress::Next(step) | Progress::Wait(step) => step,
            Progress::Open(_) => Step::Done,
        };
        Ok(Opening { step, ..opening })
    }

    /// The socket and what it must be ready for before `advance` can make progress.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        match &self.step {
            Step::Tcp { socket, .. } => Some((socket.as_fd(), Interest::Write)),
            Step::Tls { stream, .. } => Some((stream.sock.stream.as_fd(), stream.sock.blocked)),
            Step::WebSocket(mid) => {
                let tcp = mid.get_ref().get_ref().tcp();
                Some((tcp.stream.as_fd(), tcp.blocked))
            }
            Step::Done => None,
        }
    }

    /// Takes the opening as far as the socket allows: `Some` once the WebSocket is open, `None`
    /// when it must wait for the socket again.
    pub fn advance(&mut self) -> Result<Option<Connection>> {
        loop {
            let step = std::mem::replace(&mut self.step, Step::Done);
            match self.step(step)? {
                Progress::Next(step) => self.step = step,
                Progress::Wait(step) => {
                    self.step = step;
                    return Ok(None);
                }
                Progress::Open(connection) => return Ok(Some(*connection)),
            }
        }
    }

    fn step(&self, step: Step) -> Result<Progress> {
        match step {
            Step::Tcp {
                socket,
                addr,
                mut rest,
                then,
            } => match connect_result(&socket) {
                Ok(false) => Ok(Progress::Wait(Step::Tcp {
                    socket,
                    addr,
                    rest,
                    then,
                })),
                Ok(true) => self.connected(socket, then),
                Err(e) if !rest.is_empty() => {
                    log::debug!("cannot connect to {addr}: {e}; trying the next address");
                    let next = rest.remove(0);
                    self.connect(next, rest, then)
                }
                Err(e) => Err(self.fail("cannot connect to", &e)),
            },
            Step::Tls {
                mut stream,
                request,
            } => {
                while stream.conn.is_handshaking() {
                    match stream.conn.complete_io(&mut stream.sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            return Ok(Progress::Wait(Step::Tls { stream, request }));
                        }
                        Err(e) => return Err(self.fail("TLS handshake with", &e)),
                    }
                }
                self.websocket(tungstenite::client::client_with_config(
                    *request,
                    Stream::Tls(stream),
                    Some(ws_config()),
                ))
            }
            Step::WebSocket(mid) => self.websocket(mid.handshake()),
            Step::Done => Err(self.fail("lost connection to", &"opening abandoned")),
        }
    }

    /// Starts a non-blocking TCP connect to `addr`.
    fn connect(&self, addr: SocketAddr, rest: Vec<SocketAddr>, then: Then) -> Result<Progress> {
        let setup = |e: std::io::Error| self.fail("cannot connect to", &e);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(setup)?;
        socket.set_nonblocking(true).map_err(setup)?;
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if !rest.is_empty() => {
                log::debug!("cannot connect to {addr}: {e}; trying the next address");
                let mut rest = rest;
                let next = rest.remove(0);
                return self.connect(next, rest, then);
            }
            Err(e) => return Err(setup(e)),
        }
        Ok(Progress::Wait(Step::Tcp {
            socket,
            addr,
            rest,
            then,
        }))
    }

    /// The TCP connect succeeded: TLS next for `wss://`, else the WebSocket handshake.
    fn connected(&self, socket: Socket, then: Then) -> Result<Progress> {
        let stream = TcpStream::from(socket);
        let _ = stream.set_nodelay(true);
        let tcp = Tcp {
            stream,
            blocked: Interest::Read,
        };
        match then.tls {
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config, name)
                    .map_err(|e| self.fail("TLS setup for", &e))?;
                Ok(Progress::Next(Step::Tls {
                    stream: Box::new(rustls::StreamOwned::new(conn, tcp)),
                    request: then.request,
                }))
            }
            None => self.websocket(tungstenite::client::client_with_config(
                *then.request,
                Stream::Plain(tcp),
                Some(ws_config()),
            )),
        }
    }

    fn websocket(
        &self,
        result: std::result::Result<
            (WebSocket<Stream>, tungstenite::handshake::client::Response),
            HandshakeError<ClientHandshake<Stream>>,
        >,
    ) -> Result<Progress> {
        match result {
            Ok((socket, _response)) => Ok(Progress::Open(Box::new(Connection {
                socket,
                topic: self.topic.clone(),
                join_ref: String::new(),
                url: self.url.clone(),
                unflushed: false,
                max_frame_bytes: MAX_MESSAGE_BYTES,
                ticket: None,
            }))),
            Err(HandshakeError::Interrupted(mid)) => {
                Ok(Progress::Wait(Step::WebSocket(Box::new(mid))))
            }
            Err(HandshakeError::Failure(e)) => Err(self.fail("WebSocket handshake with", &e)),
        }
    }

    fn fail(&self, what: &str, e: &dyn std::fmt::Display) -> Error {
        Error::Connection(format!("{what} {}: {e}", self.url))
    }
}

/// Whether a non-blocking connect has finished: `Ok(false)` while it is still in progress.
fn connect_result(socket: &Socket) -> std::io::Result<bool> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        // The server only sends short replies; tungstenite zero-fills the whole read buffer
        // before every read, and its 128 KiB default was a visible share of the agent's CPU.
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// What the server sent us.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A `phx_reply` to our message with this ref.
    Reply {
        msg_ref: Ref,
        ok: bool,
        reason: Option<String>,
    },
    /// The server closed or crashed our channel; we must join again.
    ChannelClosed { event: String },
    /// Anything else (server pushes we do not use, pings, replies that are not ours).
    Other,
}

/// An open WebSocket.
pub struct Connection {
    socket: WebSocket<Stream>,
    topic: String,
    join_ref: String,
    url: String,
    /// A write did not go out completely: wait for the socket to take more, then `flush`.
    unflushed: bool,
    /// The largest message the server reads (its join reply says; until then its default).
    max_frame_bytes: usize,
    /// The resumption ticket of the join reply: presented at the next join, it spares the
    /// server a bcrypt verification (a restarted server's reconnect storm).
    ticket: Option<String>,
}

impl Connection {
    /// The socket and what the run loop should wait for: replies, and room to write when a
    /// write is unfinished.
    pub fn interest(&self) -> (BorrowedFd<'_>, Interest) {
        let interest = if self.unflushed {
            Interest::ReadWrite
        } else {
            Interest::Read
        };
        (self.socket.get_ref().tcp().stream.as_fd(), interest)
    }

    /// Sends the join of `host:<name>` with ref `join_ref`. The reply comes through `read`.
    pub fn join(
        &mut self,
        join_ref: Ref,
        token: &str,
        agent_version: &str,
        ticket: Option<&str>,
    ) -> Result<()> {
        self.join_ref = join_ref.to_string();
        let params = JoinParams {
            token: token.to_owned(),
            agent_version: Some(agent_version.to_owned()),
            ticket: ticket.map(str::to_owned),
        };
        let payload = serde_json::to_value(params).unwrap_or(Value::Null);
        let frame = Frame::new(
            Some(&self.join_ref),
            Some(&self.join_ref),
            &self.topic,
            events::PHX_JOIN,
            payload,
        );
        self.send(frame.encode())
    }

    /// Pushes `event` with a payload given as JSON text, ref `msg_ref`. Fails with
    /// `Error::Parse` if the payload is not JSON (sending it again would never work).
    pub fn push(&mut self, msg_ref: Ref, event: &str, payload_json: &str) -> Result<()> {
        let text = Frame::encode_raw(
            Some(&self.join_ref),
            Some(&msg_ref.to_string()),
            &self.topic,
            event,
            payload_json,
        )
        .map_err(|e| Error::Parse {
            path: std::path::PathBuf::from("spool"),
            message: format!("corrupt {event} payload: {e}"),
        })?;
        if text.len() > self.max_frame_bytes {
            // The server would close the connection, and the sample would come first again.
            return Err(Error::TooLarge {
                bytes: text.len(),
                limit: self.max_frame_bytes,
            });
        }
        self.send(text)
    }

    /// Sends a heartbeat with ref `msg_ref`.
    pub fn heartbeat(&mut self, msg_ref: Ref) -> Result<()> {
        self.send(Frame::heartbeat(&msg_ref.to_string()).encode())
    }

    /// Leaves our channel with ref `msg_ref`.
    pub fn leave(&mut self, msg_ref: Ref) -> Result<()> {
        let leave = Frame::new(
            Some(&self.join_ref),
            Some(&msg_ref.to_string()),
            &self.topic,
            events::PHX_LEAVE,
            json!({}),
        );
        self.send(leave.encode())
    }

    /// Starts the WebSocket closing handshake; the server's answer ends the connection (`read`
    /// fails).
    pub fn close(&mut self) -> Result<()> {
        let result = self.socket.close(None);
        self.written(result)
    }

    /// Writes out what an earlier write left queued, if anything.
    pub fn flush_if_unflushed(&mut self) -> Result<()> {
        if !self.unflushed {
            return Ok(());
        }
        let result = self.socket.flush();
        self.written(result)
    }

    fn send(&mut self, text: String) -> Result<()> {
        let result = self.socket.send(Message::text(text));
        self.written(result)
    }

    /// A write's outcome: a full socket buffer only means the rest goes out later.
    fn written(&mut self, result: tungstenite::Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                self.unflushed = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.unflushed = true;
                Ok(())
            }
            Err(e) => Err(Error::Connection(format!("sending to {}: {e}", self.url))),
        }
    }

    /// The next message from the server, `None` if nothing (complete) has arrived. An error
    /// means the connection is over.
    pub fn read(&mut self) -> Result<Option<Incoming>> {
        match self.socket.read() {
            Ok(Message::Text(text)) => {
                let incoming = self.classify(text.as_str());
                if let Incoming::Reply {
                    msg_ref, ok: true, ..
                } = &incoming
                {
                    if msg_ref.to_string() == self.join_ref {
                        self.learn_limit(text.as_str());
                    }
                }
                Ok(Some(incoming))
            }
            Ok(Message::Close(frame)) => Err(Error::Connection(format!(
                "server closed the connection{}",
                frame.map(|f| format!(": {}", f.reason)).unwrap_or_default()
            ))),
            Ok(_) => Ok(Some(Incoming::Other)),
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => Err(
                Error::Connection(format!("connection to {} closed", self.url)),
            ),
            Err(e) => Err(Error::Connection(format!(
                "connection to {}: {e}",
                self.url
            ))),
        }
    }

    /// The resumption ticket the server gave with our join, if any.
    pub fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref()
    }

    /// The join reply says how large a message the server reads, and gives a ticket.
    fn learn_limit(&mut self, text: &str) {
        let Ok(frame) = Frame::decode(text) else {
            return;
        };
        if frame.msg_ref.as_deref() != Some(self.join_ref.as_str()) {
            return;
        }
        if let Some(("ok", response)) = frame.as_reply() {
            self.ticket = response
                .get("ticket")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(limit) = response.get("max_frame_bytes").and_then(Value::as_u64) {
                // Never below what a join needs, never above what we read ourselves.
                self.max_frame_bytes = usize::try_from(limit)
                    .unwrap_or(usize::MAX)
                    .clamp(1024, MAX_MESSAGE_BYTES * 64);
            }
        }
    }

    fn classify(&self, text: &str) -> Incoming {
        let Ok(frame) = Frame::decode(text) else {
            log::warn!("ignoring a malformed frame from the server: {text:.200}");
            return Incoming::Other;
        };
        // Messages for an older join of ours are stale (Phoenix clients drop them too).
        if frame
            .join_ref
            .as_deref()
            .is_some_and(|r| r != self.join_ref)
        {
            return Incoming::Other;
        }
        if let Some((status, response)) = frame.as_reply() {
            let Some(msg_ref) = frame.msg_ref.as_deref().and_then(|r| r.parse().ok()) else {
                return Incoming::Other;
            };
            // A refusal's `message` (what was wrong, in words) rides along for the log:
            // "clock_skew: collected_at ... is 3600 s ahead"; the link matches on the code.
            let reason =
                response.get("reason").and_then(Value::as_str).map(|code| {
                    match response.get("message").and_then(Value::as_str) {
                        Some(message) => format!("{code}: {message}"),
                        None => code.to_owned(),
                    }
                });
            return Incoming::Reply {
                msg_ref,
                ok: status == "ok",
                reason,
            };
        }
        if frame.topic == self.topic
            && (frame.event == events::PHX_CLOSE || frame.event == events::PHX_ERROR)
        {
            return Incoming::ChannelClosed { event: frame.event };
        }
        Incoming::Other
    }
}
