//! Tiered retention, modelled on Proxmox VE's RRD but longer at full resolution: raw points,
//! then 30-minute, 6-hour and 1-week buckets keeping AVERAGE, MIN and MAX (and the count, so
//! coarser tiers average correctly).
//!
//! A background thread (`crate::maintenance`) rolls finished buckets up in order and deletes
//! what has aged out, in small transactions so that ingestion never waits long for the lock.
//! Samples replayed by an agent after an outage can land in a bucket that is already rolled up;
//! ingestion marks such buckets dirty and they are recomputed here.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Deserialize;

use super::Store;
use crate::error::Result;

pub const TIER_COUNT: usize = 3;
/// Bucket widths in seconds: 30 minutes, 6 hours, 1 week (weeks start on Thursday 00:00 UTC,
/// the Unix epoch's weekday).
pub const TIERS: [i64; TIER_COUNT] = [1800, 6 * 3600, 7 * 86400];
/// A 30-minute bucket is rolled up this long after it ends, so that samples of its last
/// seconds still in flight make it in without a recompute.
const GRACE_SECONDS: i64 = 300;
/// Series per rollup or deletion transaction.
const SERIES_PER_TRANSACTION: i64 = 500;
const DAY: i64 = 86400;

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
    tx: &Transaction<'_>,
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
        let mut db = self.lock();
        db.execute(
            "INSERT INTO rollup_progress (tier, done_until) VALUES (?1, ?2)
             ON CONFLICT (tier) DO UPDATE SET done_until = excluded.done_until",
            params![TIERS[tier], done],
        )
        .map_err(|e| self.err(e))?;
        db.rollup_done_until[tier] = done;
        Ok(())
    }

    /// Computes bucket `start` of `tier` for every series, a few hundred series per transaction.
    fn roll_bucket(
        &self,
        tier: usize,
        start: i64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<usize>> {
        let mut rows = 0;
        let mut after = 0i64;
        loop {
            if stop() {
                return Ok(None);
            }
            let mut db = self.lock();
            let tx = db.transaction().map_err(|e| self.err(e))?;
            let ids = series_chunk(&tx, after).map_err(|e| self.err(e))?;
            let Some(&last) = ids.last() else { break };
            for series_id in ids {
                if compute_bucket(&tx, tier, series_id, start).map_err(|e| self.err(e))? {
                    rows += 1;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            after = last;
        }
        Ok(Some(rows))
    }

    fn recompute_dirty(&self, tier: usize, stop: &dyn Fn() -> bool) -> Result<usize> {
        let width = TIERS[tier];
        let mut recomputed = 0;
        while !stop() {
            let mut db = self.lock();
            let next_done = db.rollup_done_until.get(tier + 1).copied().unwrap_or(0);
            let tx = db.transaction().map_err(|e| self.err(e))?;
            let dirty: Vec<(i64, i64)> = tx
                .prepare_cached("SELECT series_id, t FROM rollup_dirty WHERE tier = ?1 LIMIT ?2")
                .and_then(|mut stmt| {
                    stmt.query_map(params![width, SERIES_PER_TRANSACTION], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
                })
                .map_err(|e| self.err(e))?;
            if dirty.is_empty() {
                break;
            }
            for (series_id, t) in &dirty {
                compute_bucket(&tx, tier, *series_id, *t).map_err(|e| self.err(e))?;
                if tier + 1 < TIER_COUNT && *t < next_done {
                    mark_dirty(&tx, tier + 1, *series_id, *t).map_err(|e| self.err(e))?;
                }
                tx.prepare_cached(
                    "DELETE FROM rollup_dirty WHERE tier = ?1 AND series_id = ?2 AND t = ?3",
                )
                .and_then(|mut stmt| stmt.execute(params![width, series_id, t]))
                .map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            recomputed += dirty.len();
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
        let mut deleted = 0;
        let mut after = 0i64;
        while !stop() {
            let mut db = self.lock();
            let tx = db.transaction().map_err(|e| self.err(e))?;
            let ids = series_chunk(&tx, after).map_err(|e| self.err(e))?;
            let Some(&last) = ids.last() else { break };
            for series_id in ids {
                deleted += tx
                    .prepare_cached("DELETE FROM points WHERE series_id = ?1 AND t < ?2")
                    .and_then(|mut stmt| stmt.execute(params![series_id, now - retention.raw]))
                    .map_err(|e| self.err(e))?;
                for (width, keep) in TIERS.iter().zip(retention.tiers) {
                    deleted += tx
                        .prepare_cached(
                            "DELETE FROM rollups WHERE tier = ?1 AND series_id = ?2 AND t < ?3",
                        )
                        .and_then(|mut stmt| stmt.execute(params![width, series_id, now - keep]))
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            after = last;
        }
        Ok(deleted)
    }
}

/// The next few hundred series ids after `after`, for work done one chunk per transaction.
fn series_chunk(tx: &Transaction<'_>, after: i64) -> rusqlite::Result<Vec<i64>> {
    tx.prepare_cached("SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![after, SERIES_PER_TRANSACTION], |row| row.get(0))?
        .collect()
}

/// Computes one bucket of one series from the tier below; false when there was no data.
fn compute_bucket(
    tx: &Transaction<'_>,
    tier: usize,
    series_id: i64,
    start: i64,
) -> rusqlite::Result<bool> {
    let width = TIERS[tier];
    let (avg, min, max, n): (Option<f64>, Option<f64>, Option<f64>, i64) = if tier == 0 {
        tx.prepare_cached("SELECT avg(v), min(v), max(v), count(*) FROM points WHERE series_id = ?1 AND t >= ?2 AND t < ?3")?
            .query_row(params![series_id, start, start + width], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
    } else {
        tx.prepare_cached(
            "SELECT sum(avg * n) / sum(n), min(min), max(max), coalesce(sum(n), 0) FROM rollups
             WHERE tier = ?1 AND series_id = ?2 AND t >= ?3 AND t < ?4",
        )?
        .query_row(
            params![TIERS[tier - 1], series_id, start, start + width],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?
    };
    let (Some(avg), Some(min), Some(max)) = (avg, min, max) else {
        return Ok(false);
    };
    if n == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (tier, series_id, t, avg, min, max, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![width, series_id, start, avg, min, max, n])?;
    Ok(true)
}
