//! Pieces of a host that several pages show the same way: badges, the status line, and the
//! facts (CPU, memory, load, uptime, guests, ZFS). Overview cards, overview rows and the host
//! page's head are built from these, so a host reads the same everywhere.
//!
//! `data-k` attributes name the value an element shows (`load1`, `cpu_percent`, ...): hooks
//! for tests and for people reading the page source; the page script does not use them.

use common::sample::{GuestStatus, PoolHealth};
use maud::{html, Markup};

use crate::http::format;
use crate::state::{Condition, HostState};
use crate::store::HostStatus;

/// `online` / `offline` / `never connected`, coloured.
pub fn status_badge(status: HostStatus) -> Markup {
    let (class, text) = match status {
        HostStatus::Online => ("online", "online"),
        HostStatus::Offline => ("offline", "offline"),
        HostStatus::NeverConnected => ("never", "never connected"),
    };
    html! { span class={ "badge " (class) } data-k="status" { (text) } }
}

/// A second badge when the condition is worse than the status says (stale, degraded).
pub fn condition_badge(condition: Condition) -> Markup {
    html! {
        @match condition {
            Condition::Stale => span.badge.degraded title="connected, but no recent sample" { "stale" },
            Condition::Degraded => span.badge.degraded title="a ZFS pool is not ONLINE" { "degraded pool" },
            _ => {},
        }
    }
}

/// The badge of a pool's health.
pub fn pool_badge(health: &PoolHealth) -> Markup {
    let class = match health.severity() {
        0 => "online",
        1 => "degraded",
        _ => "offline",
    };
    html! { span class={ "badge " (class) } { (health) } }
}

/// The badge of a guest's state.
pub fn guest_status_badge(status: GuestStatus) -> Markup {
    let class = match status {
        GuestStatus::Running => "online",
        GuestStatus::Paused => "degraded",
        GuestStatus::Stopped | GuestStatus::Unknown => "stopped",
    };
    html! { span class={ "badge " (class) } data-k="status" { (status.as_str()) } }
}

/// "5m ago", the exact UTC time as its tooltip.
pub fn time_ago(unix: i64, now: i64) -> Markup {
    let machine = common::time::format_rfc3339(common::time::from_unix_seconds(unix));
    html! { time datetime=(machine) title=(format::utc(unix)) { (format::ago(unix, now)) } }
}

fn ago_or_dash(unix: Option<i64>, now: i64) -> Markup {
    html! {
        @match unix {
            Some(t) => (time_ago(t, now)),
            None => "–",
        }
    }
}

/// "online since 3h ago · last seen just now" / "offline since …" / "never connected — …".
pub fn status_line(state: &HostState, now: i64) -> Markup {
    let host = &state.host;
    html! {
        @match host.status {
            HostStatus::Online => {
                "online"
                @if let Some(since) = host.status_changed_at { " since " (time_ago(since, now)) }
                @if state.is_stale(now) {
                    " · no new sample since "
                    (ago_or_dash(state.collected_at(common::events::MetricKind::Fast).or(host.last_seen_at), now))
                } @else {
                    " · last seen " (ago_or_dash(host.last_seen_at, now))
                }
            }
            HostStatus::Offline => {
                "offline since " (ago_or_dash(host.status_changed_at.or(host.last_seen_at), now))
                @if state.fast.is_some() { " · values are from the last sample" }
            }
            HostStatus::NeverConnected => "never connected — start the agent with this host's token",
        }
    }
}

/// The CSS class of a host's card or row: `is-offline`, `is-stale`, `is-degraded`, ...
pub fn condition_class(condition: Condition) -> &'static str {
    match condition {
        Condition::Offline => "is-offline",
        Condition::Stale => "is-stale",
        Condition::Degraded => "is-degraded",
        Condition::NeverConnected => "is-never",
        Condition::Ok => "is-online",
    }
}

/// "18.5 % of 8 CPUs".
pub fn cpu(state: &HostState) -> Markup {
    let percent = state.fast().and_then(|f| f.cpu_percent);
    html! {
        span data-k="cpu_percent" { (format::or_dash(percent, format::percent)) }
        @if let Some(n) = state.slow().and_then(|s| s.cpu_count) {
            " " small { "of " (n) " CPUs" }
        }
    }
}

/// "7.82 GiB of 62.7 GiB + ARC 1.50 GiB": used without the ARC when known.
pub fn memory(state: &HostState) -> Markup {
    let fast = state.fast();
    let Some(total) = fast.and_then(|f| f.mem_total_bytes) else {
        return html! { "–" };
    };
    let used = fast.and_then(|f| f.mem_used_for_display()).unwrap_or(0);
    let arc = fast.and_then(|f| f.mem_arc_bytes);
    html! {
        span data-k="mem_used" { (format::bytes_u64(used)) }
        " " small {
            "of " span data-k="mem_total_bytes" { (format::bytes_u64(total)) }
            @if let Some(arc) = arc { " + ARC " span data-k="mem_arc_bytes" { (format::bytes_u64(arc)) } }
        }
    }
}

/// "0.21 0.37 0.39".
pub fn load(state: &HostState) -> Markup {
    let fast = state.fast();
    let one = |v: Option<f64>| format::or_dash(v, format::load);
    html! {
        span data-k="load1" { (one(fast.and_then(|f| f.load1))) }
        " " small {
            span data-k="load5" { (one(fast.and_then(|f| f.load5))) }
            " "
            span data-k="load15" { (one(fast.and_then(|f| f.load15))) }
        }
    }
}

pub fn uptime(state: &HostState) -> Markup {
    let uptime = state.fast().and_then(|f| f.uptime_seconds);
    html! { span data-k="uptime_seconds" { (format::or_dash(uptime, format::duration_u64)) } }
}

/// "12 running of 14".
pub fn guests(state: &HostState) -> Markup {
    let counts = state.guest_counts();
    html! {
        span data-k="guests.running" { (counts.running) } " running "
        small { "of " span data-k="guests.total" { (counts.total) } }
    }
}

/// The worst pool's health, or "no pools".
pub fn zfs(state: &HostState) -> Markup {
    html! {
        @match state.worst_pool() {
            Some(pool) => (pool_badge(&pool.health)),
            None => span.muted { "no pools" },
        }
    }
}

/// A `<meter>` of a percentage (no script, no inline style: the CSP allows neither).
pub fn meter(percent: Option<f64>) -> Markup {
    html! {
        @if let Some(p) = percent.filter(|p| p.is_finite()) {
            meter min="0" max="100" low="70" high="90" optimum="0" value=(format!("{:.0}", p.clamp(0.0, 100.0))) {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Host;

    fn state(status: HostStatus) -> HostState {
        HostState::new(Host {
            id: 1,
            name: "pve".into(),
            agent_version: None,
            proxmox_version: None,
            zfs_version: None,
            status,
            status_changed_at: Some(1000),
            last_seen_at: Some(1000),
            inserted_at: 0,
            updated_at: 0,
        })
    }

    #[test]
    fn status_lines() {
        let online = status_line(&state(HostStatus::Online), 1010).into_string();
        assert!(online.starts_with("online since <time"), "{online}");
        assert!(online.contains("last seen <time"), "{online}");
        let stale = status_line(&state(HostStatus::Online), 5000).into_string();
        assert!(stale.contains("no new sample since"), "{stale}");
        let offline = status_line(&state(HostStatus::Offline), 5000).into_string();
        assert!(offline.starts_with("offline since <time"), "{offline}");
        assert!(offline.contains(">1h 6m ago<"), "{offline}");
        let never = status_line(&state(HostStatus::NeverConnected), 0).into_string();
        assert!(never.contains("never connected"));
    }

    #[test]
    fn badges_and_meters() {
        assert_eq!(
            pool_badge(&PoolHealth::Degraded).into_string(),
            "<span class=\"badge degraded\">DEGRADED</span>"
        );
        assert!(pool_badge(&"<x>".into())
            .into_string()
            .contains("&lt;x&gt;"));
        assert!(status_badge(HostStatus::NeverConnected)
            .into_string()
            .contains(">never connected<"));
        assert_eq!(meter(None).into_string(), "");
        assert!(meter(Some(150.0)).into_string().contains("value=\"100\""));
        assert_eq!(condition_badge(Condition::Ok).into_string(), "");
    }
}
