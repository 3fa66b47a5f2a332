//! `/`: every host, problems first (offline, stale, degraded pools, then hosts with firing
//! alerts, critical before warning), then the rest by name; as
//! cards (small fleets) or as one compact table row per host (the default past
//! `CARDS_UP_TO` hosts); filtered by name, condition, cluster and guest tag.
//!
//! The filters are a plain GET form (`?q=&status=&cluster=&tag=&view=`), so a filtered view
//! is a link one can share, and works without the script. `?…&fragment=1` gives the live part
//! alone (`#overview`), which the page script fetches every few seconds and puts in place.

use std::collections::BTreeSet;
use std::sync::Arc;

use maud::{html, Markup};

use super::alerts::alert_badge;
use super::charts::{spark_box, SPARKS};
use super::layout::{page, Nav};
use super::parts::{
    self, condition_badge, condition_class, meter, status_badge, status_line, time_ago,
};
use crate::alerts::{AlertView, HostAlerts};
use crate::context::Context;
use crate::http::format::{self, or_dash};
use crate::http::{Request, Response};
use crate::state::{Condition, HostState};
use crate::store::HostStatus;

/// Fleets up to this size are shown as cards unless asked otherwise; bigger ones as a table.
pub const CARDS_UP_TO: usize = 24;

/// How hosts are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Cards,
    Table,
}

impl View {
    fn as_str(self) -> &'static str {
        match self {
            View::Cards => "cards",
            View::Table => "table",
        }
    }
}

/// Which hosts the `status` filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    /// Offline, stale, degraded, or with firing alerts.
    Problems,
    /// With firing alerts.
    Alerting,
    /// Connected (whether current, stale or degraded).
    Online,
    Is(Condition),
}

impl StatusFilter {
    const CHOICES: [(&'static str, &'static str); 9] = [
        ("", "all"),
        ("problems", "problems"),
        ("alerting", "with firing alerts"),
        ("online", "online"),
        ("ok", "online, no problem"),
        ("offline", "offline"),
        ("stale", "stale"),
        ("degraded", "degraded pool"),
        ("never_connected", "never connected"),
    ];

    fn parse(text: &str) -> StatusFilter {
        match text {
            "problems" => StatusFilter::Problems,
            "alerting" => StatusFilter::Alerting,
            "online" => StatusFilter::Online,
            other => Condition::parse(other).map_or(StatusFilter::All, StatusFilter::Is),
        }
    }

    fn keeps(self, state: &HostState, condition: Condition, alerts: HostAlerts) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Problems => problem_rank(condition, alerts).is_some(),
            StatusFilter::Alerting => alerts.firing() > 0,
            StatusFilter::Online => state.host.status == HostStatus::Online,
            StatusFilter::Is(c) => condition == c,
        }
    }
}

/// The overview's query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// A part of the host name, any case.
    pub name: String,
    status: String,
    /// A cluster name, or `-` for standalone nodes.
    pub cluster: String,
    /// A tag of one of the host's guests.
    pub tag: String,
    view: Option<View>,
}

impl Filters {
    pub fn from_request(request: &Request) -> Filters {
        let param = |key: &str| {
            request
                .query_param_decoded(key)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Filters {
            name: param("q"),
            status: param("status"),
            cluster: param("cluster"),
            tag: param("tag"),
            view: match param("view").as_str() {
                "cards" => Some(View::Cards),
                "table" => Some(View::Table),
                _ => None,
            },
        }
    }

    fn status(&self) -> StatusFilter {
        StatusFilter::parse(&self.status)
    }

    fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.status() == StatusFilter::All
            && self.cluster.is_empty()
            && self.tag.is_empty()
    }

    /// The view asked for, else cards for small fleets.
    pub fn view(&self, hosts: usize) -> View {
        self.view.unwrap_or(if hosts <= CARDS_UP_TO {
            View::Cards
        } else {
            View::Table
        })
    }

    fn keeps(&self, state: &HostState, condition: Condition, alerts: HostAlerts) -> bool {
        (self.name.is_empty() || contains_ignore_case(state.name(), &self.name))
            && self.status().keeps(state, condition, alerts)
            && (self.cluster.is_empty() || state.cluster_name().unwrap_or("-") == self.cluster)
            && (self.tag.is_empty() || state.guest_tags().contains(&self.tag.as_str()))
    }

    /// The query string of these filters with `view` (empty values left out).
    fn query(&self, view: Option<View>) -> String {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("q", self.name.as_str()),
            ("status", self.status.as_str()),
            ("cluster", self.cluster.as_str()),
            ("tag", self.tag.as_str()),
            ("view", view.map_or("", View::as_str)),
        ] {
            if !value.is_empty() {
                pairs.push(format!("{key}={}", query_encode(value)));
            }
        }
        pairs.join("&")
    }
}

/// `GET /` and `GET /?…&fragment=1`.
pub fn page_or_fragment(ctx: &Context, request: &Request) -> Response {
    let now = common::time::now_unix();
    let hosts = ctx.hosts.snapshot();
    let alerts = ctx.alerts.view();
    let filters = Filters::from_request(request);
    let live = live_part(&hosts, &alerts, &filters, now);
    if request.query_param("fragment") == Some("1") {
        return Response::html(200, live);
    }
    let query = filters.query(filters.view);
    let live_url = if query.is_empty() {
        "/?fragment=1".to_owned()
    } else {
        format!("/?{query}&fragment=1")
    };
    let body = html! {
        h1.visually-hidden { "All hosts" }
        (filter_form(&hosts, &filters))
        div.overview data-live=(live_url) { (live) }
    };
    Response::html(200, page("Hosts", Nav::LoggedIn, body))
}

/// Where a host goes among the problems (lower first), if it is one: offline, stale, degraded
/// pool, then firing alerts (critical before warning).
fn problem_rank(condition: Condition, alerts: HostAlerts) -> Option<u8> {
    match condition {
        Condition::Offline => Some(0),
        Condition::Stale => Some(1),
        Condition::Degraded => Some(2),
        _ if alerts.critical > 0 => Some(3),
        _ if alerts.warning > 0 => Some(4),
        _ => None,
    }
}

/// A host as the overview lists it.
struct Shown<'a> {
    state: &'a HostState,
    condition: Condition,
    alerts: HostAlerts,
}

/// The summary, the problems and the other hosts: what live refresh replaces.
pub fn live_part(
    hosts: &[Arc<HostState>],
    alert_view: &AlertView,
    filters: &Filters,
    now: i64,
) -> Markup {
    let conditions: Vec<Condition> = hosts.iter().map(|h| h.condition(now)).collect();
    let count = |c: Condition| conditions.iter().filter(|&&x| x == c).count();
    let online = hosts.iter().filter(|h| h.is_online()).count();
    let all: Vec<Shown<'_>> = hosts
        .iter()
        .zip(&conditions)
        .map(|(h, c)| Shown {
            state: h.as_ref(),
            condition: *c,
            alerts: alert_view.host(h.name()),
        })
        .collect();
    let alerting = all.iter().filter(|s| s.alerts.firing() > 0).count();
    let mut shown: Vec<&Shown<'_>> = all
        .iter()
        .filter(|s| filters.keeps(s.state, s.condition, s.alerts))
        .collect();
    // Problems first, worst first; then the rest; by name within each (the snapshot is by name
    // and the sort is stable).
    shown.sort_by_key(|s| problem_rank(s.condition, s.alerts).unwrap_or(u8::MAX));
    let split = shown
        .iter()
        .take_while(|s| problem_rank(s.condition, s.alerts).is_some())
        .count();
    let (problems, rest) = shown.split_at(split);
    let view = filters.view(hosts.len());
    html! {
        div id="overview" {
            (view_switch(filters, view))
            p.summary {
                (hosts.len()) " hosts · " span.ok { (online) " online" }
                @for (condition, class, text) in [
                    (Condition::Offline, "bad", "offline"),
                    (Condition::Stale, "warn", "stale"),
                    (Condition::Degraded, "warn", "with a degraded pool"),
                    (Condition::NeverConnected, "muted", "never connected"),
                ] {
                    @let n = count(condition);
                    @if n > 0 { " · " span class=(class) { (n) " " (text) } }
                }
                @if alerting > 0 {
                    " · " a.bad href="/alerts" { (alerting) " with firing alerts" }
                }
                @if !filters.is_empty() { " · " strong { (shown.len()) " shown" } }
            }
            @if hosts.is_empty() {
                section.card.narrow {
                    h2 { "No hosts yet" }
                    p {
                        "Register one on the server with "
                        code { "proxmox-monitor-server register-host NAME" }
                        " and start its agent."
                    }
                }
            } @else if shown.is_empty() {
                p.muted { "No host matches these filters." }
            }
            @if !problems.is_empty() {
                section.problems aria-labelledby="problems-title" {
                    h2 id="problems-title" { "Problems " small { "(" (problems.len()) ")" } }
                    (list(problems, view, now, "problems"))
                }
            }
            @if !rest.is_empty() {
                section aria-labelledby="hosts-title" {
                    @if problems.is_empty() {
                        h2.visually-hidden id="hosts-title" { "Hosts" }
                    } @else {
                        h2 id="hosts-title" { "Other hosts " small { "(" (rest.len()) ")" } }
                    }
                    (list(rest, view, now, "hosts"))
                }
            }
        }
    }
}

fn list(hosts: &[&Shown<'_>], view: View, now: i64, id: &str) -> Markup {
    match view {
        View::Cards => html! {
            div.hosts { @for s in hosts { (card(s, now)) } }
        },
        View::Table => table(hosts, now, id),
    }
}

fn card(shown: &Shown<'_>, now: i64) -> Markup {
    let (state, condition, alerts) = (shown.state, shown.condition, shown.alerts);
    html! {
        article class={ "card host " (condition_class(condition)) } data-host=(state.name()) {
            header {
                h2 { a href={ "/hosts/" (state.name()) } { (state.name()) } }
                span {
                    (status_badge(state.host.status)) " " (condition_badge(condition))
                    " " (alert_badge(alerts.critical, alerts.warning))
                }
            }
            p.sub { (status_line(state, now)) }
            @if state.has_samples() {
                dl.facts {
                    div { dt { "CPU" } dd { (parts::cpu(state)) (spark_box(state, &SPARKS[0])) } }
                    div { dt { "Memory" } dd { (parts::memory(state)) (spark_box(state, &SPARKS[1])) } }
                    div { dt { "Load" } dd { (parts::load(state)) } }
                    div { dt { "Uptime" } dd { (parts::uptime(state)) } }
                    div { dt { "Guests" } dd { (parts::guests(state)) } }
                    div { dt { "ZFS" } dd { (parts::zfs(state)) } }
                    div {
                        dt { "Versions" }
                        dd {
                            "PVE " (state.proxmox_version().unwrap_or("–"))
                            " " small { "· agent " (state.host.agent_version.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
        }
    }
}

/// One compact row per host; sortable by the page script.
fn table(hosts: &[&Shown<'_>], now: i64, id: &str) -> Markup {
    html! {
        div.scroll {
            table.sortable.hosts-table id={ (id) "-table" } {
                thead { tr {
                    th data-sort="text" { "Host" }
                    th data-sort="text" { "Status" }
                    th.num data-sort="num" { "CPU" }
                    th.num data-sort="num" { "Memory" }
                    th.num data-sort="num" { "Load" }
                    th.num data-sort="num" { "Guests" }
                    th data-sort="text" { "ZFS" }
                    th data-sort="text" { "PVE" }
                    th data-sort="text" { "Cluster" }
                    th.num data-sort="num" { "Uptime" }
                    th.num data-sort="num" { "Seen" }
                } }
                tbody { @for s in hosts { (row(s, now)) } }
            }
        }
    }
}

fn row(shown: &Shown<'_>, now: i64) -> Markup {
    let (state, condition, alerts) = (shown.state, shown.condition, shown.alerts);
    let fast = state.fast();
    let cpu = fast.and_then(|f| f.cpu_percent);
    let total = fast.and_then(|f| f.mem_total_bytes);
    let used = fast.and_then(|f| f.mem_used_for_display());
    let memory_share = used.zip(total).and_then(|(u, t)| format::share(u, t));
    let load1 = fast.and_then(|f| f.load1);
    let uptime = fast.and_then(|f| f.uptime_seconds);
    let counts = state.guest_counts();
    let seen = state.host.last_seen_at;
    html! {
        tr class=(condition_class(condition)) data-host=(state.name()) {
            td {
                a href={ "/hosts/" (state.name()) } { (state.name()) }
                " " (condition_badge(condition))
                " " (alert_badge(alerts.critical, alerts.warning))
            }
            td { (status_badge(state.host.status)) }
            td.num data-v=(cpu.unwrap_or(-1.0)) { (or_dash(cpu, format::percent)) " " (meter(cpu)) }
            td.num data-v=(memory_share.unwrap_or(-1.0)) {
                @match (used, total) {
                    (Some(u), Some(t)) => { (format::bytes_u64(u)) " " small { "/ " (format::bytes_u64(t)) } " " (meter(memory_share)) },
                    _ => "–",
                }
            }
            td.num data-v=(load1.unwrap_or(-1.0)) { (or_dash(load1, format::load)) }
            td.num data-v=(counts.running) {
                @if state.fast.is_some() { (counts.running) " " small { "/ " (counts.total) } } @else { "–" }
            }
            td { (parts::zfs(state)) }
            td { (state.proxmox_version().unwrap_or("–")) }
            td { (state.cluster_name().unwrap_or("–")) }
            td.num data-v=(uptime.map_or(-1.0, format::to_f64)) { (or_dash(uptime, format::duration_u64)) }
            td.num data-v=(seen.map_or(i64::MAX, |t| now - t)) {
                @match seen { Some(t) => (time_ago(t, now)), None => "never" }
            }
        }
    }
}

/// The filter form: name, condition, cluster and guest tag, and the view switch.
fn filter_form(hosts: &[Arc<HostState>], filters: &Filters) -> Markup {
    let mut clusters: BTreeSet<&str> = BTreeSet::new();
    let mut tags: BTreeSet<&str> = BTreeSet::new();
    for h in hosts {
        clusters.insert(h.cluster_name().unwrap_or("-"));
        if let Some(medium) = h.medium() {
            for guest in &medium.guests {
                tags.extend(guest.tags.iter().map(String::as_str));
            }
        }
    }
    html! {
        form.filters method="get" action="/" role="search" data-filters {
            label { "Name " input type="search" name="q" value=(filters.name) placeholder="part of a name" autocomplete="off"; }
            label {
                "Status "
                select name="status" {
                    @for (value, text) in StatusFilter::CHOICES {
                        option value=(value) selected[filters.status == value] { (text) }
                    }
                }
            }
            @if clusters.len() > 1 || clusters.iter().any(|c| *c != "-") {
                label {
                    "Cluster "
                    select name="cluster" {
                        option value="" { "all" }
                        @for c in &clusters {
                            option value=(c) selected[filters.cluster == *c] {
                                @if *c == "-" { "standalone" } @else { (c) }
                            }
                        }
                    }
                }
            }
            @if !tags.is_empty() {
                label {
                    "Guest tag "
                    select name="tag" {
                        option value="" { "any" }
                        @for t in &tags { option value=(t) selected[filters.tag == *t] { (t) } }
                    }
                }
            }
            @if let Some(v) = filters.view { input type="hidden" name="view" value=(v.as_str()); }
            button type="submit" { "Filter" }
        }
    }
}

/// Cards or table, keeping the filters; part of the live part so that its links follow the
/// filters typed since the page loaded.
fn view_switch(filters: &Filters, view: View) -> Markup {
    html! {
        nav.views aria-label="View" {
            @for v in [View::Cards, View::Table] {
                @let href = format!("/?{}", filters.query(Some(v)));
                @if v == view {
                    a.current href=(href) aria-current="true" { (v.as_str()) }
                } @else {
                    a href=(href) { (v.as_str()) }
                }
            }
        }
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use common::sample::{
        Cluster, FastSample, GuestConfig, MediumSample, Sample, SlowSample, ZfsPool,
    };

    use super::*;
    use crate::state::HostStates;
    use crate::store::Host;

    const NOW: i64 = 10_000;

    fn host(id: i64, name: &str, status: HostStatus) -> Host {
        Host {
            id,
            name: name.into(),
            agent_version: Some("0.1.0".into()),
            proxmox_version: None,
            zfs_version: None,
            status,
            status_changed_at: Some(NOW - 100),
            last_seen_at: Some(NOW - 10),
            inserted_at: 0,
            updated_at: 0,
        }
    }

    /// alpha (ok, cluster c1, tag web), bravo (offline), charlie (degraded pool), delta (never
    /// connected), echo (online, but its last sample is old: stale), foxtrot (ok, standalone).
    fn fleet() -> Vec<Arc<HostState>> {
        let states = HostStates::default();
        for (id, name, status) in [
            (1, "alpha", HostStatus::Online),
            (2, "bravo", HostStatus::Offline),
            (3, "charlie", HostStatus::Online),
            (4, "delta", HostStatus::NeverConnected),
            (5, "echo", HostStatus::Online),
            (6, "foxtrot", HostStatus::Online),
        ] {
            states.set_row(host(id, name, status));
        }
        let fast = |cpu: f64| {
            Sample::Fast(FastSample {
                cpu_percent: Some(cpu),
                mem_total_bytes: Some(1 << 30),
                mem_used_bytes: Some(1 << 29),
                ..FastSample::default()
            })
        };
        for id in [1, 2, 3, 6] {
            states.record_sample(id, fast(10.0 * id as f64), NOW - 5, NOW - 5);
        }
        states.record_sample(5, fast(1.0), NOW - 1000, NOW - 1000);
        states.record_sample(
            1,
            Sample::Medium(MediumSample {
                guests: vec![GuestConfig {
                    vmid: 100,
                    tags: vec!["web".into()],
                    ..GuestConfig::default()
                }],
                ..MediumSample::default()
            }),
            NOW - 5,
            NOW - 5,
        );
        states.record_sample(
            1,
            Sample::Slow(SlowSample {
                cluster: Some(Cluster {
                    name: "c1".into(),
                    ..Cluster::default()
                }),
                ..SlowSample::default()
            }),
            NOW - 5,
            NOW - 5,
        );
        states.record_sample(
            3,
            Sample::Medium(MediumSample {
                pools: vec![ZfsPool {
                    name: "tank".into(),
                    health: "DEGRADED".into(),
                    ..ZfsPool::default()
                }],
                ..MediumSample::default()
            }),
            NOW - 5,
            NOW - 5,
        );
        states.snapshot()
    }

    fn request(query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: Some(query.into()),
            ..Request::default()
        }
    }

    /// The hosts shown, in order (from the `data-host` attributes).
    fn shown(html: &str) -> Vec<String> {
        html.split("data-host=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    }

    fn render(query: &str) -> String {
        live_part(
            &fleet(),
            &AlertView::default(),
            &Filters::from_request(&request(query)),
            NOW,
        )
        .into_string()
    }

    #[test]
    fn problems_come_first_worst_first_then_the_rest_by_name() {
        let html = render("");
        assert_eq!(
            shown(&html),
            ["bravo", "echo", "charlie", "alpha", "delta", "foxtrot"]
        );
        assert!(html.contains("Problems <small>(3)</small>"));
        assert!(html.contains("6 hosts · <span class=\"ok\">4 online</span>"));
        assert!(html.contains("1 stale"));
        assert!(html.contains("article class=\"card host is-stale\" data-host=\"echo\""));
    }

    #[test]
    fn hosts_with_firing_alerts_are_problems_after_the_host_conditions() {
        use crate::alerts::AlertRow;
        use crate::store::alerts::{AlertRecord, AlertState, Severity};
        let row = |host: &str, severity| AlertRow {
            rec: AlertRecord {
                id: 1,
                rule: "cpu_high".into(),
                host_id: 0,
                host: host.into(),
                object: String::new(),
                guest: None,
                label: None,
                state: AlertState::Firing,
                severity,
                value: None,
                threshold: None,
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
            },
            quiet: None,
            tags: Vec::new(),
        };
        let view = AlertView::new(
            NOW,
            vec![
                row("alpha", Severity::Warning),
                row("foxtrot", Severity::Critical),
                row("foxtrot", Severity::Warning),
            ],
            Vec::new(),
            Vec::new(),
        );
        let html =
            live_part(&fleet(), &view, &Filters::from_request(&request("")), NOW).into_string();
        assert_eq!(
            shown(&html),
            ["bravo", "echo", "charlie", "foxtrot", "alpha", "delta"]
        );
        assert!(html.contains("2 with firing alerts"));
        assert!(
            html.contains("2 alerts</span>"),
            "the badge on foxtrot's card"
        );
        let alerting = live_part(
            &fleet(),
            &view,
            &Filters::from_request(&request("status=alerting")),
            NOW,
        )
        .into_string();
        assert_eq!(shown(&alerting), ["foxtrot", "alpha"]);
    }

    #[test]
    fn filters_by_name_status_cluster_and_tag() {
        assert_eq!(shown(&render("q=ALP")), ["alpha"]);
        assert_eq!(
            shown(&render("status=problems")),
            ["bravo", "echo", "charlie"]
        );
        assert_eq!(shown(&render("status=never_connected")), ["delta"]);
        assert_eq!(
            shown(&render("status=online")),
            ["echo", "charlie", "alpha", "foxtrot"]
        );
        assert_eq!(shown(&render("status=ok")), ["alpha", "foxtrot"]);
        assert_eq!(shown(&render("cluster=c1")), ["alpha"]);
        assert_eq!(
            shown(&render("cluster=-")),
            ["bravo", "echo", "charlie", "delta", "foxtrot"]
        );
        assert_eq!(shown(&render("tag=web")), ["alpha"]);
        assert!(render("q=zzz").contains("No host matches these filters."));
        assert!(render("q=a").contains(" shown"));
    }

    #[test]
    fn the_table_view_has_one_row_per_host() {
        let html = render("view=table");
        assert!(!html.contains("<article"));
        assert_eq!(html.matches("<tr class=").count(), 6);
        assert!(html.contains("id=\"problems-table\"") && html.contains("id=\"hosts-table\""));
        assert!(html.contains("<meter"));
    }

    #[test]
    fn big_fleets_default_to_the_table() {
        let filters = Filters::from_request(&request(""));
        assert_eq!(filters.view(CARDS_UP_TO), View::Cards);
        assert_eq!(filters.view(CARDS_UP_TO + 1), View::Table);
        let cards = Filters::from_request(&request("view=cards"));
        assert_eq!(cards.view(1000), View::Cards);
    }

    #[test]
    fn names_and_values_are_escaped() {
        let states = HostStates::default();
        states.set_row(host(1, "a", HostStatus::Online));
        let html = live_part(
            &states.snapshot(),
            &AlertView::default(),
            &Filters::from_request(&request("q=%3Cscript%3E")),
            NOW,
        )
        .into_string();
        assert!(!html.contains("<script>"));
        let form = filter_form(
            &states.snapshot(),
            &Filters::from_request(&request("q=%22%3E%3Cb%3E")),
        )
        .into_string();
        assert!(form.contains("value=\"&quot;&gt;&lt;b&gt;\""), "{form}");
        assert_eq!(query_encode("a b&c"), "a%20b%26c");
    }
}
