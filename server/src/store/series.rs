//! Metric history: writing samples (group commit), creating series, reading series back.
//!
//! Samples are written to `recent` (keyed host, time, series: a sample's points are neighbours,
//! so a commit touches a few pages per sample); `mover` later compresses them into
//! `history.chunks`. Reads take both: a point can be in both for a moment (copied, not yet
//! deleted, or resent after its move), and the history copy wins. Reads take `recent` first:
//! a point leaves `recent` only after its copy is committed, so a point that a read does not
//! find in `recent` is in the history file by the time that read looks there.
//!
//! Series ids: a host's series are created together, one `series_sets` row for all the names
//! a sample brings that the host never sent before (the i-th name of a row has id
//! `first_id + i`), so a new host's first sample writes one row, not one per series. Ids come
//! from `series_counter` and are never reused. A row loses the names of series forgotten after
//! retention (`forget`): it is split into rows for the runs of names that stay. The writer keeps every host's names in memory
//! (`SeriesIds`), loaded in one read on the host's first sample after a start; only the writer
//! creates series, under the database lock.
//!
//! Every connection thread hands its sample to `write_sample`, which queues it; the thread whose
//! sample found the queue empty takes the database lock and commits everything queued by then in
//! one transaction, then wakes the others. Under load, one fsync then covers many agents'
//! samples, and every caller still returns only after its own sample is committed.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use std::collections::HashMap;

use common::events::MetricKind;

use rusqlite::{params, Connection, Transaction};

use super::rollup::{self, TIERS};
use super::{chunks, next_key, Db, Store};
use crate::error::{Error, Result};

/// One sample to store: its flattened numeric series and the whole JSON for "latest" views.
#[derive(Debug, Clone)]
pub struct SampleWrite {
    pub host_id: i64,
    pub kind: MetricKind,
    /// Unix seconds.
    pub collected_at: i64,
    /// The sample's `data` JSON text as the agent sent it (kept in `latest`).
    pub data_json: String,
    pub points: Vec<(String, f64)>,
    /// `(proxmox, zfs)` versions from a slow sample.
    pub versions: Option<(Option<String>, Option<String>)>,
    /// When the server received it (becomes the host's `last_seen_at`).
    pub received_at: i64,
}

/// One series over a time range (Unix seconds, inclusive), at most `max_points` points.
#[derive(Debug, Clone, Copy)]
pub struct SeriesQuery<'a> {
    pub host_id: i64,
    pub name: &'a str,
    pub from: i64,
    pub to: i64,
    pub max_points: usize,
}

/// A stored value: raw points have avg = min = max.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    pub t: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

pub(super) struct Job {
    write: SampleWrite,
    outcome: Mutex<Option<std::result::Result<(), String>>>,
    done: Condvar,
}

impl Job {
    fn new(write: SampleWrite) -> Arc<Job> {
        Arc::new(Job {
            write,
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    fn finish(&self, outcome: std::result::Result<(), String>) {
        let mut slot = self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        drop(slot);
        self.done.notify_one();
    }

    /// Blocks until the writer that took this job along has committed it.
    fn wait(&self) -> std::result::Result<(), String> {
        let mut slot = self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            slot = self
                .done
                .wait(slot)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Fails the jobs of a batch that a panicking writer could not finish, so that their threads
/// do not wait forever. Finishing a finished job changes nothing.
struct FinishOnUnwind<'a>(&'a [Arc<Job>]);

impl Drop for FinishOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for job in self.0 {
                job.finish(Err("the writing thread panicked".into()));
            }
        }
    }
}

impl Store {
    /// Stores one sample; returns once it is committed (possibly by another thread, together
    /// with other samples).
    ///
    /// Group commit with a leader: the thread whose sample finds the queue empty becomes the
    /// writer; it takes the database lock, commits everything queued by then in one
    /// transaction and wakes each of those samples' threads. The others wait on their own
    /// sample, never on the database lock: when they all queued on the lock, every commit was
    /// followed by the lock passing through each thread just committed for (woken in turn only
    /// to see it was done) before the next batch could start, a convoy that under load cost
    /// more than the inserts. A sample queued behind a leader is always in that leader's batch
    /// (taking the batch empties the queue, so the next sample starts a new leader).
    pub fn write_sample(&self, write: SampleWrite) -> Result<()> {
        let job = Job::new(write);
        let leader = {
            let mut queue = self.queue();
            queue.push(job.clone());
            queue.len() == 1
        };
        if !leader {
            return job.wait().map_err(Error::Store);
        }
        let mut db = self.lock();
        let batch = std::mem::take(&mut *self.queue());
        let guard = FinishOnUnwind(&batch);
        let outcomes = write_batch(&mut db, &batch);
        drop(db);
        match outcomes {
            Ok(outcomes) => {
                let failure = outcomes.iter().find_map(|o| {
                    o.as_ref()
                        .err()
                        .filter(|e| super::health::is_store_failure(e))
                });
                match failure {
                    Some(e) => self.health.failed(&e.to_string()),
                    None => self.health.ok(),
                }
                for (queued, outcome) in batch.iter().zip(outcomes) {
                    queued.finish(outcome.map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                self.health.failed(&e.to_string());
                let e = e.to_string();
                for queued in &batch {
                    queued.finish(Err(e.clone()));
                }
            }
        }
        drop(guard);
        job.wait().map_err(Error::Store)
    }

    pub(super) fn queue(&self) -> MutexGuard<'_, Vec<Arc<Job>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores samples straight through the same code without the queue (benchmarks, imports).
    pub fn write_samples_direct(&self, writes: Vec<SampleWrite>) -> Result<()> {
        let batch: Vec<Arc<Job>> = writes.into_iter().map(Job::new).collect();
        let mut db = self.lock();
        for outcome in write_batch(&mut db, &batch).map_err(|e| self.err(e))? {
            outcome.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// How many raw points are stored (in the history file or still only in `recent`), each
    /// counted once. Reads every chunk a `recent` row could be in (benchmarks, tests).
    pub fn raw_point_count(&self) -> Result<u64> {
        let mut db = self.lock();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        let count = count_raw_points(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(count)
    }

    /// Every raw point of one series in `[from, to]` (inclusive, Unix seconds), in time order,
    /// each once wherever it is stored; no rollups, no downsampling (exports, benchmarks,
    /// tests). Empty for a series the host does not have.
    pub fn raw_series(
        &self,
        host_id: i64,
        name: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>> {
        let mut db = self.lock();
        let Db {
            conn, series_ids, ..
        } = &mut *db;
        let Some(series_id) = host_series(conn, series_ids, host_id)
            .map_err(|e| self.err(e))?
            .get(name)
            .copied()
        else {
            return Ok(Vec::new());
        };
        raw_points(conn, host_id, series_id, from, to).map_err(|e| self.err(e))
    }

    /// The names of a host's series, sorted.
    pub fn series_names(&self, host_id: i64) -> Result<Vec<String>> {
        let mut db = self.lock();
        let Db {
            conn, series_ids, ..
        } = &mut *db;
        let mut names: Vec<String> = host_series(conn, series_ids, host_id)
            .map_err(|e| self.err(e))?
            .keys()
            .cloned()
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// The newest sample of each kind a host sent: `(kind, collected_at, JSON)`.
    pub fn latest_samples(&self, host_id: i64) -> Result<Vec<(String, i64, String)>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT kind, collected_at, data FROM latest WHERE host_id = ?1 ORDER BY kind",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([host_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Points of one series between `from` and `to` (inclusive, Unix seconds), from the finest
    /// tier that still covers `from`, downsampled to at most `max_points`.
    pub fn query_series(
        &self,
        query: &SeriesQuery<'_>,
        retention: &rollup::Retention,
        now: i64,
    ) -> Result<Vec<Point>> {
        let SeriesQuery {
            host_id,
            name,
            from,
            to,
            max_points,
        } = *query;
        if to < from || max_points == 0 {
            return Ok(Vec::new());
        }
        let mut db = self.lock();
        let series_id = {
            let Db {
                conn, series_ids, ..
            } = &mut *db;
            host_series(conn, series_ids, host_id)
                .map_err(|e| self.err(e))?
                .get(name)
                .copied()
        };
        let Some(series_id) = series_id else {
            return Ok(Vec::new());
        };
        let tier = retention.tier_for(from, now);
        let mut points = Vec::new();
        // Rolled-up buckets first, then raw points newer than the last finished bucket.
        let raw_from = match tier {
            None => from,
            Some(index) => {
                let done_until = db.rollup_done_until[index];
                let mut stmt = db
                    .prepare_cached(
                        "SELECT t, avg, min, max FROM rollups
                         WHERE tier = ?1 AND series_id = ?2 AND t >= ?3 AND t <= ?4 ORDER BY t",
                    )
                    .map_err(|e| self.err(e))?;
                let width = TIERS[index];
                let rows = stmt
                    .query_map(
                        params![
                            width,
                            series_id,
                            from - from.rem_euclid(width),
                            to.min(done_until - 1)
                        ],
                        |row| {
                            Ok(Point {
                                t: row.get(0)?,
                                avg: row.get(1)?,
                                min: row.get(2)?,
                                max: row.get(3)?,
                            })
                        },
                    )
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| self.err(e))?;
                points.extend(rows);
                from.max(done_until)
            }
        };
        if raw_from <= to {
            let rows =
                raw_points(&db, host_id, series_id, raw_from, to).map_err(|e| self.err(e))?;
            points.extend(rows.into_iter().map(|(t, v)| Point {
                t,
                avg: v,
                min: v,
                max: v,
            }));
        }
        drop(db);
        Ok(downsample(points, from, to, max_points))
    }
}

/// Raw points of one series in `[from, to]`, ordered by time: the history file's, plus those
/// still only in `recent`. Works on either connection (both attach the history file the same).
pub(super) fn raw_points(
    conn: &Connection,
    host_id: i64,
    series_id: i64,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(i64, f64)>> {
    // `recent` first (see the module doc).
    let recent: Vec<(i64, f64)> = conn
        .prepare_cached(
            "SELECT t, v FROM recent
             WHERE host_id = ?1 AND t >= ?2 AND t <= ?3 AND series_id = ?4 ORDER BY t",
        )?
        .query_map(params![host_id, from, to, series_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut history = Vec::new();
    chunks::read(conn, series_id, from, to, &mut history)?;
    Ok(history_first(history, &recent))
}

/// `recent`'s points grouped by series, of one host in `[from, to)`, each group in time order.
pub(super) fn recent_by_series(
    conn: &Connection,
    host_id: i64,
    from: i64,
    to: i64,
) -> rusqlite::Result<HashMap<i64, Vec<(i64, f64)>>> {
    let mut by_series: HashMap<i64, Vec<(i64, f64)>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT series_id, t, v FROM recent WHERE host_id = ?1 AND t >= ?2 AND t < ?3",
    )?;
    let mut rows = stmt.query(params![host_id, from, to])?;
    while let Some(row) = rows.next()? {
        by_series
            .entry(row.get(0)?)
            .or_default()
            .push((row.get(1)?, row.get(2)?));
    }
    // Keyed (host, time, series): each series' rows come in time order already.
    Ok(by_series)
}

/// Points in the history file (`history`, in time order) merged with those of `recent` (in
/// time order) that have no history copy.
pub(super) fn history_first(history: Vec<(i64, f64)>, recent: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if recent.is_empty() {
        return history;
    }
    let mut out = Vec::with_capacity(history.len() + recent.len());
    let mut rest = recent.iter().peekable();
    for p in history {
        while let Some(r) = rest.next_if(|r| r.0 < p.0) {
            out.push(*r);
        }
        rest.next_if(|r| r.0 == p.0);
        out.push(p);
    }
    out.extend(rest);
    out
}

/// See [`Store::raw_point_count`]; inside one read transaction, so both files are read at
/// one instant each, `recent` first.
fn count_raw_points(tx: &Transaction<'_>) -> rusqlite::Result<u64> {
    let mut only_recent = 0u64;
    let mut after = i64::MIN;
    while let Some(host_id) = next_key(
        tx,
        "SELECT host_id FROM recent WHERE host_id > ?1 ORDER BY host_id LIMIT 1",
        after,
    )? {
        after = host_id;
        for (series_id, rows) in recent_by_series(tx, host_id, i64::MIN, i64::MAX)? {
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                continue;
            };
            let mut history = Vec::new();
            chunks::read(tx, series_id, first.0, last.0, &mut history)?;
            let moved = rows
                .iter()
                .filter(|r| history.binary_search_by_key(&r.0, |p| p.0).is_ok())
                .count();
            only_recent += (rows.len() - moved) as u64;
        }
    }
    let in_history: i64 = tx.query_row(
        "SELECT coalesce(sum(n), 0) FROM history.chunks",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(in_history).unwrap_or(0) + only_recent)
}

/// Merges points into at most `max_points` equal-width buckets over `[from, to]`.
pub fn downsample(points: Vec<Point>, from: i64, to: i64, max_points: usize) -> Vec<Point> {
    if points.len() <= max_points {
        return points;
    }
    let span = (to - from + 1).max(1);
    let buckets = i64::try_from(max_points).unwrap_or(i64::MAX).max(1);
    let width = (span + buckets - 1) / buckets;
    let mut out: Vec<Point> = Vec::with_capacity(max_points);
    let mut count = 0u32;
    for p in points {
        let start = from + (p.t - from).div_euclid(width) * width;
        match out.last_mut() {
            Some(last) if last.t == start => {
                count += 1;
                last.avg += (p.avg - last.avg) / f64::from(count);
                last.min = last.min.min(p.min);
                last.max = last.max.max(p.max);
            }
            _ => {
                count = 1;
                out.push(Point { t: start, ..p });
            }
        }
    }
    out
}

/// Series ids by host, then by name.
pub(super) type SeriesIds = std::collections::HashMap<i64, std::collections::HashMap<String, i64>>;

/// Commits a batch of samples in one transaction, each sample inside a savepoint of its own:
/// one that fails (its host was removed meanwhile, a constraint) is rolled back alone and
/// reported to its own writer; the others commit. `Err` only when the commit itself fails.
fn write_batch(db: &mut Db, batch: &[Arc<Job>]) -> rusqlite::Result<Vec<rusqlite::Result<()>>> {
    let Db {
        conn,
        series_ids,
        late_before,
        oldest_point,
        move_claim,
        dirty_generation,
        max_series_per_host,
        dormant,
        ..
    } = db;
    let max_series = *max_series_per_host;
    if let Some(oldest) = batch.iter().map(|job| job.write.collected_at).min() {
        *oldest_point = Some(oldest_point.map_or(oldest, |o| o.min(oldest)));
    }
    let mut new_ids = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let result = conn.transaction().and_then(|mut tx| {
        for job in batch {
            let w = &job.write;
            let mut job_ids = Vec::new();
            let outcome = tx.savepoint().and_then(|sp| {
                let cap = Cap {
                    max: max_series,
                    dormant,
                };
                write_one(&sp, w, series_ids, *late_before, &cap, &mut job_ids)?;
                sp.commit()
            });
            match &outcome {
                Ok(()) => {
                    new_ids.append(&mut job_ids);
                    if w.collected_at < *late_before && !w.points.is_empty() {
                        *dirty_generation += 1;
                    }
                    if let Some(claim) = move_claim.as_mut() {
                        claim.observe(w.host_id, w.collected_at);
                    }
                }
                Err(_) => {
                    forget_series(series_ids, job_ids);
                    // The host may be gone: its names are read again if it comes back.
                    series_ids.remove(&w.host_id);
                }
            }
            outcomes.push(outcome);
        }
        tx.commit()
    });
    match result {
        Ok(()) => Ok(outcomes),
        Err(e) => {
            // Rolled back: forget the ids of series that were never committed.
            forget_series(series_ids, new_ids);
            Err(e)
        }
    }
}

fn forget_series(series_ids: &mut SeriesIds, names: Vec<(i64, String)>) {
    for (host_id, name) in names {
        if let Some(names) = series_ids.get_mut(&host_id) {
            names.remove(&name);
        }
    }
}

/// What `max_series_per_host` allows a host: `max` series that are not dormant.
struct Cap<'a> {
    max: usize,
    /// Per host, its series without a raw point within raw retention at the last retention
    /// pass (a series seen again since still counts as dormant until the next pass). Read
    /// only when a sample brings new names, never on the path where all names are known.
    dormant: &'a HashMap<i64, usize>,
}

fn write_one(
    tx: &Connection,
    w: &SampleWrite,
    series_ids: &mut SeriesIds,
    rolled_up_until: i64,
    cap: &Cap<'_>,
    new_ids: &mut Vec<(i64, String)>,
) -> rusqlite::Result<()> {
    let late = w.collected_at < rolled_up_until;
    let names = host_series(tx, series_ids, w.host_id)?;
    // One lookup per point, by &str: no allocation on the writer's hot path, where every
    // name is known. Names this host never sent (its first samples) are counted against the
    // cap and created together, in one row.
    let mut ids: Vec<i64> = Vec::with_capacity(w.points.len());
    for (name, _) in &w.points {
        ids.push(names.get(name.as_str()).copied().unwrap_or(NOT_YET));
    }
    if ids.contains(&NOT_YET) {
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<&str> = w
            .points
            .iter()
            .zip(&ids)
            .filter(|(_, &id)| id == NOT_YET)
            .map(|((name, _), _)| name.as_str())
            .filter(|name| seen.insert(*name))
            .collect();
        let dormant = cap.dormant.get(&w.host_id).copied().unwrap_or(0);
        let active = names.len().saturating_sub(dormant);
        if active + fresh.len() > cap.max {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some(format!(
                    "{SERIES_CAP}: the host has {active} active series ({} in all) and this \
                     sample would add {}, more than max_series_per_host ({})",
                    names.len(),
                    fresh.len(),
                    cap.max
                )),
            ));
        }
        let first = create_series(tx, w.host_id, &fresh)?;
        for (id, name) in (first..).zip(&fresh) {
            names.insert((*name).to_owned(), id);
            new_ids.push((w.host_id, (*name).to_owned()));
        }
        for (id, (name, _)) in ids.iter_mut().zip(&w.points) {
            if *id == NOT_YET {
                *id = names.get(name.as_str()).copied().unwrap_or(NOT_YET);
            }
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO recent (host_id, t, series_id, v) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (series_id, (_, value)) in ids.into_iter().zip(&w.points) {
        insert.execute(params![w.host_id, w.collected_at, series_id, value])?;
        if late {
            // A replayed sample for a bucket already rolled up: recompute that bucket.
            rollup::mark_dirty(tx, 0, series_id, w.collected_at)?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO latest (host_id, kind, collected_at, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (host_id, kind) DO UPDATE SET collected_at = excluded.collected_at, data = excluded.data
         WHERE excluded.collected_at >= latest.collected_at
            OR typeof(latest.collected_at) != 'integer'",
    )?
    .execute(params![w.host_id, w.kind.as_str(), w.collected_at, w.data_json])?;
    tx.prepare_cached(
        "UPDATE hosts SET last_seen_at = max(coalesce(last_seen_at, 0), ?2) WHERE id = ?1",
    )?
    .execute(params![w.host_id, w.received_at])?;
    if let Some((proxmox, zfs)) = &w.versions {
        tx.prepare_cached(
            "UPDATE hosts SET proxmox_version = coalesce(?2, proxmox_version),
                zfs_version = coalesce(?3, zfs_version) WHERE id = ?1",
        )?
        .execute(params![w.host_id, proxmox, zfs])?;
    }
    Ok(())
}

/// How a refusal for the series cap starts (see `Error::is_series_cap`).
pub const SERIES_CAP: &str = "too many series";

/// The id a new name has in the writer's cache until its row is written (never stored).
const NOT_YET: i64 = 0;

/// A host's series, name → id, from the writer's cache, loaded in one read the first time.
pub(super) fn host_series<'a>(
    conn: &Connection,
    series_ids: &'a mut SeriesIds,
    host_id: i64,
) -> rusqlite::Result<&'a mut HashMap<String, i64>> {
    match series_ids.entry(host_id) {
        std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            Ok(entry.insert(load_host_series(conn, host_id)?))
        }
    }
}

/// The names of one `series_sets` row (a JSON array, ids `first`, `first + 1`, ...); a row that
/// does not decode is an error naming it.
pub(super) fn series_set_names(
    host_id: i64,
    first: i64,
    text: &str,
) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            format!("series_sets row {first} of host {host_id}: {e}").into(),
        )
    })
}

/// Every series of a host, name → id, from its `series_sets` rows. A name in two rows (which
/// only a bug could cause) keeps its older id.
fn load_host_series(conn: &Connection, host_id: i64) -> rusqlite::Result<HashMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_id, names FROM series_sets WHERE host_id = ?1 ORDER BY first_id",
    )?;
    let mut rows = stmt.query([host_id])?;
    let mut map = HashMap::new();
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let names = series_set_names(host_id, first, row.get_ref(1)?.as_str()?)?;
        for (id, name) in (first..).zip(names) {
            map.entry(name).or_insert(id);
        }
    }
    Ok(map)
}

/// Creates a host's new series in one row; returns the id of the first (the others follow).
fn create_series(tx: &Connection, host_id: i64, names: &[&str]) -> rusqlite::Result<i64> {
    let count = i64::try_from(names.len()).unwrap_or(i64::MAX);
    let first: i64 = tx
        .prepare_cached("UPDATE series_counter SET next_id = next_id + ?1 RETURNING next_id - ?1")?
        .query_row([count], |row| row.get(0))?;
    let text = serde_json::to_string(names)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached("INSERT INTO series_sets (first_id, host_id, names) VALUES (?1, ?2, ?3)")?
        .execute(params![first, host_id, text])?;
    Ok(first)
}

/// The ids of every series of a host, ascending.
pub(super) fn host_series_ids(conn: &Connection, host_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT first_id, json_array_length(names) FROM series_sets WHERE host_id = ?1
         ORDER BY first_id",
    )?;
    let mut rows = stmt.query([host_id])?;
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let count: i64 = row.get(1)?;
        ids.extend(first..first.saturating_add(count));
    }
    Ok(ids)
}

/// The host a series belongs to, or `None` when it is gone (its host was removed).
pub(super) fn host_of_series(conn: &Connection, series_id: i64) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT host_id FROM (SELECT host_id, first_id, names FROM series_sets
             WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1)
         WHERE ?1 < first_id + json_array_length(names)",
    )?
    .query_row([series_id], |row| row.get(0))
    .optional()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::{Retention, Synchronous};
    use crate::testutil::TempDir;

    pub(in crate::store) const T0: i64 = 1_764_000_000; // 2025-11-24T16:00:00Z, a 30-minute boundary

    pub(in crate::store) fn setup(dir: &TempDir) -> (Store, i64) {
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let host = store.create_host("pve1", "hash", T0 - 86400).unwrap();
        (store, host.id)
    }

    pub(in crate::store) fn write(host_id: i64, t: i64, points: &[(&str, f64)]) -> SampleWrite {
        SampleWrite {
            host_id,
            kind: MetricKind::Fast,
            collected_at: t,
            data_json: format!("{{\"t\":{t}}}"),
            points: points.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
            versions: None,
            received_at: t,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::store) fn query(
        store: &Store,
        host_id: i64,
        name: &str,
        from: i64,
        to: i64,
        max_points: usize,
        r: &Retention,
        now: i64,
    ) -> Vec<Point> {
        store
            .query_series(
                &SeriesQuery {
                    host_id,
                    name,
                    from,
                    to,
                    max_points,
                },
                r,
                now,
            )
            .unwrap()
    }

    pub(in crate::store) fn count(store: &Store, table: &str) -> i64 {
        store
            .lock()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Raw points in the history file's chunks.
    pub(in crate::store) fn moved(store: &Store) -> i64 {
        store
            .lock()
            .query_row("SELECT coalesce(sum(n), 0) FROM history.chunks", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[test]
    fn a_resent_sample_is_stored_once() {
        let dir = TempDir::new("series-idem");
        let (store, host) = setup(&dir);
        store
            .write_sample(write(host, T0, &[("load1", 0.5), ("cpu_percent", 10.0)]))
            .unwrap();
        store
            .write_sample(write(host, T0, &[("load1", 0.5), ("cpu_percent", 10.0)]))
            .unwrap();
        assert_eq!(store.raw_point_count().unwrap(), 2);
        assert_eq!(store.series_names(host).unwrap(), ["cpu_percent", "load1"]);
        // Resent again after the first copy moved into the history file: still one point.
        store.move_to_history(T0 + 1, &|| false).unwrap();
        store
            .write_sample(write(host, T0, &[("load1", 0.5), ("cpu_percent", 10.0)]))
            .unwrap();
        assert_eq!(store.raw_point_count().unwrap(), 2);
        let r = Retention::default();
        assert_eq!(query(&store, host, "load1", T0, T0, 10, &r, T0).len(), 1);
        store.move_to_history(T0 + 1, &|| false).unwrap();
        assert_eq!(moved(&store), 2);
        assert_eq!(count(&store, "recent"), 0);
    }

    #[test]
    fn latest_keeps_the_newest_even_when_older_samples_arrive_later() {
        let dir = TempDir::new("series-latest");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0 + 60, &[])).unwrap();
        store.write_sample(write(host, T0, &[])).unwrap();
        let latest = store.latest_samples(host).unwrap();
        assert_eq!(
            latest,
            vec![("fast".to_owned(), T0 + 60, format!("{{\"t\":{}}}", T0 + 60))]
        );
    }

    #[test]
    fn raw_query_and_downsampling() {
        let dir = TempDir::new("series-query");
        let (store, host) = setup(&dir);
        let writes = (0..10)
            .map(|i| write(host, T0 + i * 30, &[("load1", i as f64)]))
            .collect();
        store.write_samples_direct(writes).unwrap();
        let r = Retention::default();
        let all = query(&store, host, "load1", T0, T0 + 300, 100, &r, T0 + 300);
        assert_eq!(all.len(), 10);
        assert_eq!(
            all[3],
            Point {
                t: T0 + 90,
                avg: 3.0,
                min: 3.0,
                max: 3.0
            }
        );
        let two = query(&store, host, "load1", T0, T0 + 299, 2, &r, T0 + 300);
        assert_eq!(
            two,
            vec![
                Point {
                    t: T0,
                    avg: 2.0,
                    min: 0.0,
                    max: 4.0
                },
                Point {
                    t: T0 + 150,
                    avg: 7.0,
                    min: 5.0,
                    max: 9.0
                },
            ]
        );
        assert!(query(&store, host, "nope", T0, T0 + 300, 10, &r, T0 + 300).is_empty());
    }

    #[test]
    fn rollups_keep_avg_min_max_and_serve_old_ranges() {
        let dir = TempDir::new("series-rollup");
        let (store, host) = setup(&dir);
        // One point a minute for 7 hours: 0, 1, 2, ... so each 30-minute bucket is easy to check.
        let writes = (0..420)
            .map(|i| write(host, T0 + i * 60, &[("x", i as f64)]))
            .collect();
        store.write_samples_direct(writes).unwrap();
        let now = T0 + 7 * 3600 + 600;
        let report = store.roll_up(now, 1000, &|| false).unwrap();
        assert!(report.buckets > 0);
        let first: (f64, f64, f64, i64) = store
            .lock()
            .query_row(
                "SELECT avg, min, max, n FROM rollups WHERE tier = 1800 AND t = ?1",
                [T0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(first, (14.5, 0.0, 29.0, 30));
        let six_hours: (f64, f64, f64, i64) = store
            .lock()
            .query_row(
                "SELECT avg, min, max, n FROM rollups WHERE tier = 21600 AND t = ?1",
                [T0 - T0.rem_euclid(21600)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        // T0 is 16:00 UTC, so the 12:00–18:00 bucket holds minutes 0..119.
        assert_eq!(six_hours, (59.5, 0.0, 119.0, 120));

        // A range older than the raw retention reads the 30-minute tier, plus raw points newer
        // than the last rolled-up bucket.
        let retention = Retention {
            raw: 3600,
            ..Retention::default()
        };
        let points = query(&store, host, "x", T0, now, 1000, &retention, now);
        assert_eq!(
            points[0],
            Point {
                t: T0,
                avg: 14.5,
                min: 0.0,
                max: 29.0
            }
        );
        assert_eq!(points.len(), 14);
    }

    #[test]
    fn a_late_sample_recomputes_its_bucket() {
        let dir = TempDir::new("series-late");
        let (store, host) = setup(&dir);
        store
            .write_sample(write(host, T0 + 60, &[("x", 10.0)]))
            .unwrap();
        let now = T0 + 3 * 3600;
        store.roll_up(now, 1000, &|| false).unwrap();
        // Replayed after the bucket was rolled up.
        store
            .write_sample(write(host, T0 + 120, &[("x", 30.0)]))
            .unwrap();
        let report = store.roll_up(now, 1000, &|| false).unwrap();
        // The 30-minute bucket, and the 6-hour bucket above it which was also finished.
        assert_eq!(report.recomputed, 2);
        let (avg, n): (f64, i64) = store
            .lock()
            .query_row(
                "SELECT avg, n FROM rollups WHERE tier = 1800 AND t = ?1",
                [T0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((avg, n), (20.0, 2));
        let (avg, n): (f64, i64) = store
            .lock()
            .query_row("SELECT avg, n FROM rollups WHERE tier = 21600", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((avg, n), (20.0, 2));
        assert_eq!(count(&store, "rollup_dirty"), 0);
    }

    #[test]
    fn retention_deletes_only_what_aged_out() {
        let dir = TempDir::new("series-retention");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        store
            .write_sample(write(host, T0 + 8 * 86400, &[("x", 2.0)]))
            .unwrap();
        store
            .move_to_history(T0 + 8 * 86400 + 1, &|| false)
            .unwrap();
        let now = T0 + 8 * 86400;
        // Not rolled up yet: nothing is deleted, however old.
        let deleted = store
            .enforce_retention(&Retention::default(), now, &|| false)
            .unwrap();
        assert_eq!(deleted, 0);
        assert_eq!(store.raw_point_count().unwrap(), 2);
        // Rolled up (the empty week between is jumped over): the old point goes.
        for _ in 0..3 {
            store.roll_up(now, 48, &|| false).unwrap();
        }
        let deleted = store
            .enforce_retention(&Retention::default(), now, &|| false)
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(store.raw_point_count().unwrap(), 1);
    }

    #[test]
    fn rollups_jump_over_empty_time_and_reach_the_present() {
        let dir = TempDir::new("series-rollup-jump");
        let (store, host) = setup(&dir);
        // A stray stamp a month before the rest (a wrong clock, before stamps were checked).
        store
            .write_sample(write(host, T0 - 30 * 86400, &[("x", 1.0)]))
            .unwrap();
        store.write_sample(write(host, T0, &[("x", 2.0)])).unwrap();
        let now = T0 + 3600;
        // Before: 48 buckets a pass, a day of empty buckets per pass, 30 passes to get here.
        for _ in 0..3 {
            store.roll_up(now, 48, &|| false).unwrap();
        }
        let rows: i64 = store
            .lock()
            .query_row(
                "SELECT count(*) FROM rollups WHERE tier = 1800 AND t = ?1",
                [T0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1, "the present bucket is rolled up");
        assert_eq!(count(&store, "rollups WHERE tier = 1800"), 2);
    }

    #[test]
    fn a_clock_far_ahead_of_the_data_deletes_nothing() {
        let dir = TempDir::new("series-clock-jump");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        store
            .write_sample(write(host, T0 + 1800, &[("x", 1.0)]))
            .unwrap();
        store.move_to_history(T0 + 7200, &|| false).unwrap();
        store.roll_up(T0 + 7200, 48, &|| false).unwrap();
        // The server's clock jumps a year ahead.
        let now = T0 + 365 * 86400;
        let refused = store
            .enforce_retention(&Retention::default(), now, &|| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("refused to delete"), "{refused}");
        assert!(refused.contains("364 days earlier"), "{refused}");
        assert_eq!(store.raw_point_count().unwrap(), 2);
        assert!(count(&store, "rollups") > 0);
    }

    #[test]
    fn removing_a_host_removes_its_history() {
        let dir = TempDir::new("series-remove");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        store.move_to_history(T0 + 1, &|| false).unwrap();
        store
            .write_sample(write(host, T0 + 10, &[("x", 1.0)]))
            .unwrap();
        store.remove_host("pve1").unwrap();
        for table in [
            "history.chunks",
            "recent",
            "series_sets",
            "series",
            "latest",
        ] {
            assert_eq!(count(&store, table), 0, "{table}");
        }
    }

    #[test]
    fn a_failed_commit_is_reported_to_its_writer_and_the_next_one_succeeds() {
        let dir = TempDir::new("series-fail");
        let (store, host) = setup(&dir);
        // No such host: the new series violates its foreign key and the batch rolls back.
        assert!(store
            .write_sample(write(host + 99, T0, &[("x", 1.0)]))
            .is_err());
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        assert_eq!(store.raw_point_count().unwrap(), 1);
    }

    #[test]
    fn one_failing_sample_does_not_fail_the_others_in_its_commit() {
        let dir = TempDir::new("series-isolated");
        let (store, host) = setup(&dir);
        // A removed host's sample (its foreign key fails) between two good ones.
        let batch = [
            Job::new(write(host, T0, &[("x", 1.0)])),
            Job::new(write(host + 99, T0, &[("x", 1.0), ("y", 2.0)])),
            Job::new(write(host, T0 + 1, &[("x", 2.0), ("z", 3.0)])),
        ];
        let outcomes = write_batch(&mut store.lock(), &batch).unwrap();
        assert!(outcomes[0].is_ok());
        assert!(outcomes[1].is_err());
        assert!(outcomes[2].is_ok());
        assert_eq!(store.raw_point_count().unwrap(), 3);
        assert_eq!(store.series_names(host).unwrap(), ["x", "z"]);
        // The cache holds only what was committed: a later sample finds its series.
        store
            .write_sample(write(host, T0 + 2, &[("z", 4.0)]))
            .unwrap();
        assert_eq!(store.raw_point_count().unwrap(), 4);
    }

    #[test]
    fn concurrent_writers_all_commit() {
        let dir = TempDir::new("series-concurrent");
        let (store, host) = setup(&dir);
        let store = std::sync::Arc::new(store);
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store
                            .write_sample(write(host, T0 + n * 1000 + i, &[("x", 1.0)]))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.raw_point_count().unwrap(), 400);
    }

    #[test]
    fn a_hosts_new_series_are_created_in_one_row_and_survive_a_restart() {
        let dir = TempDir::new("series-ids");
        let (store, host) = setup(&dir);
        let names: Vec<String> = (0..400).map(|i| format!("s{i}")).collect();
        let first: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        store.write_sample(write(host, T0, &first)).unwrap();
        assert_eq!(count(&store, "series_sets"), 1);
        assert_eq!(count(&store, "series"), 400);
        let ids = |store: &Store| -> Vec<(String, i64)> {
            let db = store.lock();
            let mut stmt = db
                .prepare("SELECT name, id FROM series ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let before = ids(&store);
        assert_eq!(before[0], ("s0".to_owned(), 1));
        assert_eq!(before[399], ("s399".to_owned(), 400));
        drop(store);
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        // After a restart: known names keep their ids, new ones come in one more row, a name
        // twice in one sample is one series.
        store
            .write_sample(write(
                host,
                T0 + 1,
                &[("s7", 2.0), ("new", 3.0), ("new", 3.0), ("newer", 4.0)],
            ))
            .unwrap();
        assert_eq!(count(&store, "series_sets"), 2);
        let after = ids(&store);
        assert_eq!(&after[..400], &before[..]);
        assert_eq!(
            &after[400..],
            [("new".to_owned(), 401), ("newer".to_owned(), 402)]
        );
        let r = Retention::default();
        assert_eq!(
            query(&store, host, "s7", T0, T0 + 2, 10, &r, T0 + 2).len(),
            2
        );
        assert_eq!(
            query(&store, host, "newer", T0, T0 + 2, 10, &r, T0 + 2).len(),
            1
        );
        // Ids are never handed out again, not even after their host is gone.
        store.remove_host("pve1").unwrap();
        let host = store.create_host("pve2", "hash", T0).unwrap().id;
        store.write_sample(write(host, T0, &[("s0", 1.0)])).unwrap();
        assert_eq!(ids(&store), [("s0".to_owned(), 403)]);
    }

    #[test]
    fn moved_points_read_the_same_and_leave_recent() {
        let dir = TempDir::new("series-move");
        let (store, host) = setup(&dir);
        let writes = (0..100)
            .map(|i| write(host, T0 + i * 10, &[("a", i as f64), ("b", -(i as f64))]))
            .collect();
        store.write_samples_direct(writes).unwrap();
        let r = Retention::default();
        let now = T0 + 1000;
        let before = query(&store, host, "b", T0, now, 1000, &r, now);
        assert_eq!(before.len(), 100);
        // Only what is older than the bound moves.
        let report = store.move_to_history(T0 + 500, &|| false).unwrap();
        assert_eq!((report.hosts, report.copied, report.deleted), (1, 100, 100));
        assert_eq!(count(&store, "recent"), 100);
        assert_eq!(query(&store, host, "b", T0, now, 1000, &r, now), before);
        store.move_to_history(now, &|| false).unwrap();
        assert_eq!(count(&store, "recent"), 0);
        assert_eq!(moved(&store), 200);
        assert_eq!(query(&store, host, "b", T0, now, 1000, &r, now), before);
        // Rows in both files (copied, deletion not done; or resent) are read once.
        let again = (0..100)
            .map(|i| write(host, T0 + i * 10, &[("a", i as f64), ("b", -(i as f64))]))
            .collect();
        store.write_samples_direct(again).unwrap();
        assert_eq!(count(&store, "recent"), 200);
        assert_eq!(query(&store, host, "b", T0, now, 1000, &r, now), before);
        assert_eq!(store.raw_point_count().unwrap(), 200);
        // And moved again, they change nothing.
        let report = store.move_to_history(now, &|| false).unwrap();
        assert_eq!((report.copied, report.deleted), (0, 200));
        assert_eq!(moved(&store), 200);
    }
}
