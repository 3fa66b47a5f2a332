//! The vocabulary shared by the Proxmox Monitor agent and server: Phoenix Channels V2 frames, the
//! topic and event names of our host channel, and the schema of the samples pushed over it.
//!
//! This crate does no I/O and starts no threads; every type that crosses the wire lives here.

pub mod events;
pub mod frame;
pub mod sample;
pub mod series;
pub mod time;

pub use frame::{Frame, FrameError, RawFrame};
