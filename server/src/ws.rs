//! The agent socket: the WebSocket upgrade of `/socket/websocket?vsn=2.0.0` and the read loop
//! of one connection, feeding text frames to its `Channel`.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::events;
use common::Frame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::channel::Channel;
use crate::context::Context;
use crate::http::{is_timeout, HttpConn, Request, Response};

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
    if std::io::Write::write_all(&mut conn.stream, head.as_bytes()).is_err() {
        return;
    }
    let max = ctx.config.max_frame_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let leftover = std::mem::take(&mut conn.buf);
    let socket = WebSocket::from_partially_read(conn.stream, leftover, Role::Server, Some(config));
    run(ctx, socket, conn_id, peer);
}

fn run(ctx: &Context, mut socket: WebSocket<TcpStream>, conn_id: u64, peer: &str) {
    let kick = Arc::new(AtomicBool::new(false));
    let mut channel = Channel::new(ctx, conn_id, kick.clone(), peer.to_owned());
    let mut last_heard = Instant::now();
    let end = loop {
        if ctx.shutting_down() {
            let frames = channel.closing();
            send_all(&mut socket, &frames);
            break Some((CloseCode::Away, "server shutting down"));
        }
        if kick.load(Ordering::SeqCst) {
            let frames = channel.kicked();
            send_all(&mut socket, &frames);
            break Some((
                CloseCode::Policy,
                "replaced by a newer connection of this host",
            ));
        }
        if last_heard.elapsed() > ctx.config.idle_timeout {
            log::info!(
                "{peer}: nothing received for {} s; closing ({})",
                ctx.config.idle_timeout.as_secs(),
                channel.host_name().unwrap_or("not joined")
            );
            break Some((CloseCode::Away, "idle timeout"));
        }
        match socket.read() {
            Ok(Message::Text(text)) => {
                last_heard = Instant::now();
                let replies = channel.handle_text(text.as_str());
                if !send_all(&mut socket, &replies) {
                    break None;
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
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                // Replies may be queued behind a full send buffer; keep them moving.
                match socket.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    Err(_) => break None,
                }
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                break None
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
    channel.end();
}

/// Sends frames in order; false when the connection is gone.
fn send_all(socket: &mut WebSocket<TcpStream>, frames: &[Frame]) -> bool {
    for frame in frames {
        match socket.send(Message::text(frame.encode())) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}
