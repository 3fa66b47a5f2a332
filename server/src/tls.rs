//! HTTPS and `wss://` on the server's one port: rustls with the `ring` provider (as the agent),
//! the certificate chain and key read from `tls_cert` and `tls_key` (PEM), and the stream type
//! every connection thread reads and writes, plain TCP or TLS over it.
//!
//! The pair is checked when the server starts: a file that cannot be read, holds no
//! certificate or key, or a key that is not the certificate's is an error naming the file.
//! `Tls::reload` (SIGHUP) reads both files again; a good new pair is used by every connection
//! made from then on (the handshake asks `Resolver` for the current pair), connections already
//! open keep the pair they shook hands with, and a bad new pair is logged and the old one kept.
//!
//! A connection is sorted by its first byte (`peek`, nothing consumed): a TLS record starts
//! with 0x16 (handshake), an HTTP request with a letter of its method. Plain HTTP on the TLS
//! port gets a plain-HTTP answer that says so (`listener` writes it) instead of a TLS alert a
//! browser or agent would show as an obscure error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::error::{Error, Result};
use crate::http::is_timeout;

/// The server's TLS settings: the files, the pair in use, and the rustls configuration that
/// every new connection starts from.
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
}

/// Hands every handshake the pair in use now; `reload` swaps it.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the pair; the error names the file at fault.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(cert_path, key_path, &provider)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(pair)),
        });
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                path: cert_path.to_owned(),
                message: format!("cannot set up TLS: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // HTTP/1.1 only (WebSocket upgrades included); a client that offers ALPN learns it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            resolver,
            config: Arc::new(config),
        })
    }

    /// Reads both files again and, when they make a good pair, uses it for every new
    /// connection. On an error the pair in use stays.
    pub fn reload(&self) -> Result<()> {
        let pair = load_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// A TLS stream over `tcp`, its handshake done by `deadline`. Each read blocks until the
    /// deadline; shutdown ends it by shutting the socket's read half (`listener::Connections`),
    /// which `stopping` then tells from a client that went away.
    pub fn accept(
        &self,
        tcp: TcpStream,
        deadline: Instant,
        stopping: &dyn Fn() -> bool,
    ) -> std::result::Result<Stream, HandshakeError> {
        let conn = ServerConnection::new(self.config.clone())
            .map_err(|e| HandshakeError::Failed(e.to_string()))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if !wait_until(&stream.sock, deadline) {
                return Err(HandshakeError::TimedOut);
            }
            match stream.conn.complete_io(&mut stream.sock) {
                Ok(_) => {}
                Err(_) if stopping() => return Err(HandshakeError::Stopping),
                Err(e) if is_timeout(&e) => return Err(HandshakeError::TimedOut),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(HandshakeError::Closed)
                }
                Err(e) => return Err(HandshakeError::Failed(e.to_string())),
            }
        }
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The client closed the connection (a port scan, a client that refused our certificate
    /// without an alert).
    Closed,
    TimedOut,
    /// The server is stopping.
    Stopping,
    /// What rustls said (an alert received from the client, a protocol error).
    Failed(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Closed => write!(f, "the client closed the connection"),
            HandshakeError::TimedOut => write!(f, "not finished in time"),
            HandshakeError::Stopping => write!(f, "the server is stopping"),
            HandshakeError::Failed(message) => write!(f, "{message}"),
        }
    }
}

/// What the first byte of a new connection says it speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstByte {
    /// A TLS record (or something else that only rustls can judge).
    Tls,
    /// The first letter of an HTTP method: plain HTTP.
    PlainHttp,
    /// Closed before sending anything, too slow, or the server is stopping.
    Nothing,
}

/// Waits for the first byte of `tcp` (without consuming it) until `deadline`. Shutdown ends
/// the wait by shutting the socket's read half (the peek then sees end-of-file).
pub fn sniff(tcp: &TcpStream, deadline: Instant, stopping: &dyn Fn() -> bool) -> FirstByte {
    let mut byte = [0u8; 1];
    if stopping() || !wait_until(tcp, deadline) {
        return FirstByte::Nothing;
    }
    match tcp.peek(&mut byte) {
        Ok(n) if n > 0 && !stopping() => classify(byte[0]),
        _ => FirstByte::Nothing,
    }
}

/// Sets `tcp`'s read timeout to the time left until `deadline`; false when it has passed.
pub fn wait_until(tcp: &TcpStream, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout would mean "block forever" to the kernel (and is refused by std).
    !left.is_zero() && tcp.set_read_timeout(Some(left)).is_ok()
}

fn classify(first: u8) -> FirstByte {
    // 0x16 is a TLS handshake record; HTTP methods are upper-case tokens (GET, POST, HEAD…).
    if first.is_ascii_uppercase() {
        FirstByte::PlainHttp
    } else {
        FirstByte::Tls
    }
}

/// A connection as the HTTP and WebSocket code see it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (timeouts, addresses, a second handle to shut it down).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Ends a TLS session with close_notify, so the client can tell our close from a cut
    /// connection; nothing to do for plain TCP. Best effort: the connection is ending anyway.
    pub fn finish(&mut self) {
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.sock.set_write_timeout(Some(Duration::from_secs(1)));
            while tls.conn.wants_write() {
                match tls.conn.write_tls(&mut tls.sock) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Reads the chain of `cert_path` and the key of `key_path` and checks that they belong
/// together.
fn load_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let bad = |path: &Path, message: String| Error::Tls {
        path: path.to_owned(),
        message,
    };
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| bad(cert_path, format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                cert_path,
                format!("not a PEM certificate file: {}", pem_problem(&e)),
            )
        })?;
    if chain.is_empty() {
        return Err(bad(
            cert_path,
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem =
        std::fs::read(key_path).map_err(|e| bad(key_path, format!("cannot read: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        bad(
            key_path,
            format!(
                "no private key in it ({}; expected PEM: -----BEGIN PRIVATE KEY-----, \
                 BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY)",
                pem_problem(&e)
            ),
        )
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(key_path, format!("unusable private key: {e}")))?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            log::warn!(
                "cannot tell whether the key in {} belongs to the certificate in {}; using them",
                key_path.display(),
                cert_path.display()
            );
            Ok(pair)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(bad(
            key_path,
            format!(
                "this key does not belong to the certificate in {} (its public key differs)",
                cert_path.display()
            ),
        )),
        Err(e) => Err(bad(
            cert_path,
            format!("the first certificate cannot be used: {e}"),
        )),
    }
}

/// What is wrong with a PEM file, in words (rustls-pki-types prints the markers as bytes).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as Pem;
    match e {
        Pem::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            format!("-----BEGIN {label}----- without its -----END {label}----- line")
        }
        Pem::IllegalSectionStart { line } => format!(
            "a malformed BEGIN line: {}",
            String::from_utf8_lossy(line).trim()
        ),
        Pem::NoItemsFound => "nothing of that kind in it".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_tls_from_plain_http() {
        assert_eq!(classify(0x16), FirstByte::Tls);
        for method in ["GET", "POST", "HEAD", "PUT", "OPTIONS"] {
            assert_eq!(classify(method.as_bytes()[0]), FirstByte::PlainHttp);
        }
        // Garbage goes to rustls, which refuses it with a logged handshake error.
        assert_eq!(classify(0), FirstByte::Tls);
        assert_eq!(classify(b'g'), FirstByte::Tls);
    }

    #[test]
    fn unreadable_or_empty_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("pm-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let missing = Tls::load(&dir.join("nope.pem"), &key)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope.pem") && missing.contains("cannot read"),
            "{missing}"
        );
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let empty = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(
            empty.contains("cert.pem") && empty.contains("no certificate"),
            "{empty}"
        );
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&key, "nothing\n").unwrap();
        let no_key = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(
            no_key.contains("key.pem") && no_key.contains("no private key"),
            "{no_key}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
