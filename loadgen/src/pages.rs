//! `pages`: what the dashboard, the JSON API and `/metrics` cost with a big fleet.
//!
//! N agents join and push one fast (G guests), one medium and one slow sample each, and stay
//! connected (hosts online, as in a real fleet); then each path is fetched as a logged-in
//! browser (or Prometheus) fetches it, with `Accept-Encoding: gzip`, one request at a time on
//! a fresh connection: bytes on the wire, wall time per request, and the server's CPU time per
//! request (utime + stime of the whole process over all requests to that path, so the
//! connection threads that end with their request are counted too). Each path is fetched at
//! least `requests` times and until a second has passed, so the 10 ms clock ticks of
//! `/proc/PID/stat` stay small next to the total.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use common::events::MetricKind;

use crate::client::{Client, Reply};
use crate::error::{Error, Result};
use crate::proc_stat;
use crate::sample::{medium_sample, slow_sample, Node};
use crate::stats::{micros, Summary};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Keep fetching a path at least this long (see the module doc).
const MIN_TIME_PER_PATH: Duration = Duration::from_secs(1);
const MAX_REQUESTS_PER_PATH: usize = 1000;

#[derive(Debug, Clone)]
pub struct PagesOptions {
    /// `ws://127.0.0.1:PORT/socket/websocket`; HTTP goes to the same address.
    pub url: String,
    pub hosts: Vec<(String, String)>,
    pub guests: u32,
    /// The dashboard password of `admin` (set with `set-password` beforehand).
    pub password: String,
    pub server_pid: Option<u32>,
    /// At least this many requests per path.
    pub requests: usize,
    /// `(label, path)`: e.g. `("index", "/")`; a label ending in `_identity` asks without
    /// `Accept-Encoding: gzip`.
    pub paths: Vec<(String, String)>,
    /// Threads connecting the agents.
    pub threads: usize,
}

/// What fetching one path gave.
#[derive(Debug, Clone, Default)]
pub struct PathReport {
    pub label: String,
    pub path: String,
    pub status: u16,
    /// `Content-Encoding` of the answer to a request accepting gzip (`identity` when none).
    pub encoding: String,
    /// Body bytes on the wire with `Accept-Encoding: gzip`.
    pub wire_bytes: usize,
    /// Body bytes without compression.
    pub plain_bytes: usize,
    pub requests: usize,
    /// Wall time per request (connect to last byte).
    pub wall: Summary,
    /// The server's CPU time per request, in microseconds.
    pub server_cpu_us: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct PagesReport {
    pub agents: usize,
    pub setup: Duration,
    pub paths: Vec<PathReport>,
}

pub fn pages(options: &PagesOptions) -> Result<PagesReport> {
    let addr = http_addr(&options.url)?;
    let started = Instant::now();
    let mut clients = connect_all(options)?;
    let setup = started.elapsed();
    let cookie = login(addr, &options.password)?;
    let mut report = PagesReport {
        agents: clients.len(),
        setup,
        paths: Vec::new(),
    };
    for (label, path) in &options.paths {
        // The agents stay joined; a heartbeat each keeps them inside the idle timeout.
        for client in &mut clients {
            client.heartbeat()?;
        }
        report
            .paths
            .push(measure(addr, label, path, &cookie, options)?);
    }
    for client in clients {
        client.close();
    }
    Ok(report)
}

/// Connects, joins and pushes one sample of each kind for every host, `threads` at a time.
fn connect_all(options: &PagesOptions) -> Result<Vec<Client>> {
    let threads = options.threads.clamp(1, 64);
    let now = common::time::now_unix();
    let results: Vec<Result<Vec<Client>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for (i, (name, token)) in options.hosts.iter().enumerate() {
                        if i % threads != t {
                            continue;
                        }
                        mine.push(connect_one(options, i, name, token, now)?);
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Setup("an agent thread panicked".into())))
            })
            .collect()
    });
    let mut clients = Vec::with_capacity(options.hosts.len());
    for result in results {
        clients.extend(result?);
    }
    Ok(clients)
}

fn connect_one(
    options: &PagesOptions,
    index: usize,
    name: &str,
    token: &str,
    now: i64,
) -> Result<Client> {
    let mut client = Client::connect(&options.url, TIMEOUT)?;
    if let Reply::Error(reason) = client.join(name, token)? {
        return Err(Error::Connection(format!(
            "join of {name} refused: {reason}"
        )));
    }
    let medium = serde_json::to_string(&medium_sample(options.guests, index))
        .map_err(|e| Error::Setup(e.to_string()))?;
    let slow = serde_json::to_string(&slow_sample(index, name))
        .map_err(|e| Error::Setup(e.to_string()))?;
    let fast = Node::new(index as u64, options.guests).next_json(1.0);
    let refs = [
        client.push(MetricKind::Slow, now, &slow)?,
        client.push(MetricKind::Medium, now, &medium)?,
        client.push(MetricKind::Fast, now, &fast)?,
    ];
    for msg_ref in refs {
        if let Reply::Error(reason) = client.wait_reply(&msg_ref)? {
            return Err(Error::Connection(format!(
                "a sample of {name} was refused: {reason}"
            )));
        }
    }
    Ok(client)
}

/// `127.0.0.1:PORT` of a `ws://127.0.0.1:PORT/...` URL.
fn http_addr(url: &str) -> Result<SocketAddr> {
    url.strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.to_socket_addrs().ok()?.next())
        .ok_or_else(|| Error::Setup(format!("{url}: expected ws://HOST:PORT/...")))
}

/// Logs in as `admin`; the `Cookie` header value of the session.
fn login(addr: SocketAddr, password: &str) -> Result<String> {
    let body = format!("username=admin&password={}&next=%2F", form_encode(password));
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(addr, &request)?;
    reply
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .filter(|c| reply.status == 303 && c.starts_with("pm_session=") && c.len() > 12)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Setup(format!(
                "login failed with status {} (is the password set with set-password?)",
                reply.status
            ))
        })
}

fn measure(
    addr: SocketAddr,
    label: &str,
    path: &str,
    cookie: &str,
    options: &PagesOptions,
) -> Result<PathReport> {
    let request = |gzip: bool| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n{}\r\n",
            if gzip { "Accept-Encoding: gzip\r\n" } else { "" }
        )
    };
    let plain = exchange(addr, &request(false))?;
    // A label ending in `_identity` measures the path without compression.
    let compressed = request(!label.ends_with("_identity"));
    let first = exchange(addr, &compressed)?; // warm-up, and the size on the wire
    let pid = options.server_pid.map(|p| p.to_string());
    let cpu_before = pid.as_deref().and_then(proc_stat::usage);
    let started = Instant::now();
    let mut walls = Vec::new();
    while walls.len() < MAX_REQUESTS_PER_PATH
        && (walls.len() < options.requests.max(1) || started.elapsed() < MIN_TIME_PER_PATH)
    {
        let t = Instant::now();
        exchange(addr, &compressed)?;
        walls.push(micros(t.elapsed()));
    }
    let cpu_after = pid.as_deref().and_then(proc_stat::usage);
    let requests = walls.len();
    #[allow(clippy::cast_precision_loss)]
    let server_cpu_us = cpu_before
        .zip(cpu_after)
        .map(|(a, b)| (b.cpu_seconds - a.cpu_seconds) * 1e6 / requests as f64);
    Ok(PathReport {
        label: label.to_owned(),
        path: path.to_owned(),
        status: first.status,
        encoding: first
            .header("content-encoding")
            .unwrap_or("identity")
            .to_owned(),
        wire_bytes: first.body.len(),
        plain_bytes: plain.body.len(),
        requests,
        wall: Summary::of(&mut walls),
        server_cpu_us,
    })
}

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on a new connection and reads the answer to the end (`Connection: close`).
fn exchange(addr: SocketAddr, request: &str) -> Result<HttpReply> {
    let fail = |e: &dyn std::fmt::Display| Error::Connection(format!("HTTP {addr}: {e}"));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail(&e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| fail(&e))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| fail(&e))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail(&"no end of the response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(&"no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl PagesReport {
    /// One line per path, then `key=value` lines (`<label>_wire_bytes=...`) for scripts.
    pub fn print(&self, label: &str) {
        println!(
            "== pages {label}: {} agents online, each pushed fast + medium + slow (set up in {:.1} s)",
            self.agents,
            self.setup.as_secs_f64()
        );
        for p in &self.paths {
            println!(
                "{:<14} {:<28} {} {:>9} bytes on the wire ({}), {:>9} plain; wall {}; server CPU {}",
                p.label,
                p.path,
                p.status,
                p.wire_bytes,
                p.encoding,
                p.plain_bytes,
                p.wall.describe(),
                p.server_cpu_us
                    .map_or_else(|| "?".to_owned(), |us| format!("{:.2} ms per request", us / 1000.0)),
            );
        }
        for p in &self.paths {
            let l = &p.label;
            println!(
                "{l}_status={} {l}_wire_bytes={} {l}_plain_bytes={} {l}_p50_ms={:.2} {l}_cpu_ms={}",
                p.status,
                p.wire_bytes,
                p.plain_bytes,
                crate::stats::ms(p.wall.p50_us),
                p.server_cpu_us
                    .map_or_else(|| "-".to_owned(), |us| format!("{:.2}", us / 1000.0)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_forms() {
        assert_eq!(
            http_addr("ws://127.0.0.1:4000/socket/websocket").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 4000)))
        );
        assert!(http_addr("http://x").is_err());
        assert_eq!(form_encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
