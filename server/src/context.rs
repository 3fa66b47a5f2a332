//! What every connection thread shares: settings, the database, the fleet in memory, the
//! registry, authentication, the shutdown flag and counters for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::alerts::Alerts;
use crate::auth::{Authenticator, LoginThrottle};
use crate::config::ServerConfig;
use crate::listener::Connections;
use crate::notify::Notifier;
use crate::registry::Registry;
use crate::shutdown::Shutdown;
use crate::state::HostStates;
use crate::store::Store;
use crate::tls::Tls;
use crate::ws::Sockets;

pub struct Context {
    pub config: ServerConfig,
    pub auth: Authenticator,
    pub store: Store,
    /// Every host's row and newest samples, typed; what pages, the API and `/metrics` read.
    pub hosts: HostStates,
    pub registry: Registry,
    /// The stop flag, and the wake-ups of the threads that block until something is due.
    pub shutdown: Arc<Shutdown>,
    pub stats: Stats,
    /// Failed dashboard logins, for the backoff.
    pub login_throttle: LoginThrottle,
    /// The open agent sockets, to wake their threads on a kick or at shutdown.
    pub sockets: Sockets,
    /// Every open connection, to end its blocked read at shutdown.
    pub connections: Connections,
    /// HTTPS and `wss://` on the port (`tls_cert`, `tls_key`); `None`: plain HTTP.
    pub tls: Option<Arc<Tls>>,
    /// The alerts as the alert thread last published them, and its command queue.
    pub alerts: Alerts,
    /// Wakes the delivery thread; its counters and the dashboard's channel tests.
    pub notifier: Notifier,
    /// Connections per client address (`max_connections_per_address`).
    pub addresses: crate::addresses::Addresses,
}

/// Counters since the server started.
#[derive(Default)]
pub struct Stats {
    pub samples_ingested: AtomicU64,
    pub points_ingested: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub open_connections: AtomicU64,
    pub joins_rejected: AtomicU64,
    pub bad_frames: AtomicU64,
    /// Samples refused for their time (too far ahead, older than raw retention) or size.
    pub samples_refused: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Context {
    /// A context over `store`, with `hosts` loaded from it (see [`HostStates::load`]).
    pub fn new(
        config: ServerConfig,
        store: Store,
        hosts: HostStates,
        shutdown: Arc<Shutdown>,
    ) -> Context {
        store.set_max_series_per_host(config.max_series_per_host);
        let auth = Authenticator::new(config.bcrypt_cost);
        match store.resume_key() {
            Ok(key) => auth.set_ticket_key(key),
            Err(e) => {
                log::error!("agents' resumption tickets are off (every join runs bcrypt): {e}")
            }
        }
        Context {
            auth,
            alerts: Alerts::new(config.alerts.clone()),
            config,
            store,
            hosts,
            registry: Registry::default(),
            shutdown,
            stats: Stats::default(),
            login_throttle: LoginThrottle::default(),
            sockets: Sockets::default(),
            connections: Connections::default(),
            addresses: crate::addresses::Addresses::default(),
            tls: None,
            notifier: Notifier::default(),
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_set()
    }
}
