//! The test kit shared by every crate's tests (a dev-dependency only, never shipped): unique
//! temp dirs, free ports, child processes that cannot leak, the real server and agent binaries
//! started in a temp dir on a port of their own, their admin subcommands, and a tiny Phoenix
//! Channels V2 client that talks to the server over a real socket.
//!
//! The binaries are found next to the running test's own executable
//! (`target/<profile>/deps/<test>` → `target/<profile>/<binary>`), so a test of one crate can
//! start another crate's binary; a missing one is built with `cargo build` first.
//!
//! Everything waits on conditions with deadlines; nothing asserts after a fixed sleep. Child
//! processes are killed when their guard is dropped, so a failing test leaks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::Frame;
use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long tests wait for something that normally takes milliseconds; generous because CI
/// machines are small and busy.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server binary of this workspace (built first if missing).
pub fn server_bin() -> PathBuf {
    workspace_bin("proxmox-monitor-server")
}

/// The agent binary of this workspace (built first if missing).
pub fn agent_bin() -> PathBuf {
    workspace_bin("proxmox-monitor-agent")
}

/// `target/<profile>/NAME`, beside the directory of the running test executable; built with
/// `cargo build -p NAME --bin NAME` when it is not there (`cargo test -p` of one crate does not
/// build the other crates' binaries, `cargo test --workspace` does).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/test-0123abcd → target/debug
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not inside a target directory", exe.display()));
    let bin = profile_dir.join(name);
    // One build at a time within this test process (cargo's lock serializes processes).
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !bin.exists() {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "-p", name, "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// Starts the agent with `--config CONFIG run`, its output appended to `log`.
pub fn start_agent(config: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(agent_bin());
    command.arg("--config").arg(config).arg("run");
    ChildGuard::spawn(command, log)
}

/// A directory of its own for one test; removed when dropped unless the test failed (then its
/// path is printed so the logs inside can be read).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pm-it-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    pub child: Option<Child>,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> ChildGuard {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        ChildGuard {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything the process has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_wait();
            status.is_some()
        });
        status
    }

    /// Sends SIGINT (what Ctrl+C sends).
    pub fn interrupt(&self) {
        signal(self.pid(), libc::SIGINT);
    }

    /// SIGINT, then the exit status and how long it took (panics after `timeout`).
    pub fn interrupt_and_wait(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.interrupt();
        let status = self.wait_timeout(timeout.max(PATIENCE)).unwrap_or_else(|| {
            panic!(
                "still running {:?} after SIGINT; output:\n{}",
                started.elapsed(),
                self.output()
            )
        });
        (status, started.elapsed())
    }

    /// Waits until its output contains `needle`; false after `timeout` or if it exited.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.output().contains(needle) || self.try_wait().is_some()
        });
        self.output().contains(needle)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    assert!(pid > 0, "no process to signal");
    // SAFETY: kill(2) has no memory-safety preconditions; pid is a child we started.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// A port that was free a moment ago (bind 127.0.0.1:0 and let go). Another process may take
/// it before we do; `Server::start` retries on a bind failure.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Options for `Server::start`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub idle_timeout_seconds: u64,
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            idle_timeout_seconds: 60,
            extra_args: Vec::new(),
        }
    }
}

/// The real server binary serving a database in a temp dir on a port of its own.
pub struct Server {
    pub dir: TempDir,
    pub port: u16,
    pub process: ChildGuard,
}

impl Server {
    pub fn start(label: &str) -> Server {
        Server::start_with(label, ServerOptions::default())
    }

    pub fn start_with(label: &str, options: ServerOptions) -> Server {
        let dir = TempDir::new(label);
        for attempt in 1..=5 {
            let port = free_port();
            let log = dir.path().join(format!("server-{attempt}.log"));
            let mut process = spawn_server(dir.path(), port, &options, &log);
            let listening = format!("listening on 127.0.0.1:{port}");
            let up = wait_until(PATIENCE, || {
                process.output().contains(&listening) || process.try_wait().is_some()
            });
            if up && process.try_wait().is_none() && process.output().contains(&listening) {
                return Server { dir, port, process };
            }
            let output = process.output();
            if output.contains("cannot listen") {
                continue; // someone took the port between our probe and the server's bind
            }
            panic!("server did not start (attempt {attempt}); output:\n{output}");
        }
        panic!("server could not bind a free port in 5 attempts");
    }

    /// Kills the server with `sig` (`libc::SIGINT`, `libc::SIGKILL`, ...) and waits for it to exit.
    pub fn stop_with(&mut self, sig: i32) -> ExitStatus {
        signal(self.process.pid(), sig);
        let status = self.process.wait_timeout(PATIENCE);
        status.unwrap_or_else(|| {
            panic!(
                "server still running {PATIENCE:?} after signal {sig}; output:\n{}",
                self.log()
            )
        })
    }

    /// Starts the server again, after its process ended, on the same port and database (so
    /// agents configured with its URL find it again); keeps trying while the port is still held.
    pub fn restart(&mut self, options: &ServerOptions) {
        assert!(
            self.process.try_wait().is_some(),
            "restart of a server that is still running"
        );
        let deadline = Instant::now() + PATIENCE;
        for attempt in 1.. {
            let log = self
                .dir
                .path()
                .join(format!("server-restart-{attempt}.log"));
            let mut process = spawn_server(self.dir.path(), self.port, options, &log);
            let listening = format!("listening on 127.0.0.1:{}", self.port);
            let up = wait_until(PATIENCE, || {
                process.output().contains(&listening) || process.try_wait().is_some()
            });
            if up && process.try_wait().is_none() && process.output().contains(&listening) {
                self.process = process;
                return;
            }
            let output = process.output();
            if output.contains("cannot listen") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            panic!("server did not restart (attempt {attempt}); output:\n{output}");
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `ws://127.0.0.1:PORT/socket/websocket`, without the query.
    pub fn socket_url(&self) -> String {
        format!("ws://127.0.0.1:{}/socket/websocket", self.port)
    }

    pub fn database(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// Runs an admin subcommand against this server's database.
    pub fn admin(&self, args: &[&str]) -> Output {
        admin(self.dir.path(), args)
    }

    /// `register-host NAME`; the token.
    pub fn register(&self, name: &str) -> String {
        register(self.dir.path(), name)
    }

    /// The `hosts` table.
    pub fn hosts(&self) -> Vec<HostRow> {
        hosts(self.dir.path())
    }

    /// The status column of host `name` (`online` / `offline` / ...).
    pub fn status(&self, name: &str) -> Option<String> {
        self.hosts()
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.status)
    }

    /// Waits until host `name` has `status`; panics with the server log otherwise.
    pub fn expect_status(&self, name: &str, status: &str) {
        let mut last = None;
        let reached = wait_until(PATIENCE, || {
            last = self.status(name);
            last.as_deref() == Some(status)
        });
        assert!(
            reached,
            "host {name} is {last:?}, not {status}, after {PATIENCE:?}; server log:\n{}",
            self.log()
        );
    }

    /// A Phoenix client connected to `/socket/websocket?vsn=2.0.0`.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// A client that has joined `host:NAME` with `token`, and the join's ref.
    pub fn joined_client(&self, name: &str, token: &str) -> Client {
        let mut client = self.client();
        let reply = client.join(name, token);
        assert_eq!(
            reply.payload["status"],
            "ok",
            "join of {name} refused ({}); server log:\n{}",
            reply.payload,
            self.log()
        );
        client
    }
}

/// Starts `serve` on DIR/db and 127.0.0.1:PORT, output appended to `log`.
fn spawn_server(dir: &Path, port: u16, options: &ServerOptions, log: &Path) -> ChildGuard {
    let mut command = Command::new(server_bin());
    command
        .args(db_args(dir))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--idle-timeout")
        .arg(options.idle_timeout_seconds.to_string())
        .args(&options.extra_args)
        .arg("serve");
    ChildGuard::spawn(command, log)
}

fn db_args(dir: &Path) -> Vec<String> {
    vec![
        "--database".into(),
        dir.join("db").display().to_string(),
        "--bcrypt-cost".into(),
        "4".into(),
    ]
}

/// Runs `proxmox-monitor-server --database DIR/db --bcrypt-cost 4 ARGS...`.
pub fn admin(dir: &Path, args: &[&str]) -> Output {
    Command::new(server_bin())
        .args(db_args(dir))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running server {args:?}: {e}"))
}

/// Registers `name` in DIR/db, checks the exact three-line output, and returns the token.
pub fn register(dir: &Path, name: &str) -> String {
    let out = admin(dir, &["register-host", name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "register-host {name} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_token_output(&stdout, &format!("Host '{name}' registered (id="))
}

/// Checks `FIRST…` / `TOKEN: …` / `Store this token NOW …` and returns the token.
pub fn parse_token_output(stdout: &str, first_line_prefix: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "expected 3 lines, got:\n{stdout}");
    assert!(
        lines[0].starts_with(first_line_prefix),
        "first line {:?} does not start with {first_line_prefix:?}",
        lines[0]
    );
    if first_line_prefix.ends_with("(id=") {
        let id = lines[0]
            .strip_prefix(first_line_prefix)
            .and_then(|rest| rest.strip_suffix(")."))
            .unwrap_or_else(|| panic!("bad first line {:?}", lines[0]));
        assert!(id.parse::<u64>().is_ok(), "id {id:?} is not a number");
    }
    let token = lines[1]
        .strip_prefix("TOKEN: ")
        .unwrap_or_else(|| panic!("second line {:?} is not `TOKEN: …`", lines[1]));
    assert!(
        token.len() >= 20 && !token.contains(char::is_whitespace),
        "implausible token {token:?}"
    );
    assert_eq!(
        lines[2],
        "Store this token NOW — it will never be shown again."
    );
    token.to_owned()
}

/// One row of the `hosts` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub name: String,
    pub status: String,
    pub last_seen: String,
    pub agent: String,
    pub proxmox: String,
}

/// Runs `hosts` against DIR/db and parses the table (columns found by the header's offsets).
pub fn hosts(dir: &Path) -> Vec<HostRow> {
    let out = admin(dir, &["hosts"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hosts failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_hosts(&stdout)
}

pub fn parse_hosts(stdout: &str) -> Vec<HostRow> {
    if stdout.starts_with("No hosts registered.") {
        return Vec::new();
    }
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    let columns = ["NAME", "STATUS", "LAST SEEN", "AGENT", "PROXMOX"];
    let starts: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .find(c)
                .unwrap_or_else(|| panic!("no {c} column in {header:?}"))
        })
        .collect();
    assert_eq!(starts[0], 0, "NAME is not the first column: {header:?}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cell = |i: usize| -> String {
                let start = starts[i].min(line.len());
                let end = starts
                    .get(i + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(start..end).unwrap_or_default().trim().to_owned()
            };
            HostRow {
                name: cell(0),
                status: cell(1),
                last_seen: cell(2),
                agent: cell(3),
                proxmox: cell(4),
            }
        })
        .collect()
}

/// What reading from the socket gave.
#[derive(Debug)]
pub enum Received {
    Frame(Frame),
    /// A text frame that is not a Phoenix message (the server should never send one).
    Text(String),
    /// A close frame, or the connection ended.
    Closed,
    /// Nothing within the timeout.
    Timeout,
}

/// A tiny blocking Phoenix Channels V2 client for tests.
pub struct Client {
    pub socket: WebSocket<TcpStream>,
    next_ref: u64,
    pub join_ref: Option<String>,
    pub topic: String,
}

impl Client {
    /// Connects to `ws://127.0.0.1:PORT/socket/websocket?vsn=2.0.0`.
    pub fn connect(port: u16) -> Client {
        Client::connect_url(&format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"))
            .unwrap_or_else(|e| panic!("connecting to port {port}: {e}"))
    }

    /// Connects to `url` (which must be on 127.0.0.1); the handshake error when refused.
    pub fn connect_url(url: &str) -> Result<Client, tungstenite::Error> {
        let rest = url.strip_prefix("ws://").expect("ws:// URL");
        let authority = rest.split('/').next().unwrap_or_default();
        let stream = TcpStream::connect(authority).expect("TCP connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (socket, _) = tungstenite::client::client_with_config(url, stream, Some(config))
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => {
                    panic!("handshake interrupted on a blocking socket")
                }
            })?;
        Ok(Client {
            socket,
            next_ref: 0,
            join_ref: None,
            topic: String::new(),
        })
    }

    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub fn send(&mut self, frame: &Frame) {
        self.send_message(Message::text(frame.encode()));
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_message(Message::text(text));
    }

    pub fn send_message(&mut self, message: Message) {
        self.socket
            .send(message)
            .unwrap_or_else(|e| panic!("sending: {e}"));
    }

    /// Sends without insisting: the server may already have closed the socket.
    pub fn try_send_message(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.socket.send(message)
    }

    /// The next message within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Received {
        let _ = self
            .socket
            .get_ref()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
        loop {
            return match self.socket.read() {
                Ok(Message::Text(text)) => match Frame::decode(text.as_str()) {
                    Ok(frame) => Received::Frame(frame),
                    Err(_) => Received::Text(text.to_string()),
                },
                Ok(Message::Close(_)) => Received::Closed,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Received::Timeout
                }
                Err(_) => Received::Closed,
            };
        }
    }

    /// The next frame; panics on anything else.
    pub fn recv_frame(&mut self) -> Frame {
        match self.recv(PATIENCE) {
            Received::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Reads until the server closes the connection; panics if it does not within `PATIENCE`.
    /// Returns the frames received before the close.
    pub fn expect_closed(&mut self) -> Vec<Frame> {
        let deadline = Instant::now() + PATIENCE;
        let mut frames = Vec::new();
        while Instant::now() < deadline {
            match self.recv(deadline.saturating_duration_since(Instant::now())) {
                Received::Frame(frame) => frames.push(frame),
                Received::Text(text) => panic!("server sent a non-frame: {text}"),
                Received::Closed => return frames,
                Received::Timeout => {}
            }
        }
        panic!("the server did not close the socket within {PATIENCE:?}; got {frames:?}");
    }

    /// Joins `host:NAME` (join_ref = ref) and returns the reply to it.
    pub fn join(&mut self, name: &str, token: &str) -> Frame {
        self.join_topic(
            &format!("host:{name}"),
            json!({"token": token, "agent_version": "it-0.0.1"}),
        )
    }

    pub fn join_topic(&mut self, topic: &str, payload: Value) -> Frame {
        let join_ref = self.next_ref();
        let frame = Frame::new(Some(&join_ref), Some(&join_ref), topic, "phx_join", payload);
        self.join_ref = Some(join_ref.clone());
        self.topic = topic.to_owned();
        self.send(&frame);
        let reply = self.recv_reply_to(&join_ref);
        assert_eq!(reply.join_ref.as_deref(), Some(join_ref.as_str()));
        assert_eq!(reply.topic, topic);
        reply
    }

    /// Pushes `event` on the joined topic; returns the message ref.
    pub fn push(&mut self, event: &str, payload: Value) -> String {
        let msg_ref = self.next_ref();
        let frame = Frame::new(
            self.join_ref.as_deref(),
            Some(&msg_ref),
            &self.topic.clone(),
            event,
            payload,
        );
        self.send(&frame);
        msg_ref
    }

    /// Sends a heartbeat and returns the reply.
    pub fn heartbeat(&mut self) -> Frame {
        let msg_ref = self.next_ref();
        self.send(&Frame::new(
            None,
            Some(&msg_ref),
            "phoenix",
            "heartbeat",
            json!({}),
        ));
        self.recv_reply_to(&msg_ref)
    }

    /// Reads frames until the `phx_reply` with `msg_ref`; panics on anything else first.
    pub fn recv_reply_to(&mut self, msg_ref: &str) -> Frame {
        let frame = self.recv_frame();
        assert_eq!(frame.event, "phx_reply", "expected a reply, got {frame:?}");
        assert_eq!(
            frame.msg_ref.as_deref(),
            Some(msg_ref),
            "reply to the wrong message: {frame:?}"
        );
        frame
    }

    /// Closes politely (close frame) and waits for the server's answer.
    pub fn close(mut self) {
        let _ = self.socket.close(None);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Received::Closed = self.recv(Duration::from_millis(200)) {
                return;
            }
        }
    }
}

/// A current RFC 3339 UTC timestamp, e.g. `2024-05-01T12:00:00Z`.
pub fn now_rfc3339() -> String {
    common::time::format_rfc3339(std::time::SystemTime::now())
}

/// One plain HTTP/1.1 request with `Connection: close`; the status and body.
pub fn http_get(port: u16, path: &str, extra_headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra_headers}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Copies the directory tree `from` to `to` (plain files and directories, as fixture trees
/// have), so a test can change a node's files without touching the fixture.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

/// A private CA and a server certificate signed by it, made with the `openssl` CLI (P-256,
/// valid 2 days, for 127.0.0.1 and localhost): for `wss://` and HTTPS tests.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM): what clients are told to trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM) and its private key (PKCS#8 PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Writes `NAME-ca.pem`, `NAME-ca.key`, `NAME.pem` and `NAME.key` into `dir`; two calls
    /// with different names give two unrelated CAs.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let (csr, ext) = (format!("{name}.csr"), format!("{name}.ext"));
        let subject = format!("/CN=proxmox-monitor test CA {name}");
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", &subject,
        ]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl(dir, &args);
        std::fs::write(
            dir.join(&ext),
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
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-set_serial",
                "1",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        Pki {
            ca: dir.join(ca),
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }
}

/// Runs the `openssl` CLI in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
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
    out.stdout
}

/// `curl` with `ARGS`, trusting the CA `ca` (when given) instead of the system's: its exit code
/// (0 for a completed transfer; 60 for a certificate it does not trust), stdout and stderr.
pub fn curl(ca: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--max-time", "15"]);
    if let Some(ca) = ca {
        // Instead of the system's CA bundle.
        command.arg("--cacert").arg(ca);
    }
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}); install it: apt-get install curl"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
