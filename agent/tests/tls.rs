//! The agent over `wss://`: a private CA and server certificate made with the `openssl` CLI, a
//! small TLS-terminating proxy (rustls, ring) in front of the real server's plain port, and the
//! real agent binary. With `ca_file` the host comes online; without it the agent reports the
//! certificate problem and keeps retrying, never online, never panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{ChildGuard, Server, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");

/// Paths of the test PKI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the openssl CLI ({e}); install it: apt-get install openssl")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it (P-256, 2 days).
fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(ec);
    ca_args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=proxmox-monitor test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca_args);
    let mut csr_args = vec!["req"];
    csr_args.extend(ec);
    csr_args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr_args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Terminates TLS on its own port and forwards the plaintext to `backend`. Stops and joins its
/// threads when dropped.
struct TlsProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TlsProxy {
    fn start(pki: &Pki, backend: SocketAddr) -> TlsProxy {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        // Bound here and kept: no window for another process to take the port.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept_thread = std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let config = config.clone();
                        let flag = flag.clone();
                        conns.push(std::thread::spawn(move || {
                            forward(config, client, backend, &flag)
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
            for conn in conns {
                let _ = conn.join();
            }
        });
        TlsProxy {
            port,
            stop,
            accept_thread: Some(accept_thread),
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Pumps bytes both ways until either side closes or the proxy stops. One thread, short read
/// timeouts on both sockets, because a rustls stream has a single owner.
fn forward(
    config: Arc<rustls::ServerConfig>,
    client: TcpStream,
    backend: SocketAddr,
    stop: &AtomicBool,
) {
    let tick = Some(Duration::from_millis(10));
    let Ok(()) = client
        .set_nonblocking(false)
        .and_then(|()| client.set_read_timeout(tick))
    else {
        return;
    };
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, client);
    let Ok(mut plain) = TcpStream::connect(backend) else {
        return;
    };
    let _ = plain.set_read_timeout(tick);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            // A failed handshake (the agent did not trust us) ends up here.
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn write_config(dir: &Path, url: &str, token: &str, ca_file: Option<&Path>) -> PathBuf {
    let path = dir.join("agent.toml");
    let ca = ca_file
        .map(|p| format!("ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "server_url = \"{url}\"\ntoken = \"{token}\"\nhost_id = \"pve-tls\"\n\
             state_dir = \"{}\"\n{ca}\n[intervals]\nfast_seconds = 1\n",
            dir.join("agent-state").display()
        ),
    )
    .unwrap();
    path
}

fn start_agent(config: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(AGENT);
    command.arg("--config").arg(config).arg("run");
    ChildGuard::spawn(command, log)
}

#[test]
fn agent_with_the_private_ca_connects_over_wss() {
    let server = Server::start("wss-ok");
    let token = server.register("pve-tls");
    let pki = make_pki(server.dir.path());
    let proxy = TlsProxy::start(&pki, server.addr());
    let url = format!("wss://127.0.0.1:{}/socket/websocket", proxy.port);
    let config = write_config(server.dir.path(), &url, &token, Some(&pki.ca));
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));

    let online = support::wait_until(PATIENCE, || {
        server.status("pve-tls").as_deref() == Some("online")
    });
    assert!(
        online,
        "not online over wss; agent log:\n{}\nserver log:\n{}",
        agent.output(),
        server.log()
    );
    assert!(
        support::wait_until(PATIENCE, || server
            .log()
            .contains("metric:fast host=pve-tls")),
        "no sample over wss; agent log:\n{}",
        agent.output()
    );
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    server.expect_status("pve-tls", "offline");
    assert!(!agent.output().contains("panicked"), "{}", agent.output());
    drop(proxy);
}

#[test]
fn agent_without_the_ca_refuses_the_certificate_and_keeps_retrying() {
    let server = Server::start("wss-untrusted");
    let token = server.register("pve-tls");
    let pki = make_pki(server.dir.path());
    let proxy = TlsProxy::start(&pki, server.addr());
    let url = format!("wss://127.0.0.1:{}/socket/websocket", proxy.port);
    let config = write_config(server.dir.path(), &url, &token, None);
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));

    assert!(
        agent.wait_for_output("certificate", PATIENCE),
        "no certificate error reported; agent log:\n{}",
        agent.output()
    );
    // It retries (backoff starts at ~1 s): a second attempt is reported the same way.
    assert!(
        support::wait_until(PATIENCE, || agent.output().matches("certificate").count()
            >= 2),
        "no retry; agent log:\n{}",
        agent.output()
    );
    assert!(
        agent.try_wait().is_none(),
        "agent exited:\n{}",
        agent.output()
    );
    assert_ne!(server.status("pve-tls").as_deref(), Some("online"));
    assert!(!agent.output().contains("panicked"), "{}", agent.output());
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    drop(proxy);
}
