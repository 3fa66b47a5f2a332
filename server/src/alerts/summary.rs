//! The one-line summary of an alert, as notifications and history keep it ("pool tank is
//! DEGRADED", "CPU 93.4 % (warning at 90 %)"). Pages show the same line; their own columns
//! (values, times) are formatted by `http::format`.

use super::config::{RuleKind, RuleTable};
use super::rules::{Builtin, Direction, Unit};
use crate::store::alerts::{AlertRecord, Severity};

/// A value in the rule's unit, short.
pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Percent => format!("{} %", round(v, 1)),
        Unit::PerCore => round(v, 2),
        Unit::Days => format!("{} days", round(v, 1)),
        Unit::PerMinute => format!("{}/min", round(v, 1)),
        Unit::Hours => format!("{} h", round(v, 1)),
        Unit::Count => round(v, 0),
        Unit::Celsius => format!("{} °C", round(v, 1)),
        Unit::State => String::new(),
        Unit::Plain => round(v, 3),
    }
}

/// `v` with at most `places` decimals, trailing zeros dropped.
fn round(v: f64, places: usize) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let text = format!("{v:.places$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The unit of rule `id`'s values.
pub fn unit(rules: &RuleTable, rule: &str) -> Unit {
    match rules.id(rule).map(|id| &rules.get(id).kind) {
        Some(RuleKind::Builtin(b)) => b.unit(),
        _ => Unit::Plain,
    }
}

/// "VM 100 (web01)" or "guest 100".
fn guest_name(a: &AlertRecord) -> String {
    match &a.label {
        Some(name) if !name.is_empty() => format!("guest {} ({name})", a.object),
        _ => format!("guest {}", a.object),
    }
}

/// The summary of `a`.
pub fn summary(rules: &RuleTable, a: &AlertRecord) -> String {
    let id = rules.id(&a.rule);
    let kind = id.map(|id| rules.get(id).kind.clone());
    let direction = id
        .and_then(|id| rules.get(id).base.levels)
        .map_or(Direction::Above, |l| l.direction);
    let u = unit(rules, &a.rule);
    let v = a.value.map_or_else(|| "–".to_owned(), |v| value(u, v));
    let level = match (a.threshold, direction) {
        (Some(t), Direction::Above) => format!(" ({} at {})", a.severity.as_str(), value(u, t)),
        (Some(t), Direction::Below) => {
            format!(" ({} under {})", a.severity.as_str(), value(u, t))
        }
        (None, _) => String::new(),
    };
    let time = |t: i64| common::time::format_rfc3339(common::time::from_unix_seconds(t));
    match kind {
        Some(RuleKind::Builtin(b)) => match b {
            Builtin::HostOffline => format!("no agent connection since {}", time(a.since)),
            Builtin::HostStale => format!(
                "connected, but no new sample for 3 intervals (since {})",
                time(a.since)
            ),
            Builtin::CpuHigh => format!("CPU {v}{level}"),
            Builtin::MemoryHigh => format!("memory {v} used (without ZFS ARC){level}"),
            Builtin::SwapHigh => format!("swap {v} used{level}"),
            Builtin::LoadHigh => format!("load {v} per CPU{level}"),
            Builtin::PressureHigh => format!("{} pressure {v}{level}", a.object),
            Builtin::FsFull => format!("{} {v} full{level}", a.object),
            Builtin::StorageFull => format!("storage {} {v} full{level}", a.object),
            Builtin::StorageFillForecast => {
                format!(
                    "storage {} full in {v} at the last 24 h's rate{level}",
                    a.object
                )
            }
            Builtin::PoolUnhealthy => format!(
                "pool {} is {}",
                a.object,
                a.label.as_deref().unwrap_or("not ONLINE")
            ),
            Builtin::PoolCapacity => format!("pool {} {v} allocated{level}", a.object),
            Builtin::GuestDown => format!(
                "{} is stopped{}",
                guest_name(a),
                if a.severity == Severity::Critical {
                    " (onboot: 1)"
                } else {
                    " (it was running)"
                }
            ),
            Builtin::GuestMemoryHigh => {
                format!("{} uses {v} of its memory{level}", guest_name(a))
            }
            Builtin::NetErrors => format!("{}: {v} errors{level}", a.object),
            Builtin::BackupFailed => format!(
                "the last backup of guest {} failed: {}",
                a.object,
                a.label.as_deref().unwrap_or("see the task log")
            ),
            Builtin::BackupStale => {
                format!("{}: last good backup {v} ago{level}", guest_name(a))
            }
            Builtin::GuestNotBackedUp => {
                format!("{} is in no enabled backup job", guest_name(a))
            }
            Builtin::ReplicationFailing => format!(
                "replication {} failed {v} times in a row{level}{}",
                a.object,
                a.label
                    .as_deref()
                    .map_or(String::new(), |e| format!(": {e}"))
            ),
            Builtin::HaError if a.object == "quorum" => {
                "this node is not in the quorate partition".to_owned()
            }
            Builtin::HaError => format!(
                "HA resource {} is {}",
                a.object,
                a.label.as_deref().unwrap_or("in error")
            ),
            Builtin::SmartFailed => format!(
                "disk {}{} fails its SMART health self-assessment",
                a.object,
                a.label
                    .as_deref()
                    .map_or(String::new(), |m| format!(" ({m})"))
            ),
            Builtin::SmartDegrading => format!(
                "disk {} degrades: {}",
                a.object,
                a.label.as_deref().unwrap_or("see its SMART values")
            ),
            Builtin::TempHigh => format!(
                "{}{} at {v}{level}",
                a.object,
                a.label
                    .as_deref()
                    .map_or(String::new(), |l| format!(" ({l})"))
            ),
        },
        _ => format!("{} is {v}{level}", a.object),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::alerts::AlertState;

    fn alert(rule: &str, object: &str, value: Option<f64>, threshold: Option<f64>) -> AlertRecord {
        AlertRecord {
            id: 1,
            rule: rule.into(),
            host_id: 1,
            host: "pve1".into(),
            object: object.into(),
            guest: None,
            label: None,
            state: AlertState::Firing,
            severity: Severity::Warning,
            value,
            threshold,
            summary: String::new(),
            since: 0,
            fired_at: None,
            changed_at: 0,
            resolved_at: None,
            resolution: None,
            live: true,
            announced: None,
            last_notified_at: None,
            repeats: 0,
            suppressed_by: None,
            ack: None,
        }
    }

    #[test]
    fn summaries_read_like_sentences() {
        let rules = RuleTable::defaults(0);
        assert_eq!(
            summary(&rules, &alert("cpu_high", "", Some(93.43), Some(90.0))),
            "CPU 93.4 % (warning at 90 %)"
        );
        assert_eq!(
            summary(
                &rules,
                &alert("storage_fill_forecast", "local-zfs", Some(5.26), Some(7.0))
            ),
            "storage local-zfs full in 5.3 days at the last 24 h's rate (warning under 7 days)"
        );
        let mut pool = alert("pool_unhealthy", "tank", Some(1.0), None);
        pool.label = Some("DEGRADED".into());
        assert_eq!(summary(&rules, &pool), "pool tank is DEGRADED");
        let mut guest = alert("guest_down", "100", Some(1.0), None);
        guest.label = Some("web01".into());
        guest.severity = Severity::Critical;
        assert_eq!(
            summary(&rules, &guest),
            "guest 100 (web01) is stopped (onboot: 1)"
        );
        assert_eq!(
            summary(&rules, &alert("host_offline", "", None, None)),
            "no agent connection since 1970-01-01T00:00:00Z"
        );
        assert_eq!(
            summary(
                &rules,
                &alert(
                    "nightly_io",
                    "disk.sda.busy_percent",
                    Some(85.0),
                    Some(80.0)
                )
            ),
            "disk.sda.busy_percent is 85 (warning at 80)"
        );
    }
}
