//! The accept loop: one thread per connection, HTTP first, upgraded to the agent socket when
//! asked. Every thread's handle is kept so that shutdown can wait for them. With TLS on, each
//! connection thread shakes hands first (`crate::tls`); plain HTTP on the TLS port is answered
//! in plain HTTP with where to go instead.
//!
//! Nothing here wakes on a tick. The accept blocks until a client connects; shutdown ends it by
//! shutting the listening socket's read half (a blocked accept(2) then returns on Linux). Each
//! connection's reads block until their real deadline (the head timeout, the keep-alive idle
//! time); shutdown ends them through `Connections`, which shuts every open socket's read half.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::{Context, Stats};
use crate::http::{self, HttpConn, ReadOutcome, Request, Response};
use crate::tls::{FirstByte, Stream};
use crate::ws;

/// A keep-alive connection serves at most this many requests; the last answer says
/// `Connection: close`. With `KEEP_ALIVE_LIFETIME`, a client that sends a request just before
/// each idle timeout cannot hold a slot for ever. (nginx's `keepalive_requests` default.)
pub const KEEP_ALIVE_MAX_REQUESTS: u32 = 1000;
/// A keep-alive connection older than this is closed after its next answer (nginx's
/// `keepalive_time` default). Agent sockets are not keep-alive HTTP and live on.
pub const KEEP_ALIVE_LIFETIME: Duration = Duration::from_secs(3600);
/// A client that does not read what we send for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connection threads to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Accepts connections until the shutdown flag is set, then waits (briefly) for the connection
/// threads and marks every host offline.
pub fn run(ctx: Arc<Context>, listener: TcpListener) -> std::io::Result<()> {
    let listener = {
        let socket = socket2::Socket::from(listener);
        socket.set_nonblocking(false)?;
        TcpListener::from(socket)
    };
    // Shutdown ends the blocked accept: shutting down a listening socket's read half makes
    // accept(2) return (EINVAL) on Linux. A second handle, so the waker owns what it needs.
    let waker = listener.try_clone()?;
    ctx.shutdown.on_trigger(move || {
        let _ = socket2::SockRef::from(&waker).shutdown(Shutdown::Read);
    });
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    // Every connection thread holds a sender until it ends: when all are gone, the receiver
    // says so, and shutdown waits on that instead of looking at the threads now and then.
    let (running, all_ended) = mpsc::channel::<()>();
    let mut next_id: u64 = 0;
    while !ctx.shutting_down() {
        match listener.accept() {
            Ok((stream, peer)) => {
                threads.retain(|t| !t.is_finished());
                next_id += 1;
                Stats::add(&ctx.stats.connections_accepted, 1);
                if threads.len() >= ctx.config.max_connections {
                    log::warn!(
                        "{peer}: refused: {} connections open (max_connections)",
                        threads.len()
                    );
                    if ctx.tls.is_none() {
                        refuse(stream);
                    }
                    // Over TLS a plain-text 503 would only read as a broken handshake, and
                    // a handshake here would hold up the accept loop: just close.
                    continue;
                }
                let capped = is_capped(&ctx.config.http.trusted_proxies, peer.ip());
                if capped
                    && !ctx.addresses.admit(
                        next_id,
                        peer.ip(),
                        ctx.config.max_connections_per_address,
                    )
                {
                    log::warn!(
                        "{peer}: refused: this address has {} connections open \
                         (max_connections_per_address)",
                        ctx.addresses.open(peer.ip())
                    );
                    if ctx.tls.is_none() {
                        refuse(stream);
                    }
                    continue;
                }
                let ctx = ctx.clone();
                let conn_id = next_id;
                let running = running.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("conn-{conn_id}"))
                    .spawn(move || {
                        handle_connection(&ctx, stream, peer, conn_id);
                        drop(running);
                    });
                match spawned {
                    Ok(handle) => threads.push(handle),
                    Err(e) => log::error!("{peer}: cannot start a thread: {e}"),
                }
            }
            Err(_) if ctx.shutting_down() => {}
            Err(e) if http::is_timeout(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: say so, back off, keep serving.
                log::error!("accept failed: {e}");
                ctx.shutdown.wait(Duration::from_millis(100));
            }
        }
    }
    drop(listener);
    drop(running);
    // Agent sockets first (they then say goodbye), then every other connection: each blocks
    // in a read until its deadline; ending the reads wakes them all now.
    ctx.sockets.wake_all();
    ctx.connections.wake_all();
    log::info!(
        "shutting down: closing {} connections",
        threads.iter().filter(|t| !t.is_finished()).count()
    );
    // Returns when every connection thread has ended (all senders dropped) or at the deadline.
    if let Err(mpsc::RecvTimeoutError::Timeout) = all_ended.recv_timeout(SHUTDOWN_GRACE) {
        log::warn!(
            "shutting down: {} connections did not end within {} ms; leaving them",
            threads.iter().filter(|t| !t.is_finished()).count(),
            SHUTDOWN_GRACE.as_millis()
        );
    }
    for thread in threads {
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
    Ok(())
}

/// The open connections (a second handle of each socket), so that shutdown can end the read
/// each connection thread blocks in — for up to the head timeout or the keep-alive idle time.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a handle of `stream` until the returned registration is dropped.
    fn register(&self, conn_id: u64, stream: &TcpStream) -> std::io::Result<Registered<'_>> {
        self.lock().insert(conn_id, stream.try_clone()?);
        Ok(Registered {
            connections: self,
            conn_id,
        })
    }

    /// The handle kept for `conn_id`, which leaves this registry: the connection became an
    /// agent socket, which `ws::Sockets` wakes from now on.
    pub fn take(&self, conn_id: u64) -> Option<TcpStream> {
        self.lock().remove(&conn_id)
    }

    /// Ends every open connection's blocked read (it sees end-of-file); writes still go out,
    /// so a request being answered is answered. The server is shutting down.
    pub fn wake_all(&self) {
        for stream in self.lock().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a connection from `Connections` when it ends.
struct Registered<'a> {
    connections: &'a Connections,
    conn_id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.conn_id);
    }
}

/// Whether connections from `address` count against `max_connections_per_address`: not for
/// a trusted proxy, nor for this machine's own 127.0.0.1 and ::1 (a reverse proxy on the same
/// machine, which carries every client; local tools).
pub fn is_capped(trusted_proxies: &[std::net::IpAddr], address: std::net::IpAddr) -> bool {
    let own = match address {
        std::net::IpAddr::V4(a) => a == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(a) => {
            a == std::net::Ipv6Addr::LOCALHOST
                || a.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    };
    !own && !trusted_proxies.contains(&address)
}

/// Open connections past 3/4 of `max_connections`: keep-alive is no longer offered.
fn nearly_full(ctx: &Context) -> bool {
    let open = ctx.stats.open_connections.load(Ordering::Relaxed);
    open.saturating_mul(4) >= (ctx.config.max_connections as u64).saturating_mul(3)
}

/// Open connections past 7/8 of `max_connections`: new ones are served only if they are
/// agent sockets (a WebSocket upgrade).
fn agents_only(ctx: &Context) -> bool {
    let open = ctx.stats.open_connections.load(Ordering::Relaxed);
    open.saturating_mul(8) > (ctx.config.max_connections as u64).saturating_mul(7)
}

fn refuse(stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut conn = HttpConn::new(Stream::Plain(stream));
    let _ = conn.write_response(&Response::text(503, "too many connections\n"), false, true);
}

fn handle_connection(ctx: &Context, stream: TcpStream, peer: SocketAddr, conn_id: u64) {
    Stats::add(&ctx.stats.open_connections, 1);
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| ctx.connections.register(conn_id, &stream));
    // Registered before the flag is looked at below (and in every read loop): a shutdown
    // either finds this connection to wake or is seen by it.
    if let Err(e) = &setup {
        log::warn!("{peer}: socket setup failed: {e}");
    } else if let Some(tls) = &ctx.tls {
        let deadline = Instant::now() + http::HEAD_TIMEOUT;
        let stopping = || ctx.shutting_down();
        match crate::tls::sniff(&stream, deadline, &stopping) {
            FirstByte::Nothing => {}
            FirstByte::PlainHttp => plain_http_on_tls_port(ctx, stream, &peer.to_string()),
            FirstByte::Tls => match tls.accept(stream, deadline, &stopping) {
                Ok(stream) => serve(ctx, HttpConn::new(stream), &peer.to_string(), conn_id),
                Err(crate::tls::HandshakeError::Stopping | crate::tls::HandshakeError::Closed) => {}
                Err(e) => log::info!("{peer}: TLS handshake failed: {e}"),
            },
        }
    } else {
        serve(
            ctx,
            HttpConn::new(Stream::Plain(stream)),
            &peer.to_string(),
            conn_id,
        );
    }
    drop(setup);
    ctx.addresses.release(conn_id);
    ctx.stats.open_connections.fetch_sub(1, Ordering::Relaxed);
}

/// A client spoke plain HTTP to the TLS port: one request is read and answered in plain
/// HTTP — a browser is sent to the `https://` URL of the same page, an agent (a WebSocket
/// upgrade) or anything else gets 400 saying to use `https://`/`wss://` — and logged, so a
/// misconfigured agent shows in the log with its address.
fn plain_http_on_tls_port(ctx: &Context, stream: TcpStream, peer: &str) {
    let mut conn = HttpConn::new(Stream::Plain(stream));
    let request = match conn.read_request(ctx, true) {
        ReadOutcome::Request(request) => request,
        ReadOutcome::Closed => return,
        ReadOutcome::Fail(response) => {
            log::info!(
                "{peer}: plain HTTP on the TLS port (bad request: {})",
                response.status
            );
            let _ = conn.write_response(&response, false, true);
            return;
        }
    };
    let response = answer_plain_http(ctx, &request);
    match response.header("location") {
        Some(location) => log::info!(
            "{peer}: plain HTTP on the TLS port: {} {}; sent to {location}",
            request.method,
            request.path
        ),
        None => log::warn!(
            "{peer}: plain HTTP on the TLS port: {} {}{}; answered 400 (use https:// and wss://)",
            request.method,
            request.path,
            if ws::is_upgrade(&request) {
                " (an agent configured with ws:// instead of wss://?)"
            } else {
                ""
            }
        ),
    }
    let _ = conn.write_response(&response, request.method == "HEAD", true);
}

fn answer_plain_http(ctx: &Context, request: &Request) -> Response {
    let https = |authority: &str| {
        let mut url = format!("https://{authority}{}", request.path);
        if let Some(query) = &request.query {
            url.push('?');
            url.push_str(query);
        }
        url
    };
    let base = ctx
        .config
        .public_url
        .as_deref()
        .and_then(|u| u.strip_prefix("https://"))
        .map(str::to_owned)
        .or_else(|| {
            request
                .header("host")
                .map(str::trim)
                .filter(|h| crate::config::is_authority(h))
                .map(str::to_owned)
        });
    let read = request.method == "GET" || request.method == "HEAD";
    match base {
        Some(authority) if read && !ws::is_upgrade(request) && request.path.starts_with('/') => {
            let location = https(&authority);
            Response::text(301, format!("This server speaks HTTPS: {location}\n"))
                .with_header("Location", location)
        }
        _ => Response::text(
            400,
            "This port speaks HTTPS: use https:// (agents: wss://) in the URL.\n",
        ),
    }
}

fn serve(ctx: &Context, mut conn: HttpConn, peer: &str, conn_id: u64) {
    let opened = Instant::now();
    let mut served: u32 = 0;
    let mut first = true;
    loop {
        let request = match conn.read_request(ctx, first) {
            ReadOutcome::Request(request) => request,
            ReadOutcome::Closed => break,
            ReadOutcome::Fail(response) => {
                log::debug!("{peer}: bad request: {}", response.status);
                let _ = conn.write_response(&response, false, true);
                break;
            }
        };
        if first && !ws::is_upgrade(&request) && agents_only(ctx) {
            // The last slots are kept for agents: a browser or script gets them only while
            // the server is not nearly full.
            let _ = conn.write_response(
                &Response::text(
                    503,
                    "server busy: the remaining connections are kept for agents\n",
                )
                .with_header("Retry-After", "5"),
                request.method == "HEAD",
                true,
            );
            break;
        }
        first = false;
        if ws::is_upgrade(&request) {
            ws::serve_socket(ctx, conn, &request, conn_id, peer);
            return;
        }
        let response = http::router::route(ctx, &request);
        // Nearly full: no keep-alive, so idle browsers cannot hold slots between requests.
        // A connection past its lifetime (in requests or time) is closed likewise: a client
        // cannot keep one slot for ever with a request just before each idle timeout.
        served = served.saturating_add(1);
        let worn_out = served >= KEEP_ALIVE_MAX_REQUESTS || opened.elapsed() >= KEEP_ALIVE_LIFETIME;
        let close = request.wants_close || ctx.shutting_down() || nearly_full(ctx) || worn_out;
        if conn
            .write_response(&response, request.method == "HEAD", close)
            .is_err()
            || close
        {
            break;
        }
    }
    conn.stream.finish();
}
