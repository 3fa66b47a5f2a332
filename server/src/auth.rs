//! Who may talk to the server: agent tokens (generation, bcrypt hashing, verification without
//! a timing oracle) and the dashboard password of `admin` (its rules, and a backoff on
//! repeated failed logins).
//!
//! Login backoff: after `FREE_FAILURES` wrong passwords from one client address, that address
//! must wait 1, 2, 4, … (at most `MAX_DELAY`) seconds after each further failure before the
//! password is checked again; attempts during the wait are answered at once without touching
//! bcrypt. An attempt is *reserved* (counted as a failure) before bcrypt runs, under the same
//! lock that checks the wait, so a burst of parallel guesses gets `FREE_FAILURES` checks, not
//! one per request in flight; a correct password then clears its address. There is no global
//! counter: it would let anyone lock the admin out (behind a reverse proxy, every client shares
//! one address — the proxy's — unless `[http] trusted_proxies` names it, and then the client
//! address is taken from `X-Forwarded-For`). Password checks run in the same bounded pool as
//! token checks. The counts live in memory and are forgotten `FORGET_AFTER` after the last
//! failure. Nothing sleeps: a waiting client is answered at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

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
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses remembered at most; past this, stale entries go, then (under a flood) all.
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
    per_address: HashMap<Option<IpAddr>, Failures>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `address` must still wait before its next attempt is checked (zero: go ahead).
    pub fn wait(&self, address: Option<IpAddr>, now: Instant) -> Duration {
        self.lock()
            .per_address
            .get(&address)
            .map_or(Duration::ZERO, |f| f.wait(FREE_FAILURES, now))
    }

    /// Takes an attempt for `address`: `Err(wait)` while it must wait; else the attempt is
    /// counted as a failure at once (before the password is checked, so that parallel
    /// attempts cannot all pass the check) and `record_success` takes it back.
    pub fn reserve(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut state = self.lock();
        let wait = state
            .per_address
            .get(&address)
            .map_or(Duration::ZERO, |f| f.wait(FREE_FAILURES, now));
        if !wait.is_zero() {
            return Err(wait);
        }
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
        Ok(())
    }

    /// A correct password clears that address's count.
    pub fn record_success(&self, address: Option<IpAddr>) {
        self.lock().per_address.remove(&address);
    }
}

/// How long a resumption ticket lets an agent rejoin without bcrypt.
pub const TICKET_LIFETIME_SECONDS: i64 = 7 * 86_400;

/// Resumption tickets: after a join verified by bcrypt, the server hands the agent a ticket,
/// `1.<expiry>.<mac>`, where `mac` is HMAC-SHA256 under a random key kept in the database over
/// the host's id, the expiry, a digest of the host's stored bcrypt hash (so `rotate-token`
/// voids every ticket of the host) and a digest of the token itself. An agent presents it with
/// its token when it joins again (typically when the server restarted and forgot which tokens
/// it verified); a matching ticket is checked in microseconds instead of bcrypt's ~250 ms at
/// cost 12. What a stolen database reveals does not change: the key alone forges nothing
/// without the token, which the database holds only as a bcrypt hash.
pub struct Tickets {
    key: [u8; 32],
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl Tickets {
    pub fn new(key: [u8; 32]) -> Tickets {
        Tickets { key }
    }

    fn mac(&self, host_id: i64, expiry: i64, stored_hash: &str, token: &str) -> HmacSha256 {
        use hmac::Mac;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"proxmox-monitor resume v1\0");
        mac.update(&host_id.to_le_bytes());
        mac.update(&expiry.to_le_bytes());
        mac.update(&Sha256::digest(stored_hash.as_bytes()));
        mac.update(&Sha256::digest(token.as_bytes()));
        mac
    }

    /// A ticket for `host_id` whose token (verified by bcrypt just now) is `token`.
    pub fn issue(&self, host_id: i64, stored_hash: &str, token: &str, now: i64) -> String {
        use hmac::Mac;
        let expiry = now.saturating_add(TICKET_LIFETIME_SECONDS);
        let tag = self.mac(host_id, expiry, stored_hash, token).finalize();
        format!(
            "1.{expiry}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.into_bytes())
        )
    }

    /// Whether `ticket` was issued for this host, hash and token and has not expired
    /// (compared in constant time).
    pub fn check(
        &self,
        ticket: &str,
        host_id: i64,
        stored_hash: &str,
        token: &str,
        now: i64,
    ) -> bool {
        use hmac::Mac;
        let mut parts = ticket.splitn(3, '.');
        let (Some("1"), Some(expiry), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<i64>() else {
            return false;
        };
        if expiry < now || expiry > now.saturating_add(TICKET_LIFETIME_SECONDS) {
            return false;
        }
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(host_id, expiry, stored_hash, token)
            .verify_slice(&tag)
            .is_ok()
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
    /// Set once the database's key is read (`Context::new`); until then, bcrypt every time.
    tickets: OnceLock<Tickets>,
    /// bcrypt verifications of tokens run so far (joins without a valid ticket or memory).
    verifications: std::sync::atomic::AtomicU64,
    cost: u32,
    key: std::hash::RandomState,
    verified: std::sync::Mutex<std::collections::HashMap<i64, (String, u64)>>,
    pool: Pool,
}

impl Authenticator {
    pub fn new(cost: u32) -> Authenticator {
        let width = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Authenticator {
            tickets: OnceLock::new(),
            verifications: std::sync::atomic::AtomicU64::new(0),
            cost,
            key: std::hash::RandomState::new(),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            pool: Pool::new(width),
        }
    }

    /// Token verifications by bcrypt so far (for `/metrics` and tests).
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets which tokens were verified, as a restart does.
    pub fn forget_verified(&self) {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Turns resumption tickets on, with the database's key.
    pub fn set_ticket_key(&self, key: [u8; 32]) {
        let _ = self.tickets.set(Tickets::new(key));
    }

    /// Like `authenticate`, also taking the ticket the agent presents (if any); on success the
    /// host's id and a fresh ticket for its next join.
    pub fn authenticate_with_ticket(
        &self,
        store: &crate::store::Store,
        name: &str,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<std::result::Result<(i64, Option<String>), AuthFailure>> {
        let now = common::time::now_unix();
        let tickets = self.tickets.get();
        if let (Some(tickets), Some(ticket)) = (tickets, ticket) {
            if let Some((id, hash)) = store.token_hash(name)? {
                if tickets.check(ticket, id, &hash, token, now) {
                    return Ok(Ok((id, Some(tickets.issue(id, &hash, token, now)))));
                }
            }
        }
        let Some((id, hash)) = (match self.authenticate(store, name, token)? {
            Ok(_) => store.token_hash(name)?,
            Err(failure) => return Ok(Err(failure)),
        }) else {
            return Ok(Err(AuthFailure::UnknownHost));
        };
        Ok(Ok((id, tickets.map(|t| t.issue(id, &hash, token, now)))))
    }

    /// Checks a dashboard password against its hash in the bounded bcrypt pool.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        self.pool.run(|| verify_secret(password, hash))
    }

    /// The bcrypt work of one verification, in the pool, for a user that does not exist.
    pub fn burn(&self) {
        self.pool.run(|| burn_verification(self.cost));
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
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            throttle.reserve(a, t0).unwrap();
        }
        assert_eq!(throttle.wait(a, t0), Duration::ZERO);
        throttle.reserve(a, t0).unwrap();
        assert_eq!(throttle.wait(a, t0), Duration::from_secs(1));
        assert_eq!(throttle.reserve(a, t0), Err(Duration::from_secs(1)));
        throttle.reserve(a, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            throttle.wait(a, t0 + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            throttle.wait(b, t0),
            Duration::ZERO,
            "other addresses unaffected"
        );
        let mut t = t0 + Duration::from_secs(1);
        for _ in 0..20 {
            t += MAX_DELAY;
            throttle.reserve(a, t).unwrap();
        }
        assert_eq!(throttle.wait(a, t), MAX_DELAY, "capped");
        assert_eq!(throttle.wait(a, t + FORGET_AFTER), Duration::ZERO);
        throttle.record_success(a);
        assert_eq!(throttle.wait(a, t), Duration::ZERO);
    }

    #[test]
    fn a_burst_of_parallel_attempts_gets_only_the_free_checks() {
        let throttle = std::sync::Arc::new(LoginThrottle::default());
        let a = Some("192.0.2.1".parse().unwrap());
        let t0 = Instant::now();
        let checked: usize = (0..300)
            .map(|_| {
                let throttle = throttle.clone();
                std::thread::spawn(move || usize::from(throttle.reserve(a, t0).is_ok()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(checked, FREE_FAILURES as usize);
    }

    #[test]
    fn failures_from_many_addresses_never_lock_out_another() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let _ = throttle.reserve(Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert_eq!(
            throttle.reserve(Some("192.0.2.9".parse().unwrap()), t0),
            Ok(())
        );
        // A correct password right after a reservation takes it back.
        let admin = Some("192.0.2.10".parse().unwrap());
        for _ in 0..10 {
            throttle.reserve(admin, t0).unwrap();
            throttle.record_success(admin);
        }
        assert_eq!(throttle.wait(admin, t0), Duration::ZERO);
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
