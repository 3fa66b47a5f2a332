//! The background threads: maintenance moves raw points into the history file, rolls them up
//! and enforces retention, in small steps between which ingestion gets the database lock; the
//! roster watch keeps the hosts in memory in line with hosts registered or removed by another
//! process. Neither wakes on a tick: maintenance sleeps until its next step is due, the roster
//! watch until another process announces a change (`store::announce_change`); shutdown wakes
//! both.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::context::Context;

/// How often aged-out data is deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Buckets per tier per pass: catching up after a long stop happens over several passes.
const MAX_BUCKETS_PER_PASS: usize = 48;
/// Raw points stay in `recent` at least this long, so that the samples still arriving for
/// the last seconds do not disturb their host's move.
const MOVE_AFTER_SECONDS: i64 = 30;

/// Starts the thread; it ends when the server's shutdown flag is set.
pub fn spawn(ctx: Arc<Context>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || run(&ctx))
}

fn run(ctx: &Context) {
    lower_priority();
    let stop = || ctx.shutting_down();
    let mut next_rollup =
        Instant::now() + Duration::from_secs(5).min(ctx.config.maintenance_interval);
    let mut next_retention = Instant::now() + Duration::from_secs(30);
    while !stop() {
        let now = Instant::now();
        if now >= next_rollup {
            next_rollup = now + ctx.config.maintenance_interval;
            let started = Instant::now();
            match ctx
                .store
                .move_to_history(common::time::now_unix() - MOVE_AFTER_SECONDS, &stop)
            {
                Ok(report) if report.copied + report.deleted > 0 => log::info!(
                    "moved {} points of {} host(s) into the history file in {} ms \
                     ({} deleted from recent, {} host(s) postponed by late samples)",
                    report.copied,
                    report.hosts,
                    started.elapsed().as_millis(),
                    report.deleted,
                    report.postponed
                ),
                Ok(_) => {}
                Err(e) => log::error!("moving points into the history file: {e}"),
            }
            let started = Instant::now();
            match ctx
                .store
                .roll_up(common::time::now_unix(), MAX_BUCKETS_PER_PASS, &stop)
            {
                Ok(report) if report.buckets + report.recomputed > 0 => log::info!(
                    "rolled up {} buckets ({} rows), recomputed {} late buckets in {} ms",
                    report.buckets,
                    report.rollup_rows,
                    report.recomputed,
                    started.elapsed().as_millis()
                ),
                Ok(_) => {}
                Err(e) => log::error!("rollup: {e}"),
            }
        }
        if now >= next_retention {
            next_retention = now + RETENTION_EVERY;
            let now = common::time::now_unix();
            match ctx
                .store
                .enforce_retention(&ctx.config.retention, now, &stop)
            {
                Ok(n) => {
                    if n > 0 {
                        log::info!("retention: deleted {n} expired points and rollups");
                    }
                    // Series with nothing left in any tier (each host's are logged).
                    if let Err(e) =
                        ctx.store
                            .forget_vanished_series(&ctx.config.retention, now, &stop)
                    {
                        log::error!("forgetting vanished series: {e}");
                    }
                }
                Err(e) => log::error!("retention: {e}"),
            }
        }
        // Until the next step is due; shutdown ends the wait.
        let next = next_rollup.min(next_retention);
        ctx.shutdown
            .wait(next.saturating_duration_since(Instant::now()));
    }
}

/// Starts the roster watch: hosts registered or removed by another process (`register-host`,
/// `remove-host` while the server runs) appear in or leave memory as soon as that command has
/// committed, and acknowledgements and silences from the command line reach the alert thread.
/// SQLite tells no other process of a commit, so those commands rewrite the change marker
/// (`store::announce_change`) and this thread waits for that with inotify on the database's
/// directory; shutdown wakes it. It compares once at start (changes made while the server was
/// not running) and at every announcement: one indexed read of the host ids on a connection of
/// its own (never the ingestion lock); a new host's row is then read once. A join of a host not
/// in memory yet adds it at once anyway. Ends with the server.
pub fn spawn_roster_watch(ctx: Arc<Context>) -> std::io::Result<JoinHandle<()>> {
    // Set up here, so that a change committed once the server has started is never missed:
    // the watch exists before the first comparison.
    let watch = ChangeWatch::new(&ctx);
    std::thread::Builder::new()
        .name("roster".into())
        .spawn(move || {
            let mut failing = false;
            while !ctx.shutting_down() {
                match reconcile(&ctx) {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        log::error!("checking for hosts registered or removed meanwhile: {e}");
                    }
                    Err(_) => {}
                }
                match &watch {
                    Ok(watch) => watch.wait(&ctx),
                    // Without inotify (the per-user instance limit reached), fall back to a
                    // slow look now and then rather than never.
                    Err(_) => {
                        ctx.shutdown.wait(ROSTER_FALLBACK_EVERY);
                    }
                }
            }
        })
}

/// How often the roster is compared when inotify is not available (logged at start).
const ROSTER_FALLBACK_EVERY: Duration = Duration::from_secs(10);

/// Brings the hosts in memory and the alert thread in line with the database.
fn reconcile(ctx: &Context) -> crate::Result<()> {
    let mark = ctx.hosts.roster_mark();
    let ids = ctx.store.host_ids()?;
    let removed = ctx
        .hosts
        .reconcile(mark, &ids, |id| ctx.store.host_by_id(id))?;
    // A removed host's agent must not go on pushing into the void (its samples would fail):
    // close its connection; it cannot join again.
    let mut kicked = false;
    for host_id in removed {
        kicked |= ctx.registry.revoke(host_id, || {});
    }
    if kicked {
        ctx.sockets.wake_kicked();
    }
    // Acknowledgements and silences from the command line, likewise.
    ctx.alerts.check_external_changes(&ctx.store)
}

/// Waits for the change marker next to the database to be rewritten, or for shutdown.
struct ChangeWatch {
    inotify: Inotify,
    marker: std::ffi::OsString,
    /// Readable once shutdown has begun. (An eventfd, not a socket pair: the service unit allows
    /// no AF_UNIX sockets.)
    wake: Arc<EventFd>,
}

impl ChangeWatch {
    fn new(ctx: &Context) -> std::result::Result<ChangeWatch, String> {
        let marker = crate::store::change_marker(&ctx.config.database);
        let dir = match marker.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let made = (|| {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .map_err(|e| format!("inotify: {e}"))?;
            // Written and closed, or moved into place: the two ways a file gets new content.
            inotify
                .add_watch(
                    &dir,
                    AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
                )
                .map_err(|e| format!("watching {}: {e}", dir.display()))?;
            let wake = Arc::new(EventFd::new().map_err(|e| format!("eventfd: {e}"))?);
            let waker = wake.clone();
            ctx.shutdown.on_trigger(move || {
                let _ = waker.write(1);
            });
            Ok(ChangeWatch {
                inotify,
                marker: marker.file_name().unwrap_or_default().to_os_string(),
                wake,
            })
        })();
        if let Err(e) = &made {
            log::error!(
                "cannot watch {} for changes by admin commands ({e}); looking every {} s instead",
                marker.display(),
                ROSTER_FALLBACK_EVERY.as_secs()
            );
        }
        made
    }

    /// Blocks until the marker is rewritten or shutdown begins.
    fn wait(&self, ctx: &Context) {
        loop {
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log::error!("waiting for changes by admin commands: {e}");
                    ctx.shutdown.wait(ROSTER_FALLBACK_EVERY);
                    return;
                }
            }
            if ctx.shutting_down() {
                return;
            }
            // Everything queued (the directory's other files too); only the marker counts,
            // and an overflowed queue (the marker's event may be among those lost).
            let mut changed = false;
            while let Ok(events) = self.inotify.read_events() {
                if events.is_empty() {
                    break;
                }
                changed |= events.iter().any(|e| {
                    e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                        || e.name.as_deref() == Some(self.marker.as_os_str())
                });
            }
            if changed {
                return;
            }
        }
    }
}

/// Lowers this thread's CPU priority (nice 10): ingestion must win the CPU whenever it wants it,
/// and the background work catches up in the gaps. Failing is harmless, so it is only logged.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours; on
    // Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
    #[allow(unsafe_code)]
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::id_t::try_from(tid).unwrap_or(0),
            10,
        )
    };
    if rc != 0 {
        log::debug!(
            "could not lower the maintenance thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}
