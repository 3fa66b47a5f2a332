//! Server settings: built-in defaults, then the TOML file (`--config`), then command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use serde::Deserialize;

use crate::alerts::AlertsConfig;
use crate::error::{Error, Result};
use crate::notify::NotifyConfig;
use crate::store::rollup::RetentionDays;
use crate::store::{Retention, Synchronous};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
pub const DEFAULT_DATABASE: &str = "/var/lib/proxmox-monitor/server.db";
pub const DEFAULT_BCRYPT_COST: u32 = 12;
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// A 200-guest node has ~3,500 series; these leave room for ten times that.
pub const DEFAULT_MAX_SERIES_PER_SAMPLE: usize = 20_000;
pub const DEFAULT_MAX_SERIES_PER_HOST: usize = 50_000;
/// Where the server's .deb puts the static agent that `/install/agent` hands out.
pub const DEFAULT_AGENT_BINARY: &str = "/usr/lib/proxmox-monitor/proxmox-monitor-agent";

/// Everything the server needs to run, after defaults, file and flags are merged.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub database: PathBuf,
    pub log_level: LevelFilter,
    pub bcrypt_cost: u32,
    pub idle_timeout: Duration,
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    /// Open connections one client address may hold (not counting agents that joined).
    pub max_connections_per_address: usize,
    pub synchronous: Synchronous,
    pub retention: Retention,
    /// How often the maintenance thread rolls up finished buckets.
    pub maintenance_interval: Duration,
    pub http: HttpConfig,
    /// `tls_cert` and `tls_key`: serve HTTPS and `wss://` with this PEM certificate chain and key.
    pub tls: Option<TlsFiles>,
    /// How agents and browsers reach this server (`https://mon.example.com:4000`), without a
    /// trailing slash; `None`: the URL each request came to.
    pub public_url: Option<String>,
    /// The agent binary `/install/agent` hands out (`/install/agent.sh` installs it).
    pub agent_binary: PathBuf,
    /// `[alerts]`: rules, overrides, maintenance windows.
    pub alerts: AlertsConfig,
    /// `[notify]`: channels, routes, delivery.
    pub notify: NotifyConfig,
    /// How far in the future a sample may be dated (agent clocks run a little ahead); later
    /// ones are refused so that a wrong clock cannot pin a host's current view.
    pub max_clock_skew: Duration,
    /// Most numeric series one sample may bring; a larger sample is refused.
    pub max_series_per_sample: usize,
    /// Most series one host may have; a sample that would create more is refused.
    pub max_series_per_host: usize,
}

/// The certificate chain and private key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[http]`: who may read `/metrics`, and how the session cookie is marked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `/metrics` without any credentials. Without this or `metrics_token`, `/metrics` is 404.
    #[serde(default)]
    pub metrics_public: bool,
    /// Mark the session cookie `Secure`: set this when the dashboard is reached over HTTPS
    /// through a TLS-terminating proxy, so the browser never sends the cookie in clear. (With
    /// `tls_cert` the server speaks HTTPS itself and marks it `Secure` anyway.)
    #[serde(default)]
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request from one of these
    /// addresses counts, for the login backoff, as coming from the client the proxy names.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The shortest `metrics_token` accepted: a guessable scrape token would leak every host's data.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            database: PathBuf::from(DEFAULT_DATABASE),
            log_level: LevelFilter::Info,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECONDS),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            synchronous: Synchronous::Full,
            retention: Retention::default(),
            maintenance_interval: Duration::from_secs(60),
            http: HttpConfig::default(),
            tls: None,
            public_url: None,
            agent_binary: PathBuf::from(DEFAULT_AGENT_BINARY),
            alerts: AlertsConfig::default(),
            notify: NotifyConfig::default(),
            max_clock_skew: Duration::from_secs(DEFAULT_MAX_CLOCK_SKEW_SECONDS),
            max_series_per_sample: DEFAULT_MAX_SERIES_PER_SAMPLE,
            max_series_per_host: DEFAULT_MAX_SERIES_PER_HOST,
        }
    }
}

/// The TOML file; every key optional. Unknown keys are errors, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database: Option<PathBuf>,
    log_level: Option<String>,
    bcrypt_cost: Option<u32>,
    idle_timeout_seconds: Option<u64>,
    max_frame_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    synchronous: Option<Synchronous>,
    retention: Option<RetentionDays>,
    maintenance_interval_seconds: Option<u64>,
    http: Option<HttpConfig>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    public_url: Option<String>,
    agent_binary: Option<PathBuf>,
    alerts: Option<toml::Value>,
    notify: Option<toml::Value>,
    max_clock_skew_seconds: Option<u64>,
    max_series_per_sample: Option<usize>,
    max_series_per_host: Option<usize>,
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<PathBuf>,
    pub log_level: Option<String>,
    pub bcrypt_cost: Option<u32>,
    pub idle_timeout_seconds: Option<u64>,
}

impl ServerConfig {
    /// Defaults, overlaid by `file` (if given) and then by `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<ServerConfig> {
        let mut config = ServerConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                source_name: path.display().to_string(),
                message: format!("cannot read: {e}"),
            })?;
            config.apply_toml(&text, &path.display().to_string())?;
            if let Some(key) = config.notify.inline_secrets.first() {
                crate::notify::config::check_not_world_readable(path).map_err(|message| {
                    Error::Config {
                        source_name: path.display().to_string(),
                        message: format!(
                            "{message} ({key} is written in it; or move it to {key}_file)"
                        ),
                    }
                })?;
            }
        }
        config.apply(
            &FileConfig {
                listen: overrides.listen.clone(),
                database: overrides.database.clone(),
                log_level: overrides.log_level.clone(),
                bcrypt_cost: overrides.bcrypt_cost,
                idle_timeout_seconds: overrides.idle_timeout_seconds,
                ..FileConfig::default()
            },
            "command line",
        )?;
        Ok(config)
    }

    /// Overlays the settings in TOML `text`; `source_name` names it in errors.
    pub fn apply_toml(&mut self, text: &str, source_name: &str) -> Result<()> {
        let file: FileConfig = toml::from_str(text).map_err(|e| Error::Config {
            source_name: source_name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        self.apply(&file, source_name)
    }

    fn apply(&mut self, file: &FileConfig, source_name: &str) -> Result<()> {
        let bad = |key: &str, message: String| Error::Config {
            source_name: source_name.to_owned(),
            message: format!("{key}: {message}"),
        };
        if let Some(listen) = &file.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(
                    "listen",
                    format!("{listen:?} is not an address like 127.0.0.1:4000"),
                ));
            }
            self.listen.clone_from(listen);
        }
        if let Some(database) = &file.database {
            self.database.clone_from(database);
        }
        if let Some(level) = &file.log_level {
            self.log_level = level.parse().map_err(|_| {
                bad(
                    "log_level",
                    format!("{level:?} is not one of off, error, warn, info, debug, trace"),
                )
            })?;
        }
        if let Some(cost) = file.bcrypt_cost {
            if !(4..=31).contains(&cost) {
                return Err(bad("bcrypt_cost", format!("{cost} is outside 4..=31")));
            }
            self.bcrypt_cost = cost;
        }
        if let Some(seconds) = file.idle_timeout_seconds {
            if seconds == 0 {
                return Err(bad("idle_timeout_seconds", "must be at least 1".into()));
            }
            self.idle_timeout = Duration::from_secs(seconds);
        }
        if let Some(bytes) = file.max_frame_bytes {
            if bytes < 1024 {
                return Err(bad("max_frame_bytes", format!("{bytes} is below 1024")));
            }
            self.max_frame_bytes = bytes;
        }
        if let Some(n) = file.max_connections {
            if n == 0 {
                return Err(bad("max_connections", "must be at least 1".into()));
            }
            self.max_connections = n;
        }
        if let Some(n) = file.max_connections_per_address {
            if n == 0 {
                return Err(bad(
                    "max_connections_per_address",
                    "must be at least 1".into(),
                ));
            }
            self.max_connections_per_address = n;
        }
        if let Some(n) = file.max_series_per_sample {
            if n == 0 {
                return Err(bad("max_series_per_sample", "must be at least 1".into()));
            }
            self.max_series_per_sample = n;
        }
        if let Some(n) = file.max_series_per_host {
            if n == 0 {
                return Err(bad("max_series_per_host", "must be at least 1".into()));
            }
            self.max_series_per_host = n;
        }
        if let Some(seconds) = file.max_clock_skew_seconds {
            if seconds == 0 {
                return Err(bad("max_clock_skew_seconds", "must be at least 1".into()));
            }
            self.max_clock_skew = Duration::from_secs(seconds);
        }
        if let Some(sync) = file.synchronous {
            self.synchronous = sync;
        }
        if let Some(seconds) = file.maintenance_interval_seconds {
            if !(1..=3600).contains(&seconds) {
                return Err(bad(
                    "maintenance_interval_seconds",
                    format!("{seconds} is outside 1..=3600"),
                ));
            }
            self.maintenance_interval = Duration::from_secs(seconds);
        }
        if let Some(days) = &file.retention {
            self.retention
                .apply(days)
                .map_err(|m| bad("retention", m))?;
        }
        if let Some(http) = &file.http {
            if let Some(token) = &http.metrics_token {
                if token.len() < MIN_METRICS_TOKEN_LEN || token.chars().any(char::is_whitespace) {
                    return Err(bad(
                        "http.metrics_token",
                        format!(
                            "must be at least {MIN_METRICS_TOKEN_LEN} characters without spaces"
                        ),
                    ));
                }
                if http.metrics_public {
                    return Err(bad(
                        "http.metrics_public",
                        "cannot be true together with http.metrics_token (pick one)".into(),
                    ));
                }
            }
            self.http = http.clone();
        }
        if let Some(alerts) = &file.alerts {
            self.alerts =
                AlertsConfig::from_toml(alerts.clone()).map_err(|message| Error::Config {
                    source_name: source_name.to_owned(),
                    message,
                })?;
        }
        match (&file.tls_cert, &file.tls_key) {
            (Some(cert), Some(key)) => {
                self.tls = Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(bad(
                    "tls_key",
                    "missing: tls_cert is set, so the key file is needed too".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "tls_cert",
                    "missing: tls_key is set, so the certificate file is needed too".into(),
                ))
            }
        }
        if let Some(url) = &file.public_url {
            self.public_url = Some(parse_public_url(url).map_err(|m| bad("public_url", m))?);
        }
        if let Some(path) = &file.agent_binary {
            self.agent_binary.clone_from(path);
        }
        if let Some(notify) = &file.notify {
            self.notify =
                NotifyConfig::from_toml(notify.clone()).map_err(|message| Error::Config {
                    source_name: source_name.to_owned(),
                    message,
                })?;
        }
        self.alerts.repeat_by_severity = self.notify.repeat;
        Ok(())
    }
}

/// `scheme://host[:port]` for `public_url`, without a trailing slash. Only characters that
/// are safe inside a shell single-quoted string and a TOML string are allowed, because the
/// install script and the agent config shown on the dashboard carry it.
pub fn parse_public_url(url: &str) -> std::result::Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let Some((scheme, authority)) = trimmed.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL like https://mon.example.com:4000"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?} must start with https:// or http://"));
    }
    if authority.contains('/') {
        return Err(format!(
            "{url:?} has a path; the server answers at the root, so give only scheme://host[:port]"
        ));
    }
    if !is_authority(authority) {
        return Err(format!(
            "{url:?}: the host must be a name or address (letters, digits, '.', '-', ':', [ ])"
        ));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Whether `text` looks like `host[:port]` (a DNS name, IPv4 or bracketed IPv6 address).
pub fn is_authority(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        && !text.starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = ServerConfig::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:4000");
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
    }

    #[test]
    fn file_then_flags() {
        let mut config = ServerConfig::default();
        config
            .apply_toml(
                "listen = \"0.0.0.0:5000\"\nbcrypt_cost = 10\nsynchronous = \"normal\"\n",
                "t.toml",
            )
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:5000");
        assert_eq!(config.synchronous, Synchronous::Normal);
        config
            .apply_toml("[retention]\nraw_days = 14\n", "t.toml")
            .unwrap();
        assert_eq!(config.retention.raw, 14 * 86400);
        assert!(config
            .apply_toml("[retention]\nrollup_30m_days = 3\n", "t.toml")
            .is_err());
        config
            .apply(
                &FileConfig {
                    bcrypt_cost: Some(4),
                    ..FileConfig::default()
                },
                "flags",
            )
            .unwrap();
        assert_eq!(config.bcrypt_cost, 4);
    }

    #[test]
    fn errors_name_the_source_and_key() {
        let mut config = ServerConfig::default();
        let err = config
            .apply_toml("bcrypt_cost = 99\n", "/etc/pm.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/pm.toml") && err.contains("bcrypt_cost"),
            "{err}"
        );
        let err = config
            .apply_toml("lisen = \"x\"\n", "/etc/pm.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = config
            .apply_toml("listen = \"nowhere\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        assert!(config.apply_toml("this is = not toml [", "f").is_err());
    }

    #[test]
    fn tls_public_url_and_agent_binary() {
        let mut config = ServerConfig::default();
        assert_eq!(config.tls, None);
        assert_eq!(config.agent_binary, PathBuf::from(DEFAULT_AGENT_BINARY));
        config
            .apply_toml(
                "tls_cert = \"/etc/pm/cert.pem\"\ntls_key = \"/etc/pm/key.pem\"\n\
                 public_url = \"https://mon.example.com:4000/\"\nagent_binary = \"/opt/agent\"\n",
                "f",
            )
            .unwrap();
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "/etc/pm/cert.pem".into(),
                key: "/etc/pm/key.pem".into()
            })
        );
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://mon.example.com:4000")
        );
        assert_eq!(config.agent_binary, PathBuf::from("/opt/agent"));
        for (bad, key) in [
            ("tls_cert = \"/c.pem\"\n", "tls_key"),
            ("tls_key = \"/k.pem\"\n", "tls_cert"),
            ("public_url = \"mon:4000\"\n", "public_url"),
            ("public_url = \"ftp://mon\"\n", "public_url"),
            ("public_url = \"https://mon/pm\"\n", "public_url"),
            ("public_url = \"https://mon'; rm -rf /\"\n", "public_url"),
            ("public_url = \"https://\"\n", "public_url"),
        ] {
            let err = ServerConfig::default()
                .apply_toml(bad, "f")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
        assert_eq!(
            parse_public_url("http://[::1]:4000").unwrap(),
            "http://[::1]:4000"
        );
    }

    #[test]
    fn http_table() {
        let mut config = ServerConfig::default();
        assert_eq!(config.http, HttpConfig::default());
        config
            .apply_toml(
                "[http]\nmetrics_token = \"0123456789abcdef0123\"\nsecure_cookies = true\n",
                "f",
            )
            .unwrap();
        assert_eq!(
            config.http.metrics_token.as_deref(),
            Some("0123456789abcdef0123")
        );
        assert!(config.http.secure_cookies && !config.http.metrics_public);
        for bad in [
            "[http]\nmetrics_token = \"short\"\n",
            "[http]\nmetrics_token = \"0123456789abcdef0123\"\nmetrics_public = true\n",
            "[http]\nmetrics_tokn = \"x\"\n",
        ] {
            let err = config.apply_toml(bad, "f").unwrap_err().to_string();
            assert!(err.contains("metrics_"), "{err}");
        }
        config
            .apply_toml("[http]\nmetrics_public = true\n", "f")
            .unwrap();
        assert!(config.http.metrics_public && config.http.metrics_token.is_none());
    }
}
