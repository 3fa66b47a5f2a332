//! Notification delivery latency (`loadgen notify`): N agents join a server whose config
//! sends `host_offline` (with `for = "0s"`) to a webhook on `--receiver`, which this process
//! serves itself; then every agent disconnects, and the time from each host's disconnect to its
//! message arriving at the receiver is measured — the whole path: the host's status change, the
//! alert thread's evaluation and outbox write, the wake-up of the delivery thread, routing and
//! the HTTP request. Everything runs on loopback in one clock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::stats::{micros, Summary};
use crate::{Error, Result};

/// What a run measured.
#[derive(Debug, Clone)]
pub struct NotifyReport {
    pub hosts: usize,
    pub received: usize,
    /// Disconnect → the receiver has the message.
    pub latency: Summary,
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Reads one request, records its JSON body's `host`, answers 200.
fn serve_one(stream: TcpStream, arrivals: &Arrivals) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let at = Instant::now();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(host) = value["host"].as_str() {
            if let Ok(mut map) = arrivals.lock() {
                map.entry(host.to_owned()).or_insert(at);
            }
        }
    }
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

/// Joins every agent of `tokens`, disconnects them all, and waits (at most `wait`) for one
/// message per host on `receiver`.
pub fn run(
    url: &str,
    tokens: &[(String, String)],
    receiver: SocketAddr,
    wait: Duration,
) -> Result<NotifyReport> {
    let listener = TcpListener::bind(receiver)
        .map_err(|e| Error::Setup(format!("cannot listen on {receiver}: {e}")))?;
    let arrivals: Arrivals = Arc::default();
    {
        let arrivals = arrivals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let arrivals = arrivals.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(stream, &arrivals);
                });
            }
        });
    }
    let mut clients = Vec::with_capacity(tokens.len());
    for (name, token) in tokens {
        let mut client = Client::connect(url, Duration::from_secs(10))?;
        client.join(name, token)?;
        clients.push((name.clone(), client));
    }
    let mut left: HashMap<String, Instant> = HashMap::new();
    for (name, client) in clients {
        left.insert(name, Instant::now());
        client.close();
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let got = arrivals.lock().map(|m| m.len()).unwrap_or(0);
        if got >= tokens.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let arrived = arrivals.lock().map(|m| m.clone()).unwrap_or_default();
    let mut latencies: Vec<u64> = left
        .iter()
        .filter_map(|(name, at)| arrived.get(name).map(|t| micros(t.duration_since(*at))))
        .collect();
    Ok(NotifyReport {
        hosts: tokens.len(),
        received: latencies.len(),
        latency: Summary::of(&mut latencies),
    })
}
