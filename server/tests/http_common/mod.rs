//! Shared by the HTTP and browser tests: a server with a dashboard password, raw HTTP requests
//! with cookies, login, and fixture data pushed over the agent socket (the golden samples of
//! `fixtures/protocol/`, varied over an hour of history), a server speaking TLS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use testkit::{server_bin, ChildGuard, Client, Pki, Server, ServerOptions, PATIENCE};

pub const PASSWORD: &str = "correct horse battery staple";

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text, gunzipped when it came with `Content-Encoding: gzip`.
    pub body: String,
    /// Bytes of the body on the wire.
    pub wire_bytes: usize,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let gzipped = headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v == "gzip");
    let text = if gzipped {
        let mut plain = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut plain)
            .unwrap_or_else(|e| panic!("{path}: a gzip body that does not gunzip: {e}"));
        plain
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    Reply {
        status,
        headers,
        body: text,
        wire_bytes: body.len(),
    }
}

pub fn get(port: u16, path: &str, cookie: Option<&str>) -> Reply {
    match cookie {
        Some(c) => request(port, "GET", path, &[("Cookie", c)], ""),
        None => request(port, "GET", path, &[], ""),
    }
}

/// Runs `set-password` with `password` on stdin; its output.
pub fn set_password(server: &Server, password: &str) -> std::process::Output {
    let mut child = Command::new(server_bin())
        .arg("--database")
        .arg(server.database())
        .args(["--bcrypt-cost", "4", "set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running set-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Posts the login form; the reply.
pub fn post_login(port: u16, username: &str, password: &str) -> Reply {
    let body = format!(
        "username={}&password={}&next=%2F",
        form_encode(username),
        form_encode(password)
    );
    request(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    )
}

/// Logs in as admin; the `Cookie` header value for later requests.
pub fn login(port: u16) -> String {
    let reply = post_login(port, "admin", PASSWORD);
    assert_eq!(reply.status, 303, "login failed: {reply:?}");
    let set_cookie = reply.header("set-cookie").expect("a session cookie");
    set_cookie.split(';').next().unwrap().to_owned()
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `data` of a golden `fixtures/protocol/metric_KIND.json` frame.
pub fn golden(kind: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/protocol")
        .join(format!("metric_{kind}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let frame: Value = serde_json::from_str(&text).unwrap();
    frame[4]["data"].clone()
}

/// Pushes `event` with `data` taken at `at` (Unix seconds) and checks the `ok` reply.
pub fn push(client: &mut Client, event: &str, at: i64, data: &Value) {
    let collected_at = common::time::format_rfc3339(common::time::from_unix_seconds(at));
    let msg_ref = client.push(event, json!({"collected_at": collected_at, "data": data}));
    let reply = client.recv_reply_to(&msg_ref);
    assert_eq!(reply.payload["status"], "ok", "push refused: {reply:?}");
}

/// A guest name and tags that would run script if a page forgot to escape them.
pub const HOSTILE_GUEST_NAME: &str = "<script>alert('guest')</script>";
pub const HOSTILE_TAG: &str = "<img src=x onerror=alert(1)>";

/// Joins as `name` and pushes an hour of fast samples (one a minute, values varying like a
/// working day), then one medium sample (pool `health`) and one slow sample. The golden
/// samples are the base; guest 100 is renamed to `HOSTILE_GUEST_NAME`.
pub fn push_history(server: &Server, name: &str, token: &str, pool_health: &str) -> Client {
    let mut client = server.joined_client(name, token);
    let now = common::time::now_unix();
    let base = golden("fast");
    for minute in (0..60).rev() {
        let at = now - minute * 60;
        let phase = (minute as f64) / 9.0;
        let mut data = base.clone();
        let cpu = 25.0 + 20.0 * phase.sin() + (minute % 7) as f64;
        data["cpu_percent"] = json!(cpu);
        data["cpu_user_percent"] = json!(cpu * 0.6);
        data["cpu_system_percent"] = json!(cpu * 0.3);
        data["cpu_iowait_percent"] = json!(cpu * 0.1);
        data["load1"] = json!(1.0 + phase.cos().abs() * 2.0);
        data["mem_used_without_arc_bytes"] = json!(8_394_481_664_i64 + minute * 40_000_000);
        data["net"][0]["rx_bytes_per_s"] = json!(1_000_000.0 * (1.5 + phase.sin()));
        data["net"][0]["tx_bytes_per_s"] = json!(400_000.0 * (1.5 + phase.cos()));
        data["disks"][0]["write_bytes_per_s"] = json!(2_048_000.0 * (1.2 + phase.sin()));
        data["guests"][0]["name"] = json!(HOSTILE_GUEST_NAME);
        data["guests"][0]["cpu_percent"] = json!(cpu * 1.5);
        push(&mut client, "metric:fast", at, &data);
    }
    let mut medium = golden("medium");
    medium["pools"][0]["health"] = json!(pool_health);
    if pool_health != "ONLINE" {
        medium["pools"][0]["status_details"] = json!(
            "  pool: rpool\n state: DEGRADED\nstatus: One or more devices could not be used."
        );
    }
    medium["guests"][0]["name"] = json!(HOSTILE_GUEST_NAME);
    medium["guests"][0]["tags"] = json!([HOSTILE_TAG, "prod"]);
    push(&mut client, "metric:medium", now, &medium);
    push(&mut client, "metric:slow", now, &golden("slow"));
    client
}

/// Waits until the server shows every host in `names` (a host registered while the server
/// runs comes into its memory within a moment: the roster watch), and returns the list.
pub fn wait_for_hosts(port: u16, cookie: &str, names: &[&str]) -> Value {
    wait_for_json(port, "/api/hosts", cookie, |body| {
        let shown: Vec<&str> = body["hosts"]
            .as_array()
            .map(|hosts| hosts.iter().filter_map(|h| h["name"].as_str()).collect())
            .unwrap_or_default();
        names.iter().all(|n| shown.contains(n))
    })
}

/// Waits until `check` holds for the JSON of `GET path`; panics with the last reply otherwise.
pub fn wait_for_json(port: u16, path: &str, cookie: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = testkit::wait_until(PATIENCE, || {
        let reply = get(port, path, Some(cookie));
        if reply.status != 200 {
            return false;
        }
        last = reply.json();
        check(&last)
    });
    assert!(ok, "GET {path} never satisfied the check; last: {last:#}");
    last
}

/// How long tests wait for a real agent's first samples.
pub const AGENT_PATIENCE: Duration = Duration::from_secs(30);

/// Starts the real agent as host `name` reading the fixture node `fixtures/pve-node`, sampling
/// every second.
pub fn start_agent(server: &Server, name: &str, token: &str) -> ChildGuard {
    let dir = server.dir.path().join(format!("agent-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"{}\"\ntoken = \"{token}\"\nhost_id = \"{name}\"\nroot = \"{}\"\n\
             state_dir = \"{}\"\n[intervals]\nfast_seconds = 1\nmedium_seconds = 2\nslow_seconds = 3\n",
            server.socket_url(),
            root.display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    testkit::start_agent(&config, &dir.join("agent.log"))
}

/// A server speaking TLS with `pki`'s pair, copied to `cert.pem` and `key.pem` in `files`
/// (where a test may replace them before a SIGHUP); `extra` is added to its config.
pub fn tls_server(label: &str, files: &Path, pki: &Pki, extra: &str) -> Server {
    std::fs::copy(&pki.cert, files.join("cert.pem")).unwrap();
    std::fs::copy(&pki.key, files.join("key.pem")).unwrap();
    let config = files.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
            files.join("cert.pem").display(),
            files.join("key.pem").display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        label,
        ServerOptions {
            extra_args: vec!["--config".into(), config.display().to_string()],
            ..ServerOptions::default()
        },
    );
    assert!(
        server.log().contains("(HTTPS; agent socket wss://"),
        "{}",
        server.log()
    );
    server
}
