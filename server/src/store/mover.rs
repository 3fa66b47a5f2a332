//! Moving raw points from `recent` (main file, keyed host, time, series) into
//! `history.chunks` (history file, compressed per series), host by host.
//!
//! A move reads a host's rows older than a bound and merges them into their series' chunks
//! through the background connection, which writes only the history file, so the copy never
//! waits for or holds up ingestion. Then it deletes the copied rows from `recent` under the
//! ingestion lock, a few thousand rows per hold. What was copied is what the copy's snapshot
//! saw; a sample for the same host older than the bound that is committed after the copy began
//! was not copied, so such a sample "disturbs" the move (the ingestion writer notices it
//! through the claim) and the deletion stops: the rest is moved again next pass, and merging
//! it a second time stores nothing twice (a chunk keeps one point per time).

use rusqlite::{params, OptionalExtension};

use super::{chunks, history_write, next_key, Bite, Store};
use crate::error::Result;

/// Rows copied per history transaction: bounds the memory and the transaction, while a host's
/// whole minute at a 1 s interval (~24k rows at 400 series) still goes in one.
const COPY_ROWS: i64 = 100_000;
/// Rows deleted from `recent` per hold of the ingestion lock (well under a millisecond when its
/// pages are cached)...
const DELETE_ROWS: i64 = 2_000;
/// ...and at most this many while ingestion is saturated (samples still waiting after the
/// background's patience): then fewer, bigger holds keep the move from falling behind.
const DELETE_ROWS_SATURATED: i64 = 32_000;

/// The move in progress, seen by the ingestion writer.
#[derive(Debug, Clone, Copy)]
pub(super) struct MoveClaim {
    host_id: i64,
    before: i64,
    disturbed: bool,
}

impl MoveClaim {
    /// Called by the writer for every sample it stores while the claim stands.
    pub(super) fn observe(&mut self, host_id: i64, collected_at: i64) {
        if host_id == self.host_id && collected_at < self.before {
            self.disturbed = true;
        }
    }
}

/// What one pass of [`Store::move_to_history`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MoveReport {
    pub hosts: usize,
    /// Points copied into the history file (a point already there is not counted).
    pub copied: usize,
    /// Rows deleted from `recent`.
    pub deleted: usize,
    /// Moves stopped because a late sample arrived for the host meanwhile; done next pass.
    pub postponed: usize,
}

impl Store {
    /// Moves every host's `recent` rows older than `before` into the history file. `stop` is
    /// asked between steps.
    pub fn move_to_history(&self, before: i64, stop: &dyn Fn() -> bool) -> Result<MoveReport> {
        let mut report = MoveReport::default();
        let mut after = i64::MIN;
        while !stop() {
            let next = next_key(
                &self.background(),
                "SELECT host_id FROM recent WHERE host_id > ?1 ORDER BY host_id LIMIT 1",
                after,
            )
            .map_err(|e| self.err(e))?;
            let Some(host_id) = next else { break };
            after = host_id;
            report.hosts += 1;
            self.move_host(host_id, before, stop, &mut report)?;
        }
        Ok(report)
    }

    fn move_host(
        &self,
        host_id: i64,
        before: i64,
        stop: &dyn Fn() -> bool,
        report: &mut MoveReport,
    ) -> Result<()> {
        while !stop() {
            // Claim first: every sample committed from here on is either in the copy's
            // snapshot or seen by the claim.
            let Some(bound) = self.claim_step(host_id, before)? else {
                return Ok(());
            };
            let copied = self.copy_step(host_id, bound);
            let outcome = copied.and_then(|copied| {
                report.copied += copied;
                self.delete_step(host_id, bound, stop)
            });
            self.lock().move_claim = None;
            match outcome? {
                Deleted::All(rows) => report.deleted += rows,
                Deleted::Stopped(rows) => {
                    report.deleted += rows;
                    return Ok(());
                }
                Deleted::Disturbed(rows) => {
                    report.deleted += rows;
                    report.postponed += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Picks this step's bound (at most [`COPY_ROWS`] rows of the host below it, and at most
    /// `before`) and claims it; `None` when the host has nothing older than `before`.
    fn claim_step(&self, host_id: i64, before: i64) -> Result<Option<i64>> {
        // Counting up to COPY_ROWS rows takes a few milliseconds: done on the background
        // connection, not under the lock. A bound is a bound even if more rows arrive.
        let bound = nth_time_bound(&self.background(), host_id, before, COPY_ROWS)
            .map_err(|e| self.err(e))?;
        let Some(bound) = bound else {
            return Ok(None);
        };
        self.lock_for_background().move_claim = Some(MoveClaim {
            host_id,
            before: bound,
            disturbed: false,
        });
        Ok(Some(bound))
    }

    /// Merges the host's rows older than `bound` into their series' chunks in the history
    /// file, in one transaction; returns how many points were new there.
    fn copy_step(&self, host_id: i64, bound: i64) -> Result<usize> {
        let mut conn = self.background();
        let tx = history_write(&mut conn).map_err(|e| self.history_err(e))?;
        let mut rows: Vec<(i64, i64, f64)> = tx
            .prepare_cached("SELECT series_id, t, v FROM recent WHERE host_id = ?1 AND t < ?2")
            .and_then(|mut stmt| {
                stmt.query_map(params![host_id, bound], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        // Keyed (host, time, series) in `recent`: sorted by series here, cheaper than in SQL.
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut copied = 0;
        let mut points = Vec::new();
        for run in rows.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(series_id, ..)) = run.first() else {
                continue;
            };
            points.clear();
            points.extend(run.iter().map(|r| (r.1, r.2)));
            copied += chunks::merge(&tx, series_id, &points).map_err(|e| self.history_err(e))?;
        }
        tx.commit().map_err(|e| self.history_err(e))?;
        Ok(copied)
    }

    /// Deletes the host's rows older than `bound` from `recent`, [`DELETE_ROWS`] per hold of
    /// the lock (up to [`DELETE_ROWS_SATURATED`] under saturation), unless a sample the copy
    /// did not see arrived meanwhile.
    fn delete_step(&self, host_id: i64, bound: i64, stop: &dyn Fn() -> bool) -> Result<Deleted> {
        let mut deleted = 0;
        let mut bite = Bite::new(DELETE_ROWS, DELETE_ROWS_SATURATED);
        loop {
            if stop() {
                return Ok(Deleted::Stopped(deleted));
            }
            let (db, saturated) = self.lock_giving_way();
            let rows = bite.next(saturated);
            if !db.move_claim.is_some_and(|claim| !claim.disturbed) {
                return Ok(Deleted::Disturbed(deleted));
            }
            let Some(chunk) = nth_time_bound(&db, host_id, bound, rows).map_err(|e| self.err(e))?
            else {
                return Ok(Deleted::All(deleted));
            };
            // Not synced on its own: the rows are safe in the history file already, and should
            // a power cut undo this deletion the copies are told apart when read. The next
            // synced commit syncs it anyway (the WAL is written in order).
            db.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.err(e))?;
            let result = db
                .prepare_cached("DELETE FROM recent WHERE host_id = ?1 AND t < ?2")
                .and_then(|mut stmt| stmt.execute(params![host_id, chunk]));
            let restored = db.pragma_update(None, "synchronous", db.synchronous);
            deleted += result.map_err(|e| self.err(e))?;
            restored.map_err(|e| self.err(e))?;
        }
    }
}

enum Deleted {
    All(usize),
    Stopped(usize),
    Disturbed(usize),
}

/// A time bound below which the host has at most `rows` rows of `recent` older than `before`
/// (more only if one second alone holds more), or `None` when it has none.
fn nth_time_bound(
    conn: &rusqlite::Connection,
    host_id: i64,
    before: i64,
    rows: i64,
) -> rusqlite::Result<Option<i64>> {
    let first: Option<i64> = conn
        .prepare_cached("SELECT min(t) FROM recent WHERE host_id = ?1")?
        .query_row([host_id], |row| row.get(0))?;
    let Some(first) = first.filter(|&t| t < before) else {
        return Ok(None);
    };
    let nth: Option<i64> = conn
        .prepare_cached(
            "SELECT t FROM recent WHERE host_id = ?1 AND t < ?2 ORDER BY t LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![host_id, before, rows], |row| row.get(0))
        .optional()?;
    Ok(Some(nth.map_or(before, |t| t.max(first + 1))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::series::tests::{count, query, setup, write, T0};
    use crate::store::Retention;
    use crate::testutil::TempDir;

    #[test]
    fn a_late_sample_during_a_move_is_never_deleted_unmoved() {
        let dir = TempDir::new("move-race");
        let (store, host) = setup(&dir);
        store
            .write_sample(write(host, T0 + 60, &[("x", 1.0)]))
            .unwrap();
        assert_eq!(store.claim_step(host, T0 + 100).unwrap(), Some(T0 + 100));
        store.copy_step(host, T0 + 100).unwrap();
        // Arrives after the copy's snapshot, below the bound: deleting the host's rows below
        // the bound now would lose it.
        store
            .write_sample(write(host, T0 + 30, &[("x", 2.0)]))
            .unwrap();
        assert!(matches!(
            store.delete_step(host, T0 + 100, &|| false).unwrap(),
            Deleted::Disturbed(0)
        ));
        store.lock().move_claim = None;
        assert_eq!(store.raw_point_count().unwrap(), 2);
        // The next pass moves it, and stores the first point only once.
        let report = store.move_to_history(T0 + 100, &|| false).unwrap();
        assert_eq!((report.copied, report.deleted, report.postponed), (1, 2, 0));
        assert_eq!(count(&store, "recent"), 0);
        let r = Retention::default();
        let points = query(&store, host, "x", T0, T0 + 100, 10, &r, T0 + 100);
        assert_eq!(
            points.iter().map(|p| (p.t, p.avg)).collect::<Vec<_>>(),
            [(T0 + 30, 2.0), (T0 + 60, 1.0)]
        );
    }

    #[test]
    fn live_samples_do_not_disturb_a_move() {
        let dir = TempDir::new("move-live");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        assert_eq!(store.claim_step(host, T0 + 30).unwrap(), Some(T0 + 30));
        store.copy_step(host, T0 + 30).unwrap();
        store
            .write_sample(write(host, T0 + 31, &[("x", 2.0)]))
            .unwrap();
        assert!(matches!(
            store.delete_step(host, T0 + 30, &|| false).unwrap(),
            Deleted::All(1)
        ));
    }

    #[test]
    fn a_move_waits_for_another_writer_of_the_history_file() {
        let dir = TempDir::new("move-busy");
        let (store, host) = setup(&dir);
        store
            .write_sample(write(host, T0, &[("x", 1.0), ("y", 2.0)]))
            .unwrap();
        // Another connection (remove-host, a second process) writes the history file and
        // commits while the move is under way: the move waits for it, then sees its commit,
        // rather than failing on a snapshot gone stale.
        let other = rusqlite::Connection::open(store.path()).unwrap();
        other
            .execute(
                "ATTACH DATABASE ?1 AS history",
                [store.history_path().to_str().unwrap()],
            )
            .unwrap();
        other
            .execute_batch(
                "BEGIN; INSERT INTO history.chunks (series_id, start, end, n, data)
                 VALUES (999999, 0, 0, 1, x'00');",
            )
            .unwrap();
        let committer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            other.execute_batch("COMMIT").unwrap();
        });
        let report = store.move_to_history(T0 + 1, &|| false).unwrap();
        committer.join().unwrap();
        assert_eq!((report.copied, report.deleted), (2, 2));
        assert_eq!(count(&store, "history.chunks"), 3);
    }

    #[test]
    fn a_big_backlog_moves_in_bounded_steps() {
        let dir = TempDir::new("move-steps");
        let (store, host) = setup(&dir);
        let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        let writes = (0..(COPY_ROWS / 50 + 300))
            .map(|i| {
                let points: Vec<(&str, f64)> =
                    names.iter().map(|n| (n.as_str(), i as f64)).collect();
                write(host, T0 + i, &points)
            })
            .collect();
        store.write_samples_direct(writes).unwrap();
        let total = store.raw_point_count().unwrap();
        let report = store.move_to_history(T0 + 1_000_000, &|| false).unwrap();
        assert_eq!(report.copied as u64, total);
        assert_eq!(report.deleted as u64, total);
        assert_eq!(count(&store, "recent"), 0);
    }
}
