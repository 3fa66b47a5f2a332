//! The server's error type: every variant names the file, host or value at fault.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// The configuration file or a flag is unusable.
    Config {
        source_name: String,
        message: String,
    },
    /// The database could not be opened, migrated, read or written.
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The database's write lock stayed taken (by the server or another command) for as long
    /// as we waited for it.
    Locked {
        path: PathBuf,
        waited: std::time::Duration,
    },
    /// The history file beside the database belongs to another database.
    MismatchedHistory {
        main: PathBuf,
        history: PathBuf,
    },
    /// A database file or directory could not be created.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A host name that is not allowed.
    InvalidHostName(String),
    HostExists(String),
    UnknownHost(String),
    /// Hashing a token or password failed.
    Hash(String),
    /// The listener could not be set up.
    Listen {
        addr: String,
        source: std::io::Error,
    },
    /// A batch of samples could not be committed (the message of the underlying error).
    Store(String),
    /// Anything an admin typed that we cannot use (a timestamp, a password, ...).
    Usage(String),
    /// Background work that refused to run because it would do harm (what and why).
    Refused(String),
    /// The TLS certificate or key file (`tls_cert`, `tls_key`) is unusable.
    Tls {
        path: PathBuf,
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config {
                source_name,
                message,
            } => write!(f, "config {source_name}: {message}"),
            Error::Database { path, source } => write!(f, "database {}: {source}", path.display()),
            Error::Locked { path, waited } => write!(
                f,
                "database {} is locked: another process (the server or another command) kept \
                 its write lock longer than this one waits for it ({} s); nothing was changed, \
                 try again",
                path.display(),
                waited.as_secs()
            ),
            Error::MismatchedHistory { main, history } => write!(
                f,
                "database {}: the history file {} belongs to another database (the two files \
                 were not created together, e.g. the main file was deleted or restored alone); \
                 its points would be read as this database's. Restore the matching pair, or \
                 move {} away to start the raw history afresh",
                main.display(),
                history.display(),
                history.display()
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::InvalidHostName(reason) => write!(f, "invalid host name: {reason}"),
            Error::HostExists(name) => write!(f, "host '{name}' is already registered"),
            Error::UnknownHost(name) => write!(f, "no host named '{name}' is registered"),
            Error::Hash(message) => write!(f, "bcrypt: {message}"),
            Error::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Store(message) => write!(f, "storing samples: {message}"),
            Error::Usage(message) => write!(f, "{message}"),
            Error::Refused(message) => write!(f, "{message}"),
            Error::Tls { path, message } => write!(f, "TLS: {}: {message}", path.display()),
        }
    }
}

impl Error {
    /// A sample refused because it would pass `max_series_per_host` (never stored, whatever
    /// the agent does: not a failure of the store).
    pub fn is_series_cap(&self) -> bool {
        matches!(self, Error::Store(message) if message.contains(crate::store::SERIES_CAP))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database { source, .. } => Some(source),
            Error::Io { source, .. } | Error::Listen { source, .. } => Some(source),
            _ => None,
        }
    }
}
