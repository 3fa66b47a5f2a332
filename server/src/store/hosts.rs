//! The `hosts` table: registration, token hashes and online/offline status.

use rusqlite::{params, OptionalExtension, Row};

use super::Store;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    NeverConnected,
    Online,
    Offline,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::NeverConnected => "never_connected",
            HostStatus::Online => "online",
            HostStatus::Offline => "offline",
        }
    }

    fn parse(text: &str) -> HostStatus {
        match text {
            "online" => HostStatus::Online,
            "offline" => HostStatus::Offline,
            _ => HostStatus::NeverConnected,
        }
    }
}

/// A registered host, without its token hash. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub id: i64,
    pub name: String,
    pub agent_version: Option<String>,
    pub proxmox_version: Option<String>,
    pub zfs_version: Option<String>,
    pub status: HostStatus,
    pub status_changed_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub inserted_at: i64,
    pub updated_at: i64,
}

const HOST_COLUMNS: &str = "id, name, agent_version, proxmox_version, zfs_version, status, \
                            status_changed_at, last_seen_at, inserted_at, updated_at";

fn host_from_row(row: &Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: row.get(0)?,
        name: row.get(1)?,
        agent_version: row.get(2)?,
        proxmox_version: row.get(3)?,
        zfs_version: row.get(4)?,
        status: HostStatus::parse(&row.get::<_, String>(5)?),
        status_changed_at: row.get(6)?,
        last_seen_at: row.get(7)?,
        inserted_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

impl Store {
    /// Registers a host with the hash of its token.
    pub fn create_host(&self, name: &str, token_hash: &str, now: i64) -> Result<Host> {
        common::events::validate_host_name(name).map_err(Error::InvalidHostName)?;
        let conn = self.lock();
        let inserted = conn.execute(
            "INSERT INTO hosts (name, token_hash, inserted_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, token_hash, now],
        );
        match inserted {
            Ok(0) => Err(Error::HostExists(name.to_owned())),
            Ok(_) => {
                let id = conn.last_insert_rowid();
                drop(conn);
                self.host_by_id(id)?
                    .ok_or_else(|| Error::UnknownHost(name.to_owned()))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    pub fn host_by_name(&self, name: &str) -> Result<Option<Host>> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1");
        self.lock()
            .query_row(&sql, [name], host_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn host_by_id(&self, id: i64) -> Result<Option<Host>> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?1");
        self.lock()
            .query_row(&sql, [id], host_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The id and token hash of a host, for authentication.
    pub fn token_hash(&self, name: &str) -> Result<Option<(i64, String)>> {
        self.lock()
            .query_row(
                "SELECT id, token_hash FROM hosts WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every host, by name.
    pub fn list_hosts(&self) -> Result<Vec<Host>> {
        let conn = self.lock();
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let hosts = stmt
            .query_map([], host_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Host>>>())
            .map_err(|e| self.err(e))?;
        Ok(hosts)
    }

    /// Removes a host and everything stored for it.
    pub fn remove_host(&self, name: &str) -> Result<()> {
        let mut db = self.lock();
        db.series_ids.clear();
        // Both files' write locks up front, waiting for them (busy_timeout) while the server
        // writes: a deferred transaction that read the main file before writing it fails at
        // once with "database is locked" when the server committed in between.
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM hosts WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        for table in ["history.chunks", "rollups", "rollup_dirty"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE series_id IN
                     (SELECT s.first_id + j.key FROM series_sets s, json_each(s.names) j
                      WHERE s.host_id = (SELECT id FROM hosts WHERE name = ?1))"
                ),
                [name],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "DELETE FROM recent WHERE host_id = (SELECT id FROM hosts WHERE name = ?1)",
            [name],
        )
        .map_err(|e| self.err(e))?;
        // Its series_sets rows and latest go with the host through their foreign keys.
        let removed = tx
            .execute("DELETE FROM hosts WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        if removed == 0 {
            return Err(Error::UnknownHost(name.to_owned()));
        }
        tx.commit().map_err(|e| self.err(e))?;
        // Its series are gone: none of them is dormant any more (a new host may get its id).
        if let Some(id) = id {
            db.dormant.remove(&id);
        }
        Ok(())
    }

    pub fn set_token_hash(&self, name: &str, token_hash: &str, now: i64) -> Result<()> {
        let changed = self
            .lock()
            .execute(
                "UPDATE hosts SET token_hash = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, token_hash, now],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::UnknownHost(name.to_owned()));
        }
        Ok(())
    }

    /// A successful join: online, seen now, running `agent_version`. Returns the host's row as
    /// it is now (`None` if the host was removed meanwhile).
    pub fn mark_online(
        &self,
        id: i64,
        agent_version: Option<&str>,
        now: i64,
    ) -> Result<Option<Host>> {
        let sql = format!(
            "UPDATE hosts SET status = 'online', last_seen_at = ?2,
                agent_version = COALESCE(?3, agent_version), updated_at = ?2,
                status_changed_at = CASE WHEN status = 'online' THEN status_changed_at ELSE ?2 END
             WHERE id = ?1 RETURNING {HOST_COLUMNS}"
        );
        self.lock()
            .query_row(&sql, params![id, now, agent_version], host_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The host's connection ended; `last_seen_at` keeps the last time we heard from it.
    /// Returns the row when it changed (the host was online).
    pub fn mark_offline(&self, id: i64, now: i64) -> Result<Option<Host>> {
        let sql = format!(
            "UPDATE hosts SET status = 'offline', status_changed_at = ?2, updated_at = ?2
             WHERE id = ?1 AND status = 'online' RETURNING {HOST_COLUMNS}"
        );
        self.lock()
            .query_row(&sql, params![id, now], host_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The ids of every registered host, read through a connection of their own (a reader:
    /// it never waits for ingestion or background work): the cheap check for hosts
    /// registered or removed by another process (`register-host`, `remove-host`).
    pub fn host_ids(&self) -> Result<Vec<i64>> {
        let conn = self
            .roster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut stmt = conn
            .prepare_cached("SELECT id FROM hosts ORDER BY id")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// On boot and shutdown nobody is connected: every online host becomes offline.
    pub fn mark_all_offline(&self, now: i64) -> Result<usize> {
        self.lock()
            .execute(
                "UPDATE hosts SET status = 'offline', status_changed_at = ?1, updated_at = ?1
                 WHERE status = 'online'",
                [now],
            )
            .map_err(|e| self.err(e))
    }

    /// We heard from the host.
    pub fn touch_host(&self, id: i64, now: i64) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE hosts SET last_seen_at = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Versions reported by the agent's slow sample.
    pub fn set_versions(&self, id: i64, proxmox: Option<&str>, zfs: Option<&str>) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE hosts SET proxmox_version = COALESCE(?2, proxmox_version),
                    zfs_version = COALESCE(?3, zfs_version) WHERE id = ?1",
                params![id, proxmox, zfs],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Synchronous;
    use super::*;
    use crate::auth;
    use crate::testutil::TempDir;

    fn store(dir: &TempDir) -> Store {
        Store::open(&dir.path().join("test.db"), Synchronous::Normal).unwrap()
    }

    #[test]
    fn remove_host_waits_for_a_writer_of_another_process_instead_of_failing() {
        let dir = TempDir::new("hosts-remove-busy");
        let cli = store(&dir);
        cli.create_host("pve1", "hash", 1).unwrap();
        cli.create_host("pve2", "hash", 1).unwrap();
        // Another process (the server) writes the main file while the command runs.
        let server = rusqlite::Connection::open(dir.path().join("test.db")).unwrap();
        server.execute_batch("BEGIN IMMEDIATE").unwrap();
        server
            .execute("UPDATE hosts SET last_seen_at = 5 WHERE name = 'pve2'", [])
            .unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            server.execute_batch("COMMIT").unwrap();
        });
        let removed = cli.remove_host("pve1");
        writer.join().unwrap();
        removed.unwrap();
        assert!(cli.host_by_name("pve1").unwrap().is_none());
    }

    #[test]
    fn create_returns_never_connected_host_with_hashed_token() {
        let dir = TempDir::new("hosts-create");
        let store = store(&dir);
        let token = auth::generate_token().unwrap();
        let hash = auth::hash_secret(&token, 4).unwrap();
        let host = store.create_host("pve-01", &hash, 100).unwrap();
        assert_eq!(host.name, "pve-01");
        assert_eq!(host.status, HostStatus::NeverConnected);
        let (id, stored) = store.token_hash("pve-01").unwrap().unwrap();
        assert_eq!(id, host.id);
        assert_ne!(stored, token);
        assert!(auth::verify_secret(&token, &stored));
    }

    #[test]
    fn duplicate_and_invalid_names_are_refused() {
        let dir = TempDir::new("hosts-dup");
        let store = store(&dir);
        store.create_host("pve-01", "h", 1).unwrap();
        assert!(matches!(
            store.create_host("pve-01", "h", 2),
            Err(Error::HostExists(_))
        ));
        assert!(matches!(
            store.create_host("bad name", "h", 2),
            Err(Error::InvalidHostName(_))
        ));
        assert!(matches!(
            store.create_host("", "h", 2),
            Err(Error::InvalidHostName(_))
        ));
    }

    #[test]
    fn online_offline_transitions() {
        let dir = TempDir::new("hosts-status");
        let store = store(&dir);
        let host = store.create_host("pve-01", "h", 1).unwrap();
        let returned = store.mark_online(host.id, Some("0.1.0"), 10).unwrap();
        let online = store.host_by_id(host.id).unwrap().unwrap();
        assert_eq!(returned.as_ref(), Some(&online));
        assert_eq!(online.status, HostStatus::Online);
        assert_eq!(online.agent_version.as_deref(), Some("0.1.0"));
        assert_eq!(online.last_seen_at, Some(10));
        assert_eq!(online.status_changed_at, Some(10));
        store.touch_host(host.id, 20).unwrap();
        let returned = store.mark_offline(host.id, 30).unwrap();
        let offline = store.host_by_id(host.id).unwrap().unwrap();
        assert_eq!(returned.as_ref(), Some(&offline));
        assert_eq!(
            store.mark_offline(host.id, 31).unwrap(),
            None,
            "already offline"
        );
        assert_eq!(store.host_ids().unwrap(), vec![host.id]);
        assert_eq!(offline.status, HostStatus::Offline);
        assert_eq!(offline.last_seen_at, Some(20));
        assert_eq!(offline.status_changed_at, Some(30));
        store.mark_online(host.id, None, 40).unwrap();
        assert_eq!(store.mark_all_offline(50).unwrap(), 1);
        let after = store.host_by_id(host.id).unwrap().unwrap();
        assert_eq!(after.status, HostStatus::Offline);
        assert_eq!(after.agent_version.as_deref(), Some("0.1.0"));
    }

    #[test]
    fn remove_and_rotate_need_an_existing_host() {
        let dir = TempDir::new("hosts-remove");
        let store = store(&dir);
        store.create_host("a", "h", 1).unwrap();
        store.set_token_hash("a", "h2", 2).unwrap();
        assert_eq!(store.token_hash("a").unwrap().unwrap().1, "h2");
        assert!(matches!(
            store.set_token_hash("b", "h", 2),
            Err(Error::UnknownHost(_))
        ));
        store.remove_host("a").unwrap();
        assert!(matches!(store.remove_host("a"), Err(Error::UnknownHost(_))));
    }

    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("hosts-mode");
        let path = dir.path().join("test.db");
        let _store = Store::open(&path, Synchronous::Normal).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
