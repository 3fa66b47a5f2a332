//! No sample lost across outages, with the real agent and server binaries: the server stopped
//! for several agent intervals, the agent restarted (SIGINT and `kill -9`) while the server is
//! down. Each test counts what the agent collected (its debug line per spooled sample) and
//! compares that with the distinct times stored for `load1` (`query … --json`): equal counts,
//! and the primary key (series, time) makes a duplicate impossible.
//!
//! Collection reads the fixture tree `fixtures/pve-node`, so every fast sample has `load1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{ChildGuard, Server, ServerOptions, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");
const HOST: &str = "pve-durable";
/// The line `run.rs` logs at debug level for every sample it spooled.
const COLLECTED_FAST: &str = "collected fast sample (spool seq ";
/// Reconnecting after an outage can wait out a few backoff steps (1, 2, 4, 8 s ± 25 %).
const CATCH_UP: Duration = Duration::from_secs(60);

fn now_unix() -> i64 {
    common::time::unix_seconds(std::time::SystemTime::now())
}

/// An agent config: fast samples every second from the fixture tree, debug log.
fn write_config(dir: &Path, server_url: &str, token: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
    let path = dir.join("agent.toml");
    let text = format!(
        "server_url = \"{server_url}\"\ntoken = \"{token}\"\nhost_id = \"{HOST}\"\n\
         state_dir = \"{}\"\nroot = \"{}\"\nlog_level = \"debug\"\n\n\
         [intervals]\nfast_seconds = 1\nmedium_seconds = 3600\nslow_seconds = 3600\n",
        dir.join("agent-state").display(),
        root.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start_agent(config: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(AGENT);
    command.arg("--config").arg(config).arg("run");
    ChildGuard::spawn(command, log)
}

/// Fast samples the agent processes writing `logs` have spooled.
fn collected(logs: &[&Path]) -> usize {
    logs.iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches(COLLECTED_FAST)
                .count()
        })
        .sum()
}

/// The times stored for `load1` since `from`, through the server's `query` command; empty
/// while the series does not exist yet.
fn stored_load1(server: &Server, from: i64) -> Vec<i64> {
    let from = from.to_string();
    // Stamps may run a second ahead of the clock; look well past now.
    let to = (now_unix() + 3600).to_string();
    let out = server.admin(&[
        "query", HOST, "load1", "--json", "--from", &from, "--to", &to,
    ]);
    if !out.status.success() {
        return Vec::new();
    }
    let points: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("query --json prints a JSON array");
    points.iter().map(|p| p["t"].as_i64().unwrap()).collect()
}

/// Waits until every fast sample the agent collected is stored: the collected count is the same
/// before and after reading the stored times, and equals their number. Returns that number.
fn expect_all_stored(server: &Server, from: i64, logs: &[&Path], agent_log: &str) -> usize {
    let deadline = Instant::now() + CATCH_UP;
    let mut last = (0, Vec::new(), 0);
    while Instant::now() < deadline {
        let before = collected(logs);
        let times = stored_load1(server, from);
        let after = collected(logs);
        if before == after && times.len() == before {
            let mut distinct = times.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                times.len(),
                "a time stored twice: {times:?}"
            );
            return before;
        }
        assert!(
            times.len() <= after,
            "more samples stored ({}) than the agent collected ({after})",
            times.len()
        );
        last = (before, times, after);
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "collected {} (then {}) fast samples but {} are stored after {CATCH_UP:?}: {:?}\n\
         agent log:\n{agent_log}\nserver log:\n{}",
        last.0,
        last.2,
        last.1.len(),
        last.1,
        server.log()
    );
}

fn wait_for_samples(server: &Server, from: i64, n: usize, agent: &ChildGuard) {
    assert!(
        support::wait_until(PATIENCE * 2, || stored_load1(server, from).len() >= n),
        "fewer than {n} samples stored; agent log:\n{}\nserver log:\n{}",
        agent.output(),
        server.log()
    );
}

#[test]
fn samples_collected_while_the_server_is_down_are_stored_exactly_once() {
    let mut server = Server::start("durable-outage");
    let token = server.register(HOST);
    let from = now_unix() - 5;
    let config = write_config(server.dir.path(), &server.socket_url(), &token);
    let log = server.dir.path().join("agent.log");
    let agent = start_agent(&config, &log);
    wait_for_samples(&server, from, 2, &agent);

    server.stop_with(libc::SIGINT);
    let at_stop = collected(&[&log]);
    // The outage: at least five fast intervals (about 5 s).
    assert!(
        support::wait_until(Duration::from_secs(30), || collected(&[&log])
            >= at_stop + 5),
        "the agent stopped collecting while the server was down:\n{}",
        agent.output()
    );
    server.restart(&ServerOptions::default());

    let total = expect_all_stored(&server, from, &[&log], &agent.output());
    assert!(
        total >= at_stop + 5,
        "{total} samples, {at_stop} before the stop"
    );
    eprintln!("{total} fast samples collected and stored, {at_stop} before the outage");
    assert!(
        agent
            .output()
            .contains("samples collected while disconnected"),
        "the agent did not replay a backlog:\n{}",
        agent.output()
    );
}

/// Server down; the agent is stopped with `sig` and started again; the server comes back.
fn spool_survives_an_agent_restart_while_the_server_is_down(label: &str, sig: i32) {
    let mut server = Server::start(label);
    let token = server.register(HOST);
    let from = now_unix() - 5;
    let config = write_config(server.dir.path(), &server.socket_url(), &token);
    let first_log = server.dir.path().join("agent-1.log");
    let mut first = start_agent(&config, &first_log);
    wait_for_samples(&server, from, 2, &first);

    server.stop_with(libc::SIGINT);
    let at_stop = collected(&[&first_log]);
    assert!(
        support::wait_until(Duration::from_secs(30), || collected(&[&first_log])
            >= at_stop + 3),
        "no samples collected while the server was down:\n{}",
        first.output()
    );
    support::signal(first.pid(), sig);
    assert!(
        first.wait_timeout(PATIENCE).is_some(),
        "the agent did not exit on signal {sig}:\n{}",
        first.output()
    );
    // Stay down for two seconds: a new process restarts its per-second stamps, and must not
    // reuse a second the old one stamped (that would be one point for two samples).
    std::thread::sleep(Duration::from_secs(2));

    let second_log = server.dir.path().join("agent-2.log");
    let second = start_agent(&config, &second_log);
    assert!(
        support::wait_until(Duration::from_secs(30), || collected(&[&second_log]) >= 3),
        "the restarted agent does not collect:\n{}",
        second.output()
    );
    assert!(
        second
            .output()
            .contains("samples from before the restart are waiting"),
        "the restarted agent found no spooled samples:\n{}",
        second.output()
    );
    server.restart(&ServerOptions::default());

    let logs = format!(
        "first agent:\n{}\nsecond agent:\n{}",
        first.output(),
        second.output()
    );
    let total = expect_all_stored(&server, from, &[&first_log, &second_log], &logs);
    assert!(
        total >= at_stop + 6,
        "{total} samples, {at_stop} before the stop"
    );
    eprintln!("{label}: {total} fast samples collected and stored, {at_stop} before the outage");
}

#[test]
fn spool_survives_an_agent_sigint_while_the_server_is_down() {
    spool_survives_an_agent_restart_while_the_server_is_down("durable-agent-int", libc::SIGINT);
}

#[test]
fn spool_survives_an_agent_kill_9_while_the_server_is_down() {
    spool_survives_an_agent_restart_while_the_server_is_down("durable-agent-kill", libc::SIGKILL);
}

/// The server freezes (SIGSTOP: the socket stays open, nothing is answered) while the agent has
/// pushes in flight; the agent is stopped with SIGINT. It waits briefly for the replies, leaves,
/// and exits by itself, keeping the unanswered samples; once the server thaws, the restarted
/// agent sends them again and every sample is stored exactly once.
#[test]
fn a_stop_while_the_server_hangs_keeps_the_unanswered_samples() {
    let server = Server::start("durable-hang");
    let token = server.register(HOST);
    let from = now_unix() - 5;
    let config = write_config(server.dir.path(), &server.socket_url(), &token);
    let first_log = server.dir.path().join("agent-1.log");
    let mut first = start_agent(&config, &first_log);
    wait_for_samples(&server, from, 2, &first);

    support::signal(server.process.pid(), libc::SIGSTOP);
    let at_freeze = collected(&[&first_log]);
    assert!(
        support::wait_until(Duration::from_secs(30), || collected(&[&first_log])
            >= at_freeze + 2),
        "the agent stopped collecting while the server hung:\n{}",
        first.output()
    );
    support::signal(first.pid(), libc::SIGINT);
    let status = first.wait_timeout(PATIENCE);
    support::signal(server.process.pid(), libc::SIGCONT);
    let log = first.output();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "agent log:\n{log}");
    assert!(
        log.contains("still unanswered; they stay in the spool"),
        "the agent did not drain its window:\n{log}"
    );
    assert!(
        log.contains("stopped ("),
        "the loop did not end by itself:\n{log}"
    );
    assert!(!log.contains("did not close in time"), "{log}");
    let stopped_at = now_unix();

    // A new process must not stamp a second the old one used (see above).
    support::wait_until(PATIENCE, || now_unix() >= stopped_at + 2);
    let second_log = server.dir.path().join("agent-2.log");
    let mut second = start_agent(&config, &second_log);
    // The thawed server may store what reached its socket before the first agent left; the
    // unanswered samples are in the spool all the same, and the new process finds them.
    assert!(
        second.wait_for_output("samples from before the restart are waiting", PATIENCE),
        "the unanswered samples were not kept:\nfirst agent:\n{log}\nsecond agent:\n{}",
        second.output()
    );
    let logs = format!("first agent:\n{log}\nsecond agent:\n{}", second.output());
    let total = expect_all_stored(&server, from, &[&first_log, &second_log], &logs);
    eprintln!("{total} fast samples collected and stored, {at_freeze} before the hang");
}
