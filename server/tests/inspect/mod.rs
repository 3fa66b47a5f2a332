//! Looking inside the server's database from server tests (the agent's tests share `support`
//! but not this: they have no SQLite).

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
