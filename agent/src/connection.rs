//! One blocking WebSocket to the server (`ws://` or `wss://` via rustls) speaking Phoenix
//! Channels V2: join `host:<name>`, push, heartbeat, leave.
//!
//! Reads wake up every `TICK` so that the run loop can collect, heartbeat and notice shutdown
//! without threads.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::events::{self, JoinParams};
use common::Frame;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::error::{Error, Result};

/// How long one read waits before giving the run loop a turn.
pub const TICK: Duration = Duration::from_millis(200);
/// Connecting, the TLS and WebSocket handshakes and the join must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A server restarting under a reconnect storm answers joins late (bcrypt work queues up);
/// waiting beats giving up and joining the back of the queue again.
/// (1000 agents at bcrypt cost 12 take ~100 s to verify on 2 cores; see `make bench`.)
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// A server that does not take our bytes for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A plain or TLS TCP stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
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

/// What the server answered to a message we sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A `phx_reply` to the message with this ref.
    Reply {
        msg_ref: String,
        ok: bool,
        reason: Option<String>,
    },
    /// The server closed or crashed our channel; we must join again.
    ChannelClosed { event: String },
    /// Anything else (server pushes we do not use).
    Other,
}

pub struct Connection {
    socket: WebSocket<Stream>,
    topic: String,
    join_ref: String,
    next_ref: u64,
    url: String,
}

impl Connection {
    /// Opens the socket to `url` (TCP, TLS for `wss://`, WebSocket handshake).
    pub fn open(url: &str, tls: &Arc<rustls::ClientConfig>, host: &str) -> Result<Connection> {
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
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let addrs: Vec<_> = (hostname.trim_matches(|c| c == '[' || c == ']'), port)
            .to_socket_addrs()
            .map_err(|e| fail("cannot resolve", &e))?
            .collect();
        let mut last_error = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let tcp = match (tcp, last_error) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(fail("cannot connect to", &e)),
            (None, None) => return Err(fail("no address for", &hostname)),
        };
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
            .map_err(|e| fail("socket setup for", &e))?;
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|e| fail("socket setup for", &e))?;
        let _ = tcp.set_nodelay(true);
        let stream = if secure {
            let name =
                ServerName::try_from(hostname.trim_matches(|c| c == '[' || c == ']').to_owned())
                    .map_err(|e| fail("bad TLS server name in", &e))?;
            let tls_conn = rustls::ClientConnection::new(tls.clone(), name)
                .map_err(|e| fail("TLS setup for", &e))?;
            let mut tls_stream = rustls::StreamOwned::new(tls_conn, tcp);
            // Drive the handshake now so a certificate problem is reported as such.
            while tls_stream.conn.is_handshaking() {
                tls_stream
                    .conn
                    .complete_io(&mut tls_stream.sock)
                    .map_err(|e| fail("TLS handshake with", &e))?;
            }
            Stream::Tls(Box::new(tls_stream))
        } else {
            Stream::Plain(tcp)
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let (socket, _response) =
            tungstenite::client::client_with_config(request, stream, Some(config))
                .map_err(|e| fail("WebSocket handshake with", &e))?;
        socket
            .get_ref()
            .tcp()
            .set_read_timeout(Some(TICK))
            .map_err(|e| fail("socket setup for", &e))?;
        Ok(Connection {
            socket,
            topic: events::host_topic(host),
            join_ref: String::new(),
            next_ref: 0,
            url: url.to_owned(),
        })
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends the join of `host:<name>`; returns its ref. The reply arrives through `poll` as
    /// an `Incoming::Reply` with that ref (the run loop keeps collecting while it waits).
    pub fn send_join(&mut self, token: &str, agent_version: &str) -> Result<String> {
        let join_ref = self.next_ref();
        self.join_ref.clone_from(&join_ref);
        let params = JoinParams {
            token: token.to_owned(),
            agent_version: Some(agent_version.to_owned()),
        };
        let payload = serde_json::to_value(params).unwrap_or(Value::Null);
        let frame = Frame::new(
            Some(&join_ref),
            Some(&join_ref),
            &self.topic,
            events::PHX_JOIN,
            payload,
        );
        self.send_frame(&frame)?;
        Ok(join_ref)
    }

    /// Pushes `event` with a payload given as JSON text; returns the message ref to match the
    /// reply against.
    pub fn push(&mut self, event: &str, payload_json: &str) -> Result<String> {
        let msg_ref = self.next_ref();
        let text = Frame::encode_raw(
            Some(&self.join_ref),
            Some(&msg_ref),
            &self.topic,
            event,
            payload_json,
        )
        .map_err(|e| Error::Parse {
            path: std::path::PathBuf::from("spool"),
            message: format!("corrupt {event} payload: {e}"),
        })?;
        self.socket
            .send(Message::text(text))
            .map_err(|e| Error::Connection(format!("sending to {}: {e}", self.url)))?;
        Ok(msg_ref)
    }

    /// Sends a heartbeat; returns its ref.
    pub fn heartbeat(&mut self) -> Result<String> {
        let msg_ref = self.next_ref();
        let frame = Frame::heartbeat(&msg_ref);
        self.send_frame(&frame)?;
        Ok(msg_ref)
    }

    fn send_frame(&mut self, frame: &Frame) -> Result<()> {
        self.socket
            .send(Message::text(frame.encode()))
            .map_err(|e| Error::Connection(format!("sending to {}: {e}", self.url)))
    }

    /// Waits up to `TICK` for one message from the server.
    pub fn poll(&mut self) -> Result<Option<Incoming>> {
        match self.socket.read() {
            Ok(Message::Text(text)) => Ok(Some(self.classify(text.as_str()))),
            Ok(Message::Close(frame)) => Err(Error::Connection(format!(
                "server closed the connection{}",
                frame.map(|f| format!(": {}", f.reason)).unwrap_or_default()
            ))),
            Ok(_) => Ok(Some(Incoming::Other)),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Connection(format!(
                "connection to {}: {e}",
                self.url
            ))),
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
            let reason = response
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let ok = status == "ok";
            return Incoming::Reply {
                msg_ref: frame.msg_ref.clone().unwrap_or_default(),
                ok,
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

    /// Leaves the channel and closes the socket, waiting at most `grace` for the server.
    pub fn close(mut self, grace: Duration) {
        let msg_ref = self.next_ref();
        let join_ref = self.join_ref.clone();
        let leave = Frame::new(
            Some(&join_ref),
            Some(&msg_ref),
            &self.topic,
            events::PHX_LEAVE,
            json!({}),
        );
        if self.send_frame(&leave).is_ok() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                match self.poll() {
                    Ok(Some(Incoming::Reply { msg_ref: r, .. })) if r == msg_ref => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }
        let _ = self.socket.close(None);
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            match self.socket.read() {
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
