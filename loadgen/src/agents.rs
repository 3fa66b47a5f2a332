//! `run`: N simulated agents push fast samples over loopback for a bounded time.
//!
//! One thread per agent, blocking socket, 128 KiB stack. That is what the real agent does and
//! what the server expects (a thread per connection), it needs no poll loop of our own, and at
//! one push in flight per agent a thread spends its life blocked in `read`: the cost is a
//! context switch per push, small next to the server's work for a ~400-point sample. Each
//! agent simulates its own node (`sample::Node`), so values move as a real node's do; making
//! and serializing a sample costs the load generator some 25 µs of the CPU it shares with the
//! server, so a flood cycles through 16 samples made before the start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use server::store::{history_path, Store, Synchronous};

use crate::client::{Client, Reply};
use crate::error::{Error, Result};
use crate::proc_stat::{self, Usage};
use crate::sample::Node;
use crate::stats::{micros, Summary};

/// How simulated agents pace their pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The next push as soon as the reply to the previous one is in (one in flight).
    Flood,
    /// One push per interval, the agents' phases spread evenly over the interval.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub url: String,
    pub hosts: Vec<(String, String)>,
    pub duration: Duration,
    pub mode: Mode,
    pub guests: u32,
    /// The server process, for its RSS and CPU time.
    pub server_pid: Option<u32>,
    /// The server's database, to count stored points and measure the file.
    pub database: Option<PathBuf>,
    pub stack_kib: usize,
    /// Replies to pushes sent this early in the run are reported apart: the first sample of a
    /// newly registered host creates its ~400 series, once in the host's life.
    pub warmup: Duration,
}

/// Everything `run` measured.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub agents: usize,
    pub joined: usize,
    pub failed: Vec<String>,
    pub join_all: Duration,
    pub join: Summary,
    pub seconds: f64,
    pub samples_ok: u64,
    pub samples_refused: u64,
    /// Interval mode: pushes that started more than an interval late.
    pub late: u64,
    pub points_per_sample: usize,
    pub sample_bytes: usize,
    /// Push→reply after the warm-up.
    pub latency: Summary,
    /// Push→reply during the warm-up.
    pub warmup_latency: Summary,
    pub warmup: Duration,
    pub server_before: Option<Usage>,
    pub server_after: Option<Usage>,
    pub own_cpu_seconds: f64,
    pub db_points_before: Option<u64>,
    pub db_points_after: Option<u64>,
    pub db_bytes: Option<u64>,
    pub db_bytes_checkpointed: Option<u64>,
}

/// What one agent thread reports.
#[derive(Default)]
struct AgentResult {
    join_us: Option<u64>,
    error: Option<String>,
    latencies: Vec<u64>,
    warmup_latencies: Vec<u64>,
    ok: u64,
    refused: u64,
    late: u64,
    /// JSON bytes of the samples pushed.
    bytes: u64,
}

/// The start signal: agents connect and join, then wait here until all have.
struct Start {
    at: Mutex<Option<Instant>>,
    go: Condvar,
    ready: AtomicUsize,
}

impl Start {
    fn wait(&self) -> Instant {
        let mut at = self
            .at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(at) = *at {
                return at;
            }
            at = self
                .go
                .wait(at)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn release(&self) -> Instant {
        let now = Instant::now();
        *self
            .at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        self.go.notify_all();
        now
    }
}

pub fn run(options: &RunOptions) -> Result<RunReport> {
    let agents = options.hosts.len();
    if agents == 0 {
        return Err(Error::Setup("no agents to run".into()));
    }
    let points_per_sample = Node::new(0, options.guests).next(1.0).series_points().len();
    let start = Arc::new(Start {
        at: Mutex::new(None),
        go: Condvar::new(),
        ready: AtomicUsize::new(0),
    });
    // Collected_at of push n is t0 + n: distinct per agent, and never in a finished rollup
    // bucket (that would add the late-sample path to what we measure).
    let t0 = common::time::now_unix();
    let own_before = proc_stat::usage("self").map_or(0.0, |u| u.cpu_seconds);
    let spawned_at = Instant::now();
    let mut threads = Vec::with_capacity(agents);
    for (index, (name, token)) in options.hosts.iter().cloned().enumerate() {
        let (start, url, guests) = (start.clone(), options.url.clone(), options.guests);
        let (mode, duration, warmup, n) = (options.mode, options.duration, options.warmup, agents);
        let thread = std::thread::Builder::new()
            .name(format!("agent-{index}"))
            .stack_size(options.stack_kib * 1024)
            .spawn(move || {
                agent(&AgentSpec {
                    index,
                    agents: n,
                    url: &url,
                    name: &name,
                    token: &token,
                    mode,
                    duration,
                    warmup,
                    t0,
                    guests,
                    start: &start,
                })
            })
            .map_err(|e| Error::Setup(format!("cannot start agent thread {index}: {e}")))?;
        threads.push(thread);
    }
    // Wait for every agent to have joined (or failed), at most two minutes.
    let deadline = Instant::now() + Duration::from_secs(120);
    while start.ready.load(Ordering::SeqCst) < agents && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let join_all = spawned_at.elapsed();
    let db_points_before = options.database.as_deref().and_then(count_points);
    let server_before = options
        .server_pid
        .and_then(|p| proc_stat::usage(&p.to_string()));
    log::info!(
        "{agents} agents ready after {join_all:?}; pushing for {:?}",
        options.duration
    );
    let started = start.release();
    let mut results = Vec::with_capacity(agents);
    for thread in threads {
        results.push(thread.join().unwrap_or_else(|_| AgentResult {
            error: Some("agent thread panicked".into()),
            ..AgentResult::default()
        }));
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_after = options
        .server_pid
        .and_then(|p| proc_stat::usage(&p.to_string()));
    let own_cpu_seconds = proc_stat::usage("self").map_or(0.0, |u| u.cpu_seconds) - own_before;

    let mut report = RunReport {
        agents,
        join_all,
        seconds,
        points_per_sample,
        server_before,
        server_after,
        own_cpu_seconds,
        db_points_before,
        ..RunReport::default()
    };
    let mut sample_bytes = 0u64;
    let mut joins = Vec::new();
    let mut latencies = Vec::new();
    let mut warmup_latencies = Vec::new();
    for r in results {
        if let Some(us) = r.join_us {
            report.joined += 1;
            joins.push(us);
        }
        if let Some(e) = r.error {
            report.failed.push(e);
        }
        report.samples_ok += r.ok;
        report.samples_refused += r.refused;
        report.late += r.late;
        sample_bytes += r.bytes;
        latencies.extend(r.latencies);
        warmup_latencies.extend(r.warmup_latencies);
    }
    report.sample_bytes =
        usize::try_from(sample_bytes / (report.samples_ok + report.samples_refused).max(1))
            .unwrap_or(0);
    report.join = Summary::of(&mut joins);
    report.latency = Summary::of(&mut latencies);
    report.warmup_latency = Summary::of(&mut warmup_latencies);
    report.warmup = options.warmup;
    if let Some(db) = options.database.as_deref() {
        report.db_points_after = count_points(db);
        report.db_bytes = Some(db_bytes(db));
        match settle(db) {
            Ok(bytes) => report.db_bytes_checkpointed = Some(bytes),
            Err(e) => log::warn!("moving and checkpointing {}: {e}", db.display()),
        }
    }
    Ok(report)
}

struct AgentSpec<'a> {
    index: usize,
    agents: usize,
    url: &'a str,
    name: &'a str,
    token: &'a str,
    mode: Mode,
    duration: Duration,
    warmup: Duration,
    t0: i64,
    guests: u32,
    start: &'a Start,
}

/// Flood mode cycles through this many of the agent's samples, made before the start: a
/// flood measures throughput, and making a sample per push (~25 µs) would take that much CPU
/// from the server it shares the machine with.
const FLOOD_RING: usize = 16;

fn agent(spec: &AgentSpec<'_>) -> AgentResult {
    let mut result = AgentResult::default();
    let joined = Instant::now();
    let client = Client::connect(spec.url, Duration::from_secs(30)).and_then(|mut c| {
        match c.join(spec.name, spec.token)? {
            Reply::Ok => Ok(c),
            Reply::Error(reason) => Err(Error::Connection(format!("join refused: {reason}"))),
        }
    });
    let join_time = joined.elapsed();
    // Samples are collected_at t0 + n: a second apart, whatever the pace of the pushes.
    let every_seconds = 1.0;
    let mut node = Node::new(spec.index as u64, spec.guests);
    let ring: Vec<String> = match spec.mode {
        Mode::Flood => (0..FLOOD_RING)
            .map(|_| node.next_json(every_seconds))
            .collect(),
        Mode::Interval(_) => Vec::new(),
    };
    spec.start.ready.fetch_add(1, Ordering::SeqCst);
    let mut client = match client {
        Ok(c) => {
            result.join_us = Some(micros(join_time));
            c
        }
        Err(e) => {
            result.error = Some(format!("{}: {e}", spec.name));
            spec.start.wait();
            return result;
        }
    };
    let started = spec.start.wait();
    let end = started + spec.duration;
    let mut next = match spec.mode {
        Mode::Flood => started,
        Mode::Interval(every) => {
            // Spread the agents' phases over the interval, as real agents started at random.
            let offset = every.mul_f64(spec.index as f64 / spec.agents as f64);
            started + offset
        }
    };
    let mut n: i64 = 0;
    loop {
        let now = Instant::now();
        if next >= end || now >= end {
            break;
        }
        if let Mode::Interval(every) = spec.mode {
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > every {
                // More than an interval behind: count it and resume the rhythm from now,
                // as the agent's schedule does, rather than bursting to catch up.
                result.late += 1;
                next = now;
            }
            next += every;
        }
        let sent = Instant::now();
        let fresh;
        let data = match ring.get(usize::try_from(n).unwrap_or(0) % FLOOD_RING.max(1)) {
            Some(made) => made.as_str(),
            None => {
                fresh = node.next_json(every_seconds);
                fresh.as_str()
            }
        };
        result.bytes += data.len() as u64;
        let reply = client
            .push_fast(spec.t0 + n, data)
            .and_then(|msg_ref| client.wait_reply(&msg_ref));
        match reply {
            Ok(Reply::Ok) => {
                result.ok += 1;
                let latency = micros(sent.elapsed());
                if sent < started + spec.warmup {
                    result.warmup_latencies.push(latency);
                } else {
                    result.latencies.push(latency);
                }
            }
            Ok(Reply::Error(reason)) => {
                result.refused += 1;
                if result.error.is_none() {
                    result.error = Some(format!("{}: push refused: {reason}", spec.name));
                }
            }
            Err(e) => {
                result.error = Some(format!("{}: {e}", spec.name));
                return result;
            }
        }
        n += 1;
    }
    client.close();
    result
}

/// Raw points stored, or `None` if the database cannot be read.
pub fn count_points(db: &Path) -> Option<u64> {
    Store::open(db, Synchronous::Normal)
        .ok()?
        .raw_point_count()
        .ok()
}

/// Both database files plus their WALs.
pub fn db_bytes(db: &Path) -> u64 {
    [db.to_owned(), history_path(db)]
        .iter()
        .flat_map(|file| {
            let mut wal = file.as_os_str().to_owned();
            wal.push("-wal");
            [file.clone(), PathBuf::from(wal)]
        })
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Moves every raw point into the history file and checkpoints both files; returns the
/// history file's size, which is then the size of the raw points at rest.
pub fn settle(db: &Path) -> Result<u64> {
    let store = Store::open(db, Synchronous::Normal)?;
    store.move_to_history(i64::MAX, &|| false)?;
    store.checkpoint()?;
    let history = history_path(db);
    std::fs::metadata(&history)
        .map(|m| m.len())
        .map_err(|e| Error::Setup(format!("{}: {e}", history.display())))
}

impl RunReport {
    pub fn samples_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.samples_ok as f64;
        n / self.seconds.max(1e-9)
    }

    pub fn points_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let p = self.points_per_sample as f64;
        self.samples_per_second() * p
    }

    /// Points that reached the database during the run, by counting.
    pub fn points_stored(&self) -> Option<u64> {
        Some(
            self.db_points_after?
                .saturating_sub(self.db_points_before.unwrap_or(0)),
        )
    }

    pub fn server_cpu_seconds(&self) -> Option<f64> {
        Some(self.server_after?.cpu_seconds - self.server_before?.cpu_seconds)
    }

    /// Printed report: one fact per line, then a `summary` line of key=value for scripts.
    pub fn print(&self, label: &str) {
        println!("== run {label}");
        println!(
            "agents:            {} ({} joined, {} failed)",
            self.agents,
            self.joined,
            self.failed.len()
        );
        for e in self.failed.iter().take(5) {
            println!("  failure:         {e}");
        }
        println!(
            "join:              all ready after {:.2} s; per agent {}",
            self.join_all.as_secs_f64(),
            self.join.describe()
        );
        println!(
            "sample:            {} points, {} bytes of JSON",
            self.points_per_sample, self.sample_bytes
        );
        println!(
            "pushed:            {} ok, {} refused, {} late, in {:.1} s",
            self.samples_ok, self.samples_refused, self.late, self.seconds
        );
        println!(
            "throughput:        {:.0} samples/s, {:.0} points/s",
            self.samples_per_second(),
            self.points_per_second()
        );
        if self.warmup > Duration::ZERO {
            println!(
                "push->reply:       {} (first {} s, while hosts create their series)",
                self.warmup_latency.describe(),
                self.warmup.as_secs()
            );
            println!(
                "push->reply:       {} (after that)",
                self.latency.describe()
            );
        } else {
            println!("push->reply:       {}", self.latency.describe());
        }
        if let (Some(stored), Some(_)) = (self.points_stored(), self.db_points_after) {
            let expected = self.samples_ok * self.points_per_sample as u64;
            println!(
                "stored points:     {stored} counted in the database ({expected} expected: {})",
                if stored == expected {
                    "match"
                } else {
                    "MISMATCH"
                }
            );
        }
        if let (Some(before), Some(after)) = (self.server_before, self.server_after) {
            println!(
                "server:            {:.2} CPU s during the run ({:.0} % of one core), RSS {:.1} MiB (peak {:.1} MiB)",
                after.cpu_seconds - before.cpu_seconds,
                100.0 * (after.cpu_seconds - before.cpu_seconds) / self.seconds.max(1e-9),
                kib_to_mib(after.rss_kib),
                kib_to_mib(after.peak_rss_kib)
            );
        }
        println!(
            "loadgen:           {:.2} CPU s (its own share of the machine)",
            self.own_cpu_seconds
        );
        if let (Some(bytes), Some(points)) = (self.db_bytes, self.db_points_after) {
            println!(
                "database:          {:.1} MiB with WALs, {:.1} bytes/point; history file when all is moved and checkpointed: {}",
                bytes as f64 / 1_048_576.0,
                per(bytes, points),
                self.db_bytes_checkpointed.map_or_else(
                    || "-".to_owned(),
                    |b| format!(
                        "{:.1} MiB, {:.1} bytes/point",
                        b as f64 / 1_048_576.0,
                        per(b, points)
                    )
                )
            );
        }
        println!(
            "summary label={label} agents={} joined={} pushed={} samples_per_s={:.1} points_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} warmup_p99_ms={:.2} join_all_s={:.2} join_p99_ms={:.1} server_cpu_s={:.2} server_rss_mib={:.1} server_peak_rss_mib={:.1} loadgen_cpu_s={:.2} bytes_per_point={:.1} bytes_per_point_checkpointed={:.1} stored_points={} late={} refused={}",
            self.agents,
            self.joined,
            self.samples_ok,
            self.samples_per_second(),
            self.points_per_second(),
            crate::stats::ms(self.latency.p50_us),
            crate::stats::ms(self.latency.p99_us),
            crate::stats::ms(self.latency.max_us),
            crate::stats::ms(self.warmup_latency.p99_us),
            self.join_all.as_secs_f64(),
            crate::stats::ms(self.join.p99_us),
            self.server_cpu_seconds().unwrap_or(f64::NAN),
            self.server_after.map_or(f64::NAN, |u| kib_to_mib(u.rss_kib)),
            self.server_after.map_or(f64::NAN, |u| kib_to_mib(u.peak_rss_kib)),
            self.own_cpu_seconds,
            match (self.db_bytes, self.db_points_after) {
                (Some(b), Some(p)) => per(b, p),
                _ => f64::NAN,
            },
            match (self.db_bytes_checkpointed, self.db_points_after) {
                (Some(b), Some(p)) => per(b, p),
                _ => f64::NAN,
            },
            self.points_stored().map_or_else(|| "-".to_owned(), |p| p.to_string()),
            self.late,
            self.samples_refused,
        );
    }
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[allow(clippy::cast_precision_loss)]
fn per(bytes: u64, points: u64) -> f64 {
    bytes as f64 / points.max(1) as f64
}
