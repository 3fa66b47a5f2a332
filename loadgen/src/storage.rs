//! The raw history at rest, measured outside the server.
//!
//! `storage`: realistic samples (`sample::Node`) of N hosts over a span of time are written
//! through the store's own code and moved into the history file every minute of data, as the
//! maintenance thread does; then everything is moved and checkpointed and the history file
//! measured: bytes per raw point at rest. The same points can be written as OpenMetrics text,
//! for `promtool tsdb create-blocks-from openmetrics` to build a Prometheus block of them
//! (`bench/run.sh` does, and measures the block).
//!
//! `reads`: range reads of one series (1 h, 24 h, 7 days of raw points) from the store, next
//! to the same points in the previous layout (`history.points`, a SQLite row per point keyed
//! (series, time), read with the previous release's query), both files in the page cache.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::events::MetricKind;
use rusqlite::{params, Connection};
use server::store::{history_path, SampleWrite, Store, Synchronous};

use crate::error::{Error, Result};
use crate::sample::Node;

/// Seconds of data between two moves, as the maintenance thread's default interval.
const MOVE_EVERY: i64 = 60;
/// Points younger than this stay in `recent` at a move, as in the server.
const MOVE_AFTER: i64 = 30;

#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub dir: PathBuf,
    pub hosts: usize,
    /// Seconds of data per host.
    pub seconds: i64,
    /// Seconds between samples.
    pub interval: i64,
    pub guests: u32,
    /// Also write every raw point as OpenMetrics text here.
    pub openmetrics: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct StorageReport {
    pub hosts: usize,
    pub interval: i64,
    pub seconds: i64,
    pub series: usize,
    pub points: u64,
    /// The history file once everything is moved and checkpointed.
    pub history_bytes: u64,
    /// Of it, the pages of `history.chunks`.
    pub chunk_bytes: u64,
    pub write_time: Duration,
    pub move_time: Duration,
    pub openmetrics_lines: u64,
}

pub fn storage(options: &StorageOptions) -> Result<StorageReport> {
    let database = options.dir.join("storage.db");
    let store = fresh_store(&database)?;
    let interval = options.interval.max(1);
    let steps = options.seconds / interval;
    let t0 = common::time::now_unix() - options.seconds - 3600;
    let mut hosts = Vec::new();
    for i in 0..options.hosts {
        let name = format!("storage-{:04}", i + 1);
        let id = store.create_host(&name, "not a hash", t0)?.id;
        hosts.push((id, name, Node::new(i as u64, options.guests)));
    }
    let mut report = StorageReport {
        hosts: options.hosts,
        interval,
        seconds: options.seconds,
        ..StorageReport::default()
    };
    let mut last_move = t0;
    #[allow(clippy::cast_precision_loss)]
    let dt = interval as f64;
    for step in 0..steps {
        let t = t0 + step * interval;
        let writes: Vec<SampleWrite> = hosts
            .iter_mut()
            .map(|(id, name, node)| {
                let data = node.next_json(dt);
                server::ingest::sample_write(*id, MetricKind::Fast, t, &data, name)
            })
            .collect();
        report.points += writes.iter().map(|w| w.points.len() as u64).sum::<u64>();
        let started = Instant::now();
        store.write_samples_direct(writes)?;
        report.write_time += started.elapsed();
        if t - last_move >= MOVE_EVERY {
            let started = Instant::now();
            store.move_to_history(t - MOVE_AFTER, &|| false)?;
            report.move_time += started.elapsed();
            last_move = t;
        }
    }
    let started = Instant::now();
    store.move_to_history(i64::MAX, &|| false)?;
    report.move_time += started.elapsed();
    store.checkpoint()?;
    report.history_bytes = std::fs::metadata(history_path(&database))
        .map_err(|source| Error::Io {
            path: history_path(&database),
            source,
        })?
        .len();
    let stats = store.stats()?;
    report.chunk_bytes = stats
        .tiers
        .iter()
        .find(|t| t.tier == "raw" && t.file == "history")
        .map_or(0, |t| t.bytes);
    if let Some((id, _, _)) = hosts.first() {
        report.series = store.series_names(*id)?.len();
    }
    if let Some(path) = &options.openmetrics {
        let ids: Vec<(i64, String)> = hosts.iter().map(|(id, n, _)| (*id, n.clone())).collect();
        report.openmetrics_lines = write_openmetrics(&store, &ids, path)?;
    }
    Ok(report)
}

/// Writes every raw point of these hosts as OpenMetrics text: one gauge family per series name
/// (`pm_` and the name with `.` and `-` made `_`), a `host` label, timestamps in seconds.
fn write_openmetrics(store: &Store, hosts: &[(i64, String)], path: &Path) -> Result<u64> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut names = std::collections::BTreeSet::new();
    for (id, _) in hosts {
        names.extend(store.series_names(*id)?);
    }
    let mut lines = 0u64;
    for name in &names {
        let metric: String = format!("pm_{name}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        writeln!(out, "# TYPE {metric} gauge").map_err(io)?;
        for (id, host) in hosts {
            for (t, v) in store.raw_series(*id, name, i64::MIN, i64::MAX)? {
                writeln!(out, "{metric}{{host=\"{host}\"}} {v} {t}").map_err(io)?;
                lines += 1;
            }
        }
    }
    writeln!(out, "# EOF").map_err(io)?;
    out.flush().map_err(io)?;
    Ok(lines)
}

impl StorageReport {
    #[allow(clippy::cast_precision_loss)]
    pub fn print(&self, label: &str) {
        let per = |bytes: u64| bytes as f64 / self.points.max(1) as f64;
        println!("== storage {label}");
        println!(
            "data:              {} hosts x {} series, a sample every {} s for {} s: {} points",
            self.hosts, self.series, self.interval, self.seconds, self.points
        );
        println!(
            "written:           {:.1} s into recent, {:.1} s moving into chunks",
            self.write_time.as_secs_f64(),
            self.move_time.as_secs_f64()
        );
        println!(
            "at rest:           history file {} bytes = {:.3} bytes/point (chunks table {:.3})",
            self.history_bytes,
            per(self.history_bytes),
            per(self.chunk_bytes)
        );
        if self.openmetrics_lines > 0 {
            println!(
                "openmetrics:       {} samples written",
                self.openmetrics_lines
            );
        }
        println!(
            "summary label={label} hosts={} series={} interval_s={} points={} history_bytes={} bytes_per_point={:.3} chunk_bytes_per_point={:.3} write_s={:.1} move_s={:.1} openmetrics_samples={}",
            self.hosts,
            self.series,
            self.interval,
            self.points,
            self.history_bytes,
            per(self.history_bytes),
            per(self.chunk_bytes),
            self.write_time.as_secs_f64(),
            self.move_time.as_secs_f64(),
            self.openmetrics_lines
        );
    }
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub dir: PathBuf,
    pub days: i64,
    pub interval: i64,
    /// How many of the node's series to store (the first of [`READ_SERIES`], then others).
    pub series: usize,
    /// Seconds of data per move into chunks. The chunks come out the same whatever it is (a
    /// series' last chunk is filled before the next starts); fewer moves build 7 days faster.
    pub move_every: i64,
}

/// Series read first: a mix of what a dashboard charts.
pub const READ_SERIES: [&str; 8] = [
    "cpu_percent",
    "load1",
    "mem_used_bytes",
    "net.bond0.rx_bytes_per_s",
    "disk.nvme0n1.write_bytes_per_s",
    "guest.100.cpu_percent",
    "guest.100.net_in_bytes_per_s",
    "uptime_seconds",
];

/// Range lengths read, in seconds.
pub const RANGES: [(&str, i64); 3] = [("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400)];

#[derive(Debug, Clone, Default)]
pub struct ReadReport {
    pub series: usize,
    pub points_per_series: u64,
    pub interval: i64,
    /// Per range: (label, points per read, previous layout, chunks) — the median time of one
    /// read, averaged over the series.
    pub reads: Vec<(String, u64, Duration, Duration)>,
    pub previous_bytes: u64,
    pub chunk_bytes: u64,
}

pub fn reads(options: &ReadOptions) -> Result<ReadReport> {
    let interval = options.interval.max(1);
    let steps = options.days * 86_400 / interval;
    let end = common::time::now_unix() - 60;
    let t0 = end - steps * interval;
    // The new layout, through the store.
    let database = options.dir.join("chunks.db");
    let store = fresh_store(&database)?;
    let host = store.create_host("reads", "not a hash", t0)?.id;
    // The previous layout: the v4 schema's `recent` and `history.points`, written as its
    // mover wrote them (a minute of rows at a time, in (series, time) order).
    let previous = options.dir.join("previous.db");
    let old = previous_layout(&previous)?;
    let old_err = |source| Error::Database {
        path: previous.clone(),
        source,
    };

    let mut node = Node::new(1, 30);
    #[allow(clippy::cast_precision_loss)]
    let dt = interval as f64;
    let all: Vec<String> = node
        .next(dt)
        .series_points()
        .into_iter()
        .map(|p| p.0)
        .collect();
    let mut names: Vec<String> = READ_SERIES.iter().map(|s| (*s).to_owned()).collect();
    names.extend(
        all.into_iter()
            .filter(|n| !READ_SERIES.contains(&n.as_str())),
    );
    names.truncate(options.series.max(1));
    let mut batch: Vec<SampleWrite> = Vec::new();
    let mut minute: Vec<(i64, i64, f64)> = Vec::new();
    let mut last_move = t0;
    for step in 0..steps {
        let t = t0 + step * interval;
        let sample = node.next(dt).series_points();
        let points: Vec<(String, f64)> = sample
            .into_iter()
            .filter(|(n, _)| names.contains(n))
            .collect();
        for (name, v) in &points {
            let id = names.iter().position(|n| n == name).unwrap_or(0) as i64 + 1;
            minute.push((id, t, *v));
        }
        batch.push(SampleWrite {
            host_id: host,
            kind: MetricKind::Fast,
            collected_at: t,
            data_json: "{}".into(),
            points,
            versions: None,
            received_at: t,
        });
        if t - last_move >= options.move_every.max(1) || step + 1 == steps {
            store.write_samples_direct(std::mem::take(&mut batch))?;
            store.move_to_history(t - MOVE_AFTER, &|| false)?;
            minute.sort_unstable_by_key(|r| (r.0, r.1));
            let tx = old.unchecked_transaction().map_err(old_err)?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO history.points (series_id, t, v) VALUES (?1, ?2, ?3)")
                    .map_err(old_err)?;
                for (id, t, v) in minute.drain(..) {
                    insert.execute(params![id, t, v]).map_err(old_err)?;
                }
            }
            tx.commit().map_err(old_err)?;
            last_move = t;
        }
    }
    store.move_to_history(i64::MAX, &|| false)?;
    store.checkpoint()?;
    old.query_row("PRAGMA history.wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(old_err)?;

    let mut report = ReadReport {
        series: names.len(),
        points_per_series: u64::try_from(steps).unwrap_or(0),
        interval,
        previous_bytes: std::fs::metadata(history_path(&previous)).map_or(0, |m| m.len()),
        chunk_bytes: std::fs::metadata(history_path(&database)).map_or(0, |m| m.len()),
        ..ReadReport::default()
    };
    let last = t0 + (steps - 1) * interval;
    let mut stmt = old
        .prepare(
            // The previous release's raw read (`series::raw_points`), verbatim.
            "SELECT t, v FROM history.points WHERE series_id = ?1 AND t >= ?2 AND t <= ?3
             UNION ALL
             SELECT r.t, r.v FROM recent r
             WHERE r.host_id = ?4 AND r.t >= ?2 AND r.t <= ?3 AND r.series_id = ?1
               AND NOT EXISTS (SELECT 1 FROM history.points p WHERE p.series_id = ?1 AND p.t = r.t)
             ORDER BY 1",
        )
        .map_err(old_err)?;
    for (label, length) in RANGES {
        let from = last - length + 1;
        let repeat = if length > 86_400 {
            5
        } else if length > 3600 {
            15
        } else {
            50
        };
        let (mut old_sum, mut new_sum, mut points) = (Duration::ZERO, Duration::ZERO, 0u64);
        for (index, name) in names.iter().enumerate() {
            let id = index as i64 + 1;
            let mut read_old = || -> Result<Vec<(i64, f64)>> {
                stmt.query_map(params![id, from, last, 1], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(old_err)
            };
            let mut read_new = || {
                store
                    .raw_series(host, name, from, last)
                    .map_err(Error::from)
            };
            let a = read_old()?;
            let b = read_new()?;
            if a.len() != b.len()
                || a.iter()
                    .zip(&b)
                    .any(|(x, y)| x.0 != y.0 || x.1.to_bits() != y.1.to_bits())
            {
                return Err(Error::Setup(format!(
                    "{name} over {label}: the two layouts read differently ({} and {} points)",
                    a.len(),
                    b.len()
                )));
            }
            points = a.len() as u64;
            old_sum += median_time(repeat, &mut read_old)?;
            new_sum += median_time(repeat, &mut read_new)?;
        }
        let n = u32::try_from(names.len()).unwrap_or(1).max(1);
        report
            .reads
            .push((label.to_owned(), points, old_sum / n, new_sum / n));
    }
    Ok(report)
}

impl ReadReport {
    pub fn print(&self, label: &str) {
        println!("== reads {label}");
        println!(
            "data:              {} series, a point every {} s, {} points each",
            self.series, self.interval, self.points_per_series
        );
        #[allow(clippy::cast_precision_loss)]
        let per = |b: u64| b as f64 / (self.points_per_series * self.series as u64).max(1) as f64;
        println!(
            "history file:      previous layout {} bytes ({:.1} bytes/point), chunks {} bytes ({:.2} bytes/point)",
            self.previous_bytes,
            per(self.previous_bytes),
            self.chunk_bytes,
            per(self.chunk_bytes)
        );
        let mut summary = format!("summary label={label} interval_s={}", self.interval);
        for (range, points, old, new) in &self.reads {
            let speedup = old.as_secs_f64() / new.as_secs_f64().max(1e-9);
            println!(
                "read {range:<4} of one series ({points} points): previous layout {:.3} ms, chunks {:.3} ms -> {speedup:.1}x",
                old.as_secs_f64() * 1000.0,
                new.as_secs_f64() * 1000.0
            );
            summary.push_str(&format!(
                " read_{range}_points={points} read_{range}_previous_ms={:.3} read_{range}_chunks_ms={:.3} read_{range}_speedup={speedup:.1}",
                old.as_secs_f64() * 1000.0,
                new.as_secs_f64() * 1000.0
            ));
        }
        println!("{summary}");
    }
}

/// The median time of `repeat` runs of `read` (after one to warm up). Wall time of a loop
/// that only computes, with the files in the page cache: the median leaves out the runs
/// another process's time slice fell into.
fn median_time<T>(repeat: usize, read: &mut dyn FnMut() -> Result<T>) -> Result<Duration> {
    read()?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        std::hint::black_box(read()?);
        times.push(started.elapsed());
    }
    times.sort_unstable();
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
}

fn fresh_store(database: &Path) -> Result<Store> {
    if database.exists() {
        return Err(Error::Setup(format!(
            "{} exists; this needs a fresh database",
            database.display()
        )));
    }
    // Synchronous normal: what is measured here is the layout, not fsync.
    Ok(Store::open(database, Synchronous::Normal)?)
}

/// A database in the previous release's layout (schema version 4: `recent` in the main file,
/// `points` in the history file), with its pragmas.
fn previous_layout(path: &Path) -> Result<Connection> {
    if path.exists() {
        return Err(Error::Setup(format!("{} exists", path.display())));
    }
    let err = |source| Error::Database {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    let history = history_path(path);
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| {
            conn.execute("ATTACH DATABASE ?1 AS history", [history.to_string_lossy()])
                .map(|_| ())
        })
        .and_then(|()| conn.pragma_update(Some("history"), "journal_mode", "WAL"))
        .and_then(|()| {
            conn.execute_batch(
                "CREATE TABLE recent (host_id INTEGER NOT NULL, t INTEGER NOT NULL,
                     series_id INTEGER NOT NULL, v REAL NOT NULL,
                     PRIMARY KEY (host_id, t, series_id)) WITHOUT ROWID;
                 CREATE TABLE history.points (series_id INTEGER NOT NULL, t INTEGER NOT NULL,
                     v REAL NOT NULL, PRIMARY KEY (series_id, t)) WITHOUT ROWID;",
            )
        })
        .map_err(err)?;
    Ok(conn)
}
