//! `ceiling`: the storage write path alone. The same samples the agents would push, parsed and
//! flattened by the server's `ingest::sample_write`, committed with `Store::write_samples_direct`
//! in batches as group commit forms them, without sockets, threads or JSON frames. What the
//! end-to-end run reaches is compared with this.

use std::path::Path;
use std::time::{Duration, Instant};

use common::events::MetricKind;
use server::store::{Store, Synchronous};

use crate::error::{Error, Result};
use crate::sample::Node;

#[derive(Debug, Clone)]
pub struct CeilingOptions {
    pub samples: usize,
    pub guests: u32,
    /// Samples are spread round-robin over this many hosts, one second apart per host: the
    /// shape of N agents at a 1 s interval.
    pub hosts: usize,
    /// Samples per transaction.
    pub batch: usize,
    pub synchronous: Synchronous,
    /// Stop early after this long (fsync-bound single-sample runs are slow).
    pub max_time: Duration,
    /// When non-zero: this many threads each call `Store::write_sample` (the group commit the
    /// server's connection threads use) instead of one thread writing fixed batches.
    pub writers: usize,
    /// `PRAGMA name = value` run on the store's connection first: for trying SQLite settings
    /// (page cache, checkpoint interval) before proposing them for the server.
    pub pragmas: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct CeilingReport {
    pub samples: usize,
    pub points: usize,
    pub batch: usize,
    /// Time in `write_samples_direct` (SQLite).
    pub store: Duration,
    /// Time turning pushes into `SampleWrite`s (JSON parse and flatten), as the server does.
    pub prepare: Duration,
    /// Threads writing through group commit (0: fixed batches from one thread).
    pub writers: usize,
}

/// `writers` threads, each owning hosts `w, w + writers, ...`, write their samples one at a time
/// through `Store::write_sample`, as connection threads do. The samples are prepared first, so
/// the time is the store's alone.
fn group_commit(
    store: &Store,
    ids: &[(i64, String)],
    nodes: &mut [Node],
    options: &CeilingOptions,
    mut report: CeilingReport,
) -> Result<CeilingReport> {
    let now = common::time::now_unix();
    let hosts = ids.len();
    let per_writer = options.samples / options.writers;
    let prepare = Instant::now();
    let work: Vec<Vec<server::store::SampleWrite>> = (0..options.writers)
        .map(|w| {
            (0..per_writer)
                .map(|k| {
                    let i = w + k * options.writers;
                    let (host_id, name) = &ids[i % hosts];
                    let t = now + i64::try_from(i / hosts).unwrap_or(0);
                    let data = nodes[i % hosts].next_json(1.0);
                    server::ingest::sample_write(*host_id, MetricKind::Fast, t, &data, name)
                })
                .collect()
        })
        .collect();
    report.prepare = prepare.elapsed();
    report.samples = per_writer * options.writers;
    report.points = work.iter().flatten().map(|w| w.points.len()).sum();
    let started = Instant::now();
    let failed = std::thread::scope(|scope| {
        let threads: Vec<_> = work
            .into_iter()
            .map(|writes| {
                scope.spawn(move || {
                    writes
                        .into_iter()
                        .map(|w| store.write_sample(w))
                        .find_map(std::result::Result::err)
                })
            })
            .collect();
        threads.into_iter().find_map(|t| t.join().ok().flatten())
    });
    report.store = started.elapsed();
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(report)
}

pub fn ceiling(database: &Path, options: &CeilingOptions) -> Result<CeilingReport> {
    if database.exists() {
        return Err(Error::Setup(format!(
            "{} exists; the ceiling needs a fresh database",
            database.display()
        )));
    }
    let store = Store::open(database, options.synchronous)?;
    for (name, value) in &options.pragmas {
        store.set_pragma(name, value)?;
    }
    let now = common::time::now_unix();
    let hosts = options.hosts.max(1);
    let mut ids = Vec::with_capacity(hosts);
    {
        for i in 0..hosts {
            let name = format!("ceiling-{:04}", i + 1);
            ids.push((store.create_host(&name, "not a hash", now)?.id, name));
        }
    }
    let mut nodes: Vec<Node> = (0..hosts)
        .map(|i| Node::new(i as u64, options.guests))
        .collect();
    let mut report = CeilingReport {
        batch: options.batch.max(1),
        writers: options.writers,
        ..CeilingReport::default()
    };
    if options.writers > 0 {
        return group_commit(&store, &ids, &mut nodes, options, report);
    }
    let started = Instant::now();
    let mut k = 0;
    while k < options.samples && started.elapsed() < options.max_time {
        let end = (k + report.batch).min(options.samples);
        let prepare = Instant::now();
        let writes: Vec<_> = (k..end)
            .map(|i| {
                let (host_id, name) = &ids[i % hosts];
                let t = now + i64::try_from(i / hosts).unwrap_or(0);
                let data = nodes[i % hosts].next_json(1.0);
                server::ingest::sample_write(*host_id, MetricKind::Fast, t, &data, name)
            })
            .collect();
        report.prepare += prepare.elapsed();
        report.points += writes.iter().map(|w| w.points.len()).sum::<usize>();
        let store_started = Instant::now();
        store.write_samples_direct(writes)?;
        report.store += store_started.elapsed();
        report.samples = end;
        k = end;
    }
    Ok(report)
}

impl CeilingReport {
    #[allow(clippy::cast_precision_loss)]
    pub fn points_per_second(&self) -> f64 {
        self.points as f64 / self.store.as_secs_f64().max(1e-9)
    }

    #[allow(clippy::cast_precision_loss)]
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.store.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, label: &str) {
        println!("== ceiling {label}");
        if self.writers > 0 {
            println!(
                "written:           {} samples, {} points, by {} threads through group commit",
                self.samples, self.points, self.writers
            );
        } else {
            println!(
                "written:           {} samples, {} points, {} samples per transaction",
                self.samples, self.points, self.batch
            );
        }
        println!(
            "store:             {:.2} s -> {:.0} samples/s, {:.0} points/s",
            self.store.as_secs_f64(),
            self.samples_per_second(),
            self.points_per_second()
        );
        #[allow(clippy::cast_precision_loss)]
        let with_prepare = self.points as f64 / (self.store + self.prepare).as_secs_f64().max(1e-9);
        println!(
            "with parsing:      {:.2} s more -> {with_prepare:.0} points/s",
            self.prepare.as_secs_f64()
        );
        println!(
            "summary label={label} writers={} batch={} samples={} points={} samples_per_s={:.1} points_per_s={:.0} points_per_s_with_parse={with_prepare:.0}",
            self.writers,
            self.batch,
            self.samples,
            self.points,
            self.samples_per_second(),
            self.points_per_second()
        );
    }
}
