//! Pure decisions of the delivery thread, with time passed in: where an event goes (routes,
//! quiet hours, escalation), when a failed message is tried again (backoff with jitter), and
//! how fast a channel may be used (a token bucket).

use std::collections::BTreeMap;

use super::config::{NotifyConfig, RouteSubject};
use super::message::AlertEvent;
use crate::store::alerts::Severity;

/// One (event, channel) to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: String,
    pub escalation: bool,
    /// Not before this (the end of quiet hours, the escalation time); the group window is
    /// added by the store when a new message is opened.
    pub due_at: i64,
    /// Held back by quiet hours: at its time it goes out only if the alert still fires.
    pub held: bool,
}

/// Where `event` goes at `now`. `earlier_channels`: the channels an earlier event of the same
/// alert went to (a resolved event goes to exactly those, so nobody hears of an end without
/// its start).
pub fn plan(
    config: &NotifyConfig,
    event: &AlertEvent,
    earlier_channels: &[String],
    now: i64,
) -> Vec<Target> {
    let severity = event.severity();
    let subject = RouteSubject {
        severity,
        rule: &event.rule,
        host: &event.host,
        tags: &event.tags,
    };
    let routes = config.routes_for(&subject);
    // channel → the earliest moment a route lets it go (now, or the end of quiet hours).
    let mut due: BTreeMap<&str, i64> = BTreeMap::new();
    for route in &routes {
        let at = match &route.quiet_hours {
            Some(window) if severity != Severity::Critical || event.is_resolved() => {
                if window.active_at(now) {
                    window.next_change_after(now).unwrap_or(now)
                } else {
                    now
                }
            }
            _ => now,
        };
        for channel in config.route_channels(route) {
            let slot = due.entry(channel).or_insert(at);
            *slot = (*slot).min(at);
        }
    }
    let mut targets = Vec::new();
    if event.is_resolved() {
        for channel in earlier_channels {
            if config.channel(channel).is_none() {
                continue;
            }
            let at = due.get(channel.as_str()).copied().unwrap_or(now);
            targets.push(Target {
                channel: channel.clone(),
                escalation: false,
                due_at: at,
                held: at > now,
            });
        }
        return targets;
    }
    for (channel, at) in due {
        targets.push(Target {
            channel: channel.to_owned(),
            escalation: false,
            due_at: at,
            held: at > now,
        });
    }
    if event.event == "firing" {
        for route in &routes {
            let Some(after) = route.escalate_after_s else {
                continue;
            };
            let fired = event.fired_at.unwrap_or(event.at);
            for channel in &route.escalate_to {
                if targets.iter().any(|t| &t.channel == channel) {
                    continue;
                }
                targets.push(Target {
                    channel: channel.clone(),
                    escalation: true,
                    due_at: fired + after,
                    held: false,
                });
            }
        }
    }
    targets
}

/// Seconds until attempt `attempt + 1` (after `attempt` failed ones, ≥ 1): `base`, doubled
/// each time, at most `max`, then scaled by a jitter of 50–100 % (`jitter` in [0, 1)) so
/// that channels failing together do not retry together. A receiver's `Retry-After` is a
/// lower bound.
pub fn retry_delay(
    attempt: u32,
    base: i64,
    max: i64,
    jitter: f64,
    retry_after: Option<i64>,
) -> i64 {
    let exp = base.saturating_mul(1i64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max).max(1);
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let jittered = ((capped as f64) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))).ceil() as i64;
    jittered.max(1).max(retry_after.unwrap_or(0).min(max))
}

/// A token bucket: `per_minute` messages a minute, bursts of as many.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_minute: u32,
    tokens: f64,
    at: i64,
}

impl RateLimit {
    pub fn new(per_minute: u32, now: i64) -> RateLimit {
        RateLimit {
            per_minute: per_minute.max(1),
            tokens: f64::from(per_minute.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: i64) {
        if now > self.at {
            #[allow(clippy::cast_precision_loss)]
            let gained = (now - self.at) as f64 * f64::from(self.per_minute) / 60.0;
            self.tokens = (self.tokens + gained).min(f64::from(self.per_minute));
            self.at = now;
        }
    }

    /// Takes a token: `Ok` to send now, else `Err(t)`: not before `t`.
    pub fn take(&mut self, now: i64) -> Result<(), i64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            #[allow(clippy::cast_possible_truncation)]
            let wait = (missing * 60.0 / f64::from(self.per_minute)).ceil() as i64;
            Err(now + wait.max(1))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::message::tests::event;
    use super::*;

    fn config(text: &str) -> NotifyConfig {
        let value: toml::Table = toml::from_str(text).unwrap();
        NotifyConfig::from_toml(value.get("notify").cloned().unwrap()).unwrap()
    }

    const CHANNELS: &str =
        "[notify.channels.mail]\ntype = \"slack\"\nurl = \"https://s.example/a\"\n\
        [notify.channels.phone]\ntype = \"ntfy\"\ntopic = \"t\"\n\
        [notify.channels.pager]\ntype = \"discord\"\nurl = \"https://d.example/b\"\n";

    // 2025-11-26 (a Wednesday) 23:00 UTC = 2025-11-27 00:00 Europe/Berlin.
    const NIGHT: i64 = 1_764_198_000;

    fn channels(targets: &[Target]) -> Vec<(&str, bool, i64, bool)> {
        targets
            .iter()
            .map(|t| (t.channel.as_str(), t.escalation, t.due_at, t.held))
            .collect()
    }

    #[test]
    fn routes_by_severity_rule_host_and_tag_with_a_default() {
        let c = config(&format!(
            "{CHANNELS}[[notify.routes]]\nseverities = [\"critical\"]\nchannels = [\"phone\"]\n\
             [[notify.routes]]\nrules = [\"pool_*\"]\nhosts = [\"pve-*\"]\nchannels = [\"mail\"]\n\
             [[notify.routes]]\ntags = [\"prod\"]\nchannels = [\"pager\"]\n\
             [notify.default_route]\nchannels = [\"mail\"]\n"
        ));
        let mut e = event("firing", "critical", "pve-1", "pool_unhealthy");
        let now = 1000;
        assert_eq!(
            channels(&plan(&c, &e, &[], now)),
            vec![("mail", false, now, false), ("phone", false, now, false)]
        );
        e.severity = "warning".into();
        e.host = "other".into();
        e.tags = vec!["prod".into()];
        assert_eq!(
            channels(&plan(&c, &e, &[], now)),
            vec![("pager", false, now, false)]
        );
        e.tags.clear();
        assert_eq!(
            channels(&plan(&c, &e, &[], now)),
            vec![("mail", false, now, false)]
        );
    }

    #[test]
    fn quiet_hours_hold_warnings_until_they_end_but_not_criticals() {
        let c = config(&format!(
            "{CHANNELS}[[notify.routes]]\nchannels = [\"mail\"]\n\
             quiet_hours = {{ start = \"22:00\", end = \"07:00\", timezone = \"Europe/Berlin\" }}\n"
        ));
        let warning = event("firing", "warning", "pve1", "cpu_high");
        // 07:00 Berlin on the 27th = 06:00 UTC, seven hours later.
        let morning = NIGHT + 7 * 3600;
        assert_eq!(
            channels(&plan(&c, &warning, &[], NIGHT)),
            vec![("mail", false, morning, true)]
        );
        let critical = event("firing", "critical", "pve1", "cpu_high");
        assert_eq!(
            channels(&plan(&c, &critical, &[], NIGHT)),
            vec![("mail", false, NIGHT, false)]
        );
        // In the day, nothing waits.
        assert_eq!(
            channels(&plan(&c, &warning, &[], morning + 3600)),
            vec![("mail", false, morning + 3600, false)]
        );
        // A resolved event waits too, and goes only where the alert was announced.
        let resolved = event("resolved", "critical", "pve1", "cpu_high");
        assert_eq!(
            channels(&plan(&c, &resolved, &["mail".into(), "gone".into()], NIGHT)),
            vec![("mail", false, morning, true)]
        );
        assert!(plan(&c, &resolved, &[], NIGHT).is_empty());
    }

    #[test]
    fn a_channel_reached_by_a_route_that_is_not_quiet_goes_at_once() {
        let c = config(&format!(
            "{CHANNELS}[[notify.routes]]\nchannels = [\"mail\"]\n\
             quiet_hours = {{ start = \"22:00\", end = \"07:00\", timezone = \"Europe/Berlin\" }}\n\
             [[notify.routes]]\nhosts = [\"pve1\"]\nchannels = [\"mail\"]\n"
        ));
        let warning = event("firing", "warning", "pve1", "cpu_high");
        assert_eq!(
            channels(&plan(&c, &warning, &[], NIGHT)),
            vec![("mail", false, NIGHT, false)]
        );
    }

    #[test]
    fn escalation_is_planned_for_firing_events_only() {
        let c = config(&format!(
            "{CHANNELS}[[notify.routes]]\nchannels = [\"mail\"]\nescalate_after = \"30m\"\n\
             escalate_to = [\"pager\", \"mail\"]\n"
        ));
        let firing = event("firing", "critical", "pve1", "cpu_high");
        let fired = firing.fired_at.unwrap();
        assert_eq!(
            channels(&plan(&c, &firing, &[], fired + 5)),
            vec![
                ("mail", false, fired + 5, false),
                ("pager", true, fired + 1800, false)
            ]
        );
        let repeat = event("repeat", "critical", "pve1", "cpu_high");
        assert_eq!(plan(&c, &repeat, &[], fired + 5).len(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        assert_eq!(retry_delay(1, 10, 3600, 0.999_999, None), 10);
        assert_eq!(retry_delay(1, 10, 3600, 0.0, None), 5);
        assert_eq!(retry_delay(3, 10, 3600, 0.999_999, None), 40);
        assert_eq!(retry_delay(30, 10, 3600, 0.999_999, None), 3600);
        assert_eq!(retry_delay(99, 10, 3600, 0.0, None), 1800);
        assert_eq!(retry_delay(1, 10, 3600, 0.0, Some(120)), 120);
        assert_eq!(retry_delay(1, 10, 60, 0.0, Some(99_999)), 60);
        assert_eq!(retry_delay(1, 1, 1, 0.0, None), 1);
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_spreads_evenly() {
        let mut r = RateLimit::new(2, 100);
        assert_eq!(r.take(100), Ok(()));
        assert_eq!(r.take(100), Ok(()));
        assert_eq!(r.take(100), Err(130));
        assert_eq!(r.take(129), Err(130));
        assert_eq!(r.take(130), Ok(()));
        assert_eq!(r.take(130), Err(160));
        // A long pause refills only up to the burst.
        assert_eq!(r.take(10_000), Ok(()));
        assert_eq!(r.take(10_000), Ok(()));
        assert!(r.take(10_000).is_err());
    }
}
