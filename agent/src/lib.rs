//! The Proxmox Monitor agent: collects samples from a node's own files and pushes them to the
//! server over one persistent Phoenix Channels WebSocket.

pub mod collect;
pub mod config;
pub mod connection;
pub mod error;
pub mod link;
pub mod run;
pub mod spool;
pub mod wake;
pub mod worker;

pub use error::{Error, Result};
