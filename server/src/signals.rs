//! The server's signals, taken on one thread of their own with sigwait(2): SIGINT and SIGTERM
//! stop the server (a second one exits at once), SIGHUP reloads the TLS certificate and key
//! (`systemctl reload`).
//!
//! The three signals are blocked before any other thread starts, so every thread inherits the
//! mask and only the signal thread ever receives them — no handler runs in the middle of a
//! thread's work, and no unsafe code is needed. The thread lives as long as the process (it
//! waits in sigwait; the process ends when `serve` returns).

use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;
use crate::tls::Tls;

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread it starts later)
/// and starts the thread that waits for them. Call it before any other thread is started.
pub fn install(shutdown: Arc<Shutdown>, tls: Option<Arc<Tls>>) -> Result<()> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block()
        .map_err(|e| Error::Usage(format!("cannot block signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => reload(tls.as_deref()),
                Ok(signal) => {
                    if shutdown.trigger() {
                        // A second Ctrl+C: the admin does not want to wait.
                        std::process::exit(130);
                    }
                    log::info!("{} received; stopping", signal.as_str());
                }
                Err(e) => {
                    log::error!("waiting for signals failed: {e}; stopping");
                    shutdown.trigger();
                    return;
                }
            }
        })
        .map_err(|e| Error::Usage(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// SIGHUP: the certificate and key are read again; a bad pair leaves the current one in use.
fn reload(tls: Option<&Tls>) {
    let Some(tls) = tls else {
        log::info!("SIGHUP received; no tls_cert configured, nothing to reload");
        return;
    };
    match tls.reload() {
        Ok(()) => log::info!(
            "SIGHUP: reloaded the TLS certificate {} and key {}; new connections use them",
            tls.cert_path().display(),
            tls.key_path().display()
        ),
        Err(e) => log::error!("SIGHUP: {e}; keeping the certificate in use"),
    }
}
