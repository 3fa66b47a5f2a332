//! Backups, replication, HA, SMART and temperatures end to end, with the real server and agent
//! binaries: one agent reads the fixture node `fixtures/pve-node` (CT 101's last backup failed,
//! VM 102 is in no job, replication `101-0` fails, `nvme1` is 91 % worn), another the storage
//! host `fixtures/smart-disks` (`sdb` FAILS its SMART self-assessment, `sda` has pending
//! sectors). The server must show them on `/backups`, the host pages, `/api/*` and
//! `/metrics` (checked with `promtool check metrics` where promtool is installed), and fire
//! `backup_failed` and `smart_failed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use http_common::{get, login, set_password, AGENT_PATIENCE, PASSWORD};
use serde_json::Value;
use support::{ChildGuard, Server, ServerOptions, TempDir};

fn start_agent(server: &Server, name: &str, token: &str, fixture: &str) -> ChildGuard {
    let dir = server.dir.path().join(format!("agent-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(fixture);
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
    support::start_agent(&config, &dir.join("agent.log"))
}

fn wait_long(port: u16, path: &str, cookie: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = support::wait_until(AGENT_PATIENCE, || {
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

fn firing(alerts: &Value, rule: &str, host: &str, object: &str) -> bool {
    alerts["alerts"].as_array().is_some_and(|list| {
        list.iter().any(|a| {
            a["rule"] == rule
                && a["host"] == host
                && a["object"] == object
                && a["state"] == "firing"
        })
    })
}

/// `promtool check metrics` on `text`: `None` when promtool is not installed (and not
/// required), else its complaints.
fn promtool_check(text: &str) -> Option<String> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("PM_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "PM_REQUIRE_PROMTOOL=1 but promtool cannot be run: {e}"
            );
            eprintln!("SKIPPED promtool check metrics: {e} (install Debian's `prometheus`)");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn failed_backup_and_failing_disk_show_everywhere_and_fire() {
    let config_dir = TempDir::new("operations-config");
    let config = config_dir.path().join("server.toml");
    std::fs::write(&config, "[http]\nmetrics_public = true\n").unwrap();
    let server = Server::start_with(
        "operations",
        ServerOptions {
            extra_args: vec!["--config".into(), config.display().to_string()],
            ..ServerOptions::default()
        },
    );
    assert!(set_password(&server, PASSWORD).status.success());
    let token = server.register("pve1");
    let _pve1 = start_agent(&server, "pve1", &token, "pve-node");
    let token = server.register("store1");
    let _store1 = start_agent(&server, "store1", &token, "smart-disks");
    let cookie = login(server.port);
    let port = server.port;

    // The Backups view's API: CT 101 failed (rsync), VM 102 in no job, VM 100 backed up.
    let body = wait_long(port, "/api/backups", &cookie, |b| {
        b["backups"].as_array().is_some_and(|rows| rows.len() >= 3)
    });
    let rows = body["backups"].as_array().unwrap();
    let row = |vmid: u64| {
        rows.iter()
            .find(|r| r["host"] == "pve1" && r["vmid"] == vmid)
            .unwrap_or_else(|| panic!("no row for {vmid}: {rows:#?}"))
    };
    assert_eq!(row(101)["status"], "failed", "{:#}", row(101));
    assert_eq!(rows[0]["status"], "failed", "worst first");
    assert!(row(101)["last_failure"]["message"]
        .as_str()
        .unwrap()
        .contains("rsync"));
    assert_eq!(row(102)["status"], "not_covered");
    assert_eq!(row(102)["jobs"], serde_json::json!([]));
    assert_eq!(row(100)["jobs"][0]["id"], "backup-5f0d2c1e-9a41");
    assert!(row(100)["last_success"]["end_time"].as_u64().unwrap() > 0);
    assert_eq!(row(100)["threshold_hours"], 26.0);

    // The page: red row for 101, amber for 102, in the nav.
    let page = get(port, "/backups", Some(&cookie));
    assert_eq!(page.status, 200);
    let html = &page.body;
    assert!(html.contains("href=\"/backups\""), "nav link");
    let row_html = |vmid: &str| -> String {
        let start = html
            .find(&format!("data-host=\"pve1\" data-guest=\"{vmid}\""))
            .unwrap_or_else(|| panic!("no row {vmid} in {html}"));
        let open = html[..start].rfind("<tr").unwrap();
        let end = start + html[start..].find("</tr>").unwrap();
        html[open..end].to_owned()
    };
    assert!(row_html("101").contains("row-bad"), "{}", row_html("101"));
    assert!(row_html("101").contains("failed"));
    assert!(row_html("101").contains("rsync"));
    assert!(row_html("102").contains("row-warn"), "{}", row_html("102"));
    let fragment = get(port, "/backups?host=pve1&fragment=1", Some(&cookie));
    assert!(fragment.body.starts_with("<section id=\"backups\""));
    assert!(!fragment.body.contains("store1"));

    // Host pages: the backup age column and the operational tables.
    let host = wait_long(port, "/api/hosts/pve1", &cookie, |h| {
        !h["medium"].is_null() && !h["slow"].is_null()
    });
    assert!(!host["backups"].as_array().unwrap().is_empty());
    assert!(!host["replication"].as_array().unwrap().is_empty());
    assert_eq!(host["ha"]["master"], "pve2");
    assert!(!host["temperatures"].as_array().unwrap().is_empty());
    assert!(!host["smart"].as_array().unwrap().is_empty());
    let list = get(port, "/api/hosts?operations=1", Some(&cookie)).json();
    let pve1 = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "pve1")
        .unwrap();
    for key in [
        "backups",
        "backup_jobs",
        "replication",
        "ha",
        "smart",
        "temperatures",
    ] {
        assert!(
            !pve1[key].is_null(),
            "{key} missing from /api/hosts?operations=1"
        );
    }
    let plain = get(port, "/api/hosts", Some(&cookie)).json();
    assert!(
        plain["hosts"][0].get("backups").is_none(),
        "the plain list stays small"
    );
    let page = get(port, "/hosts/pve1", Some(&cookie)).body;
    for heading in [
        "Last backup",
        "Disk health (SMART)",
        "Temperatures",
        "High availability",
        "Replication",
    ] {
        assert!(
            page.contains(heading),
            "{heading} missing from the host page"
        );
    }
    assert!(page.contains("data-k=\"backup_age\""));
    assert!(page.contains("vm:102"));
    assert!(page.contains("101-0"));
    let store1 = wait_long(port, "/api/hosts/store1", &cookie, |h| !h["slow"].is_null());
    assert!(store1["smart"].as_array().unwrap().len() >= 3);
    let page = get(port, "/hosts/store1", Some(&cookie)).body;
    assert!(page.contains("FAILED"));
    assert!(page.contains("standby"));
    assert!(
        !page.contains("High availability"),
        "no HA on a plain Debian host"
    );

    // /metrics.
    let metrics = get(port, "/metrics", None).body;
    for needle in [
        "proxmox_monitor_guest_last_backup_timestamp_seconds{node=\"pve1\",vmid=\"100\",type=\"qemu\"} ",
        "proxmox_monitor_guest_last_backup_failed{node=\"pve1\",vmid=\"101\",type=\"lxc\"} 1",
        "pve_not_backed_up_info{id=\"qemu/102\",node=\"pve1\"} 1",
        "proxmox_monitor_replication_failures{node=\"pve1\",job=\"101-0\",vmid=\"101\",target=\"pve2\"} 3",
        "proxmox_monitor_ha_service_error{node=\"pve1\",sid=\"vm:102\"} 1",
        "smartctl_device_smart_status{node=\"store1\",device=\"sdb\"} 0",
        "smartctl_device_smart_status{node=\"store1\",device=\"sda\"} 1",
        "smartctl_device_attribute{node=\"store1\",device=\"sda\",attribute_id=\"197\",attribute_name=\"Current_Pending_Sector\",attribute_value_type=\"raw\"} 8",
        "smartctl_device_percentage_used{node=\"pve1\",device=\"nvme1\"} 91",
        "node_hwmon_temp_celsius{node=\"pve1\",chip=",
        "node_hwmon_temp_crit_celsius{node=\"pve1\",chip=",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    if let Some(complaints) = promtool_check(&metrics) {
        let ours: Vec<&str> = complaints
            .lines()
            .filter(|l| {
                [
                    "smartctl_",
                    "node_hwmon_",
                    "proxmox_monitor_guest_last_backup",
                    "proxmox_monitor_replication",
                    "proxmox_monitor_ha_",
                    "proxmox_monitor_backup_job",
                    "pve_not_backed_up",
                    "proxmox_monitor_smart_",
                ]
                .iter()
                .any(|p| l.contains(p))
            })
            .collect();
        assert!(ours.is_empty(), "promtool check metrics: {ours:#?}");
    }

    // The alerts: backup_failed on CT 101 and smart_failed on sdb fire (critical, `for` 0).
    let alerts = wait_long(port, "/api/alerts", &cookie, |a| {
        firing(a, "backup_failed", "pve1", "101") && firing(a, "smart_failed", "store1", "/dev/sdb")
    });
    let list = alerts["alerts"].as_array().unwrap();
    let failed = list.iter().find(|a| a["rule"] == "backup_failed").unwrap();
    assert_eq!(failed["severity"], "critical");
    assert_eq!(failed["guest"], 101);
    assert!(
        failed["summary"].as_str().unwrap().contains("rsync"),
        "{failed:#}"
    );
    assert!(firing(&alerts, "replication_failing", "pve1", "101-0"));
    assert!(firing(&alerts, "smart_degrading", "pve1", "/dev/nvme1"));
    assert!(firing(&alerts, "smart_degrading", "store1", "/dev/sda"));
    assert!(
        !list
            .iter()
            .any(|a| a["rule"] == "ha_error" && a["host"] == "pve1" && a["object"] == "vm:102"),
        "pve2 is the HA master: it judges vm:102, not pve1"
    );
}
