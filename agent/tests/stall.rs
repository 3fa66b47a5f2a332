//! A collection that hangs does not hang the agent: the real agent binary against the real
//! server, with the medium collection stuck in `pvesm status` (a stand-in on `PATH` that
//! blocks on a FIFO until the test releases it — `pvesm` hangs like this on a node whose
//! storage is unreachable). While it is stuck, the agent still joins, pushes the fast sample
//! it already took, heartbeats, logs the skipped samples naming what it is stuck in, and stops
//! cleanly on SIGTERM without waiting for it.
//!
//! A hung *file* read (a FUSE `/etc/pve` whose daemon stopped answering) needs a FUSE mount,
//! which this test cannot make without privileges; the bound on reads, the stuck subtree and
//! the recovery are proven with a blocking reader injected below the real `Collector` in
//! `collect::guard` and `worker` unit tests. The run loop does not tell a stuck read from a
//! stuck command: both are a collection that has not finished.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{ChildGuard, Server, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");
/// The agent sends a heartbeat after 30 s without sending anything (`link::HEARTBEAT_EVERY`).
const HEARTBEAT_PATIENCE: Duration = Duration::from_secs(120);

/// The fixture node without its captured command output, so the agent runs real commands.
fn node_without_captures(dir: &Path) -> std::path::PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for part in ["proc", "sys", "etc", "usr", "var"] {
        std::os::unix::fs::symlink(fixture.join(part), root.join(part)).unwrap();
    }
    root
}

/// Opens the FIFO for writing without waiting, which works only while a reader (the stuck
/// `pvesm`) waits on it, and lets that reader go.
fn release(fifo: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)?;
    file.write_all(b"go\n")
}

#[test]
fn a_collection_stuck_in_a_command_holds_up_neither_the_link_nor_a_stop() {
    let server = Server::start("stall");
    let token = server.register("pve-stall");
    let dir = server.dir.path();
    let root = node_without_captures(dir);

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fifo = dir.join("pvesm.fifo");
    let started = dir.join("pvesm.started");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let script = bin.join("pvesm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\nread line < '{}'\nexit 1\n",
            started.display(),
            fifo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // The bound is far beyond this test: only the test ends the stuck command.
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"{}\"\ntoken = \"{token}\"\nhost_id = \"pve-stall\"\n\
             state_dir = \"{}\"\nroot = \"{}\"\nlog_level = \"debug\"\n\
             source_timeout_seconds = 3600\n\n[intervals]\nfast_seconds = 1\n",
            server.socket_url(),
            dir.join("agent-state").display(),
            root.display()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(AGENT);
    command
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("PATH", path);
    let mut agent = ChildGuard::spawn(command, &dir.join("agent.log"));
    let log = |agent: &ChildGuard| format!("agent log:\n{}", agent.output());

    assert!(
        support::wait_until(PATIENCE, || started.exists()),
        "pvesm never ran; {}",
        log(&agent)
    );
    // The fast sample taken before the stuck medium one is stored, the host is online, and
    // the fast samples due meanwhile are skipped, naming the command.
    server.expect_status("pve-stall", "online");
    assert!(
        support::wait_until(PATIENCE, || String::from_utf8_lossy(
            &server.admin(&["metrics", "pve-stall"]).stdout
        )
        .lines()
        .any(|l| l.trim() == "load1")),
        "no sample stored; {}",
        log(&agent)
    );
    assert!(
        agent.wait_for_output("skipping the fast sample due now", PATIENCE),
        "{}",
        log(&agent)
    );
    assert!(
        agent.output().contains("(in command pvesm status)"),
        "{}",
        log(&agent)
    );
    // The link keeps its rhythm: with nothing else to send, a heartbeat goes out.
    assert!(
        agent.wait_for_output("sending heartbeat", HEARTBEAT_PATIENCE),
        "{}",
        log(&agent)
    );
    server.expect_status("pve-stall", "online");

    // Stopped while the collection is still stuck: the stop does not wait for it.
    support::signal(agent.pid(), libc::SIGTERM);
    let status = agent
        .wait_timeout(PATIENCE)
        .unwrap_or_else(|| panic!("still running after SIGTERM; {}", log(&agent)));
    let output = agent.output();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        output.contains("stopped ("),
        "the loop did not end: {output}"
    );
    assert!(!output.contains("did not close in time"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    assert!(
        output.contains("not waiting for collections still running (")
            && output.contains("the collector is in command pvesm status)"),
        "{output}"
    );
    server.expect_status("pve-stall", "offline");

    // All of that happened while `pvesm` was stuck: it still waits on the FIFO (opening it
    // for writing without waiting works only while it does), and this lets it go.
    let released = release(&fifo);
    assert!(
        released.is_ok(),
        "pvesm was no longer waiting ({released:?}); {output}"
    );
}
