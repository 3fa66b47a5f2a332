//! The agent over `wss://` to the real server speaking TLS itself (`tls_cert`, `tls_key`), with
//! a private CA and server certificate made with the `openssl` CLI (`testkit::Pki`). With
//! `ca_file` the host comes online; without it the agent reports the certificate problem and
//! keeps retrying, never online, never panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{ChildGuard, Pki, Server, ServerOptions, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");

/// The real server with HTTPS and `wss://` on its port, and the PKI it uses.
fn tls_server(label: &str) -> (Server, Pki) {
    let files = support::TempDir::new(&format!("{label}-pki"));
    let pki = Pki::new(files.path(), "server");
    let config = files.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        label,
        ServerOptions {
            extra_args: vec!["--config".into(), config.display().to_string()],
            ..ServerOptions::default()
        },
    );
    // The server has read the pair; the files can go with the server's own dir.
    let pki = Pki {
        ca: copy_into(&pki.ca, server.dir.path()),
        cert: copy_into(&pki.cert, server.dir.path()),
        key: copy_into(&pki.key, server.dir.path()),
    };
    (server, pki)
}

fn copy_into(file: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &to).unwrap();
    to
}

fn write_config(dir: &Path, url: &str, token: &str, ca_file: Option<&Path>) -> PathBuf {
    let path = dir.join("agent.toml");
    let ca = ca_file
        .map(|p| format!("ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "server_url = \"{url}\"\ntoken = \"{token}\"\nhost_id = \"pve-tls\"\n\
             state_dir = \"{}\"\n{ca}\n[intervals]\nfast_seconds = 1\n",
            dir.join("agent-state").display()
        ),
    )
    .unwrap();
    path
}

fn start_agent(config: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(AGENT);
    command.arg("--config").arg(config).arg("run");
    ChildGuard::spawn(command, log)
}

#[test]
fn agent_with_the_private_ca_connects_over_wss() {
    let (server, pki) = tls_server("wss-ok");
    let token = server.register("pve-tls");
    let url = format!("wss://127.0.0.1:{}/socket/websocket", server.port);
    let config = write_config(server.dir.path(), &url, &token, Some(&pki.ca));
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));

    let online = support::wait_until(PATIENCE, || {
        server.status("pve-tls").as_deref() == Some("online")
    });
    assert!(
        online,
        "not online over wss; agent log:\n{}\nserver log:\n{}",
        agent.output(),
        server.log()
    );
    // A fast sample is stored: its series exist (the ingest line is at debug level now).
    assert!(
        support::wait_until(PATIENCE, || String::from_utf8_lossy(
            &server.admin(&["metrics", "pve-tls"]).stdout
        )
        .lines()
        .any(|l| l.trim() == "load1")),
        "no sample over wss; agent log:\n{}",
        agent.output()
    );
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    server.expect_status("pve-tls", "offline");
    assert!(!agent.output().contains("panicked"), "{}", agent.output());
}

#[test]
fn agent_without_the_ca_refuses_the_certificate_and_keeps_retrying() {
    let (server, _pki) = tls_server("wss-untrusted");
    let token = server.register("pve-tls");
    let url = format!("wss://127.0.0.1:{}/socket/websocket", server.port);
    let config = write_config(server.dir.path(), &url, &token, None);
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));

    assert!(
        agent.wait_for_output("certificate", PATIENCE),
        "no certificate error reported; agent log:\n{}",
        agent.output()
    );
    // It retries (backoff starts at ~1 s): a second attempt is reported the same way.
    assert!(
        support::wait_until(PATIENCE, || agent.output().matches("certificate").count()
            >= 2),
        "no retry; agent log:\n{}",
        agent.output()
    );
    assert!(
        agent.try_wait().is_none(),
        "agent exited:\n{}",
        agent.output()
    );
    assert_ne!(server.status("pve-tls").as_deref(), Some("online"));
    assert!(!agent.output().contains("panicked"), "{}", agent.output());
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
}
