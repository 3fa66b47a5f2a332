//! `storm`: how long N agents need to be online again after the server restarts.
//!
//! Starts the real server binary, connects N agents (one thread each) and waits until all have
//! joined, stops the server with SIGINT, starts it again on the same port and database, and
//! measures until every agent has joined again. Agents reconnect like phoenix.js: after a
//! disconnect they wait 100 ms, doubling up to 5 s, each wait jittered ±25 %, and they give a
//! join 60 s to be answered (the real agent's `JOIN_TIMEOUT`). A restarted server has forgotten
//! which tokens it verified: without tickets (`--no-tickets`, the anchor) every rejoin costs
//! one bcrypt verification at the hosts' cost; with them (as the real agent does) each agent
//! presents the resumption ticket of its first join and the server checks an HMAC instead.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Client, Reply};
use crate::error::{Error, Result};

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(25);

#[derive(Debug, Clone)]
pub struct StormOptions {
    pub server_bin: PathBuf,
    pub database: PathBuf,
    pub listen: SocketAddr,
    pub hosts: Vec<(String, String)>,
    /// Give up on a phase after this long and report how many made it.
    pub timeout: Duration,
    pub stack_kib: usize,
    /// Present the join reply's resumption ticket when joining again (the real agent does).
    pub tickets: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub joined: usize,
    pub took: Duration,
    /// When the first and the last agent of the phase had joined, from the phase's start.
    pub first: Duration,
    pub last: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct StormReport {
    pub agents: usize,
    /// From the first server's start until every agent had joined.
    pub cold: Phase,
    /// How long the server took to stop on SIGINT.
    pub stop: Duration,
    /// From the restarted server's spawn until every agent had joined again.
    pub rejoin: Phase,
    /// From spawn until the restarted server accepted connections.
    pub listening: Duration,
    /// Agents online when the server was stopped: the ones whose rejoin is measured.
    pub online_before: usize,
}

/// The server child, killed if still running when dropped.
struct ServerProcess(Option<Child>);

impl ServerProcess {
    fn start(options: &StormOptions, log: &Path) -> Result<ServerProcess> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| Error::Io {
                path: log.to_owned(),
                source,
            })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            path: log.to_owned(),
            source,
        })?;
        let child = Command::new(&options.server_bin)
            .arg("--database")
            .arg(&options.database)
            .arg("--listen")
            .arg(options.listen.to_string())
            .arg("--log-level")
            .arg("warn")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Io {
                path: options.server_bin.clone(),
                source,
            })?;
        Ok(ServerProcess(Some(child)))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// SIGINT (through kill(1): no unsafe code here) and wait for the exit.
    fn interrupt(&mut self) -> Result<()> {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| Error::Setup(format!("kill -INT: {e}")))?;
        if !status.success() {
            return Err(Error::Setup("kill -INT failed".into()));
        }
        if let Some(mut child) = self.0.take() {
            let _ = child.wait();
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_listening(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Error::Setup(format!(
        "the server did not listen on {addr} within {timeout:?}"
    )))
}

pub fn storm(options: &StormOptions) -> Result<StormReport> {
    let n = options.hosts.len();
    let log = options.database.with_extension("storm-server.log");
    let url = format!("ws://{}{}", options.listen, common::events::SOCKET_PATH);
    let stop = Arc::new(AtomicBool::new(false));
    let joins: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let joined_at: Arc<Vec<std::sync::Mutex<Vec<Instant>>>> =
        Arc::new((0..n).map(|_| std::sync::Mutex::new(Vec::new())).collect());

    let mut report = StormReport {
        agents: n,
        ..StormReport::default()
    };
    let cold_start = Instant::now();
    let mut server = ServerProcess::start(options, &log)?;
    wait_listening(options.listen, Duration::from_secs(30))?;
    let mut threads = Vec::with_capacity(n);
    for (i, (name, token)) in options.hosts.iter().cloned().enumerate() {
        let (stop, joins, joined_at, url) =
            (stop.clone(), joins.clone(), joined_at.clone(), url.clone());
        let tickets = options.tickets;
        let thread = std::thread::Builder::new()
            .name(format!("storm-{i}"))
            .stack_size(options.stack_kib * 1024)
            .spawn(move || {
                agent(&url, &name, &token, tickets, &stop, || {
                    if let Ok(mut at) = joined_at[i].lock() {
                        at.push(Instant::now());
                    }
                    joins[i].fetch_add(1, Ordering::SeqCst);
                });
            })
            .map_err(|e| Error::Setup(format!("cannot start agent thread {i}: {e}")))?;
        threads.push(thread);
    }
    let everyone: Vec<usize> = (0..n).collect();
    report.cold = wait_phase(
        &joins,
        &joined_at,
        &everyone,
        1,
        cold_start,
        options.timeout,
    );
    log::info!(
        "cold start: {}/{n} joined in {:.2} s",
        report.cold.joined,
        report.cold.took.as_secs_f64()
    );

    // The rejoin is measured over the agents that were online (all of them, unless the cold
    // start ran out of time on a slow machine).
    let online: Vec<usize> = (0..n)
        .filter(|&i| joins[i].load(Ordering::SeqCst) >= 1)
        .collect();
    report.online_before = online.len();
    let stopping = Instant::now();
    server.interrupt()?;
    report.stop = stopping.elapsed();
    let restart = Instant::now();
    let _server = ServerProcess::start(options, &log)?;
    wait_listening(options.listen, Duration::from_secs(30))?;
    report.listening = restart.elapsed();
    report.rejoin = wait_phase(&joins, &joined_at, &online, 2, restart, options.timeout);
    log::info!(
        "after restart: {}/{n} joined again in {:.2} s",
        report.rejoin.joined,
        report.rejoin.took.as_secs_f64()
    );
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(report)
}

/// Waits until every agent has joined `generation` times (or `timeout`).
fn wait_phase(
    joins: &[AtomicU32],
    joined_at: &[std::sync::Mutex<Vec<Instant>>],
    members: &[usize],
    generation: u32,
    start: Instant,
    timeout: Duration,
) -> Phase {
    let count = || {
        members
            .iter()
            .filter(|&&i| joins[i].load(Ordering::SeqCst) >= generation)
            .count()
    };
    while count() < members.len() && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    let index = usize::try_from(generation).unwrap_or(1) - 1;
    let times: Vec<Duration> = members
        .iter()
        .map(|&i| &joined_at[i])
        .filter_map(|m| m.lock().ok()?.get(index).copied())
        .filter(|t| *t >= start)
        .map(|t| t - start)
        .collect();
    Phase {
        joined: count(),
        took,
        first: times.iter().min().copied().unwrap_or_default(),
        last: times.iter().max().copied().unwrap_or_default(),
    }
}

/// One agent: join, idle with heartbeats, and on any disconnect come back with backoff.
fn agent(
    url: &str,
    name: &str,
    token: &str,
    tickets: bool,
    stop: &AtomicBool,
    mut on_join: impl FnMut(),
) {
    let mut wait = BACKOFF_FIRST;
    let mut ticket: Option<String> = None;
    let mut first = true;
    while !stop.load(Ordering::SeqCst) {
        if !first {
            std::thread::sleep(wait.mul_f64(0.75 + fastrand::f64() * 0.5));
            wait = (wait * 2).min(BACKOFF_MAX);
        }
        first = false;
        let Ok(mut client) = Client::connect(url, JOIN_TIMEOUT) else {
            continue;
        };
        match client.join_with_ticket(name, token, ticket.as_deref().filter(|_| tickets)) {
            Ok(Reply::Ok) => ticket.clone_from(&client.ticket),
            Ok(Reply::Error(reason)) => {
                log::warn!("{name}: join refused: {reason}");
                continue;
            }
            Err(_) => continue,
        }
        on_join();
        wait = BACKOFF_FIRST;
        client.set_read_timeout(Duration::from_millis(500));
        let mut last_heartbeat = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if last_heartbeat.elapsed() > HEARTBEAT_EVERY {
                if client.heartbeat().is_err() {
                    break;
                }
                last_heartbeat = Instant::now();
            }
            if client.idle().is_err() {
                break;
            }
        }
        if stop.load(Ordering::SeqCst) {
            client.close();
        }
    }
}

impl StormReport {
    pub fn print(&self, label: &str) {
        println!("== storm {label}");
        for (what, phase, of) in [
            ("cold start", &self.cold, self.agents),
            ("after restart", &self.rejoin, self.online_before),
        ] {
            println!(
                "{what:<18} {}/{} agents joined in {:.2} s (first after {:.2} s, last after {:.2} s)",
                phase.joined,
                of,
                phase.took.as_secs_f64(),
                phase.first.as_secs_f64(),
                phase.last.as_secs_f64()
            );
        }
        println!(
            "server:            stopped in {:.2} s on SIGINT; restarted and listening after {:.2} s",
            self.stop.as_secs_f64(),
            self.listening.as_secs_f64()
        );
        #[allow(clippy::cast_precision_loss)]
        let rate = self.rejoin.joined as f64 / self.rejoin.last.as_secs_f64().max(1e-9);
        println!(
            "summary label={label} agents={} cold_joined={} cold_s={:.2} online_before={} rejoined={} rejoin_s={:.2} rejoin_last_s={:.2} rejoins_per_s={rate:.1} stop_s={:.2}",
            self.agents,
            self.cold.joined,
            self.cold.took.as_secs_f64(),
            self.online_before,
            self.rejoin.joined,
            self.rejoin.took.as_secs_f64(),
            self.rejoin.last.as_secs_f64(),
            self.stop.as_secs_f64()
        );
    }
}
