//! The Proxmox Monitor server: authenticates agents over a Phoenix Channels WebSocket, tracks
//! hosts online/offline, stores their samples in SQLite and serves HTTP on the same port.

pub mod addresses;
pub mod alert_cli;
pub mod alerts;
pub mod auth;
pub mod backups;
pub mod channel;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod http;
pub mod ingest;
pub mod listener;
pub mod maintenance;
pub mod notify;
pub mod registry;
pub mod shutdown;
pub mod signals;
pub mod state;
pub mod store;
pub mod tls;
pub mod ws;

#[cfg(test)]
mod testutil;

use std::net::TcpListener;
use std::sync::Arc;

pub use config::ServerConfig;
pub use error::{Error, Result};

use context::Context;
use store::Store;

/// Serves on `listener` until `shutdown` is set: marks every host offline on the way in (nobody
/// is connected to a server that just started) and on the way out. With `tls`, every
/// connection speaks HTTPS / `wss://`.
///
/// The store is opened (and migrated) by the caller before it binds the listener, so that no
/// agent or admin command can meet a half-migrated database; likewise the TLS pair is loaded
/// (and checked) first.
pub fn serve(
    config: ServerConfig,
    store: Store,
    listener: TcpListener,
    shutdown: Arc<shutdown::Shutdown>,
    tls: Option<Arc<tls::Tls>>,
) -> Result<()> {
    let stale = store.mark_all_offline(common::time::now_unix())?;
    if stale > 0 {
        log::info!("marked {stale} hosts offline that were online when the server last stopped");
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.listen.clone());
    let (scheme, ws_scheme) = if tls.is_some() {
        ("HTTPS", "wss")
    } else {
        ("HTTP", "ws")
    };
    log::info!(
        "listening on {addr} ({scheme}; agent socket {ws_scheme}://{addr}{}, database {})",
        common::events::SOCKET_PATH,
        config.database.display()
    );
    check_files(&store);
    let hosts = state::HostStates::load(&store)?;
    let mut ctx = Context::new(config, store, hosts, shutdown);
    ctx.tls = tls;
    let ctx = Arc::new(ctx);
    let maintenance = maintenance::spawn(ctx.clone())
        .map_err(|e| Error::Usage(format!("cannot start the maintenance thread: {e}")))?;
    let roster = maintenance::spawn_roster_watch(ctx.clone())
        .map_err(|e| Error::Usage(format!("cannot start the roster watch: {e}")))?;
    let alerts = alerts::spawn(ctx.clone())?;
    let notify = notify::spawn(ctx.clone())?;
    let served = listener::run(ctx.clone(), listener).map_err(|source| Error::Listen {
        addr: addr.clone(),
        source,
    });
    // The flag is already set when the listener returns normally; on an error too.
    ctx.shutdown.trigger();
    let _ = maintenance.join();
    let _ = roster.join();
    // Before the hosts are marked offline below: that is this server stopping, not an outage.
    ctx.alerts.wake();
    let _ = alerts.join();
    // A message in flight ends within `[notify] timeout`; the rest waits in the database.
    ctx.notifier.wake();
    let _ = notify.join();
    served?;
    let now = common::time::now_unix();
    let offline = ctx.store.mark_all_offline(now)?;
    ctx.hosts.mark_all_offline(now);
    log::info!("stopped; {offline} hosts marked offline");
    Ok(())
}

/// Runs SQLite's quick check on both files at start and says what it found: damage is logged
/// as an error naming the file (the server still starts; what can be read is served).
fn check_files(store: &store::Store) {
    let started = std::time::Instant::now();
    match store.quick_check() {
        Ok(found) => {
            for (schema, problems) in found {
                let path = match schema {
                    "main" => store.path(),
                    _ => store.history_path(),
                };
                if problems.len() == 1 && problems[0] == "ok" {
                    log::info!(
                        "database {}: quick check ok ({} ms)",
                        path.display(),
                        started.elapsed().as_millis()
                    );
                } else {
                    log::error!(
                        "database {}: quick check found damage (restore it from a backup, or \
                         see https://sqlite.org/recovery.html): {}",
                        path.display(),
                        problems.join("; ")
                    );
                }
            }
        }
        Err(e) => log::error!("quick check of the database failed: {e}"),
    }
}
