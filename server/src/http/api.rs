//! The JSON API under `/api/` (shapes documented in the README):
//!
//! - `GET /api/hosts` — every host with its latest values (`?operations=1`: with its backups,
//!   jobs, replication, HA, SMART and temperatures).
//! - `GET /api/hosts/NAME` — one host: the summary, the newest fast/medium/slow samples
//!   (`common::sample`), and the names of its stored series.
//!
//! Hosts and their samples come from memory (`crate::state`), serialized straight from the
//! typed values; only series read the database.
//! - `GET /api/backups?host=` — every guest's backups as the Backups view judges them.
//! - `GET /api/alerts` — open alerts (`?host=&rule=&state=firing|pending&severity=`), silences
//!   and maintenance windows, from the alert thread's view;
//! - `GET /api/alerts/history?host=&rule=&before=ID&limit=N` — resolved alerts, newest first.
//! - `GET /api/hosts/NAME/series?name=SERIES&range=1h|24h|7d|30d|1y` (or `from`/`to` as Unix
//!   seconds, RFC 3339 or a duration ago like `90m`; `max_points`, default 300, at most 2000)
//!   — points from the history tiers.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::{Request, Response};
use crate::context::Context;
use crate::error::Result;
use crate::state::{HostState, Latest};
use crate::store::{Point, SeriesQuery};
use common::sample::{BackupJob, GuestBackup, HaStatus, ReplicationJob, SmartDisk, Temperature};

pub const DEFAULT_MAX_POINTS: usize = 300;
pub const MAX_MAX_POINTS: usize = 2000;

/// The ranges the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Range {
    pub const ALL: [Range; 5] = [
        Range::Hour,
        Range::Day,
        Range::Week,
        Range::Month,
        Range::Year,
    ];

    pub fn parse(text: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
            Range::Year => "1y",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Range::Hour => 3600,
            Range::Day => 86400,
            Range::Week => 7 * 86400,
            Range::Month => 30 * 86400,
            Range::Year => 365 * 86400,
        }
    }
}

/// Routes a request under `/api/` (already authenticated).
pub fn handle(ctx: &Context, request: &Request) -> Result<Response> {
    if request.method != "GET" && request.method != "HEAD" {
        return Ok(error(405, "method not allowed").with_header("Allow", "GET, HEAD"));
    }
    let rest = request.path.trim_start_matches("/api/");
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["hosts"] => hosts(ctx, request),
        ["hosts", name] => host(ctx, name),
        ["hosts", name, "series"] => series(ctx, request, name),
        ["backups"] => backups(ctx, request),
        ["alerts"] => alerts(ctx, request),
        ["alerts", "history"] => alert_history(ctx, request),
        _ => Ok(error(404, "no such API endpoint")),
    }
}

/// `{"error": message}` with `status`.
pub fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

/// What the API says about each host (documented in the README).
#[derive(Debug, Serialize)]
pub struct HostSummary<'a> {
    name: &'a str,
    status: &'static str,
    /// `ok`, `offline`, `stale`, `degraded` or `never_connected` (see `state::Condition`).
    condition: &'static str,
    status_since: Option<i64>,
    last_seen_at: Option<i64>,
    agent_version: Option<&'a str>,
    proxmox_version: Option<&'a str>,
    zfs_version: Option<&'a str>,
    kernel_version: Option<&'a str>,
    cpu_model: Option<&'a str>,
    cpu_count: Option<u32>,
    cluster: Option<&'a str>,
    cpu_percent: Option<f64>,
    mem_total_bytes: Option<u64>,
    mem_used_bytes: Option<u64>,
    mem_arc_bytes: Option<u64>,
    mem_used_without_arc_bytes: Option<u64>,
    swap_total_bytes: Option<u64>,
    swap_used_bytes: Option<u64>,
    load1: Option<f64>,
    load5: Option<f64>,
    load15: Option<f64>,
    uptime_seconds: Option<u64>,
    guests: GuestsSummary,
    pools: PoolsSummary<'a>,
    /// The operational state, typed: in `/api/hosts/NAME` always, in `/api/hosts` with
    /// `?operations=1` (at 1000 hosts of 30 guests it makes the list ten times bigger).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    operations: Option<Operations<'a>>,
    collected_at: CollectedAt,
}

/// A host's backups, jobs, replication, HA, SMART and temperatures, as the agent sent them.
#[derive(Debug, Serialize)]
struct Operations<'a> {
    /// Each guest's last good and failed backup and the jobs covering it (medium sample).
    backups: &'a [GuestBackup],
    backup_jobs: &'a [BackupJob],
    replication: &'a [ReplicationJob],
    ha: Option<&'a HaStatus>,
    /// SMART health per disk (slow sample), and why it is missing when it is.
    smart: &'a [SmartDisk],
    smart_note: Option<&'a str>,
    /// hwmon sensors (fast sample) and drive sensors (slow sample).
    temperatures: &'a [Temperature],
    drive_temperatures: &'a [Temperature],
}

#[derive(Debug, Serialize)]
struct GuestsSummary {
    running: usize,
    stopped: usize,
    total: usize,
}

#[derive(Debug, Serialize)]
struct PoolsSummary<'a> {
    count: usize,
    worst_health: Option<&'a str>,
    unhealthy: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
struct CollectedAt {
    fast: Option<i64>,
    medium: Option<i64>,
    slow: Option<i64>,
}

impl<'a> HostSummary<'a> {
    pub fn of(state: &'a HostState, now: i64, operations: bool) -> HostSummary<'a> {
        let fast = state.fast();
        let slow = state.slow();
        let medium = state.medium();
        let counts = state.guest_counts();
        let pools = state
            .medium()
            .map(|m| m.pools.as_slice())
            .unwrap_or_default();
        HostSummary {
            name: &state.host.name,
            status: state.host.status.as_str(),
            condition: state.condition(now).as_str(),
            status_since: state.host.status_changed_at,
            last_seen_at: state.host.last_seen_at,
            agent_version: state.host.agent_version.as_deref(),
            proxmox_version: state.proxmox_version(),
            zfs_version: state.zfs_version(),
            kernel_version: slow.and_then(|s| s.kernel_version.as_deref()),
            cpu_model: slow.and_then(|s| s.cpu_model.as_deref()),
            cpu_count: slow.and_then(|s| s.cpu_count),
            cluster: state.cluster_name(),
            cpu_percent: fast.and_then(|f| f.cpu_percent),
            mem_total_bytes: fast.and_then(|f| f.mem_total_bytes),
            mem_used_bytes: fast.and_then(|f| f.mem_used_bytes),
            mem_arc_bytes: fast.and_then(|f| f.mem_arc_bytes),
            mem_used_without_arc_bytes: fast.and_then(|f| f.mem_used_without_arc_bytes),
            swap_total_bytes: fast.and_then(|f| f.swap_total_bytes),
            swap_used_bytes: fast.and_then(|f| f.swap_used_bytes()),
            load1: fast.and_then(|f| f.load1),
            load5: fast.and_then(|f| f.load5),
            load15: fast.and_then(|f| f.load15),
            uptime_seconds: fast.and_then(|f| f.uptime_seconds),
            guests: GuestsSummary {
                running: counts.running,
                stopped: counts.stopped,
                total: counts.total,
            },
            pools: PoolsSummary {
                count: pools.len(),
                worst_health: state.worst_pool().map(|p| p.health.as_str()),
                unhealthy: pools
                    .iter()
                    .filter(|p| !p.health.is_online())
                    .map(|p| p.name.as_str())
                    .collect(),
            },
            operations: operations.then(|| Operations {
                backups: medium.map(|m| m.backups.as_slice()).unwrap_or_default(),
                backup_jobs: medium.map(|m| m.backup_jobs.as_slice()).unwrap_or_default(),
                replication: medium.map(|m| m.replication.as_slice()).unwrap_or_default(),
                ha: medium.and_then(|m| m.ha.as_ref()),
                smart: slow.map(|s| s.smart.as_slice()).unwrap_or_default(),
                smart_note: slow.and_then(|s| s.smart_note.as_deref()),
                temperatures: fast.map(|f| f.temperatures.as_slice()).unwrap_or_default(),
                drive_temperatures: slow
                    .map(|s| s.drive_temperatures.as_slice())
                    .unwrap_or_default(),
            }),
            collected_at: CollectedAt {
                fast: state.fast.as_ref().map(|l| l.collected_at),
                medium: state.medium.as_ref().map(|l| l.collected_at),
                slow: state.slow.as_ref().map(|l| l.collected_at),
            },
        }
    }
}

fn hosts(ctx: &Context, request: &Request) -> Result<Response> {
    #[derive(Serialize)]
    struct Body<'a> {
        now: i64,
        hosts: Vec<HostSummary<'a>>,
    }
    let now = common::time::now_unix();
    let operations = request.query_param("operations") == Some("1");
    let states: Vec<Arc<HostState>> = ctx.hosts.snapshot();
    let body = Body {
        now,
        hosts: states
            .iter()
            .map(|s| HostSummary::of(s, now, operations))
            .collect(),
    };
    Ok(Response::json(200, &body))
}

fn host(ctx: &Context, name: &str) -> Result<Response> {
    let Some(state) = ctx.hosts.get(name) else {
        return Ok(error(404, &format!("no host named {name:?}")));
    };
    let now = common::time::now_unix();
    let mut body = serde_json::to_value(HostSummary::of(&state, now, true)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert("now".into(), json!(now));
        map.insert("fast".into(), sample_json(state.fast.as_deref()));
        map.insert("medium".into(), sample_json(state.medium.as_deref()));
        map.insert("slow".into(), sample_json(state.slow.as_deref()));
        map.insert(
            "series".into(),
            json!(ctx.store.series_names(state.host.id)?),
        );
    }
    Ok(Response::json(200, &body))
}

/// `{"collected_at": …, "data": sample}`, or `null` when the host never sent that kind.
fn sample_json<T: serde::Serialize>(latest: Option<&Latest<T>>) -> Value {
    latest.map_or(
        Value::Null,
        |l| json!({"collected_at": l.collected_at, "data": l.sample}),
    )
}

fn series(ctx: &Context, request: &Request, name: &str) -> Result<Response> {
    let Some(host) = ctx.hosts.get(name) else {
        return Ok(error(404, &format!("no host named {name:?}")));
    };
    let Some(series) = request
        .query_param_decoded("name")
        .filter(|s| !s.is_empty())
    else {
        return Ok(error(
            400,
            "the query parameter `name` (a series name) is required",
        ));
    };
    let now = common::time::now_unix();
    let (from, to) = match time_range(request, now) {
        Ok(range) => range,
        Err(message) => return Ok(error(400, &message)),
    };
    let max_points = match request.query_param("max_points") {
        None => DEFAULT_MAX_POINTS,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_MAX_POINTS).contains(&n) => n,
            _ => {
                return Ok(error(
                    400,
                    &format!("max_points must be a number from 1 to {MAX_MAX_POINTS}"),
                ))
            }
        },
    };
    let points = query_points(ctx, host.host.id, &series, from, to, max_points)?;
    Ok(Response::json(
        200,
        &json!({
            "host": host.host.name,
            "name": series,
            "from": from,
            "to": to,
            "points": points,
        }),
    ))
}

/// `GET /api/backups[?host=NAME]`: every guest's backups as the Backups view judges them,
/// worst first.
fn backups(ctx: &Context, request: &Request) -> Result<Response> {
    #[derive(Serialize)]
    struct Body<'a> {
        now: i64,
        backups: Vec<crate::backups::BackupRow<'a>>,
    }
    let now = common::time::now_unix();
    let host = request
        .query_param_decoded("host")
        .filter(|h| !h.is_empty());
    let states: Vec<Arc<HostState>> = ctx
        .hosts
        .snapshot()
        .into_iter()
        .filter(|s| host.as_deref().map_or(true, |h| s.name() == h))
        .collect();
    let body = Body {
        now,
        backups: crate::backups::cluster_rows(&states, ctx.alerts.config(), now),
    };
    Ok(Response::json(200, &body))
}

/// `GET /api/alerts`.
fn alerts(ctx: &Context, request: &Request) -> Result<Response> {
    let now = common::time::now_unix();
    let view = ctx.alerts.view();
    let param = |key: &str| request.query_param_decoded(key).filter(|v| !v.is_empty());
    let (host, rule, state, severity) = (
        param("host"),
        param("rule"),
        param("state"),
        param("severity"),
    );
    let alerts: Vec<Value> = view
        .rows
        .iter()
        .filter(|r| {
            host.as_deref().map_or(true, |h| r.rec.host == h)
                && rule.as_deref().map_or(true, |x| r.rec.rule == x)
                && state.as_deref().map_or(true, |s| r.rec.state.as_str() == s)
                && severity
                    .as_deref()
                    .map_or(true, |s| r.rec.severity.as_str() == s)
        })
        .map(|r| crate::alerts::alert_json(&r.rec, r.quiet.as_ref(), now))
        .collect();
    let silences: Vec<Value> = view
        .silences
        .iter()
        .map(|s| crate::alerts::silence_json(s, now))
        .collect();
    let windows: Vec<Value> = view
        .windows
        .iter()
        .map(|w| json!({"name": w.name, "schedule": w.schedule, "matchers": w.matchers, "active": w.active}))
        .collect();
    Ok(Response::json(
        200,
        &json!({"now": now, "alerts": alerts, "silences": silences, "maintenance": windows}),
    ))
}

/// `GET /api/alerts/history`.
fn alert_history(ctx: &Context, request: &Request) -> Result<Response> {
    let now = common::time::now_unix();
    let param = |key: &str| request.query_param_decoded(key).filter(|v| !v.is_empty());
    let number = |key: &str| -> std::result::Result<Option<i64>, String> {
        param(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{key} must be a number"))
            })
            .transpose()
    };
    let (before, limit) = match (number("before"), number("limit")) {
        (Ok(b), Ok(l)) => (b, l.unwrap_or(100)),
        (Err(m), _) | (_, Err(m)) => return Ok(error(400, &m)),
    };
    if !(1..=1000).contains(&limit) {
        return Ok(error(400, "limit must be from 1 to 1000"));
    }
    let rows = ctx
        .store
        .alert_history(&crate::store::alerts::HistoryQuery {
            host: param("host"),
            rule: param("rule"),
            before_id: before,
            limit: usize::try_from(limit).unwrap_or(100),
        })?;
    let rules = &ctx.alerts.config().rules;
    let alerts: Vec<Value> = rows
        .into_iter()
        .map(|mut a| {
            a.summary = crate::alerts::summary::summary(rules, &a);
            crate::alerts::alert_json(&a, None, now)
        })
        .collect();
    Ok(Response::json(200, &json!({"now": now, "alerts": alerts})))
}

/// `range=` or `from=`/`to=` of a request; the last hour by default.
fn time_range(request: &Request, now: i64) -> std::result::Result<(i64, i64), String> {
    if let Some(text) = request.query_param("range") {
        let range = Range::parse(text)
            .ok_or_else(|| format!("range must be one of 1h, 24h, 7d, 30d, 1y, not {text:?}"))?;
        return Ok((now - range.seconds(), now));
    }
    let parse = |key: &str, default: i64| match request.query_param_decoded(key) {
        None => Ok(default),
        Some(text) => common::time::parse_time(&text, now).map_err(|e| format!("{key}: {e}")),
    };
    let from = parse("from", now - Range::Hour.seconds())?;
    let to = parse("to", now)?;
    if to < from {
        return Err("`to` is before `from`".into());
    }
    Ok((from, to))
}

/// One series of a host between `from` and `to`.
pub fn query_points(
    ctx: &Context,
    host_id: i64,
    name: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Vec<Point>> {
    ctx.store.query_series(
        &SeriesQuery {
            host_id,
            name,
            from,
            to,
            max_points,
        },
        &ctx.config.retention,
        common::time::now_unix(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/hosts/x/series".into(),
            query: Some(query.into()),
            ..Request::default()
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            time_range(&request("range=24h"), 100_000),
            Ok((13_600, 100_000))
        );
        assert_eq!(time_range(&request(""), 10_000), Ok((6_400, 10_000)));
        assert_eq!(
            time_range(&request("from=90m&to=now"), 10_000),
            Ok((4_600, 10_000))
        );
        assert!(time_range(&request("range=2h"), 0).is_err());
        assert!(time_range(&request("from=now&to=1h"), 10_000).is_err());
        for range in Range::ALL {
            assert_eq!(Range::parse(range.as_str()), Some(range));
        }
    }
}
