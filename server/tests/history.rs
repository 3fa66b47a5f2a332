//! Metric history in the running server: the maintenance thread moves raw points into the
//! history file's chunks and rolls finished buckets up (and recomputes one that a replayed
//! sample lands in), `db-stats` counts them, and `query` reads the rolled-up tier for old
//! ranges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inspect;
use testkit as support;

use serde_json::{json, Value};
use support::{wait_until, Server, ServerOptions, PATIENCE};

fn push_load(client: &mut support::Client, collected_at: i64, load1: f64) {
    let when = common::time::format_rfc3339(common::time::from_unix_seconds(collected_at));
    let msg_ref = client.push(
        "metric:fast",
        json!({"collected_at": when, "data": {"load1": load1}}),
    );
    let reply = client.recv_reply_to(&msg_ref);
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
}

fn rollup(server: &Server, t: i64) -> Option<(f64, f64, f64, i64)> {
    let conn = rusqlite::Connection::open(server.database()).unwrap();
    conn.query_row(
        "SELECT avg, min, max, n FROM rollups WHERE tier = 1800 AND t = ?1",
        [t],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .ok()
}

#[test]
fn the_running_server_rolls_up_history_and_recomputes_late_buckets() {
    let config = std::env::temp_dir().join(format!("pm-history-{}.toml", std::process::id()));
    std::fs::write(&config, "maintenance_interval_seconds = 1\n").unwrap();
    let options = ServerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    };
    let server = Server::start_with("history-rollup", options);
    let _ = std::fs::remove_file(&config);
    let token = server.register("pve1");
    let mut client = server.joined_client("pve1", &token);
    let now = common::time::now_unix();
    // Three hours ago, in one 30-minute bucket.
    let bucket = (now - 3 * 3600).div_euclid(1800) * 1800;
    push_load(&mut client, bucket + 60, 1.0);
    push_load(&mut client, bucket + 120, 3.0);

    // The maintenance thread's first pass comes a few seconds after the start.
    assert!(
        wait_until(PATIENCE, || rollup(&server, bucket).is_some()),
        "no 30-minute rollup appeared; server log:\n{}",
        server.log()
    );
    assert_eq!(rollup(&server, bucket), Some((2.0, 1.0, 3.0, 2)));
    // The same pass moved those raw points (older than 30 s) into the history file.
    let in_recent = || -> i64 {
        inspect::open_database(&server.database())
            .query_row("SELECT count(*) FROM recent", [], |r| r.get(0))
            .unwrap()
    };
    let in_history = || inspect::points_in_history(&server.database());
    assert!(
        wait_until(PATIENCE, || in_history() == 2),
        "points not moved: {} in history, {} in recent",
        in_history(),
        in_recent()
    );
    assert_eq!(in_recent(), 0);
    // db-stats tells the same, per tier and file.
    let out = server.admin(&["db-stats", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tier = |name: &str, file: &str| -> Value {
        stats["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == name && t["file"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} tier in {file}: {stats}"))
    };
    assert_eq!(tier("raw", "history")["points"], 2);
    assert!(tier("raw", "history")["bytes"].as_u64().unwrap() > 0);
    assert!(tier("30m", "main")["points"].as_u64().unwrap() >= 1);
    assert_eq!(stats["files"].as_array().unwrap().len(), 2);
    let text = server.admin(&["db-stats"]);
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("B/POINT"));

    // A sample replayed into that finished bucket makes the next pass recompute it.
    push_load(&mut client, bucket + 180, 5.0);
    assert!(
        wait_until(PATIENCE, || rollup(&server, bucket)
            == Some((3.0, 1.0, 5.0, 3))),
        "the late sample was not rolled up: {:?}",
        rollup(&server, bucket)
    );

    // An old range is answered from the rollups (raw points are kept 7 days, so ask for 8).
    let out = server.admin(&["query", "pve1", "load1", "--from", "8d", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let points: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &points[0];
    assert_eq!(first["t"], bucket);
    assert_eq!(
        (
            first["avg"].as_f64(),
            first["min"].as_f64(),
            first["max"].as_f64()
        ),
        (Some(3.0), Some(1.0), Some(5.0))
    );
}
