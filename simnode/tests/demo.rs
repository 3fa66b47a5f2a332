//! `make demo` end to end: `scripts/dev.sh demo` in a temp dir on a free port (the real server,
//! an agent for this machine, and two simulators each read by an agent of its own), then the
//! JSON API and the dashboard's pages must show the simulated nodes' guests (running and
//! stopped VMs and containers), pools (one ONLINE, one DEGRADED) and storages, with rates that
//! move, and their charts' series must have points; `scripts/dev.sh stop` must end every
//! process it started.
//!
//! The binaries are this test's own (`proxmox-monitor-simnode`) and its siblings in the target
//! directory (built first when `cargo test -p proxmox-monitor-simnode` did not build them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the API may take to show everything after `dev.sh demo` returned: the first
/// samples come at once, the first rates one fast interval (5 s) later. Generous for CI.
const PATIENCE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory with all three binaries.
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_proxmox-monitor-simnode"))
        .parent()
        .unwrap()
        .to_owned();
    let missing = ["proxmox-monitor-server", "proxmox-monitor-agent"]
        .iter()
        .any(|b| !dir.join(b).exists());
    if missing {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "-p",
                "proxmox-monitor-server",
                "-p",
                "proxmox-monitor-agent",
                "--bins",
            ])
            .status()
            .expect("running cargo build");
        assert!(
            status.success(),
            "cargo build of the server and agent failed"
        );
    }
    dir
}

/// `scripts/dev.sh` with the demo's state in `var` and the server on `listen`.
struct Demo {
    var: PathBuf,
    listen: String,
    bin_dir: PathBuf,
}

impl Demo {
    fn run(&self, command: &str) -> Output {
        Command::new("bash")
            .arg(repo().join("scripts/dev.sh"))
            .arg(command)
            .env("VAR", &self.var)
            .env("LISTEN", &self.listen)
            .env("BIN_DIR", &self.bin_dir)
            .env("DEMO_BUILD", "0")
            .output()
            .unwrap_or_else(|e| panic!("running dev.sh {command}: {e}"))
    }

    fn pids(&self) -> Vec<(String, u32)> {
        let mut pids: Vec<(String, u32)> = std::fs::read_dir(&self.var)
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".pid")?.to_owned();
                let pid = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((stem, pid))
            })
            .collect();
        pids.sort();
        pids
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Whatever happened, nothing of the demo may outlive the test.
        let _ = self.run("stop");
        if std::thread::panicking() {
            eprintln!("demo files kept in {}", self.var.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.var);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request on a fresh connection; (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn login(port: u16, password: &str) -> String {
    let form: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, head, _) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("username=admin&password={form}"),
    );
    assert_eq!(status, 303, "login failed: {head}");
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap().to_owned())
        })
        .expect("a session cookie")
}

fn get_json(port: u16, path: &str, cookie: &str) -> Option<Value> {
    let (status, _, body) = http(port, "GET", path, &[("Cookie", cookie)], "");
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Polls `check` on `GET path` until it holds; panics with the last answer after PATIENCE.
fn wait_for(
    port: u16,
    path: &str,
    cookie: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    let mut last = Value::Null;
    loop {
        if let Some(json) = get_json(port, path, cookie) {
            if check(&json) {
                return json;
            }
            last = json;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: GET {path} never showed it; last:\n{last:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn host<'a>(hosts: &'a Value, name: &str) -> Option<&'a Value> {
    hosts["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["name"] == name)
}

fn positive(value: &Value) -> bool {
    value.as_f64().is_some_and(|v| v > 0.0)
}

#[test]
fn make_demo_shows_simulated_proxmox_nodes_with_guests_pools_and_moving_counters() {
    let bin_dir = bin_dir();
    let var = std::env::temp_dir().join(format!("pm-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&var);
    let started = Instant::now();
    let mut demo = None;
    for attempt in 1..=3 {
        let candidate = Demo {
            var: var.clone(),
            listen: format!("127.0.0.1:{}", free_port()),
            bin_dir: bin_dir.clone(),
        };
        let out = candidate.run("demo");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            assert!(
                said.contains("pve-sim1") && said.contains("DEGRADED"),
                "{said}"
            );
            demo = Some(candidate);
            break;
        }
        // Someone may have taken the port between our probe and the server's bind.
        assert!(
            attempt < 3 && said.contains("did not start"),
            "dev.sh demo failed:\n{said}"
        );
        drop(candidate);
    }
    let demo = demo.unwrap();
    let script_took = started.elapsed();
    let port: u16 = demo.listen.rsplit(':').next().unwrap().parse().unwrap();
    let password = std::fs::read_to_string(demo.var.join("dashboard-password")).unwrap();
    let cookie = login(port, password.trim());

    // The overview: both simulated nodes with their guests and pools.
    let hosts = wait_for(port, "/api/hosts", &cookie, "guests and pools", |hosts| {
        let (Some(one), Some(two)) = (host(hosts, "pve-sim1"), host(hosts, "pve-sim2")) else {
            return false;
        };
        one["status"] == "online"
            && two["status"] == "online"
            && one["guests"] == serde_json::json!({"running": 4, "stopped": 3, "total": 7})
            && two["guests"] == serde_json::json!({"running": 2, "stopped": 1, "total": 3})
            && one["pools"]["worst_health"] == "ONLINE"
            && two["pools"]["worst_health"] == "DEGRADED"
            && two["pools"]["unhealthy"] == serde_json::json!(["tank"])
    });
    let shown = started.elapsed();
    assert_eq!(
        hosts["hosts"].as_array().unwrap().len(),
        3,
        "this machine too: {hosts:#}"
    );
    assert!(hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["status"] == "online"));

    // Each node's detail: rates that move, storages, the guests of every kind and state.
    for (name, storages) in [("pve-sim1", 3), ("pve-sim2", 4)] {
        let path = format!("/api/hosts/{name}");
        let detail = wait_for(port, &path, &cookie, "rates", |h| {
            let fast = &h["fast"]["data"];
            let running: Vec<&Value> = fast["guests"]
                .as_array()
                .map(|g| g.iter().filter(|g| g["status"] == "running").collect())
                .unwrap_or_default();
            positive(&fast["cpu_percent"])
                && !running.is_empty()
                && running.iter().all(|g| {
                    positive(&g["cpu_percent"])
                        && positive(&g["net_out_bytes_per_s"])
                        && positive(&g["disk_write_bytes_per_s"])
                })
                && fast["net"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|i| positive(&i["rx_bytes_per_s"])))
                && fast["disks"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| positive(&d["write_bytes_per_s"])))
        });
        let medium = &detail["medium"]["data"];
        assert_eq!(
            medium["storages"].as_array().unwrap().len(),
            storages,
            "{medium:#}"
        );
        assert!(medium["storages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["active"] == true));
        let guests = detail["fast"]["data"]["guests"].as_array().unwrap();
        for kind in ["qemu", "lxc"] {
            for status in ["running", "stopped"] {
                let found = guests
                    .iter()
                    .any(|g| g["type"] == kind && g["status"] == status);
                if name == "pve-sim1" {
                    assert!(found, "{name}: no {status} {kind}: {guests:#?}");
                }
            }
        }
        assert!(
            detail["fast"]["data"]["errors"]
                .as_array()
                .map_or(true, Vec::is_empty),
            "{detail:#}"
        );
    }
    let rates = started.elapsed();

    // The dashboard's pages show them too.
    for (path, words) in [
        ("/", &["pve-sim1", "pve-sim2"][..]),
        (
            "/hosts/pve-sim1",
            &["web01", "win-test", "build-runner", "rpool", "backup-nfs"][..],
        ),
        ("/hosts/pve-sim2", &["nextcloud", "tank", "DEGRADED"][..]),
    ] {
        let (status, _, page) = http(port, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(status, 200, "{path}");
        for word in words {
            assert!(page.contains(word), "{path} does not show {word}");
        }
    }

    // The alerts: pve-sim2's DEGRADED pool fires `pool_unhealthy`, critical, from its first
    // medium sample; nothing on pve-sim1's healthy pools.
    let alerts = wait_for(port, "/api/alerts", &cookie, "pool_unhealthy", |a| {
        a["alerts"].as_array().is_some_and(|list| {
            list.iter().any(|a| {
                a["rule"] == "pool_unhealthy"
                    && a["host"] == "pve-sim2"
                    && a["object"] == "tank"
                    && a["state"] == "firing"
                    && a["severity"] == "critical"
            })
        })
    });
    assert!(
        !alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "pool_unhealthy" && a["host"] == "pve-sim1"),
        "{alerts:#}"
    );

    // The charts: the host's and a guest's history have points, and the counters keep moving
    // (a later sample differs).
    let first =
        get_json(port, "/api/hosts/pve-sim1", &cookie).unwrap()["fast"]["collected_at"].clone();
    for series in [
        "cpu_percent",
        "guest.101.cpu_percent",
        "pool.tank.alloc_bytes",
    ] {
        let host = if series.starts_with("pool.tank") {
            "pve-sim2"
        } else {
            "pve-sim1"
        };
        wait_for(
            port,
            &format!("/api/hosts/{host}/series?name={series}&range=1h"),
            &cookie,
            series,
            |s| s["points"].as_array().is_some_and(|p| !p.is_empty()),
        );
    }
    wait_for(
        port,
        "/api/hosts/pve-sim1",
        &cookie,
        "a newer sample",
        |h| h["fast"]["collected_at"] != first,
    );
    eprintln!(
        "demo: dev.sh demo took {:.1} s; guests and pools shown after {:.1} s, rates after {:.1} s",
        script_took.as_secs_f64(),
        shown.as_secs_f64(),
        rates.as_secs_f64()
    );

    // dev.sh stop ends every process the demo started.
    let pids = demo.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "agent",
            "agent-pve-sim1",
            "agent-pve-sim2",
            "server",
            "simnode-pve-sim1",
            "simnode-pve-sim2"
        ]
    );
    let out = demo.run("stop");
    assert!(out.status.success(), "{out:?}");
    for (name, pid) in pids {
        let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("proxmox-monitor"));
        assert!(!alive, "{name} (pid {pid}) still runs after dev.sh stop");
    }
    assert!(demo.pids().is_empty());
}
