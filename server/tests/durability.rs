//! What an `ok` reply promises, checked against the real server binary: a `kill -9` in the
//! middle of a stream of pushes (while the server moves points into the history file's
//! chunks, merges late samples into them and rolls them up) loses no acknowledged sample and
//! leaves an intact database with no half-stored sample, and a resent sample is acknowledged
//! again but stored once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inspect;
use testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::sample::{FastSample, GuestFast, GuestStatus, GuestType};
use serde_json::{json, Value};
use support::{Client, Received, Server, ServerOptions, PATIENCE};

/// A fast sample with a few guests: a transaction of a realistic shape, dozens of points.
fn sample(seed: u32) -> FastSample {
    let f = f64::from(seed % 100);
    FastSample {
        hostname: Some("pusher".into()),
        load1: Some(0.5 + f / 100.0),
        load5: Some(0.4),
        load15: Some(0.3),
        cpu_percent: Some(f),
        mem_total_bytes: Some(64 << 30),
        mem_available_bytes: Some(32 << 30),
        mem_used_bytes: Some(32 << 30),
        uptime_seconds: Some(86_400 + u64::from(seed)),
        guests: (0..8)
            .map(|i| GuestFast {
                vmid: 100 + i,
                kind: GuestType::Qemu,
                status: GuestStatus::Running,
                uptime_seconds: Some(3600),
                cpu_percent: Some(f / 2.0 + f64::from(i)),
                cpu_host_percent: Some(f / 8.0),
                mem_used_bytes: Some(2 << 30),
                mem_limit_bytes: Some(4 << 30),
                net_in_bytes_per_s: Some(1000.0 + f),
                net_out_bytes_per_s: Some(500.0),
                ..GuestFast::default()
            })
            .collect(),
        ..FastSample::default()
    }
}

fn points_per_sample() -> usize {
    sample(0).series_points().len()
}

fn push_payload(t: i64, seed: u32) -> Value {
    json!({
        "collected_at": common::time::format_rfc3339(common::time::from_unix_seconds(t)),
        "data": serde_json::to_value(sample(seed)).unwrap(),
    })
}

/// Pushes `metric:fast` with time `t` and waits for its reply: `Some(true)` for `ok`,
/// `Some(false)` for an error reply, `None` when the connection ended first.
fn push_and_wait(client: &mut Client, t: i64, seed: u32) -> Option<bool> {
    let payload = push_payload(t, seed);
    let msg_ref = client.next_ref();
    let frame = common::Frame::new(
        client.join_ref.as_deref(),
        Some(&msg_ref),
        &client.topic.clone(),
        "metric:fast",
        payload,
    );
    client
        .try_send_message(tungstenite::Message::text(frame.encode()))
        .ok()?;
    loop {
        match client.recv(PATIENCE) {
            Received::Frame(reply) if reply.msg_ref.as_deref() == Some(msg_ref.as_str()) => {
                return Some(reply.as_reply().map(|r| r.0) == Some("ok"));
            }
            Received::Frame(_) => {}
            Received::Text(_) | Received::Closed | Received::Timeout => return None,
        }
    }
}

/// A server that moves raw points into the history file every second.
fn moving_every_second(dir_label: &str) -> (ServerOptions, std::path::PathBuf) {
    let config = std::env::temp_dir().join(format!(
        "pm-durability-{dir_label}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&config, "maintenance_interval_seconds = 1\n").unwrap();
    let options = ServerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    };
    (options, config)
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_sample() {
    const PUSHERS: usize = 4;
    const ROUNDS: i64 = 3;
    let (options, config) = moving_every_second("kill9");
    let mut server = Server::start_with("durable-kill9", options.clone());
    let tokens: Vec<(String, String)> = (0..PUSHERS)
        .map(|i| {
            let name = format!("pusher-{i}");
            let token = server.register(&name);
            (name, token)
        })
        .collect();
    // Two days ago (rounds 40 000 s apart, all in the past): every sample is older than the
    // move's bound at once, so the maintenance thread moves (and merges, and rolls up) while
    // samples keep arriving; the kills land somewhere among all of it.
    let base = common::time::unix_seconds(std::time::SystemTime::now()) - 2 * 86_400;
    let per_sample = points_per_sample();
    let mut acked_all: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); PUSHERS];
    for round in 0..ROUNDS {
        let acked_total = Arc::new(AtomicUsize::new(0));
        let acked: Arc<Mutex<Vec<BTreeSet<i64>>>> =
            Arc::new(Mutex::new(vec![BTreeSet::new(); PUSHERS]));
        let pushers: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, (name, token))| {
                let mut client = server.joined_client(name, token);
                let (acked, acked_total) = (acked.clone(), acked_total.clone());
                std::thread::spawn(move || {
                    // As fast as replies come, one in flight, each with its own second (even
                    // ones); every tenth one late, an odd second among those sent 20 pushes
                    // before (a replayed spool), which lands in chunks already written.
                    for n in 0i64.. {
                        let t = if n % 10 == 9 && n >= 20 {
                            base + round * 40_000 + 2 * (n - 20) + 1
                        } else {
                            base + round * 40_000 + 2 * n
                        };
                        match push_and_wait(&mut client, t, n as u32) {
                            Some(true) => {
                                acked.lock().unwrap()[i].insert(t);
                                acked_total.fetch_add(1, Ordering::SeqCst);
                            }
                            Some(false) => panic!("push {n} of pusher {i} refused"),
                            // The connection died with push n unanswered.
                            None => return n + 1,
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        // Wait for some pushes and, after the first round, for points in the history file.
        let moved_before = inspect::points_in_history(&server.database());
        assert!(
            support::wait_until(PATIENCE * 2, || {
                acked_total.load(Ordering::SeqCst) >= 300
                    && (round == 0 || inspect::points_in_history(&server.database()) > moved_before)
            }),
            "round {round}: {} pushes acknowledged, {} points moved; server log:\n{}",
            acked_total.load(Ordering::SeqCst),
            inspect::points_in_history(&server.database()),
            server.log()
        );
        server.stop_with(libc::SIGKILL);
        let sent: Vec<i64> = pushers.into_iter().map(|p| p.join().unwrap()).collect();
        let acked = acked.lock().unwrap().clone();
        server.restart(&options);

        let db = inspect::open_database(&server.database());
        let check: Vec<String> = db
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(check, ["ok"]);
        for (i, (name, _)) in tokens.iter().enumerate() {
            acked_all[i].extend(&acked[i]);
            let stored = inspect::stored_per_time(&server.database(), name);
            let missing: Vec<&i64> = acked_all[i]
                .iter()
                .filter(|t| !stored.contains_key(t))
                .collect();
            assert!(
                missing.is_empty(),
                "round {round}, {name}: acknowledged but not stored: {missing:?}"
            );
            // Each sample is one transaction: all of its points or none.
            for (t, n) in &stored {
                assert_eq!(*n, per_sample, "{name}: sample at {t} is partly stored");
            }
            // Stored but unacknowledged: at most the one in flight at each kill.
            assert!(
                stored.len() <= acked_all[i].len() + usize::try_from(round + 1).unwrap(),
                "{name}: {} stored, {} acknowledged",
                stored.len(),
                acked_all[i].len()
            );
            eprintln!(
                "round {round}, {name}: {} pushes sent, {} acknowledged before the kill, {} stored",
                sent[i],
                acked[i].len(),
                stored.len()
            );
        }
        eprintln!(
            "round {round}: {} points in the history file",
            inspect::points_in_history(&server.database())
        );
    }
    let _ = std::fs::remove_file(&config);

    // The restarted server takes samples again.
    let (name, token) = &tokens[0];
    let mut client = server.joined_client(name, token);
    assert_eq!(push_and_wait(&mut client, base - 1, 7), Some(true));
}

#[test]
fn a_resent_sample_is_acknowledged_again_and_stored_once() {
    let server = Server::start("durable-resend");
    let token = server.register("pve-resend");
    let t = common::time::unix_seconds(std::time::SystemTime::now());
    let mut client = server.joined_client("pve-resend", &token);
    assert_eq!(push_and_wait(&mut client, t, 1), Some(true));
    assert_eq!(push_and_wait(&mut client, t, 1), Some(true));
    // And again on a new connection, as an agent replaying its spool after a lost reply.
    client.close();
    let mut client = server.joined_client("pve-resend", &token);
    assert_eq!(push_and_wait(&mut client, t, 1), Some(true));

    let stored = inspect::stored_per_time(&server.database(), "pve-resend");
    assert_eq!(stored, BTreeMap::from([(t, points_per_sample())]));
    let db = inspect::open_database(&server.database());
    let latest: i64 = db
        .query_row("SELECT count(*) FROM latest", [], |row| row.get(0))
        .unwrap();
    assert_eq!(latest, 1);
}
