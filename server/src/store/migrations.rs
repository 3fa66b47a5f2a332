//! Versioned schema migrations of both files, tracked in each file's `PRAGMA user_version`.
//!
//! Migrations are append-only: never edit one that has shipped, add the next. Each runs in its
//! own transaction and writes one file only, so a crash between two leaves both files at a
//! version they can be opened at (SQLite commits a transaction over two WAL files file by file,
//! not atomically); [`ORDER`] interleaves the two lists where one needs the other.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::chunks;

/// One migration: SQL, or code where SQL cannot do it.
pub enum Step {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

/// Which file a migration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Main,
    History,
}

impl Schema {
    fn name(self) -> &'static str {
        match self {
            Schema::Main => "main",
            Schema::History => "history",
        }
    }

    fn steps(self) -> &'static [Step] {
        match self {
            Schema::Main => MIGRATIONS,
            Schema::History => HISTORY_MIGRATIONS,
        }
    }
}

/// The order in which the two files reach each version: main's migration 4 moves a version-3
/// database's points into `history.points`, which history's migration 2 then compresses into
/// chunks. The files' pairing is checked once main has it (version 4) and before anything
/// rewrites the history file.
const ORDER: &[(Schema, usize)] = &[
    (Schema::History, 1),
    (Schema::Main, 4),
    (Schema::History, 2),
    (Schema::Main, 8),
];

/// A migration that failed, and which file it was for.
#[derive(Debug)]
pub struct Failure {
    pub schema: Schema,
    pub source: rusqlite::Error,
}

const MIGRATIONS: &[Step] = &[
    // 1: hosts, as in the seed plan, plus when the status last changed ("offline since …").
    Step::Sql(
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
    ),
    // 2: metric history. Raw points and rollups are WITHOUT ROWID tables keyed by
    // (series, time), so one series over a time range is one index range scan and a repeated
    // (series, time) is the same row: resending a sample stores nothing twice.
    Step::Sql(
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
    ),
    // 3: dashboard login. One row per user (only `admin` today) with its bcrypt password hash,
    // and sessions keyed by the SHA-256 of the random session id: a copy of the database (a
    // backup) then holds nothing a browser could present as a cookie.
    Step::Sql(
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
    ),
    // 4: raw points leave this file. Ingestion appends to `recent`, keyed (host, time, series)
    // so that a sample's points are neighbours (a few pages per sample instead of one page per
    // point); the maintenance thread moves them into `history.points`, keyed (series, time) for
    // reading. Series ids are never reused (AUTOINCREMENT), so a history row of a removed host
    // that a concurrent move left behind can never be taken for another host's. `pairing`
    // holds a random id that the history file must carry too (see `check_pairing`).
    //
    // Code only to be safe with a history file already compressed (history migration 2): a
    // main file created anew beside it. Its SQL is as shipped, in `MIGRATION_4`.
    Step::Code(recent_and_pairing),
    // 5: a host's series are created together, as one row of names (a JSON array: the i-th
    // name has id first_id + i), instead of one row (and one index entry) per series: a new
    // host's first sample then writes one row, not ~400. Ids keep coming from one counter, so
    // they are still never reused; existing series keep their ids (runs of consecutive ids
    // of one host become one row). `series` stays readable as a view.
    Step::Sql(
        "CREATE TABLE series_sets (
        first_id INTEGER PRIMARY KEY,
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        names TEXT NOT NULL
    );
    CREATE INDEX series_sets_by_host ON series_sets (host_id);
    CREATE TABLE series_counter (next_id INTEGER NOT NULL);
    INSERT INTO series_counter (next_id) SELECT 1 + max(
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'series'), 0),
        coalesce((SELECT max(id) FROM series), 0));
    INSERT INTO series_sets (first_id, host_id, names)
        SELECT min(id), host_id, json_group_array(name ORDER BY id) FROM (
            SELECT id, host_id, name,
                id - row_number() OVER (PARTITION BY host_id ORDER BY id) AS run FROM series)
        GROUP BY host_id, run;
    DROP TABLE series;
    CREATE VIEW series (id, host_id, name) AS
        SELECT s.first_id + j.key, s.host_id, j.value FROM series_sets s, json_each(s.names) j;",
    ),
    // 6: alerts (see `store::alerts`). One row per alert episode — pending, firing, then
    // resolved — kept as history after it resolves; at most one open row per (rule, host,
    // object). Ids are AUTOINCREMENT: never handed out twice, so an id in a notification or a
    // link always means the same alert. `alert_outbox` holds notification events under a
    // unique idempotency key; `silences` the admins' silences; `alert_control` counts changes
    // made by any process (`ack`, `silence` from the command line), which the server watches.
    Step::Sql(
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
    ),
    // 7: notification delivery (see `store::notify`). A message is what one channel is sent
    // once: one host's events grouped within the window. `notify_deliveries` holds each
    // (outbox event, channel) at most once — the primary key is what makes delivery exactly
    // once per event and channel — and names the message it went out in. `notify_progress`
    // is how far the outbox has been routed; it starts after the events written before
    // notifications existed, so an upgrade does not send old news.
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS notify_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        host TEXT NOT NULL,
        escalation INTEGER NOT NULL DEFAULT 0,
        held INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead', 'dropped')),
        group_until INTEGER NOT NULL,
        due_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS notify_messages_due ON notify_messages (due_at)
        WHERE state = 'pending';
    CREATE INDEX IF NOT EXISTS notify_messages_finished ON notify_messages (finished_at)
        WHERE state != 'pending';
    CREATE TABLE IF NOT EXISTS notify_deliveries (
        outbox_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (outbox_id, channel)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS notify_deliveries_message ON notify_deliveries (message_id);
    CREATE INDEX IF NOT EXISTS alert_outbox_alert ON alert_outbox (alert_id);
    CREATE TABLE IF NOT EXISTS notify_progress (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        routed_until INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO notify_progress (id, routed_until)
        SELECT 1, coalesce(max(id), 0) FROM alert_outbox;",
    ),
    // 8: secrets of the server itself: `resume_key`, the HMAC key of agents' resumption
    // tickets (see `auth::Tickets`), 32 random bytes written at first use.
    Step::Sql(
        "CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
    ),
];

/// Main migration 4 as shipped, in two parts around moving `main.points`.
const MIGRATION_4: [&str; 2] = [
    "CREATE TABLE recent (
        host_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        v REAL NOT NULL,
        PRIMARY KEY (host_id, t, series_id)
    ) WITHOUT ROWID;",
    "DROP TABLE main.points;
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
];

/// Main migration 4: `MIGRATION_4`, moving a version-3 database's points into the history
/// file: into `history.points` as shipped, or, when the history file has been compressed
/// already, into its chunks.
fn recent_and_pairing(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(MIGRATION_4[0])?;
    if has_table(tx, "points")? {
        tx.execute_batch(
            "INSERT OR IGNORE INTO history.points (series_id, t, v)
             SELECT series_id, t, v FROM main.points;",
        )?;
    } else {
        for_each_series(
            tx,
            "SELECT series_id, t, v FROM main.points ORDER BY series_id, t",
            |series_id, points| chunks::merge(tx, series_id, points).map(|_| ()),
        )?;
    }
    tx.execute_batch(MIGRATION_4[1])
}

/// Whether the history file has a table of this name.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM history.sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |row| row.get(0),
    )
}

/// Runs `sql` (selecting series id, time, value, ordered by series and time) and hands each
/// series' points to `each`; returns the number of series and of points.
fn for_each_series(
    conn: &Connection,
    sql: &str,
    mut each: impl FnMut(i64, &[(i64, f64)]) -> rusqlite::Result<()>,
) -> rusqlite::Result<(u64, u64)> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut current: Option<i64> = None;
    let mut points = Vec::new();
    let (mut series, mut total) = (0u64, 0u64);
    loop {
        let next = match rows.next()? {
            Some(row) => Some((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get(2)?)),
            None => None,
        };
        if let Some(id) = current.filter(|&id| next.map_or(true, |n| n.0 != id)) {
            each(id, &points)?;
            series += 1;
            total += points.len() as u64;
            if series % 10_000 == 0 {
                log::info!("compressing raw history: {series} series, {total} points so far");
            }
            points.clear();
        }
        let Some((id, t, v)) = next else { break };
        current = Some(id);
        points.push((t, v));
    }
    Ok((series, total))
}

/// The history file's schema, attached as `history`.
const HISTORY_MIGRATIONS: &[Step] = &[
    // 1: raw points by series, then time: one series over a range is one index range scan, and
    // a repeated (series, time) is the same row.
    Step::Sql(
        "CREATE TABLE history.points (
        series_id INTEGER NOT NULL,
        t INTEGER NOT NULL,
        v REAL NOT NULL,
        PRIMARY KEY (series_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE history.pairing (id TEXT NOT NULL);",
    ),
    // 2: raw points as compressed chunks, a row per run of one series' points (see `chunk` and
    // `chunks`): ~1.5 bytes per point instead of ~22. `WITHOUT ROWID`, keyed like the points
    // were; a chunk stays under ~1000 bytes, so rows never spill to overflow pages.
    Step::Code(points_into_chunks),
];

/// History migration 2: compresses `history.points` into `history.chunks`, series by series
/// (the table's own order), then drops it. `Store::open` reclaims the freed space after.
fn points_into_chunks(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE history.chunks (
            series_id INTEGER NOT NULL,
            start INTEGER NOT NULL,
            end INTEGER NOT NULL,
            n INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (series_id, start)
        ) WITHOUT ROWID;",
    )?;
    let (series, total) = for_each_series(
        tx,
        "SELECT series_id, t, v FROM history.points ORDER BY series_id, t",
        |series_id, points| chunks::write_new(tx, series_id, points),
    )?;
    if total > 0 {
        log::info!("compressed {total} raw points of {series} series into chunks");
    }
    tx.execute_batch("DROP TABLE history.points;")
}

/// Brings both files up to date, in [`ORDER`]. `Ok(false)` when the history file belongs to
/// another database (see [`check_pairing`]); nothing in it has been changed then.
pub fn migrate(conn: &mut Connection) -> Result<bool, Failure> {
    let mut compressed = false;
    for &(schema, version) in ORDER {
        if schema == Schema::History && version == 2 {
            let paired = check_pairing(conn).map_err(|source| Failure {
                schema: Schema::History,
                source,
            })?;
            if !paired {
                return Ok(false);
            }
        }
        let applied =
            migrate_schema(conn, schema, version).map_err(|source| Failure { schema, source })?;
        compressed |= schema == Schema::History && applied.contains(&2);
    }
    if compressed {
        // The dropped points table left its pages free (~90 % of the file): give them back
        // (in WAL mode the file shrinks at the checkpoint).
        conn.execute_batch("VACUUM history; PRAGMA history.wal_checkpoint(TRUNCATE);")
            .map_err(|source| Failure {
                schema: Schema::History,
                source,
            })?;
    }
    Ok(true)
}

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
    // Before history migration 2 the points are in `points`, after it in `chunks`.
    let table = if has_table(conn, "chunks")? {
        "chunks"
    } else {
        "points"
    };
    let has_points: bool = conn.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM history.{table})"),
        [],
        |row| row.get(0),
    )?;
    if has_points {
        return Ok(false);
    }
    conn.execute_batch("DELETE FROM history.pairing")?;
    conn.execute("INSERT INTO history.pairing (id) VALUES (?1)", [main])?;
    Ok(true)
}

/// Applies the migrations of `schema` up to `version`, each in its own transaction; returns
/// the versions it applied. The version is read again inside a write transaction (`BEGIN
/// IMMEDIATE`), so two processes opening a fresh database at once (the server and an admin
/// command) cannot both apply the same migration.
fn migrate_schema(
    conn: &mut Connection,
    schema: Schema,
    version: usize,
) -> rusqlite::Result<Vec<usize>> {
    let name = schema.name();
    let mut applied = Vec::new();
    // Up to date (every open but the first after an upgrade): no write lock is taken, so
    // opening never waits for the server's writes, nor fails on them.
    let current: usize =
        conn.query_row(&format!("PRAGMA {name}.user_version"), [], |row| row.get(0))?;
    if current >= version {
        return Ok(applied);
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: usize =
            tx.query_row(&format!("PRAGMA {name}.user_version"), [], |row| row.get(0))?;
        let step = schema.steps().get(current).filter(|_| current < version);
        let Some(step) = step else {
            tx.commit()?;
            return Ok(applied);
        };
        match step {
            Step::Sql(sql) => tx.execute_batch(sql)?,
            Step::Code(code) => code(&tx)?,
        }
        tx.pragma_update(Some(name), "user_version", current + 1)?;
        tx.commit()?;
        applied.push(current + 1);
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::store::{history_path, Retention, SeriesQuery, Store, Synchronous};
    use crate::testutil::TempDir;

    #[test]
    fn the_order_reaches_every_migration_of_both_files() {
        for schema in [Schema::Main, Schema::History] {
            let last = ORDER
                .iter()
                .filter(|(s, _)| *s == schema)
                .map(|(_, v)| *v)
                .max();
            assert_eq!(last, Some(schema.steps().len()), "{schema:?}");
        }
        let fresh = Connection::open_in_memory().unwrap();
        fresh
            .execute("ATTACH DATABASE ':memory:' AS history", [])
            .unwrap();
        let mut fresh = fresh;
        assert!(migrate(&mut fresh).unwrap());
        for schema in [Schema::Main, Schema::History] {
            let version: usize = fresh
                .query_row(&format!("PRAGMA {}.user_version", schema.name()), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(version, schema.steps().len());
        }
    }

    /// A version-4 database as the previous release left it, built with its own migrations.
    fn version_4(path: &std::path::Path) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        let history = history_path(path);
        conn.execute("ATTACH DATABASE ?1 AS history", [history.to_str().unwrap()])
            .unwrap();
        for (schema, steps) in [(Schema::History, 1), (Schema::Main, 4)] {
            for step in &schema.steps()[..steps] {
                let tx = conn.transaction().unwrap();
                match step {
                    Step::Sql(sql) => tx.execute_batch(sql).unwrap(),
                    Step::Code(code) => code(&tx).unwrap(),
                }
                tx.commit().unwrap();
            }
            conn.pragma_update(Some(schema.name()), "user_version", steps)
                .unwrap();
        }
        conn
    }

    fn series_query(store: &Store, host_id: i64, name: &str) -> Vec<(i64, f64)> {
        store
            .query_series(
                &SeriesQuery {
                    host_id,
                    name,
                    from: 0,
                    to: 1_000_000,
                    max_points: 100_000,
                },
                &Retention::default(),
                1_000_000,
            )
            .unwrap()
            .iter()
            .map(|p| (p.t, p.avg))
            .collect()
    }

    #[test]
    fn a_version_4_database_is_compressed_in_place() {
        let dir = TempDir::new("migrate-v4");
        let path = dir.path().join("server.db");
        {
            let conn = version_4(&path);
            conn.execute_batch(
                "INSERT INTO hosts (id, name, token_hash, inserted_at, updated_at)
                     VALUES (1, 'pve1', 'h', 0, 0), (2, 'pve2', 'h', 0, 0);
                 INSERT INTO series (id, host_id, name) VALUES
                     (1, 1, 'load1'), (2, 1, 'cpu_percent'), (3, 1, 'mem_used_bytes'),
                     (4, 2, 'load1'), (5, 2, 'cpu_percent'), (9, 1, 'guest.100.cpu_percent');
                 -- Series 10 existed once: its id must not come back.
                 UPDATE sqlite_sequence SET seq = 10 WHERE name = 'series';",
            )
            .unwrap();
            // Two hours at 30 s of every series in the history file; the last ten minutes
            // still in `recent`, five of them moved already (in both files: a move's deletion
            // not done yet).
            let mut insert_history = conn
                .prepare("INSERT INTO history.points (series_id, t, v) VALUES (?1, ?2, ?3)")
                .unwrap();
            let mut insert_recent = conn
                .prepare("INSERT INTO recent (host_id, t, series_id, v) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            for (host, series) in [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (1, 9)] {
                for i in 0..260 {
                    let t = 100_000 + i * 30;
                    let v = (series * 1000 + i % 17) as f64 / 100.0;
                    if i < 250 {
                        insert_history.execute(params![series, t, v]).unwrap();
                    }
                    if i >= 240 {
                        insert_recent.execute(params![host, t, series, v]).unwrap();
                    }
                }
            }
        }
        let history = history_path(&path);
        let size_before = std::fs::metadata(&history).unwrap().len();
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        for (host, name, series) in [
            (1, "load1", 1),
            (1, "mem_used_bytes", 3),
            (2, "cpu_percent", 5),
            (1, "guest.100.cpu_percent", 9),
        ] {
            let expected: Vec<(i64, f64)> = (0..260)
                .map(|i| (100_000 + i * 30, (series * 1000 + i % 17) as f64 / 100.0))
                .collect();
            assert!(
                series_query(&store, host, name) == expected,
                "{name} of host {host}"
            );
        }
        assert_eq!(store.raw_point_count().unwrap(), 6 * 260);
        assert_eq!(
            store.series_names(1).unwrap(),
            [
                "cpu_percent",
                "guest.100.cpu_percent",
                "load1",
                "mem_used_bytes"
            ]
        );
        {
            let db = store.lock();
            // Ids kept, runs of one host's ids in one row each.
            let sets: Vec<(i64, i64, String)> = db
                .prepare("SELECT first_id, host_id, names FROM series_sets ORDER BY first_id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                sets,
                [
                    (
                        1,
                        1,
                        r#"["load1","cpu_percent","mem_used_bytes"]"#.to_owned()
                    ),
                    (4, 2, r#"["load1","cpu_percent"]"#.to_owned()),
                    (9, 1, r#"["guest.100.cpu_percent"]"#.to_owned()),
                ]
            );
            let tables: Vec<String> = db
                .prepare(
                    "SELECT name FROM history.sqlite_master WHERE type = 'table' ORDER BY name",
                )
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(tables, ["chunks", "pairing"]);
            let in_chunks: i64 = db
                .query_row("SELECT sum(n) FROM history.chunks", [], |r| r.get(0))
                .unwrap();
            assert_eq!(in_chunks, 6 * 250);
        }
        // The points table's pages went back to the file system.
        let size_after = std::fs::metadata(&history).unwrap().len();
        assert!(
            size_after < size_before / 2,
            "{size_before} -> {size_after}"
        );
        assert_eq!(store.integrity_check().unwrap(), ["ok"]);
        // New series get ids above every id ever handed out.
        store
            .write_sample(crate::store::series::tests::write(
                2,
                200_000,
                &[("new", 1.0)],
            ))
            .unwrap();
        let id: i64 = store
            .lock()
            .query_row("SELECT id FROM series WHERE name = 'new'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, 11);
        // The rest moves and reads the same; opening again changes nothing.
        store.move_to_history(i64::MAX, &|| false).unwrap();
        drop(store);
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        assert_eq!(store.raw_point_count().unwrap(), 6 * 260 + 1);
        assert_eq!(series_query(&store, 2, "load1").len(), 260);
    }

    #[test]
    fn points_of_a_version_3_database_move_into_the_history_file() {
        let dir = TempDir::new("migrate-points");
        let path = dir.path().join("monitor.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..3] {
                let Step::Sql(sql) = step else { panic!() };
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
        drop(db);
        // New series get ids above the old ones.
        store
            .write_sample(crate::store::series::tests::write(1, 300, &[("x", 1.0)]))
            .unwrap();
        let id: i64 = store
            .lock()
            .query_row("SELECT id FROM series WHERE name = 'x'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, 8);
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
