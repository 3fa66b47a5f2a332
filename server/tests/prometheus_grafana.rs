//! `/metrics` as Prometheus and Grafana see it: a real Prometheus (Debian's `prometheus`)
//! scrapes the real server on 127.0.0.1 with the bearer token (and a second job with a wrong
//! token is refused), PromQL through Prometheus's HTTP API returns the hosts' pushed values,
//! and every query of the Grafana dashboard in `packaging/grafana-dashboard.json` uses only
//! metric names the server exports and returns data.
//!
//! Without the `prometheus` binary the Prometheus test says so and passes — unless
//! `PM_REQUIRE_PROMETHEUS=1` (CI), where that fails. The dashboard's names are checked against
//! `/metrics` in any case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
use testkit as support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http_common::*;
use serde_json::Value;
use support::{free_port, wait_until, ChildGuard, Client, Server, ServerOptions, TempDir};

const METRICS_TOKEN: &str = "scrape-token-for-prometheus-0123456789";

/// A server with the metrics token, `pve1` (pool ONLINE) and `pve2` (pool DEGRADED) holding
/// an hour of pushed samples each; the clients stay connected so both hosts are online.
fn server_with_two_hosts(label: &str) -> (Server, TempDir, Vec<Client>) {
    let config_dir = TempDir::new(&format!("{label}-config"));
    let path = config_dir.path().join("server.toml");
    std::fs::write(
        &path,
        format!("[http]\nmetrics_token = \"{METRICS_TOKEN}\"\n"),
    )
    .unwrap();
    let server = Server::start_with(
        label,
        ServerOptions {
            // The clients only push once; nothing may time them out while Prometheus starts.
            idle_timeout_seconds: 3600,
            extra_args: vec!["--config".into(), path.display().to_string()],
        },
    );
    let token1 = server.register("pve1");
    let token2 = server.register("pve2");
    let clients = vec![
        push_history(&server, "pve1", &token1, "ONLINE"),
        push_history(&server, "pve2", &token2, "DEGRADED"),
    ];
    server.expect_status("pve1", "online");
    server.expect_status("pve2", "online");
    (server, config_dir, clients)
}

fn scrape(server: &Server) -> String {
    let reply = request(
        server.port,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {METRICS_TOKEN}"))],
        "",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// The metric names of `# TYPE` lines.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "definition", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// Grafana's variables as a query would see them with "All" selected.
fn substitute_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$node", ".*")
}

/// The metric names an expression selects. A small PromQL reader: string literals, label
/// matchers `{…}`, ranges `[…]` and the label lists of `by`/`without`/`on`/`ignoring`/
/// `group_left`/`group_right` are skipped, functions are identifiers followed by `(`, and
/// aggregation operators and keywords are not names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 25] = [
        // Aggregation operators may be followed by `by (…)` rather than `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips from an opening `open` to after its matching `close` (strings inside respected).
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        let mut in_string = None;
        while i < chars.len() {
            let c = chars[i];
            match in_string {
                Some(_) if c == '\\' => i += 1,
                Some(q) if c == q => in_string = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => in_string = Some(c),
                None if c == open => depth += 1,
                None if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                None => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let followed_by_paren = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && followed_by_paren {
                i = skip_group(next, '(', ')');
            } else if !followed_by_paren && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
            {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers, durations (5m) and exponents (1e3) are no names.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn the_promql_reader_finds_metric_names_and_nothing_else() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(names("node_load1"), ["node_load1"]);
    assert_eq!(
        names(
            r#"pve_cpu_usage_ratio{id=~"(qemu|lxc)/.*", node=~"$node"} * on(id, node) group_left(name) pve_guest_info"#
        ),
        ["pve_cpu_usage_ratio", "pve_guest_info"]
    );
    assert_eq!(
        names(r#"count(node_zfs_zpool_state{state!="online"} == 1) or vector(0)"#),
        ["node_zfs_zpool_state"]
    );
    assert_eq!(
        names("rate(proxmox_monitor_samples_ingested_total[$__rate_interval]) > 1e3"),
        ["proxmox_monitor_samples_ingested_total"]
    );
    assert_eq!(
        names(r#"sum by (node) (a{x="by(y)"}) / ignoring(id) b offset 5m"#),
        ["a", "b"]
    );
    assert_eq!(
        names(r#"label_values(pve_up{id=~"node/.*"}, node)"#),
        ["node", "pve_up"]
    );
}

#[test]
fn grafana_dashboard_queries_use_only_exported_metric_names() {
    let (server, _config, _clients) = server_with_two_hosts("grafana-names");
    let exported = exported_names(&scrape(&server));
    assert!(exported.contains("pve_up"), "{exported:?}");
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "only {} queries found", queries.len());
    let mut used = BTreeSet::new();
    for query in &queries {
        let mut names = metric_names(query);
        // label_values(SELECTOR, LABEL): LABEL is a label, not a metric.
        if let Some(inner) = query.strip_prefix("label_values(") {
            let label = inner
                .trim_end_matches(')')
                .rsplit(',')
                .next()
                .unwrap()
                .trim();
            names.remove(label);
        }
        assert!(!names.is_empty(), "no metric in {query:?}");
        for name in &names {
            assert!(
                exported.contains(name),
                "the dashboard queries {name}, which /metrics does not export (query {query:?});\
                 exported: {exported:?}"
            );
        }
        used.extend(names);
    }
    assert!(used.len() >= 20, "the dashboard uses only {used:?}");
    // Every panel and target reads from the data source chosen in the dashboard's variable.
    let text = dashboard.to_string();
    assert!(
        !text.contains("\"uid\":\"prometheus\""),
        "a hard-wired data source uid"
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
        }
    }
}

/// `prometheus` on a free port with `config`, its data in `dir`.
fn start_prometheus(dir: &Path, config: &str) -> Option<(ChildGuard, u16)> {
    let probe = Command::new("prometheus").arg("--version").output();
    if let Err(e) = probe {
        assert!(
            std::env::var("PM_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "PM_REQUIRE_PROMETHEUS=1 but prometheus cannot be run: {e} (apt-get install prometheus)"
        );
        eprintln!("SKIPPED the Prometheus test: {e} (install Debian's `prometheus` package)");
        return None;
    }
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    for attempt in 1..=5 {
        let port = free_port();
        let log = dir.join(format!("prometheus-{attempt}.log"));
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut prometheus = ChildGuard::spawn(command, &log);
        let ready = wait_until(Duration::from_secs(60), || {
            prometheus.try_wait().is_some()
                || (std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && get(port, "/-/ready", None).status == 200)
        });
        if ready && prometheus.try_wait().is_none() {
            return Some((prometheus, port));
        }
        let output = prometheus.output();
        if output.contains("address already in use") {
            continue;
        }
        panic!("prometheus did not start:\n{output}");
    }
    panic!("prometheus could not bind a free port in 5 attempts");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An instant PromQL query through Prometheus's HTTP API: the `data.result` array.
fn promql(port: u16, query: &str) -> Vec<Value> {
    let reply = get(
        port,
        &format!("/api/v1/query?query={}", url_encode(query)),
        None,
    );
    // Prometheus answers with chunked encoding on larger replies; the JSON is the last line.
    let body = reply
        .body
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let json: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("query {query:?}: not JSON ({e}): {reply:?}"));
    assert_eq!(json["status"], "success", "query {query:?}: {json}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The value of the single sample `query` returns, once it returns one.
fn wait_for_value(port: u16, query: &str) -> f64 {
    let mut last = Vec::new();
    let found = wait_until(Duration::from_secs(60), || {
        last = promql(port, query);
        last.len() == 1
    });
    assert!(found, "{query:?} gave {last:?}");
    last[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_with_the_bearer_token_and_answers_promql_and_every_dashboard_query() {
    let (server, _config, _clients) = server_with_two_hosts("prometheus");
    let dir = TempDir::new("prometheus-data");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: proxmox-monitor\n\
         \x20   authorization:\n\
         \x20     credentials: {METRICS_TOKEN}\n\
         \x20   static_configs:\n\
         \x20     - targets: ['127.0.0.1:{port}']\n\
         \x20 - job_name: wrong-token\n\
         \x20   authorization:\n\
         \x20     credentials: not-the-metrics-token\n\
         \x20   static_configs:\n\
         \x20     - targets: ['127.0.0.1:{port}']\n",
        port = server.port
    );
    let Some((_prometheus, port)) = start_prometheus(dir.path(), &config) else {
        return;
    };

    assert_eq!(wait_for_value(port, r#"up{job="proxmox-monitor"}"#), 1.0);
    assert_eq!(wait_for_value(port, r#"up{job="wrong-token"}"#), 0.0);
    let targets = get(port, "/api/v1/targets", None);
    let refused = targets.body.lines().find(|l| l.starts_with('{')).unwrap();
    let refused: Value = serde_json::from_str(refused).unwrap();
    let wrong = refused["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["labels"]["job"] == "wrong-token")
        .unwrap()
        .clone();
    assert!(
        wrong["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{wrong}"
    );

    // The hosts' values, as pushed (see http_common::push_history and fixtures/protocol/).
    assert_eq!(wait_for_value(port, r#"node_load1{node="pve1"}"#), 3.0);
    assert_eq!(
        wait_for_value(port, r#"pve_memory_size_bytes{id="node/pve1"}"#),
        67_337_670_656.0
    );
    assert_eq!(
        wait_for_value(
            port,
            r#"node_zfs_zpool_state{node="pve2",zpool="rpool",state="degraded"}"#
        ),
        1.0
    );
    assert_eq!(
        wait_for_value(port, r#"count(pve_up{id=~"(qemu|lxc)/.*"} == 1)"#),
        4.0,
        "two running guests on each host"
    );
    assert_eq!(
        wait_for_value(port, "proxmox_monitor_connected_agents"),
        2.0
    );

    // Every dashboard query parses and returns data (with "All" nodes and a 1m rate window).
    let queries: Vec<String> = dashboard_queries(&dashboard())
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .map(|q| substitute_variables(q))
        .collect();
    let mut empty: Vec<&String> = queries.iter().collect();
    wait_until(Duration::from_secs(90), || {
        empty.retain(|q| promql(port, q).is_empty());
        empty.is_empty()
    });
    assert!(
        empty.is_empty(),
        "dashboard queries without data: {empty:#?}"
    );
}
