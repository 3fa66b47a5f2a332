//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Migrations are append-only: never edit one that has shipped, add the next.

use rusqlite::Connection;

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
];

/// Applies every migration newer than the database, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
