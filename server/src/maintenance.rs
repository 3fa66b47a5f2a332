//! The background threads: maintenance moves raw points into the history file, rolls them up
//! and enforces retention, in small steps between which ingestion gets the database lock; the
//! roster watch keeps the hosts in memory in line with hosts registered or removed by another
//! process.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How often the roster watch compares the hosts in memory with the database's.
pub const ROSTER_EVERY: Duration = Duration::from_millis(250);

/// Starts the roster watch: hosts registered or removed by another process (`register-host`,
/// `remove-host` while the server runs) appear in or leave memory within `ROSTER_EVERY`.
/// SQLite tells no other process of a commit, so this asks: one indexed read of the host ids
/// on a connection of its own (never the ingestion lock); a new host's row is then read once.
/// A join of a host not in memory yet adds it at once anyway. Ends with the server.
pub fn spawn_roster_watch(ctx: Arc<Context>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("roster".into())
        .spawn(move || {
            let mut failing = false;
            while !ctx.shutting_down() {
                let mark = ctx.hosts.roster_mark();
                let checked = ctx
                    .store
                    .host_ids()
                    .and_then(|ids| {
                        ctx.hosts
                            .reconcile(mark, &ids, |id| ctx.store.host_by_id(id))
                    })
                    .map(|removed| {
                        // A removed host's agent must not go on pushing into the void (its
                        // samples would fail): close its connection; it cannot join again.
                        let mut kicked = false;
                        for host_id in removed {
                            kicked |= ctx.registry.revoke(host_id, || {});
                        }
                        if kicked {
                            ctx.sockets.wake_kicked();
                        }
                    })
                    // Acknowledgements and silences from the command line, likewise.
                    .and_then(|()| ctx.alerts.check_external_changes(&ctx.store));
                match checked {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        log::error!("checking for hosts registered or removed meanwhile: {e}");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(ROSTER_EVERY);
            }
        })
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
