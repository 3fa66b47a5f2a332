//! The agent's one blocking call: wait until the socket is ready, a stop is requested, a
//! collection has finished, or the next deadline comes, whichever is first.
//!
//! The stop request is a file descriptor (an eventfd), so that poll(2) watches it together with
//! the socket: the signal handler's thread makes it readable and a wait blocked on a silent
//! server returns at once. Once requested it stays readable. There is no polling tick: between
//! two collections the agent sleeps in one `poll`, for exactly as long as nothing is due.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// The stop request, shared by the signal handler and the run loop.
#[derive(Debug)]
pub struct Stop {
    fd: EventFd,
    requested: AtomicBool,
}

impl Stop {
    pub fn new() -> std::io::Result<Stop> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Stop {
            fd,
            requested: AtomicBool::new(false),
        })
    }

    /// Asks the run loop to stop; any thread may call it, any number of times.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // Only fails if the counter would overflow, i.e. it is already readable.
        let _ = self.fd.write(1);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// A wake-up from another thread (the collector's, when a sample is ready): an eventfd, so
/// that the one `poll` watches it with the socket.
#[derive(Debug)]
pub struct Signal {
    fd: EventFd,
}

impl Signal {
    pub fn new() -> std::io::Result<Signal> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Signal { fd })
    }

    /// Makes the signal readable until `clear`; any thread may call it.
    pub fn notify(&self) {
        // Only fails if the counter would overflow, i.e. it is already readable.
        let _ = self.fd.write(1);
    }

    /// Makes it unreadable again. Clear before looking for what was signalled, so that a
    /// notification sent meanwhile is not lost.
    pub fn clear(&self) {
        // EAGAIN when it was not readable: nothing to clear.
        let _ = self.fd.read();
    }
}

/// What a socket is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    ReadWrite,
}

impl Interest {
    fn flags(self) -> PollFlags {
        match self {
            Interest::Read => PollFlags::POLLIN,
            Interest::Write => PollFlags::POLLOUT,
            Interest::ReadWrite => PollFlags::POLLIN | PollFlags::POLLOUT,
        }
    }
}

/// Why `wait` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The socket is ready (or has an error or hang-up to report).
    Ready,
    /// A stop was requested.
    Stop,
    /// The `Signal` was notified.
    Signalled,
    /// The deadline passed (or a signal interrupted the wait).
    Timeout,
}

/// Blocks until `socket` is ready for its interest, `stop` is requested, `signal` is notified
/// or `deadline` passes (`None`: no deadline). A stop wins over a ready socket, which wins over
/// the signal.
pub fn wait(
    socket: Option<(BorrowedFd<'_>, Interest)>,
    stop: Option<&Stop>,
    signal: Option<&Signal>,
    deadline: Option<Instant>,
) -> std::io::Result<Woke> {
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(deadline) => poll_timeout(deadline.saturating_duration_since(Instant::now())),
    };
    let mut fds = Vec::with_capacity(3);
    if let Some(stop) = stop {
        fds.push(PollFd::new(stop.fd.as_fd(), PollFlags::POLLIN));
    }
    if let Some(signal) = signal {
        fds.push(PollFd::new(signal.fd.as_fd(), PollFlags::POLLIN));
    }
    if let Some((fd, interest)) = socket {
        fds.push(PollFd::new(fd, interest.flags()));
    }
    match nix::poll::poll(&mut fds, timeout) {
        Ok(0) | Err(Errno::EINTR) => return Ok(Woke::Timeout),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    let mut fds = fds.iter();
    if stop.is_some() && fds.next().is_some_and(ready) {
        return Ok(Woke::Stop);
    }
    let signalled = signal.is_some() && fds.next().is_some_and(ready);
    if fds.next().is_some_and(ready) {
        return Ok(Woke::Ready);
    }
    Ok(if signalled {
        Woke::Signalled
    } else {
        Woke::Timeout
    })
}

/// `left` in whole milliseconds, rounded up so that the wait never ends just before the
/// deadline (which would cost a second, empty turn of the loop).
fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(poll_timeout(Duration::ZERO), PollTimeout::ZERO);
        assert_eq!(
            poll_timeout(Duration::from_micros(1)),
            PollTimeout::from(1u8)
        );
        assert_eq!(
            poll_timeout(Duration::from_micros(30_001)),
            PollTimeout::from(31u8)
        );
        assert_eq!(poll_timeout(Duration::from_secs(1 << 40)), PollTimeout::MAX);
    }

    #[test]
    fn a_requested_stop_wakes_a_wait_without_deadline_and_stays_requested() {
        let stop = std::sync::Arc::new(Stop::new().unwrap());
        let other = stop.clone();
        let thread = std::thread::spawn(move || other.request());
        assert_eq!(wait(None, Some(&stop), None, None).unwrap(), Woke::Stop);
        thread.join().unwrap();
        assert!(stop.is_requested());
        assert_eq!(wait(None, Some(&stop), None, None).unwrap(), Woke::Stop);
        stop.request();
        assert_eq!(wait(None, Some(&stop), None, None).unwrap(), Woke::Stop);
    }

    #[test]
    fn a_signal_from_another_thread_wakes_a_wait_until_cleared() {
        let signal = std::sync::Arc::new(Signal::new().unwrap());
        let past = Some(Instant::now());
        assert_eq!(
            wait(None, None, Some(&signal), past).unwrap(),
            Woke::Timeout
        );
        let other = signal.clone();
        let thread = std::thread::spawn(move || other.notify());
        assert_eq!(
            wait(None, None, Some(&signal), None).unwrap(),
            Woke::Signalled
        );
        thread.join().unwrap();
        signal.notify();
        signal.clear();
        assert_eq!(
            wait(None, None, Some(&signal), past).unwrap(),
            Woke::Timeout
        );
        // Cleared when it was not set: still fine.
        signal.clear();
        let stop = Stop::new().unwrap();
        stop.request();
        signal.notify();
        assert_eq!(
            wait(None, Some(&stop), Some(&signal), None).unwrap(),
            Woke::Stop
        );
    }

    #[test]
    fn a_socket_with_data_is_ready_and_a_past_deadline_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let stop = Stop::new().unwrap();
        let past = Some(Instant::now());
        assert_eq!(
            wait(
                Some((server.as_fd(), Interest::Read)),
                Some(&stop),
                None,
                past
            )
            .unwrap(),
            Woke::Timeout
        );
        client.write_all(b"x").unwrap();
        // No deadline: returns because the byte arrives.
        assert_eq!(
            wait(
                Some((server.as_fd(), Interest::Read)),
                Some(&stop),
                None,
                None
            )
            .unwrap(),
            Woke::Ready
        );
        assert_eq!(
            wait(Some((server.as_fd(), Interest::Write)), None, None, None).unwrap(),
            Woke::Ready
        );
        // A stop wins over a ready socket.
        stop.request();
        assert_eq!(
            wait(
                Some((server.as_fd(), Interest::Read)),
                Some(&stop),
                None,
                None
            )
            .unwrap(),
            Woke::Stop
        );
    }
}
