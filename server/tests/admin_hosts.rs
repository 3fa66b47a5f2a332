//! Managing hosts from the dashboard, end to end over HTTP: a host added through the form
//! (anti-forgery token, same origin, admin session), its token shown once with the one-line
//! installer, which is run as the page shows it (in a temp root, without systemctl) and
//! installs the real agent binary and a config that connects — the host goes online. Then the
//! token rotated (the old one refused at once, the new one installed and working) and the
//! host removed (gone, its token refused), each through its confirmation page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use http_common::{get, login, request, set_password, Reply, PASSWORD};
use testkit::{agent_bin, ChildGuard, Server, ServerOptions, TempDir, PATIENCE};

/// A server whose installer hands out this workspace's agent binary.
fn server_with_installer(label: &str) -> Server {
    let config = TempDir::new(&format!("{label}-config"));
    let path = config.path().join("server.toml");
    std::fs::write(
        &path,
        format!("agent_binary = \"{}\"\n", agent_bin().display()),
    )
    .unwrap();
    let server = Server::start_with(
        label,
        ServerOptions {
            extra_args: vec!["--config".into(), path.display().to_string()],
            ..ServerOptions::default()
        },
    );
    assert!(set_password(&server, PASSWORD).status.success());
    server
}

/// The text of the element with `id` (its first text run), entities decoded.
fn element_text(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in:\n{html}"))
        + marker.len();
    let end = start + html[start..].find('<').unwrap();
    unescape(&html[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The anti-forgery token in the page's first form.
fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in:\n{html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn post_form(server: &Server, path: &str, cookie: &str, body: &str) -> Reply {
    request(
        server.port,
        "POST",
        path,
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", &format!("http://127.0.0.1:{}", server.port)),
        ],
        body,
    )
}

/// Runs a command line the dashboard showed, as a node's admin would paste it — with the
/// files going under `root` (`PM_ROOT`) and `--no-systemd` added, so it runs unprivileged.
fn run_shown_command(line: &str, root: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} --no-systemd"))
        .env("PM_ROOT", root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "`{line}` failed:\n{text}");
    text
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The installed agent with the installed config (its spool in `state`).
fn start_installed_agent(root: &Path, state: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(root.join("usr/local/bin/proxmox-monitor-agent"));
    command
        .arg("--config")
        .arg(root.join("etc/proxmox-monitor/agent.toml"))
        .arg("--state-dir")
        .arg(state)
        .arg("run");
    ChildGuard::spawn(command, log)
}

/// A join of `host:NAME` with `token`: whether the server accepted it.
fn join_accepted(server: &Server, name: &str, token: &str) -> bool {
    let mut client = server.client();
    let reply = client.join(name, token);
    let ok = reply.payload["status"] == "ok";
    if ok {
        client.close();
    }
    ok
}

#[test]
fn a_host_added_in_the_dashboard_installs_with_the_served_script_rotates_and_goes() {
    let server = server_with_installer("admin-hosts");
    let port = server.port;
    let work = TempDir::new("admin-hosts-node");
    let root = work.path().join("root");

    // Admin pages need a session.
    let anonymous = get(port, "/admin/hosts", None);
    assert_eq!(anonymous.status, 303);
    assert!(anonymous.header("location").unwrap().starts_with("/login"));
    let cookie = login(port);
    let page = get(port, "/admin/hosts", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let token = csrf(&page.body);

    // Forged forms change nothing: no token, another session's token, another site.
    for (body, origin) in [
        ("name=pve-new".to_owned(), None),
        (format!("csrf={}&name=pve-new", "0".repeat(64)), None),
        (
            format!("csrf={token}&name=pve-new"),
            Some("https://evil.example"),
        ),
    ] {
        let origin = origin.map_or_else(|| format!("http://127.0.0.1:{port}"), str::to_owned);
        let reply = request(
            port,
            "POST",
            "/admin/hosts",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &origin),
            ],
            &body,
        );
        assert_eq!(reply.status, 403, "{body} from {origin}: {}", reply.body);
    }
    assert!(server.hosts().is_empty());
    let bad = post_form(
        &server,
        "/admin/hosts",
        &cookie,
        &format!("csrf={token}&name=a+b"),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Not a host name"), "{}", bad.body);

    // Add: the token, once, with the installer line and the config.
    let added = post_form(
        &server,
        "/admin/hosts",
        &cookie,
        &format!("csrf={token}&name=pve-new"),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.header("cache-control"), Some("no-store"));
    let host_token = element_text(&added.body, "host-token");
    assert_eq!(host_token.len(), 43, "{host_token}");
    let oneliner = element_text(&added.body, "install-oneliner");
    assert_eq!(
        oneliner,
        format!(
            "curl -fsSL http://127.0.0.1:{port}/install/agent.sh | PM_TOKEN='{host_token}' sh -s -- --host pve-new"
        )
    );
    let shown_config = element_text(&added.body, "agent-config");
    assert!(
        shown_config.contains(&format!(
            "server_url = \"ws://127.0.0.1:{port}/socket/websocket\""
        )) && shown_config.contains(&format!("token = \"{host_token}\"")),
        "{shown_config}"
    );
    for id in ["install-deb", "install-static"] {
        let text = element_text(&added.body, id);
        assert!(text.contains(&shown_config), "#{id}:\n{text}");
    }
    assert_eq!(server.status("pve-new").as_deref(), Some("never_connected"));
    let again = post_form(
        &server,
        "/admin/hosts",
        &cookie,
        &format!("csrf={token}&name=pve-new"),
    );
    assert_eq!(again.status, 409, "{}", again.body);

    // The line the page shows installs the agent this server hands out, and its config.
    let said = run_shown_command(&oneliner, &root);
    assert!(
        said.contains("installed /usr/local/bin/proxmox-monitor-agent"),
        "{said}"
    );
    let installed = root.join("usr/local/bin/proxmox-monitor-agent");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(agent_bin()).unwrap()
    );
    assert_eq!(mode(&installed), 0o755);
    let config = root.join("etc/proxmox-monitor/agent.toml");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), shown_config);
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/proxmox-monitor-agent.service"))
            .unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/proxmox-monitor-agent --config /etc/proxmox-monitor/agent.toml run"
    ));
    assert_eq!(mode(&root.join("var/lib/proxmox-monitor")), 0o700);

    // The installed agent with the installed config: online.
    let state = work.path().join("state");
    let mut agent = start_installed_agent(&root, &state, &work.path().join("agent-1.log"));
    let online = testkit::wait_until(PATIENCE, || {
        server.status("pve-new").as_deref() == Some("online")
    });
    assert!(
        online,
        "not online; agent log:\n{}\nserver log:\n{}",
        agent.output(),
        server.log()
    );
    let listed = get(port, "/admin/hosts", Some(&cookie));
    assert!(
        listed.body.contains("data-host=\"pve-new\""),
        "{}",
        listed.body
    );

    // Rotate: a confirmation page first; a forged confirmation changes nothing.
    let confirm = get(port, "/admin/hosts/pve-new/rotate", Some(&cookie));
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("Rotate the token of pve-new"),
        "{}",
        confirm.body
    );
    let forged = post_form(&server, "/admin/hosts/pve-new/rotate", &cookie, "csrf=x");
    assert_eq!(forged.status, 403);
    assert_eq!(server.status("pve-new").as_deref(), Some("online"));
    let rotated = post_form(
        &server,
        "/admin/hosts/pve-new/rotate",
        &cookie,
        &format!("csrf={}", csrf(&confirm.body)),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_token = element_text(&rotated.body, "host-token");
    assert_ne!(new_token, host_token);
    // The running agent is disconnected at once and its old token refused from then on.
    server.expect_status("pve-new", "offline");
    assert!(!join_accepted(&server, "pve-new", &host_token));
    assert!(
        agent.wait_for_output("refused", PATIENCE),
        "agent log:\n{}",
        agent.output()
    );
    assert_eq!(server.status("pve-new").as_deref(), Some("offline"));
    drop(agent);

    // The new line installs again (the config replaced, the old one kept aside): online.
    let oneliner = element_text(&rotated.body, "install-oneliner");
    assert!(oneliner.contains(&new_token), "{oneliner}");
    let said = run_shown_command(&oneliner, &root);
    assert!(said.contains("kept the previous config"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        element_text(&rotated.body, "agent-config")
    );
    assert_eq!(
        mode(&root.join("etc/proxmox-monitor/agent.toml.old")),
        0o600
    );
    let _agent = start_installed_agent(&root, &state, &work.path().join("agent-2.log"));
    server.expect_status("pve-new", "online");

    // Remove, after its confirmation: gone, its connection closed, its token refused.
    let confirm = get(port, "/admin/hosts/pve-new/remove", Some(&cookie));
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("all its history"), "{}", confirm.body);
    let removed = post_form(
        &server,
        "/admin/hosts/pve-new/remove",
        &cookie,
        &format!("csrf={}", csrf(&confirm.body)),
    );
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert_eq!(
        removed.header("location"),
        Some("/admin/hosts?removed=pve-new")
    );
    assert!(server.hosts().iter().all(|h| h.name != "pve-new"));
    assert!(!join_accepted(&server, "pve-new", &new_token));
    let listed = get(port, "/admin/hosts?removed=pve-new", Some(&cookie));
    assert!(
        !listed.body.contains("data-host=\"pve-new\""),
        "{}",
        listed.body
    );
    assert!(listed.body.contains("and its history were removed"));
    assert_eq!(
        get(port, "/admin/hosts/pve-new/rotate", Some(&cookie)).status,
        404
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn the_installer_without_an_agent_binary_says_so_and_the_page_shows_the_other_ways() {
    // Default agent_binary (/usr/lib/proxmox-monitor/…), which a test machine does not have.
    let server = Server::start("admin-no-binary");
    if Path::new(server_default_agent()).exists() {
        eprintln!("SKIPPED: {} exists on this machine", server_default_agent());
        return;
    }
    assert!(set_password(&server, PASSWORD).status.success());
    let cookie = login(server.port);
    let script = get(server.port, "/install/agent.sh", None);
    assert_eq!(script.status, 200);
    assert!(script.body.starts_with("#!/bin/sh"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script.body)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no agent binary to hand out") && stderr.contains("agent_binary"),
        "{stderr}"
    );
    assert_eq!(get(server.port, "/install/agent", None).status, 404);

    let page = get(server.port, "/admin/hosts", Some(&cookie));
    assert!(
        page.body.contains("The one-line installer is off"),
        "{}",
        page.body
    );
    let added = post_form(
        &server,
        "/admin/hosts",
        &cookie,
        &format!("csrf={}&name=pve-x", csrf(&page.body)),
    );
    assert_eq!(added.status, 200);
    assert!(!added.body.contains("id=\"install-oneliner\""));
    let deb = element_text(&added.body, "install-deb");
    assert!(
        deb.contains("apt install ./proxmox-monitor-agent_"),
        "{deb}"
    );
    // The unit is served either way.
    let unit = get(server.port, "/install/agent.service", None);
    assert_eq!(unit.status, 200);
    assert!(unit.body.contains("[Service]"));
}

fn server_default_agent() -> &'static str {
    "/usr/lib/proxmox-monitor/proxmox-monitor-agent"
}
