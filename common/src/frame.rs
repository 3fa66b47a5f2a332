//! Phoenix Channels V2 JSON frames: `[join_ref, ref, topic, event, payload]`.
//!
//! `join_ref` and `ref` are opaque strings or null. Real clients always send strings; we also
//! accept JSON numbers there (and turn them into their decimal text) because a frame that differs
//! only in that is clearly meant the same way, and refusing it would help nobody.

use serde::ser::SerializeTuple;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

use crate::events;

/// One Phoenix Channels V2 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The ref of the `phx_join` that opened the channel this message belongs to.
    pub join_ref: Option<String>,
    /// The ref of this message; replies carry the ref of the message they answer.
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// Why a text frame is not a Phoenix V2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON at all.
    Json(String),
    /// JSON, but not a 5-element array of the right types; says which part is wrong.
    Shape(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Json(e) => write!(f, "frame is not valid JSON: {e}"),
            FrameError::Shape(what) => write!(f, "frame is not a Phoenix V2 message: {what}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Frame {
    /// A frame with the given parts.
    pub fn new(
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> Frame {
        Frame {
            join_ref: join_ref.map(str::to_owned),
            msg_ref: msg_ref.map(str::to_owned),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        }
    }

    /// A client heartbeat (`[null, ref, "phoenix", "heartbeat", {}]`).
    pub fn heartbeat(msg_ref: &str) -> Frame {
        Frame::new(
            None,
            Some(msg_ref),
            events::PHOENIX_TOPIC,
            events::HEARTBEAT,
            Value::Object(Map::new()),
        )
    }

    /// Parses one WebSocket text frame.
    pub fn decode(text: &str) -> Result<Frame, FrameError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        Frame::from_value(value)
    }

    /// Interprets an already parsed JSON value as a frame.
    pub fn from_value(value: Value) -> Result<Frame, FrameError> {
        let Value::Array(parts) = value else {
            return Err(FrameError::Shape("expected a JSON array"));
        };
        let Ok([join_ref, msg_ref, topic, event, payload]) = <[Value; 5]>::try_from(parts) else {
            return Err(FrameError::Shape("expected exactly 5 elements"));
        };
        Ok(Frame {
            join_ref: opaque_ref(join_ref)
                .ok_or(FrameError::Shape("join_ref must be a string or null"))?,
            msg_ref: opaque_ref(msg_ref)
                .ok_or(FrameError::Shape("ref must be a string or null"))?,
            topic: match topic {
                Value::String(s) => s,
                _ => return Err(FrameError::Shape("topic must be a string")),
            },
            event: match event {
                Value::String(s) => s,
                _ => return Err(FrameError::Shape("event must be a string")),
            },
            payload,
        })
    }

    /// The frame as the JSON text sent on the wire.
    pub fn encode(&self) -> String {
        // Serializing a tree of `String`s and `Value`s cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The wire text of a frame whose payload is already JSON text (a spooled sample), without
    /// parsing it into a tree first: a big sample is then never held in memory twice. The
    /// payload is checked to be one well-formed JSON object.
    pub fn encode_raw(
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload_json: &str,
    ) -> Result<String, FrameError> {
        serde_json::from_str::<serde::de::IgnoredAny>(payload_json)
            .map_err(|e| FrameError::Json(e.to_string()))?;
        if !payload_json.trim_start().starts_with('{') {
            return Err(FrameError::Shape("payload must be a JSON object"));
        }
        // Encoding strings and options cannot fail.
        let text = |v: Option<&str>| serde_json::to_string(&v).unwrap_or_default();
        let mut out = String::with_capacity(payload_json.len() + topic.len() + event.len() + 40);
        out.push('[');
        out.push_str(&text(join_ref));
        out.push(',');
        out.push_str(&text(msg_ref));
        out.push(',');
        out.push_str(&text(Some(topic)));
        out.push(',');
        out.push_str(&text(Some(event)));
        out.push(',');
        out.push_str(payload_json.trim());
        out.push(']');
        Ok(out)
    }

    /// The `phx_reply` answering `self` with status `ok`.
    pub fn reply_ok(&self, response: Value) -> Frame {
        self.reply("ok", response)
    }

    /// The `phx_reply` answering `self` with status `error` and `{"reason": reason}`.
    pub fn reply_error(&self, reason: &str) -> Frame {
        let mut response = Map::new();
        response.insert("reason".into(), Value::String(reason.into()));
        self.reply("error", Value::Object(response))
    }

    fn reply(&self, status: &str, response: Value) -> Frame {
        reply_to(&self.join_ref, &self.msg_ref, &self.topic, status, response)
    }

    /// If this is a `phx_reply`, its status (`"ok"`/`"error"`) and response.
    pub fn as_reply(&self) -> Option<(&str, &Value)> {
        if self.event != events::PHX_REPLY {
            return None;
        }
        let status = self.payload.get("status")?.as_str()?;
        let response = self.payload.get("response").unwrap_or(&Value::Null);
        Some((status, response))
    }

    /// The `reason` of an error reply, if there is one.
    pub fn error_reason(&self) -> Option<&str> {
        match self.as_reply() {
            Some(("error", response)) => response.get("reason").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// A frame as the server reads it: refs, topic and event decoded, the payload left as the
/// JSON text it came in, to be parsed once into whatever its event calls for (a sample is
/// parsed straight into its typed form and stored as received, never built as a tree first).
#[derive(Debug, Clone)]
pub struct RawFrame<'a> {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: &'a RawValue,
}

impl<'a> RawFrame<'a> {
    /// Reads one WebSocket text frame, borrowing its payload from `text`.
    pub fn decode(text: &'a str) -> Result<RawFrame<'a>, FrameError> {
        // Every element stays text until it is known to be small: a ref or topic of nested
        // arrays builds no tree (serde_json checks the syntax of a `RawValue` without one).
        type Parts<'a> = (
            &'a RawValue,
            &'a RawValue,
            &'a RawValue,
            &'a RawValue,
            &'a RawValue,
        );
        let (join_ref, msg_ref, topic, event, payload) = serde_json::from_str::<Parts<'a>>(text)
            .map_err(|e| {
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                    FrameError::Json(e.to_string())
                } else {
                    FrameError::Shape("expected an array of 5 elements")
                }
            })?;
        Ok(RawFrame {
            join_ref: raw_ref(join_ref)
                .ok_or(FrameError::Shape("join_ref must be a string or null"))?,
            msg_ref: raw_ref(msg_ref).ok_or(FrameError::Shape("ref must be a string or null"))?,
            topic: raw_string(topic).ok_or(FrameError::Shape("topic must be a string"))?,
            event: raw_string(event).ok_or(FrameError::Shape("event must be a string"))?,
            payload,
        })
    }

    /// The `phx_reply` answering `self` with status `ok`.
    pub fn reply_ok(&self, response: Value) -> Frame {
        reply_to(&self.join_ref, &self.msg_ref, &self.topic, "ok", response)
    }

    /// The `phx_reply` answering `self` with status `error` and `{"reason": reason}`.
    pub fn reply_error(&self, reason: &str) -> Frame {
        let mut response = Map::new();
        response.insert("reason".into(), Value::String(reason.into()));
        reply_to(
            &self.join_ref,
            &self.msg_ref,
            &self.topic,
            "error",
            Value::Object(response),
        )
    }

    /// An error reply that also says in words what was wrong:
    /// `{"reason": reason, "message": message}` (agents match on `reason`, log `message`).
    pub fn reply_refusal(&self, reason: &str, message: &str) -> Frame {
        let mut response = Map::new();
        response.insert("reason".into(), Value::String(reason.into()));
        response.insert("message".into(), Value::String(message.into()));
        reply_to(
            &self.join_ref,
            &self.msg_ref,
            &self.topic,
            "error",
            Value::Object(response),
        )
    }
}

fn reply_to(
    join_ref: &Option<String>,
    msg_ref: &Option<String>,
    topic: &str,
    status: &str,
    response: Value,
) -> Frame {
    let mut payload = Map::new();
    payload.insert("status".into(), Value::String(status.into()));
    payload.insert("response".into(), response);
    Frame {
        join_ref: join_ref.clone(),
        msg_ref: msg_ref.clone(),
        topic: topic.to_owned(),
        event: events::PHX_REPLY.into(),
        payload: Value::Object(payload),
    }
}

/// A channel-level message from the server that is not a reply: `phx_close` / `phx_error`
/// carry `ref = join_ref` and an empty payload.
pub fn channel_event(join_ref: Option<&str>, topic: &str, event: &str) -> Frame {
    Frame::new(join_ref, join_ref, topic, event, Value::Object(Map::new()))
}

/// A JSON string's value; `None` for anything else (never parsed into a tree).
fn raw_string(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<String>(text).ok()
}

/// A ref as `opaque_ref` reads it, from its text: a string, a number, or null.
fn raw_ref(raw: &RawValue) -> Option<Option<String>> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => raw_string(raw).map(Some),
        b'n' => (text == "null").then_some(None),
        b'-' | b'0'..=b'9' => serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .map(|n| Some(n.to_string())),
        _ => None,
    }
}

fn opaque_ref(value: Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s)),
        Value::Number(n) => Some(Some(n.to_string())),
        _ => None,
    }
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(5)?;
        tuple.serialize_element(&self.join_ref)?;
        tuple.serialize_element(&self.msg_ref)?;
        tuple.serialize_element(&self.topic)?;
        tuple.serialize_element(&self.event)?;
        tuple.serialize_element(&self.payload)?;
        tuple.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_a_join() {
        let frame = Frame::decode(r#"["5","5","host:pve-01","phx_join",{"token":"t"}]"#).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("5"));
        assert_eq!(frame.msg_ref.as_deref(), Some("5"));
        assert_eq!(frame.topic, "host:pve-01");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.payload, json!({"token": "t"}));
    }

    #[test]
    fn encodes_nulls_and_payload_in_order() {
        let frame = Frame::heartbeat("8");
        assert_eq!(frame.encode(), r#"[null,"8","phoenix","heartbeat",{}]"#);
    }

    #[test]
    fn reply_carries_both_refs_and_topic() {
        let push = Frame::new(Some("5"), Some("6"), "host:a", "metric:fast", json!({}));
        assert_eq!(
            push.reply_ok(json!({})).encode(),
            r#"["5","6","host:a","phx_reply",{"status":"ok","response":{}}]"#
        );
        let err = push.reply_error("invalid_token");
        assert_eq!(err.error_reason(), Some("invalid_token"));
        assert_eq!(err.as_reply().map(|r| r.0), Some("error"));
    }

    #[test]
    fn raw_encoding_matches_the_tree_encoding() {
        let payload =
            r#"{"collected_at":"2026-11-25T12:00:00Z","data":{"load1":0.5,"name":"a\"b"}}"#;
        let raw =
            Frame::encode_raw(Some("1"), Some("2"), "host:pve1", "metric:fast", payload).unwrap();
        let tree = Frame::new(
            Some("1"),
            Some("2"),
            "host:pve1",
            "metric:fast",
            serde_json::from_str(payload).unwrap(),
        );
        assert_eq!(raw, tree.encode());
        assert_eq!(Frame::decode(&raw).unwrap(), tree);
        assert!(Frame::encode_raw(None, None, "t", "e", "{broken").is_err());
        assert!(Frame::encode_raw(None, None, "t", "e", "[1]").is_err());
        assert!(Frame::encode_raw(None, None, "t", "e", "{} {}").is_err());
    }

    #[test]
    fn numeric_refs_are_taken_as_text() {
        let frame = Frame::decode(r#"[1,2,"t","e",{}]"#).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("1"));
        assert_eq!(frame.msg_ref.as_deref(), Some("2"));
    }

    #[test]
    fn rejects_what_is_not_a_frame() {
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"topic":"t"}"#,
            "[]",
            r#"[null,null,"t","e"]"#,
            r#"[null,null,"t","e",{},6]"#,
            r#"[null,null,5,"e",{}]"#,
            r#"[null,null,"t",null,{}]"#,
            r#"[{},null,"t","e",{}]"#,
            r#"[null,[],"t","e",{}]"#,
        ] {
            assert!(Frame::decode(bad).is_err(), "accepted {bad:?}");
            assert!(RawFrame::decode(bad).is_err(), "raw accepted {bad:?}");
        }
        assert!(matches!(
            RawFrame::decode("not json"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            RawFrame::decode(r#"[null,null,"t","e"]"#),
            Err(FrameError::Shape(_))
        ));
    }

    #[test]
    fn raw_frames_keep_the_payload_text() {
        let text = r#"[1,"2","host:a","metric:fast",{"collected_at":"x", "data":{"a":1}}]"#;
        let raw = RawFrame::decode(text).unwrap();
        assert_eq!(raw.join_ref.as_deref(), Some("1"));
        assert_eq!(raw.msg_ref.as_deref(), Some("2"));
        assert_eq!(raw.topic, "host:a");
        assert_eq!(raw.event, "metric:fast");
        assert_eq!(raw.payload.get(), r#"{"collected_at":"x", "data":{"a":1}}"#);
        let tree = Frame::decode(text).unwrap();
        assert_eq!(raw.reply_ok(json!({})), tree.reply_ok(json!({})));
        assert_eq!(raw.reply_error("bad"), tree.reply_error("bad"));
    }

    #[test]
    fn channel_close_uses_join_ref_as_ref() {
        let close = channel_event(Some("3"), "host:a", events::PHX_CLOSE);
        assert_eq!(close.encode(), r#"["3","3","host:a","phx_close",{}]"#);
    }

    #[test]
    fn refs_topics_and_events_of_the_wrong_type_are_shape_errors() {
        let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
        for text in [
            format!(r#"[{nested},"1","t","e",{{}}]"#),
            r#"[{"a":1},"1","t","e",{}]"#.to_owned(),
            r#"[null,true,"t","e",{}]"#.to_owned(),
            r#"[null,"1",5,"e",{}]"#.to_owned(),
            r#"[null,"1","t",null,{}]"#.to_owned(),
            r#"[nul,"1","t","e",{}]"#.to_owned(),
        ] {
            assert!(RawFrame::decode(&text).is_err(), "{text}");
        }
        let frame = RawFrame::decode(r#"[7,-1.5,"t\u00e9","e\n",[1]]"#).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("7"));
        assert_eq!(frame.msg_ref.as_deref(), Some("-1.5"));
        assert_eq!(frame.topic, "té");
        assert_eq!(frame.event, "e\n");
        assert_eq!(frame.payload.get(), "[1]");
    }
}
