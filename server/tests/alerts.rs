//! Alerts end to end, with the real server and agent binaries: an agent reads a copy of the
//! fixture node `fixtures/pve-node` (fast sample every second, medium every 2 s), whose `cmd/`
//! we rewrite to make its ZFS pool DEGRADED; then the agent is killed with SIGKILL, started
//! again, and the server restarted.
//!
//! What is checked goes through the admin commands (`alerts --json`, `alert-events --json`),
//! i.e. what the server stored, and `/api/alerts` for what it shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_common::{get, login, request, set_password, PASSWORD};
use serde_json::Value;
use support::{start_agent, wait_until, ChildGuard, Server, ServerOptions, TempDir, PATIENCE};

const HOST: &str = "pve-alerts";
/// Reconnecting after the agent's restart can take a few backoff steps.
const CATCH_UP: Duration = Duration::from_secs(60);

fn server_options(config: &Path) -> ServerOptions {
    ServerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    }
}

fn write_agent_config(dir: &Path, server: &Server, token: &str, root: &Path) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "server_url = \"{}\"\ntoken = \"{token}\"\nhost_id = \"{HOST}\"\n\
             state_dir = \"{}\"\nroot = \"{}\"\nlog_level = \"debug\"\n\n\
             [intervals]\nfast_seconds = 1\nmedium_seconds = 2\nslow_seconds = 60\n",
            server.socket_url(),
            dir.join("agent-state").display(),
            root.display()
        ),
    )
    .unwrap();
    path
}

/// `alerts --json --all`: every alert the database has, open ones first.
fn alerts(server: &Server) -> Vec<Value> {
    let out = server.admin(&["alerts", "--json", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    body["alerts"].as_array().unwrap().clone()
}

fn find<'a>(alerts: &'a [Value], rule: &str, state: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["state"] == state && a["host"] == HOST)
        .collect()
}

/// The outbox: every notification event's payload.
fn events(server: &Server) -> Vec<Value> {
    let out = server.admin(&["alert-events", "--json", "--limit", "1000"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, server: &Server, agent_log: &Path, mut cond: impl FnMut() -> bool) {
    assert!(
        wait_until(CATCH_UP, &mut cond),
        "timed out waiting for {what}\nalerts: {:#?}\nserver log:\n{}\nagent log:\n{}",
        alerts(server),
        server.log(),
        std::fs::read_to_string(agent_log).unwrap_or_default()
    );
}

fn make_pool_degraded(root: &Path) {
    let list = root.join("cmd/zpool-list-HpPLo-pve-columns.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains("ONLINE"), "{text}");
    // Replaced through a rename, as a node's files change: never read half-written.
    let tmp = root.join("cmd/.zpool-list.tmp");
    std::fs::write(&tmp, text.replace("ONLINE", "DEGRADED")).unwrap();
    std::fs::rename(&tmp, &list).unwrap();
    std::fs::copy(
        root.join("cmd/zpool-status-x.degraded.txt"),
        root.join("cmd/zpool-status-x.txt"),
    )
    .unwrap();
}

#[test]
fn pool_degraded_agent_killed_and_back_and_a_server_restart() {
    let work = TempDir::new("alerts-e2e");
    let root = work.path().join("node");
    support::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node"),
        &root,
    );
    let config = work.path().join("server.toml");
    std::fs::write(
        &config,
        "[http]\nmetrics_public = true\n\
         [alerts]\nrepeat = \"1h\"\n[alerts.rules.host_offline]\nfor = \"3s\"\n\
         [alerts.rules.backup_failed]\nenabled = false\n\
         [alerts.rules.backup_stale]\nenabled = false\n\
         [alerts.rules.guest_not_backed_up]\nenabled = false\n\
         [alerts.rules.replication_failing]\nenabled = false\n\
         [alerts.rules.smart_degrading]\nenabled = false\n\
         [alerts.rules.temp_high]\nenabled = false\n",
    )
    .unwrap();
    let mut server = Server::start_with("alerts-e2e-server", server_options(&config));
    let token = server.register(HOST);
    let agent_config = write_agent_config(work.path(), &server, &token, &root);
    let agent_log = work.path().join("agent.log");
    let mut agent: ChildGuard = start_agent(&agent_config, &agent_log);
    server.expect_status(HOST, "online");
    // The fixture node's pool is healthy: after a few medium samples, nothing is open. (Its
    // operational trouble — a failed backup, a failing replication, a worn NVMe — is
    // `tests/operations.rs`'s subject; those rules are off here.)
    wait_for("medium samples", &server, &agent_log, || {
        server.log().matches("alerts: ").count() >= 1
            && std::fs::read_to_string(&agent_log)
                .unwrap_or_default()
                .matches("collected medium sample")
                .count()
                >= 2
    });
    assert!(
        alerts(&server).is_empty(),
        "a healthy fixture node raises nothing: {:#?}",
        alerts(&server)
    );

    // The pool turns DEGRADED: pool_unhealthy fires, critical, on the first medium sample
    // that shows it (since == fired_at: `for` is 0), i.e. within one medium interval.
    make_pool_degraded(&root);
    wait_for("pool_unhealthy firing", &server, &agent_log, || {
        !find(&alerts(&server), "pool_unhealthy", "firing").is_empty()
    });
    let all = alerts(&server);
    let pool = find(&all, "pool_unhealthy", "firing")[0].clone();
    assert_eq!(pool["severity"], "critical");
    assert_eq!(pool["object"], "rpool");
    assert_eq!(pool["since"], pool["fired_at"], "{pool:#}");
    assert_eq!(pool["summary"], "pool rpool is DEGRADED");
    assert_eq!(pool["live"], true);
    let pool_id = pool["id"].as_i64().unwrap();
    let firing_key = format!("alert/{pool_id}/firing/critical");
    wait_for("the firing event", &server, &agent_log, || {
        events(&server)
            .iter()
            .any(|e| e["key"] == firing_key.as_str())
    });
    // The dashboard's API, page and /metrics show it too.
    assert!(set_password(&server, PASSWORD).status.success());
    let cookie = login(server.port);
    let api = get(server.port, "/api/alerts", Some(&cookie)).json();
    let listed = api["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == pool_id)
        .unwrap_or_else(|| panic!("{api:#}"));
    for key in [
        "id",
        "rule",
        "severity",
        "state",
        "host",
        "object",
        "summary",
        "value",
        "threshold",
        "since",
        "silenced",
        "acknowledged",
    ] {
        assert!(listed.get(key).is_some(), "{key} missing in {listed:#}");
    }
    assert_eq!(listed["silenced"], false);
    let metrics = get(server.port, "/metrics", None).body;
    assert!(
        metrics.contains(&format!(
            "proxmox_monitor_alert{{rule=\"pool_unhealthy\",severity=\"critical\",node=\"{HOST}\",object=\"rpool\"}} 1"
        )),
        "{metrics}"
    );
    // Acknowledging from the page: refused without the page's token or from another
    // origin, accepted with it.
    let page = get(server.port, "/alerts", Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("data-alert=\"{pool_id}\"")));
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let post = |body: String, origin: &str| {
        request(
            server.port,
            "POST",
            "/alerts/ack",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", origin),
            ],
            &body,
        )
    };
    let here = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(post(format!("id={pool_id}"), &here).status, 403);
    assert_eq!(
        post(format!("id={pool_id}&csrf={token}"), "https://evil.example").status,
        403
    );
    let reply = post(format!("id={pool_id}&csrf={token}"), &here);
    assert_eq!(reply.status, 303, "{reply:?}");
    let acked = find(&alerts(&server), "pool_unhealthy", "firing")[0].clone();
    assert_eq!(acked["acknowledged"], true);
    assert_eq!(acked["acknowledged_by"], "admin");

    // kill -9 of the agent: host_offline fires once, after its `for` (3 s here), and
    // suppresses the pool alert (one message, not two).
    support::signal(agent.pid(), libc::SIGKILL);
    assert!(
        agent.wait_timeout(PATIENCE).is_some(),
        "the agent did not die"
    );
    wait_for("host_offline firing", &server, &agent_log, || {
        !find(&alerts(&server), "host_offline", "firing").is_empty()
    });
    let all = alerts(&server);
    let offline = find(&all, "host_offline", "firing")[0].clone();
    assert_eq!(offline["severity"], "critical");
    let offline_id = offline["id"].as_i64().unwrap();
    assert!(
        offline["fired_at"].as_i64().unwrap() - offline["since"].as_i64().unwrap() >= 3,
        "{offline:#}"
    );
    wait_for("the pool alert suppressed", &server, &agent_log, || {
        find(&alerts(&server), "pool_unhealthy", "firing")
            .first()
            .is_some_and(|p| p["suppressed_by"] == "host_offline")
    });
    let outbox = events(&server);
    let firing_offline: Vec<&Value> = outbox
        .iter()
        .filter(|e| e["rule"] == "host_offline" && e["event"] == "firing")
        .collect();
    assert_eq!(
        firing_offline.len(),
        1,
        "one host_offline message: {outbox:#?}"
    );
    assert_eq!(
        outbox.iter().filter(|e| e["event"] == "firing").count(),
        2,
        "the pool and the host, nothing else: {outbox:#?}"
    );

    // The agent is back: host_offline resolves (announced), the suppression ends.
    let _agent = start_agent(&agent_config, &agent_log);
    wait_for("host_offline resolved", &server, &agent_log, || {
        alerts(&server)
            .iter()
            .any(|a| a["id"] == offline_id && a["state"] == "resolved")
    });
    wait_for("the resolved event", &server, &agent_log, || {
        events(&server)
            .iter()
            .any(|e| e["key"] == format!("alert/{offline_id}/resolved").as_str())
    });
    wait_for("the suppression lifted", &server, &agent_log, || {
        find(&alerts(&server), "pool_unhealthy", "firing")
            .first()
            .is_some_and(|p| p["suppressed_by"].is_null())
    });
    assert!(find(&alerts(&server), "host_offline", "pending").is_empty());

    // A server restart keeps every alert's id and `since`, and announces nothing again.
    let before: Vec<(i64, i64, String)> = alerts(&server)
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                a["since"].as_i64().unwrap(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let events_before = events(&server).len();
    server.stop_with(libc::SIGINT);
    server.restart(&server_options(&config));
    server.expect_status(HOST, "online");
    assert!(
        server.log().contains("open alerts loaded"),
        "{}",
        server.log()
    );
    // Let the rules see a few samples of the restarted server.
    let seen = std::fs::read_to_string(&agent_log)
        .unwrap_or_default()
        .matches("collected medium sample")
        .count();
    wait_for("more medium samples", &server, &agent_log, || {
        std::fs::read_to_string(&agent_log)
            .unwrap_or_default()
            .matches("collected medium sample")
            .count()
            >= seen + 2
    });
    let after: Vec<(i64, i64, String)> = alerts(&server)
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                a["since"].as_i64().unwrap(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(id, _, _)| before.iter().any(|(b, _, _)| b == id))
        .collect();
    assert_eq!(after, before, "ids, since and states survive the restart");
    let outbox = events(&server);
    assert_eq!(
        outbox.len(),
        events_before,
        "nothing announced again: {:#?}",
        &outbox[events_before..]
    );
    assert!(!server.log().contains("alert firing"), "{}", server.log());
}

#[test]
fn a_bad_alerts_config_names_rule_and_key_and_the_server_refuses_to_start() {
    let dir = TempDir::new("alerts-bad-config");
    for (text, wanted) in [
        (
            "[alerts.rules.cpu_high]\nwarning = 99\n",
            "alerts.rules.cpu_high.warning: critical (98) must be at or above warning (99)",
        ),
        (
            "[alerts.rules.pool_unhealthy]\nfor = \"soon\"\n",
            "alerts.rules.pool_unhealthy.for",
        ),
        (
            "[[alerts.maintenance]]\nstart = \"02:00\"\nend = \"04:00\"\ntimezone = \"Europe/Berln\"\n",
            "alerts.maintenance[0].timezone",
        ),
    ] {
        let config = dir.path().join("server.toml");
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(support::server_bin())
            .arg("--config")
            .arg(&config)
            .arg("--database")
            .arg(dir.path().join("db"))
            .args(["--listen", "127.0.0.1:0", "serve"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {text:?}");
        assert!(
            stderr.contains(wanted) && stderr.contains("server.toml"),
            "{text:?}: {stderr}"
        );
        assert!(!dir.path().join("db").exists(), "refused before touching the database");
    }
}
