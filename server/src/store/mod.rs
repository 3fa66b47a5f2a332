//! The SQLite database: one connection behind a mutex, shared by all threads.
//!
//! The mutex is held for short, whole transactions and never across network I/O or bcrypt.

mod hosts;
mod migrations;
pub mod rollup;
mod series;
mod users;

pub use hosts::{Host, HostStatus};
pub use rollup::Retention;
pub use series::{Point, SampleWrite, SeriesQuery};
pub use users::ADMIN_USER;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// How hard SQLite works to keep committed transactions across a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: an acknowledged sample survives a power cut.
    Full,
    /// fsync only at checkpoints: survives a crash of the server, a power cut may lose the last
    /// commits.
    Normal,
}

pub struct Store {
    path: PathBuf,
    db: Mutex<Db>,
    /// Samples waiting to be committed by whichever writer holds the lock next (group commit).
    pending: Mutex<Vec<Arc<series::Job>>>,
}

/// The connection and what we remember about its content, guarded together.
pub struct Db {
    conn: Connection,
    /// (host id, series name) → series id, so that ingestion does not look them up every time.
    series_ids: series::SeriesIds,
    /// Per rollup tier, the time up to which its buckets are computed; points older than this
    /// arriving late mark their bucket dirty.
    rollup_done_until: [i64; rollup::TIER_COUNT],
    /// Samples older than this are late: their 30-minute bucket is (being) rolled up already.
    late_before: i64,
    /// The oldest `collected_at` stored since the server started, where rolling up begins.
    oldest_point: Option<i64>,
}

impl Deref for Db {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        // Create the file ourselves so that it is never world-readable: it holds token hashes.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        let db_err = |source| Error::Database {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        let sync = match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        migrations::migrate(&mut conn).map_err(db_err)?;
        let rollup_done_until = rollup::load_progress(&conn).map_err(db_err)?;
        let db = Db {
            conn,
            series_ids: HashMap::new(),
            late_before: rollup_done_until[0],
            oldest_point: None,
            rollup_done_until,
        };
        Ok(Store {
            path: path.to_owned(),
            db: Mutex::new(db),
            pending: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one short piece of work. A thread that panicked while holding the
    /// lock left no half-done transaction behind (rusqlite rolls back on drop), so a poisoned
    /// lock is safe to take over.
    pub fn lock(&self) -> MutexGuard<'_, Db> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wraps a rusqlite error with the database path.
    pub fn err(&self, source: rusqlite::Error) -> Error {
        Error::Database {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the answer is "ok".
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}
