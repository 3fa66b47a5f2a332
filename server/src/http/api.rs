//! The JSON API under `/api/` (shapes documented in the README):
//!
//! - `GET /api/hosts` — every host with its latest values.
//! - `GET /api/hosts/NAME` — one host: the summary, the newest fast/medium/slow samples as the
//!   agent sent them (`common::sample`), and the names of its stored series.
//! - `GET /api/hosts/NAME/series?name=SERIES&range=1h|24h|7d|30d|1y` (or `from`/`to` as Unix
//!   seconds, RFC 3339 or a duration ago like `90m`; `max_points`, default 300, at most 2000)
//!   — points from the history tiers.

use serde_json::{json, Value};

use super::view::{HostView, Latest};
use super::{Request, Response};
use crate::context::Context;
use crate::error::Result;
use crate::store::{Point, SeriesQuery};

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
        ["hosts"] => hosts(ctx),
        ["hosts", name] => host(ctx, name),
        ["hosts", name, "series"] => series(ctx, request, name),
        _ => Ok(error(404, "no such API endpoint")),
    }
}

/// `{"error": message}` with `status`.
pub fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

fn hosts(ctx: &Context) -> Result<Response> {
    let hosts: Vec<Value> = HostView::load_all(ctx)?
        .iter()
        .map(HostView::summary_json)
        .collect();
    Ok(Response::json(
        200,
        &json!({"now": common::time::now_unix(), "hosts": hosts}),
    ))
}

fn host(ctx: &Context, name: &str) -> Result<Response> {
    let Some(view) = HostView::load_by_name(ctx, name)? else {
        return Ok(error(404, &format!("no host named {name:?}")));
    };
    let mut body = view.summary_json();
    if let Value::Object(map) = &mut body {
        map.insert("now".into(), json!(common::time::now_unix()));
        map.insert("fast".into(), sample_json(view.fast.as_ref()));
        map.insert("medium".into(), sample_json(view.medium.as_ref()));
        map.insert("slow".into(), sample_json(view.slow.as_ref()));
        map.insert(
            "series".into(),
            json!(ctx.store.series_names(view.host.id)?),
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
    let Some(host) = ctx.store.host_by_name(name)? else {
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
    let points = query_points(ctx, host.id, &series, from, to, max_points)?;
    Ok(Response::json(
        200,
        &json!({
            "host": host.name,
            "name": series,
            "from": from,
            "to": to,
            "points": points,
        }),
    ))
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
        Some(text) => crate::cli::parse_time(&text, now).map_err(|e| format!("{key}: {e}")),
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
