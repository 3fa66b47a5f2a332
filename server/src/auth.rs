//! Agent tokens: generation, bcrypt hashing and verification without a timing oracle.

use std::sync::OnceLock;

use base64::Engine;

use crate::error::{Error, Result};

/// A fresh token: 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn generate_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Hash(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The bcrypt hash stored for a token or password.
pub fn hash_secret(secret: &str, cost: u32) -> Result<String> {
    bcrypt::hash(secret, cost).map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `secret` matches `hash`. A malformed stored hash never matches.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    bcrypt::verify(secret, hash).unwrap_or(false)
}

/// Spends the same bcrypt work as a real verification, for names that have no hash, so that a
/// caller cannot tell an unknown host from a wrong token by the time the answer takes.
pub fn burn_verification(cost: u32) {
    static DUMMY: OnceLock<Option<(u32, String)>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_secret("dummy token", cost).ok().map(|h| (cost, h)));
    match dummy {
        Some((dummy_cost, hash)) if *dummy_cost == cost => {
            verify_secret("not the dummy token", hash);
        }
        // The cost changed since the dummy was made (tests); hash at the asked cost instead.
        _ => {
            let _ = hash_secret("dummy token", cost);
        }
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    UnknownHost,
    InvalidToken,
}

impl AuthFailure {
    /// The `reason` sent in the error reply.
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::UnknownHost => common::events::reason::UNKNOWN_HOST,
            AuthFailure::InvalidToken => common::events::reason::INVALID_TOKEN,
        }
    }
}

/// Verifies agent tokens, with two defences against a reconnect storm (every agent rejoining
/// a restarted server at once): bcrypt runs in a pool no wider than the CPU count, so a storm
/// queues instead of thrashing, and a token once verified is remembered (as a keyed SipHash
/// with a per-process random key, never in clear) so that reconnects skip bcrypt. The memory
/// is tied to the stored bcrypt hash: `rotate-token` invalidates it.
pub struct Authenticator {
    cost: u32,
    key: std::hash::RandomState,
    verified: std::sync::Mutex<std::collections::HashMap<i64, (String, u64)>>,
    pool: Pool,
}

impl Authenticator {
    pub fn new(cost: u32) -> Authenticator {
        let width = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Authenticator {
            cost,
            key: std::hash::RandomState::new(),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            pool: Pool::new(width),
        }
    }

    fn keyed_hash(&self, token: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(token)
    }

    /// Checks `token` for host `name`; the id of the host when it matches. The database lock
    /// is released before bcrypt runs, and unknown names cost the same bcrypt work as wrong
    /// tokens (no timing oracle for which hosts exist).
    pub fn authenticate(
        &self,
        store: &crate::store::Store,
        name: &str,
        token: &str,
    ) -> Result<std::result::Result<i64, AuthFailure>> {
        let Some((id, hash)) = store.token_hash(name)? else {
            self.pool.run(|| burn_verification(self.cost));
            return Ok(Err(AuthFailure::UnknownHost));
        };
        let fingerprint = self.keyed_hash(token);
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .is_some_and(|(h, f)| *h == hash && *f == fingerprint);
        if remembered {
            return Ok(Ok(id));
        }
        if !self.pool.run(|| verify_secret(token, &hash)) {
            return Ok(Err(AuthFailure::InvalidToken));
        }
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, (hash, fingerprint));
        Ok(Ok(id))
    }
}

/// A first-come, first-served counting semaphore: at most `width` closures run at once, and
/// they start in the order they asked. In a reconnect storm every agent then waits its turn
/// instead of some being passed over until their join times out.
struct Pool {
    state: std::sync::Mutex<PoolState>,
    changed: std::sync::Condvar,
    width: usize,
}

#[derive(Default)]
struct PoolState {
    next_ticket: u64,
    admitted: u64,
    busy: usize,
}

impl Pool {
    fn new(width: usize) -> Pool {
        Pool {
            state: std::sync::Mutex::new(PoolState::default()),
            changed: std::sync::Condvar::new(),
            width: width.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while ticket != state.admitted || state.busy >= self.width {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.admitted += 1;
        state.busy += 1;
        drop(state);
        // The next ticket may be able to start too.
        self.changed.notify_all();
        let result = work();
        self.lock().busy -= 1;
        self.changed.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn authenticator_remembers_verified_tokens_until_rotation() {
        let dir = crate::testutil::TempDir::new("auth-cache");
        let store =
            crate::store::Store::open(&dir.path().join("t.db"), crate::store::Synchronous::Normal)
                .unwrap();
        let host = store
            .create_host("pve1", &hash_secret("tok", 4).unwrap(), 1)
            .unwrap();
        let auth = Authenticator::new(4);
        assert_eq!(
            auth.authenticate(&store, "pve1", "tok").unwrap(),
            Ok(host.id)
        );
        assert_eq!(
            auth.authenticate(&store, "pve1", "tok").unwrap(),
            Ok(host.id)
        );
        assert_eq!(
            auth.authenticate(&store, "pve1", "bad").unwrap(),
            Err(AuthFailure::InvalidToken)
        );
        assert_eq!(
            auth.authenticate(&store, "nope", "tok").unwrap(),
            Err(AuthFailure::UnknownHost)
        );
        store
            .set_token_hash("pve1", &hash_secret("new", 4).unwrap(), 2)
            .unwrap();
        assert_eq!(
            auth.authenticate(&store, "pve1", "tok").unwrap(),
            Err(AuthFailure::InvalidToken)
        );
        assert_eq!(
            auth.authenticate(&store, "pve1", "new").unwrap(),
            Ok(host.id)
        );
    }

    #[test]
    fn pool_runs_at_most_width_at_once_in_arrival_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = std::sync::Arc::new(Pool::new(2));
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                std::thread::spawn(move || {
                    pool.run(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(pool.lock().admitted, 8);
    }

    #[test]
    fn hash_and_verify() {
        let hash = hash_secret("s3cret", 4).unwrap();
        assert_ne!(hash, "s3cret");
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("wrong", &hash));
        assert!(!verify_secret("s3cret", "not a bcrypt hash"));
    }
}
