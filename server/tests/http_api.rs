//! The dashboard's HTTP side against the real server binary: who may see what (setup page,
//! login, sessions, logout, backoff, `/metrics` access), the JSON API's shapes with data pushed
//! over the agent socket and by the real agent, escaping of node-supplied names, and `/metrics`
//! checked by Prometheus's own parser (`promtool check metrics`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use http_common::*;
use support::{Server, ServerOptions, TempDir};

/// A server with a dashboard password and `config` (TOML) as its config file.
fn server_with(label: &str, config: &str) -> (Server, TempDir) {
    let config_dir = TempDir::new(&format!("{label}-config"));
    let path = config_dir.path().join("server.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_with(
        label,
        ServerOptions {
            extra_args: vec!["--config".into(), path.display().to_string()],
            ..ServerOptions::default()
        },
    );
    let out = set_password(&server, PASSWORD);
    assert!(out.status.success(), "set-password: {out:?}");
    (server, config_dir)
}

#[test]
fn until_a_password_is_set_the_dashboard_only_says_how_to_set_one() {
    let server = Server::start("http-setup");
    server.register("pve1");
    let page = get(server.port, "/", None);
    assert_eq!(page.status, 503);
    assert!(page.body.contains("set-password"), "{}", page.body);
    assert!(
        !page.body.contains("pve1"),
        "setup page must show nothing else"
    );
    let api = get(server.port, "/api/hosts", None);
    assert_eq!(api.status, 401);
    assert!(api.json()["error"]
        .as_str()
        .unwrap()
        .contains("set-password"));
    assert_eq!(get(server.port, "/hosts/pve1", None).status, 503);
    assert_eq!(post_login(server.port, "admin", "anything").status, 503);

    let short = set_password(&server, "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least"));
    let ok = set_password(&server, PASSWORD);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Password for 'admin' set"));

    let page = get(server.port, "/hosts/pve1?range=7d", None);
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        Some("/login?next=/hosts/pve1%3Frange%3D7d")
    );
    assert_eq!(get(server.port, "/api/hosts", None).status, 401);
    let login_page = get(server.port, "/login?next=/hosts/pve1", None);
    assert_eq!(login_page.status, 200);
    assert!(login_page.body.contains("name=\"password\""));
    // Open to all: health and assets.
    assert_eq!(get(server.port, "/healthz", None).status, 200);
    let css = get(server.port, "/assets/style.css", None);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

#[test]
fn login_sessions_logout_and_backoff() {
    let server = Server::start("http-login");
    assert!(set_password(&server, PASSWORD).status.success());
    let reply = post_login(server.port, "admin", PASSWORD);
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/"));
    let set_cookie = reply.header("set-cookie").unwrap();
    for attribute in ["pm_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "not behind TLS by default");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(get(server.port, "/api/hosts", Some(&cookie)).status, 200);
    let page = get(server.port, "/", Some(&cookie));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("content-security-policy").is_some());
    assert!(page.body.contains("Log out"));

    // A forged cookie and a cross-site logout do nothing.
    assert_eq!(
        get(server.port, "/api/hosts", Some("pm_session=forged")).status,
        401
    );
    let cross = request(
        server.port,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        "",
    );
    assert_eq!(cross.status, 403);
    assert_eq!(get(server.port, "/api/hosts", Some(&cookie)).status, 200);

    let out = request(server.port, "POST", "/logout", &[("Cookie", &cookie)], "");
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        get(server.port, "/api/hosts", Some(&cookie)).status,
        401,
        "session ended"
    );

    // Wrong passwords: refused; after three, answered 429 at once without checking.
    assert_eq!(
        post_login(server.port, "admin", "wrong password 1").status,
        401
    );
    assert_eq!(post_login(server.port, "root", PASSWORD).status, 401);
    let third = post_login(server.port, "admin", "wrong password 3");
    assert_eq!(third.status, 401);
    assert!(third.body.contains("Wrong user name or password."));
    let throttled = post_login(server.port, "admin", PASSWORD);
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    assert!(throttled.header("set-cookie").is_none());
    // The wait is short at first; then the right password works again.
    let mut status = 0;
    support::wait_until(support::PATIENCE, || {
        status = post_login(server.port, "admin", PASSWORD).status;
        status != 429
    });
    assert_eq!(status, 303);
}

#[test]
fn a_new_password_logs_out_every_session() {
    let server = Server::start("http-repassword");
    assert!(set_password(&server, PASSWORD).status.success());
    let cookie = login(server.port);
    assert!(set_password(&server, "another long password")
        .status
        .success());
    assert_eq!(get(server.port, "/api/hosts", Some(&cookie)).status, 401);
}

#[test]
fn api_shapes_with_pushed_fixture_data() {
    let (server, _config) = server_with("http-api", "");
    let token = server.register("pve2");
    server.register("pve4");
    let client = push_history(&server, "pve2", &token, "DEGRADED");
    let cookie = login(server.port);
    wait_for_hosts(server.port, &cookie, &["pve2", "pve4"]);

    let hosts = get(server.port, "/api/hosts", Some(&cookie)).json();
    assert!(hosts["now"].is_i64());
    let list = hosts["hosts"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let pve2 = &list[0];
    assert_eq!(pve2["name"], "pve2");
    assert_eq!(pve2["status"], "online");
    assert_eq!(pve2["proxmox_version"], "8.2.4");
    assert_eq!(pve2["cpu_count"], 8);
    assert_eq!(pve2["mem_total_bytes"], 67_337_670_656_u64);
    assert_eq!(
        pve2["guests"],
        serde_json::json!({"running": 2, "stopped": 1, "total": 3})
    );
    assert_eq!(pve2["pools"]["worst_health"], "DEGRADED");
    assert_eq!(pve2["pools"]["unhealthy"], serde_json::json!(["rpool"]));
    for key in [
        "status_since",
        "last_seen_at",
        "agent_version",
        "cpu_percent",
        "mem_used_bytes",
        "mem_arc_bytes",
        "load1",
        "load5",
        "load15",
        "uptime_seconds",
        "collected_at",
    ] {
        assert!(pve2.get(key).is_some(), "{key} missing in {pve2:#}");
    }
    assert_eq!(list[1]["name"], "pve4");
    assert_eq!(list[1]["status"], "never_connected");
    assert!(list[1]["cpu_percent"].is_null());

    let one = get(server.port, "/api/hosts/pve2", Some(&cookie)).json();
    assert_eq!(one["name"], "pve2");
    assert_eq!(one["fast"]["data"]["guests"][0]["name"], HOSTILE_GUEST_NAME);
    assert_eq!(one["medium"]["data"]["pools"][0]["health"], "DEGRADED");
    assert_eq!(one["slow"]["data"]["cluster"]["name"], "homelab");
    let series: Vec<&str> = one["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(series.contains(&"cpu_percent") && series.contains(&"guest.100.cpu_percent"));

    let cpu = get(
        server.port,
        "/api/hosts/pve2/series?name=cpu_percent&range=1h",
        Some(&cookie),
    )
    .json();
    assert_eq!(cpu["host"], "pve2");
    assert_eq!(cpu["name"], "cpu_percent");
    assert_eq!(
        cpu["to"].as_i64().unwrap() - cpu["from"].as_i64().unwrap(),
        3600
    );
    let points = cpu["points"].as_array().unwrap();
    assert!((59..=60).contains(&points.len()), "{} points", points.len());
    for key in ["t", "avg", "min", "max"] {
        assert!(points[0][key].is_number(), "{:#}", points[0]);
    }
    let few = get(
        server.port,
        "/api/hosts/pve2/series?name=cpu_percent&from=2h&to=now&max_points=10",
        Some(&cookie),
    )
    .json();
    assert!(few["points"].as_array().unwrap().len() <= 10);
    let year = get(
        server.port,
        "/api/hosts/pve2/series?name=load1&range=1y",
        Some(&cookie),
    );
    assert_eq!(year.status, 200);

    for (path, status) in [
        ("/api/hosts/nobody", 404),
        ("/api/hosts/nobody/series?name=load1", 404),
        ("/api/hosts/pve2/series", 400),
        ("/api/hosts/pve2/series?name=load1&range=2h", 400),
        ("/api/hosts/pve2/series?name=load1&max_points=0", 400),
        ("/api/nothing", 404),
    ] {
        let reply = get(server.port, path, Some(&cookie));
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.json()["error"].is_string(), "{path}");
    }
    let post = request(
        server.port,
        "POST",
        "/api/hosts",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(post.status, 405);
    drop(client);
}

#[test]
fn pages_escape_names_and_tags_from_the_node() {
    let (server, _config) = server_with("http-escape", "");
    let token = server.register("pve2");
    let _client = push_history(&server, "pve2", &token, "DEGRADED");
    let cookie = login(server.port);
    let page = get(server.port, "/hosts/pve2", Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        !page.body.contains(HOSTILE_GUEST_NAME),
        "guest name not escaped"
    );
    assert!(!page.body.contains(HOSTILE_TAG), "tag not escaped");
    assert!(page
        .body
        .contains("&lt;script&gt;alert('guest')&lt;/script&gt;"));
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.body.contains("state: DEGRADED"));
    assert_eq!(page.body.matches("<svg class=\"chart\"").count(), 5);
    let index = get(server.port, "/", Some(&cookie));
    assert!(index.body.contains("is-degraded"));
    assert_eq!(get(server.port, "/hosts/nobody", Some(&cookie)).status, 404);
    let chart = get(
        server.port,
        "/hosts/pve2/chart?m=net&range=24h",
        Some(&cookie),
    );
    assert_eq!(chart.status, 200);
    assert!(chart.body.starts_with("<svg class=\"chart\""));
    assert_eq!(
        get(server.port, "/hosts/pve2/chart?m=x", Some(&cookie)).status,
        400
    );
}

#[test]
fn metrics_are_hidden_unless_configured() {
    let (server, _config) = server_with("http-metrics-off", "");
    let cookie = login(server.port);
    assert_eq!(get(server.port, "/metrics", None).status, 404);
    assert_eq!(get(server.port, "/metrics", Some(&cookie)).status, 404);
}

#[test]
fn metrics_need_the_metrics_token_and_agent_tokens_open_nothing() {
    let metrics_token = "scrape-token-0123456789";
    let (server, _config) = server_with(
        "http-metrics-token",
        &format!("[http]\nmetrics_token = \"{metrics_token}\"\n"),
    );
    let agent_token = server.register("pve1");
    let cookie = login(server.port);
    let bearer = |token: &str| format!("Bearer {token}");
    let with = |auth: &str| {
        request(
            server.port,
            "GET",
            "/metrics",
            &[("Authorization", auth)],
            "",
        )
        .status
    };
    assert_eq!(get(server.port, "/metrics", None).status, 401);
    assert_eq!(
        get(server.port, "/metrics", Some(&cookie)).status,
        401,
        "a session is not a scrape token"
    );
    assert_eq!(with(&bearer("wrong")), 401);
    assert_eq!(with(&bearer(&agent_token)), 401);
    assert_eq!(with(&bearer(metrics_token)), 200);
    // Neither token opens the dashboard.
    for token in [metrics_token, agent_token.as_str()] {
        let reply = request(
            server.port,
            "GET",
            "/api/hosts",
            &[("Authorization", &bearer(token))],
            "",
        );
        assert_eq!(reply.status, 401);
        let reply = request(
            server.port,
            "GET",
            "/",
            &[("Cookie", &format!("pm_session={token}"))],
            "",
        );
        assert_eq!(reply.status, 303);
    }
}

#[test]
fn metrics_from_a_real_agent_and_pushed_history_pass_promtool() {
    let (server, _config) = server_with("http-promtool", "[http]\nmetrics_public = true\n");
    let token1 = server.register("pve1");
    let token2 = server.register("pve2");
    let token3 = server.register("pve3");
    server.register("pve4");
    let _agent = start_agent(&server, "pve1", &token1);
    let _client = push_history(&server, "pve2", &token2, "DEGRADED");
    push_history(&server, "pve3", &token3, "ONLINE").close();
    server.expect_status("pve3", "offline");
    let cookie = login(server.port);
    wait_for_hosts(server.port, &cookie, &["pve1", "pve2", "pve3", "pve4"]);
    wait_for_json(server.port, "/api/hosts/pve1", &cookie, |host| {
        host["status"] == "online" && !host["medium"].is_null() && !host["slow"].is_null()
    });

    let reply = get(server.port, "/metrics", None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = &reply.body;
    for line in [
        "pve_up{id=\"node/pve1\",node=\"pve1\"} 1",
        "pve_up{id=\"node/pve3\",node=\"pve3\"} 0",
        "pve_up{id=\"node/pve4\",node=\"pve4\"} 0",
        "pve_up{id=\"qemu/102\",node=\"pve2\"} 0",
        "node_zfs_zpool_state{node=\"pve2\",zpool=\"rpool\",state=\"degraded\"} 1",
        "pve_memory_size_bytes{id=\"node/pve2\",node=\"pve2\"} 67337670656",
        "proxmox_monitor_connected_agents 2",
        "proxmox_monitor_hosts{status=\"never_connected\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    for name in [
        "pve_cpu_usage_ratio{id=\"node/pve2\"",
        "pve_memory_usage_bytes{id=\"qemu/100\",node=\"pve2\"}",
        "node_load1{node=\"pve1\"}",
        "node_load15{node=\"pve2\"}",
        "pve_guest_info{id=\"qemu/100\",node=\"pve2\",name=\"<script>alert('guest')</script>\"",
        "pve_disk_usage_bytes{id=\"storage/pve2/local-zfs\"",
        "pve_version_info{node=\"pve2\",version=\"8.2.4\"",
        "proxmox_monitor_samples_ingested_total ",
        "proxmox_monitor_database_size_bytes ",
        "proxmox_monitor_network_receive_bytes_per_second{node=\"pve2\",device=\"eno1\"}",
    ] {
        assert!(text.contains(name), "missing {name:?} in:\n{text}");
    }
    // An offline host's old values are not exported as current.
    assert!(!text.contains("node_load1{node=\"pve3\"}"));
    promtool_check(text);
}

/// Runs `promtool check metrics` on `text`. Without promtool the check is skipped with a note,
/// unless `PM_REQUIRE_PROMTOOL=1` (CI), where that is a failure.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
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
                "PM_REQUIRE_PROMTOOL=1 but promtool cannot be run: {e} (apt-get install prometheus)"
            );
            eprintln!("SKIPPED promtool check: {e} (install Debian's `prometheus` package)");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- input:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn responses_are_gzipped_when_the_client_accepts_it() {
    let (server, _config) = server_with("http-gzip", "[http]\nmetrics_public = true\n");
    let token = server.register("pve2");
    let _client = push_history(&server, "pve2", &token, "DEGRADED");
    let cookie = login(server.port);
    for path in [
        "/",
        "/?fragment=1",
        "/api/hosts",
        "/hosts/pve2",
        "/hosts/pve2?fragment=1",
        "/hosts/pve2/chart?m=cpu",
        "/metrics",
        "/assets/app.js",
    ] {
        let plain = get(server.port, path, Some(&cookie));
        let gzipped = request(
            server.port,
            "GET",
            path,
            &[
                ("Cookie", &cookie),
                ("Accept-Encoding", "deflate, gzip;q=0.9"),
            ],
            "",
        );
        assert_eq!((plain.status, gzipped.status), (200, 200), "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(gzipped.header("vary"), Some("Accept-Encoding"), "{path}");
        if plain.wire_bytes < 1024 {
            // Not worth a gzip header.
            assert_eq!(gzipped.header("content-encoding"), None, "{path}");
            continue;
        }
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        assert!(gzipped.wire_bytes < plain.wire_bytes, "{path}: not smaller");
        // Same content (times in it may have moved on by a second).
        assert_eq!(
            gzipped.body.lines().count(),
            plain.body.lines().count(),
            "{path}"
        );
    }
    let refused = request(
        server.port,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0")],
        "",
    );
    assert_eq!(refused.header("content-encoding"), None);
    assert!(refused
        .body
        .contains("pve_up{id=\"node/pve2\",node=\"pve2\"} 1"));
}
