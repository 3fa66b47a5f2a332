//! Dashboard users and their sessions (`users`, `sessions`; migration 3).
//!
//! Only the bcrypt hash of a password and the SHA-256 of a session id are stored. Hashing and
//! verifying happen in the caller, outside the database lock.

use rusqlite::{params, OptionalExtension};

use super::Store;
use crate::error::Result;

/// The one dashboard user.
pub const ADMIN_USER: &str = "admin";

impl Store {
    /// The key of agents' resumption tickets (`auth::Tickets`): 32 random bytes made at first
    /// use and kept in the database, so tickets survive a restart of the server.
    pub fn resume_key(&self) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh)
            .map_err(|e| crate::error::Error::Hash(format!("no randomness: {e}")))?;
        let db = self.lock();
        db.execute(
            "INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('resume_key', ?1)",
            [&fresh[..]],
        )
        .map_err(|e| self.err(e))?;
        let stored: Vec<u8> = db
            .query_row(
                "SELECT value FROM server_secrets WHERE name = 'resume_key'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.err(e))?;
        stored
            .try_into()
            .map_err(|_| crate::error::Error::Hash("the stored resume key is not 32 bytes".into()))
    }

    /// Sets (or replaces) `user`'s password hash and ends all of its sessions, so that a
    /// password change locks out whoever had the old one.
    pub fn set_password_hash(&self, user: &str, password_hash: &str, now: i64) -> Result<()> {
        let mut db = self.lock();
        let tx = super::main_write(&mut db).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM sessions WHERE user_name = ?1", [user])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO users (name, password_hash, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET password_hash = ?2, updated_at = ?3",
                    params![user, password_hash, now],
                )
            })
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// `user`'s password hash; `None` until a password is set.
    pub fn password_hash(&self, user: &str) -> Result<Option<String>> {
        self.lock()
            .query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [user],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Whether any dashboard password is set (the dashboard shows only setup help until then).
    pub fn has_users(&self) -> Result<bool> {
        self.lock()
            .query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |row| row.get(0))
            .map_err(|e| self.err(e))
    }

    /// Records a session; expired ones are swept on the way, so the table stays small.
    pub fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let db = self.lock();
        db.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
            .and_then(|_| {
                db.execute(
                    "INSERT INTO sessions (id_hash, user_name, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id_hash, user, now, expires_at],
                )
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The user of a live session.
    pub fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<String>> {
        self.lock()
            .query_row(
                "SELECT user_name FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Ends a session (logout). Ending one that does not exist is not an error.
    pub fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.lock()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Synchronous;
    use crate::testutil::TempDir;

    #[test]
    fn password_and_sessions() {
        let dir = TempDir::new("users");
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        assert!(!store.has_users().unwrap());
        assert_eq!(store.password_hash(ADMIN_USER).unwrap(), None);
        store.set_password_hash(ADMIN_USER, "hash-1", 100).unwrap();
        assert!(store.has_users().unwrap());
        assert_eq!(
            store.password_hash(ADMIN_USER).unwrap().as_deref(),
            Some("hash-1")
        );

        store.create_session("s1", ADMIN_USER, 100, 200).unwrap();
        store.create_session("s2", ADMIN_USER, 100, 200).unwrap();
        assert_eq!(
            store.session_user("s1", 150).unwrap().as_deref(),
            Some(ADMIN_USER)
        );
        assert_eq!(store.session_user("s1", 200).unwrap(), None, "expired");
        assert_eq!(store.session_user("nope", 150).unwrap(), None);
        store.delete_session("s1").unwrap();
        assert_eq!(store.session_user("s1", 150).unwrap(), None);

        // A new password ends the other sessions.
        store.set_password_hash(ADMIN_USER, "hash-2", 160).unwrap();
        assert_eq!(store.session_user("s2", 170).unwrap(), None);
        assert_eq!(
            store.password_hash(ADMIN_USER).unwrap().as_deref(),
            Some("hash-2")
        );
    }
}
