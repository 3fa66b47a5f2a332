//! Raw points at rest: `history.chunks`, one row per run of one series' points, compressed by
//! `chunk`. What reads, the mover, rollups and retention do with the rows.
//!
//! A series' chunks never overlap in time, so the chunks holding `[from, to]` are the last one
//! starting at or before `from` and those starting inside the range: two index seeks. Points
//! are merged in (the mover, late samples from a replayed spool, resends) by decoding the
//! chunks the new points fall into, merging, and writing the result back in one transaction;
//! a point whose time is already stored is not stored again, so merging is idempotent.
//!
//! Chunk size: [`CHUNK_POINTS`] points (two hours at the agent's default 30 s interval, four
//! minutes at 1 s), or fewer when the encoded chunk would be longer than [`MAX_CHUNK_BYTES`]
//! or span more than [`MAX_CHUNK_SPAN`]. Appends fill the series' last chunk up to that size before starting
//! the next, so a chunk is rewritten a few times while it fills (each move adds a minute of
//! points); merges into older chunks split evenly.

use rusqlite::{params, Connection, OptionalExtension};

use super::chunk;

/// Points per chunk. Each chunk costs ~40 bytes besides its points (the codec's header,
/// SQLite's cell and record header, and the copy of the row in an interior page that a
/// `WITHOUT ROWID` table keeps): ~0.17 bytes per point at 240, twice that at 120 (measured:
/// 1.92 against 1.99 bytes per point at rest at 30 s). Small enough that rewriting the open
/// chunk at every move stays cheap (a few µs per series) and that a chunk of noisy rates
/// (~3.5 bytes per point) stays under [`MAX_CHUNK_BYTES`].
pub const CHUNK_POINTS: usize = 240;
/// The longest time a chunk spans: a series that sends rarely, or a host back after days
/// away, starts a new chunk rather than stretching one, so that retention (which deletes whole
/// chunks) keeps points at most this much longer than asked.
pub const MAX_CHUNK_SPAN: i64 = 6 * 3600;
/// The longest encoded chunk: a row of `history.chunks` (a `WITHOUT ROWID` table, whose rows
/// spill to overflow pages above ~1000 bytes on 4 KiB pages) stays on its leaf page. Only
/// series of non-decimal values (XOR coded, ~8 bytes per point) reach it.
pub const MAX_CHUNK_BYTES: usize = 900;

/// A chunk as stored.
struct Stored {
    start: i64,
    end: i64,
    n: usize,
    data: Vec<u8>,
}

/// Appends the points of `series_id` in `[from, to]` to `out`, in time order.
pub(super) fn read(
    conn: &Connection,
    series_id: i64,
    from: i64,
    to: i64,
    out: &mut Vec<(i64, f64)>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT start, end, data FROM history.chunks
         WHERE series_id = ?1 AND start <= ?3 AND start >= coalesce(
             (SELECT max(start) FROM history.chunks WHERE series_id = ?1 AND start <= ?2), ?2)
         ORDER BY start",
    )?;
    let mut rows = stmt.query(params![series_id, from, to])?;
    let mut edge = Vec::new();
    while let Some(row) = rows.next()? {
        let start: i64 = row.get(0)?;
        let end: i64 = row.get(1)?;
        if end < from {
            continue;
        }
        let data = row.get_ref(2)?.as_blob()?;
        if start >= from && end <= to {
            chunk::decode_into(data, out).map_err(|e| damaged(series_id, start, e))?;
        } else {
            edge.clear();
            chunk::decode_into(data, &mut edge).map_err(|e| damaged(series_id, start, e))?;
            out.extend(edge.iter().filter(|p| p.0 >= from && p.0 <= to));
        }
    }
    Ok(())
}

/// Merges `points` (in strictly increasing time order) into the chunks of `series_id`; a time
/// already stored keeps its stored value. Returns how many points were new. Run inside a
/// transaction on the history file.
pub(super) fn merge(
    conn: &Connection,
    series_id: i64,
    points: &[(i64, f64)],
) -> rusqlite::Result<usize> {
    let (Some(&(first, _)), Some(&(last, _))) = (points.first(), points.last()) else {
        return Ok(0);
    };
    let mut existing: Vec<Stored> = conn
        .prepare_cached(
            "SELECT start, end, n, data FROM history.chunks
             WHERE series_id = ?1 AND start <= ?3 AND start >= coalesce(
                 (SELECT max(start) FROM history.chunks WHERE series_id = ?1 AND start <= ?2), ?2)
             ORDER BY start",
        )?
        .query_map(params![series_id, first, last], |row| {
            Ok(Stored {
                start: row.get(0)?,
                end: row.get(1)?,
                n: row
                    .get::<_, i64>(2)
                    .map(|n| usize::try_from(n).unwrap_or(0))?,
                data: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // The usual append: the last chunk before the new points is full, so it stays as it is.
    if existing
        .first()
        .is_some_and(|c| c.end < first && (is_full(c) || first - c.start >= MAX_CHUNK_SPAN))
    {
        existing.remove(0);
    }
    let mut old = Vec::new();
    for c in &existing {
        chunk::decode_into(&c.data, &mut old).map_err(|e| damaged(series_id, c.start, e))?;
    }
    let (merged, added) = merge_points(&old, points);
    if added == 0 {
        return Ok(0);
    }
    let at_the_end = conn
        .prepare_cached("SELECT 1 FROM history.chunks WHERE series_id = ?1 AND start > ?2 LIMIT 1")?
        .query_row(params![series_id, last], |_| Ok(()))
        .optional()?
        .is_none();
    let mut written = Vec::new();
    for run in split(&merged, at_the_end) {
        write_runs(conn, series_id, run, &mut written)?;
    }
    let mut delete =
        conn.prepare_cached("DELETE FROM history.chunks WHERE series_id = ?1 AND start = ?2")?;
    for c in &existing {
        if !written.contains(&c.start) {
            delete.execute(params![series_id, c.start])?;
        }
    }
    Ok(added)
}

/// Writes the points (in strictly increasing time order) of a series that has no chunks yet.
pub(super) fn write_new(
    conn: &Connection,
    series_id: i64,
    points: &[(i64, f64)],
) -> rusqlite::Result<()> {
    let mut written = Vec::new();
    for run in split(points, true) {
        write_runs(conn, series_id, run, &mut written)?;
    }
    Ok(())
}

/// Deletes the chunks of `series_id` whose every point is older than `before`; returns how
/// many points went. A chunk holding points on both sides stays whole until all are older.
pub(super) fn expire(conn: &Connection, series_id: i64, before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM history.chunks WHERE series_id = ?1 AND start < ?2 AND end < ?2 RETURNING n",
    )?
    .query_map(params![series_id, before], |row| row.get::<_, i64>(0))?
    .map(|n| n.map(|n| usize::try_from(n).unwrap_or(0)))
    .sum()
}

fn is_full(c: &Stored) -> bool {
    c.n >= CHUNK_POINTS || c.data.len() >= MAX_CHUNK_BYTES / 2
}

/// Both lists merged in time order, `old` winning a tie; and how many of `new` were added.
fn merge_points(old: &[(i64, f64)], new: &[(i64, f64)]) -> (Vec<(i64, f64)>, usize) {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut added = 0;
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                out.push(*a);
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                out.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                out.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                out.push(*b);
                added += 1;
                j += 1;
            }
            (None, None) => break,
        }
    }
    (out, added)
}

/// Cuts a run of points into chunk-sized runs, none spanning [`MAX_CHUNK_SPAN`]: at the end
/// of a series the runs are filled to [`CHUNK_POINTS`] in order (the last one keeps filling
/// at the next move); between older chunks they are cut evenly, so a late point merged into a
/// full chunk does not leave a chunk of one behind.
fn split(points: &[(i64, f64)], at_the_end: bool) -> Vec<&[(i64, f64)]> {
    let mut runs = Vec::new();
    let mut rest = points;
    while let Some(&(start, _)) = rest.first() {
        // No chunk spans more than MAX_CHUNK_SPAN.
        let cut = rest.partition_point(|p| p.0.saturating_sub(start) < MAX_CHUNK_SPAN);
        let (within, after) = rest.split_at(cut.max(1));
        if at_the_end {
            runs.extend(within.chunks(CHUNK_POINTS));
        } else {
            let count = within.len().div_ceil(CHUNK_POINTS).max(1);
            runs.extend(within.chunks(within.len().div_ceil(count).max(1)));
        }
        rest = after;
    }
    runs
}

/// Encodes and writes one run, halving it while its chunk is longer than [`MAX_CHUNK_BYTES`].
fn write_runs(
    conn: &Connection,
    series_id: i64,
    run: &[(i64, f64)],
    written: &mut Vec<i64>,
) -> rusqlite::Result<()> {
    let (Some(&(start, _)), Some(&(end, _))) = (run.first(), run.last()) else {
        return Ok(());
    };
    let data = chunk::encode(run);
    if data.len() > MAX_CHUNK_BYTES && run.len() > 1 {
        let (a, b) = run.split_at(run.len() / 2);
        write_runs(conn, series_id, a, written)?;
        return write_runs(conn, series_id, b, written);
    }
    conn.prepare_cached(
        "INSERT INTO history.chunks (series_id, start, end, n, data) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (series_id, start)
         DO UPDATE SET end = excluded.end, n = excluded.n, data = excluded.data",
    )?
    .execute(params![
        series_id,
        start,
        end,
        i64::try_from(run.len()).unwrap_or(i64::MAX),
        data
    ])?;
    written.push(start);
    Ok(())
}

/// A chunk that cannot be decoded, as a database error naming the series and the chunk.
fn damaged(series_id: i64, start: i64, e: chunk::ChunkError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        2,
        rusqlite::types::Type::Blob,
        format!("history.chunks series {series_id} start {start}: {e}").into(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn history() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "ATTACH DATABASE ':memory:' AS history;
             CREATE TABLE history.chunks (
                 series_id INTEGER NOT NULL,
                 start INTEGER NOT NULL,
                 end INTEGER NOT NULL,
                 n INTEGER NOT NULL,
                 data BLOB NOT NULL,
                 PRIMARY KEY (series_id, start)
             ) WITHOUT ROWID;",
        )
        .unwrap();
        conn
    }

    fn all(conn: &Connection, series_id: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        read(conn, series_id, i64::MIN, i64::MAX, &mut out).unwrap();
        out
    }

    /// Every chunk of the series: (start, end, n), checked against its content.
    fn layout(conn: &Connection, series_id: i64) -> Vec<(i64, i64, usize)> {
        let mut stmt = conn
            .prepare("SELECT start, end, n, data FROM history.chunks WHERE series_id = ?1 ORDER BY start")
            .unwrap();
        let rows: Vec<(i64, i64, usize, Vec<u8>)> = stmt
            .query_map([series_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut previous_end = i64::MIN;
        for (start, end, n, data) in &rows {
            let points = chunk::decode(data).unwrap();
            assert_eq!(points.len(), *n);
            assert_eq!((points[0].0, points[n - 1].0), (*start, *end));
            assert!(
                *start > previous_end || previous_end == i64::MIN,
                "chunks overlap"
            );
            assert!(*n <= CHUNK_POINTS);
            assert!(end - start < MAX_CHUNK_SPAN);
            assert!(data.len() <= MAX_CHUNK_BYTES || *n == 1);
            previous_end = *end;
        }
        rows.into_iter().map(|(s, e, n, _)| (s, e, n)).collect()
    }

    fn run(from: i64, count: i64, every: i64) -> Vec<(i64, f64)> {
        (0..count)
            .map(|i| (from + i * every, (i % 7) as f64 + 0.25))
            .collect()
    }

    #[test]
    fn appends_fill_each_chunk_before_the_next() {
        let conn = history();
        let c = CHUNK_POINTS as i64;
        // A minute of points at a time, as the mover brings them at a 1 s interval.
        let minutes = (2 * c + 60) / 60;
        for minute in 0..minutes {
            let added = merge(&conn, 1, &run(minute * 60, 60, 1)).unwrap();
            assert_eq!(added, 60);
        }
        assert_eq!(
            layout(&conn, 1),
            [
                (0, c - 1, CHUNK_POINTS),
                (c, 2 * c - 1, CHUNK_POINTS),
                (2 * c, 2 * c + 59, 60)
            ]
        );
        let expected: Vec<(i64, f64)> = (0..minutes).flat_map(|m| run(m * 60, 60, 1)).collect();
        assert!(all(&conn, 1) == expected);
        // At 30 s: two points a move.
        for minute in 0..(c + 60) / 2 {
            merge(&conn, 2, &run(minute * 60, 2, 30)).unwrap();
        }
        assert_eq!(
            layout(&conn, 2),
            [(0, (c - 1) * 30, CHUNK_POINTS), (c * 30, (c + 59) * 30, 60)]
        );
    }

    #[test]
    fn a_point_already_stored_is_not_stored_again() {
        let conn = history();
        merge(&conn, 1, &run(0, 300, 1)).unwrap();
        let before = layout(&conn, 1);
        // Resent into a sealed chunk, into the open one, and with a different value: kept once,
        // as first stored.
        assert_eq!(
            merge(&conn, 1, &[(5, 99.0), (130, 1.25), (299, 7.0)]).unwrap(),
            0
        );
        assert_eq!(layout(&conn, 1), before);
        assert_eq!(all(&conn, 1), run(0, 300, 1));
        // Some new, some not: only the new are counted and stored.
        assert_eq!(merge(&conn, 1, &[(299, 7.0), (300, 8.0)]).unwrap(), 1);
        assert_eq!(all(&conn, 1).len(), 301);
    }

    #[test]
    fn late_points_land_in_the_right_chunk() {
        let conn = history();
        // Every other second, then the missing seconds arrive (a replayed spool).
        let c = CHUNK_POINTS as i64;
        merge(&conn, 1, &run(0, 2 * c, 2)).unwrap();
        assert_eq!(layout(&conn, 1).len(), 2);
        merge(&conn, 1, &run(1, 2 * c, 2)).unwrap();
        let chunks = layout(&conn, 1);
        assert_eq!(chunks.iter().map(|c| c.2).sum::<usize>(), 4 * CHUNK_POINTS);
        let mut expected: Vec<(i64, f64)> = run(0, 2 * c, 2)
            .into_iter()
            .chain(run(1, 2 * c, 2))
            .collect();
        expected.sort_by_key(|p| p.0);
        assert!(all(&conn, 1) == expected);
        // Before the first chunk, between two, after the last.
        merge(&conn, 1, &[(-50, 1.0), (-10, 2.0)]).unwrap();
        assert_eq!(layout(&conn, 1)[0].0, -50);
        merge(&conn, 1, &[(100_000, 3.0)]).unwrap();
        assert_eq!(all(&conn, 1).len(), 4 * CHUNK_POINTS + 3);
    }

    #[test]
    fn a_long_gap_starts_a_new_chunk() {
        let conn = history();
        merge(&conn, 1, &run(0, 10, 30)).unwrap();
        merge(&conn, 1, &run(86_400, 10, 30)).unwrap();
        assert_eq!(layout(&conn, 1), [(0, 270, 10), (86_400, 86_670, 10)]);
        // Retention takes whole chunks whose every point is older.
        assert_eq!(expire(&conn, 1, 86_400).unwrap(), 10);
        assert_eq!(expire(&conn, 1, 86_500).unwrap(), 0);
        assert_eq!(all(&conn, 1), run(86_400, 10, 30));
    }

    #[test]
    fn values_that_code_long_get_shorter_chunks() {
        let conn = history();
        // Not decimals: XOR coded, ~8 bytes a point.
        let mut rng = fastrand::Rng::with_seed(1);
        let points: Vec<(i64, f64)> = (0..600).map(|i| (i, f64::from_bits(rng.u64(..)))).collect();
        merge(&conn, 1, &points).unwrap();
        let chunks = layout(&conn, 1);
        assert!(chunks.len() > 5, "{chunks:?}");
        let back = all(&conn, 1);
        assert!(back
            .iter()
            .zip(&points)
            .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits()));
        assert_eq!(back.len(), points.len());
    }

    #[test]
    fn reads_take_exactly_the_range() {
        let conn = history();
        merge(&conn, 7, &run(1000, 1000, 10)).unwrap();
        let expected = run(1000, 1000, 10);
        for (from, to) in [
            (0, 999),
            (1000, 1000),
            (1005, 1015),
            (1000, 10_990),
            (5000, 7000),
            (10_990, 20_000),
            (20_000, 30_000),
        ] {
            let mut out = Vec::new();
            read(&conn, 7, from, to, &mut out).unwrap();
            let want: Vec<_> = expected
                .iter()
                .copied()
                .filter(|p| p.0 >= from && p.0 <= to)
                .collect();
            assert_eq!(out, want, "{from}..={to}");
        }
        // Another series' points are not read.
        assert!(all(&conn, 8).is_empty());
    }

    #[test]
    fn random_merges_keep_every_point_once_in_disjoint_chunks() {
        let mut rng = fastrand::Rng::with_seed(17);
        for round in 0..20 {
            let conn = history();
            let mut model: BTreeMap<i64, f64> = BTreeMap::new();
            for _ in 0..60 {
                // Mostly appends in time order, sometimes a late batch or a resend.
                let base = match rng.u8(0..10) {
                    0..=6 => model.keys().next_back().map_or(0, |t| t + 1),
                    7 | 8 => rng.i64(0..=model.keys().next_back().copied().unwrap_or(0).max(1)),
                    _ => rng.i64(-100_000..200_000),
                };
                let every = [1, 1, 30, 300, 7000][rng.usize(0..5)];
                let mut batch: Vec<(i64, f64)> = (0..rng.i64(1..200))
                    .map(|i| {
                        (
                            base + i * every + rng.i64(0..every.max(1)) / 2,
                            (rng.f64() * 1e4).round() / 100.0,
                        )
                    })
                    .collect();
                batch.sort_by_key(|p| p.0);
                batch.dedup_by_key(|p| p.0);
                let new = batch.iter().filter(|p| !model.contains_key(&p.0)).count();
                assert_eq!(merge(&conn, 1, &batch).unwrap(), new, "round {round}");
                for &(t, v) in &batch {
                    model.entry(t).or_insert(v);
                }
                layout(&conn, 1);
            }
            let want: Vec<(i64, f64)> = model.iter().map(|(t, v)| (*t, *v)).collect();
            assert_eq!(all(&conn, 1), want, "round {round}");
        }
    }
}
