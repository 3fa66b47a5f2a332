//! What a notification says: the outbox events of one host (one, or several grouped within
//! the window), rendered once into a title, a text and a link that every channel uses.
//!
//! Each event says what (rule and summary), where (host and object), how bad (severity),
//! since when, the value and the threshold; a resolved one says it is over and how long it
//! lasted. Times are UTC.

use serde::Deserialize;

use crate::store::alerts::Severity;

/// An outbox event's payload, as `alerts::engine` writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertEvent {
    pub key: String,
    /// `firing`, `repeat` or `resolved`.
    pub event: String,
    pub alert_id: i64,
    pub rule: String,
    pub severity: String,
    pub host: String,
    #[serde(default)]
    pub object: String,
    pub guest: Option<u32>,
    pub label: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub summary: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub repeat: u32,
    pub at: i64,
}

impl AlertEvent {
    pub fn parse(payload: &str) -> Result<AlertEvent, String> {
        serde_json::from_str(payload).map_err(|e| format!("outbox payload: {e}"))
    }

    pub fn severity(&self) -> Severity {
        Severity::parse(&self.severity).unwrap_or(Severity::Critical)
    }

    pub fn is_resolved(&self) -> bool {
        self.event == "resolved"
    }

    /// `host`, `host tank`, `host guest 101 (web)`.
    pub fn place(&self) -> String {
        let mut out = self.host.clone();
        if let Some(vmid) = self.guest {
            out.push_str(&format!(" guest {vmid}"));
            if let Some(label) = &self.label {
                out.push_str(&format!(" ({label})"));
            }
        } else if !self.object.is_empty() {
            out.push(' ');
            out.push_str(&self.object);
        }
        out
    }

    /// One headline: `CRITICAL pool_unhealthy on pve1 tank`.
    fn headline(&self) -> String {
        let what = if self.is_resolved() {
            "RESOLVED".to_owned()
        } else {
            self.severity.to_ascii_uppercase()
        };
        format!("{what} {} on {}", self.rule, self.place())
    }

    /// The event's lines.
    fn lines(&self, out: &mut Vec<String>) {
        out.push(self.headline());
        out.push(self.summary.clone());
        match (self.value, self.threshold) {
            (Some(v), Some(t)) => out.push(format!("Value {} (threshold {})", num(v), num(t))),
            (Some(v), None) => out.push(format!("Value {}", num(v))),
            _ => {}
        }
        let started = self.fired_at.unwrap_or(self.since).min(self.since);
        if self.is_resolved() {
            let end = self.resolved_at.unwrap_or(self.at);
            out.push(format!(
                "Over at {}; it lasted {} (since {})",
                time(end),
                lasted(end - started),
                time(started)
            ));
        } else {
            out.push(format!(
                "Since {} ({} ago){}",
                time(started),
                lasted(self.at - started),
                if self.event == "repeat" {
                    format!("; reminder {}", self.repeat)
                } else {
                    String::new()
                }
            ));
        }
    }
}

/// A message ready for any channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The idempotency key receivers can drop resends by: stable across retries and
    /// restarts (`notify/<message id>`, `test/<unix time>`).
    pub id: String,
    pub host: String,
    pub events: Vec<AlertEvent>,
    /// `{public_url}/hosts/NAME`, when `public_url` is set.
    pub link: Option<String>,
    /// An escalation: still firing and unacknowledged after the route's `escalate_after`.
    pub escalation: bool,
    pub test: bool,
}

/// How a message should look: the worst thing in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Critical,
    Warning,
    Resolved,
    Test,
}

impl Message {
    pub fn new(
        id: String,
        events: Vec<AlertEvent>,
        public_url: Option<&str>,
        escalation: bool,
    ) -> Message {
        let host = events.first().map(|e| e.host.clone()).unwrap_or_default();
        let link = public_url.map(|u| format!("{u}/hosts/{}", path_segment(&host)));
        Message {
            id,
            host,
            events,
            link,
            escalation,
            test: false,
        }
    }

    /// The message `notify-test` sends.
    pub fn test(now: i64, public_url: Option<&str>) -> Message {
        Message {
            id: format!("test/{now}"),
            host: String::new(),
            events: Vec::new(),
            link: public_url.map(|u| format!("{u}/alerts")),
            escalation: false,
            test: true,
        }
    }

    pub fn tone(&self) -> Tone {
        if self.test {
            return Tone::Test;
        }
        let open: Vec<&AlertEvent> = self.events.iter().filter(|e| !e.is_resolved()).collect();
        if open.is_empty() {
            Tone::Resolved
        } else if open.iter().any(|e| e.severity() == Severity::Critical) {
            Tone::Critical
        } else {
            Tone::Warning
        }
    }

    /// One line: `[CRITICAL] pool_unhealthy on pve1 tank: pool tank is DEGRADED`, or
    /// `[CRITICAL] 3 alerts on pve1 (2 firing, 1 resolved)`.
    pub fn title(&self) -> String {
        if self.test {
            return "Proxmox Monitor test notification".into();
        }
        let tag = match self.tone() {
            Tone::Critical => "[CRITICAL]",
            Tone::Warning => "[WARNING]",
            Tone::Resolved | Tone::Test => "[RESOLVED]",
        };
        let escalated = if self.escalation { " (escalated)" } else { "" };
        match self.events.as_slice() {
            [one] if one.is_resolved() => {
                let started = one.fired_at.unwrap_or(one.since).min(one.since);
                let end = one.resolved_at.unwrap_or(one.at);
                format!(
                    "{tag} {} on {} is over after {}",
                    one.rule,
                    one.place(),
                    lasted(end - started)
                )
            }
            [one] => format!(
                "{tag}{escalated} {} on {}: {}",
                one.rule,
                one.place(),
                one.summary
            ),
            many => {
                let resolved = many.iter().filter(|e| e.is_resolved()).count();
                format!(
                    "{tag}{escalated} {} alerts on {} ({} firing, {resolved} resolved)",
                    many.len(),
                    self.host,
                    many.len() - resolved
                )
            }
        }
    }

    /// The text: each event's lines, a blank line between events, then the link.
    pub fn text(&self) -> String {
        if self.test {
            let mut text = "This is a test from Proxmox Monitor: this channel works.".to_owned();
            if let Some(link) = &self.link {
                text.push_str(&format!("\n{link}"));
            }
            return text;
        }
        let mut lines = Vec::new();
        if self.escalation {
            lines.push("Escalated: still firing and not acknowledged.".to_owned());
        }
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            event.lines(&mut lines);
        }
        if let Some(link) = &self.link {
            lines.push(String::new());
            lines.push(link.clone());
        }
        lines.join("\n")
    }
}

/// A number as a person reads it: at most two decimals, no trailing zeros.
fn num(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// `2026-11-26 10:12:00 UTC`.
pub fn time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// `12m`, `2h 5m`, `3d 4h`: two units at most.
pub fn lasted(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// A host name in a URL path (names are `[A-Za-z0-9._-]`, but be safe).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn event(kind: &str, severity: &str, host: &str, rule: &str) -> AlertEvent {
        AlertEvent {
            key: format!("alert/1/{kind}"),
            event: kind.into(),
            alert_id: 1,
            rule: rule.into(),
            severity: severity.into(),
            host: host.into(),
            object: "tank".into(),
            guest: None,
            label: None,
            tags: Vec::new(),
            summary: "pool tank is DEGRADED".into(),
            value: Some(91.256),
            threshold: Some(90.0),
            since: 1_764_151_200,
            fired_at: Some(1_764_151_200),
            resolved_at: (kind == "resolved").then_some(1_764_151_200 + 750),
            repeat: 0,
            at: 1_764_151_200 + 300,
        }
    }

    #[test]
    fn a_firing_message_says_what_where_how_bad_since_value_threshold_and_links() {
        let m = Message::new(
            "notify/7".into(),
            vec![event("firing", "critical", "pve1", "pool_unhealthy")],
            Some("https://mon.example"),
            false,
        );
        assert_eq!(
            m.title(),
            "[CRITICAL] pool_unhealthy on pve1 tank: pool tank is DEGRADED"
        );
        assert_eq!(
            m.text(),
            "CRITICAL pool_unhealthy on pve1 tank\npool tank is DEGRADED\n\
             Value 91.26 (threshold 90)\nSince 2025-11-26 10:00:00 UTC (5m 0s ago)\n\n\
             https://mon.example/hosts/pve1"
        );
        assert_eq!(m.tone(), Tone::Critical);
    }

    #[test]
    fn a_resolved_message_says_it_is_over_and_how_long_it_lasted() {
        let m = Message::new(
            "notify/8".into(),
            vec![event("resolved", "warning", "pve1", "cpu_high")],
            None,
            false,
        );
        assert_eq!(
            m.title(),
            "[RESOLVED] cpu_high on pve1 tank is over after 12m 30s"
        );
        assert!(
            m.text()
                .contains("Over at 2025-11-26 10:12:30 UTC; it lasted 12m 30s"),
            "{}",
            m.text()
        );
        assert_eq!(m.tone(), Tone::Resolved);
    }

    #[test]
    fn a_group_counts_its_events_and_takes_the_worst_tone() {
        let m = Message::new(
            "notify/9".into(),
            vec![
                event("firing", "warning", "pve1", "cpu_high"),
                event("resolved", "critical", "pve1", "pool_unhealthy"),
            ],
            None,
            true,
        );
        assert_eq!(
            m.title(),
            "[WARNING] (escalated) 2 alerts on pve1 (1 firing, 1 resolved)"
        );
        assert_eq!(m.tone(), Tone::Warning);
        assert!(m.text().starts_with("Escalated"));
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(num(90.0), "90");
        assert_eq!(num(0.126), "0.13");
        assert_eq!(num(-0.001), "0");
        assert_eq!(lasted(59), "59s");
        assert_eq!(lasted(3 * 86400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(lasted(-5), "0s");
    }

    #[test]
    fn the_engines_payload_parses() {
        let payload = serde_json::json!({
            "key": "alert/3/firing/critical", "event": "firing", "alert_id": 3,
            "rule": "host_offline", "severity": "critical", "host": "pve1", "object": "",
            "guest": null, "label": null, "tags": [], "summary": "offline for 2m",
            "value": null, "threshold": null, "since": 100, "fired_at": 220,
            "resolved_at": null, "repeat": 0, "at": 220
        });
        let e = AlertEvent::parse(&payload.to_string()).unwrap();
        assert_eq!(e.place(), "pve1");
        assert!(AlertEvent::parse("{}").is_err());
    }
}
