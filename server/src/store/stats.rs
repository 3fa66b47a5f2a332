//! What the database holds and what it costs on disk, per tier and file (`db-stats`).
//!
//! Table sizes come from SQLite's `dbstat` (every page of the table counted, full or not), so
//! reading them touches the whole file once: an admin's occasional question, not something
//! to poll.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use super::rollup::TIERS;
use super::Store;
use crate::error::Result;

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct DbStats {
    pub tiers: Vec<TierStats>,
    pub files: Vec<FileStats>,
}

/// One tier of the history in one file.
#[derive(Debug, Clone, Serialize)]
pub struct TierStats {
    /// `raw`, or a rollup width: `30m`, `6h`, `1w`.
    pub tier: String,
    /// `main` or `history`.
    pub file: String,
    pub table: String,
    pub points: u64,
    /// Pages of the table (the rollup tiers share one table: split by their rows).
    pub bytes: u64,
    pub bytes_per_point: Option<f64>,
}

/// One database file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStats {
    pub file: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Its write-ahead log, not yet copied into the file.
    pub wal_bytes: u64,
    /// Pages free inside the file, reused before it grows.
    pub free_bytes: u64,
}

impl Store {
    /// Points and bytes per tier and file; see the module doc for the cost.
    pub fn stats(&self) -> Result<DbStats> {
        let db = self.lock();
        let conn: &Connection = &db;
        let raw_history =
            table_bytes(conn, "history", "chunks").map_err(|e| self.history_err(e))?;
        let moved: i64 = conn
            .query_row(
                "SELECT coalesce(sum(n), 0) FROM history.chunks",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.history_err(e))?;
        let recent: i64 = conn
            .query_row("SELECT count(*) FROM recent", [], |row| row.get(0))
            .map_err(|e| self.err(e))?;
        let recent_bytes = table_bytes(conn, "main", "recent").map_err(|e| self.err(e))?;
        let mut tiers = vec![
            tier("raw", "history", "chunks", moved, raw_history),
            tier(
                "raw",
                "main",
                "recent (not moved yet)",
                recent,
                recent_bytes,
            ),
        ];
        let rollup_bytes = table_bytes(conn, "main", "rollups").map_err(|e| self.err(e))?;
        let mut rows = Vec::new();
        for width in TIERS {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM rollups WHERE tier = ?1",
                    [width],
                    |row| row.get(0),
                )
                .map_err(|e| self.err(e))?;
            rows.push(n);
        }
        let all_rows: i64 = rows.iter().sum();
        for (width, n) in TIERS.iter().zip(rows) {
            let share = if all_rows > 0 {
                (u128::from(rollup_bytes) * n.unsigned_abs() as u128
                    / all_rows.unsigned_abs() as u128) as u64
            } else {
                0
            };
            tiers.push(tier(&tier_name(*width), "main", "rollups", n, share));
        }
        let mut files = Vec::new();
        for (name, path) in [("main", self.path()), ("history", self.history_path())] {
            let pragma = |what: &str| -> rusqlite::Result<i64> {
                conn.query_row(&format!("PRAGMA {name}.{what}"), [], |row| row.get(0))
            };
            let free = pragma("freelist_count")
                .and_then(|count| Ok(count * pragma("page_size")?))
                .map_err(|e| self.err(e))?;
            files.push(FileStats {
                file: name.to_owned(),
                path: path.to_owned(),
                bytes: file_len(path),
                wal_bytes: file_len(&wal_of(path)),
                free_bytes: u64::try_from(free).unwrap_or(0),
            });
        }
        Ok(DbStats { tiers, files })
    }
}

fn tier(name: &str, file: &str, table: &str, points: i64, bytes: u64) -> TierStats {
    let points = u64::try_from(points).unwrap_or(0);
    TierStats {
        tier: name.to_owned(),
        file: file.to_owned(),
        table: table.to_owned(),
        points,
        bytes,
        #[allow(clippy::cast_precision_loss)]
        bytes_per_point: (points > 0).then(|| bytes as f64 / points as f64),
    }
}

/// `30m`, `6h`, `1w` for a bucket width in seconds.
fn tier_name(width: i64) -> String {
    match width {
        w if w % (7 * 86_400) == 0 => format!("{}w", w / (7 * 86_400)),
        w if w % 3600 == 0 => format!("{}h", w / 3600),
        w => format!("{}m", w / 60),
    }
}

/// Bytes of every page of one table (a `WITHOUT ROWID` table is its own index).
fn table_bytes(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<u64> {
    let bytes: i64 = conn.query_row(
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE schema = ?1 AND name = ?2",
        [schema, table],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use crate::store::series::tests::{setup, write, T0};
    use crate::testutil::TempDir;

    #[test]
    fn points_and_bytes_per_tier_and_file() {
        let dir = TempDir::new("stats");
        let (store, host) = setup(&dir);
        let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        let writes = (0..600)
            .map(|i| {
                let points: Vec<(&str, f64)> = names
                    .iter()
                    .map(|n| (n.as_str(), (i % 13) as f64))
                    .collect();
                write(host, T0 + i * 10, &points)
            })
            .collect();
        store.write_samples_direct(writes).unwrap();
        store.move_to_history(T0 + 3000, &|| false).unwrap();
        store.roll_up(T0 + 7200, 100, &|| false).unwrap();
        let stats = store.stats().unwrap();
        let find = |tier: &str, file: &str| {
            stats
                .tiers
                .iter()
                .find(|t| t.tier == tier && t.file == file)
                .unwrap()
                .clone()
        };
        let moved = find("raw", "history");
        assert_eq!(moved.points, 50 * 300);
        assert!(
            moved.bytes > 0 && moved.bytes_per_point.unwrap() < 10.0,
            "{moved:?}"
        );
        assert_eq!(find("raw", "main").points, 50 * 300);
        let thirty = find("30m", "main");
        assert_eq!(thirty.points, 50 * 3);
        assert!(thirty.bytes > 0);
        assert_eq!(find("1w", "main").points, 0);
        assert_eq!(stats.files.len(), 2);
        assert!(stats.files.iter().all(|f| f.bytes > 0));
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["tiers"][0]["tier"], "raw");
    }
}
