//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Migrations are append-only: never edit one that has shipped, add the next.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

const MIGRATIONS: &[&str] = &[
    // 1: hosts, as in the seed plan, plus when the status last changed ("offline since …").
    "CREATE TABLE hosts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL,
        agent_version TEXT,
        proxmox_version TEXT,
        zfs_version TEXT,
        status TEXT NOT NULL DEFAULT 'never_connected'
            CHECK (status IN ('never_connected', 'online', 'offline')),
        status_changed_at INTEGER,
        last_seen_at INTEGER,
        inserted_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 2: metric history. Raw points and rollups are WITHOUT ROWID tables keyed by
    // (series, time), so one series over a time range is one index range scan and a repeated
    // (series, time) is the same row: resending a sample stores nothing twice.
    "CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        UNIQUE (host_id, name)
    );
    CREATE TABLE points (
        series_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        v REAL NOT NULL,
        PRIMARY KEY (series_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE rollups (
        tier INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        avg REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (tier, series_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_progress (
        tier INTEGER PRIMARY KEY,
        done_until INTEGER NOT NULL
    );
    CREATE TABLE rollup_dirty (
        tier INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        PRIMARY KEY (tier, series_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE latest (
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        collected_at INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (host_id, kind)
    );",
    // 3: dashboard login. One row per user (only `admin` today) with its bcrypt password hash,
    // and sessions keyed by the SHA-256 of the random session id: a copy of the database (a
    // backup) then holds nothing a browser could present as a cookie.
    "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 4: raw points leave this file. Ingestion appends to `recent`, keyed (host, time, series)
    // so that a sample's points are neighbours (a few pages per sample instead of one page per
    // point); the maintenance thread moves them into `history.points`, keyed (series, time) for
    // reading. Series ids are never reused (AUTOINCREMENT), so a history row of a removed host
    // that a concurrent move left behind can never be taken for another host's. `pairing`
    // holds a random id that the history file must carry too (see `check_pairing`).
    "CREATE TABLE recent (
        host_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        v REAL NOT NULL,
        PRIMARY KEY (host_id, t, series_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO history.points (series_id, t, v) SELECT series_id, t, v FROM main.points;
    DROP TABLE main.points;
    CREATE TABLE series_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        UNIQUE (host_id, name)
    );
    INSERT INTO series_new (id, host_id, name) SELECT id, host_id, name FROM series;
    DROP TABLE series;
    ALTER TABLE series_new RENAME TO series;
    CREATE TABLE pairing (id TEXT NOT NULL);
    INSERT INTO pairing (id) SELECT lower(hex(randomblob(16)));
    INSERT INTO history.pairing (id) SELECT id FROM main.pairing
        WHERE NOT EXISTS (SELECT 1 FROM history.pairing);",
    // 5: reserved for the history-storage change of issue 17, which lands in parallel; this
    // empty step keeps the numbers of both branches apart until they are merged.
    "",
    // 6: alerts (see `store::alerts`). One row per alert episode — pending, firing, then
    // resolved — kept as history after it resolves; at most one open row per (rule, host,
    // object). Ids are AUTOINCREMENT: never handed out twice, so an id in a notification or a
    // link always means the same alert. `alert_outbox` holds notification events under a
    // unique idempotency key; `silences` the admins' silences; `alert_control` counts changes
    // made by any process (`ack`, `silence` from the command line), which the server watches.
    "CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule TEXT NOT NULL,
        host_id INTEGER NOT NULL,
        host TEXT NOT NULL,
        object TEXT NOT NULL DEFAULT '',
        guest INTEGER,
        label TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
        severity TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
        value REAL,
        threshold REAL,
        summary TEXT NOT NULL,
        since INTEGER NOT NULL,
        fired_at INTEGER,
        changed_at INTEGER NOT NULL,
        resolved_at INTEGER,
        resolution TEXT,
        live INTEGER NOT NULL DEFAULT 1,
        announced TEXT CHECK (announced IN ('warning', 'critical')),
        last_notified_at INTEGER,
        repeats INTEGER NOT NULL DEFAULT 0,
        suppressed_by TEXT,
        acked_at INTEGER,
        acked_by TEXT,
        ack_comment TEXT,
        ack_expires_at INTEGER
    );
    CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule, host_id, object)
        WHERE state != 'resolved';
    CREATE INDEX IF NOT EXISTS alerts_resolved ON alerts (resolved_at)
        WHERE state = 'resolved';
    CREATE TABLE IF NOT EXISTS alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        alert_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('firing', 'repeat', 'resolved')),
        created_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        delivered_at INTEGER
    );
    CREATE TABLE IF NOT EXISTS silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT,
        guest INTEGER,
        rule TEXT,
        tag TEXT,
        object TEXT,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        comment TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS alert_control (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO alert_control (id, generation) VALUES (1, 0);",
];

/// The history file's schema, attached as `history` (migrated before the main file, whose
/// migration 4 moves old points into it).
const HISTORY_MIGRATIONS: &[&str] = &[
    // 1: raw points by series, then time: one series over a range is one index range scan, and
    // a repeated (series, time) is the same row.
    "CREATE TABLE history.points (
        series_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        v REAL NOT NULL,
        PRIMARY KEY (series_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE history.pairing (id TEXT NOT NULL);",
];

/// Whether the history file belongs to this main file: both carry the main file's random
/// pairing id. A history file with points left over from another database (say the main file
/// was deleted to start afresh) would have its points read under the new database's series
/// ids, so it is refused. A history file without points takes the main file's id.
/// `Ok(false)` when it must be refused.
pub fn check_pairing(conn: &Connection) -> rusqlite::Result<bool> {
    let main: String = conn.query_row("SELECT id FROM main.pairing", [], |row| row.get(0))?;
    let history: Option<String> = conn
        .query_row("SELECT id FROM history.pairing", [], |row| row.get(0))
        .optional()?;
    if history.as_deref() == Some(main.as_str()) {
        return Ok(true);
    }
    let has_points: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM history.points)", [], |row| {
            row.get(0)
        })?;
    if has_points {
        return Ok(false);
    }
    conn.execute_batch("DELETE FROM history.pairing")?;
    conn.execute("INSERT INTO history.pairing (id) VALUES (?1)", [main])?;
    Ok(true)
}

/// Applies every migration newer than the database, each in its own transaction. The version
/// is read inside a write transaction (`BEGIN IMMEDIATE`), so two processes opening a fresh
/// database at once (the server and an admin command) cannot both apply the same migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_schema(conn, "main", MIGRATIONS)
}

/// Migrates the history file, attached as `history`.
pub fn migrate_history(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_schema(conn, "history", HISTORY_MIGRATIONS)
}

fn migrate_schema(
    conn: &mut Connection,
    schema: &str,
    migrations: &[&str],
) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: usize = tx.query_row(&format!("PRAGMA {schema}.user_version"), [], |row| {
            row.get(0)
        })?;
        let Some(sql) = migrations.get(current) else {
            return tx.commit();
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(Some(schema), "user_version", current + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{history_path, Retention, SeriesQuery, Store, Synchronous};
    use crate::testutil::TempDir;

    #[test]
    fn points_of_a_version_3_database_move_into_the_history_file() {
        let dir = TempDir::new("migrate-points");
        let path = dir.path().join("monitor.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 3;
                 INSERT INTO hosts (id, name, token_hash, inserted_at, updated_at)
                     VALUES (1, 'pve1', 'h', 0, 0);
                 INSERT INTO series (id, host_id, name) VALUES (7, 1, 'load1');
                 INSERT INTO points (series_id, t, v) VALUES (7, 100, 0.5), (7, 200, 1.5);",
            )
            .unwrap();
        }
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        assert!(history_path(&path).ends_with("monitor-history.db"));
        let points = store
            .query_series(
                &SeriesQuery {
                    host_id: 1,
                    name: "load1",
                    from: 0,
                    to: 300,
                    max_points: 10,
                },
                &Retention::default(),
                300,
            )
            .unwrap();
        assert_eq!(
            points.iter().map(|p| (p.t, p.avg)).collect::<Vec<_>>(),
            [(100, 0.5), (200, 1.5)]
        );
        let db = store.lock();
        let main_points: i64 = db
            .query_row(
                "SELECT count(*) FROM main.sqlite_master WHERE name = 'points'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(main_points, 0);
        // Series ids are never handed out twice, even after the newest series is deleted.
        db.execute("DELETE FROM series WHERE id = 7", []).unwrap();
        db.execute("INSERT INTO series (host_id, name) VALUES (1, 'x')", [])
            .unwrap();
        assert_eq!(db.last_insert_rowid(), 8);
        drop(db);
        assert_eq!(store.integrity_check().unwrap(), ["ok"]);
    }
}

#[cfg(test)]
mod pairing_tests {
    use crate::error::Error;
    use crate::store::series::tests::{write, T0};
    use crate::store::{history_path, Store, Synchronous};
    use crate::testutil::TempDir;

    fn remove_with_wal(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }

    #[test]
    fn a_history_file_of_another_database_is_refused() {
        let dir = TempDir::new("pairing-refused");
        let path = dir.path().join("server.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let host = store.create_host("pve1", "hash", T0).unwrap();
        store
            .write_sample(write(host.id, T0, &[("x", 1.0)]))
            .unwrap();
        store.move_to_history(T0 + 1, &|| false).unwrap();
        drop(store);
        // The main file deleted to start afresh, its history file left behind.
        remove_with_wal(&path);
        let err = Store::open(&path, Synchronous::Normal).err().unwrap();
        assert!(matches!(err, Error::MismatchedHistory { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("server-history.db"), "{message}");
        // Moving the history file away is the way out.
        remove_with_wal(&history_path(&path));
        Store::open(&path, Synchronous::Normal).unwrap();
    }

    #[test]
    fn an_empty_history_file_of_another_database_is_adopted() {
        let dir = TempDir::new("pairing-adopted");
        let path = dir.path().join("server.db");
        drop(Store::open(&path, Synchronous::Normal).unwrap());
        remove_with_wal(&path);
        drop(Store::open(&path, Synchronous::Normal).unwrap());
        Store::open(&path, Synchronous::Normal).unwrap();
    }

    #[test]
    fn a_lost_history_file_is_started_afresh() {
        let dir = TempDir::new("pairing-fresh");
        let path = dir.path().join("server.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        store.create_host("pve1", "hash", T0).unwrap();
        drop(store);
        remove_with_wal(&history_path(&path));
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        drop(store);
        // And from then on the two belong together.
        Store::open(&path, Synchronous::Normal).unwrap();
    }
}
