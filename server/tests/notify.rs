//! Notifications end to end: the real server delivers alert events to real receivers on
//! 127.0.0.1 — a Python `http.server` (HTTP, and HTTPS with a private CA made by the openssl
//! CLI) standing in for each service, and a real SMTP server (`aiosmtpd`, with STARTTLS and
//! authentication). An alert is raised by a host that connects and disconnects
//! (`host_offline` with `for = "1s"`) and resolved by its coming back.
//!
//! What each receiver checks is the service's documented request: method, path, headers and
//! JSON (or form) fields; the webhook's HMAC-SHA256 signature is recomputed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_common::{get, login, request, set_password};
use serde_json::Value;
use support::{wait_until, ChildGuard, Server, ServerOptions, TempDir};

/// Deliveries are retried after about a second in these tests; a few rounds fit in this.
const DELIVERY: Duration = Duration::from_secs(60);
const HOST: &str = "pve-notify";

/// `/usr/bin/python3` (where Debian's `python3-aiosmtpd` installs) when it exists.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn receiver_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/receivers")
        .join(name)
}

/// The HTTP(S) receiver (`tests/receivers/http_receiver.py`).
struct Http {
    port: u16,
    log: PathBuf,
    fail_file: PathBuf,
    _process: ChildGuard,
}

impl Http {
    fn start(dir: &Path, name: &str, tls: Option<&Pki>) -> Http {
        let port_file = dir.join(format!("{name}.port"));
        let log = dir.join(format!("{name}.jsonl"));
        let fail_file = dir.join(format!("{name}.fail"));
        let mut command = Command::new(python());
        command
            .arg(receiver_script("http_receiver.py"))
            .arg(&port_file)
            .arg(&log)
            .arg("--fail-file")
            .arg(&fail_file);
        if let Some(pki) = tls {
            command.arg("--tls").arg(&pki.cert).arg(&pki.key);
        }
        let process = ChildGuard::spawn(command, &dir.join(format!("{name}.out")));
        assert!(
            wait_until(support::PATIENCE, || port_file.exists()),
            "the HTTP receiver did not start: {}",
            process.output()
        );
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Http {
            port,
            log,
            fail_file,
            _process: process,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Accepted requests (answered 200) to `path`.
    fn accepted(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path && r["status"] == 200)
            .collect()
    }

    fn fail(&self, on: bool) {
        if on {
            std::fs::write(&self.fail_file, "down").unwrap();
        } else {
            let _ = std::fs::remove_file(&self.fail_file);
        }
    }
}

fn body(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

fn header<'a>(request: &'a Value, name: &str) -> &'a str {
    request["headers"][name].as_str().unwrap_or_default()
}

fn write_config(dir: &Path, notify: &str) -> PathBuf {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        format!(
            "[http]\nmetrics_public = true\n\
             [alerts.rules.host_offline]\nfor = \"1s\"\n\n{notify}"
        ),
    )
    .unwrap();
    set_mode(&path, 0o600);
    path
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn options(config: &Path) -> ServerOptions {
    ServerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    }
}

/// Connects and disconnects `HOST`: `host_offline` fires a second later.
fn go_offline(server: &Server, token: &str) {
    server.joined_client(HOST, token).close();
    server.expect_status(HOST, "offline");
}

fn wait_for(what: &str, server: &Server, mut cond: impl FnMut() -> bool) {
    assert!(
        wait_until(DELIVERY, &mut cond),
        "timed out waiting for {what}; server log:\n{}",
        server.log()
    );
}

fn metrics(server: &Server) -> String {
    get(server.port, "/metrics", None).body
}

fn metric(text: &str, channel: &str, result: &str) -> Option<u64> {
    let prefix = format!(
        "proxmox_monitor_notifications_total{{channel=\"{channel}\",result=\"{result}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_http_channel_gets_its_documented_request_and_the_webhook_is_signed() {
    let work = TempDir::new("notify-http");
    let http = Http::start(work.path(), "http", None);
    let secret_file = work.path().join("secret");
    std::fs::write(&secret_file, "hook-secret\n").unwrap();
    set_mode(&secret_file, 0o600);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\npublic_url = \"https://mon.example\"\ngroup_window = \"0s\"\n\
             heartbeat_url = \"{hb}\"\nheartbeat_interval = \"5s\"\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{hook}\"\n\
             secret_file = \"{secret}\"\nheaders = {{ X-Team = \"ops\" }}\n\
             [notify.channels.ntfy]\ntype = \"ntfy\"\nurl = \"{ntfy}\"\ntopic = \"pm-alerts\"\n\
             token = \"tk_ntfy\"\n\
             [notify.channels.gotify]\ntype = \"gotify\"\nurl = \"{gotify}\"\ntoken = \"gotify-app\"\n\
             [notify.channels.discord]\ntype = \"discord\"\nurl = \"{discord}\"\n\
             [notify.channels.slack]\ntype = \"slack\"\nurl = \"{slack}\"\n\
             [notify.channels.telegram]\ntype = \"telegram\"\napi_url = \"{tg}\"\n\
             bot_token = \"123:ABC\"\nchat_id = -1001\n\
             [notify.channels.pushover]\ntype = \"pushover\"\napi_url = \"{po}\"\n\
             token = \"po-app\"\nuser_key = \"po-user\"\n",
            hb = http.url("/heartbeat"),
            hook = http.url("/hook"),
            secret = secret_file.display(),
            ntfy = http.url("/ntfy"),
            gotify = http.url("/gotify"),
            discord = http.url("/discord/api/webhooks/1/x"),
            slack = http.url("/slack/services/T/B/X"),
            tg = http.url("/tg"),
            po = http.url("/po"),
        ),
    );
    let server = Server::start_with("notify-http-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    let paths = [
        "/hook",
        "/ntfy",
        "/gotify/message",
        "/discord/api/webhooks/1/x",
        "/slack/services/T/B/X",
        "/tg/bot123:ABC/sendMessage",
        "/po/1/messages.json",
    ];
    wait_for("the firing message on every channel", &server, || {
        paths.iter().all(|p| http.accepted(p).len() == 1)
    });
    let one = |path: &str| http.accepted(path).remove(0);
    for path in paths {
        assert_eq!(one(path)["method"], "POST", "{path}");
    }

    // The webhook: JSON with the alert's fields and the link, signed, with its event id.
    let hook = one("/hook");
    assert_eq!(header(&hook, "content-type"), "application/json");
    assert_eq!(header(&hook, "x-team"), "ops");
    let id = header(&hook, "x-proxmox-monitor-event-id");
    assert!(id.starts_with("notify/"), "{hook}");
    assert_eq!(
        header(&hook, "x-proxmox-monitor-signature"),
        format!(
            "sha256={}",
            hmac_sha256_hex(b"hook-secret", hook["body"].as_str().unwrap().as_bytes())
        )
    );
    let b = body(&hook);
    assert_eq!(b["id"], id);
    assert_eq!(b["status"], "critical");
    assert_eq!(b["host"], HOST);
    assert_eq!(b["link"], format!("https://mon.example/hosts/{HOST}"));
    assert_eq!(b["events"][0]["rule"], "host_offline");
    assert_eq!(b["events"][0]["event"], "firing");
    assert_eq!(b["events"][0]["severity"], "critical");
    assert!(b["events"][0]["key"]
        .as_str()
        .unwrap()
        .starts_with("alert/"));
    let title = b["title"].as_str().unwrap();
    assert!(
        title.starts_with(&format!("[CRITICAL] host_offline on {HOST}: ")),
        "{title}"
    );
    let text = b["text"].as_str().unwrap();
    assert!(text.contains("Since ") && text.contains(" UTC"), "{text}");

    // ntfy: a JSON publish to the server URL; priority 5 for critical; the token as bearer.
    let ntfy = one("/ntfy");
    assert_eq!(header(&ntfy, "authorization"), "Bearer tk_ntfy");
    let b = body(&ntfy);
    assert_eq!(b["topic"], "pm-alerts");
    assert_eq!(b["priority"], 5);
    assert_eq!(b["title"], title);
    assert_eq!(b["click"], format!("https://mon.example/hosts/{HOST}"));
    assert!(b["tags"].is_array() && b["message"].as_str().unwrap().contains("host_offline"));

    // Gotify: POST /message with the application token in X-Gotify-Key.
    let gotify = one("/gotify/message");
    assert_eq!(header(&gotify, "x-gotify-key"), "gotify-app");
    let b = body(&gotify);
    assert_eq!(
        (b["title"].as_str(), b["priority"].as_i64()),
        (Some(title), Some(8))
    );
    assert_eq!(
        b["extras"]["client::notification"]["click"]["url"],
        format!("https://mon.example/hosts/{HOST}")
    );

    // Discord: one embed, red for critical.
    let b = body(&one("/discord/api/webhooks/1/x"));
    assert_eq!(b["embeds"][0]["title"], title);
    assert_eq!(b["embeds"][0]["color"], 0xD6_3031);
    assert!(b["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .contains(HOST));

    // Slack: text plus a coloured attachment.
    let b = body(&one("/slack/services/T/B/X"));
    assert_eq!(b["text"], title);
    assert_eq!(b["attachments"][0]["color"], "#d63031");

    // Telegram: sendMessage with the chat id.
    let b = body(&one("/tg/bot123:ABC/sendMessage"));
    assert_eq!(b["chat_id"], "-1001");
    assert!(b["text"].as_str().unwrap().starts_with(title));

    // Pushover: form fields.
    let po = one("/po/1/messages.json");
    assert_eq!(
        header(&po, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: HashMap<String, String> = po["body"]
        .as_str()
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect();
    assert_eq!(form["token"], "po-app");
    assert_eq!(form["user"], "po-user");
    assert_eq!(form["title"], title);
    assert_eq!(form["priority"], "1");
    assert_eq!(form["url"], format!("https://mon.example/hosts/{HOST}"));

    // The host comes back: every channel hears it is over and how long it lasted.
    let client = server.joined_client(HOST, &token);
    wait_for("the resolved message on every channel", &server, || {
        paths.iter().all(|p| http.accepted(p).len() == 2)
    });
    let resolved = body(&http.accepted("/hook")[1]);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["events"][0]["event"], "resolved");
    let title = resolved["title"].as_str().unwrap();
    assert!(
        title.starts_with(&format!("[RESOLVED] host_offline on {HOST} is over after ")),
        "{title}"
    );
    assert!(resolved["text"].as_str().unwrap().contains("it lasted"));
    assert_eq!(body(&http.accepted("/ntfy")[1])["priority"], 3);

    // /metrics counts per channel and result; the heartbeat was called.
    let text = metrics(&server);
    for channel in [
        "hook", "ntfy", "gotify", "discord", "slack", "telegram", "pushover",
    ] {
        assert_eq!(metric(&text, channel, "sent"), Some(2), "{channel}\n{text}");
        assert_eq!(metric(&text, channel, "dead"), Some(0), "{channel}");
    }
    assert!(!http.accepted("/heartbeat").is_empty());
    assert_eq!(http.accepted("/heartbeat")[0]["method"], "GET");
    drop(client);
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn a_receiver_failing_twice_gets_exactly_one_accepted_delivery() {
    let work = TempDir::new("notify-flaky");
    let http = Http::start(work.path(), "http", None);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\nretry_base = \"1s\"\nretry_max = \"2s\"\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n",
            http.url("/flaky/hook")
        ),
    );
    let server = Server::start_with("notify-flaky-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    wait_for("an accepted delivery", &server, || {
        !http.accepted("/flaky/hook").is_empty()
    });
    // Let the server's bookkeeping settle: the metrics show the success once it is recorded.
    wait_for("the sent counter", &server, || {
        metric(&metrics(&server), "hook", "sent") == Some(1)
    });
    let all = http.requests();
    let statuses: Vec<i64> = all.iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, vec![500, 500, 200], "{all:#?}");
    // Every attempt carried the same idempotency key.
    let ids: Vec<&str> = all
        .iter()
        .map(|r| header(r, "x-proxmox-monitor-event-id"))
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let text = metrics(&server);
    assert_eq!(metric(&text, "hook", "failed"), Some(2), "{text}");
    assert_eq!(metric(&text, "hook", "dead"), Some(0));
    assert!(server.log().contains("failed (attempt 1 of 10"));
    // No further attempt follows an accepted one (the next would come after ≤ 2 s).
    go_online_and_wait_resolved(&server, &token, &http, "/flaky/hook", 2);
    let accepted_firing: Vec<Value> = http
        .accepted("/flaky/hook")
        .into_iter()
        .filter(|r| body(r)["status"] == "critical")
        .collect();
    assert_eq!(accepted_firing.len(), 1);
}

/// Joins the host again and waits until `path` accepted `n` messages in all.
fn go_online_and_wait_resolved(server: &Server, token: &str, http: &Http, path: &str, n: usize) {
    let client = server.joined_client(HOST, token);
    wait_for("the resolved message", server, || {
        http.accepted(path).len() >= n
    });
    drop(client);
}

#[test]
fn messages_pending_at_a_kill_are_delivered_after_the_restart_none_twice() {
    let work = TempDir::new("notify-kill");
    let http = Http::start(work.path(), "http", None);
    http.fail(true);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\nretry_base = \"1s\"\nretry_max = \"1s\"\n\
             max_attempts = 100\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\
             [notify.channels.second]\ntype = \"slack\"\nurl = \"{}\"\n",
            http.url("/hook"),
            http.url("/second")
        ),
    );
    let mut server = Server::start_with("notify-kill-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    // Both channels are being tried and refused.
    wait_for("refused attempts on both channels", &server, || {
        let r = http.requests();
        ["/hook", "/second"]
            .iter()
            .all(|p| r.iter().filter(|x| x["path"] == *p).count() >= 2)
    });
    server.stop_with(libc::SIGKILL);
    assert!(http.accepted("/hook").is_empty() && http.accepted("/second").is_empty());
    http.fail(false);
    server.restart(&options(&config));
    wait_for("delivery after the restart", &server, || {
        http.accepted("/hook").len() == 1 && http.accepted("/second").len() == 1
    });
    // The host comes back: the resolved events follow; the firing ones are not sent again.
    go_online_and_wait_resolved(&server, &token, &http, "/hook", 2);
    wait_for(
        "the resolved message on the second channel",
        &server,
        || http.accepted("/second").len() == 2,
    );
    let hook = http.accepted("/hook");
    let ids: Vec<&str> = hook
        .iter()
        .map(|r| header(r, "x-proxmox-monitor-event-id"))
        .collect();
    assert_ne!(ids[0], ids[1]);
    let statuses: Vec<Value> = hook.iter().map(|r| body(r)["status"].clone()).collect();
    assert_eq!(statuses, vec!["critical", "resolved"]);
    // Every event was accepted once per channel: the outbox has two events, each delivered.
    let out = server.admin(&["alert-events", "--json"]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
}

/// A CA and a server certificate for 127.0.0.1 made with the openssl CLI.
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
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=proxmox-monitor notify test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
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

#[test]
fn https_with_a_private_ca_and_dead_letters_on_the_page_and_in_metrics() {
    let work = TempDir::new("notify-tls");
    let pki = make_pki(work.path());
    let https = Http::start(work.path(), "https", Some(&pki));
    let url = format!("https://127.0.0.1:{}/hook", https.port);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\nmax_attempts = 1\n\
             [notify.channels.trusted]\ntype = \"webhook\"\nurl = \"{url}\"\nca_file = \"{ca}\"\n\
             [notify.channels.untrusted]\ntype = \"webhook\"\nurl = \"{url}\"\n",
            ca = pki.ca.display()
        ),
    );
    // notify-test on the command line: through the private CA it works; without, TLS fails.
    let config_arg = config.display().to_string();
    let dir = TempDir::new("notify-tls-cli");
    let test = |channel: &str| {
        support::admin(
            dir.path(),
            &["--config", &config_arg, "notify-test", channel],
        )
    };
    let ok = test("trusted");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("sent through channel 'trusted'"));
    let received = https.accepted("/hook");
    assert_eq!(received.len(), 1);
    assert_eq!(body(&received[0])["test"], true);
    let bad = test("untrusted");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("notify-test untrusted") && err.contains("TLS: invalid peer certificate"),
        "{err}"
    );
    let unknown = test("nope");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("trusted, untrusted"));

    // An alert: accepted through the CA; the other channel is dead-lettered at once
    // (max_attempts = 1), listed on the Alerts page and counted in /metrics.
    let server = Server::start_with("notify-tls-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    wait_for("the dead letter", &server, || {
        let text = metrics(&server);
        metric(&text, "untrusted", "dead") == Some(1) && metric(&text, "trusted", "sent") == Some(1)
    });
    assert!(server.log().contains("dead-lettered after 1 attempts"));
    assert!(set_password(&server, http_common::PASSWORD)
        .status
        .success());
    let cookie = login(server.port);
    let page = get(server.port, "/alerts", Some(&cookie)).body;
    let dead = page.split("id=\"notify-dead\"").nth(1).expect(&page);
    assert!(dead.contains("untrusted") && dead.contains("TLS"), "{dead}");
    assert!(page.contains("data-action=\"notify-test\""));
}

#[test]
fn the_dashboard_sends_a_test_only_with_its_anti_forgery_token() {
    let work = TempDir::new("notify-button");
    let http = Http::start(work.path(), "http", None);
    let config = write_config(
        work.path(),
        &format!(
            "[notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n",
            http.url("/hook")
        ),
    );
    let server = Server::start_with("notify-button-server", options(&config));
    assert!(set_password(&server, http_common::PASSWORD)
        .status
        .success());
    let cookie = login(server.port);
    let page = get(server.port, "/alerts", Some(&cookie)).body;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect(&page)
        .to_owned();
    let post = |body: &str| {
        request(
            server.port,
            "POST",
            "/alerts/notify-test",
            &[
                ("Cookie", cookie.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &format!("http://127.0.0.1:{}", server.port)),
            ],
            body,
        )
    };
    assert_eq!(post("channel=hook").status, 403);
    assert!(http.requests().is_empty());
    let reply = post(&format!("csrf={csrf}&channel=hook"));
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(http.accepted("/hook").len(), 1);
    assert_eq!(body(&http.accepted("/hook")[0])["test"], true);
    let page = get(server.port, "/alerts", Some(&cookie)).body;
    let row = page.split("data-channel=\"hook\"").nth(1).expect(&page);
    assert!(row.contains(">ok<"), "{row}");
}

/// The real SMTP server (`tests/receivers/smtp_receiver.py`, aiosmtpd).
struct Smtp {
    port: u16,
    log: PathBuf,
    _process: ChildGuard,
}

impl Smtp {
    fn start(dir: &Path, name: &str, extra: &[String]) -> Smtp {
        let port = support::free_port();
        let log = dir.join(format!("{name}.jsonl"));
        let ready = dir.join(format!("{name}.ready"));
        let mut command = Command::new(python());
        command
            .arg(receiver_script("smtp_receiver.py"))
            .arg(port.to_string())
            .arg(&log)
            .arg(&ready)
            .args(extra);
        let mut process = ChildGuard::spawn(command, &dir.join(format!("{name}.out")));
        let up = wait_until(support::PATIENCE, || {
            ready.exists() || process.try_wait().is_some()
        });
        assert!(
            up && ready.exists(),
            "the SMTP server did not start (is python3-aiosmtpd installed? .ci/run installs \
             it): {}",
            process.output()
        );
        Smtp {
            port,
            log,
            _process: process,
        }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The mail's headers (unfolded) and body.
fn parse_mail(data: &str) -> (HashMap<String, String>, String) {
    let data = data.replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap();
    let mut headers = HashMap::new();
    let mut last = String::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = headers.get_mut(&last) {
                let v: &mut String = v;
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            last = k.to_ascii_lowercase();
            headers.insert(last.clone(), v.trim().to_owned());
        }
    }
    (headers, body.to_owned())
}

#[test]
fn email_reaches_a_real_smtp_server_with_starttls_and_auth_and_in_plain() {
    let work = TempDir::new("notify-smtp");
    let pki = make_pki(work.path());
    let secure = Smtp::start(
        work.path(),
        "secure",
        &[
            "--starttls".into(),
            pki.cert.display().to_string(),
            pki.key.display().to_string(),
            "--auth".into(),
            "monitor".into(),
            "s3cret pass".into(),
        ],
    );
    let plain = Smtp::start(work.path(), "plain", &[]);
    let password = work.path().join("smtp-password");
    std::fs::write(&password, "s3cret pass\n").unwrap();
    set_mode(&password, 0o640);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\npublic_url = \"https://mon.example\"\n\
             [notify.channels.mail]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {secure}\nsecurity = \"starttls\"\nca_file = \"{ca}\"\n\
             username = \"monitor\"\npassword_file = \"{password}\"\n\
             from = \"Proxmox Monitor <monitor@example.com>\"\n\
             to = [\"ops@example.com\", \"oncall@example.com\"]\n\
             [notify.channels.relay]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {plain}\nsecurity = \"plain\"\nfrom = \"monitor@example.com\"\n\
             to = \"root@example.com\"\n",
            secure = secure.port,
            plain = plain.port,
            ca = pki.ca.display(),
            password = password.display(),
        ),
    );
    let server = Server::start_with("notify-smtp-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    wait_for("both mails", &server, || {
        secure.mails().len() == 1 && plain.mails().len() == 1
    });
    let mail = &secure.mails()[0];
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["authenticated"], true);
    assert_eq!(mail["mail_from"], "monitor@example.com");
    let mut to: Vec<String> = mail["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, vec!["oncall@example.com", "ops@example.com"]);
    let (headers, text) = parse_mail(mail["data"].as_str().unwrap());
    assert!(
        headers["subject"].starts_with(&format!("[CRITICAL] host_offline on {HOST}: ")),
        "{headers:?}"
    );
    assert!(headers["message-id"].starts_with("<notify."), "{headers:?}");
    assert!(
        text.contains(&format!("CRITICAL host_offline on {HOST}")),
        "{text}"
    );
    assert!(text.contains("Since "), "{text}");
    assert!(
        text.contains(&format!("https://mon.example/hosts/{HOST}")),
        "{text}"
    );
    let relayed = &plain.mails()[0];
    assert_eq!(relayed["tls"], false);
    assert_eq!(relayed["rcpt_tos"][0], "root@example.com");

    go_online_and_wait(&server, &token, || secure.mails().len() == 2);
    let (headers, text) = parse_mail(secure.mails()[1]["data"].as_str().unwrap());
    assert!(
        headers["subject"].starts_with("[RESOLVED] host_offline"),
        "{headers:?}"
    );
    assert!(text.contains("it lasted"), "{text}");
}

fn go_online_and_wait(server: &Server, token: &str, mut cond: impl FnMut() -> bool) {
    let client = server.joined_client(HOST, token);
    wait_for("the resolved mail", server, &mut cond);
    drop(client);
}

#[test]
fn a_config_with_secrets_readable_by_others_is_refused_and_says_how_to_fix_it() {
    let work = TempDir::new("notify-perm");
    let config = write_config(
        work.path(),
        "[notify.channels.phone]\ntype = \"ntfy\"\ntopic = \"t\"\ntoken = \"tk_secret\"\n",
    );
    let arg = config.display().to_string();
    let hosts = || support::admin(work.path(), &["--config", &arg, "hosts"]);
    assert!(hosts().status.success());
    set_mode(&config, 0o644);
    let out = hosts();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by every user")
            && err.contains("chmod 0640")
            && err.contains("notify.channels.phone.token"),
        "{err}"
    );
    // Without secrets in it, the file may be readable by all; a secret file may not.
    let token = work.path().join("token");
    std::fs::write(&token, "tk_secret\n").unwrap();
    set_mode(&token, 0o644);
    std::fs::write(
        &config,
        format!(
            "[notify.channels.phone]\ntype = \"ntfy\"\ntopic = \"t\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();
    let out = hosts();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("token_file"), "{err}");
    set_mode(&token, 0o600);
    assert!(hosts().status.success());
}

/// `alerts --json`: the id of `host`'s open alert of `rule`.
fn alert_id(server: &Server, host: &str, rule: &str) -> Option<i64> {
    let out = server.admin(&["alerts", "--json"]);
    let body: Value = serde_json::from_slice(&out.stdout).ok()?;
    body["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["host"] == host && a["rule"] == rule && a["state"] == "firing")
        .and_then(|a| a["id"].as_i64())
}

#[test]
fn unacknowledged_alerts_escalate_and_acknowledged_ones_do_not() {
    let work = TempDir::new("notify-escalate");
    let http = Http::start(work.path(), "http", None);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\n\
             [notify.channels.team]\ntype = \"webhook\"\nurl = \"{team}\"\n\
             [notify.channels.pager]\ntype = \"webhook\"\nurl = \"{pager}\"\n\
             [[notify.routes]]\nhosts = [\"esc-fast\"]\nchannels = [\"team\"]\n\
             escalate_after = \"2s\"\nescalate_to = [\"pager\"]\n\
             [[notify.routes]]\nhosts = [\"esc-acked\"]\nchannels = [\"team\"]\n\
             escalate_after = \"15s\"\nescalate_to = [\"pager\"]\n",
            team = http.url("/team"),
            pager = http.url("/pager"),
        ),
    );
    let server = Server::start_with("notify-escalate-server", options(&config));
    let fast = server.register("esc-fast");
    let acked = server.register("esc-acked");
    for (name, token) in [("esc-fast", &fast), ("esc-acked", &acked)] {
        server.joined_client(name, token).close();
        server.expect_status(name, "offline");
    }
    // Both reach the team at once.
    wait_for("both alerts on the team channel", &server, || {
        http.accepted("/team").len() == 2
    });
    // One is acknowledged well before its escalation is due.
    let id = alert_id(&server, "esc-acked", "host_offline").expect("the alert's id");
    let out = server.admin(&["ack", &id.to_string(), "--by", "tester"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The other is escalated to the pager after 2 s, marked as such.
    wait_for("the escalation", &server, || {
        http.accepted("/pager").len() == 1
    });
    let page = body(&http.accepted("/pager")[0]);
    assert_eq!(page["escalation"], true);
    assert_eq!(page["host"], "esc-fast");
    assert!(
        page["title"].as_str().unwrap().contains("(escalated)"),
        "{page}"
    );
    // The acknowledged one's escalation comes due and is dropped, not sent.
    wait_for("the dropped escalation", &server, || {
        metric(&metrics(&server), "pager", "dropped") == Some(1)
    });
    assert_eq!(http.accepted("/pager").len(), 1);
    // Its end reaches the pager too, since the pager heard of its start.
    let client = server.joined_client("esc-fast", &fast);
    wait_for("the resolved message on the pager", &server, || {
        http.accepted("/pager").len() == 2
    });
    assert_eq!(body(&http.accepted("/pager")[1])["status"], "resolved");
    drop(client);
}

#[test]
fn a_slow_receiver_holds_up_neither_ingestion_nor_the_pages() {
    let work = TempDir::new("notify-slow");
    let http = Http::start(work.path(), "http", None);
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\ntimeout = \"60s\"\n\
             [notify.channels.slow]\ntype = \"webhook\"\nurl = \"{}\"\n",
            http.url("/slow/hook")
        ),
    );
    let server = Server::start_with("notify-slow-server", options(&config));
    let token = server.register(HOST);
    let other = server.register("pve-busy");
    go_offline(&server, &token);
    wait_for(
        "the delivery thread inside the slow request",
        &server,
        || http.requests().iter().any(|r| r["status"] == 0),
    );
    // While the receiver sits on the request (20 s), samples are stored and acknowledged
    // and the dashboard answers, as ever.
    let mut client = server.joined_client("pve-busy", &other);
    let now = common::time::now_unix();
    for i in 0..5 {
        http_common::push(
            &mut client,
            "metric:fast",
            now + i,
            &http_common::golden("fast"),
        );
    }
    assert_eq!(get(server.port, "/healthz", None).status, 200);
    assert!(
        http.accepted("/slow/hook").is_empty(),
        "the receiver answered already: the test proved nothing"
    );
}

#[test]
fn during_quiet_hours_a_resolved_message_waits_for_their_end_but_a_critical_one_does_not() {
    let work = TempDir::new("notify-quiet");
    let http = Http::start(work.path(), "http", None);
    // Quiet hours from the start of this minute (UTC) until 30 s from now.
    let now = common::time::now_unix();
    let into_minute = now.rem_euclid(60);
    let start = now - into_minute;
    let end = now + 30;
    let hhmm = format!(
        "{:02}:{:02}",
        start.rem_euclid(86400) / 3600,
        start.rem_euclid(3600) / 60
    );
    let config = write_config(
        work.path(),
        &format!(
            "[notify]\ngroup_window = \"0s\"\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[notify.routes]]\nchannels = [\"hook\"]\n\
             quiet_hours = {{ start = \"{hhmm}\", duration = \"{}s\", timezone = \"UTC\" }}\n",
            http.url("/hook"),
            end - start
        ),
    );
    let server = Server::start_with("notify-quiet-server", options(&config));
    let token = server.register(HOST);
    go_offline(&server, &token);
    // Critical: at once, quiet hours or not.
    wait_for("the critical message", &server, || {
        http.accepted("/hook").len() == 1
    });
    assert!(
        common::time::now_unix() < end,
        "the machine was too slow for the quiet hours of this test"
    );
    let client = server.joined_client(HOST, &token);
    wait_for("the resolved message held", &server, || {
        server.log().contains("waits for the end of quiet hours")
    });
    wait_for(
        "the resolved message after the quiet hours",
        &server,
        || http.accepted("/hook").len() == 2,
    );
    let resolved = &http.accepted("/hook")[1];
    assert_eq!(body(resolved)["status"], "resolved");
    #[allow(clippy::cast_precision_loss)]
    let end_f = end as f64;
    assert!(
        resolved["received_at"].as_f64().unwrap() >= end_f,
        "sent before the quiet hours ended: {resolved}"
    );
    drop(client);
}

#[test]
fn a_hosts_alerts_within_the_window_go_out_as_one_message() {
    let work = TempDir::new("notify-group");
    let http = Http::start(work.path(), "http", None);
    let path = work.path().join("server.toml");
    std::fs::write(
        &path,
        format!(
            "[alerts.rules.cpu_high]\nfor = \"0s\"\n[alerts.rules.pressure_high]\nfor = \"0s\"\n\
             [notify]\ngroup_window = \"3s\"\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n",
            http.url("/hook")
        ),
    )
    .unwrap();
    let server = Server::start_with("notify-group-server", options(&path));
    let token = server.register(HOST);
    let mut client = server.joined_client(HOST, &token);
    // One sample, two problems: CPU at 99.5 % and CPU pressure at 95 %, both critical.
    let mut data = http_common::golden("fast");
    data["cpu_percent"] = serde_json::json!(99.5);
    data["pressure"]["cpu_some"] = serde_json::json!(95.0);
    http_common::push(&mut client, "metric:fast", common::time::now_unix(), &data);
    wait_for("the grouped message", &server, || {
        !http.accepted("/hook").is_empty()
    });
    let message = body(&http.accepted("/hook")[0]);
    let rules: Vec<&str> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 2, "{message}");
    assert!(
        rules.contains(&"cpu_high") && rules.contains(&"pressure_high"),
        "{rules:?}"
    );
    assert_eq!(
        message["title"],
        format!("[CRITICAL] 2 alerts on {HOST} (2 firing, 0 resolved)")
    );
    assert_eq!(http.accepted("/hook").len(), 1);
}

#[test]
fn a_warning_held_by_quiet_hours_goes_out_at_their_end_only_if_it_still_fires() {
    let work = TempDir::new("notify-quiet-warning");
    let http = Http::start(work.path(), "http", None);
    // Quiet hours from the start of this minute (UTC) until 30 s from now.
    let now = common::time::now_unix();
    let start = now - now.rem_euclid(60);
    let end = now + 30;
    let hhmm = format!(
        "{:02}:{:02}",
        start.rem_euclid(86400) / 3600,
        start.rem_euclid(3600) / 60
    );
    let path = work.path().join("server.toml");
    std::fs::write(
        &path,
        format!(
            "[http]\nmetrics_public = true\n[alerts.rules.cpu_high]\nfor = \"0s\"\n\
             [notify]\ngroup_window = \"0s\"\n\
             [notify.channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[notify.routes]]\nchannels = [\"hook\"]\n\
             quiet_hours = {{ start = \"{hhmm}\", duration = \"{}s\", timezone = \"UTC\" }}\n",
            http.url("/hook"),
            end - start
        ),
    )
    .unwrap();
    let server = Server::start_with("notify-quiet-warning-server", options(&path));
    // Two hosts at 95 % CPU: a warning each, held.
    let mut clients = Vec::new();
    for name in ["still-busy", "calmed-down"] {
        let token = server.register(name);
        let mut client = server.joined_client(name, &token);
        let mut data = http_common::golden("fast");
        data["cpu_percent"] = serde_json::json!(95.0);
        http_common::push(&mut client, "metric:fast", common::time::now_unix(), &data);
        clients.push(client);
    }
    wait_for("both warnings held", &server, || {
        server
            .log()
            .matches("firing/warning to hook waits for the end of quiet hours")
            .count()
            == 2
    });
    assert!(
        common::time::now_unix() < end,
        "the machine was too slow for the quiet hours of this test"
    );
    // One calms down while it is quiet: its alert resolves (on a sample of a later second:
    // one of the same second as the last is not newer).
    let pushed = common::time::now_unix();
    assert!(wait_until(
        Duration::from_secs(3),
        || common::time::now_unix() > pushed
    ));
    let mut data = http_common::golden("fast");
    data["cpu_percent"] = serde_json::json!(10.0);
    http_common::push(
        &mut clients[1],
        "metric:fast",
        common::time::now_unix(),
        &data,
    );
    wait_for("the resolved event", &server, || {
        server
            .log()
            .contains("alert resolved [warning] cpu_high on calmed-down")
    });
    // At the end: the one still firing is sent; the other's firing and resolved are dropped.
    wait_for("the held warning", &server, || {
        !http.accepted("/hook").is_empty()
    });
    wait_for("the dropped messages", &server, || {
        metric(&metrics(&server), "hook", "dropped").is_some_and(|n| n >= 1)
    });
    let sent = http.accepted("/hook");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let message = body(&sent[0]);
    assert_eq!(message["host"], "still-busy");
    assert_eq!(message["status"], "warning");
    #[allow(clippy::cast_precision_loss)]
    let end_f = end as f64;
    assert!(sent[0]["received_at"].as_f64().unwrap() >= end_f);
    drop(clients);
}
