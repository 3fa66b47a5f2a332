//! `layout`: an experiment on the raw points table, outside the server. The same points are
//! written (a) into `points` keyed (series, time) as the server does today, where every point of
//! a sample lands on a different B-tree page, and (b) first into a time-ordered buffer keyed
//! (time, series), where a sample's points are neighbours, moved into `points` in
//! (series, time) order every `move_every` seconds of data. Both with the server's pragmas
//! (WAL, synchronous=full) and the same batches. It measures what a schema change would buy;
//! the server's schema is not touched.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::error::{Error, Result};
use crate::sample::{fast_sample, VARIANTS};

#[derive(Debug, Clone)]
pub struct LayoutOptions {
    pub samples: usize,
    pub hosts: usize,
    pub guests: u32,
    pub batch: usize,
    /// Seconds of data the buffer holds before a move.
    pub move_every: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LayoutReport {
    pub points: usize,
    pub series_major: Duration,
    pub buffered: Duration,
    /// Of `buffered`, the time spent moving rows from the buffer into `points`.
    pub moving: Duration,
    pub series_major_bytes_written: u64,
    pub buffered_bytes_written: u64,
}

const SCHEMA: &str = "
    CREATE TABLE points (series_id INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL,
        PRIMARY KEY (series_id, t)) WITHOUT ROWID;
    CREATE TABLE points_recent (t INTEGER NOT NULL, series_id INTEGER NOT NULL, v REAL NOT NULL,
        PRIMARY KEY (t, series_id)) WITHOUT ROWID;";

pub fn layout(dir: &Path, options: &LayoutOptions) -> Result<LayoutReport> {
    // Points of each variant, with series ids: host h's series i is h * 10000 + i.
    let variants: Vec<Vec<f64>> = (0..VARIANTS)
        .map(|v| {
            fast_sample(options.guests, u32::try_from(v).unwrap_or(0))
                .series_points()
                .into_iter()
                .map(|(_, value)| value)
                .collect()
        })
        .collect();
    let hosts = options.hosts.max(1);
    let t0 = common::time::now_unix();
    let sample = |k: usize| -> (i64, i64, &Vec<f64>) {
        let host = i64::try_from(k % hosts).unwrap_or(0);
        let t = t0 + i64::try_from(k / hosts).unwrap_or(0);
        (
            host * 10_000,
            t,
            &variants[(k / hosts + k % hosts) % VARIANTS],
        )
    };
    let mut report = LayoutReport::default();

    let path = dir.join("series-major.db");
    let conn = open(&path)?;
    let written = io_written();
    let started = Instant::now();
    for start in (0..options.samples).step_by(options.batch.max(1)) {
        let end = (start + options.batch.max(1)).min(options.samples);
        let tx = conn.unchecked_transaction().map_err(db(&path))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO points (series_id, t, v) VALUES (?1, ?2, ?3)",
                )
                .map_err(db(&path))?;
            for k in start..end {
                let (base, t, values) = sample(k);
                for (i, v) in values.iter().enumerate() {
                    let id = base + i64::try_from(i).unwrap_or(0);
                    insert.execute(params![id, t, v]).map_err(db(&path))?;
                    report.points += 1;
                }
            }
        }
        tx.commit().map_err(db(&path))?;
    }
    report.series_major = started.elapsed();
    report.series_major_bytes_written = io_written().saturating_sub(written);
    drop(conn);

    let path = dir.join("buffered.db");
    let conn = open(&path)?;
    let written = io_written();
    let started = Instant::now();
    let mut moved_until = t0;
    let mut last_t = t0;
    let mut moving = Duration::ZERO;
    let mut move_rows = |conn: &Connection, until: i64| -> Result<()> {
        let m = Instant::now();
        let tx = conn.unchecked_transaction().map_err(db(&path))?;
        tx.execute(
            "INSERT OR IGNORE INTO points (series_id, t, v)
             SELECT series_id, t, v FROM points_recent WHERE t < ?1 ORDER BY series_id, t",
            [until],
        )
        .map_err(db(&path))?;
        tx.execute("DELETE FROM points_recent WHERE t < ?1", [until])
            .map_err(db(&path))?;
        tx.commit().map_err(db(&path))?;
        moving += m.elapsed();
        Ok(())
    };
    for start in (0..options.samples).step_by(options.batch.max(1)) {
        let end = (start + options.batch.max(1)).min(options.samples);
        let tx = conn.unchecked_transaction().map_err(db(&path))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO points_recent (t, series_id, v) VALUES (?1, ?2, ?3)",
                )
                .map_err(db(&path))?;
            for k in start..end {
                let (base, t, values) = sample(k);
                last_t = t;
                for (i, v) in values.iter().enumerate() {
                    let id = base + i64::try_from(i).unwrap_or(0);
                    insert.execute(params![t, id, v]).map_err(db(&path))?;
                }
            }
        }
        tx.commit().map_err(db(&path))?;
        if last_t - moved_until >= options.move_every {
            move_rows(&conn, last_t)?;
            moved_until = last_t;
        }
    }
    move_rows(&conn, last_t + 1)?;
    report.buffered = started.elapsed();
    report.moving = moving;
    report.buffered_bytes_written = io_written().saturating_sub(written);
    Ok(report)
}

fn open(path: &Path) -> Result<Connection> {
    if path.exists() {
        return Err(Error::Setup(format!("{} exists", path.display())));
    }
    let conn = Connection::open(path).map_err(db(path))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
        .and_then(|()| conn.execute_batch(SCHEMA))
        .map_err(db(path))?;
    Ok(conn)
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Database {
        path: path.to_owned(),
        source,
    }
}

/// Bytes this process has caused to be written to storage so far (`/proc/self/io`).
fn io_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl LayoutReport {
    pub fn print(&self) {
        #[allow(clippy::cast_precision_loss)]
        let rate = |d: Duration| self.points as f64 / d.as_secs_f64().max(1e-9);
        #[allow(clippy::cast_precision_loss)]
        let mib = |b: u64| b as f64 / 1_048_576.0;
        println!("== layout experiment ({} points)", self.points);
        println!(
            "series-major (today):  {:.2} s -> {:.0} points/s, {:.0} MiB written",
            self.series_major.as_secs_f64(),
            rate(self.series_major),
            mib(self.series_major_bytes_written)
        );
        println!(
            "time buffer + moves:   {:.2} s ({:.2} s moving) -> {:.0} points/s, {:.0} MiB written",
            self.buffered.as_secs_f64(),
            self.moving.as_secs_f64(),
            rate(self.buffered),
            mib(self.buffered_bytes_written)
        );
        println!(
            "summary label=layout points={} series_major_points_per_s={:.0} buffered_points_per_s={:.0} series_major_mib_written={:.0} buffered_mib_written={:.0}",
            self.points,
            rate(self.series_major),
            rate(self.buffered),
            mib(self.series_major_bytes_written),
            mib(self.buffered_bytes_written)
        );
    }
}
