//! The server's stop signal: a flag that every thread can look at, and the means to wake the
//! threads that block until their next deadline — nothing looks at the flag on a tick.
//!
//! A thread that sleeps until something is due waits on [`Shutdown::wait`] (a condition
//! variable); a thread blocked in a system call (the accept loop, the roster watch's poll)
//! registers a waker with [`Shutdown::on_trigger`] that ends that call. Connection threads are
//! woken by the accept loop on its way out (`listener::Connections`, `ws::Sockets`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

type Waker = Box<dyn Fn() + Send>;

#[derive(Default)]
pub struct Shutdown {
    flag: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    woken: Condvar,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Whether the server is stopping.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sets the flag and wakes every waiter; whether it was set already.
    pub fn trigger(&self) -> bool {
        let was = self.flag.swap(true, Ordering::SeqCst);
        // Under the lock: a waiter that saw the flag clear is already waiting (it holds the
        // lock from its look until the wait), so the notification cannot slip past it.
        let wakers = self.lock();
        self.woken.notify_all();
        for wake in wakers.iter() {
            wake();
        }
        was
    }

    /// Runs `wake` when the flag is set (at once if it is set already). It must end whatever
    /// blocking call its thread waits in, and must not block itself.
    pub fn on_trigger(&self, wake: impl Fn() + Send + 'static) {
        let mut wakers = self.lock();
        if self.is_set() {
            wake();
        }
        wakers.push(Box::new(wake));
    }

    /// Blocks until the flag is set or `timeout` has passed; whether the flag is set.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let _unused = self
            .woken
            .wait_timeout_while(guard, timeout, |_| !self.is_set())
            .unwrap_or_else(PoisonError::into_inner);
        self.is_set()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn a_trigger_ends_a_wait_and_runs_the_wakers() {
        let shutdown = Arc::new(Shutdown::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        shutdown.on_trigger(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!shutdown.wait(Duration::from_millis(1)));
        let waiter = {
            let shutdown = shutdown.clone();
            // Far longer than any test runs: only the trigger can end it.
            std::thread::spawn(move || shutdown.wait(Duration::from_secs(3600)))
        };
        assert!(!shutdown.trigger());
        assert!(waiter.join().unwrap());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(shutdown.trigger(), "a second trigger reports the flag set");
        // A waker registered after the trigger runs at once.
        let late = runs.clone();
        shutdown.on_trigger(move || {
            late.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 12);
        assert!(shutdown.wait(Duration::from_secs(3600)));
    }
}
