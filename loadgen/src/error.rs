//! The load generator's error type.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server's store or token code failed.
    Server(server::Error),
    /// Direct SQLite access (counting points, checkpoints) failed.
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A connection, handshake or join failed, with the agent it happened to.
    Connection(String),
    /// Arguments or inputs that cannot be used.
    Setup(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Server(e) => write!(f, "{e}"),
            Error::Database { path, source } => write!(f, "database {}: {source}", path.display()),
            Error::Connection(m) | Error::Setup(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<server::Error> for Error {
    fn from(e: server::Error) -> Error {
        Error::Server(e)
    }
}
