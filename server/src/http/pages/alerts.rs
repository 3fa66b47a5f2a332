//! `/alerts`: what is firing (worst first), what is quiet (silenced, suppressed by a host or
//! pool being down, acknowledged), what is pending, the silences and maintenance windows, and
//! the history; filters by host, rule, severity and state; acknowledge and silence from the
//! page.
//!
//! The open alerts come from the alert thread's published view (`Alerts::view`), the history
//! from the database. `?fragment=1` gives the live part (`#alerts-live`), which the page
//! script refreshes. The forms post to `/alerts/ack`, `/alerts/silence` and
//! `/alerts/unsilence`, and `/alerts/notify-test` (the "send test" button of each
//! notification channel, below the history with the dead-lettered messages); each carries the session's anti-forgery token and is refused from
//! other origins (`session::form_allowed`), then redirects back (post/redirect/get).

use maud::{html, Markup};

use super::layout::{page, Nav};
use super::parts::time_ago;
use crate::alerts::{AlertRow, AlertView};
use crate::context::Context;
use crate::error::Result;
use crate::http::format;
use crate::http::session;
use crate::http::{form_params, Request, Response};
use crate::store::alerts::{
    AckOutcome, AlertRecord, AlertState, HistoryQuery, NewSilence, Severity,
};

/// Resolved alerts shown per page of history.
const HISTORY_PAGE: usize = 50;

/// The durations the silence form offers.
const DURATIONS: [(&str, i64); 7] = [
    ("1 hour", 3600),
    ("2 hours", 7200),
    ("4 hours", 4 * 3600),
    ("8 hours", 8 * 3600),
    ("1 day", 86400),
    ("3 days", 3 * 86400),
    ("1 week", 7 * 86400),
];

/// The page's query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filters {
    host: String,
    rule: String,
    severity: String,
    /// `firing`, `pending`, `quiet`, or empty for all.
    state: String,
}

impl Filters {
    fn from_request(request: &Request) -> Filters {
        let param = |key: &str| {
            request
                .query_param_decoded(key)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Filters {
            host: param("host"),
            rule: param("rule"),
            severity: param("severity"),
            state: param("state"),
        }
    }

    fn keeps(&self, row: &AlertRow, now: i64) -> bool {
        let r = &row.rec;
        (self.host.is_empty() || crate::alerts::quiet::glob_match(&self.host, &r.host))
            && (self.rule.is_empty() || r.rule == self.rule)
            && (self.severity.is_empty() || r.severity.as_str() == self.severity)
            && match self.state.as_str() {
                "firing" => r.state == AlertState::Firing,
                "pending" => r.state == AlertState::Pending,
                "quiet" => quiet(row, now),
                _ => true,
            }
    }

    fn query(&self) -> String {
        let mut pairs = Vec::new();
        for (k, v) in [
            ("host", &self.host),
            ("rule", &self.rule),
            ("severity", &self.severity),
            ("state", &self.state),
        ] {
            if !v.is_empty() {
                pairs.push(format!("{k}={}", encode(v)));
            }
        }
        pairs.join("&")
    }
}

/// Firing but not to be announced: silenced, suppressed or acknowledged.
fn quiet(row: &AlertRow, now: i64) -> bool {
    row.is_quiet() || row.acknowledged(now)
}

/// `GET /alerts`.
pub fn page_or_fragment(ctx: &Context, request: &Request) -> Result<Response> {
    let now = common::time::now_unix();
    let view = ctx.alerts.view();
    let filters = Filters::from_request(request);
    let csrf = session::csrf_token(request);
    let live = live_part(&view, &filters, &csrf, now);
    if request.query_param("fragment") == Some("1") {
        return Ok(Response::html(200, live));
    }
    let before = request
        .query_param("before")
        .and_then(|b| b.parse::<i64>().ok());
    let history = ctx.store.alert_history(&HistoryQuery {
        host: (!filters.host.is_empty() && !filters.host.contains(['*', '?']))
            .then(|| filters.host.clone()),
        rule: (!filters.rule.is_empty()).then(|| filters.rule.clone()),
        before_id: before,
        limit: HISTORY_PAGE,
    })?;
    // "Silence…" on a row fills the form with that alert's host, rule and object.
    let from = request
        .query_param("silence")
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| view.rows.iter().find(|r| r.rec.id == id))
        .map(|r| r.rec.clone());
    let rules: Vec<String> = {
        let table = &ctx.alerts.config().rules;
        table.ids().map(|id| table.name(id).to_owned()).collect()
    };
    let query = filters.query();
    let live_url = if query.is_empty() {
        "/alerts?fragment=1".to_owned()
    } else {
        format!("/alerts?{query}&fragment=1")
    };
    let body = html! {
        h1 { "Alerts" }
        @if let Some(notice) = notice(request) { p.notice role="status" { (notice) } }
        (filter_form(&filters, &rules))
        div.alerts-page data-live=(live_url) { (live) }
        (history_section(&history, &filters, ctx, now))
        (silence_form(&rules, from.as_ref(), &csrf))
        (notifications_section(ctx, &csrf, now)?)
    };
    Ok(Response::html(200, page("Alerts", Nav::LoggedIn, body)))
}

/// What a form's redirect says happened (fixed texts only: nothing from the URL is shown).
fn notice(request: &Request) -> Option<String> {
    let id = request
        .query_param("id")
        .and_then(|i| i.parse::<i64>().ok())
        .unwrap_or(0);
    Some(match request.query_param("done")? {
        "ack" => format!("Alert {id} acknowledged: no reminders until it resolves."),
        "silence" => format!("Silence {id} added."),
        "unsilence" => format!("Silence {id} ended."),
        "not-firing" => format!("Alert {id} is not firing (any more); nothing to acknowledge."),
        "test" => "Test message sent; see its result in the notification channels below.".into(),
        _ => return None,
    })
}

/// The summary and the open alerts: what live refresh replaces.
fn live_part(view: &AlertView, filters: &Filters, csrf: &str, now: i64) -> Markup {
    let shown: Vec<&AlertRow> = view.rows.iter().filter(|r| filters.keeps(r, now)).collect();
    let firing: Vec<&AlertRow> = shown
        .iter()
        .copied()
        .filter(|r| r.rec.state == AlertState::Firing && !quiet(r, now))
        .collect();
    let quieted: Vec<&AlertRow> = shown
        .iter()
        .copied()
        .filter(|r| r.rec.state == AlertState::Firing && quiet(r, now))
        .collect();
    let pending: Vec<&AlertRow> = shown
        .iter()
        .copied()
        .filter(|r| r.rec.state == AlertState::Pending)
        .collect();
    let critical = firing
        .iter()
        .filter(|r| r.rec.severity == Severity::Critical)
        .count();
    html! {
        div id="alerts-live" {
            p.summary {
                @if firing.is_empty() {
                    span.ok { "Nothing firing" }
                } @else {
                    span.bad { (firing.len()) " firing" }
                    @if critical > 0 { " (" (critical) " critical)" }
                }
                " · " (quieted.len()) " quiet · " (pending.len()) " pending · "
                (view.silences.iter().filter(|s| s.active_at(now)).count()) " silences active"
            }
            section aria-labelledby="firing-title" {
                h2 id="firing-title" { "Firing " small { "(" (firing.len()) ")" } }
                @if firing.is_empty() {
                    p.muted { "No alert is firing." }
                } @else {
                    (alert_table("alerts-firing", &firing, csrf, now, true))
                }
            }
            @if !quieted.is_empty() {
                section aria-labelledby="quiet-title" {
                    h2 id="quiet-title" { "Silenced, suppressed or acknowledged " small { "(" (quieted.len()) ")" } }
                    (alert_table("alerts-quiet", &quieted, csrf, now, true))
                }
            }
            @if !pending.is_empty() {
                section aria-labelledby="pending-title" {
                    h2 id="pending-title" { "Pending " small { "(" (pending.len()) ")" } }
                    p.note { "The condition holds, not yet for as long as the rule's " em { "for" } " asks." }
                    (alert_table("alerts-pending", &pending, csrf, now, false))
                }
            }
            (silences_section(view, csrf, now))
        }
    }
}

fn severity_badge(severity: Severity, state: AlertState) -> Markup {
    let class = match (state, severity) {
        (AlertState::Pending, _) => "never",
        (_, Severity::Critical) => "offline",
        (_, Severity::Warning) => "degraded",
    };
    html! { span class={ "badge " (class) } data-k="severity" { (severity.as_str()) } }
}

fn object_cell(rec: &AlertRecord) -> Markup {
    html! {
        @if rec.object.is_empty() {
            "–"
        } @else {
            code { (rec.object) }
            @if let (Some(label), Some(_)) = (&rec.label, rec.guest) { " " small { (label) } }
        }
    }
}

fn notes(row: &AlertRow, now: i64) -> Markup {
    let r = &row.rec;
    html! {
        @if let Some(q) = &row.quiet { span.tag title="silenced" { (q.describe()) } " " }
        @if let Some(s) = &r.suppressed_by { span.tag title="suppressed: that alert says it all" { "under " (s) } " " }
        @if let Some(ack) = r.ack.as_ref().filter(|a| a.holds(now)) {
            span.tag title=(ack.comment.as_deref().unwrap_or("")) { "acked by " (ack.by) } " "
        }
        @if !r.live { span.tag title="seen only in samples replayed from the agent's spool" { "replayed" } }
    }
}

fn alert_table(id: &str, rows: &[&AlertRow], csrf: &str, now: i64, actions: bool) -> Markup {
    html! {
        div.scroll {
            table.sortable.alerts id=(id) {
                thead { tr {
                    th data-sort="text" { "Severity" }
                    th data-sort="text" { "Rule" }
                    th data-sort="text" { "Host" }
                    th data-sort="text" { "Object" }
                    th { "Summary" }
                    th.num data-sort="num" { "Since" }
                    th { "Notes" }
                    @if actions { th { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for row in rows {
                        @let r = &row.rec;
                        tr data-alert=(r.id) data-rule=(r.rule) data-state=(r.state.as_str()) {
                            td { (severity_badge(r.severity, r.state)) }
                            td { code { (r.rule) } }
                            td { a href={ "/hosts/" (r.host) } { (r.host) } }
                            td { (object_cell(r)) }
                            td data-k="summary" { (r.summary) }
                            td.num data-v=(now - r.since) { (time_ago(r.since, now)) }
                            td { (notes(row, now)) }
                            @if actions {
                                td.actions {
                                    @if r.state == AlertState::Firing && !row.acknowledged(now) {
                                        form.inline method="post" action="/alerts/ack" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="id" value=(r.id);
                                            button type="submit" data-action="ack" { "Acknowledge" }
                                        }
                                    }
                                    " "
                                    a href={ "/alerts?silence=" (r.id) "#new-silence" } data-action="silence" { "Silence…" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn silences_section(view: &AlertView, csrf: &str, now: i64) -> Markup {
    html! {
        section aria-labelledby="silences-title" {
            h2 id="silences-title" { "Silences and maintenance windows" }
            @if view.silences.is_empty() && view.windows.is_empty() {
                p.muted { "None. Silence an alert from its row, or with the form below." }
            }
            @if !view.silences.is_empty() {
                div.scroll { table.silences id="silences" {
                    thead { tr {
                        th { "ID" } th { "Matches" } th { "From" } th { "Until" } th { "By" }
                        th { "Comment" } th { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for s in &view.silences {
                            tr data-silence=(s.id) {
                                td { (s.id) }
                                td { code { (s.matchers.describe()) } }
                                td {
                                    @if s.active_at(now) { span.badge.online { "active" } " " }
                                    (format::utc(s.starts_at))
                                }
                                td { (format::utc(s.ends_at)) }
                                td { (s.created_by) }
                                td { (s.comment) }
                                td {
                                    form.inline method="post" action="/alerts/unsilence" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="id" value=(s.id);
                                        button type="submit" data-action="unsilence" { "End now" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            @if !view.windows.is_empty() {
                ul.windows {
                    @for w in &view.windows {
                        li {
                            strong { (w.name) } " — " (w.schedule) " · " code { (w.matchers) }
                            @if w.active { " " span.badge.degraded { "in maintenance now" } }
                        }
                    }
                }
                p.note { "Maintenance windows come from [[alerts.maintenance]] in the server's config." }
            }
        }
    }
}

/// Dead-lettered messages listed on the page.
const DEAD_LETTERS: usize = 20;

/// The notification channels (counts since the start, pending messages, the last test and a
/// "send test" button) and the dead-lettered messages.
fn notifications_section(ctx: &Context, csrf: &str, now: i64) -> Result<Markup> {
    let config = &ctx.config.notify;
    let pending = ctx.store.pending_messages()?;
    let dead = ctx.store.dead_letters(DEAD_LETTERS)?;
    let counts = ctx.notifier.counts();
    let tests = ctx.notifier.tests();
    let count = |name: &str, result: crate::notify::Tally| {
        counts
            .iter()
            .find(|(c, r, _)| c == name && *r == result)
            .map_or(0, |(_, _, n)| *n)
    };
    Ok(html! {
        section aria-labelledby="notify-title" {
            h2 id="notify-title" { "Notification channels" }
            @if config.channels.is_empty() {
                p.muted { "No channel is configured: events stay in the outbox. Add "
                    code { "[notify.channels.NAME]" } " to the server's config (see the README)." }
            } @else {
                div.scroll { table id="notify-channels" {
                    thead { tr {
                        th { "Channel" } th { "Type" } th { "Pending" } th { "Sent" }
                        th { "Failed attempts" } th { "Dead" } th { "Last test" }
                        th { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for (name, channel) in &config.channels {
                            tr data-channel=(name) {
                                td { (name) }
                                td { (channel.kind.type_name()) }
                                td { (pending.iter().find(|(c, _)| c == name).map_or(0, |(_, n)| *n)) }
                                td { (count(name, crate::notify::Tally::Sent)) }
                                td { (count(name, crate::notify::Tally::Failed)) }
                                td { (count(name, crate::notify::Tally::Dead)) }
                                td {
                                    @match tests.get(name) {
                                        None => span.muted { "—" },
                                        Some(t) => {
                                            @match &t.error {
                                                None => span.ok { "ok" },
                                                Some(e) => span.bad title=(e) { "failed: " (e) },
                                            }
                                            " " (time_ago(t.at, now))
                                        }
                                    }
                                }
                                td {
                                    form.inline method="post" action="/alerts/notify-test" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="channel" value=(name);
                                        button type="submit" data-action="notify-test" { "Send test" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            h3 { "Dead letters" }
            @if dead.is_empty() {
                p.muted { "None: every message was accepted or is still being tried." }
            } @else {
                p.note { "Messages given up after " (config.max_attempts)
                    " attempts, or refused by the receiver. The server log has each attempt." }
                div.scroll { table id="notify-dead" {
                    thead { tr {
                        th { "Message" } th { "Channel" } th { "Host" } th { "Events" }
                        th { "Attempts" } th { "Last error" } th { "Given up" }
                    } }
                    tbody {
                        @for d in &dead {
                            tr {
                                td { "notify/" (d.id) }
                                td { (d.channel) }
                                td { (d.host) }
                                td { @for k in &d.keys { code { (k) } " " } }
                                td { (d.attempts) }
                                td { (d.last_error) }
                                td { (format::utc(d.finished_at)) }
                            }
                        }
                    }
                } }
            }
        }
    })
}

fn history_section(history: &[AlertRecord], filters: &Filters, ctx: &Context, now: i64) -> Markup {
    let rules = &ctx.alerts.config().rules;
    let older = (history.len() == HISTORY_PAGE)
        .then(|| history.last().map(|a| a.id))
        .flatten();
    let query = filters.query();
    html! {
        section aria-labelledby="history-title" {
            h2 id="history-title" { "History" }
            @if history.is_empty() {
                p.muted { "No resolved alerts." }
            } @else {
                div.scroll { table.sortable.alerts id="alerts-history" {
                    thead { tr {
                        th data-sort="text" { "Severity" }
                        th data-sort="text" { "Rule" }
                        th data-sort="text" { "Host" }
                        th data-sort="text" { "Object" }
                        th { "Summary" }
                        th.num data-sort="num" { "Started" }
                        th.num data-sort="num" { "Lasted" }
                        th { "Notes" }
                    } }
                    tbody {
                        @for a in history {
                            @let lasted = a.resolved_at.unwrap_or(now) - a.since;
                            tr data-alert=(a.id) data-rule=(a.rule) data-state="resolved" {
                                td { (severity_badge(a.severity, a.state)) }
                                td { code { (a.rule) } }
                                td { (a.host) }
                                td { (object_cell(a)) }
                                td { (crate::alerts::summary::summary(rules, a)) }
                                td.num data-v=(now - a.since) { (time_ago(a.since, now)) }
                                td.num data-v=(lasted) { (format::duration(lasted)) }
                                td {
                                    @if let Some(r) = &a.resolution { span.tag { (r) } " " }
                                    @if !a.live { span.tag title="fired and resolved inside samples replayed from the agent's spool; never announced" { "replayed" } " " }
                                    @if let Some(ack) = &a.ack { span.tag { "acked by " (ack.by) } }
                                }
                            }
                        }
                    }
                } }
                @if let Some(id) = older {
                    p { a href={ "/alerts?" (query) (if query.is_empty() { "" } else { "&" }) "before=" (id) "#history-title" } { "Older →" } }
                }
            }
        }
    }
}

fn filter_form(filters: &Filters, rules: &[String]) -> Markup {
    html! {
        form.filters method="get" action="/alerts" role="search" {
            label { "Host " input type="search" name="host" value=(filters.host) placeholder="name or glob" autocomplete="off"; }
            label {
                "Rule "
                select name="rule" {
                    option value="" { "any" }
                    @for r in rules { option value=(r) selected[filters.rule == *r] { (r) } }
                }
            }
            label {
                "Severity "
                select name="severity" {
                    @for (v, t) in [("", "any"), ("critical", "critical"), ("warning", "warning")] {
                        option value=(v) selected[filters.severity == v] { (t) }
                    }
                }
            }
            label {
                "State "
                select name="state" {
                    @for (v, t) in [("", "all open"), ("firing", "firing"), ("quiet", "silenced, suppressed, acked"), ("pending", "pending")] {
                        option value=(v) selected[filters.state == v] { (t) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

fn silence_form(rules: &[String], from: Option<&AlertRecord>, csrf: &str) -> Markup {
    let host = from.map_or("", |a| a.host.as_str());
    let rule = from.map_or("", |a| a.rule.as_str());
    let object = from.map_or("", |a| a.object.as_str());
    html! {
        section.card id="new-silence" aria-labelledby="new-silence-title" {
            h2 id="new-silence-title" { "New silence" }
            p.note { "A silenced alert is still listed and still resolves; it is only not announced. Every field set must match." }
            form.silence method="post" action="/alerts/silence" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Host (name or glob) " input type="text" name="host" value=(host) required autocomplete="off"; }
                label {
                    "Rule "
                    select name="rule" {
                        option value="" { "any rule" }
                        @for r in rules { option value=(r) selected[rule == r] { (r) } }
                    }
                }
                label { "Object " input type="text" name="object" value=(object) placeholder="vmid, mount point, pool, …" autocomplete="off"; }
                label { "Guest (vmid) " input type="number" name="guest" min="1" autocomplete="off"; }
                label { "Guest tag " input type="text" name="tag" autocomplete="off"; }
                label {
                    "For "
                    select name="duration" {
                        @for (text, seconds) in DURATIONS {
                            option value=(seconds) selected[seconds == 7200] { (text) }
                        }
                    }
                }
                label.wide { "Comment (why) " input type="text" name="comment" required maxlength="500" autocomplete="off"; }
                button type="submit" data-action="add-silence" { "Silence" }
            }
        }
    }
}

/// `POST /alerts/ack|silence|unsilence` by `user`.
pub fn post(ctx: &Context, request: &Request, user: &str, action: &str) -> Result<Response> {
    let form = form_params(&request.body);
    if !session::form_allowed(request, &form) {
        return Ok(Response::text(
            403,
            "this form did not come from this dashboard (reload the page and try again)\n",
        ));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    };
    let now = common::time::now_unix();
    let bad = |message: &str| Ok(Response::text(400, format!("{message}\n")));
    let location = match action {
        "ack" => {
            let Ok(id) = field("id").parse::<i64>() else {
                return bad("id: not an alert id");
            };
            let comment = Some(field("comment")).filter(|c| !c.is_empty());
            match ctx.store.acknowledge_alert(id, user, comment, None, now)? {
                AckOutcome::Acknowledged => format!("/alerts?done=ack&id={id}"),
                AckOutcome::NotFound | AckOutcome::NotFiring(_) => {
                    format!("/alerts?done=not-firing&id={id}")
                }
            }
        }
        "silence" => {
            let host = field("host");
            let comment = field("comment");
            if host.is_empty() || comment.is_empty() {
                return bad("a silence needs a host (or glob) and a comment");
            }
            let Some(seconds) = field("duration")
                .parse::<i64>()
                .ok()
                .filter(|s| (60..=30 * 86400).contains(s))
            else {
                return bad("duration: seconds from 60 to 30 days");
            };
            let opt = |name: &str| Some(field(name).to_owned()).filter(|v| !v.is_empty());
            let rule = opt("rule");
            if let Some(rule) = &rule {
                if ctx.alerts.config().rules.id(rule).is_none() {
                    return bad("rule: no such rule");
                }
            }
            let guest = match opt("guest") {
                None => None,
                Some(text) => match text.parse::<u32>() {
                    Ok(v) => Some(v),
                    Err(_) => return bad("guest: a vmid is a number"),
                },
            };
            let id = ctx.store.add_silence(
                &NewSilence {
                    host: Some(host.to_owned()),
                    guest,
                    rule,
                    tag: opt("tag"),
                    object: opt("object"),
                    starts_at: now,
                    ends_at: now + seconds,
                    comment: comment.chars().take(500).collect(),
                    created_by: user.to_owned(),
                },
                now,
            )?;
            format!("/alerts?done=silence&id={id}")
        }
        "notify-test" => {
            let channel = field("channel");
            if ctx.config.notify.channel(channel).is_none() {
                return bad("channel: no such notification channel");
            }
            match ctx.notifier.test(&ctx.config.notify, channel, now) {
                Ok(()) => {
                    log::info!("notifications: test message through {channel} sent by {user}")
                }
                Err(e) => log::warn!("notifications: test message through {channel} failed: {e}"),
            }
            return Ok(Response::new(303, "text/plain; charset=utf-8", "done\n")
                .with_header("Location", "/alerts?done=test#notify-title"));
        }
        "unsilence" => {
            let Ok(id) = field("id").parse::<i64>() else {
                return bad("id: not a silence id");
            };
            ctx.store.end_silence(id, now)?;
            format!("/alerts?done=unsilence&id={id}")
        }
        _ => return Ok(Response::text(404, "not found\n")),
    };
    // The alert thread loads the change before the page is shown again.
    ctx.alerts.reload(std::time::Duration::from_secs(2));
    Ok(Response::new(303, "text/plain; charset=utf-8", "done\n").with_header("Location", location))
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A host's alerts, for the host page: a badge per open alert, linking to the Alerts page.
pub fn host_alerts(view: &AlertView, host: &str, now: i64) -> Markup {
    let rows: Vec<&AlertRow> = view.rows.iter().filter(|r| r.rec.host == host).collect();
    html! {
        section id="host-alerts" {
            @if !rows.is_empty() {
                h2 { "Alerts " small { "(" (rows.len()) ")" } }
                ul.host-alerts {
                    @for r in &rows {
                        li data-alert=(r.rec.id) {
                            (severity_badge(r.rec.severity, r.rec.state)) " "
                            @if r.rec.state == AlertState::Pending { span.tag { "pending" } " " }
                            code { (r.rec.rule) } " " (r.rec.summary) " · " (time_ago(r.rec.since, now))
                            " " (notes(r, now))
                        }
                    }
                }
                p { a href={ "/alerts?host=" (encode(host)) } { "All alerts of " (host) " →" } }
            }
        }
    }
}

/// The badge of a host's or guest's firing alerts: "2 alerts", coloured by the worst.
pub fn alert_badge(critical: usize, warning: usize) -> Markup {
    let n = critical + warning;
    html! {
        @if n > 0 {
            @let class = if critical > 0 { "offline" } else { "degraded" };
            span class={ "badge alert " (class) } data-k="alerts" title="firing alerts" {
                (n) @if n == 1 { " alert" } @else { " alerts" }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alerts::quiet::QuietReason;
    use crate::store::alerts::Ack;

    fn row(id: i64, rule: &str, host: &str, state: AlertState, severity: Severity) -> AlertRow {
        AlertRow {
            rec: AlertRecord {
                id,
                rule: rule.into(),
                host_id: 1,
                host: host.into(),
                object: "<b>".into(),
                guest: None,
                label: None,
                state,
                severity,
                value: Some(1.0),
                threshold: None,
                summary: "it is <bad>".into(),
                since: 100,
                fired_at: Some(100),
                changed_at: 100,
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
        }
    }

    fn view() -> AlertView {
        let mut silenced = row(3, "cpu_high", "pve2", AlertState::Firing, Severity::Warning);
        silenced.quiet = Some(QuietReason::Silence(9));
        let mut acked = row(4, "fs_full", "pve2", AlertState::Firing, Severity::Warning);
        acked.rec.ack = Some(Ack {
            at: 150,
            by: "admin".into(),
            comment: None,
            expires_at: None,
        });
        AlertView::new(
            200,
            vec![
                row(
                    1,
                    "pool_unhealthy",
                    "pve1",
                    AlertState::Firing,
                    Severity::Critical,
                ),
                row(
                    2,
                    "cpu_high",
                    "pve1",
                    AlertState::Pending,
                    Severity::Warning,
                ),
                silenced,
                acked,
            ],
            Vec::new(),
            Vec::new(),
        )
    }

    fn ids(html: &str, table: &str) -> Vec<String> {
        let Some(start) = html.find(&format!("id=\"{table}\"")) else {
            return Vec::new();
        };
        let end = html[start..].find("</table>").unwrap() + start;
        html[start..end]
            .split("data-alert=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_owned())
            .collect()
    }

    #[test]
    fn firing_quiet_and_pending_are_apart_and_filters_apply() {
        let html = live_part(&view(), &Filters::default(), "tok", 200).into_string();
        assert_eq!(ids(&html, "alerts-firing"), ["1"]);
        assert_eq!(ids(&html, "alerts-quiet"), ["3", "4"]);
        assert_eq!(ids(&html, "alerts-pending"), ["2"]);
        assert!(html.contains("1 firing</span> (1 critical)"));
        assert!(html.contains("silence 9") && html.contains("acked by admin"));
        // Only firing, unacknowledged alerts get the acknowledge button.
        assert_eq!(html.matches("data-action=\"ack\"").count(), 2);
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
        assert!(!html.contains("<bad>") && !html.contains("<b>"), "escaped");
        let filters = Filters {
            host: "pve2".into(),
            state: "quiet".into(),
            ..Filters::default()
        };
        let html = live_part(&view(), &filters, "tok", 200).into_string();
        assert_eq!(ids(&html, "alerts-quiet"), ["3", "4"]);
        assert!(ids(&html, "alerts-firing").is_empty());
        assert_eq!(filters.query(), "host=pve2&state=quiet");
    }

    #[test]
    fn badges_count_firing_alerts_per_host() {
        let v = view();
        assert_eq!(v.host("pve1").critical, 1);
        assert_eq!(v.host("pve1").pending, 1);
        assert_eq!(v.host("pve2").warning, 2);
        assert_eq!(v.host("pve2").quiet, 2);
        let badge = alert_badge(1, 1).into_string();
        assert!(badge.contains("2 alerts") && badge.contains("offline"));
        assert_eq!(alert_badge(0, 0).into_string(), "");
    }
}
