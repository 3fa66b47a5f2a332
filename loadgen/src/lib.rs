//! The Proxmox Monitor load generator: many simulated agents over loopback, the storage ceiling
//! without sockets, the raw history at rest and its range reads, and reconnect storms against
//! the real server binary. Used by `bench/run.sh`.
//!
//! No async runtime here either: one thread per simulated agent, blocking sockets, like the
//! real agent (see `agents` for why).

pub mod agents;
pub mod alerts;
pub mod ceiling;
pub mod client;
pub mod error;
pub mod notify;
pub mod pages;
pub mod proc_stat;
pub mod register;
pub mod sample;
pub mod stats;
pub mod storage;
pub mod storm;

pub use error::{Error, Result};

/// Reads a `name<TAB>token` file as written by `register`.
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            line.split_once('\t')
                .map(|(n, t)| (n.to_owned(), t.to_owned()))
                .ok_or_else(|| {
                    Error::Setup(format!(
                        "{}: line {line:?} is not NAME<TAB>TOKEN",
                        path.display()
                    ))
                })
        })
        .collect()
}
