//! Whether the store can write right now. Ingestion reports each commit's outcome; while the
//! last one failed (disk full, a file gone read-only, a lock held too long by another process)
//! `/healthz` answers 503 and joins are refused with `try_later`, so that agents back off
//! instead of reconnecting every second. Since a store nobody writes to would never recover,
//! `Store::health` probes it with a tiny real commit, at most every `PROBE_EVERY`.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Store;

/// How often a failing store is probed with a write of its own.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The store's state of health.
#[derive(Debug, Default)]
pub(super) struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The error of the last failed write, and when it began failing; `None` while healthy.
    failing: Option<(Instant, String)>,
    last_probe: Option<Instant>,
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A write committed.
    pub(super) fn ok(&self) {
        let mut state = self.lock();
        if let Some((since, _)) = state.failing.take() {
            log::warn!(
                "the database accepts writes again (failed for {} s)",
                since.elapsed().as_secs()
            );
        }
    }

    /// A write failed for a reason of the store itself (not of the sample).
    pub(super) fn failed(&self, error: &str) {
        let mut state = self.lock();
        if state.failing.is_none() {
            log::error!("the database fails writes: {error}; agents are told to try later");
            state.failing = Some((Instant::now(), error.to_owned()));
        }
    }

    /// `Err(why)` while failing; `due_probe` says whether it is time to try a write.
    fn check(&self, now: Instant) -> (Result<(), String>, bool) {
        let mut state = self.lock();
        let Some((since, error)) = &state.failing else {
            return (Ok(()), false);
        };
        let why = format!(
            "the server's database fails writes since {} s ago: {error}",
            now.saturating_duration_since(*since).as_secs()
        );
        let due = state
            .last_probe
            .map_or(true, |at| now.saturating_duration_since(at) >= PROBE_EVERY);
        if due {
            state.last_probe = Some(now);
        }
        (Err(why), due)
    }
}

/// Whether an error of SQLite is the store's fault (rather than the one sample's).
pub(super) fn is_store_failure(error: &rusqlite::Error) -> bool {
    !matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TooBig)
    ) && !matches!(
        error,
        rusqlite::Error::ToSqlConversionFailure(_)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
    )
}

impl Store {
    /// `Ok` while writes succeed; else why not. While failing, tries one small real commit
    /// every `PROBE_EVERY` (`/healthz` and joins call this) and reports healthy again once it
    /// succeeds.
    pub fn health(&self) -> Result<(), String> {
        let (state, due) = self.health.check(Instant::now());
        if state.is_ok() || !due {
            return state;
        }
        let probed = {
            let mut db = self.lock();
            db.transaction()
                .and_then(|tx| {
                    tx.execute("UPDATE series_counter SET next_id = next_id", [])?;
                    tx.commit()
                })
                .map_err(|e| e.to_string())
        };
        match probed {
            Ok(()) => {
                self.health.ok();
                Ok(())
            }
            Err(_) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_until_a_write_succeeds_and_probes_at_most_every_few_seconds() {
        let health = Health::default();
        let t0 = Instant::now();
        assert_eq!(health.check(t0), (Ok(()), false));
        health.failed("disk I/O error");
        let (state, due) = health.check(t0);
        assert!(state.unwrap_err().contains("disk I/O error"));
        assert!(due, "the first check probes");
        assert!(!health.check(t0 + Duration::from_secs(1)).1);
        assert!(health.check(t0 + PROBE_EVERY).1);
        health.ok();
        assert_eq!(health.check(t0 + PROBE_EVERY), (Ok(()), false));
    }

    #[test]
    fn a_samples_own_fault_is_not_the_stores() {
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            None,
        );
        assert!(!is_store_failure(&constraint));
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(is_store_failure(&full));
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(is_store_failure(&busy));
    }
}
