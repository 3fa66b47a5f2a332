//! Installing an agent from this server: `GET /install/agent.sh` (the one-line installer,
//! with this server's URL and its agent binary's SHA-256 filled in), `GET /install/agent` (the
//! static agent binary named by `agent_binary`) and `GET /install/agent.service` (the systemd
//! unit). They are open to anyone, like the binary's download page of a project: none of them
//! holds a secret. The token never travels in these URLs; the script reads it from `PM_TOKEN`.
//!
//! Also here: the server's public URL (`public_url`, else the scheme and `Host` of the
//! request) and the agent's config text, which the dashboard shows and the script writes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{Request, Response};
use crate::config::is_authority;
use crate::context::Context;

/// The installer, with `@SERVER@`, `@AGENT_SHA256@`, `@VERSION@` and `@UNIT@` to fill in.
const SCRIPT: &str = include_str!("install_agent.sh");
/// The agent's systemd unit, written for the binary in /usr/local/bin (as the script puts it).
pub const AGENT_UNIT: &str = include_str!("../../../packaging/proxmox-monitor-agent.service");
/// Where the agent's config lives on a node.
pub const AGENT_CONFIG_PATH: &str = "/etc/proxmox-monitor/agent.toml";

/// `GET /install/NAME`.
pub fn handle(ctx: &Context, request: &Request, name: &str) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD");
    }
    let response = match name {
        "agent.sh" => script(ctx, request),
        "agent" => binary(ctx),
        "agent.service" => Response::new(200, "text/plain; charset=utf-8", AGENT_UNIT),
        _ => Response::text(404, "not found\n"),
    };
    // Always the file as it is now: a script naming an old binary's checksum fails.
    response.with_header("Cache-Control", "no-store")
}

/// How agents and browsers reach this server, as `scheme://host[:port]`: `public_url` when
/// set, else the `Host` the request was sent to, `https` when the server speaks TLS or a proxy
/// says the request came over HTTPS (`X-Forwarded-Proto: https`). `None` when the request
/// names no usable host.
pub fn public_base(ctx: &Context, request: &Request) -> Option<String> {
    if let Some(url) = &ctx.config.public_url {
        return Some(url.clone());
    }
    let host = request
        .header("host")
        .map(str::trim)
        .filter(|h| is_authority(h))?;
    let forwarded_https = request
        .header("x-forwarded-proto")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let scheme = if ctx.tls.is_some() || forwarded_https {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{host}"))
}

/// The agent socket's URL under `base` (`https://mon:4000` → `wss://mon:4000/socket/websocket`).
pub fn socket_url(base: &str) -> String {
    let ws = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    format!("{ws}{}", common::events::SOCKET_PATH)
}

/// The agent config for host `name` with `token`, as the dashboard shows it and the install
/// script writes it (byte for byte, when no `--ca-file` is given).
pub fn agent_config(base: &str, name: &str, token: &str) -> String {
    let mut text = format!(
        "# Proxmox Monitor agent of host {name}; keep this file mode 0600: it holds the token.\n\
         server_url = \"{}\"\n\
         token = \"{token}\"\n\
         host_id = \"{name}\"\n",
        socket_url(base)
    );
    if base.starts_with("https://") {
        text.push_str(
            "# ca_file = \"/etc/proxmox-monitor/ca.pem\"   # when the server's certificate is from a private CA\n",
        );
    }
    text
}

/// The agent binary this server hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    pub path: PathBuf,
    pub len: u64,
    pub sha256: String,
}

/// The agent binary of `agent_binary` with its SHA-256 (remembered while the file's size and
/// time stay the same), or why there is none to hand out.
pub fn agent_file(ctx: &Context) -> Result<AgentFile, String> {
    let path = &ctx.config.agent_binary;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a file", path.display()));
    }
    let modified = meta.modified().ok();
    let mut cache = DIGEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = cache
        .as_ref()
        .filter(|c| c.file.path == *path && c.file.len == meta.len() && c.modified == modified)
    {
        return Ok(known.file.clone());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = AgentFile {
        path: path.clone(),
        len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        sha256: hex(&Sha256::digest(&bytes)),
    };
    *cache = Some(Digested {
        file: file.clone(),
        modified,
    });
    Ok(file)
}

/// The checksum of the agent binary last read, keyed by its path, size and time.
static DIGEST: Mutex<Option<Digested>> = Mutex::new(None);

struct Digested {
    file: AgentFile,
    modified: Option<SystemTime>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /install/agent.sh`: the installer for this server, or (still a shell script, so that
/// `curl … | sh` prints it) why it cannot install from here.
fn script(ctx: &Context, request: &Request) -> Response {
    let Some(base) = public_base(ctx, request) else {
        return refusal(
            "this request named no usable host, so the script cannot know the server's URL; \
             set public_url in the server's config",
        );
    };
    let file = match agent_file(ctx) {
        Ok(file) => file,
        Err(e) => {
            log::warn!("/install/agent.sh: no agent binary to hand out: {e}");
            return refusal(&format!(
                "this server has no agent binary to hand out ({e}). Install the \
                 proxmox-monitor-agent .deb on the node instead, or set agent_binary in the \
                 server's config (its .deb ships one in /usr/lib/proxmox-monitor/)"
            ));
        }
    };
    Response::new(
        200,
        "text/x-shellscript; charset=utf-8",
        fill(&base, &file.sha256),
    )
}

/// The script with its blanks filled in.
fn fill(base: &str, sha256: &str) -> String {
    SCRIPT
        .replace("@SERVER@", base)
        .replace("@AGENT_SHA256@", sha256)
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@UNIT@", AGENT_UNIT.trim_end())
}

/// A script that says why it cannot install, and fails.
fn refusal(reason: &str) -> Response {
    let body = format!(
        "#!/bin/sh\ncat >&2 <<'PROXMOX_MONITOR_REFUSAL'\nproxmox-monitor install: {}\nPROXMOX_MONITOR_REFUSAL\nexit 1\n",
        reason.replace('\n', " ")
    );
    Response::new(200, "text/x-shellscript; charset=utf-8", body)
}

/// `GET /install/agent`: the binary itself.
fn binary(ctx: &Context) -> Response {
    let path: &Path = &ctx.config.agent_binary;
    match std::fs::read(path) {
        Ok(bytes) => Response::new(200, "application/octet-stream", bytes).with_header(
            "Content-Disposition",
            "attachment; filename=\"proxmox-monitor-agent\"",
        ),
        Err(e) => {
            log::warn!(
                "/install/agent: cannot hand out the agent binary {}: {e}",
                path.display()
            );
            Response::text(
                404,
                "this server has no agent binary to hand out (see agent_binary in its config)\n",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_follow_the_scheme() {
        assert_eq!(
            socket_url("https://mon.example.com:4000"),
            "wss://mon.example.com:4000/socket/websocket"
        );
        assert_eq!(
            socket_url("http://127.0.0.1:4000"),
            "ws://127.0.0.1:4000/socket/websocket"
        );
    }

    #[test]
    fn the_config_names_server_token_and_host() {
        let text = agent_config("https://mon:4000", "pve1", "tok-EN_1");
        assert_eq!(
            text,
            "# Proxmox Monitor agent of host pve1; keep this file mode 0600: it holds the token.\n\
             server_url = \"wss://mon:4000/socket/websocket\"\n\
             token = \"tok-EN_1\"\n\
             host_id = \"pve1\"\n\
             # ca_file = \"/etc/proxmox-monitor/ca.pem\"   # when the server's certificate is from a private CA\n"
        );
        assert!(!agent_config("http://mon:4000", "pve1", "t").contains("ca_file"));
    }

    #[test]
    fn a_script_cut_short_runs_nothing() {
        // `curl … | sh` runs what arrived: a cut anywhere before the last line (main "$@")
        // must leave the node untouched.
        let script = fill("http://127.0.0.1:9", "ab12");
        let dir = std::env::temp_dir().join(format!("pm-install-cut-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let path = dir.join("cut.sh");
        let last = script.trim_end().rfind('\n').unwrap();
        assert_eq!(&script[last..], "\nmain \"$@\"\n");
        let cuts: Vec<usize> = (0..=last).step_by(61).chain([last]).collect();
        for cut in cuts {
            std::fs::write(&path, &script.as_bytes()[..cut]).unwrap();
            let out = std::process::Command::new("sh")
                .arg(&path)
                .arg("--no-systemd")
                .env("PM_ROOT", &root)
                .env("PM_TOKEN", "abc")
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                !said.contains("proxmox-monitor install"),
                "cut at {cut}: {said}"
            );
            assert_eq!(
                std::fs::read_dir(&root).unwrap().count(),
                0,
                "cut at {cut} wrote under {}",
                root.display()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_script_has_every_blank_filled_and_parses() {
        let script = fill("https://mon:4000", "ab12");
        for blank in ["@SERVER@", "@AGENT_SHA256@", "@VERSION@", "@UNIT@"] {
            assert!(!script.contains(blank), "{blank} left: {script}");
        }
        assert!(script.contains("SERVER='https://mon:4000'"));
        assert!(script.contains("AGENT_SHA256='ab12'"));
        assert!(script.contains("ExecStart=/usr/local/bin/proxmox-monitor-agent"));
        let dir = std::env::temp_dir().join(format!("pm-install-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sh");
        std::fs::write(&path, &script).unwrap();
        let check = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        let refused = String::from_utf8(refusal("no binary: x").body).unwrap();
        assert!(refused.contains("no binary: x") && refused.ends_with("exit 1\n"));
    }
}
