//! The agent socket: the WebSocket upgrade of `/socket/websocket?vsn=2.0.0` and the read loop
//! of one connection, feeding text frames to its `Channel`.
//!
//! The read loop blocks until a frame arrives or the idle timeout is due — nothing else wakes it.
//! A kick (a newer connection of the same host joined) or a shutdown wakes it through `Sockets`:
//! the read half of its socket is shut down, so the blocked read returns at once, and the loop
//! still writes its goodbye (`phx_close`, then the WebSocket close) on the write half. Over
//! TLS the same holds: rustls sees the end of its input, and its writes still go out.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::events;
use common::Frame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::channel::Channel;
use crate::context::Context;
use crate::http::{is_timeout, HttpConn, Request, Response};
use crate::tls::Stream;

/// The largest WebSocket message read before the socket's channel has joined: a join (or a
/// heartbeat) is a few hundred bytes.
pub const PRE_JOIN_FRAME_BYTES: usize = 8 * 1024;

/// The open agent sockets, so that a kick or a shutdown can wake a connection thread that is
/// blocked reading (for up to the idle timeout).
#[derive(Default)]
pub struct Sockets {
    open: Mutex<HashMap<u64, Waker>>,
}

struct Waker {
    kick: Arc<AtomicBool>,
    woken: Arc<AtomicBool>,
    /// A second handle of the connection's socket.
    stream: TcpStream,
}

impl Waker {
    fn wake(&self) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            // Ends a blocked read (it returns end-of-file, which `Wakeable` reports as a wake-up);
            // the write half stays open for the goodbye frames.
            let _ = self.stream.shutdown(Shutdown::Read);
        }
    }
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the connections whose kick flag is set.
    pub fn wake_kicked(&self) {
        for waker in self.lock().values() {
            if waker.kick.load(Ordering::SeqCst) {
                waker.wake();
            }
        }
    }

    /// Wakes every connection (the server is shutting down).
    pub fn wake_all(&self) {
        for waker in self.lock().values() {
            waker.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a connection from `Sockets` when it ends.
struct Registration<'a> {
    sockets: &'a Sockets,
    conn_id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.sockets.lock().remove(&self.conn_id);
    }
}

/// The connection's stream as the WebSocket reads it: the end of input that a wake-up causes
/// (end-of-file on plain TCP; over TLS, rustls's error for a close without close_notify) is
/// reported as `WouldBlock`, like a read timeout, so the WebSocket stays usable for writing.
/// A wake-up only follows a kick or shutdown, which the read loop checks next.
struct Wakeable {
    stream: Stream,
    woken: Arc<AtomicBool>,
}

impl Read for Wakeable {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.stream.read(buf);
        match read {
            Ok(0) | Err(_) if !buf.is_empty() && self.woken.load(Ordering::SeqCst) => {
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            other => other,
        }
    }
}

impl Write for Wakeable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Whether the request asks for the agent socket.
pub fn is_upgrade(request: &Request) -> bool {
    request.path == events::SOCKET_PATH || request.header_has_token("upgrade", "websocket")
}

/// Checks the upgrade request; the error response to send when it is not acceptable.
fn check_upgrade(request: &Request) -> Result<String, Response> {
    if request.path != events::SOCKET_PATH {
        return Err(Response::text(404, "not found\n"));
    }
    if request.method != "GET"
        || !request.header_has_token("upgrade", "websocket")
        || !request.header_has_token("connection", "upgrade")
    {
        return Err(Response::text(426, "this is a WebSocket endpoint\n")
            .with_header("Upgrade", "websocket"));
    }
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Response::text(400, "Sec-WebSocket-Version must be 13\n"));
    }
    let Some(key) = request.header("sec-websocket-key") else {
        return Err(Response::text(400, "missing Sec-WebSocket-Key\n"));
    };
    // Phoenix refuses serializer versions it does not speak with 403 before the upgrade.
    if request.query_param("vsn") != Some(events::PROTOCOL_VSN) {
        return Err(Response::text(
            403,
            format!(
                "unsupported protocol: connect with ?vsn={}\n",
                events::PROTOCOL_VSN
            ),
        ));
    }
    Ok(tungstenite::handshake::derive_accept_key(
        key.trim().as_bytes(),
    ))
}

/// Completes the upgrade and runs the connection until it ends.
pub fn serve_socket(
    ctx: &Context,
    mut conn: HttpConn,
    request: &Request,
    conn_id: u64,
    peer: &str,
) {
    let accept = match check_upgrade(request) {
        Ok(accept) => accept,
        Err(response) => {
            log::info!(
                "{peer}: refused socket upgrade: {} {}",
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            );
            let _ = conn.write_response(&response, false, true);
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if conn
        .stream
        .write_all(head.as_bytes())
        .and_then(|()| conn.stream.flush())
        .is_err()
    {
        return;
    }
    // Until a join succeeds only small frames are read: nobody unauthenticated can make the
    // server buffer a megabyte per connection. `run` raises the limit after the join.
    let max = PRE_JOIN_FRAME_BYTES.min(ctx.config.max_frame_bytes);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let leftover = std::mem::take(&mut conn.buf);
    let woken = Arc::new(AtomicBool::new(false));
    let kick = Arc::new(AtomicBool::new(false));
    // The listener's handle of this socket moves here (one descriptor per connection for its
    // waker, not two); without one, a second handle is made.
    let handle = ctx
        .connections
        .take(conn_id)
        .map_or_else(|| conn.stream.tcp().try_clone(), Ok);
    let _registration = match handle {
        Ok(stream) => {
            ctx.sockets.lock().insert(
                conn_id,
                Waker {
                    kick: kick.clone(),
                    woken: woken.clone(),
                    stream,
                },
            );
            Registration {
                sockets: &ctx.sockets,
                conn_id,
            }
        }
        Err(e) => {
            log::warn!("{peer}: cannot serve the agent socket: {e}");
            return;
        }
    };
    let stream = Wakeable {
        stream: conn.stream,
        woken,
    };
    let socket = WebSocket::from_partially_read(stream, leftover, Role::Server, Some(config));
    run(ctx, socket, kick, conn_id, peer);
}

fn run(
    ctx: &Context,
    mut socket: WebSocket<Wakeable>,
    kick: Arc<AtomicBool>,
    conn_id: u64,
    peer: &str,
) {
    let mut channel = Channel::new(ctx, conn_id, kick.clone(), peer.to_owned());
    let mut full_frames = false;
    let mut last_heard = Instant::now();
    // Replies that a full send buffer held back; they are pushed on at every wake-up.
    let mut unflushed = false;
    let end = loop {
        if ctx.shutting_down() {
            let frames = channel.closing();
            send_all(&mut socket, &frames);
            break Some((CloseCode::Away, "server shutting down"));
        }
        if kick.load(Ordering::SeqCst) {
            // Kicked by a newer connection of the host (which owns it now), or by the
            // dashboard rotating its token or removing it (then nobody owns it).
            let replaced = channel
                .host_id()
                .is_some_and(|id| ctx.registry.is_connected(id));
            let frames = channel.kicked();
            send_all(&mut socket, &frames);
            break Some((
                CloseCode::Policy,
                if replaced {
                    "replaced by a newer connection of this host"
                } else {
                    "the host's token was rotated or the host removed"
                },
            ));
        }
        let idle_left = ctx.config.idle_timeout.saturating_sub(last_heard.elapsed());
        if idle_left.is_zero() {
            log::info!(
                "{peer}: nothing received for {} s; closing ({})",
                ctx.config.idle_timeout.as_secs(),
                channel.host_name().unwrap_or("not joined")
            );
            break Some((CloseCode::Away, "idle timeout"));
        }
        if unflushed {
            // Replies wait behind a full send buffer (a send blocked for the write timeout:
            // the agent is not reading). Block until it reads (the socket turns writable),
            // sends (readable), or the idle timeout is due; a kick or shutdown reads as
            // readable (the read half is shut down). Never both blocked writing to each other.
            match wait_for_socket(socket.get_ref().stream.tcp(), idle_left) {
                Ready::Writable => {
                    match socket.flush() {
                        Ok(()) => unflushed = false,
                        Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                        Err(_) => break None,
                    }
                    continue;
                }
                Ready::Readable => {}
                Ready::Failed(e) => {
                    log::info!("{peer}: connection ended: {e}");
                    break None;
                }
            }
        }
        // Block until a frame arrives or the idle timeout is due; kicks and shutdown wake us.
        let idle_left = ctx.config.idle_timeout.saturating_sub(last_heard.elapsed());
        if idle_left.is_zero() {
            continue;
        }
        if let Err(e) = socket
            .get_ref()
            .stream
            .tcp()
            .set_read_timeout(Some(idle_left))
        {
            log::info!("{peer}: connection ended: {e}");
            break None;
        }
        match socket.read() {
            Ok(Message::Text(text)) => {
                last_heard = Instant::now();
                let text = text.as_str();
                let replies = channel.handle_text(text);
                if !full_frames && channel.host_name().is_some() {
                    full_frames = true;
                    // An agent: no longer one of its address's guest connections.
                    ctx.addresses.release(conn_id);
                    let max = ctx.config.max_frame_bytes;
                    socket.set_config(|c| {
                        c.max_message_size = Some(max);
                        c.max_frame_size = Some(max);
                    });
                }
                if text.contains(events::PHX_JOIN) {
                    // A join may have taken a host over from another connection: wake it.
                    ctx.sockets.wake_kicked();
                }
                match send_all(&mut socket, &replies) {
                    Sent::All => unflushed = false,
                    Sent::Queued => unflushed = true,
                    Sent::Gone => break None,
                }
            }
            Ok(Message::Binary(_)) => {
                log::warn!("{peer}: binary frame refused; this socket speaks JSON text frames");
                break Some((CloseCode::Unsupported, "binary frames are not supported"));
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                last_heard = Instant::now()
            }
            Ok(Message::Close(_)) => {}
            // A wake-up or the idle deadline: the loop's top tells which.
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                break None
            }
            // TCP closed without a WebSocket close frame (Elixir's Slipstream does this, so
            // does a killed agent): a routine disconnect, not a protocol error.
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => {
                log::info!(
                    "{peer}: disconnected ({})",
                    channel.host_name().unwrap_or("not joined")
                );
                break None;
            }
            Err(tungstenite::Error::Capacity(e)) => {
                log::warn!("{peer}: {e}; closing");
                break Some((CloseCode::Size, "message too big"));
            }
            Err(e) => {
                log::info!("{peer}: connection ended: {e}");
                break None;
            }
        }
    };
    if let Some((code, reason)) = end {
        let _ = socket.close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = socket.flush();
    }
    socket.get_mut().stream.finish();
    channel.end();
}

/// What `wait_for_socket` saw.
enum Ready {
    Writable,
    /// Input, end of input (a wake-up), or the time was up: the read tells which.
    Readable,
    Failed(nix::Error),
}

/// Blocks until `tcp` can take more output or has input (or end of input), at most `limit`.
/// A frame that the WebSocket already holds in its buffer waits for the next of these; the
/// agent's heartbeat (or the idle deadline) brings it at the latest.
fn wait_for_socket(tcp: &TcpStream, limit: Duration) -> Ready {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // Rounded up: a timeout rounded down to 0 ms would return at once, again and again.
    let timeout = PollTimeout::try_from(limit.saturating_add(Duration::from_millis(1)))
        .unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(
        tcp.as_fd(),
        PollFlags::POLLIN | PollFlags::POLLOUT,
    )];
    match poll(&mut fds, timeout) {
        Ok(_) => {
            let seen = fds[0].revents().unwrap_or(PollFlags::empty());
            let input = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
            if seen.contains(PollFlags::POLLOUT) && !seen.intersects(input) {
                Ready::Writable
            } else {
                Ready::Readable
            }
        }
        Err(nix::errno::Errno::EINTR) => Ready::Readable,
        Err(e) => Ready::Failed(e),
    }
}

/// How `send_all` went.
enum Sent {
    All,
    /// Some of it waits behind a full send buffer.
    Queued,
    /// The connection is gone.
    Gone,
}

/// Sends frames in order.
fn send_all<S: Read + Write>(socket: &mut WebSocket<S>, frames: &[Frame]) -> Sent {
    let mut sent = Sent::All;
    for frame in frames {
        match socket.send(Message::text(frame.encode())) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => sent = Sent::Queued,
            Err(_) => return Sent::Gone,
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server-side WebSocket over a `Wakeable` registered in `sockets`, and its client.
    fn pair(
        sockets: &Sockets,
        conn_id: u64,
    ) -> (WebSocket<Wakeable>, Arc<AtomicBool>, WebSocket<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (kick, woken) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        sockets.lock().insert(
            conn_id,
            Waker {
                kick: kick.clone(),
                woken: woken.clone(),
                stream: server.try_clone().unwrap(),
            },
        );
        let server = WebSocket::from_raw_socket(
            Wakeable {
                stream: Stream::Plain(server),
                woken,
            },
            Role::Server,
            None,
        );
        let client = WebSocket::from_raw_socket(client, Role::Client, None);
        (server, kick, client)
    }

    /// Reads on `server` (blocking, no timeout) in a thread; if nothing wakes it, a watchdog
    /// makes the client send a frame after `PATIENCE`, so a missing wake-up fails the test
    /// instead of hanging it.
    type Reader = std::thread::JoinHandle<(WebSocket<Wakeable>, String)>;
    type Watchdog = std::thread::JoinHandle<WebSocket<TcpStream>>;

    fn blocked_read(
        server: WebSocket<Wakeable>,
        client: WebSocket<TcpStream>,
    ) -> (Reader, Watchdog) {
        const PATIENCE: Duration = Duration::from_secs(20);
        let reader = std::thread::spawn(move || {
            let mut server = server;
            let outcome = match server.read() {
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => "woken".to_owned(),
                other => format!("{other:?}"),
            };
            (server, outcome)
        });
        let watchdog = std::thread::spawn(move || {
            let mut client = client;
            client.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
            // Returns early with the server's frame when the wake-up worked.
            if client.read().is_err() {
                let _ = client.send(Message::text("watchdog"));
            }
            client
        });
        (reader, watchdog)
    }

    #[test]
    fn a_kick_wakes_only_the_kicked_connection_which_can_still_write() {
        let sockets = Sockets::default();
        let (server, kick, client) = pair(&sockets, 1);
        let (mut other, _, mut other_client) = pair(&sockets, 2);
        assert_eq!(sockets.len(), 2);
        let (reader, watchdog) = blocked_read(server, client);
        kick.store(true, Ordering::SeqCst);
        sockets.wake_kicked();
        let (mut server, outcome) = reader.join().unwrap();
        assert_eq!(outcome, "woken");
        // The write half still works: the goodbye reaches the client.
        assert!(matches!(
            send_all(&mut server, &[Frame::heartbeat("9")]),
            Sent::All
        ));
        let mut client = watchdog.join().unwrap();
        let _ = client
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)));
        // The watchdog consumed the first frame; send another and read it.
        assert!(matches!(
            send_all(&mut server, &[Frame::heartbeat("10")]),
            Sent::All
        ));
        let received = client.read().unwrap();
        assert!(
            received.to_text().unwrap().contains("\"10\""),
            "{received:?}"
        );
        // The other connection was not woken: a frame sent to it is read normally.
        other_client.send(Message::text("hello")).unwrap();
        assert_eq!(other.read().unwrap(), Message::text("hello"));
    }

    #[test]
    fn shutdown_wakes_every_connection_and_registrations_end_with_them() {
        let sockets = Sockets::default();
        let (server, _, client) = pair(&sockets, 7);
        let (reader, _watchdog) = blocked_read(server, client);
        sockets.wake_all();
        let (_, outcome) = reader.join().unwrap();
        assert_eq!(outcome, "woken");
        drop(Registration {
            sockets: &sockets,
            conn_id: 7,
        });
        assert!(sockets.is_empty());
    }

    #[test]
    fn a_full_send_buffer_waits_for_the_peer_to_read_or_for_a_wake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let long = Duration::from_secs(3600);
        assert!(matches!(wait_for_socket(&server, long), Ready::Writable));
        // The peer does not read: fill its receive buffer and our send buffer.
        server.set_nonblocking(true).unwrap();
        let block = [0u8; 64 * 1024];
        let mut written = 0;
        loop {
            match server.write(&block) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        server.set_nonblocking(false).unwrap();
        // Not writable: the wait ends only at its limit, for the read to tell what happened.
        assert!(matches!(
            wait_for_socket(&server, Duration::from_millis(20)),
            Ready::Readable
        ));
        // The peer reads everything: writable again, with no limit to run out.
        let mut sink = vec![0u8; written];
        client.read_exact(&mut sink).unwrap();
        assert!(matches!(wait_for_socket(&server, long), Ready::Writable));
        // A wake (the read half shut down) ends the wait at once, full buffer or not.
        server.set_nonblocking(true).unwrap();
        while server.write(&block).is_ok() {}
        server.set_nonblocking(false).unwrap();
        server.shutdown(Shutdown::Read).unwrap();
        assert!(matches!(wait_for_socket(&server, long), Ready::Readable));
    }
}
