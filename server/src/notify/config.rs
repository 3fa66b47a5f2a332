//! `[notify]` in the server's TOML: channels, routes, quiet hours, escalation, grouping,
//! retries and the heartbeat. Every error names the key (`notify.channels.ops.url: …`); the
//! server refuses to start on it.
//!
//! Secrets (`secret`, `token`, `password`, `bot_token`, `user_key`, the webhook URLs of
//! Discord and Slack, `heartbeat_url`) may be given inline or read from a file with the key
//! `…_file`. The names of the inline ones are kept, so that `ServerConfig::load` can refuse a
//! config file that holds them and is readable by every user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::config::{one_line, schedule, seconds, RepeatBySeverity};
use crate::alerts::quiet::{glob_match, Window};
use crate::store::alerts::Severity;

/// Defaults that work with no configuration beyond a channel.
pub const DEFAULT_TIMEOUT_S: i64 = 10;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_RETRY_BASE_S: i64 = 10;
pub const DEFAULT_RETRY_MAX_S: i64 = 3600;
pub const DEFAULT_GROUP_WINDOW_S: i64 = 30;
pub const DEFAULT_HEARTBEAT_S: i64 = 60;
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";
pub const DEFAULT_PUSHOVER_API: &str = "https://api.pushover.net";

/// The notification settings, checked.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The dashboard's address as people reach it (`https://monitor.example.com`): messages
    /// link to `{public_url}/hosts/NAME`.
    pub public_url: Option<String>,
    pub timeout: Duration,
    /// A message still failing after this many attempts is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long, up to `retry_max_s`.
    pub retry_base_s: i64,
    pub retry_max_s: i64,
    /// A host's events within this window go out as one message.
    pub group_window_s: i64,
    /// PEM file of the CAs trusted instead of the built-in roots (every channel; a channel's
    /// own `ca_file` wins).
    pub ca_file: Option<PathBuf>,
    pub heartbeat: Option<Heartbeat>,
    pub repeat: RepeatBySeverity,
    pub channels: BTreeMap<String, Channel>,
    pub routes: Vec<Route>,
    /// Used for an event no route matches; without `[notify.default_route]`, every channel.
    pub default_route: Route,
    /// Keys of secrets written in the file itself (for the permission check).
    pub inline_secrets: Vec<String>,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            public_url: None,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_S.unsigned_abs()),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_s: DEFAULT_RETRY_BASE_S,
            retry_max_s: DEFAULT_RETRY_MAX_S,
            group_window_s: DEFAULT_GROUP_WINDOW_S,
            ca_file: None,
            heartbeat: None,
            repeat: RepeatBySeverity::default(),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            default_route: Route::default(),
            inline_secrets: Vec::new(),
        }
    }
}

/// A dead man's switch: a URL called every `interval_s` while the server works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub url: String,
    pub interval_s: i64,
}

/// One channel.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// At most this many messages a minute (a burst of as many, then evenly spread).
    pub rate_per_minute: Option<u32>,
    pub ca_file: Option<PathBuf>,
}

/// How an email is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP, then STARTTLS (required): port 587.
    StartTls,
    /// TLS from the first byte: port 465.
    Tls,
    /// No encryption at all: only on a trusted network (a local relay).
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// What a channel is, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook {
        url: String,
        secret: Option<String>,
        headers: Vec<(String, String)>,
    },
    Ntfy {
        url: String,
        topic: String,
        token: Option<String>,
    },
    Gotify {
        url: String,
        token: String,
    },
    Discord {
        url: String,
    },
    Slack {
        url: String,
    },
    Telegram {
        api_url: String,
        bot_token: String,
        chat_id: String,
    },
    Pushover {
        api_url: String,
        token: String,
        user_key: String,
    },
    Email(Email),
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Ntfy { .. } => "ntfy",
            ChannelKind::Gotify { .. } => "gotify",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Telegram { .. } => "telegram",
            ChannelKind::Pushover { .. } => "pushover",
            ChannelKind::Email(_) => "email",
        }
    }
}

/// A route: which events (every list that is not empty must match) go to which channels.
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub name: String,
    pub severities: Vec<Severity>,
    /// Rule name globs.
    pub rules: Vec<String>,
    /// Host name globs.
    pub hosts: Vec<String>,
    /// Guest tags (exact).
    pub tags: Vec<String>,
    /// `None` only for the built-in default route: every channel.
    pub channels: Option<Vec<String>>,
    /// Non-critical messages wait while this is active.
    pub quiet_hours: Option<Window>,
    /// Still firing and not acknowledged this long after it fired: also to `escalate_to`.
    pub escalate_after_s: Option<i64>,
    pub escalate_to: Vec<String>,
}

/// What a route is matched against.
#[derive(Debug, Clone, Copy)]
pub struct RouteSubject<'a> {
    pub severity: Severity,
    pub rule: &'a str,
    pub host: &'a str,
    pub tags: &'a [String],
}

impl Route {
    pub fn matches(&self, s: &RouteSubject<'_>) -> bool {
        (self.severities.is_empty() || self.severities.contains(&s.severity))
            && (self.rules.is_empty() || self.rules.iter().any(|g| glob_match(g, s.rule)))
            && (self.hosts.is_empty() || self.hosts.iter().any(|g| glob_match(g, s.host)))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    public_url: Option<String>,
    timeout: Option<String>,
    max_attempts: Option<u32>,
    retry_base: Option<String>,
    retry_max: Option<String>,
    group_window: Option<String>,
    ca_file: Option<PathBuf>,
    heartbeat_url: Option<String>,
    heartbeat_url_file: Option<PathBuf>,
    heartbeat_interval: Option<String>,
    repeat: Option<RawRepeat>,
    #[serde(default)]
    channels: BTreeMap<String, toml::Table>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    default_route: Option<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepeat {
    warning: Option<String>,
    critical: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    channels: Option<Vec<String>>,
    quiet_hours: Option<RawQuietHours>,
    escalate_after: Option<String>,
    #[serde(default)]
    escalate_to: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuietHours {
    #[serde(default)]
    days: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    duration: Option<String>,
    timezone: Option<String>,
}

/// Keys every channel accepts.
const COMMON_KEYS: &[&str] = &["type", "rate_limit", "ca_file"];

/// The keys of each channel type; `*` marks a secret (also accepted as `KEY_file`).
fn type_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "webhook" => &["url", "*secret", "headers"],
        "ntfy" => &["url", "topic", "*token"],
        "gotify" => &["url", "*token"],
        "discord" | "slack" => &["*url"],
        "telegram" => &["api_url", "*bot_token", "chat_id"],
        "pushover" => &["api_url", "*token", "*user_key"],
        "email" => &[
            "smtp_host",
            "smtp_port",
            "security",
            "username",
            "*password",
            "from",
            "to",
        ],
        _ => return None,
    })
}

/// Reads a secret file: its first line, without the line end. Refused when every user may
/// read it.
fn read_secret_file(path: &Path, key: &str) -> Result<String, String> {
    check_not_world_readable(path).map_err(|m| format!("{key}: {m}"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(format!("{key}: {} is empty", path.display()));
    }
    Ok(secret)
}

/// `Err` (saying how to fix it) when `path` is readable by users other than its owner and
/// group.
pub fn check_not_world_readable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} holds secrets and is readable by every user (mode {mode:04o}); run \
             `chmod 0640 {}` (owner and the server's group) or `chmod 0600`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

fn duration(key: &str, text: Option<&String>, default: i64) -> Result<i64, String> {
    match text {
        Some(t) => seconds(t).map_err(|m| format!("{key}: {m}")),
        None => Ok(default),
    }
}

fn check_url(key: &str, url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() < 10 {
        return Err(format!(
            "{key}: {:?} is not an http:// or https:// URL",
            redact(url)
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A URL for messages: scheme and host only (paths of Discord, Slack and Telegram URLs
/// carry tokens).
pub fn redact(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{}://{host}/…", &url[..i])
        }
        None => "…".into(),
    }
}

impl NotifyConfig {
    /// Reads a `[notify]` table. The error is `key: message`.
    pub fn from_toml(value: toml::Value) -> Result<NotifyConfig, String> {
        let raw: RawNotify = value
            .try_into()
            .map_err(|e: toml::de::Error| format!("notify: {}", one_line(&e.to_string())))?;
        let mut config = NotifyConfig::default();
        if let Some(url) = &raw.public_url {
            config.public_url = Some(check_url("notify.public_url", url)?);
        }
        let timeout = duration("notify.timeout", raw.timeout.as_ref(), DEFAULT_TIMEOUT_S)?;
        if !(1..=300).contains(&timeout) {
            return Err("notify.timeout: must be between 1s and 5m".into());
        }
        config.timeout = Duration::from_secs(timeout.unsigned_abs());
        if let Some(n) = raw.max_attempts {
            if !(1..=100).contains(&n) {
                return Err(format!("notify.max_attempts: {n} is outside 1..=100"));
            }
            config.max_attempts = n;
        }
        config.retry_base_s = duration(
            "notify.retry_base",
            raw.retry_base.as_ref(),
            DEFAULT_RETRY_BASE_S,
        )?;
        config.retry_max_s = duration(
            "notify.retry_max",
            raw.retry_max.as_ref(),
            DEFAULT_RETRY_MAX_S,
        )?;
        if config.retry_base_s < 1 || config.retry_max_s < config.retry_base_s {
            return Err("notify.retry_base: must be at least 1s and at most retry_max".into());
        }
        config.group_window_s = duration(
            "notify.group_window",
            raw.group_window.as_ref(),
            DEFAULT_GROUP_WINDOW_S,
        )?;
        if !(0..=3600).contains(&config.group_window_s) {
            return Err("notify.group_window: must be between 0s and 1h".into());
        }
        config.ca_file = raw.ca_file.clone();
        if let Some(path) = &config.ca_file {
            load_ca(path).map_err(|m| format!("notify.ca_file: {m}"))?;
        }
        let heartbeat_url = match (&raw.heartbeat_url, &raw.heartbeat_url_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "notify.heartbeat_url: give heartbeat_url or heartbeat_url_file, \
                            not both"
                        .into(),
                )
            }
            (Some(url), None) => {
                config.inline_secrets.push("notify.heartbeat_url".into());
                Some(url.clone())
            }
            (None, Some(path)) => Some(read_secret_file(path, "notify.heartbeat_url_file")?),
            (None, None) => None,
        };
        if let Some(url) = heartbeat_url {
            let interval = duration(
                "notify.heartbeat_interval",
                raw.heartbeat_interval.as_ref(),
                DEFAULT_HEARTBEAT_S,
            )?;
            if !(5..=86400).contains(&interval) {
                return Err("notify.heartbeat_interval: must be between 5s and 1d".into());
            }
            config.heartbeat = Some(Heartbeat {
                url: check_url("notify.heartbeat_url", &url)?,
                interval_s: interval,
            });
        } else if raw.heartbeat_interval.is_some() {
            return Err("notify.heartbeat_interval: set heartbeat_url too".into());
        }
        if let Some(repeat) = &raw.repeat {
            let one = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
                v.as_ref()
                    .map(|t| seconds(t).map_err(|m| format!("notify.repeat.{name}: {m}")))
                    .transpose()
            };
            config.repeat = RepeatBySeverity {
                warning: one("warning", &repeat.warning)?,
                critical: one("critical", &repeat.critical)?,
            };
        }
        for (name, table) in raw.channels {
            let channel = channel(&name, table, &mut config.inline_secrets)?;
            config.channels.insert(name, channel);
        }
        for (i, raw_route) in raw.routes.into_iter().enumerate() {
            let key = format!("notify.routes[{i}]");
            let route = route(raw_route, &key, &config.channels, false)?;
            config.routes.push(route);
        }
        if let Some(raw_default) = raw.default_route {
            config.default_route =
                route(raw_default, "notify.default_route", &config.channels, true)?;
        }
        if config.default_route.name.is_empty() {
            config.default_route.name = "default".into();
        }
        Ok(config)
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.get(name)
    }

    /// The channel names a route sends to.
    pub fn route_channels<'a>(&'a self, route: &'a Route) -> Vec<&'a str> {
        match &route.channels {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => self.channels.keys().map(String::as_str).collect(),
        }
    }

    /// The routes an event takes: every route that matches, else the default route.
    pub fn routes_for(&self, subject: &RouteSubject<'_>) -> Vec<&Route> {
        let matched: Vec<&Route> = self.routes.iter().filter(|r| r.matches(subject)).collect();
        if matched.is_empty() {
            vec![&self.default_route]
        } else {
            matched
        }
    }
}

/// The certificates of a PEM file (at least one).
pub fn load_ca(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn channel(name: &str, table: toml::Table, secrets: &mut Vec<String>) -> Result<Channel, String> {
    let key = format!("notify.channels.{name}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{key}: a channel name is letters, digits, '-', '_' and '.'"
        ));
    }
    let kind = table
        .get("type")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| {
            format!(
                "{key}.type: missing (webhook, ntfy, gotify, discord, slack, telegram, \
                 pushover or email)"
            )
        })?
        .to_owned();
    let keys = type_keys(&kind).ok_or_else(|| {
        format!(
            "{key}.type: {kind:?} is not one of webhook, ntfy, gotify, discord, slack, \
             telegram, pushover, email"
        )
    })?;
    let allowed = |k: &str| {
        COMMON_KEYS.contains(&k)
            || keys.iter().any(|x| x.trim_start_matches('*') == k)
            || keys
                .iter()
                .any(|x| x.starts_with('*') && format!("{}_file", &x[1..]) == k)
    };
    for k in table.keys() {
        if !allowed(k) {
            let list: Vec<String> = keys
                .iter()
                .map(|x| {
                    if let Some(s) = x.strip_prefix('*') {
                        format!("{s} (or {s}_file)")
                    } else {
                        (*x).to_owned()
                    }
                })
                .collect();
            return Err(format!(
                "{key}.{k}: not a setting of a {kind} channel (it has: {}, rate_limit, ca_file)",
                list.join(", ")
            ));
        }
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match table.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key}.{k}: must be a string")),
        }
    };
    // A secret, inline or from its file.
    let mut secret = |k: &str| -> Result<Option<String>, String> {
        let inline = text(k)?;
        let file = text(&format!("{k}_file"))?;
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!("{key}.{k}: give {k} or {k}_file, not both")),
            (Some(v), None) => {
                secrets.push(format!("{key}.{k}"));
                Ok(Some(v))
            }
            (None, Some(path)) => {
                read_secret_file(Path::new(&path), &format!("{key}.{k}_file")).map(Some)
            }
            (None, None) => Ok(None),
        }
    };
    let need = |k: &str, v: Option<String>| -> Result<String, String> {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{key}.{k}: a {kind} channel needs it"))
    };
    let url = |k: &str, v: Option<String>| -> Result<String, String> {
        check_url(&format!("{key}.{k}"), &need(k, v)?)
    };
    let channel_kind = match kind.as_str() {
        "webhook" => {
            let mut headers = Vec::new();
            match table.get("headers") {
                None => {}
                Some(toml::Value::Table(t)) => {
                    for (h, v) in t {
                        let v = v
                            .as_str()
                            .ok_or_else(|| format!("{key}.headers.{h}: must be a string"))?;
                        let valid_name = !h.is_empty()
                            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                        if !valid_name || v.contains(['\r', '\n']) {
                            return Err(format!("{key}.headers.{h}: not a valid header"));
                        }
                        headers.push((h.clone(), v.to_owned()));
                    }
                }
                Some(_) => return Err(format!("{key}.headers: must be a table of strings")),
            }
            ChannelKind::Webhook {
                url: url("url", text("url")?)?,
                secret: secret("secret")?,
                headers,
            }
        }
        "ntfy" => ChannelKind::Ntfy {
            url: url(
                "url",
                text("url")?.or_else(|| Some("https://ntfy.sh".into())),
            )?,
            topic: need("topic", text("topic")?)?,
            token: secret("token")?,
        },
        "gotify" => ChannelKind::Gotify {
            url: url("url", text("url")?)?,
            token: need("token", secret("token")?)?,
        },
        "discord" => ChannelKind::Discord {
            url: url("url", secret("url")?)?,
        },
        "slack" => ChannelKind::Slack {
            url: url("url", secret("url")?)?,
        },
        "telegram" => ChannelKind::Telegram {
            api_url: url(
                "api_url",
                text("api_url")?.or_else(|| Some(DEFAULT_TELEGRAM_API.into())),
            )?,
            bot_token: need("bot_token", secret("bot_token")?)?,
            chat_id: match table.get("chat_id") {
                Some(toml::Value::Integer(n)) => n.to_string(),
                Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(format!("{key}.chat_id: a telegram channel needs it")),
            },
        },
        "pushover" => ChannelKind::Pushover {
            api_url: url(
                "api_url",
                text("api_url")?.or_else(|| Some(DEFAULT_PUSHOVER_API.into())),
            )?,
            token: need("token", secret("token")?)?,
            user_key: need("user_key", secret("user_key")?)?,
        },
        _ => {
            let security = match text("security")?.as_deref() {
                None | Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") => SmtpSecurity::Tls,
                Some("plain") => SmtpSecurity::Plain,
                Some(other) => {
                    return Err(format!(
                        "{key}.security: {other:?} is not starttls, tls or plain"
                    ))
                }
            };
            let port = match table.get("smtp_port") {
                None => match security {
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::Plain => 25,
                },
                Some(toml::Value::Integer(n)) => u16::try_from(*n)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{key}.smtp_port: {n} is not a port"))?,
                Some(_) => return Err(format!("{key}.smtp_port: must be a number")),
            };
            let to = match table.get("to") {
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{key}.to: must be addresses"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => Vec::new(),
            };
            if to.is_empty() {
                return Err(format!(
                    "{key}.to: an email channel needs at least one address"
                ));
            }
            let from = need("from", text("from")?)?;
            for address in to.iter().chain([&from]) {
                address
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("{key}: {address:?} is not an email address ({e})"))?;
            }
            let username = text("username")?;
            let password = secret("password")?;
            if username.is_some() != password.is_some() {
                return Err(format!(
                    "{key}.username: give both username and password (or password_file), or \
                     neither"
                ));
            }
            if username.is_some() && security == SmtpSecurity::Plain {
                log::warn!(
                    "{key}: SMTP authentication without TLS sends the password in clear; use \
                     security = \"starttls\" or \"tls\" unless the relay is on this host"
                );
            }
            ChannelKind::Email(Email {
                host: need("smtp_host", text("smtp_host")?)?,
                port,
                security,
                username,
                password,
                from,
                to,
            })
        }
    };
    let rate_per_minute = match table.get("rate_limit") {
        None => None,
        Some(toml::Value::Integer(n)) if (1..=10_000).contains(n) => u32::try_from(*n).ok(),
        Some(_) => return Err(format!("{key}.rate_limit: messages per minute, 1..=10000")),
    };
    let ca_file = text("ca_file")?.map(PathBuf::from);
    if let Some(path) = &ca_file {
        load_ca(path).map_err(|m| format!("{key}.ca_file: {m}"))?;
    }
    Ok(Channel {
        name: name.to_owned(),
        kind: channel_kind,
        rate_per_minute,
        ca_file,
    })
}

fn route(
    raw: RawRoute,
    key: &str,
    channels: &BTreeMap<String, Channel>,
    default: bool,
) -> Result<Route, String> {
    let check = |field: &str, names: &[String]| -> Result<(), String> {
        for n in names {
            if !channels.contains_key(n) {
                return Err(format!("{key}.{field}: no channel is called {n:?}"));
            }
        }
        Ok(())
    };
    if default
        && !(raw.severities.is_empty()
            && raw.rules.is_empty()
            && raw.hosts.is_empty()
            && raw.tags.is_empty())
    {
        return Err(format!(
            "{key}: the default route takes what no route matched; it has no matchers"
        ));
    }
    let channel_list = match raw.channels {
        Some(list) => {
            check("channels", &list)?;
            Some(list)
        }
        None if default => None,
        None => return Err(format!("{key}.channels: a route needs its channels")),
    };
    check("escalate_to", &raw.escalate_to)?;
    let severities = raw
        .severities
        .iter()
        .map(|s| {
            Severity::parse(s)
                .ok_or_else(|| format!("{key}.severities: {s:?} is not warning or critical"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let quiet_hours = raw
        .quiet_hours
        .map(|q| {
            schedule(
                q.days,
                q.start,
                q.end,
                q.duration,
                q.timezone,
                &format!("{key}.quiet_hours"),
            )
        })
        .transpose()?;
    let escalate_after_s = raw
        .escalate_after
        .as_ref()
        .map(|t| seconds(t).map_err(|m| format!("{key}.escalate_after: {m}")))
        .transpose()?;
    if escalate_after_s.is_some() == raw.escalate_to.is_empty() {
        return Err(format!(
            "{key}.escalate_after: give escalate_after and escalate_to together"
        ));
    }
    Ok(Route {
        name: raw.name.unwrap_or_else(|| key.to_owned()),
        severities,
        rules: raw.rules,
        hosts: raw.hosts,
        tags: raw.tags,
        channels: channel_list,
        quiet_hours,
        escalate_after_s,
        escalate_to: raw.escalate_to,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        let value: toml::Table = toml::from_str(text).unwrap();
        NotifyConfig::from_toml(value.get("notify").cloned().unwrap())
    }

    #[test]
    fn every_channel_type_and_routes() {
        let config = parse(
            r#"
            [notify]
            public_url = "https://monitor.example.com/"
            group_window = "0s"
            [notify.repeat]
            critical = "1h"
            warning = "0"
            [notify.channels.hook]
            type = "webhook"
            url = "https://example.com/hook"
            secret = "s3cret"
            headers = { X-Team = "ops" }
            [notify.channels.phone]
            type = "ntfy"
            topic = "alerts"
            [notify.channels.g]
            type = "gotify"
            url = "https://gotify.example.com"
            token = "t"
            [notify.channels.d]
            type = "discord"
            url = "https://discord.com/api/webhooks/1/x"
            [notify.channels.s]
            type = "slack"
            url = "https://hooks.slack.com/services/T/B/X"
            [notify.channels.tg]
            type = "telegram"
            bot_token = "123:abc"
            chat_id = -100123
            [notify.channels.po]
            type = "pushover"
            token = "a"
            user_key = "u"
            rate_limit = 5
            [notify.channels.mail]
            type = "email"
            smtp_host = "mail.example.com"
            security = "tls"
            from = "Monitor <monitor@example.com>"
            to = ["a@example.com", "b@example.com"]
            [[notify.routes]]
            severities = ["critical"]
            hosts = ["pve-*"]
            channels = ["phone"]
            escalate_after = "30m"
            escalate_to = ["tg"]
            quiet_hours = { start = "22:00", end = "07:00", timezone = "Europe/Berlin" }
            [notify.default_route]
            channels = ["mail"]
            "#,
        )
        .unwrap();
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://monitor.example.com")
        );
        assert_eq!(config.channels.len(), 8);
        assert_eq!(config.repeat.critical, Some(3600));
        assert_eq!(config.repeat.warning, Some(0));
        assert_eq!(config.group_window_s, 0);
        let ChannelKind::Email(mail) = &config.channels["mail"].kind else {
            panic!()
        };
        assert_eq!((mail.port, mail.security), (465, SmtpSecurity::Tls));
        assert_eq!(mail.to.len(), 2);
        let ChannelKind::Telegram {
            chat_id, api_url, ..
        } = &config.channels["tg"].kind
        else {
            panic!()
        };
        assert_eq!(
            (chat_id.as_str(), api_url.as_str()),
            ("-100123", DEFAULT_TELEGRAM_API)
        );
        assert_eq!(config.channels["po"].rate_per_minute, Some(5));
        assert_eq!(
            config.inline_secrets,
            vec![
                "notify.channels.d.url",
                "notify.channels.g.token",
                "notify.channels.hook.secret",
                "notify.channels.po.token",
                "notify.channels.po.user_key",
                "notify.channels.s.url",
                "notify.channels.tg.bot_token",
            ]
        );
        let tags = vec![];
        let subject = |severity, host| RouteSubject {
            severity,
            rule: "cpu_high",
            host,
            tags: &tags,
        };
        let crit = config.routes_for(&subject(Severity::Critical, "pve-1"));
        assert_eq!(crit.len(), 1);
        assert_eq!(config.route_channels(crit[0]), vec!["phone"]);
        assert_eq!(crit[0].escalate_after_s, Some(1800));
        let warn = config.routes_for(&subject(Severity::Warning, "pve-1"));
        assert_eq!(config.route_channels(warn[0]), vec!["mail"]);
        let other = config.routes_for(&subject(Severity::Critical, "backup"));
        assert_eq!(config.route_channels(other[0]), vec!["mail"]);
    }

    #[test]
    fn without_routes_everything_goes_everywhere() {
        let config = parse("[notify.channels.a]\ntype = \"slack\"\nurl_file = \"/nonexistent\"\n");
        assert!(config.unwrap_err().contains("notify.channels.a.url_file"));
        let config = parse(
            "[notify.channels.a]\ntype = \"discord\"\nurl = \"https://d.example/x\"\n\
             [notify.channels.b]\ntype = \"ntfy\"\ntopic = \"t\"\n",
        )
        .unwrap();
        let tags = vec!["prod".to_owned()];
        let routes = config.routes_for(&RouteSubject {
            severity: Severity::Warning,
            rule: "x",
            host: "h",
            tags: &tags,
        });
        assert_eq!(config.route_channels(routes[0]), vec!["a", "b"]);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[notify.channels.a]\nurl = \"https://x.example\"\n", "notify.channels.a.type"),
            ("[notify.channels.a]\ntype = \"fax\"\n", "notify.channels.a.type"),
            (
                "[notify.channels.a]\ntype = \"webhook\"\nurl = \"https://x.example\"\ntopic = \"t\"\n",
                "notify.channels.a.topic",
            ),
            ("[notify.channels.a]\ntype = \"webhook\"\nurl = \"ftp://x\"\n", "notify.channels.a.url"),
            ("[notify.channels.a]\ntype = \"gotify\"\nurl = \"https://x.example\"\n", "notify.channels.a.token"),
            (
                "[notify.channels.a]\ntype = \"email\"\nsmtp_host = \"m\"\nfrom = \"a@b.c\"\nto = []\n",
                "notify.channels.a.to",
            ),
            (
                "[notify.channels.a]\ntype = \"email\"\nsmtp_host = \"m\"\nfrom = \"a@b.c\"\nto = \"x\"\n",
                "notify.channels.a",
            ),
            ("[[notify.routes]]\nchannels = [\"nope\"]\n", "notify.routes[0].channels"),
            ("[[notify.routes]]\nseverities = [\"info\"]\nchannels = []\n", "notify.routes[0].severities"),
            (
                "[[notify.routes]]\nchannels = []\nquiet_hours = { start = \"22:00\", end = \"7\" }\n",
                "notify.routes[0].quiet_hours.end",
            ),
            ("[notify]\ngroup_window = \"2d\"\n", "notify.group_window"),
            ("[notify]\nheartbeat_interval = \"1m\"\n", "notify.heartbeat_interval"),
            ("[notify]\ncolour = 1\n", "colour"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn redaction_keeps_only_the_host() {
        assert_eq!(
            redact("https://api.telegram.org/bot123:abc/sendMessage"),
            "https://api.telegram.org/…"
        );
        assert_eq!(
            redact("https://user:pw@h.example:8443/x?y"),
            "https://h.example:8443/…"
        );
    }
}
