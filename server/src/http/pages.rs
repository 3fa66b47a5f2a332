//! The dashboard pages: `/` (all hosts) and `/hosts/NAME` (one host's charts and tables), plus
//! the chart fragments the page script fetches to keep charts current
//! (`/hosts/NAME/chart?m=cpu|mem|load|net|disk&range=…`, `&spark=1` for a sparkline).
//!
//! Live updates: the page script polls the JSON API every 5 s and rewrites the elements marked
//! `data-k` (values) inside `data-host` / `data-guest` containers; charts are re-fetched as
//! server-rendered SVG every 30 s (1 h range) or 5 min (longer ranges). We poll rather than
//! subscribe on the Phoenix socket so the dashboard needs no WebSocket client code and works
//! through any proxy that passes plain HTTP.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::sample::{GuestFast, GuestStatus, GuestType};

use super::api::{query_points, Range};
use super::html::{
    escape_html as e, format_bytes, format_duration, format_percent, format_rate, or_dash, page,
    time_ago, Nav,
};
use super::svg::{self, Chart, Line, Unit};
use super::view::{pool_severity, HostView};
use super::{Request, Response};
use crate::context::Context;
use crate::error::Result;
use crate::store::HostStatus;

/// Points per chart: about one per 2.5 px of a desktop chart, enough to see spikes.
const CHART_POINTS: usize = 180;
const SPARK_POINTS: usize = 60;

/// The charts of a host page, in order.
const CHARTS: [(&str, &str); 5] = [
    ("cpu", "CPU"),
    ("mem", "Memory"),
    ("load", "Load"),
    ("net", "Network"),
    ("disk", "Disk I/O"),
];

/// `GET /`.
pub fn index(ctx: &Context) -> Result<Response> {
    let now = common::time::now_unix();
    let hosts = HostView::load_all(ctx)?;
    let mut body = String::with_capacity(4096 + hosts.len() * 3000);
    let online = hosts.iter().filter(|h| h.is_online()).count();
    let offline = hosts
        .iter()
        .filter(|h| h.host.status == HostStatus::Offline)
        .count();
    let bad_pools = hosts
        .iter()
        .filter(|h| h.worst_pool().is_some_and(|p| p.health != "ONLINE"))
        .count();
    let _ = write!(
        body,
        "<h1 class=\"visually-hidden\">All hosts</h1><p class=\"summary\">{} hosts · \
         <span class=\"ok\">{online} online</span>{}{}</p>",
        hosts.len(),
        if offline > 0 {
            format!(" · <span class=\"bad\">{offline} offline</span>")
        } else {
            String::new()
        },
        if bad_pools > 0 {
            format!(" · <span class=\"warn\">{bad_pools} with a degraded pool</span>")
        } else {
            String::new()
        },
    );
    if hosts.is_empty() {
        body.push_str(
            "<section class=\"card narrow\"><h2>No hosts yet</h2><p>Register one on the server \
             with <code>proxmox-monitor-server register-host NAME</code> and start its agent.</p>\
             </section>",
        );
    }
    body.push_str("<div class=\"hosts\" data-live=\"/api/hosts\">");
    for view in &hosts {
        host_card(ctx, &mut body, view, now)?;
    }
    body.push_str("</div>");
    Ok(Response::html(200, page("Hosts", Nav::LoggedIn, &body)))
}

/// `GET /hosts/NAME`.
pub fn host_page(ctx: &Context, request: &Request, name: &str) -> Result<Response> {
    let Some(view) = HostView::load_by_name(ctx, name)? else {
        return Ok(not_found());
    };
    let range = request
        .query_param("range")
        .and_then(Range::parse)
        .unwrap_or(Range::Hour);
    let now = common::time::now_unix();
    let name_html = e(&view.host.name);
    let mut body = String::with_capacity(64 * 1024);
    let _ = write!(
        body,
        "<nav class=\"crumbs\"><a href=\"/\">← All hosts</a></nav>\
         <section class=\"card hosthead {}\" data-host=\"{name_html}\" data-live=\"/api/hosts/{name_html}\">\
         <h1>{name_html} {}</h1><p class=\"sub\" data-k=\"status_line\">{}</p>",
        card_class(&view),
        status_badge(view.host.status),
        status_line(&view, now),
    );
    host_facts(&mut body, &view);
    body.push_str("</section>");

    let _ = write!(
        body,
        "<section><div class=\"section-head\"><h2>History</h2><nav class=\"ranges\" aria-label=\"Range\">"
    );
    for r in Range::ALL {
        let _ = write!(
            body,
            "<a href=\"?range={0}\"{1}>{0}</a>",
            r.as_str(),
            if r == range {
                " class=\"current\" aria-current=\"true\""
            } else {
                ""
            }
        );
    }
    body.push_str("</nav></div><div class=\"charts\">");
    for (metric, title) in CHARTS {
        let spec = chart_lines(ctx, &view, metric, now - range.seconds(), now, CHART_POINTS)?;
        let _ = write!(
            body,
            "<figure class=\"card\"><figcaption><span class=\"title\">{title}</span>{}</figcaption>\
             <div class=\"chart-box\" data-chart=\"/hosts/{name_html}/chart?m={metric}&amp;range={}\">{}</div></figure>",
            legend(&spec.lines),
            range.as_str(),
            svg::chart(&spec)
        );
    }
    body.push_str("</div><p class=\"note\">Times in UTC. Hover a chart for values.</p></section>");

    guests_table(&mut body, &view);
    pools_table(&mut body, &view);
    storages_table(&mut body, &view);
    disks_table(&mut body, &view);
    network_table(&mut body, &view);
    filesystems_table(&mut body, &view);
    errors_list(&mut body, &view);
    Ok(Response::html(
        200,
        page(&view.host.name, Nav::LoggedIn, &body),
    ))
}

/// `GET /hosts/NAME/chart?m=…&range=…[&spark=1]`: one chart as SVG.
pub fn chart_fragment(ctx: &Context, request: &Request, name: &str) -> Result<Response> {
    let Some(view) = HostView::load_by_name(ctx, name)? else {
        return Ok(Response::text(404, "no such host\n"));
    };
    let metric = request.query_param("m").unwrap_or("cpu");
    if !CHARTS.iter().any(|(m, _)| *m == metric) {
        return Ok(Response::text(400, "unknown chart\n"));
    }
    let now = common::time::now_unix();
    let svg = if request.query_param("spark") == Some("1") {
        sparkline(ctx, &view, metric, now)?
    } else {
        let range = request
            .query_param("range")
            .and_then(Range::parse)
            .unwrap_or(Range::Hour);
        svg::chart(&chart_lines(
            ctx,
            &view,
            metric,
            now - range.seconds(),
            now,
            CHART_POINTS,
        )?)
    };
    Ok(Response::new(200, "image/svg+xml", svg).with_header("Cache-Control", "no-store"))
}

pub fn not_found() -> Response {
    Response::html(
        404,
        page(
            "Not found",
            Nav::LoggedIn,
            "<section class=\"card narrow\"><h1>Not found</h1><p>No such page or host. \
             <a href=\"/\">All hosts</a></p></section>",
        ),
    )
}

fn host_card(ctx: &Context, out: &mut String, view: &HostView, now: i64) -> Result<()> {
    let name = e(&view.host.name);
    let fast = view.fast();
    let cpus = view.slow().and_then(|s| s.cpu_count);
    let counts = view.guest_counts();
    let _ = write!(
        out,
        "<article class=\"card host {}\" data-host=\"{name}\">\
         <header><h2><a href=\"/hosts/{name}\">{name}</a></h2>{}</header>\
         <p class=\"sub\" data-k=\"status_line\">{}</p>",
        card_class(view),
        status_badge(view.host.status),
        status_line(view, now),
    );
    if view.fast.is_none() && view.medium.is_none() && view.slow.is_none() {
        out.push_str("</article>");
        return Ok(());
    }
    out.push_str("<dl class=\"facts\">");
    let _ = write!(
        out,
        "<div><dt>CPU</dt><dd><span data-k=\"cpu_percent\" data-f=\"pct\">{}</span>{}{}</dd></div>",
        or_dash(fast.and_then(|f| f.cpu_percent), format_percent),
        cpus.map_or_else(String::new, |n| format!(" <small>of {n} CPUs</small>")),
        sparkline_box(ctx, view, "cpu", now)?,
    );
    let _ = write!(
        out,
        "<div><dt>Memory</dt><dd>{}{}</dd></div>",
        memory_text(view),
        sparkline_box(ctx, view, "mem", now)?,
    );
    let _ = write!(
        out,
        "<div><dt>Load</dt><dd>{}</dd></div>\
         <div><dt>Uptime</dt><dd><span data-k=\"uptime_seconds\" data-f=\"dur\">{}</span></dd></div>\
         <div><dt>Guests</dt><dd><span data-k=\"guests.running\">{}</span> running \
         <small>of <span data-k=\"guests.total\">{}</span></small></dd></div>\
         <div><dt>ZFS</dt><dd data-k=\"pools.worst_health\" data-f=\"pool\">{}</dd></div>\
         <div><dt>Versions</dt><dd>PVE <span data-k=\"proxmox_version\">{}</span> \
         <small>· agent <span data-k=\"agent_version\">{}</span></small></dd></div>",
        load_text(view),
        or_dash(fast.and_then(|f| f.uptime_seconds), |s| format_duration(
            i64::try_from(s).unwrap_or(i64::MAX)
        )),
        counts.running,
        counts.total,
        view.worst_pool()
            .map_or_else(|| "<span class=\"muted\">no pools</span>".to_owned(), |p| pool_badge(&p.health)),
        e(view.proxmox_version().unwrap_or("–")),
        e(view.host.agent_version.as_deref().unwrap_or("–")),
    );
    out.push_str("</dl></article>");
    Ok(())
}

fn sparkline_box(ctx: &Context, view: &HostView, metric: &str, now: i64) -> Result<String> {
    Ok(format!(
        "<span class=\"spark-box\" data-chart=\"/hosts/{}/chart?m={metric}&amp;spark=1\">{}</span>",
        e(&view.host.name),
        sparkline(ctx, view, metric, now)?
    ))
}

fn sparkline(ctx: &Context, view: &HostView, metric: &str, now: i64) -> Result<String> {
    let from = now - Range::Hour.seconds();
    let (label, unit, points) = if metric == "mem" {
        // Memory as a share of the total, so that sparklines of big and small hosts compare.
        let used = series(ctx, view, "mem_used_bytes", from, now, SPARK_POINTS)?;
        let total = view
            .fast()
            .and_then(|f| f.mem_total_bytes)
            .map_or(0.0, to_f64);
        let points = if total > 0.0 {
            used.into_iter()
                .map(|(t, v)| (t, v / total * 100.0))
                .collect()
        } else {
            Vec::new()
        };
        ("Memory used", Unit::Percent, points)
    } else {
        (
            "CPU",
            Unit::Percent,
            series(ctx, view, "cpu_percent", from, now, SPARK_POINTS)?,
        )
    };
    Ok(svg::sparkline(label, unit, from, now, &points))
}

/// The lines of one chart of a host.
fn chart_lines(
    ctx: &Context,
    view: &HostView,
    metric: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Chart> {
    let get = |name: &str| series(ctx, view, name, from, to, max_points);
    let line = |label: &str, points: Vec<(i64, f64)>| Line {
        label: label.to_owned(),
        points,
    };
    let (title, unit, lines) = match metric {
        "mem" => {
            let mut used = get("mem_used_without_arc_bytes")?;
            let label = if used.is_empty() {
                used = get("mem_used_bytes")?;
                "used"
            } else {
                "used (without ARC)"
            };
            (
                "Memory",
                Unit::Bytes,
                vec![
                    line(label, used),
                    line("ZFS ARC", get("mem_arc_bytes")?),
                    line("total", get("mem_total_bytes")?),
                ],
            )
        }
        "load" => (
            "Load",
            Unit::Plain,
            vec![
                line("1 min", get("load1")?),
                line("5 min", get("load5")?),
                line("15 min", get("load15")?),
            ],
        ),
        "net" => {
            let interfaces = physical_interfaces(ctx, view)?;
            let sum = |suffix: &str| -> Result<Vec<(i64, f64)>> {
                let names: Vec<String> = interfaces
                    .iter()
                    .map(|i| format!("net.{i}.{suffix}"))
                    .collect();
                summed(ctx, view, &names, from, to, max_points)
            };
            (
                "Network",
                Unit::BytesPerSecond,
                vec![
                    line("received", sum("rx_bytes_per_s")?),
                    line("sent", sum("tx_bytes_per_s")?),
                ],
            )
        }
        "disk" => {
            let disks = series_middles(ctx, view, "disk.", ".read_bytes_per_s")?;
            let sum = |suffix: &str| -> Result<Vec<(i64, f64)>> {
                let names: Vec<String> =
                    disks.iter().map(|d| format!("disk.{d}.{suffix}")).collect();
                summed(ctx, view, &names, from, to, max_points)
            };
            (
                "Disk I/O",
                Unit::BytesPerSecond,
                vec![
                    line("read", sum("read_bytes_per_s")?),
                    line("written", sum("write_bytes_per_s")?),
                ],
            )
        }
        _ => (
            "CPU",
            Unit::Percent,
            vec![
                line("total", get("cpu_percent")?),
                line("user", get("cpu_user_percent")?),
                line("system", get("cpu_system_percent")?),
                line("iowait", get("cpu_iowait_percent")?),
            ],
        ),
    };
    Ok(Chart {
        title: format!("{title} of {}", view.host.name),
        unit,
        from,
        to,
        lines,
        fill_first: true,
    })
}

fn series(
    ctx: &Context,
    view: &HostView,
    name: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Vec<(i64, f64)>> {
    Ok(query_points(ctx, view.host.id, name, from, to, max_points)?
        .into_iter()
        .map(|p| (p.t, p.avg))
        .collect())
}

/// The sum of several series at each time any of them has a point. Points of one sample share
/// its time, and downsampled buckets share their start, so the series line up.
fn summed(
    ctx: &Context,
    view: &HostView,
    names: &[String],
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Vec<(i64, f64)>> {
    let mut total: BTreeMap<i64, f64> = BTreeMap::new();
    for name in names {
        for (t, v) in series(ctx, view, name, from, to, max_points)? {
            *total.entry(t).or_default() += v;
        }
    }
    Ok(total.into_iter().collect())
}

/// Interfaces whose traffic counts once: not bridges (their ports carry the same bytes). From
/// the newest sample; from the stored series names when there is none.
fn physical_interfaces(ctx: &Context, view: &HostView) -> Result<Vec<String>> {
    match view.fast() {
        Some(fast) if !fast.net.is_empty() => Ok(fast
            .net
            .iter()
            .filter(|n| !n.bridge)
            .map(|n| n.name.clone())
            .collect()),
        _ => series_middles(ctx, view, "net.", ".rx_bytes_per_s"),
    }
}

/// The `X` of every stored series named `{prefix}X{suffix}`.
fn series_middles(
    ctx: &Context,
    view: &HostView,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<String>> {
    Ok(ctx
        .store
        .series_names(view.host.id)?
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .map(str::to_owned)
        })
        .collect())
}

fn legend(lines: &[Line]) -> String {
    let mut out = String::from("<span class=\"legend\">");
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            out,
            "<span class=\"key\"><i class=\"swatch s{}\"></i>{}</span>",
            i % 6,
            e(&line.label)
        );
    }
    out.push_str("</span>");
    out
}

fn card_class(view: &HostView) -> &'static str {
    let degraded = view.worst_pool().is_some_and(|p| p.health != "ONLINE");
    match view.host.status {
        HostStatus::Offline => "is-offline",
        HostStatus::NeverConnected => "is-never",
        HostStatus::Online if degraded => "is-degraded",
        HostStatus::Online => "is-online",
    }
}

fn status_badge(status: HostStatus) -> String {
    let (class, text) = match status {
        HostStatus::Online => ("online", "online"),
        HostStatus::Offline => ("offline", "offline"),
        HostStatus::NeverConnected => ("never", "never connected"),
    };
    format!("<span class=\"badge {class}\" data-k=\"status\" data-f=\"status\">{text}</span>")
}

fn pool_badge(health: &str) -> String {
    let class = match pool_severity(health) {
        0 => "online",
        1 => "degraded",
        _ => "offline",
    };
    format!("<span class=\"badge {class}\">{}</span>", e(health))
}

/// "last seen 5s ago" / "offline since 3h ago" / "never connected".
fn status_line(view: &HostView, now: i64) -> String {
    let host = &view.host;
    match host.status {
        HostStatus::Online => format!(
            "online{} · last seen {}",
            or_dash(host.status_changed_at, |t| format!(
                " since {}",
                time_ago(t, now)
            )),
            or_dash(host.last_seen_at, |t| time_ago(t, now))
        ),
        HostStatus::Offline => format!(
            "offline since {}{}",
            or_dash(host.status_changed_at.or(host.last_seen_at), |t| time_ago(
                t, now
            )),
            if view.fast.is_some() {
                " · values are from the last sample"
            } else {
                ""
            }
        ),
        HostStatus::NeverConnected => {
            "never connected — start the agent with this host's token".to_owned()
        }
    }
}

fn memory_text(view: &HostView) -> String {
    let fast = view.fast();
    let Some(total) = fast.and_then(|f| f.mem_total_bytes) else {
        return "–".into();
    };
    let used = fast
        .and_then(|f| f.mem_used_without_arc_bytes.or(f.mem_used_bytes))
        .map_or(0.0, to_f64);
    let arc = fast.and_then(|f| f.mem_arc_bytes);
    format!(
        "<span data-k=\"mem_used_without_arc_bytes\" data-f=\"bytes\">{}</span> \
         <small>of <span data-k=\"mem_total_bytes\" data-f=\"bytes\">{}</span>{}</small>",
        format_bytes(used),
        format_bytes(to_f64(total)),
        or_dash(arc, |a| format!(
            " + ARC <span data-k=\"mem_arc_bytes\" data-f=\"bytes\">{}</span>",
            format_bytes(to_f64(a))
        ))
        .replace('–', "")
    )
}

fn load_text(view: &HostView) -> String {
    let fast = view.fast();
    let one = |key: &str, v: Option<f64>| {
        format!(
            "<span data-k=\"{key}\" data-f=\"load\">{}</span>",
            or_dash(v, |x| format!("{x:.2}"))
        )
    };
    format!(
        "{} <small>{} {}</small>",
        one("load1", fast.and_then(|f| f.load1)),
        one("load5", fast.and_then(|f| f.load5)),
        one("load15", fast.and_then(|f| f.load15))
    )
}

fn host_facts(out: &mut String, view: &HostView) {
    let fast = view.fast();
    let slow = view.slow();
    let counts = view.guest_counts();
    out.push_str("<dl class=\"facts wide\">");
    let mut fact = |label: &str, value: String| {
        let _ = write!(out, "<div><dt>{label}</dt><dd>{value}</dd></div>");
    };
    fact(
        "CPU",
        format!(
            "<span data-k=\"cpu_percent\" data-f=\"pct\">{}</span>{}",
            or_dash(fast.and_then(|f| f.cpu_percent), format_percent),
            slow.and_then(|s| s.cpu_count)
                .map_or_else(String::new, |n| format!(" <small>of {n} CPUs</small>"))
        ),
    );
    fact("Memory", memory_text(view));
    fact("Load", load_text(view));
    fact(
        "Uptime",
        format!(
            "<span data-k=\"uptime_seconds\" data-f=\"dur\">{}</span>",
            or_dash(fast.and_then(|f| f.uptime_seconds), |s| format_duration(
                i64::try_from(s).unwrap_or(i64::MAX)
            ))
        ),
    );
    fact(
        "Guests",
        format!(
            "<span data-k=\"guests.running\">{}</span> running <small>of <span data-k=\"guests.total\">{}</span></small>",
            counts.running, counts.total
        ),
    );
    fact(
        "ZFS",
        view.worst_pool().map_or_else(
            || "<span class=\"muted\">no pools</span>".to_owned(),
            |p| pool_badge(&p.health),
        ),
    );
    fact("Proxmox VE", e(view.proxmox_version().unwrap_or("–")));
    fact(
        "Kernel",
        e(slow
            .and_then(|s| s.kernel_version.as_deref())
            .unwrap_or("–")),
    );
    fact(
        "ZFS version",
        e(slow
            .and_then(|s| s.zfs_version.as_deref())
            .or(view.host.zfs_version.as_deref())
            .unwrap_or("–")),
    );
    fact(
        "Agent",
        e(view.host.agent_version.as_deref().unwrap_or("–")),
    );
    fact(
        "CPU model",
        e(slow.and_then(|s| s.cpu_model.as_deref()).unwrap_or("–")),
    );
    if let Some(cluster) = slow.and_then(|s| s.cluster.as_ref()) {
        let quorum = match cluster.quorate {
            Some(true) => " <span class=\"badge online\">quorate</span>",
            Some(false) => " <span class=\"badge offline\">no quorum</span>",
            None => "",
        };
        fact(
            "Cluster",
            format!(
                "{} <small>({} nodes)</small>{quorum}",
                e(&cluster.name),
                cluster.nodes.len()
            ),
        );
    }
    out.push_str("</dl>");
}

fn guests_table(out: &mut String, view: &HostView) {
    let mut guests: Vec<&GuestFast> = view
        .fast()
        .map(|f| f.guests.iter().collect())
        .unwrap_or_default();
    guests.sort_by_key(|g| g.vmid);
    let _ = write!(
        out,
        "<section><h2>Guests <small>({})</small></h2>",
        guests.len()
    );
    if guests.is_empty() {
        out.push_str("<p class=\"muted\">No guests reported.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table class=\"sortable guests\"><thead><tr>\
         <th data-sort=\"num\">ID</th><th data-sort=\"text\">Name</th><th data-sort=\"text\">Type</th>\
         <th data-sort=\"text\">Status</th><th data-sort=\"num\" class=\"num\">CPU</th>\
         <th data-sort=\"num\" class=\"num\">Memory</th><th data-sort=\"num\" class=\"num\">Disk read</th>\
         <th data-sort=\"num\" class=\"num\">Disk write</th><th data-sort=\"num\" class=\"num\">Net in</th>\
         <th data-sort=\"num\" class=\"num\">Net out</th><th data-sort=\"num\" class=\"num\">Uptime</th>\
         </tr></thead><tbody>",
    );
    for g in guests {
        let config = view.guest_config(g.vmid);
        let name = g
            .name
            .as_deref()
            .or(config.map(|c| c.name.as_str()))
            .unwrap_or("");
        let tags = config.map(|c| c.tags.as_slice()).unwrap_or_default();
        let tags_html: String = tags
            .iter()
            .map(|t| format!(" <span class=\"tag\">{}</span>", e(t)))
            .collect();
        let (status_class, status) = match g.status {
            GuestStatus::Running => ("online", "running"),
            GuestStatus::Stopped => ("stopped", "stopped"),
            GuestStatus::Paused => ("degraded", "paused"),
            GuestStatus::Unknown => ("stopped", "unknown"),
        };
        let kind = match g.kind {
            GuestType::Qemu => "VM",
            GuestType::Lxc => "CT",
            GuestType::Unknown => "?",
        };
        let cell = |key: &str, format: &str, value: Option<f64>, text: String| {
            format!(
                "<td class=\"num\" data-v=\"{}\"><span data-k=\"{key}\" data-f=\"{format}\">{text}</span></td>",
                value.unwrap_or(-1.0)
            )
        };
        let _ = write!(
            out,
            "<tr data-guest=\"{}\"><td data-v=\"{0}\">{0}</td><td>{}{tags_html}</td><td>{kind}</td>\
             <td><span class=\"badge {status_class}\" data-k=\"status\" data-f=\"gstatus\">{status}</span></td>",
            g.vmid,
            e(name),
        );
        out.push_str(&cell(
            "cpu_percent",
            "pct",
            g.cpu_percent,
            or_dash(g.cpu_percent, format_percent),
        ));
        let mem_text = match (
            g.mem_used_bytes,
            g.mem_limit_bytes.or(config.and_then(|c| c.memory_bytes)),
        ) {
            (Some(used), Some(limit)) => format!(
                "{} <small>/ {}</small>",
                format_bytes(to_f64(used)),
                format_bytes(to_f64(limit))
            ),
            (Some(used), None) => format_bytes(to_f64(used)),
            (None, Some(limit)) => format!("– <small>/ {}</small>", format_bytes(to_f64(limit))),
            (None, None) => "–".into(),
        };
        let _ = write!(
            out,
            "<td class=\"num\" data-v=\"{}\"><span data-k=\"mem_used_bytes\" data-f=\"bytes\">{mem_text}</span></td>",
            g.mem_used_bytes.map_or(-1.0, to_f64)
        );
        for (key, value) in [
            ("disk_read_bytes_per_s", g.disk_read_bytes_per_s),
            ("disk_write_bytes_per_s", g.disk_write_bytes_per_s),
            ("net_in_bytes_per_s", g.net_in_bytes_per_s),
            ("net_out_bytes_per_s", g.net_out_bytes_per_s),
        ] {
            out.push_str(&cell(key, "rate", value, or_dash(value, format_rate)));
        }
        let uptime = g.uptime_seconds.map(to_f64);
        out.push_str(&cell(
            "uptime_seconds",
            "dur",
            uptime,
            or_dash(g.uptime_seconds, |s| {
                format_duration(i64::try_from(s).unwrap_or(i64::MAX))
            }),
        ));
        out.push_str("</tr>");
    }
    out.push_str(
        "</tbody></table></div><p class=\"note\">Click a column heading to sort.</p></section>",
    );
}

fn pools_table(out: &mut String, view: &HostView) {
    let pools = view
        .medium()
        .map(|m| m.pools.as_slice())
        .unwrap_or_default();
    out.push_str("<section><h2>ZFS pools</h2>");
    if pools.is_empty() {
        out.push_str("<p class=\"muted\">No ZFS pools reported.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Pool</th><th>Health</th><th class=\"num\">Size</th>\
         <th class=\"num\">Allocated</th><th class=\"num\">Free</th><th class=\"num\">Fragmentation</th>\
         <th class=\"num\">Dedup</th></tr></thead><tbody>",
    );
    for pool in pools {
        let used = match (pool.alloc_bytes, pool.size_bytes) {
            (Some(a), Some(s)) if s > 0 => format!(
                "{} <small>({:.0} %)</small>",
                format_bytes(to_f64(a)),
                to_f64(a) / to_f64(s) * 100.0
            ),
            (Some(a), _) => format_bytes(to_f64(a)),
            _ => "–".into(),
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{used}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            if pool.health == "ONLINE" { "" } else { "row-bad" },
            e(&pool.name),
            pool_badge(&pool.health),
            or_dash(pool.size_bytes, |b| format_bytes(to_f64(b))),
            or_dash(pool.free_bytes, |b| format_bytes(to_f64(b))),
            or_dash(pool.frag_percent, |p| format!("{p:.0} %")),
            or_dash(pool.dedup_ratio, |d| format!("{d:.2}×")),
        );
        if let Some(details) = &pool.status_details {
            let _ = write!(
                out,
                "<tr class=\"row-bad\"><td colspan=\"7\"><pre class=\"details\">{}</pre></td></tr>",
                e(details)
            );
        }
    }
    out.push_str("</tbody></table></div></section>");
}

fn storages_table(out: &mut String, view: &HostView) {
    let storages = view
        .medium()
        .map(|m| m.storages.as_slice())
        .unwrap_or_default();
    if storages.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Storages</h2><div class=\"scroll\"><table><thead><tr><th>Storage</th><th>Type</th>\
         <th>Content</th><th>State</th><th class=\"num\">Used</th><th class=\"num\">Total</th>\
         <th class=\"num\">Available</th></tr></thead><tbody>",
    );
    for s in storages {
        let state = match (s.enabled, s.active) {
            (false, _) => "<span class=\"badge stopped\">disabled</span>",
            (true, Some(true)) => "<span class=\"badge online\">active</span>",
            (true, Some(false)) => "<span class=\"badge offline\">inactive</span>",
            (true, None) => "<span class=\"muted\">unknown</span>",
        };
        let used = match (s.used_bytes, s.total_bytes) {
            (Some(u), Some(t)) if t > 0 => format!(
                "{} <small>({:.0} %)</small>",
                format_bytes(to_f64(u)),
                to_f64(u) / to_f64(t) * 100.0
            ),
            (Some(u), _) => format_bytes(to_f64(u)),
            _ => "–".into(),
        };
        let _ =
            write!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{state}</td><td class=\"num\">{used}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            e(&s.id),
            if s.shared { " <span class=\"tag\">shared</span>" } else { "" },
            e(&s.kind),
            e(s.content.as_deref().unwrap_or("")),
            or_dash(s.total_bytes, |b| format_bytes(to_f64(b))),
            or_dash(s.avail_bytes, |b| format_bytes(to_f64(b))),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn disks_table(out: &mut String, view: &HostView) {
    let disks = view.fast().map(|f| f.disks.as_slice()).unwrap_or_default();
    if disks.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Disks</h2><div class=\"scroll\"><table><thead><tr><th>Device</th>\
         <th class=\"num\">Read</th><th class=\"num\">Write</th><th class=\"num\">Read IOPS</th>\
         <th class=\"num\">Write IOPS</th><th class=\"num\">Busy</th></tr></thead><tbody>",
    );
    for d in disks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            e(&d.name),
            or_dash(d.read_bytes_per_s, format_rate),
            or_dash(d.write_bytes_per_s, format_rate),
            or_dash(d.read_iops, |v| format!("{v:.0}")),
            or_dash(d.write_iops, |v| format!("{v:.0}")),
            or_dash(d.busy_percent, format_percent),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn network_table(out: &mut String, view: &HostView) {
    let net = view.fast().map(|f| f.net.as_slice()).unwrap_or_default();
    if net.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Network interfaces</h2><div class=\"scroll\"><table><thead><tr><th>Interface</th>\
         <th class=\"num\">Received</th><th class=\"num\">Sent</th><th class=\"num\">Errors (rx/tx)</th>\
         <th class=\"num\">Dropped (rx/tx)</th></tr></thead><tbody>",
    );
    for n in net {
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} / {}</td><td class=\"num\">{} / {}</td></tr>",
            e(&n.name),
            if n.bridge {
                " <span class=\"tag\">bridge</span>"
            } else {
                ""
            },
            or_dash(n.rx_bytes_per_s, format_rate),
            or_dash(n.tx_bytes_per_s, format_rate),
            n.rx_errors,
            n.tx_errors,
            n.rx_dropped,
            n.tx_dropped,
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn filesystems_table(out: &mut String, view: &HostView) {
    let filesystems = view
        .medium()
        .map(|m| m.filesystems.as_slice())
        .unwrap_or_default();
    if filesystems.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Filesystems</h2><div class=\"scroll\"><table><thead><tr><th>Mount point</th>\
         <th>Device</th><th>Type</th><th class=\"num\">Used</th><th class=\"num\">Size</th>\
         <th class=\"num\">Available</th></tr></thead><tbody>",
    );
    for f in filesystems {
        let used = match (f.used_bytes, f.size_bytes) {
            (Some(u), Some(s)) if s > 0 => format!(
                "{} <small>({:.0} %)</small>",
                format_bytes(to_f64(u)),
                to_f64(u) / to_f64(s) * 100.0
            ),
            (Some(u), _) => format_bytes(to_f64(u)),
            _ => "–".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{used}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            e(&f.mountpoint),
            e(&f.device),
            e(&f.fstype),
            or_dash(f.size_bytes, |b| format_bytes(to_f64(b))),
            or_dash(f.avail_bytes, |b| format_bytes(to_f64(b))),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// What the agent could not read, so that a missing table has an explanation.
fn errors_list(out: &mut String, view: &HostView) {
    let errors: Vec<_> = [
        view.fast().map(|s| s.errors.as_slice()),
        view.medium().map(|s| s.errors.as_slice()),
        view.slow().map(|s| s.errors.as_slice()),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect();
    if errors.is_empty() {
        return;
    }
    out.push_str("<section><h2>Collector errors</h2><ul class=\"errors\">");
    for err in errors {
        let _ = write!(
            out,
            "<li><code>{}</code>: {}</li>",
            e(&err.source),
            e(&err.message)
        );
    }
    out.push_str("</ul></section>");
}

#[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^53
fn to_f64(v: u64) -> f64 {
    v as f64
}
