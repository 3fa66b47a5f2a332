//! Ctrl+C and SIGTERM end the real agent binary cleanly wherever it waits: connecting to a
//! server that drops our SYNs, in the middle of a WebSocket handshake the server never answers.
//! "Cleanly" means the run loop itself saw the stop and ended (it logs `stopped (N samples kept
//! in the spool)`), not the 1.8 s backstop in `main` (which logs `did not close in time`).
//! (Stopping while a hung server leaves pushes unanswered is in `durability.rs`, which also
//! checks that nothing is lost.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use support::{ChildGuard, TempDir, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");
/// Logged by the run loop when it ends.
const STOPPED: &str = "stopped (";
/// Logged by `main` when the loop did not end in time.
const BACKSTOP: &str = "did not close in time";

fn start_agent(dir: &Path, addr: SocketAddr) -> ChildGuard {
    let config = dir.join("agent.toml");
    let text = format!(
        "server_url = \"ws://{addr}/socket/websocket\"\ntoken = \"t\"\nhost_id = \"pve-stop\"\n\
         state_dir = \"{}\"\nlog_level = \"debug\"\n",
        dir.join("state").display()
    );
    std::fs::write(&config, text).unwrap();
    let mut command = Command::new(AGENT);
    command.arg("--config").arg(&config).arg("run");
    ChildGuard::spawn(command, &dir.join("agent.log"))
}

/// Stops `agent` with `sig` and checks that its loop ended by itself with exit code 0.
fn expect_clean_stop(agent: &mut ChildGuard, sig: i32) {
    support::signal(agent.pid(), sig);
    let status = agent
        .wait_timeout(PATIENCE)
        .unwrap_or_else(|| panic!("still running after the signal; log:\n{}", agent.output()));
    let log = agent.output();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(log.contains("stop requested"), "log:\n{log}");
    assert!(
        log.contains(STOPPED),
        "the loop did not end by itself:\n{log}"
    );
    assert!(!log.contains(BACKSTOP), "log:\n{log}");
}

/// A listening socket whose accept queue is full and never drained: the kernel drops further
/// SYNs, so a connect to it stays in SYN-SENT like one to a black-holed address.
struct BlackHole {
    listener: socket2::Socket,
    /// Connections that fill the queue.
    _fillers: Vec<TcpStream>,
}

impl BlackHole {
    fn new() -> BlackHole {
        use socket2::{Domain, Protocol, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue (Linux takes one connection at backlog 0): connect until a
        // connect hangs, which shows the kernel now drops SYNs.
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => break,
            }
        }
        BlackHole {
            listener,
            _fillers: fillers,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap().as_socket().unwrap()
    }
}

#[test]
fn sigint_while_connecting_to_a_black_hole_ends_at_once() {
    let dir = TempDir::new("stop-black-hole");
    let hole = BlackHole::new();
    let mut agent = start_agent(dir.path(), hole.addr());
    assert!(
        agent.wait_for_output("connecting to", PATIENCE),
        "log:\n{}",
        agent.output()
    );
    // The connect cannot finish: the queue is full and stays full.
    assert!(!agent.output().contains("connected to"));
    expect_clean_stop(&mut agent, libc::SIGINT);
    // The fast, medium and slow samples taken at start wait in the spool for the next run.
    assert!(
        agent
            .output()
            .contains("stopped (3 samples kept in the spool)"),
        "log:\n{}",
        agent.output()
    );
}

#[test]
fn sigterm_while_the_server_never_answers_the_handshake_ends_at_once() {
    let dir = TempDir::new("stop-silent-server");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted) = mpsc::channel();
    // Accepts, reads the upgrade request and never answers; holds the socket until the agent
    // closes it.
    let silent = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = accepted_tx.send(());
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut agent = start_agent(dir.path(), addr);
    accepted
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("the agent never connected; log:\n{}", agent.output()));
    expect_clean_stop(&mut agent, libc::SIGTERM);
    // The agent closed its socket on the way out, so the silent server sees the end.
    silent.join().unwrap();
}
