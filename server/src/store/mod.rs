//! The SQLite database: two files, and two connections.
//!
//! The main file holds hosts, series names, the newest samples (`recent`, time-ordered so a
//! sample's points are neighbours on disk), rollups and users. The history file holds raw
//! points in series order (`points`), so one series over a range is one index range scan.
//! Ingestion appends to `recent` through the shared connection (behind a mutex, held for
//! short, whole transactions and never across network I/O or bcrypt); the maintenance thread
//! moves rows from `recent` into `points` through a second connection that writes only the
//! history file. SQLite allows one writer per file, so the move never waits for ingestion's
//! lock and ingestion never waits for the move.

pub mod alerts;
mod chunk;
mod chunks;
mod forget;
mod health;
mod hosts;
mod latest;
mod migrations;
mod mover;
pub mod notify;
pub mod rollup;
mod series;
mod stats;
mod users;

pub use forget::Forgotten;
pub use hosts::{Host, HostStatus};
pub use latest::LatestRow;
pub use mover::MoveReport;
pub use rollup::Retention;
pub use series::{Point, SampleWrite, SeriesQuery, SERIES_CAP};
pub use stats::{DbStats, FileStats, TierStats};
pub use users::ADMIN_USER;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

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

/// How long a connection waits for a write lock that another connection or process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// The server: [`SERVER_LOCK_WAIT`]. A sample does not queue for long behind a lock that
    /// stays taken; the store reports itself failing instead (`/healthz`).
    Server,
    /// Admin commands: up to [`ADMIN_LOCK_WAIT`], saying on stderr that they wait once it takes
    /// longer than [`ADMIN_LOCK_NOTICE`]: the server's commits and maintenance take the lock
    /// again and again, and a command must get its turn rather than fail with "database is
    /// locked".
    Admin,
}

pub const SERVER_LOCK_WAIT: Duration = Duration::from_secs(5);
pub const ADMIN_LOCK_WAIT: Duration = Duration::from_secs(30);
pub const ADMIN_LOCK_NOTICE: Duration = Duration::from_secs(1);

impl LockWait {
    fn limit(self) -> Duration {
        match self {
            LockWait::Server => SERVER_LOCK_WAIT,
            LockWait::Admin => ADMIN_LOCK_WAIT,
        }
    }
}

pub struct Store {
    path: PathBuf,
    /// How long a write waits for the lock (see [`LockWait`]).
    lock_wait: Duration,
    history_path: PathBuf,
    db: Mutex<Db>,
    /// Samples waiting to be committed by whichever writer holds the lock next (group commit).
    pending: Mutex<Vec<Arc<series::Job>>>,
    /// The maintenance thread's connection, set up like `db`'s. Through it the thread writes
    /// only the history file; it reads both, computing rollups outside `db`'s lock.
    background: Mutex<Connection>,
    /// A reader of the main file for the roster watch (`Store::host_ids`): never waits for
    /// ingestion or background work, and they never wait for it.
    roster: Mutex<Connection>,
    /// Whether writes succeed (`/healthz`, join replies).
    health: health::Health,
}

/// The connection and what we remember about its content, guarded together. Never leaves
/// the store: everything outside asks the store a question instead.
pub(crate) struct Db {
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
    /// The host whose `recent` rows are being copied into the history file right now.
    move_claim: Option<mover::MoveClaim>,
    /// Counts samples that marked a rolled-up bucket dirty, so that a recompute that raced
    /// with one keeps its marks for the next pass.
    dirty_generation: u64,
    /// The `synchronous` setting ingestion commits with ("FULL" or "NORMAL").
    synchronous: &'static str,
    /// Most series one host may have (`max_series_per_host`); a sample that would create more
    /// is refused. Dormant series do not count.
    max_series_per_host: usize,
    /// Per host, how many of its series had no raw point within raw retention at the last
    /// retention pass (see `forget`): a vanished guest's series stop counting against the
    /// cap long before retention lets go of their rollups.
    dormant: HashMap<i64, usize>,
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
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path` and its
    /// history file beside it (see [`history_path`]), for the server.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store> {
        Store::open_with(path, synchronous, LockWait::Server)
    }

    /// [`Store::open`] for an admin command: waits long for the write lock (see
    /// [`LockWait::Admin`]).
    pub fn open_for_admin(path: &Path, synchronous: Synchronous) -> Result<Store> {
        Store::open_with(path, synchronous, LockWait::Admin)
    }

    fn open_with(path: &Path, synchronous: Synchronous, wait: LockWait) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let history = history_path(path);
        let had_main = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if had_main && !history.exists() {
            // Created afresh below: raw points in it (if it held any) are gone; say so once.
            log::warn!(
                "history file {} is missing: creating it empty. If it was lost, the raw points \
                 it held are gone; restore it together with {} from the same backup",
                history.display(),
                path.display()
            );
        }
        // Create the files ourselves so that they are never world-readable: the main file holds
        // token hashes, and neither is anybody else's business.
        for file in [path, history.as_path()] {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(file)
                .map_err(|source| Error::Io {
                    path: file.to_owned(),
                    source,
                })?;
        }
        let db_err = database_error(path, wait.limit());
        let history_err = database_error(&history, wait.limit());
        let sync = match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        let mut conn = open_connection(path, &history, sync, wait)?;
        let paired = migrations::migrate(&mut conn).map_err(|failure| match failure.schema {
            migrations::Schema::Main => db_err(failure.source),
            migrations::Schema::History => history_err(failure.source),
        })?;
        if !paired {
            return Err(Error::MismatchedHistory {
                main: path.to_owned(),
                history,
            });
        }
        let rollup_done_until = rollup::load_progress(&conn).map_err(db_err)?;
        let background = open_connection(path, &history, sync, wait)?;
        let roster = Connection::open(path)
            .and_then(|conn| {
                conn.busy_timeout(SERVER_LOCK_WAIT)?;
                Ok(conn)
            })
            .map_err(db_err)?;
        let db = Db {
            conn,
            series_ids: HashMap::new(),
            late_before: rollup_done_until[0],
            oldest_point: None,
            rollup_done_until,
            move_claim: None,
            dirty_generation: 0,
            synchronous: sync,
            max_series_per_host: usize::MAX,
            dormant: HashMap::new(),
        };
        Ok(Store {
            path: path.to_owned(),
            lock_wait: wait.limit(),
            history_path: history,
            db: Mutex::new(db),
            pending: Mutex::new(Vec::new()),
            background: Mutex::new(background),
            roster: Mutex::new(roster),
            health: health::Health::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn history_path(&self) -> &Path {
        &self.history_path
    }

    /// The connection, for one short piece of work. A thread that panicked while holding the
    /// lock left no half-done transaction behind (rusqlite rolls back on drop), so a poisoned
    /// lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection, for background work (rollups, moves, retention): first lets samples
    /// already waiting for the lock go ahead (for a bounded time, so background work still
    /// progresses under constant load). A thread that loops taking and releasing a mutex
    /// otherwise tends to take it again before a woken waiter runs, starving ingestion.
    pub(crate) fn lock_for_background(&self) -> MutexGuard<'_, Db> {
        self.lock_giving_way().0
    }

    /// [`Store::lock_for_background`], also telling whether samples were still waiting when
    /// its patience ran out (ingestion is saturated: background work should take bigger bites).
    pub(crate) fn lock_giving_way(&self) -> (MutexGuard<'_, Db>, bool) {
        const PATIENCE: Duration = Duration::from_millis(20);
        const STEP: Duration = Duration::from_micros(250);
        let started = std::time::Instant::now();
        let mut saturated = false;
        while !self.queue().is_empty() {
            if started.elapsed() >= PATIENCE {
                saturated = true;
                break;
            }
            std::thread::sleep(STEP);
        }
        (self.lock(), saturated)
    }

    /// The maintenance thread's connection (see [`Store`]). Taken only by one thread at a time
    /// in practice; never while holding [`Store::lock`] for longer than a statement.
    fn background(&self) -> MutexGuard<'_, Connection> {
        self.background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wraps a rusqlite error with the database path.
    pub fn err(&self, source: rusqlite::Error) -> Error {
        database_error(&self.path, self.lock_wait)(source)
    }

    /// Wraps a rusqlite error from work on the history file with that file's path.
    fn history_err(&self, source: rusqlite::Error) -> Error {
        database_error(&self.history_path, self.lock_wait)(source)
    }

    /// Whether the database answers (`/healthz`): one trivial query through the shared
    /// connection.
    pub fn ping(&self) -> Result<()> {
        self.lock()
            .query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Sets a `PRAGMA` on the ingestion connection: for trying SQLite settings in benchmarks
    /// (`proxmox-monitor-loadgen ceiling --pragma`) before proposing them for the server.
    /// Caps the series of one host: a sample that would create more is refused (its error
    /// says so, and [`Error::is_series_cap`] tells it apart from a failing store).
    pub fn set_max_series_per_host(&self, max: usize) {
        self.lock().max_series_per_host = max;
    }

    pub fn set_pragma(&self, name: &str, value: &str) -> Result<()> {
        self.lock()
            .pragma_update(None, name, value)
            .map_err(|e| self.err(e))
    }

    /// Copies both write-ahead logs into their files and truncates them (benchmarks, backups).
    pub fn checkpoint(&self) -> Result<()> {
        let db = self.lock();
        for schema in ["main", "history"] {
            db.query_row(
                &format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"),
                [],
                |_| Ok(()),
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Runs `PRAGMA integrity_check` over both files; the answer is `["ok"]` when all is well.
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

impl Store {
    /// `PRAGMA quick_check` of both files (O(N), no index cross-checks: seconds on a big
    /// history file): what SQLite found per file, `["ok"]` when nothing.
    pub fn quick_check(&self) -> Result<Vec<(&'static str, Vec<String>)>> {
        let conn = self.lock();
        let mut out = Vec::new();
        for schema in ["main", "history"] {
            let mut stmt = conn
                .prepare(&format!("PRAGMA {schema}.quick_check(20)"))
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(|e| self.err(e))?;
            out.push((schema, rows));
        }
        Ok(out)
    }
}

/// The history file of the database at `main`: `monitor.db` → `monitor-history.db`. Back both
/// files up together.
pub fn history_path(main: &Path) -> PathBuf {
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match main.extension() {
        Some(ext) => format!("{stem}-history.{}", ext.to_string_lossy()),
        None => format!("{stem}-history"),
    };
    main.with_file_name(name)
}

/// The file the admin commands rewrite after a change that a running server must see (hosts
/// registered or removed, alerts acknowledged or silenced): `monitor.db` → `monitor.db-changed`,
/// next to the database like SQLite's `-wal`. The server's roster watch waits on it (inotify):
/// SQLite tells no other process of a commit.
pub fn change_marker(main: &Path) -> PathBuf {
    let mut name = main.file_name().unwrap_or_default().to_os_string();
    name.push("-changed");
    main.with_file_name(name)
}

/// Tells a running server of the database at `main` that this process changed it, after the
/// change is committed: the change marker is written and closed (the event the server waits
/// for). Failing only delays what the server sees (until its restart, or a host's next join),
/// so it is logged, not an error.
pub fn announce_change(main: &Path) {
    let marker = change_marker(main);
    if let Err(e) = std::fs::write(&marker, format!("{}\n", common::time::now_unix())) {
        log::warn!(
            "cannot write {} ({e}): a running server sees this change only when it restarts",
            marker.display()
        );
    }
}

/// Wraps rusqlite errors with the file they concern; a lock that stayed taken for all of
/// `waited` (the busy handler gave up) says so.
fn database_error(path: &Path, waited: Duration) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
    move |source| {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            Error::Locked {
                path: path.to_owned(),
                waited,
            }
        } else {
            Error::Database {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// A transaction that holds the main file's write lock from its first statement, waiting for
/// it (the busy handler) when another connection or process has it: what `BEGIN IMMEDIATE`
/// does, for the main file only. A deferred transaction that reads first fails at once with
/// "database is locked" (`SQLITE_BUSY_SNAPSHOT`, no waiting) if another writer committed
/// between its read and its first write. `BEGIN IMMEDIATE` itself would also take the
/// attached history file's lock, and so wait for the maintenance thread's moves for nothing.
pub(crate) fn main_write(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    let tx = conn.transaction()?;
    tx.execute_batch("DELETE FROM main.pairing WHERE 0")?;
    Ok(tx)
}

thread_local! {
    /// The current wait for a lock (admin commands' busy handler): when it began, and
    /// whether the notice was given.
    static WAITING: std::cell::Cell<(std::time::Instant, bool)> =
        std::cell::Cell::new((std::time::Instant::now(), false));
}

/// The busy handler of admin commands: waits up to [`ADMIN_LOCK_WAIT`] for a lock, in short
/// sleeps, and says once that it waits when that takes longer than [`ADMIN_LOCK_NOTICE`].
/// `count` is how often SQLite called it for this wait already (0 at the first call).
fn admin_busy(count: i32) -> bool {
    let now = std::time::Instant::now();
    let (started, told) = WAITING.with(|cell| {
        if count == 0 {
            cell.set((now, false));
        }
        cell.get()
    });
    let waited = now - started;
    if waited >= ADMIN_LOCK_WAIT {
        return false;
    }
    if waited >= ADMIN_LOCK_NOTICE && !told {
        WAITING.with(|cell| cell.set((started, true)));
        log::warn!(
            "waiting for the database lock (the server or another command is writing; up to \
             {} s)…",
            ADMIN_LOCK_WAIT.as_secs()
        );
    }
    std::thread::sleep(Duration::from_millis(if count < 10 { 10 } else { 50 }));
    true
}

/// A transaction that holds the history file's write lock from its first statement (deferred:
/// the main file is only read). A statement that writes nothing takes the lock, so that no
/// read of the history file comes first: a read would fix the transaction's snapshot, and if
/// another connection (`remove-host`, a second process) committed to the file before this one
/// writes, SQLite refuses the write at once (`SQLITE_BUSY_SNAPSHOT`) instead of waiting.
pub(crate) fn history_write(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    let tx = conn.transaction()?;
    tx.execute_batch("DELETE FROM history.chunks WHERE 0")?;
    Ok(tx)
}

/// The smallest value of an indexed integer column above `after` (`sql` selects it with
/// `> ?1 ORDER BY … LIMIT 1`): one index seek per distinct value, so walking the distinct hosts
/// or series of a big table never scans it.
pub(crate) fn next_key(conn: &Connection, sql: &str, after: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(sql)?
        .query_row([after], |row| row.get(0))
        .optional()
}

/// How much background work to do per hold of the ingestion lock: `normal`, doubling up to
/// `max` while ingestion is saturated (samples still waiting after the background's patience),
/// so that fewer, bigger holds keep background work from falling behind.
pub(crate) struct Bite {
    normal: i64,
    max: i64,
    current: i64,
}

impl Bite {
    pub(crate) fn new(normal: i64, max: i64) -> Bite {
        Bite {
            normal,
            max,
            current: normal,
        }
    }

    pub(crate) fn next(&mut self, saturated: bool) -> i64 {
        self.current = if saturated {
            (self.current * 2).min(self.max)
        } else {
            self.normal
        };
        self.current
    }
}

/// A connection to the main file with the history file attached as `history`.
fn open_connection(
    path: &Path,
    history: &Path,
    synchronous: &str,
    wait: LockWait,
) -> Result<Connection> {
    let main_err = database_error(path, wait.limit());
    let history_err = database_error(history, wait.limit());
    let conn = Connection::open(path).map_err(main_err)?;
    match wait {
        LockWait::Server => conn.busy_timeout(SERVER_LOCK_WAIT),
        LockWait::Admin => conn.busy_handler(Some(admin_busy)),
    }
    .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
    .and_then(|()| conn.pragma_update(None, "synchronous", synchronous))
    .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
    .map_err(main_err)?;
    let file = history
        .to_str()
        .ok_or_else(|| history_err(rusqlite::Error::InvalidPath(history.to_owned())))?;
    // The history file always syncs fully: a row leaves `recent` only once its copy is
    // committed there, and that copy must survive a power cut.
    conn.execute("ATTACH DATABASE ?1 AS history", [file])
        .and_then(|_| conn.pragma_update(Some("history"), "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(Some("history"), "synchronous", "FULL"))
        .map_err(history_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::{Bite, Store, Synchronous};
    use crate::error::Error;
    use crate::testutil::TempDir;

    #[test]
    fn a_write_lock_that_stays_taken_is_an_error_naming_the_file() {
        let dir = TempDir::new("store-locked");
        let path = dir.path().join("t.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Waits the server's 5 s, then gives up.
        let err = store.create_host("pve1", "hash", 0).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("is locked"), "{message}");
        assert!(message.contains("(5 s)"), "{message}");
        other.execute_batch("ROLLBACK").unwrap();
        store.create_host("pve1", "hash", 0).unwrap();
    }

    #[test]
    fn bites_grow_under_saturation_and_shrink_back() {
        let mut bite = Bite::new(50, 300);
        assert_eq!(bite.next(false), 50);
        assert_eq!(bite.next(true), 100);
        assert_eq!(bite.next(true), 200);
        assert_eq!(bite.next(true), 300);
        assert_eq!(bite.next(true), 300);
        assert_eq!(bite.next(false), 50);
    }
}
