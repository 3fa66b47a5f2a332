//! The dashboard in a real browser: Debian's `chromium --headless`, driven over the Chrome
//! DevTools Protocol (a WebSocket, spoken with tungstenite), logs in through the login form,
//! loads `/`, `/hosts/NAME` and `/alerts`, checks the rendered DOM (hosts, status badges, chart
//! SVGs, escaped guest names, sorting, live refresh, an alert acknowledged and silenced from
//! the page) and writes screenshots to `target/screenshots/` (desktop and 390 px phone width)
//! for people to look at. A second test serves HTTPS with a private CA that chromium trusts
//! through an NSS database (`certutil`) and adds, installs, rotates and removes a host through
//! the "Manage hosts" pages.
//!
//! Without chromium the test is skipped with a note — unless `PM_REQUIRE_BROWSER=1` (CI),
//! where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use http_common::*;
use serde_json::{json, Value};
use support::{server_bin, wait_until, ChildGuard, Pki, Server, TempDir, PATIENCE};
use tungstenite::{Message, WebSocket};

/// The first of these on `PATH`.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A headless chromium and a DevTools connection to its page.
struct Browser {
    socket: WebSocket<TcpStream>,
    next_id: u64,
    // Dropped after the socket: kill the browser, then remove its profile.
    _process: ChildGuard,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromium; with `home`, its `HOME` (where it finds the NSS database
    /// `.pki/nssdb` of the certificate authorities it trusts besides the system's).
    fn launch(binary: &Path, home: Option<&Path>) -> Browser {
        let profile = TempDir::new("chromium-profile");
        let mut command = Command::new(binary);
        if let Some(home) = home {
            command.env("HOME", home);
        }
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank");
        let process = ChildGuard::spawn(command, &profile.path().join("chromium.log"));
        // Chromium picks a free port and writes it to DevToolsActivePort in the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let mut port = 0u16;
        let started = wait_until(Duration::from_secs(30), || {
            port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
                .unwrap_or(0);
            port != 0
        });
        assert!(
            started,
            "chromium did not start; log:\n{}",
            process.output()
        );
        let mut page_url = String::new();
        let found = wait_until(PATIENCE, || {
            let (status, body) = support::http_get(port, "/json/list", "");
            let targets: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            page_url = targets
                .as_array()
                .and_then(|list| list.iter().find(|t| t["type"] == "page"))
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .unwrap_or_default()
                .to_owned();
            status == 200 && !page_url.is_empty()
        });
        assert!(found, "no page target in chromium");
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let (socket, _) = tungstenite::client::client(page_url.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket {page_url}: {e}"));
        let mut browser = Browser {
            socket,
            next_id: 0,
            _process: process,
            _profile: profile,
        };
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    /// Sends a DevTools command and returns its `result` (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(e) => panic!("{method}: DevTools connection: {e}"),
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method} failed: {reply}");
                return reply["result"].clone();
            }
        }
        panic!("{method}: no reply within {PATIENCE:?}");
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression} threw: {:#}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is `true` in the page.
    fn wait_for(&mut self, expression: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(expression) == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page never satisfied {expression}; it shows:\n{}",
                self.eval("document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Loads `url` and waits until the page is complete at `expected_path`.
    fn open(&mut self, url: &str, expected_path: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            &format!(
                "document.readyState === 'complete' && location.pathname === {}",
                json!(expected_path)
            ),
            PATIENCE,
        );
    }

    /// A PNG of the whole page at `width` CSS pixels (phone-like when `mobile`).
    fn screenshot(&mut self, path: &Path, width: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        // Let the layout settle at the new width.
        self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))");
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .as_f64()
            .unwrap_or(900.0);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        self.call("Emulation.clearDeviceMetricsOverride", json!({}));
    }
}

/// `target/screenshots/` of the target directory the server binary was built in.
fn screenshot_dir() -> PathBuf {
    let bin = server_bin();
    // target/debug/proxmox-monitor-server → target
    bin.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("target"))
        .join("screenshots")
}

/// The browser to test with; `None` (after a note) when there is none and none is required.
fn browser_or_skip() -> Option<PathBuf> {
    let found = find_browser();
    if found.is_none() {
        assert!(
            std::env::var("PM_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "PM_REQUIRE_BROWSER=1 but none of {BROWSERS:?} is on PATH (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium to run this test)");
    }
    found
}

#[test]
fn dashboard_renders_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };

    // Four hosts: a real agent reading the fixture node, an hour of pushed history with a
    // degraded pool and hostile guest names, one that went offline, one never connected.
    let server = Server::start("browser");
    assert!(set_password(&server, PASSWORD).status.success());
    let token1 = server.register("pve1");
    let token2 = server.register("pve2");
    let token3 = server.register("pve3");
    server.register("pve4");
    let _agent = start_agent(&server, "pve1", &token1);
    let _pve2 = push_history(&server, "pve2", &token2, "DEGRADED");
    push_history(&server, "pve3", &token3, "ONLINE").close();
    server.expect_status("pve3", "offline");
    let cookie = login(server.port);
    wait_for_hosts(server.port, &cookie, &["pve1", "pve2", "pve3", "pve4"]);
    wait_for_json(server.port, "/api/hosts/pve1", &cookie, |host| {
        host["status"] == "online" && !host["medium"].is_null() && !host["slow"].is_null()
    });

    let mut browser = Browser::launch(&binary, None);
    let base = format!("http://127.0.0.1:{}", server.port);

    // Not logged in: the dashboard sends the browser to the login form.
    browser.open(&format!("{base}/"), "/login");
    browser.eval(&format!(
        "document.querySelector('input[name=password]').value = {}; \
         document.querySelector('form.login').submit(); true",
        json!(PASSWORD)
    ));
    browser.wait_for(
        "location.pathname === '/' && document.readyState === 'complete' && \
         document.querySelectorAll('article.host').length > 0",
        PATIENCE,
    );
    // Sparklines come when their card is in view (the page script fetches them).
    browser.wait_for(
        "document.querySelectorAll('article.host[data-host=pve2] svg.spark').length === 2",
        PATIENCE,
    );

    // The index: every host, its badge, offline and degraded hosts marked.
    let cards = browser.eval(
        "Array.from(document.querySelectorAll('article.host')).map(c => ({
            name: c.getAttribute('data-host'),
            badge: c.querySelector('.badge').textContent,
            class: c.className,
            sparks: c.querySelectorAll('svg.spark').length,
        }))",
    );
    let cards = cards.as_array().unwrap();
    let card = |name: &str| {
        cards
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no card for {name}: {cards:#?}"))
    };
    assert_eq!(cards.len(), 4, "{cards:#?}");
    assert_eq!(card("pve1")["badge"], "online");
    assert_eq!(card("pve2")["badge"], "online");
    assert_eq!(card("pve3")["badge"], "offline");
    assert_eq!(card("pve4")["badge"], "never connected");
    assert!(card("pve2")["class"]
        .as_str()
        .unwrap()
        .contains("is-degraded"));
    assert!(card("pve3")["class"]
        .as_str()
        .unwrap()
        .contains("is-offline"));
    assert_eq!(card("pve2")["sparks"], 2);
    let text = browser.eval("document.querySelector('article.host[data-host=pve3]').innerText");
    assert!(text.as_str().unwrap().contains("offline since"), "{text}");
    assert_eq!(
        browser.eval("document.querySelectorAll('main script').length"),
        0
    );
    // Problems first, worst first: offline pve3, then pve2 with its degraded pool.
    assert_eq!(
        browser.eval(
            "Array.from(document.querySelectorAll('article.host')).map(c => c.getAttribute('data-host'))"
        ),
        json!(["pve3", "pve2", "pve1", "pve4"])
    );
    assert_eq!(
        browser.eval(
            "Array.from(document.querySelectorAll('section.problems article.host')).map(c => c.getAttribute('data-host'))"
        ),
        json!(["pve3", "pve2"])
    );
    let dir = screenshot_dir();
    browser.screenshot(&dir.join("index.png"), 1280, false);
    browser.screenshot(&dir.join("index-phone.png"), 390, true);

    // Live: the overview's hosts are re-rendered by the server and put in place, no reload.
    browser.eval(
        "window.notReloaded = true; \
         document.querySelector('article.host[data-host=pve1] .sub').textContent = 'stale'; true",
    );
    browser.wait_for(
        "window.notReloaded === true && \
         document.querySelector('article.host[data-host=pve1] .sub').textContent.startsWith('online since')",
        Duration::from_secs(15),
    );

    // Filters, applied as one types: name, status, guest tag; the URL follows.
    browser.eval(
        "const q = document.querySelector('form.filters input[name=q]'); \
         q.value = 'PVE1'; q.dispatchEvent(new Event('input', {bubbles: true})); true",
    );
    browser.wait_for(
        "JSON.stringify(Array.from(document.querySelectorAll('[data-host]')).map(e => e.getAttribute('data-host'))) === '[\"pve1\"]' && \
         location.search === '?q=PVE1'",
        PATIENCE,
    );
    browser.eval(
        "const f = document.querySelector('form.filters'); f.querySelector('input[name=q]').value = ''; \
         f.querySelector('select[name=status]').value = 'problems'; \
         f.querySelector('select[name=status]').dispatchEvent(new Event('change', {bubbles: true})); true",
    );
    browser.wait_for(
        "JSON.stringify(Array.from(document.querySelectorAll('[data-host]')).map(e => e.getAttribute('data-host'))) === '[\"pve3\",\"pve2\"]'",
        PATIENCE,
    );
    assert!(browser
        .eval("Array.from(document.querySelectorAll('select[name=tag] option')).map(o => o.value)")
        .as_array()
        .unwrap()
        .contains(&json!("prod")));
    browser.open(&format!("{base}/?tag=prod"), "/");
    let tagged = browser.eval(
        "Array.from(document.querySelectorAll('[data-host]')).map(e => e.getAttribute('data-host'))",
    );
    assert!(
        tagged.as_array().unwrap().contains(&json!("pve2")),
        "{tagged}"
    );
    assert!(
        !tagged.as_array().unwrap().contains(&json!("pve4")),
        "{tagged}"
    );

    // The compact table: one row per host, problems first, sortable.
    browser.open(&format!("{base}/?view=table"), "/");
    assert_eq!(
        browser.eval("document.querySelectorAll('article.host').length"),
        0
    );
    assert_eq!(
        browser.eval(
            "Array.from(document.querySelectorAll('table.hosts-table tbody tr')).map(r => r.getAttribute('data-host'))"
        ),
        json!(["pve3", "pve2", "pve1", "pve4"])
    );
    // Sort the other hosts by name, descending (second click).
    browser.eval(
        "const th = document.querySelectorAll('#hosts-table th')[0]; th.click(); th.click(); true",
    );
    assert_eq!(
        browser.eval(
            "Array.from(document.querySelectorAll('#hosts-table tbody tr')).map(r => r.getAttribute('data-host'))"
        ),
        json!(["pve4", "pve1"])
    );
    browser.screenshot(&dir.join("index-table.png"), 1280, false);

    // A host page: five charts with axes and tooltips, tables, escaped guest names.
    browser.open(&format!("{base}/hosts/pve2"), "/hosts/pve2");
    assert_eq!(
        browser.eval("document.querySelectorAll('svg.chart').length"),
        5
    );
    assert!(
        browser
            .eval("document.querySelectorAll('svg.chart rect.hit title').length")
            .as_u64()
            .unwrap()
            >= 5 * 59
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('table.guests tbody tr').length"),
        3
    );
    assert_eq!(
        browser.eval("document.querySelector('tr[data-guest=\"100\"] td:nth-child(2)').firstChild.textContent.trim()"),
        HOSTILE_GUEST_NAME,
        "the guest name shows as text"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('main script, main img').length"),
        0
    );
    assert!(browser
        .eval("document.body.innerText")
        .as_str()
        .unwrap()
        .contains("DEGRADED"));
    // Sorting by CPU, highest first on the second click.
    browser.eval("document.querySelectorAll('table.guests th')[4].click(); document.querySelectorAll('table.guests th')[4].click(); true");
    assert_eq!(
        browser.eval("Array.from(document.querySelectorAll('table.guests tbody tr')).map(r => r.getAttribute('data-guest'))"),
        json!(["100", "101", "102"])
    );
    browser.screenshot(&dir.join("host.png"), 1280, false);
    browser.screenshot(&dir.join("host-phone.png"), 390, true);

    // Live: the script rewrites values from the API without reloading the page.
    browser.open(&format!("{base}/hosts/pve1"), "/hosts/pve1");
    assert_eq!(
        browser.eval("document.querySelectorAll('svg.chart').length"),
        5
    );
    browser.eval(
        "window.notReloaded = true; \
         document.querySelector('section.hosthead [data-k=load1]').textContent = 'stale'; true",
    );
    browser.wait_for(
        "window.notReloaded === true && \
         document.querySelector('section.hosthead [data-k=load1]').textContent !== 'stale'",
        Duration::from_secs(15),
    );
    browser.screenshot(&dir.join("host-agent.png"), 1280, false);

    // Alerts: pve2's DEGRADED pool fires at once (`for` 0); its card carries the badge; the
    // Alerts page lists it, and it is acknowledged and silenced from the page.
    wait_for_json(server.port, "/api/alerts", &cookie, |body| {
        body["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| {
                a["rule"] == "pool_unhealthy" && a["host"] == "pve2" && a["state"] == "firing"
            })
        })
    });
    browser.open(&format!("{base}/"), "/");
    browser.wait_for(
        "document.querySelector('article.host[data-host=pve2] .badge.alert') !== null && \
         document.querySelector('article.host[data-host=pve2] .badge.alert').textContent === '1 alert'",
        PATIENCE,
    );
    browser.open(&format!("{base}/alerts"), "/alerts");
    let row = "#alerts-live tr[data-rule=pool_unhealthy]";
    assert_eq!(
        browser.eval(&format!(
            "document.querySelector('{row}').innerText.includes('pool rpool is DEGRADED')"
        )),
        json!(true),
        "{}",
        browser.eval("document.body.innerText")
    );
    browser.screenshot(&dir.join("alerts.png"), 1280, false);
    browser.screenshot(&dir.join("alerts-phone.png"), 390, true);
    browser.eval(&format!(
        "document.querySelector('{row} [data-action=ack]').click(); true"
    ));
    browser.wait_for(
        "location.search.includes('done=ack') && document.readyState === 'complete'",
        PATIENCE,
    );
    assert_eq!(
        browser.eval(&format!(
            "document.querySelector('{row}').closest('table').id + ' ' + \
             document.querySelector('{row}').innerText.includes('acked by admin') + ' ' + \
             (document.querySelector('{row} [data-action=ack]') === null)"
        )),
        json!("alerts-quiet true true"),
        "acknowledged: among the quiet ones, no button any more"
    );
    // "Silence…" fills the form with the alert's host, rule and object.
    browser.eval(&format!(
        "document.querySelector('{row} [data-action=silence]').click(); true"
    ));
    browser.wait_for(
        "location.search.includes('silence=') && document.readyState === 'complete'",
        PATIENCE,
    );
    assert_eq!(
        browser.eval(
            "(() => { const f = document.querySelector('form.silence'); \
             return [f.host.value, f.rule.value, f.object.value].join(' '); })()"
        ),
        json!("pve2 pool_unhealthy rpool")
    );
    browser.eval(
        "(() => { const f = document.querySelector('form.silence'); \
         f.comment.value = 'disk on order'; \
         f.querySelector('[data-action=add-silence]').click(); return true; })()",
    );
    browser.wait_for(
        "location.search.includes('done=silence') && document.readyState === 'complete' && \
         document.querySelectorAll('#silences tbody tr').length === 1",
        PATIENCE,
    );
    assert!(browser
        .eval(&format!("document.querySelector('{row}').innerText"))
        .as_str()
        .unwrap()
        .contains("silence 1"));
    browser.screenshot(&dir.join("alerts-silenced.png"), 1280, false);
    // The host page lists its alerts; ending the silence from the page works too.
    browser.open(&format!("{base}/hosts/pve2"), "/hosts/pve2");
    assert_eq!(
        browser.eval("document.querySelectorAll('#host-alerts li[data-alert]').length > 0"),
        json!(true)
    );
    browser.open(&format!("{base}/alerts"), "/alerts");
    browser.eval("document.querySelector('#silences [data-action=unsilence]').click(); true");
    browser.wait_for(
        "location.search.includes('done=unsilence') && document.readyState === 'complete' && \
         document.querySelector('#silences') === null",
        PATIENCE,
    );
}

/// A HOME whose NSS database (`.pki/nssdb`, where chromium on Linux looks for certificate
/// authorities added by the user) trusts `ca` for web sites. Needs `certutil`.
fn home_trusting(ca: &Path, home: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let certutil = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run certutil ({e}); install it: apt-get install libnss3-tools")
            });
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    certutil(&["-N", "-d", &db, "--empty-password"]);
    let ca = ca.display().to_string();
    certutil(&[
        "-A",
        "-d",
        &db,
        "-n",
        "proxmox-monitor test CA",
        "-t",
        "C,,",
        "-i",
        &ca,
    ]);
}

/// The dashboard over HTTPS in chromium trusting the server's private CA (not told to ignore
/// certificate errors: without the CA the same page does not load), its session cookie
/// `Secure`; a host added in the UI, and the config the page showed making the real agent
/// connect over `wss://` once the page's private-CA install line has put it on a "node"; its
/// token rotated and the host removed through the confirmation pages.
#[test]
fn add_a_host_in_chromium_over_https_with_a_private_ca() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let files = TempDir::new("browser-tls-pki");
    let pki = Pki::new(files.path(), "browser");
    let installer = format!("agent_binary = \"{}\"\n", support::agent_bin().display());
    let server = tls_server("browser-tls", files.path(), &pki, &installer);
    assert!(set_password(&server, PASSWORD).status.success());
    let base = format!("https://127.0.0.1:{}", server.port);

    // Without the CA, chromium refuses the certificate (the page never comes).
    {
        let mut untrusting = Browser::launch(&binary, Some(&files.path().join("empty-home")));
        untrusting.call("Page.navigate", json!({"url": format!("{base}/login")}));
        untrusting.wait_for(
            "document.readyState === 'complete' && location.protocol === 'chrome-error:'",
            PATIENCE,
        );
        assert_eq!(
            untrusting.eval("document.querySelectorAll('input[name=password]').length"),
            0
        );
    }

    let home = files.path().join("home");
    home_trusting(&pki.ca, &home);
    let mut browser = Browser::launch(&binary, Some(&home));
    browser.open(&format!("{base}/admin/hosts"), "/login");
    browser.eval(&format!(
        "document.querySelector('input[name=password]').value = {}; \
         document.querySelector('form.login').submit(); true",
        json!(PASSWORD)
    ));
    browser.wait_for(
        "location.pathname === '/admin/hosts' && document.readyState === 'complete' && \
         document.querySelector('form.add-host') !== null",
        PATIENCE,
    );
    let cookies = browser.call("Network.getCookies", json!({"urls": [base.clone()]}));
    let session = cookies["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pm_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:#}"))
        .clone();
    assert_eq!(session["secure"], true, "{session:#}");
    assert_eq!(session["httpOnly"], true, "{session:#}");

    // Add a host through the form.
    browser.eval(
        "document.querySelector('form.add-host input[name=name]').value = 'pve-ui'; \
         document.querySelector('form.add-host button').click(); true",
    );
    browser.wait_for(
        "document.readyState === 'complete' && document.querySelector('#host-token') !== null",
        PATIENCE,
    );
    let token = browser.eval("document.querySelector('#host-token').textContent");
    let token = token.as_str().unwrap().to_owned();
    let shown = browser.eval("document.querySelector('#agent-config').textContent");
    let shown = shown.as_str().unwrap().to_owned();
    assert!(
        shown.contains(&format!(
            "server_url = \"wss://127.0.0.1:{}/socket/websocket\"",
            server.port
        )) && shown.contains(&format!("token = \"{token}\""))
            && shown.contains("host_id = \"pve-ui\""),
        "{shown}"
    );
    let dir = screenshot_dir();
    browser.screenshot(&dir.join("add-host.png"), 1280, false);
    browser.screenshot(&dir.join("add-host-phone.png"), 390, true);

    // The private-CA line the page shows, run as shown (with our CA's path for the one in
    // /etc, the files under a temp root, no systemctl): it downloads the agent over HTTPS and
    // writes the config shown, ca_file set; the installed agent connects over wss://.
    let line = browser.eval("document.querySelector('#install-oneliner-ca').textContent");
    let ca = pki.ca.display().to_string();
    let line = line
        .as_str()
        .unwrap()
        .replace("/etc/proxmox-monitor/ca.pem", &ca);
    let root = server.dir.path().join("node-root");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} --no-systemd"))
        .env("PM_ROOT", &root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{line}`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = shown
        .lines()
        .map(|l| match l.starts_with("# ca_file = ") {
            true => format!("ca_file = \"{ca}\"\n"),
            false => format!("{l}\n"),
        })
        .collect();
    let installed = root.join("etc/proxmox-monitor/agent.toml");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), expected);
    let mut command = Command::new(root.join("usr/local/bin/proxmox-monitor-agent"));
    command
        .arg("--config")
        .arg(&installed)
        .arg("--state-dir")
        .arg(root.join("state"))
        .arg("run");
    let agent = ChildGuard::spawn(command, &root.join("agent.log"));
    let online = wait_until(PATIENCE, || {
        server.status("pve-ui").as_deref() == Some("online")
    });
    assert!(online, "agent log:\n{}", agent.output());
    browser.open(&format!("{base}/admin/hosts"), "/admin/hosts");
    assert_eq!(
        browser.eval("document.querySelector('tr[data-host=pve-ui] .badge').textContent"),
        "online"
    );
    browser.screenshot(&dir.join("manage-hosts.png"), 1280, false);

    // Rotate, through its confirmation page: a new token, the agent cut off.
    browser
        .eval("document.querySelector('tr[data-host=pve-ui] a[data-action=rotate]').click(); true");
    browser.wait_for(
        "document.readyState === 'complete' && location.pathname === '/admin/hosts/pve-ui/rotate'",
        PATIENCE,
    );
    browser.screenshot(&dir.join("rotate-confirm.png"), 1280, false);
    browser.eval("document.querySelector('button[data-action=confirm-rotate]').click(); true");
    browser.wait_for(
        "document.readyState === 'complete' && document.querySelector('#host-token') !== null",
        PATIENCE,
    );
    let rotated = browser.eval("document.querySelector('#host-token').textContent");
    assert_ne!(rotated.as_str().unwrap(), token);
    server.expect_status("pve-ui", "offline");

    // Remove, through its confirmation page.
    browser.open(
        &format!("{base}/admin/hosts/pve-ui/remove"),
        "/admin/hosts/pve-ui/remove",
    );
    browser.eval("document.querySelector('button[data-action=confirm-remove]').click(); true");
    browser.wait_for(
        "document.readyState === 'complete' && location.pathname === '/admin/hosts' && \
         document.querySelector('.notice') !== null",
        PATIENCE,
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('tr[data-host=pve-ui]').length"),
        0
    );
    assert!(server.hosts().iter().all(|h| h.name != "pve-ui"));
    drop(agent);
}
