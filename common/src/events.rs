//! Topic and event names of the host channel, and the payloads of join and push.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// Path of the agent socket; Phoenix clients append `/websocket` to `/socket`.
pub const SOCKET_PATH: &str = "/socket/websocket";
/// The only serializer version we speak; `vsn` query parameter of the socket URL.
pub const PROTOCOL_VSN: &str = "2.0.0";

pub const PHX_JOIN: &str = "phx_join";
pub const PHX_REPLY: &str = "phx_reply";
pub const PHX_LEAVE: &str = "phx_leave";
pub const PHX_CLOSE: &str = "phx_close";
pub const PHX_ERROR: &str = "phx_error";
pub const HEARTBEAT: &str = "heartbeat";
/// Topic of socket-level messages (heartbeats).
pub const PHOENIX_TOPIC: &str = "phoenix";
pub const HOST_TOPIC_PREFIX: &str = "host:";

/// Reasons in error replies; agents and scripts match on these exact strings.
pub mod reason {
    pub const UNKNOWN_HOST: &str = "unknown_host";
    pub const INVALID_TOKEN: &str = "invalid_token";
    pub const BAD_TOPIC: &str = "bad_topic";
    pub const BAD_PAYLOAD: &str = "bad_payload";
    pub const UNMATCHED_TOPIC: &str = "unmatched topic";
    pub const UNKNOWN_EVENT: &str = "unknown_event";
    pub const STORE_FAILED: &str = "store_failed";
    /// The sample is dated further in the future than the server tolerates (the agent's clock
    /// is wrong); the reply's `message` names the skew. Never stored.
    pub const CLOCK_SKEW: &str = "clock_skew";
    /// The sample is older than the server keeps raw points; never stored.
    pub const TOO_OLD: &str = "too_old";
    /// The server cannot store anything right now (its database fails): back off and retry.
    pub const TRY_LATER: &str = "try_later";
    /// The sample has more series than the server takes in one sample, or would give its host
    /// more than it takes per host (`max_series_per_sample`, `max_series_per_host`).
    pub const TOO_MANY_SERIES: &str = "too_many_series";
}

/// The code of a refusal as agents see it: the reason, without the `: message` part the agent
/// appends when the reply carries one.
pub fn reason_code(reason: &str) -> &str {
    reason
        .split_once(':')
        .map_or(reason, |(code, _)| code)
        .trim()
}

/// The longest host name we accept (the `hosts.name` column's limit).
pub const MAX_HOST_NAME_LEN: usize = 100;

/// The payload of `phx_join` on `host:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinParams {
    pub token: String,
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The resumption ticket of the last join's reply, if the agent has one: lets the server
    /// skip bcrypt (see the server's `auth::Tickets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// How often a kind of sample is collected, and the event it is pushed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Fast,
    Medium,
    Slow,
}

impl MetricKind {
    pub const ALL: [MetricKind; 3] = [MetricKind::Fast, MetricKind::Medium, MetricKind::Slow];

    pub fn event(self) -> &'static str {
        match self {
            MetricKind::Fast => "metric:fast",
            MetricKind::Medium => "metric:medium",
            MetricKind::Slow => "metric:slow",
        }
    }

    pub fn from_event(event: &str) -> Option<MetricKind> {
        MetricKind::ALL.into_iter().find(|k| k.event() == event)
    }

    /// `fast`, `medium` or `slow`: how the kind is written in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Fast => "fast",
            MetricKind::Medium => "medium",
            MetricKind::Slow => "slow",
        }
    }

    /// The kind written as [`MetricKind::as_str`] writes it.
    pub fn parse(text: &str) -> Option<MetricKind> {
        MetricKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The payload of a `metric:*` push: when it was collected (RFC 3339 UTC) and the sample.
///
/// `data` stays a JSON value here so that the server can accept and store payloads of agents
/// older or newer than itself; `crate::sample` gives it a typed view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPush {
    pub collected_at: String,
    pub data: Value,
}

/// A `metric:*` push as the server reads it: `data` stays the text the agent sent (parsed
/// once, into the typed sample, and stored as received).
#[derive(Debug, Clone, Deserialize)]
pub struct RawMetricPush<'a> {
    #[serde(borrow)]
    pub collected_at: Cow<'a, str>,
    #[serde(borrow)]
    pub data: &'a RawValue,
}

impl<'a> RawMetricPush<'a> {
    /// Reads a push's payload; the error says what is wrong with it.
    pub fn parse(payload: &'a RawValue) -> Result<RawMetricPush<'a>, String> {
        serde_json::from_str(payload.get()).map_err(|e| e.to_string())
    }
}

/// The host name in a `host:<name>` topic, if the topic is one and the name is valid.
pub fn host_from_topic(topic: &str) -> Option<&str> {
    let name = topic.strip_prefix(HOST_TOPIC_PREFIX)?;
    validate_host_name(name).ok().map(|()| name)
}

/// The topic of a host's channel.
pub fn host_topic(name: &str) -> String {
    format!("{HOST_TOPIC_PREFIX}{name}")
}

/// Host names are 1–100 characters of `[A-Za-z0-9._-]`: safe in topics, URLs, file names, HTML
/// and Prometheus labels without escaping surprises.
pub fn validate_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("host name is empty".into());
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(format!(
            "host name is {} characters long; at most {MAX_HOST_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "host name {name:?} contains {bad:?}; only letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    if name == "." || name == ".." {
        // They would be path segments in URLs (`/hosts/..`), never a host.
        return Err(format!("host name {name:?} is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_dot_dot_are_not_host_names() {
        assert!(validate_host_name(".").is_err());
        assert!(validate_host_name("..").is_err());
        assert!(validate_host_name("...").is_ok());
        assert!(validate_host_name(".pve").is_ok());
    }

    #[test]
    fn host_names() {
        for good in ["pve", "pve-01", "node_1.example.com", &"a".repeat(100)] {
            assert!(validate_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "pve 01",
            "pve/01",
            "pve:1",
            "ümlaut",
            "<b>",
            &"a".repeat(101),
        ] {
            assert!(validate_host_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics() {
        assert_eq!(host_from_topic("host:pve-01"), Some("pve-01"));
        assert_eq!(host_from_topic("host:"), None);
        assert_eq!(host_from_topic("room:pve"), None);
        assert_eq!(host_topic("x"), "host:x");
    }

    #[test]
    fn metric_events_round_trip() {
        for kind in MetricKind::ALL {
            assert_eq!(MetricKind::from_event(kind.event()), Some(kind));
            assert_eq!(MetricKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MetricKind::from_event("metric:other"), None);
        assert_eq!(MetricKind::parse("metric:fast"), None);
    }

    #[test]
    fn raw_pushes_keep_data_as_sent() {
        let payload: Box<RawValue> = serde_json::from_str(
            r#"{"collected_at":"2026-11-25T12:00:00Z","data":{"load1": 0.5, "x":[1,2]}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let push = RawMetricPush::parse(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(push.data.get(), r#"{"load1": 0.5, "x":[1,2]}"#);
        assert_eq!(push.collected_at, "2026-11-25T12:00:00Z");
        let bad: Box<RawValue> = serde_json::from_str(r#"{"collected_at":5,"data":{}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(RawMetricPush::parse(&bad).is_err());
        let missing: Box<RawValue> =
            serde_json::from_str(r#"{"data":{}}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(RawMetricPush::parse(&missing).is_err());
    }
}
