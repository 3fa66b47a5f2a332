//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Migrations are append-only: never edit one that has shipped, add the next.

use rusqlite::{Connection, TransactionBehavior};

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
];

/// Applies every migration newer than the database, each in its own transaction. The version
/// is read inside a write transaction (`BEGIN IMMEDIATE`), so two processes opening a fresh
/// database at once (the server and an admin command) cannot both apply the same migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let Some(sql) = MIGRATIONS.get(current) else {
            return tx.commit();
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
    }
}
