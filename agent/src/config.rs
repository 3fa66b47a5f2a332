//! The agent's TOML configuration.
//!
//! ```toml
//! server_url = "wss://monitor.example.com/socket/websocket"
//! token = "…"                  # from `proxmox-monitor-server register-host`
//! host_id = "pve1"             # default: this machine's hostname
//! state_dir = "/var/lib/proxmox-monitor"
//! ca_file = "/etc/proxmox-monitor/ca.pem"   # optional: trust a private CA for wss://
//! log_level = "info"
//! source_timeout_seconds = 10  # a file under /etc/pve (pmxcfs) or a command
//!                              # (zpool, pvesm) that takes longer is given up and reported
//!
//! [intervals]
//! fast_seconds = 30
//! medium_seconds = 300
//! slow_seconds = 1800
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/proxmox-monitor/agent.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/proxmox-monitor";

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `ws://` or `wss://` URL of the server's agent socket, with `vsn=2.0.0` in the query.
    pub server_url: String,
    pub token: String,
    pub host_id: String,
    pub fast: Duration,
    pub medium: Duration,
    pub slow: Duration,
    pub state_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub root: PathBuf,
    pub log_level: log::LevelFilter,
    pub spool_max_samples: usize,
    pub spool_max_bytes: u64,
    /// How long one file read under `/etc/pve` (pmxcfs), or one command, may take (see
    /// `collect::guard`).
    pub source_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server_url: Option<String>,
    token: Option<String>,
    host_id: Option<String>,
    state_dir: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    root: Option<PathBuf>,
    log_level: Option<String>,
    source_timeout_seconds: Option<u64>,
    #[serde(default)]
    intervals: Intervals,
    #[serde(default)]
    spool: SpoolLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Intervals {
    fast_seconds: u64,
    medium_seconds: u64,
    slow_seconds: u64,
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals {
            fast_seconds: 30,
            medium_seconds: 300,
            slow_seconds: 1800,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SpoolLimits {
    max_samples: usize,
    max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> SpoolLimits {
        // 24 h of fast samples at 30 s is 2,880; medium and slow add ~300. Room for 3 days.
        SpoolLimits {
            max_samples: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl AgentConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<AgentConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "file not found (pass --config FILE or set AGENT_CONFIG)".to_owned()
            } else {
                format!("cannot read: {e}")
            },
        })?;
        if let Some(warning) = std::fs::metadata(path)
            .ok()
            .and_then(|m| exposed_token_warning(path, m.permissions()))
        {
            log::warn!("{warning}");
        }
        AgentConfig::parse(&text, path)
    }

    /// Parses TOML `text`; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig> {
        let bad = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        let file: FileConfig =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_owned()))?;
        let server_url = file
            .server_url
            .ok_or_else(|| bad("missing key `server_url`".into()))?;
        let server_url = normalize_url(&server_url).map_err(|m| bad(format!("server_url: {m}")))?;
        let token = file.token.filter(|t| !t.trim().is_empty());
        let token = token
            .ok_or_else(|| bad("missing key `token`".into()))?
            .trim()
            .to_owned();
        let host_id = match file.host_id {
            Some(id) => id,
            None => local_hostname().ok_or_else(|| {
                bad("no `host_id` set and this machine's hostname cannot be read".into())
            })?,
        };
        common::events::validate_host_name(&host_id).map_err(|m| bad(format!("host_id: {m}")))?;
        let seconds = |key: &str, value: u64| -> Result<Duration> {
            if value == 0 || value > 7 * 24 * 3600 {
                return Err(bad(format!(
                    "intervals.{key}: {value} is outside 1..=604800"
                )));
            }
            Ok(Duration::from_secs(value))
        };
        let log_level = match file.log_level {
            Some(level) => level.parse().map_err(|_| {
                bad(format!(
                    "log_level: {level:?} is not one of off, error, warn, info, debug, trace"
                ))
            })?,
            None => log::LevelFilter::Info,
        };
        let source_timeout = match file.source_timeout_seconds {
            None => crate::collect::guard::DEFAULT_TIMEOUT,
            Some(n @ 1..=3600) => Duration::from_secs(n),
            Some(n) => {
                return Err(bad(format!(
                    "source_timeout_seconds: {n} is outside 1..=3600"
                )))
            }
        };
        if file.spool.max_samples == 0 {
            return Err(bad("spool.max_samples: must be at least 1".into()));
        }
        Ok(AgentConfig {
            server_url,
            token,
            host_id,
            fast: seconds("fast_seconds", file.intervals.fast_seconds)?,
            medium: seconds("medium_seconds", file.intervals.medium_seconds)?,
            slow: seconds("slow_seconds", file.intervals.slow_seconds)?,
            state_dir: file
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            ca_file: file.ca_file,
            root: file.root.unwrap_or_else(|| PathBuf::from("/")),
            log_level,
            spool_max_samples: file.spool.max_samples,
            spool_max_bytes: file.spool.max_bytes,
            source_timeout,
        })
    }
}

/// Checks the scheme and adds `vsn=2.0.0` (the Phoenix serializer we speak) when missing.
fn normalize_url(url: &str) -> std::result::Result<String, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("{url:?} must start with ws:// or wss://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains("vsn=") {
        return Ok(url.to_owned());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}vsn={}",
        common::events::PROTOCOL_VSN
    ))
}

/// This machine's hostname, as the kernel knows it.
pub fn local_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = std::fs::read_to_string(path).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
}

/// A warning when the config file (which holds the host's token) can be read by users other
/// than its owner.
pub fn exposed_token_warning(path: &Path, permissions: std::fs::Permissions) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = permissions.mode() & 0o777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "{} is readable by others (mode {mode:03o}) and holds this host's token: \
             chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_config_readable_by_others_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new("/etc/proxmox-monitor/agent.toml");
        let mode = |m| std::fs::Permissions::from_mode(m);
        assert_eq!(exposed_token_warning(path, mode(0o600)), None);
        assert_eq!(exposed_token_warning(path, mode(0o100600)), None);
        let warning = exposed_token_warning(path, mode(0o644)).unwrap();
        assert!(warning.contains("mode 644"), "{warning}");
        assert!(warning.contains("chmod 600 /etc/proxmox-monitor/agent.toml"));
        assert!(exposed_token_warning(path, mode(0o640)).is_some());
    }

    use super::*;

    fn parse(text: &str) -> Result<AgentConfig> {
        AgentConfig::parse(text, Path::new("/etc/pm/agent.toml"))
    }

    #[test]
    fn parses_a_full_file() {
        let config = parse(
            "server_url = \"wss://mon.example.com/socket/websocket\"\ntoken = \"abc\"\n\
             host_id = \"pve-01\"\n[intervals]\nfast_seconds = 5\nmedium_seconds = 60\nslow_seconds = 300\n",
        )
        .unwrap();
        assert_eq!(
            config.server_url,
            "wss://mon.example.com/socket/websocket?vsn=2.0.0"
        );
        assert_eq!(config.token, "abc");
        assert_eq!(config.host_id, "pve-01");
        assert_eq!(config.fast, Duration::from_secs(5));
        assert_eq!(config.medium, Duration::from_secs(60));
        assert_eq!(config.slow, Duration::from_secs(300));
    }

    #[test]
    fn defaults_intervals_and_hostname() {
        let config =
            parse("server_url = \"ws://x:4000/socket/websocket\"\ntoken = \"t\"\n").unwrap();
        assert_eq!(config.fast, Duration::from_secs(30));
        assert_eq!(config.medium, Duration::from_secs(300));
        assert_eq!(config.slow, Duration::from_secs(1800));
        assert_eq!(Some(config.host_id), local_hostname());
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/proxmox-monitor"));
        assert_eq!(config.source_timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_source_timeout_is_read_and_checked() {
        let head = "server_url = \"ws://x/\"\ntoken = \"t\"\nhost_id = \"h\"\n";
        let config = parse(&format!("{head}source_timeout_seconds = 30\n")).unwrap();
        assert_eq!(config.source_timeout, Duration::from_secs(30));
        for bad in ["0", "3601", "-1", "\"10\""] {
            let err = parse(&format!("{head}source_timeout_seconds = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/etc/pm/agent.toml") && err.contains("source_timeout_seconds"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn missing_keys_are_named_with_the_file() {
        let err = parse("token = \"t\"\n").unwrap_err().to_string();
        assert!(
            err.contains("/etc/pm/agent.toml") && err.contains("server_url"),
            "{err}"
        );
        let err = parse("server_url = \"ws://x/socket/websocket\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("server_url = \"http://x/\"\ntoken = \"t\"", "server_url"),
            (
                "server_url = \"ws://x/\"\ntoken = \"t\"\nhost_id = \"a b\"",
                "host_id",
            ),
            (
                "server_url = \"ws://x/\"\ntoken = \"t\"\n[intervals]\nfast_seconds = 0",
                "fast_seconds",
            ),
            (
                "server_url = \"ws://x/\"\ntoken = \"t\"\ntokne = \"t\"",
                "tokne",
            ),
            (
                "server_url = \"ws://x/\"\ntoken = \"t\"\n[intervals]\nfast_seconds = \"5\"",
                "fast_seconds",
            ),
            ("server_url = ", "server_url"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = AgentConfig::load(Path::new("/nonexistent/agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/agent.toml") && err.contains("not found"),
            "{err}"
        );
    }
}
