//! `/hosts/NAME`: one host's head (status and facts), its history charts and its tables.
//! `?fragment=1` gives the live parts alone (`#host-head` and `#host-tables`), which the page
//! script fetches every few seconds and puts in place of the old ones.

use maud::{html, Markup};

use super::alerts::{alert_badge, host_alerts};
use super::charts::{self, CHARTS};
use super::layout::{page, Nav};
use super::parts::{self, condition_badge, condition_class, status_badge, status_line};
use super::{forms, tables};
use crate::alerts::{AlertView, AlertsConfig};
use crate::context::Context;
use crate::error::Result;
use crate::http::api::Range;
use crate::http::{Request, Response};
use crate::state::HostState;

/// `GET /hosts/NAME`.
pub fn page_or_fragment(ctx: &Context, request: &Request, name: &str) -> Result<Response> {
    let Some(state) = ctx.hosts.get(name) else {
        return Ok(forms::not_found());
    };
    let now = common::time::now_unix();
    let alerts = ctx.alerts.view();
    if request.query_param("fragment") == Some("1") {
        return Ok(Response::html(
            200,
            live_parts(&state, &alerts, ctx.alerts.config(), now),
        ));
    }
    let range = request
        .query_param("range")
        .and_then(Range::parse)
        .unwrap_or(Range::Hour);
    let figures = CHARTS
        .iter()
        .map(|def| charts::figure(ctx, &state, def, range, now))
        .collect::<Result<Vec<Markup>>>()?;
    let body = html! {
        div.host-page data-live={ "/hosts/" (state.name()) "?fragment=1" } {
            nav.crumbs { a href="/" { "← All hosts" } }
            (head(&state, &alerts, now))
            (host_alerts(&alerts, state.name(), now))
            section {
                div.section-head {
                    h2 { "History" }
                    nav.ranges aria-label="Range" {
                        @for r in Range::ALL {
                            @if r == range {
                                a.current href={ "?range=" (r.as_str()) } aria-current="true" { (r.as_str()) }
                            } @else {
                                a href={ "?range=" (r.as_str()) } { (r.as_str()) }
                            }
                        }
                    }
                }
                div.charts { @for figure in &figures { (figure) } }
                p.note { "Times in UTC. Hover a chart for values." }
            }
            div id="host-tables" { (tables::all(&state, &alerts, ctx.alerts.config(), now)) }
        }
    };
    Ok(Response::html(200, page(state.name(), Nav::LoggedIn, body)))
}

/// What the page script replaces every few seconds.
fn live_parts(state: &HostState, alerts: &AlertView, config: &AlertsConfig, now: i64) -> Markup {
    html! {
        (head(state, alerts, now))
        (host_alerts(alerts, state.name(), now))
        div id="host-tables" { (tables::all(state, alerts, config, now)) }
    }
}

/// The host's name, badges, status line and facts.
fn head(state: &HostState, alerts: &AlertView, now: i64) -> Markup {
    let condition = state.condition(now);
    let counts = alerts.host(state.name());
    let slow = state.slow();
    let text = |v: Option<&str>| v.unwrap_or("–").to_owned();
    html! {
        section id="host-head" class={ "card hosthead " (condition_class(condition)) } data-host=(state.name()) {
            h1 {
                (state.name()) " " (status_badge(state.host.status)) " " (condition_badge(condition))
                " " (alert_badge(counts.critical, counts.warning))
            }
            p.sub { (status_line(state, now)) }
            dl.facts.wide {
                div { dt { "CPU" } dd { (parts::cpu(state)) } }
                div { dt { "Memory" } dd { (parts::memory(state)) } }
                div { dt { "Load" } dd { (parts::load(state)) } }
                div { dt { "Uptime" } dd { (parts::uptime(state)) } }
                div { dt { "Guests" } dd { (parts::guests(state)) } }
                div { dt { "ZFS" } dd { (parts::zfs(state)) } }
                div { dt { "Proxmox VE" } dd { (text(state.proxmox_version())) } }
                div { dt { "Kernel" } dd { (text(slow.and_then(|s| s.kernel_version.as_deref()))) } }
                div { dt { "ZFS version" } dd { (text(state.zfs_version())) } }
                div { dt { "Agent" } dd { (text(state.host.agent_version.as_deref())) } }
                div { dt { "CPU model" } dd { (text(slow.and_then(|s| s.cpu_model.as_deref()))) } }
                @if let Some(cluster) = slow.and_then(|s| s.cluster.as_ref()) {
                    div {
                        dt { "Cluster" }
                        dd {
                            (cluster.name) " " small { "(" (cluster.nodes.len()) " nodes)" }
                            @match cluster.quorate {
                                Some(true) => { " " span.badge.online { "quorate" } },
                                Some(false) => { " " span.badge.offline { "no quorum" } },
                                None => {},
                            }
                        }
                    }
                }
            }
        }
    }
}
