//! The agent's error type: every variant names the file, key or address at fault.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// A file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its content is not what the kernel / Proxmox writes.
    Parse { path: PathBuf, message: String },
    /// The configuration is unusable; names the file and the key.
    Config { path: PathBuf, message: String },
    /// Talking to the server failed.
    Connection(String),
    /// The server refused our join (bad token, unknown host, ...).
    Rejected { reason: String },
    /// The spool file could not be read or written.
    Spool { path: PathBuf, message: String },
    /// A message larger than the server accepts (`limit`, from its join reply).
    TooLarge { bytes: usize, limit: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Parse { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Config { path, message } => write!(f, "config {}: {message}", path.display()),
            Error::Connection(message) => write!(f, "{message}"),
            Error::Rejected { reason } => write!(f, "server refused the join: {reason}"),
            Error::Spool { path, message } => write!(f, "spool {}: {message}", path.display()),
            Error::TooLarge { bytes, limit } => write!(
                f,
                "{bytes} bytes, more than the {limit} the server accepts in one message"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
