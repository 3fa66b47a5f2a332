//! HTTPS and `wss://` served by the server itself (`tls_cert`, `tls_key`), end to end with a
//! private CA made by the `openssl` CLI: curl trusting that CA (and refusing without it), the
//! real agent with `ca_file`, the session cookie marked `Secure`, plain HTTP on the TLS port
//! answered in plain HTTP; the certificate replaced and reloaded on SIGHUP (a bad new pair
//! keeps the old one); a bad pair at start refused with an error naming the file. Chromium
//! trusting the CA is in `browser.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_common::{set_password, tls_server, PASSWORD};
use serde_json::Value;
use testkit::{curl, server_bin, wait_until, ChildGuard, Pki, Server, TempDir, PATIENCE};

fn https(server: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.port)
}

/// An agent config for host `name` reading the fixture node, over `url`, trusting `ca`.
fn agent_config(dir: &Path, name: &str, url: &str, token: &str, ca: Option<&Path>) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
    let path = dir.join(format!("agent-{name}.toml"));
    let ca = ca
        .map(|p| format!("ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "server_url = \"{url}\"\ntoken = \"{token}\"\nhost_id = \"{name}\"\nroot = \"{}\"\n\
             state_dir = \"{}\"\n{ca}[intervals]\nfast_seconds = 1\nmedium_seconds = 2\n\
             slow_seconds = 3\n",
            root.display(),
            dir.join(format!("state-{name}")).display()
        ),
    )
    .unwrap();
    path
}

/// `curl -i` trusting `ca`: the status line's code, the head and the body.
fn curl_i(ca: &Path, args: &[&str]) -> (u16, String, String) {
    let mut all = vec!["-i"];
    all.extend(args);
    let (code, out, err) = curl(Some(ca), &all);
    assert_eq!(code, 0, "curl {args:?} failed ({code}): {err}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn https_and_wss_with_a_private_ca() {
    let files = TempDir::new("tls-pki");
    let pki = Pki::new(files.path(), "a");
    let server = tls_server("tls-e2e", files.path(), &pki, "");
    assert!(set_password(&server, PASSWORD).status.success());
    let token = server.register("pve-tls");

    // curl trusting the CA gets the page; without it, the certificate is refused (60).
    let (code, body, err) = curl(Some(&pki.ca), &[&https(&server, "/healthz")]);
    assert_eq!(
        code,
        0,
        "curl with the CA: {err}\nserver log:\n{}",
        server.log()
    );
    assert!(body.contains("ok"), "{body}");
    let (code, _, err) = curl(None, &[&https(&server, "/healthz")]);
    assert_eq!(
        code, 60,
        "curl without the CA must refuse the certificate: {err}"
    );

    // Plain HTTP on the TLS port: a page is redirected to its https:// URL, in plain HTTP.
    let (code, out, err) = curl(
        None,
        &[
            "-i",
            &format!("http://127.0.0.1:{}/hosts/x?a=1", server.port),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 301"), "{out}");
    assert!(
        out.contains(&format!(
            "location: https://127.0.0.1:{}/hosts/x?a=1",
            server.port
        )) || out.contains(&format!(
            "Location: https://127.0.0.1:{}/hosts/x?a=1",
            server.port
        )),
        "{out}"
    );

    // The login over HTTPS sets a Secure cookie (no [http] secure_cookies needed).
    let (status, head, _) = curl_i(
        &pki.ca,
        &[
            "--data",
            &format!(
                "username=admin&password={}&next=%2F",
                PASSWORD.replace(' ', "+")
            ),
            &https(&server, "/login"),
        ],
    );
    assert_eq!(status, 303, "{head}");
    let set_cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The real agent over wss:// with ca_file: online, its samples stored and shown.
    let url = format!("wss://127.0.0.1:{}/socket/websocket", server.port);
    let config = agent_config(server.dir.path(), "pve-tls", &url, &token, Some(&pki.ca));
    let mut agent = testkit::start_agent(&config, &server.dir.path().join("agent.log"));
    server.expect_status("pve-tls", "online");
    let mut last = Value::Null;
    let sampled = wait_until(PATIENCE, || {
        let (status, _, body) = curl_i(
            &pki.ca,
            &[
                "-H",
                &format!("Cookie: {cookie}"),
                &https(&server, "/api/hosts/pve-tls"),
            ],
        );
        last = serde_json::from_str(&body).unwrap_or(Value::Null);
        status == 200 && !last["fast"].is_null() && !last["medium"].is_null()
    });
    assert!(
        sampled,
        "no samples over wss://; last {last:#}\nagent log:\n{}",
        agent.output()
    );
    // A clean stop closes the TLS session; the server sees the agent leave.
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    server.expect_status("pve-tls", "offline");
    assert!(!agent.output().contains("panicked"), "{}", agent.output());

    // An agent configured with ws:// for the TLS port: refused, and the log says why.
    let plain_url = format!("ws://127.0.0.1:{}/socket/websocket", server.port);
    let config = agent_config(server.dir.path(), "pve-tls", &plain_url, &token, None);
    let _agent = testkit::start_agent(&config, &server.dir.path().join("agent-ws.log"));
    assert!(
        wait_until(PATIENCE, || server
            .log()
            .contains("an agent configured with ws:// instead of wss://?")),
        "server log:\n{}",
        server.log()
    );
    assert_eq!(server.status("pve-tls").as_deref(), Some("offline"));
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_new_pair_keeps_the_old_one() {
    let files = TempDir::new("tls-reload-pki");
    let a = Pki::new(files.path(), "a");
    let b = Pki::new(files.path(), "b");
    let mut server = tls_server("tls-reload", files.path(), &a, "");
    let healthz = https(&server, "/healthz");
    assert_eq!(curl(Some(&a.ca), &[&healthz]).0, 0);
    assert_eq!(curl(Some(&b.ca), &[&healthz]).0, 60);

    // New files, then SIGHUP: new connections get b's certificate.
    std::fs::copy(&b.cert, files.path().join("cert.pem")).unwrap();
    std::fs::copy(&b.key, files.path().join("key.pem")).unwrap();
    testkit::signal(server.process.pid(), libc::SIGHUP);
    assert!(
        wait_until(PATIENCE, || server
            .log()
            .contains("SIGHUP: reloaded the TLS certificate")),
        "server log:\n{}",
        server.log()
    );
    let (code, _, err) = curl(Some(&b.ca), &[&healthz]);
    assert_eq!(code, 0, "after the reload, b's CA: {err}");
    assert_eq!(curl(Some(&a.ca), &[&healthz]).0, 60);

    // A mismatched pair (a's certificate, b's key): an error naming the key file, and b's
    // pair stays in use.
    std::fs::copy(&a.cert, files.path().join("cert.pem")).unwrap();
    testkit::signal(server.process.pid(), libc::SIGHUP);
    let key_file = files.path().join("key.pem").display().to_string();
    assert!(
        wait_until(PATIENCE, || server.log().lines().any(|l| l
            .contains("SIGHUP: TLS: ")
            && l.contains(&key_file)
            && l.contains("does not belong")
            && l.contains("keeping the certificate in use"))),
        "server log:\n{}",
        server.log()
    );
    assert_eq!(curl(Some(&b.ca), &[&healthz]).0, 0);
    // A certificate file that is no certificate at all: the same.
    std::fs::write(files.path().join("cert.pem"), "garbage\n").unwrap();
    testkit::signal(server.process.pid(), libc::SIGHUP);
    assert!(
        wait_until(PATIENCE, || server.log().contains("no certificate in it")),
        "server log:\n{}",
        server.log()
    );
    // A client that sent nothing yet and one stuck in its handshake (half a ClientHello): their
    // reads block until the head deadline, and shutdown must end them at once. Accepted in
    // order, so both are in the server's hands once the next request is answered.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::io::Write::write_all(&mut stuck, &[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).unwrap();
    assert_eq!(curl(Some(&b.ca), &[&healthz]).0, 0);
    // SIGHUP did not stop it; SIGINT does, cleanly, leaving no connection behind.
    assert_eq!(server.stop_with(libc::SIGINT).code(), Some(0));
    assert!(!server.log().contains("panicked"), "{}", server.log());
    assert!(
        !server.log().contains("did not end within"),
        "{}",
        server.log()
    );
}

#[test]
fn a_bad_pair_at_start_is_an_error_naming_the_file() {
    let dir = TempDir::new("tls-bad-start");
    let a = Pki::new(dir.path(), "a");
    let b = Pki::new(dir.path(), "b");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases: [(&Path, &Path, &Path, &str); 4] = [
        (&missing, &a.key, &missing, "cannot read"),
        (
            &garbage,
            &a.key,
            &garbage,
            "without its -----END NOTHING----- line",
        ),
        (&a.cert, &garbage, &garbage, "no private key in it"),
        (
            &a.cert,
            &b.key,
            &b.key,
            "does not belong to the certificate",
        ),
    ];
    for (i, (cert, key, named, reason)) in cases.into_iter().enumerate() {
        let config = dir.path().join(format!("server-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let mut command = Command::new(server_bin());
        command
            .arg("--config")
            .arg(&config)
            .arg("--database")
            .arg(dir.path().join(format!("db-{i}")))
            .args(["--listen", "127.0.0.1:0", "serve"]);
        let mut child = ChildGuard::spawn(command, &dir.path().join(format!("server-{i}.log")));
        let status = child
            .wait_timeout(PATIENCE)
            .unwrap_or_else(|| panic!("case {i}: still running:\n{}", child.output()));
        let output = child.output();
        assert!(!status.success(), "case {i}: {output}");
        assert!(
            output.contains(&named.display().to_string()) && output.contains(reason),
            "case {i}: expected {} and {reason:?} in:\n{output}",
            named.display()
        );
        assert!(!output.contains("listening on"), "case {i}: {output}");
    }
    // Only one of the two keys: refused before anything starts.
    let config = dir.path().join("half.toml");
    std::fs::write(&config, format!("tls_cert = \"{}\"\n", a.cert.display())).unwrap();
    let out = Command::new(server_bin())
        .arg("--config")
        .arg(&config)
        .arg("--database")
        .arg(dir.path().join("db-half"))
        .args(["--listen", "127.0.0.1:0", "serve"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("tls_key"),
        "{stderr}"
    );
}
