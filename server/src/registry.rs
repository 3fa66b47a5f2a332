//! Which connection currently speaks for each host.
//!
//! A host may reconnect before its old socket has timed out. The newest join wins: the old
//! connection is told to close (its `kick` flag), and because it no longer owns the host it must
//! not mark the host offline when it goes. Claim and release take the same lock, and the status
//! update happens under it, so an old connection's "offline" can never land after a new "online".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

struct Claim {
    conn_id: u64,
    kick: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Registry {
    claims: Mutex<HashMap<i64, Claim>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Claim>> {
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `conn_id` the owner of `host_id`, kicking the previous owner, then runs `then`
    /// (marking the host online) while no release can interleave. Returns whether a previous
    /// connection was kicked.
    pub fn claim<T>(
        &self,
        host_id: i64,
        conn_id: u64,
        kick: Arc<AtomicBool>,
        then: impl FnOnce() -> T,
    ) -> (bool, T) {
        let mut claims = self.lock();
        let previous = claims.insert(host_id, Claim { conn_id, kick });
        let kicked = match previous {
            Some(old) if old.conn_id != conn_id => {
                old.kick.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        };
        (kicked, then())
    }

    /// If `conn_id` still owns `host_id`, releases it and runs `then` (marking the host offline)
    /// under the lock. Returns whether it was the owner.
    pub fn release(&self, host_id: i64, conn_id: u64, then: impl FnOnce()) -> bool {
        let mut claims = self.lock();
        match claims.get(&host_id) {
            Some(claim) if claim.conn_id == conn_id => {
                claims.remove(&host_id);
                then();
                true
            }
            _ => false,
        }
    }

    /// The host's token was rotated or the host removed: whichever connection owns it is
    /// kicked (its `kick` flag; wake it with `Sockets::wake_kicked`) and no longer owns it, and
    /// `then` (marking the host offline) runs under the lock, so a join with the new token
    /// that comes in meanwhile lands after it. Returns whether a connection owned the host.
    pub fn revoke(&self, host_id: i64, then: impl FnOnce()) -> bool {
        let mut claims = self.lock();
        match claims.remove(&host_id) {
            Some(claim) => {
                claim.kick.store(true, Ordering::SeqCst);
                then();
                true
            }
            None => false,
        }
    }

    /// Hosts with a live connection.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    pub fn is_connected(&self, host_id: i64) -> bool {
        self.lock().contains_key(&host_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_claim_wins_and_old_release_is_a_no_op() {
        let registry = Registry::default();
        let old_kick = Arc::new(AtomicBool::new(false));
        let (kicked, ()) = registry.claim(1, 10, old_kick.clone(), || ());
        assert!(!kicked);
        let (kicked, ()) = registry.claim(1, 11, Arc::new(AtomicBool::new(false)), || ());
        assert!(kicked);
        assert!(old_kick.load(Ordering::SeqCst));
        let mut offline = false;
        assert!(!registry.release(1, 10, || offline = true));
        assert!(!offline);
        assert!(registry.release(1, 11, || offline = true));
        assert!(offline);
        assert_eq!(registry.connected(), 0);
    }

    #[test]
    fn a_revoked_host_is_kicked_and_owned_by_nobody() {
        let registry = Registry::default();
        let kick = Arc::new(AtomicBool::new(false));
        registry.claim(1, 10, kick.clone(), || ());
        let mut offline = false;
        assert!(registry.revoke(1, || offline = true));
        assert!(kick.load(Ordering::SeqCst) && offline);
        assert!(!registry.is_connected(1));
        // The kicked connection's own release later is a no-op.
        let mut again = false;
        assert!(!registry.release(1, 10, || again = true));
        assert!(!again);
        assert!(!registry.revoke(1, || unreachable!()));
    }
}
