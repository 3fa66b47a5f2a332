//! The background thread that rolls up history and enforces retention, in small transactions
//! between which ingestion gets the database lock.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Context;

/// How often aged-out data is deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Buckets per tier per pass: catching up after a long stop happens over several passes.
const MAX_BUCKETS_PER_PASS: usize = 48;

/// Starts the thread; it ends when the server's shutdown flag is set.
pub fn spawn(ctx: Arc<Context>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || run(&ctx))
}

fn run(ctx: &Context) {
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
            match ctx.store.enforce_retention(
                &ctx.config.retention,
                common::time::now_unix(),
                &stop,
            ) {
                Ok(0) => {}
                Ok(n) => log::info!("retention: deleted {n} expired points and rollups"),
                Err(e) => log::error!("retention: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
