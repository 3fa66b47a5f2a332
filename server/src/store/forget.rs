//! Vanished series: a guest destroyed, a disk pulled, an interface gone leaves series that
//! never receive a point again. Two stages, both in the maintenance thread's retention pass:
//!
//! - **Dormant**: a series without a raw point within raw retention no longer counts against
//!   `max_series_per_host` (its data stays, readable as before), so a node that churns
//!   containers does not run into its cap while the old guests' rollups are still kept. The
//!   count per host is refreshed each pass; a dormant series that comes back is accepted at
//!   once (a known series never is refused) and counts again from the next pass.
//! - **Forgotten**: once tiered retention has removed every last bit of a series' data (raw
//!   points, `recent` rows, rollups of every tier, dirty marks), its id and name are removed
//!   too: from `series_sets` (a row split around them, so every other series keeps its id)
//!   and from the writer's name → id map. With the default retention that is ten years after
//!   its last point. A series that comes back later simply gets a new id; ids are never
//!   handed out twice.
//!
//! "Last seen" is the data itself, not a column: the end of the series' last chunk in the
//! history file (one index seek) and whether it has rows in `recent`. Nothing is added to
//! ingestion's writes. Forgetting asks for no data at all in any tier, whatever the clock says,
//! so it never deletes what retention keeps (retention deletes raw points only once rolled up,
//! each rollup tier only once the next has it, and nothing while the clock is far ahead of
//! the data).
//!
//! Host by host: the candidates are found on the background connection (one to five index
//! seeks per series, no ingestion lock), then checked again and removed under the ingestion
//! lock, [`SERIES_PER_HOLD`] at a time.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection};

use super::rollup::{Retention, TIERS, TIER_COUNT};
use super::series::host_series_ids;
use super::{next_key, Store};
use crate::error::Result;

/// Series checked and removed per hold of the ingestion lock (about five index seeks each,
/// plus one read of the host's `recent` rows per hold).
const SERIES_PER_HOLD: usize = 50;
/// Names listed in the log line per host.
const NAMES_LOGGED: usize = 8;

/// The series forgotten for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub host: String,
    pub names: Vec<String>,
}

impl Store {
    /// Forgets every series that has no data left in any tier (see the module doc) and logs
    /// per host what went. `stop` is asked between steps.
    pub fn forget_vanished_series(
        &self,
        retention: &Retention,
        now: i64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Forgotten>> {
        let mut out = Vec::new();
        let mut dormant = HashMap::new();
        let mut after = i64::MIN;
        let mut finished = false;
        while !stop() {
            let next = next_key(
                &self.background(),
                "SELECT host_id FROM series_sets WHERE host_id > ?1 ORDER BY host_id LIMIT 1",
                after,
            )
            .map_err(|e| self.err(e))?;
            let Some(host_id) = next else {
                finished = true;
                break;
            };
            after = host_id;
            let found = self.vanished_candidates(host_id, now - retention.raw)?;
            let mut names = Vec::new();
            for batch in found.vanished.chunks(SERIES_PER_HOLD) {
                if stop() {
                    break;
                }
                names.extend(self.forget_batch(host_id, batch)?);
            }
            // Forgotten series were dormant too.
            dormant.insert(host_id, found.dormant.saturating_sub(names.len()));
            if names.is_empty() {
                continue;
            }
            let host = self
                .host_by_id(host_id)?
                .map_or_else(|| format!("#{host_id}"), |h| h.name);
            log::info!(
                "host {host}: forgot {} series not seen since before {} (retention removed \
                 all their data): {}{}",
                names.len(),
                common::time::format_rfc3339(common::time::from_unix_seconds(last_seen_bound(
                    retention, now
                ))),
                names
                    .iter()
                    .take(NAMES_LOGGED)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.len() > NAMES_LOGGED {
                    ", …"
                } else {
                    ""
                }
            );
            out.push(Forgotten { host, names });
        }
        let mut db = self.lock_for_background();
        if finished {
            // Hosts without series any more (or removed) drop out.
            db.dormant = dormant;
        } else {
            db.dormant.extend(dormant);
        }
        Ok(out)
    }

    /// The host's series without any data left, and how many have no raw point at or after
    /// `active_since`, as seen on the background connection (without the ingestion lock:
    /// [`Store::forget_batch`] checks again under it).
    fn vanished_candidates(&self, host_id: i64, active_since: i64) -> Result<Found> {
        let bg = self.background();
        let ids = host_series_ids(&bg, host_id).map_err(|e| self.err(e))?;
        let in_recent = recent_series(&bg, host_id).map_err(|e| self.err(e))?;
        let mut found = Found::default();
        for id in ids {
            if in_recent.contains(&id) {
                continue;
            }
            let last = last_raw_point(&bg, id).map_err(|e| self.err(e))?;
            if last.is_some_and(|t| t >= active_since) {
                continue;
            }
            found.dormant += 1;
            if last.is_none() && !has_data(&bg, id).map_err(|e| self.err(e))? {
                found.vanished.push(id);
            }
        }
        Ok(found)
    }

    /// Under the ingestion lock, in one transaction: removes those of `ids` (series of
    /// `host_id`) that still have no data at all, from `series_sets` (splitting a row around
    /// them: the others keep their ids) and from the writer's map. Returns their names.
    pub(super) fn forget_batch(&self, host_id: i64, ids: &[i64]) -> Result<Vec<String>> {
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        // A sample committed since the candidates were found is in `recent` (and a late one
        // may have marked a bucket dirty): checked again here, where no sample can land.
        let in_recent = recent_series(&tx, host_id).map_err(|e| self.err(e))?;
        let mut gone = HashSet::new();
        for &id in ids {
            if !in_recent.contains(&id) && !has_data(&tx, id).map_err(|e| self.err(e))? {
                gone.insert(id);
            }
        }
        let names = remove_from_sets(&tx, host_id, &gone).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        if let Some(map) = db.series_ids.get_mut(&host_id) {
            for (id, name) in &names {
                if map.get(name) == Some(id) {
                    map.remove(name);
                }
            }
        }
        Ok(names.into_iter().map(|(_, name)| name).collect())
    }
}

/// What [`Store::vanished_candidates`] found for a host.
#[derive(Debug, Default)]
struct Found {
    /// Series without any data left.
    vanished: Vec<i64>,
    /// Series without a raw point since the bound (the vanished ones included).
    dormant: usize,
}

/// The time of the series' newest point in the history file: the end of its last chunk (a
/// series' chunks never overlap), one index seek.
fn last_raw_point(conn: &Connection, series_id: i64) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT \"end\" FROM history.chunks WHERE series_id = ?1 ORDER BY start DESC LIMIT 1",
    )?
    .query_row([series_id], |row| row.get(0))
    .optional()
}

/// The newest time a forgotten series can have had a point: the coarsest tier keeps buckets
/// starting at `now - its retention` and later, and a point lies at most one bucket after
/// its bucket's start.
fn last_seen_bound(retention: &Retention, now: i64) -> i64 {
    now - retention.tiers[TIER_COUNT - 1] + TIERS[TIER_COUNT - 1]
}

/// The series of a host with rows in `recent` (the last minute or so: a short scan).
fn recent_series(conn: &Connection, host_id: i64) -> rusqlite::Result<HashSet<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT series_id FROM recent WHERE host_id = ?1")?;
    let ids = stmt
        .query_map([host_id], |row| row.get(0))?
        .collect::<rusqlite::Result<HashSet<i64>>>()?;
    Ok(ids)
}

/// Whether the series has anything in any rollup tier, a dirty mark or anything in the history
/// file: one index seek each, the coarsest tier first.
fn has_data(conn: &Connection, series_id: i64) -> rusqlite::Result<bool> {
    for table in ["rollups", "rollup_dirty"] {
        // Both keyed (tier, series, t): a seek per tier.
        for width in TIERS.iter().rev() {
            let found: bool = conn
                .prepare_cached(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {table} WHERE tier = ?1 AND series_id = ?2)"
                ))?
                .query_row(params![width, series_id], |row| row.get(0))?;
            if found {
                return Ok(true);
            }
        }
    }
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM history.chunks WHERE series_id = ?1)")?
        .query_row([series_id], |row| row.get(0))
}

/// Removes the series `gone` of a host from its `series_sets` rows: a row losing some names
/// becomes one row per run of names that stay, each starting at its first name's id, so every
/// other series keeps its id. Returns the removed (id, name)s.
fn remove_from_sets(
    tx: &Connection,
    host_id: i64,
    gone: &HashSet<i64>,
) -> rusqlite::Result<Vec<(i64, String)>> {
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String)> = tx
        .prepare_cached("SELECT first_id, names FROM series_sets WHERE host_id = ?1")?
        .query_map([host_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut removed = Vec::new();
    for (first, text) in rows {
        let names = super::series::series_set_names(host_id, first, &text)?;
        let ids = first..first.saturating_add(i64::try_from(names.len()).unwrap_or(i64::MAX));
        if !ids.clone().any(|id| gone.contains(&id)) {
            continue;
        }
        tx.prepare_cached("DELETE FROM series_sets WHERE first_id = ?1")?
            .execute([first])?;
        let mut run: Option<(i64, Vec<&str>)> = None;
        let mut runs = Vec::new();
        for (id, name) in ids.zip(&names) {
            if gone.contains(&id) {
                removed.push((id, name.clone()));
                runs.extend(run.take());
            } else {
                run.get_or_insert_with(|| (id, Vec::new())).1.push(name);
            }
        }
        runs.extend(run);
        for (start, kept) in runs {
            let text = serde_json::to_string(&kept)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached(
                "INSERT INTO series_sets (first_id, host_id, names) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![start, host_id, text])?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::series::tests::{count, setup, write, T0};
    use crate::store::Synchronous;
    use crate::testutil::TempDir;

    const DAY: i64 = 86400;

    fn sets(store: &Store) -> Vec<(i64, String)> {
        store
            .lock()
            .prepare("SELECT first_id, names FROM series_sets ORDER BY first_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn series_id(store: &Store, name: &str) -> i64 {
        store
            .lock()
            .query_row("SELECT id FROM series WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// Moves, rolls up everything finished, and sweeps with `retention`, all at `now`.
    fn maintain(store: &Store, retention: &Retention, now: i64) -> Vec<Forgotten> {
        store.move_to_history(now, &|| false).unwrap();
        store.roll_up(now, 100_000, &|| false).unwrap();
        store.enforce_retention(retention, now, &|| false).unwrap();
        store
            .forget_vanished_series(retention, now, &|| false)
            .unwrap()
    }

    #[test]
    fn a_vanished_guests_series_are_forgotten_once_no_tier_keeps_their_data() {
        let dir = TempDir::new("forget-vanished");
        let (store, host) = setup(&dir);
        // A node with a guest for its first day, then without it, for twenty days; one
        // sample every 30 minutes. The guest's names sit between the node's in one row.
        let writes = (0..20 * 48)
            .map(|i| {
                let t = T0 + i * 1800;
                if i < 48 {
                    write(
                        host,
                        t,
                        &[
                            ("guest.101.cpu", 1.0),
                            ("load1", 0.5),
                            ("guest.101.mem", 2.0),
                            ("uptime", t as f64),
                        ],
                    )
                } else {
                    write(host, t, &[("load1", 0.5), ("uptime", t as f64)])
                }
            })
            .collect();
        store.write_samples_direct(writes).unwrap();
        let old_ids: Vec<i64> = ["guest.101.cpu", "load1", "guest.101.mem", "uptime"]
            .iter()
            .map(|n| series_id(&store, n))
            .collect();
        assert_eq!(old_ids, [1, 2, 3, 4]);
        let now = T0 + 20 * DAY;
        // At its cap, before any retention pass: a new guest is refused.
        store.set_max_series_per_host(4);
        let err = store
            .write_sample(write(host, now - 60, &[("guest.102.cpu", 1.0)]))
            .unwrap_err();
        assert!(err.is_series_cap(), "{err}");

        // Raw points and the finer tiers of the guest are gone, its weekly buckets are still
        // kept: its series stay.
        let keeps_weeks = Retention {
            raw: DAY,
            tiers: [2 * DAY, 3 * DAY, 30 * DAY],
        };
        assert_eq!(maintain(&store, &keeps_weeks, now), []);
        assert!(store
            .raw_series(host, "guest.101.cpu", 0, now)
            .unwrap()
            .is_empty());
        assert_eq!(
            count(&store, "rollups WHERE series_id = 1 AND tier = 604800"),
            1
        );
        assert_eq!(
            count(&store, "rollups WHERE series_id = 1 AND tier < 604800"),
            0
        );
        assert_eq!(
            store.series_names(host).unwrap(),
            ["guest.101.cpu", "guest.101.mem", "load1", "uptime"]
        );
        // But they are dormant (no raw point within raw retention): they stop counting
        // against the cap, and the new guest fits.
        store
            .write_sample(write(host, now - 60, &[("guest.102.cpu", 1.0)]))
            .unwrap();
        assert_eq!(series_id(&store, "guest.102.cpu"), 5);

        // Once the weekly tier lets go of them too, the guest's series are forgotten; the
        // node's keep their ids, the row split around the gap.
        let keeps_days = Retention {
            raw: DAY,
            tiers: [2 * DAY, 3 * DAY, 4 * DAY],
        };
        let forgotten = maintain(&store, &keeps_days, now);
        assert_eq!(
            forgotten,
            [Forgotten {
                host: "pve1".into(),
                names: vec!["guest.101.cpu".into(), "guest.101.mem".into()],
            }]
        );
        assert_eq!(
            sets(&store),
            [
                (2, r#"["load1"]"#.to_owned()),
                (4, r#"["uptime"]"#.to_owned()),
                (5, r#"["guest.102.cpu"]"#.to_owned())
            ]
        );
        assert_eq!(
            store.series_names(host).unwrap(),
            ["guest.102.cpu", "load1", "uptime"]
        );
        assert!(!store
            .raw_series(host, "load1", now - DAY, now)
            .unwrap()
            .is_empty());
        // Nothing more to forget on the next pass.
        assert_eq!(maintain(&store, &keeps_days, now), []);

        // The host's count dropped: a guest that comes back fits under the cap and gets a
        // new id.
        store
            .write_sample(write(host, now, &[("guest.101.cpu", 3.0)]))
            .unwrap();
        assert_eq!(series_id(&store, "guest.101.cpu"), 6);
        assert_eq!(
            store.raw_series(host, "guest.101.cpu", 0, now).unwrap(),
            [(now, 3.0)]
        );

        // And all of it reads the same after a restart.
        drop(store);
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        assert_eq!(
            store.series_names(host).unwrap(),
            ["guest.101.cpu", "guest.102.cpu", "load1", "uptime"]
        );
        assert_eq!(series_id(&store, "load1"), 2);
        assert_eq!(store.integrity_check().unwrap(), ["ok"]);
    }

    #[test]
    fn a_series_is_kept_while_any_data_of_it_is_left() {
        let dir = TempDir::new("forget-any-data");
        let (store, host) = setup(&dir);
        store
            .write_sample(write(host, T0, &[("a", 1.0), ("b", 2.0)]))
            .unwrap();
        let r = Retention::default();
        // In `recent` only.
        assert_eq!(store.forget_vanished_series(&r, T0, &|| false).unwrap(), []);
        // In the history file only.
        store.move_to_history(T0 + 1, &|| false).unwrap();
        assert_eq!(count(&store, "recent"), 0);
        assert_eq!(store.forget_vanished_series(&r, T0, &|| false).unwrap(), []);
        // Only a dirty mark left (the points deleted behind the store's back).
        store
            .lock()
            .execute_batch(
                "DELETE FROM history.chunks;
                 INSERT INTO rollup_dirty (tier, series_id, t) VALUES (1800, 1, 0);",
            )
            .unwrap();
        let forgotten = store.forget_vanished_series(&r, T0, &|| false).unwrap();
        assert_eq!(forgotten[0].names, ["b"]);
        assert_eq!(store.series_names(host).unwrap(), ["a"]);
    }

    #[test]
    fn a_sample_arriving_after_the_candidates_were_found_keeps_its_series() {
        let dir = TempDir::new("forget-race");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        store.move_to_history(T0 + 1, &|| false).unwrap();
        store
            .lock()
            .execute_batch("DELETE FROM history.chunks")
            .unwrap();
        let candidates = store.vanished_candidates(host, T0).unwrap().vanished;
        assert_eq!(candidates, [1]);
        // The series' next point lands between finding it and removing it.
        store
            .write_sample(write(host, T0 + 60, &[("x", 2.0)]))
            .unwrap();
        assert!(store.forget_batch(host, &candidates).unwrap().is_empty());
        assert_eq!(store.series_names(host).unwrap(), ["x"]);
        assert_eq!(
            store.raw_series(host, "x", 0, T0 + 60).unwrap(),
            [(T0 + 60, 2.0)]
        );
    }

    #[test]
    fn a_clock_far_ahead_of_the_data_forgets_nothing() {
        let dir = TempDir::new("forget-clock");
        let (store, host) = setup(&dir);
        store.write_sample(write(host, T0, &[("x", 1.0)])).unwrap();
        store.move_to_history(T0 + 1, &|| false).unwrap();
        let now = T0 + 20 * 365 * DAY;
        let short = Retention {
            raw: DAY,
            tiers: [DAY, DAY, DAY],
        };
        store.roll_up(now, 100_000, &|| false).unwrap();
        assert!(store.enforce_retention(&short, now, &|| false).is_err());
        assert_eq!(
            store
                .forget_vanished_series(&short, now, &|| false)
                .unwrap(),
            []
        );
        assert_eq!(store.series_names(host).unwrap(), ["x"]);
    }

    #[test]
    fn dormant_series_do_not_count_against_the_cap_until_they_come_back() {
        let dir = TempDir::new("forget-dormant");
        let (store, host) = setup(&dir);
        store.set_max_series_per_host(2);
        let r = Retention {
            raw: DAY,
            ..Retention::default()
        };
        // `b` is last seen at T0; `a` goes on for two days.
        let writes = (0..2 * 48)
            .map(|i| {
                let t = T0 + i * 1800;
                if i == 0 {
                    write(host, t, &[("a", 1.0), ("b", 1.0)])
                } else {
                    write(host, t, &[("a", 1.0)])
                }
            })
            .collect();
        store.write_samples_direct(writes).unwrap();
        let now = T0 + 2 * DAY;
        let pass = |now: i64| {
            store.move_to_history(now, &|| false).unwrap();
            store.forget_vanished_series(&r, now, &|| false).unwrap()
        };
        assert!(store.write_sample(write(host, now, &[("c", 1.0)])).is_err());
        assert_eq!(pass(now), []);
        // `b` is dormant: `c` fits beside `a`, a fourth does not.
        store.write_sample(write(host, now, &[("c", 1.0)])).unwrap();
        let err = store
            .write_sample(write(host, now, &[("d", 1.0)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 active series (3 in all)"), "{err}");
        // `b` comes back (a known series is never refused) and counts again from the next
        // pass on.
        store
            .write_sample(write(host, now + 60, &[("b", 2.0)]))
            .unwrap();
        assert_eq!(pass(now + 120), []);
        let err = store
            .write_sample(write(host, now + 120, &[("d", 1.0)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 active series (3 in all)"), "{err}");
        assert_eq!(store.series_names(host).unwrap(), ["a", "b", "c"]);
    }
}
