//! What every connection thread shares: settings, the database, the registry, the shutdown flag
//! and counters for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::ServerConfig;
use crate::http::session::HttpState;
use crate::registry::Registry;
use crate::store::Store;
use crate::ws::Sockets;

pub struct Context {
    pub config: ServerConfig,
    pub auth: Authenticator,
    pub store: Store,
    pub registry: Registry,
    pub shutdown: Arc<AtomicBool>,
    pub stats: Stats,
    /// Dashboard-side state (the login backoff).
    pub http: HttpState,
    /// The open agent sockets, to wake their threads on a kick or at shutdown.
    pub sockets: Sockets,
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
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Context {
    pub fn new(config: ServerConfig, store: Store, shutdown: Arc<AtomicBool>) -> Context {
        Context {
            auth: Authenticator::new(config.bcrypt_cost),
            config,
            store,
            registry: Registry::default(),
            shutdown,
            stats: Stats::default(),
            http: HttpState::default(),
            sockets: Sockets::default(),
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}
