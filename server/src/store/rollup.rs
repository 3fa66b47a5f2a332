//! Tiered retention, modelled on Proxmox VE's RRD but longer at full resolution: raw points,
//! then 30-minute, 6-hour and 1-week buckets keeping AVERAGE, MIN and MAX (and the count, so
//! coarser tiers average correctly).
//!
//! A background thread (`crate::maintenance`) rolls finished buckets up in order and deletes
//! what has aged out. Buckets are computed on the background connection, outside the ingestion
//! lock; only writing the results (a few hundred rows per host) takes it. Samples replayed by
//! an agent after an outage can land in a bucket that is already rolled up; ingestion marks
//! such buckets dirty and they are recomputed here.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Deserialize;

use super::series::{history_first, host_of_series, host_series_ids, recent_by_series};
use super::{chunks, history_write, next_key, Bite, Store};
use crate::error::{Error, Result};

pub const TIER_COUNT: usize = 3;
/// Bucket widths in seconds: 30 minutes, 6 hours, 1 week (weeks start on Thursday 00:00 UTC,
/// the Unix epoch's weekday).
pub const TIERS: [i64; TIER_COUNT] = [1800, 6 * 3600, 7 * 86400];
/// A 30-minute bucket is rolled up this long after it ends, so that samples of its last
/// seconds still in flight make it in without a recompute.
const GRACE_SECONDS: i64 = 300;
/// Series per rollup or deletion transaction.
const SERIES_PER_TRANSACTION: i64 = 500;
/// Series per transaction of the hourly rollup retention sweep under the ingestion lock: three
/// index seeks each, so a hold stays well under a millisecond even when nothing expires; up to
/// the larger number while ingestion is saturated.
const SERIES_PER_SWEEP: i64 = 50;
const SERIES_PER_SWEEP_SATURATED: i64 = 1600;
const DAY: i64 = 86400;
/// Retention deletes nothing while the newest stored sample is older than this (see
/// `Store::enforce_retention`).
const SWEEP_REFUSED_AFTER: i64 = DAY;

/// How long each tier is kept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: i64,
    pub tiers: [i64; TIER_COUNT],
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            raw: 7 * DAY,
            tiers: [90 * DAY, 730 * DAY, 3650 * DAY],
        }
    }
}

/// `[retention]` in the server's TOML, in days.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDays {
    pub raw_days: Option<u32>,
    pub rollup_30m_days: Option<u32>,
    pub rollup_6h_days: Option<u32>,
    pub rollup_1w_days: Option<u32>,
}

impl Retention {
    /// Applies the days given in the config; each tier must be kept at least as long as the
    /// finer one before it, or queries would find holes.
    pub fn apply(&mut self, days: &RetentionDays) -> std::result::Result<(), String> {
        let secs = |d: u32| i64::from(d) * DAY;
        if let Some(d) = days.raw_days {
            self.raw = secs(d);
        }
        for (slot, value) in self.tiers.iter_mut().zip([
            days.rollup_30m_days,
            days.rollup_6h_days,
            days.rollup_1w_days,
        ]) {
            if let Some(d) = value {
                *slot = secs(d);
            }
        }
        if self.raw < DAY {
            return Err("retention.raw_days must be at least 1".into());
        }
        let mut previous = self.raw;
        for (key, keep) in ["rollup_30m_days", "rollup_6h_days", "rollup_1w_days"]
            .iter()
            .zip(self.tiers)
        {
            if keep < previous {
                return Err(format!(
                    "retention.{key} must be at least as long as the tier before it"
                ));
            }
            previous = keep;
        }
        Ok(())
    }

    /// The tier to read for a range starting at `from`: `None` for raw points while they still
    /// cover `from`, else the finest rollup tier that does (the coarsest as a last resort).
    pub fn tier_for(&self, from: i64, now: i64) -> Option<usize> {
        if from >= now - self.raw {
            return None;
        }
        Some(
            self.tiers
                .iter()
                .position(|keep| from >= now - keep)
                .unwrap_or(TIER_COUNT - 1),
        )
    }
}

/// The `done_until` of each tier, 0 where nothing is rolled up yet.
pub(super) fn load_progress(conn: &Connection) -> rusqlite::Result<[i64; TIER_COUNT]> {
    let mut done = [0; TIER_COUNT];
    for (slot, width) in done.iter_mut().zip(TIERS) {
        *slot = conn
            .query_row(
                "SELECT done_until FROM rollup_progress WHERE tier = ?1",
                [width],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
    }
    Ok(done)
}

/// Remembers that the bucket of tier `tier` holding `t` must be computed again.
pub(super) fn mark_dirty(
    tx: &Connection,
    tier: usize,
    series_id: i64,
    t: i64,
) -> rusqlite::Result<()> {
    let width = TIERS[tier];
    tx.prepare_cached(
        "INSERT OR IGNORE INTO rollup_dirty (tier, series_id, t) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![width, series_id, t - t.rem_euclid(width)])?;
    Ok(())
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub buckets: usize,
    pub rollup_rows: usize,
    pub recomputed: usize,
    pub deleted: usize,
}

impl Store {
    /// Rolls up finished buckets (at most `max_buckets` per tier) and recomputes dirty ones.
    /// `stop` is asked between transactions.
    pub fn roll_up(&self, now: i64, max_buckets: usize, stop: &dyn Fn() -> bool) -> Result<Report> {
        let mut report = Report::default();
        for (tier, &width) in TIERS.iter().enumerate() {
            let target = (now - GRACE_SECONDS).div_euclid(width) * width;
            let mut done = self.lock().rollup_done_until[tier];
            if done == 0 {
                done = match self.first_bucket(tier)? {
                    Some(first) => first,
                    None => continue,
                };
                // Remember the start at once: finding it scans the table, which must not
                // happen again every pass until the first bucket is finished.
                self.save_progress(tier, done)?;
                if tier == 0 {
                    let mut db = self.lock();
                    db.late_before = db.late_before.max(done);
                }
            }
            let mut buckets = 0;
            while done + width <= target && buckets < max_buckets && !stop() {
                if tier == 0 {
                    // From now on a sample for this bucket counts as late and marks it dirty,
                    // even if it lands while the bucket is being computed.
                    let mut db = self.lock();
                    db.late_before = db.late_before.max(done + width);
                }
                match self.roll_bucket(tier, done, stop)? {
                    Some(0) => {
                        // Nothing in this bucket at all (the server was down, or the tier
                        // started at a stray old stamp): jump to the next bucket holding data
                        // instead of stepping through empty time `max_buckets` a pass, while
                        // raw points age out before their turn comes.
                        if tier == 0 {
                            // Whatever lands in the range jumped over from now on is late and
                            // marks its bucket dirty, so the search below cannot miss it.
                            let mut db = self.lock();
                            db.late_before = db.late_before.max(target);
                        }
                        let next = self.next_data(tier, done + width)?;
                        done = next
                            .map_or(target, |t| t.div_euclid(width) * width)
                            .clamp(done + width, target);
                        buckets += 1;
                        self.save_progress(tier, done)?;
                        continue;
                    }
                    Some(rows) => report.rollup_rows += rows,
                    // Stopped half way: the bucket is computed again next time.
                    None => break,
                }
                done += width;
                buckets += 1;
                self.save_progress(tier, done)?;
            }
            report.buckets += buckets;
            report.recomputed += self.recompute_dirty(tier, stop)?;
        }
        Ok(report)
    }

    /// The time of the oldest point at or after `from` in tier `tier`'s source (raw points for
    /// the first, the finer rollups for the others); `None` when there is none. Rare (only
    /// after a bucket without any point), and allowed to scan: it runs on the background
    /// connection, outside the ingestion lock.
    fn next_data(&self, tier: usize, from: i64) -> Result<Option<i64>> {
        let bg = self.background();
        let found = if tier == 0 {
            bg.query_row(
                "SELECT min(t) FROM (
                     SELECT min(t) AS t FROM recent WHERE t >= ?1
                     UNION ALL
                     SELECT min(max(start, ?1)) FROM history.chunks WHERE \"end\" >= ?1)",
                [from],
                |row| row.get::<_, Option<i64>>(0),
            )
        } else {
            bg.query_row(
                "SELECT min(t) FROM rollups WHERE tier = ?1 AND t >= ?2",
                [TIERS[tier - 1], from],
                |row| row.get::<_, Option<i64>>(0),
            )
        };
        found.map_err(|e| self.err(e))
    }

    /// Where a tier starts: the bucket of the oldest data its source can have.
    fn first_bucket(&self, tier: usize) -> Result<Option<i64>> {
        let db = self.lock();
        let first: Option<i64> = if tier == 0 {
            // No index on time alone (a scan would stall ingestion): the oldest registration
            // or the oldest sample this process stored, whichever is older.
            db.query_row("SELECT min(inserted_at) FROM hosts", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map(|registered| match (registered, db.oldest_point) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        } else {
            db.query_row(
                "SELECT min(t) FROM rollups WHERE tier = ?1",
                [TIERS[tier - 1]],
                |row| row.get(0),
            )
        }
        .map_err(|e| self.err(e))?;
        let width = TIERS[tier];
        Ok(first.map(|t| t.div_euclid(width) * width))
    }

    fn save_progress(&self, tier: usize, done: i64) -> Result<()> {
        let mut db = self.lock_for_background();
        db.execute(
            "INSERT INTO rollup_progress (tier, done_until) VALUES (?1, ?2)
             ON CONFLICT (tier) DO UPDATE SET done_until = excluded.done_until",
            params![TIERS[tier], done],
        )
        .map_err(|e| self.err(e))?;
        db.rollup_done_until[tier] = done;
        Ok(())
    }

    /// Computes bucket `start` of `tier` for every series, host by host: computed on the
    /// background connection, written under the lock in one short transaction per host.
    fn roll_bucket(
        &self,
        tier: usize,
        start: i64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<usize>> {
        let mut rows = 0;
        let mut after = i64::MIN;
        loop {
            if stop() {
                return Ok(None);
            }
            let (host_id, computed) = {
                let bg = self.background();
                let next = next_key(
                    &bg,
                    "SELECT host_id FROM series_sets WHERE host_id > ?1 ORDER BY host_id LIMIT 1",
                    after,
                )
                .map_err(|e| self.err(e))?;
                let Some(host_id) = next else { break };
                let computed =
                    aggregate(&bg, tier, host_id, None, start).map_err(|e| self.err(e))?;
                (host_id, computed)
            };
            after = host_id;
            if computed.is_empty() {
                continue;
            }
            let mut db = self.lock_for_background();
            let tx = db.transaction().map_err(|e| self.err(e))?;
            for bucket in &computed {
                store_bucket(&tx, tier, bucket, start).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            rows += computed.len();
        }
        Ok(Some(rows))
    }

    /// Recomputes buckets marked dirty by late samples, a few hundred per round. A round that
    /// raced with a new late sample keeps its marks (the snapshot it computed from may have
    /// missed that sample) and the rest waits for the next pass.
    fn recompute_dirty(&self, tier: usize, stop: &dyn Fn() -> bool) -> Result<usize> {
        let width = TIERS[tier];
        let mut recomputed = 0;
        while !stop() {
            let (generation, dirty) = {
                let db = self.lock_for_background();
                let dirty: Vec<(i64, i64, Option<i64>)> = db
                    .prepare_cached(
                        "SELECT series_id, t FROM rollup_dirty WHERE tier = ?1 LIMIT ?2",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_map(params![width, SERIES_PER_TRANSACTION], |row| {
                            let series_id: i64 = row.get(0)?;
                            Ok((series_id, row.get(1)?, host_of_series(&db, series_id)?))
                        })?
                        .collect()
                    })
                    .map_err(|e| self.err(e))?;
                (db.dirty_generation, dirty)
            };
            if dirty.is_empty() {
                break;
            }
            let mut computed = Vec::with_capacity(dirty.len());
            {
                let bg = self.background();
                for &(series_id, t, host_id) in &dirty {
                    // A mark whose series is gone (its host was removed) is just dropped.
                    let Some(host_id) = host_id else { continue };
                    let bucket = aggregate(&bg, tier, host_id, Some(series_id), t)
                        .map_err(|e| self.err(e))?;
                    computed.extend(bucket.into_iter().map(|b| (t, b)));
                }
            }
            let mut db = self.lock_for_background();
            let raced = tier == 0 && db.dirty_generation != generation;
            let next_done = db.rollup_done_until.get(tier + 1).copied().unwrap_or(0);
            let tx = db.transaction().map_err(|e| self.err(e))?;
            for (t, bucket) in &computed {
                store_bucket(&tx, tier, bucket, *t).map_err(|e| self.err(e))?;
            }
            for (series_id, t, _) in &dirty {
                if tier + 1 < TIER_COUNT && *t < next_done {
                    mark_dirty(&tx, tier + 1, *series_id, *t).map_err(|e| self.err(e))?;
                }
                if !raced {
                    tx.prepare_cached(
                        "DELETE FROM rollup_dirty WHERE tier = ?1 AND series_id = ?2 AND t = ?3",
                    )
                    .and_then(|mut stmt| stmt.execute(params![width, series_id, t]))
                    .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            recomputed += dirty.len();
            if raced {
                break;
            }
        }
        Ok(recomputed)
    }

    /// Deletes raw points and rollups older than their tier keeps them.
    pub fn enforce_retention(
        &self,
        retention: &Retention,
        now: i64,
        stop: &dyn Fn() -> bool,
    ) -> Result<usize> {
        // The wall clock is trusted only while it agrees with the data: when the newest
        // stored sample is far behind "now" (a clock that jumped forward, or nothing arrived
        // for that long), deleting by the clock could wipe history still wanted.
        if let Some(newest) = self.newest_sample_time()? {
            if now - newest > SWEEP_REFUSED_AFTER {
                return Err(Error::Refused(format!(
                    "retention refused to delete anything: the clock says {}, but the newest \
                     stored sample is from {} ({} days earlier). If the clock jumped forward, \
                     fix it; deleting resumes by itself once samples arrive again",
                    common::time::format_rfc3339(common::time::from_unix_seconds(now)),
                    common::time::format_rfc3339(common::time::from_unix_seconds(newest)),
                    (now - newest) / DAY
                )));
            }
        }
        // Nothing is deleted that its next tier has not rolled up yet: raw points only before
        // the 30-minute tier's progress, each rollup tier only before the next one's (0, where
        // a tier has not started, deletes nothing).
        let done = self.lock().rollup_done_until;
        let mut deleted = self.expire_history((now - retention.raw).min(done[0]), stop)?;
        let mut keep_until = [0i64; TIER_COUNT];
        for (tier, slot) in keep_until.iter_mut().enumerate() {
            let cutoff = now - retention.tiers[tier];
            *slot = match done.get(tier + 1) {
                Some(&next_done) => cutoff.min(next_done),
                None => cutoff,
            };
        }
        let mut after = 0i64;
        let mut bite = Bite::new(SERIES_PER_SWEEP, SERIES_PER_SWEEP_SATURATED);
        while !stop() {
            let (mut db, saturated) = self.lock_giving_way();
            let tx = db.transaction().map_err(|e| self.err(e))?;
            let ids = series_chunk(&tx, after, bite.next(saturated)).map_err(|e| self.err(e))?;
            let Some(&last) = ids.last() else { break };
            for series_id in ids {
                for (width, before) in TIERS.iter().zip(keep_until) {
                    deleted += tx
                        .prepare_cached(
                            "DELETE FROM rollups WHERE tier = ?1 AND series_id = ?2 AND t < ?3",
                        )
                        .and_then(|mut stmt| stmt.execute(params![width, series_id, before]))
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            after = last;
        }
        Ok(deleted)
    }

    /// Deletes raw points older than `before` from the history file, through the background
    /// connection (the ingestion lock is not needed), a whole chunk at a time (a chunk holding
    /// points on both sides of `before` stays until all of them are older). Walks the series
    /// ids found in the file itself, so that points of removed hosts age out too.
    fn expire_history(&self, before: i64, stop: &dyn Fn() -> bool) -> Result<usize> {
        let mut deleted = 0;
        let mut after = i64::MIN;
        while !stop() {
            let mut bg = self.background();
            let tx = history_write(&mut bg).map_err(|e| self.history_err(e))?;
            let mut chunk = 0;
            while chunk < SERIES_PER_TRANSACTION {
                let next = next_key(
                    &tx,
                    "SELECT series_id FROM history.chunks WHERE series_id > ?1
                     ORDER BY series_id LIMIT 1",
                    after,
                )
                .map_err(|e| self.history_err(e))?;
                let Some(series_id) = next else { break };
                deleted +=
                    chunks::expire(&tx, series_id, before).map_err(|e| self.history_err(e))?;
                after = series_id;
                chunk += 1;
            }
            tx.commit().map_err(|e| self.history_err(e))?;
            if chunk < SERIES_PER_TRANSACTION {
                break;
            }
        }
        Ok(deleted)
    }
}

/// The next `count` series ids after `after` (or a few more: whole rows of `series_sets`), for
/// work done one batch per transaction.
fn series_chunk(tx: &Transaction<'_>, after: i64, count: i64) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::new();
    // The row holding `after` (if any), then the rows after it.
    let mut stmt = tx.prepare_cached(
        "SELECT first_id, json_array_length(names) FROM series_sets
         WHERE first_id >= coalesce((SELECT max(first_id) FROM series_sets WHERE first_id <= ?1), ?1)
         ORDER BY first_id",
    )?;
    let mut rows = stmt.query([after])?;
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let length: i64 = row.get(1)?;
        ids.extend(first.max(after.saturating_add(1))..first.saturating_add(length));
        if i64::try_from(ids.len()).unwrap_or(i64::MAX) >= count {
            break;
        }
    }
    Ok(ids)
}

/// One series' bucket as computed from the tier below.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    series_id: i64,
    avg: f64,
    min: f64,
    max: f64,
    n: i64,
}

/// Computes bucket `start` of `tier` from the tier below, for every series of a host (or only
/// `series`); series without data in the bucket are left out. Raw points are read from both
/// the history file and `recent`, a point in both counted once.
fn aggregate(
    conn: &Connection,
    tier: usize,
    host_id: i64,
    series: Option<i64>,
    start: i64,
) -> rusqlite::Result<Vec<Bucket>> {
    let end = start + TIERS[tier];
    let ids = match series {
        Some(id) => vec![id],
        None => host_series_ids(conn, host_id)?,
    };
    let mut buckets = Vec::new();
    if tier == 0 {
        // `recent` first (see `series`): what is not there any more is in the chunks.
        let recent = recent_by_series(conn, host_id, start, end)?;
        for series_id in ids {
            let mut history = Vec::new();
            chunks::read(conn, series_id, start, end - 1, &mut history)?;
            let only_recent = recent.get(&series_id).map_or(&[][..], Vec::as_slice);
            let points = history_first(history, only_recent);
            if let Some(bucket) = Bucket::of_points(series_id, &points) {
                buckets.push(bucket);
            }
        }
        return Ok(buckets);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT sum(avg * n) / sum(n), min(min), max(max), sum(n) FROM rollups
         WHERE tier = ?1 AND series_id = ?2 AND t >= ?3 AND t < ?4",
    )?;
    for series_id in ids {
        let row = stmt.query_row(params![TIERS[tier - 1], series_id, start, end], |row| {
            Ok((
                row.get::<_, Option<f64>>(0)?,
                row.get::<_, Option<f64>>(1)?,
                row.get::<_, Option<f64>>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })?;
        if let (Some(avg), Some(min), Some(max), Some(n)) = row {
            if n > 0 {
                buckets.push(Bucket {
                    series_id,
                    avg,
                    min,
                    max,
                    n,
                });
            }
        }
    }
    Ok(buckets)
}

impl Bucket {
    /// The bucket of raw points; `None` without any.
    fn of_points(series_id: i64, points: &[(i64, f64)]) -> Option<Bucket> {
        let first = points.first()?.1;
        let (mut sum, mut min, mut max) = (0.0, first, first);
        for &(_, v) in points {
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        let n = i64::try_from(points.len()).ok()?;
        #[allow(clippy::cast_precision_loss)]
        let avg = sum / points.len() as f64;
        Some(Bucket {
            series_id,
            avg,
            min,
            max,
            n,
        })
    }
}

fn store_bucket(
    tx: &Transaction<'_>,
    tier: usize,
    bucket: &Bucket,
    start: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (tier, series_id, t, avg, min, max, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        TIERS[tier],
        bucket.series_id,
        start,
        bucket.avg,
        bucket.min,
        bucket.max,
        bucket.n
    ])?;
    Ok(())
}
