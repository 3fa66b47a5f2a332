//! Looking inside the server's database from server tests (the agent's tests share `support`
//! but not this: they have no SQLite).
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// A plain connection to the server's database with its history file attached as `history`,
/// for looking at what was stored.
pub fn open_database(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let history = server::store::history_path(path);
    conn.execute("ATTACH DATABASE ?1 AS history", [history.to_str().unwrap()])
        .unwrap();
    conn
}

/// Per stored time of host `name`: how many points it has, each point counted once wherever it
/// is (compressed in the history file, or still in `recent`), read through the store's own
/// code as the server reads it.
pub fn stored_per_time(path: &Path, name: &str) -> std::collections::BTreeMap<i64, usize> {
    let store = server::store::Store::open(path, server::store::Synchronous::Normal).unwrap();
    let host = store.host_by_name(name).unwrap().unwrap();
    let mut per_time = std::collections::BTreeMap::new();
    for series in store.series_names(host.id).unwrap() {
        for (t, _) in store
            .raw_series(host.id, &series, i64::MIN, i64::MAX)
            .unwrap()
        {
            *per_time.entry(t).or_insert(0) += 1;
        }
    }
    per_time
}

/// Raw points compressed into the history file's chunks.
pub fn points_in_history(path: &Path) -> i64 {
    open_database(path)
        .query_row("SELECT coalesce(sum(n), 0) FROM history.chunks", [], |r| {
            r.get(0)
        })
        .unwrap()
}
