//! Who may talk to the server: agent tokens (generation, bcrypt hashing, verification without
//! a timing oracle) and the dashboard password of `admin` (its rules, and a backoff on
//! repeated failed logins).
//!
//! Login backoff: after `FREE_FAILURES` wrong passwords from one IP address, that address must
//! wait 1, 2, 4, … (at most `MAX_DELAY`) seconds after each further failure before the password
//! is checked again; attempts during the wait are answered at once without touching bcrypt. A
//! global counter does the same across all addresses (with more free failures), so that
//! guessing from many addresses is slowed as well — at the price that such an attack also
//! delays the admin. The counts live in memory and are forgotten `FORGET_AFTER` after the last
//! failure. Nothing sleeps: a waiting client is answered at once, so the backoff never pins a
//! thread.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::error::{Error, Result};
use crate::store::{Store, ADMIN_USER};

/// Passwords shorter than this are refused by `set-password`.
pub const MIN_PASSWORD_LEN: usize = 10;
/// bcrypt ignores everything past 72 bytes; refuse rather than silently truncate.
pub const MAX_PASSWORD_BYTES: usize = 72;

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

/// Sets a password for `admin`, for `set-password`: checks its length and hashes it.
pub fn set_admin_password(store: &Store, password: &str, cost: u32) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Usage(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Usage(format!(
            "the password must fit in {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)"
        )));
    }
    let hash = hash_secret(password, cost)?;
    store.set_password_hash(ADMIN_USER, &hash, common::time::now_unix())
}

const FREE_FAILURES: u32 = 3;
const GLOBAL_FREE_FAILURES: u32 = 20;
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses remembered at most; past this, stale entries go, then (under a flood) all —
/// the global counter still applies.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long from `now` until another attempt may be checked.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if self.count < free || now.duration_since(self.last) >= FORGET_AFTER {
            return Duration::ZERO;
        }
        let exponent = (self.count - free).min(16);
        let delay = Duration::from_secs(1u64 << exponent).min(MAX_DELAY);
        delay.saturating_sub(now.duration_since(self.last))
    }

    fn record(entry: &mut Option<Failures>, now: Instant) {
        let count = match entry {
            Some(f) if now.duration_since(f.last) < FORGET_AFTER => f.count.saturating_add(1),
            _ => 1,
        };
        *entry = Some(Failures { count, last: now });
    }
}

/// Failed-login counts per client address and overall.
#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    per_address: HashMap<IpAddr, Failures>,
    global: Option<Failures>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `address` must still wait before its next attempt is checked (zero: go ahead).
    pub fn wait(&self, address: Option<IpAddr>, now: Instant) -> Duration {
        let state = self.lock();
        let own = address
            .and_then(|a| state.per_address.get(&a))
            .map_or(Duration::ZERO, |f| f.wait(FREE_FAILURES, now));
        let global = state
            .global
            .map_or(Duration::ZERO, |f| f.wait(GLOBAL_FREE_FAILURES, now));
        own.max(global)
    }

    pub fn record_failure(&self, address: Option<IpAddr>, now: Instant) {
        let mut state = self.lock();
        Failures::record(&mut state.global, now);
        if let Some(address) = address {
            if state.per_address.len() >= MAX_TRACKED_ADDRESSES {
                state
                    .per_address
                    .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
                if state.per_address.len() >= MAX_TRACKED_ADDRESSES {
                    state.per_address.clear();
                }
            }
            let mut entry = state.per_address.get(&address).copied();
            Failures::record(&mut entry, now);
            if let Some(f) = entry {
                state.per_address.insert(address, f);
            }
        }
    }

    /// A correct password clears that address's count. The global count stays: it decays
    /// on its own, and one success says nothing about the other addresses.
    pub fn record_success(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            self.lock().per_address.remove(&address);
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
    fn backoff_grows_per_address_and_forgets() {
        let throttle = LoginThrottle::default();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            throttle.record_failure(a, t0);
        }
        assert_eq!(throttle.wait(a, t0), Duration::ZERO);
        throttle.record_failure(a, t0);
        assert_eq!(throttle.wait(a, t0), Duration::from_secs(1));
        throttle.record_failure(a, t0);
        assert_eq!(throttle.wait(a, t0), Duration::from_secs(2));
        assert_eq!(
            throttle.wait(a, t0 + Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(
            throttle.wait(b, t0),
            Duration::ZERO,
            "other addresses unaffected"
        );
        for _ in 0..20 {
            throttle.record_failure(a, t0);
        }
        assert_eq!(throttle.wait(a, t0), MAX_DELAY, "capped");
        assert_eq!(throttle.wait(a, t0 + FORGET_AFTER), Duration::ZERO);
        throttle.record_success(a);
        assert_eq!(throttle.wait(a, t0), throttle.wait(b, t0));
    }

    #[test]
    fn backoff_applies_globally_across_addresses() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_FREE_FAILURES + 2 {
            throttle.record_failure(Some(IpAddr::from([10, 0, 0, (i % 250) as u8])), t0);
        }
        assert!(throttle.wait(Some("192.0.2.9".parse().unwrap()), t0) > Duration::ZERO);
        assert!(throttle.wait(None, t0) > Duration::ZERO);
    }

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
