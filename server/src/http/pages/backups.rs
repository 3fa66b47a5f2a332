//! `/backups`: every guest of every host with the age of its last good backup, its last result
//! and its jobs — red when the last backup failed or the last good one is older than the
//! `backup_stale` threshold, amber when no job covers the guest. `?host=NAME` narrows it to one
//! host; `?fragment=1` gives the live part (`#backups`) alone. Past `ALL_ROWS_UP_TO` guests only
//! the ones that need a look are listed (every guest with `?all=1`): a 1000-node fleet has
//! 30 000 guests, and a table of them all helps nobody and costs megabytes every refresh.

use maud::{html, Markup};

use super::layout::{page, Nav};
use super::parts::time_ago;
use crate::backups::{self, BackupRow, BackupStatus};
use crate::context::Context;
use crate::http::format::{self, bytes_u64, or_dash, to_f64};
use crate::http::{Request, Response};

/// Up to this many guests, every one is listed by default.
pub const ALL_ROWS_UP_TO: usize = 500;

/// `GET /backups`.
pub fn page_or_fragment(ctx: &Context, request: &Request) -> Response {
    let now = common::time::now_unix();
    let host = request
        .query_param_decoded("host")
        .filter(|h| !h.is_empty());
    let host = host.as_deref();
    let hosts: Vec<_> = ctx
        .hosts
        .snapshot()
        .into_iter()
        .filter(|h| host.map_or(true, |name| h.name() == name))
        .collect();
    let rows = backups::cluster_rows_unsorted(&hosts, ctx.alerts.config(), now);
    let all = request.query_param("all") == Some("1");
    let all_link = match host {
        Some(h) => format!("/backups?host={}&all=1", percent_encode(h)),
        None => "/backups?all=1".to_owned(),
    };
    let live = live_part(&rows, all || rows.len() <= ALL_ROWS_UP_TO, &all_link, now);
    if request.query_param("fragment") == Some("1") {
        return Response::html(200, live);
    }
    let mut url = match host {
        Some(h) => format!("/backups?host={}&fragment=1", percent_encode(h)),
        None => "/backups?fragment=1".to_owned(),
    };
    if all {
        url.push_str("&all=1");
    }
    let body = html! {
        div.backups-page data-live=(url) {
            h1 {
                "Backups"
                @if let Some(h) = host { " " small { "of " (h) " · " a href="/backups" { "all hosts" } } }
            }
            (live)
        }
    };
    Response::html(200, page("Backups", Nav::LoggedIn, body))
}

/// The status badge of a backup row.
pub fn status_badge(status: BackupStatus) -> Markup {
    let (class, text, title) = match status {
        BackupStatus::Failed => ("offline", "failed", "the last backup failed"),
        BackupStatus::Stale => (
            "offline",
            "stale",
            "the last good backup is older than the backup_stale threshold",
        ),
        BackupStatus::NotCovered => ("degraded", "no job", "no enabled backup job covers it"),
        BackupStatus::Running => ("online", "running", "a backup runs now"),
        BackupStatus::Ok => ("online", "ok", "backed up within the threshold"),
        BackupStatus::Unknown => ("stopped", "unknown", "the jobs could not be read"),
    };
    html! { span class={ "badge " (class) } title=(title) data-k="backup_status" { (text) } }
}

/// The row's class: red for failed and stale, amber for no job.
pub fn row_class(status: BackupStatus) -> Option<&'static str> {
    match status {
        BackupStatus::Failed | BackupStatus::Stale => Some("row-bad"),
        BackupStatus::NotCovered => Some("row-warn"),
        _ => None,
    }
}

/// What an age column sorts by: seconds, "never" after every age.
pub fn age_sort_value(row: &BackupRow<'_>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    row.age_seconds.map_or(f64::MAX, |a| a as f64)
}

/// "2h 5m ago" for a last good backup, or "never".
pub fn age(row: &BackupRow<'_>, now: i64) -> Markup {
    html! {
        @match row.last_success {
            Some(s) => (time_ago(i64::try_from(s.end_time).unwrap_or(i64::MAX), now)),
            None => span.muted { "never" },
        }
    }
}

fn live_part(rows: &[BackupRow<'_>], every_row: bool, all_link: &str, now: i64) -> Markup {
    let counts = backups::counts(rows);
    let needs_a_look =
        |r: &&BackupRow<'_>| !matches!(r.status, BackupStatus::Ok | BackupStatus::Running);
    let mut shown: Vec<&BackupRow<'_>> = if every_row {
        rows.iter().collect()
    } else {
        rows.iter().filter(needs_a_look).collect()
    };
    shown.sort_by(|a, b| backups::row_order(a, b));
    let hidden = rows.len() - shown.len();
    html! {
        section id="backups" {
            p.sub {
                (rows.len()) " guests"
                @for (status, n) in counts {
                    @if n > 0 { " · " (status_badge(status)) " " (n) }
                }
                @if hidden > 0 {
                    " · " (hidden) " fine ones not listed: " a href=(all_link) { "list all" }
                }
            }
            @if shown.is_empty() && hidden > 0 {
                p.muted { "Every guest was backed up within its threshold." }
            } @else if rows.is_empty() {
                p.muted { "No backups reported yet: agents report them with their medium sample." }
            } @else {
                div.scroll {
                    table.sortable.backups id="backups-table" {
                        thead { tr {
                            th data-sort="text" { "Host" }
                            th data-sort="num" { "ID" }
                            th data-sort="text" { "Name" }
                            th data-sort="text" { "Type" }
                            th data-sort="text" { "Status" }
                            th.num data-sort="num" { "Last good backup" }
                            th.num data-sort="num" { "Duration" }
                            th.num data-sort="num" { "Size" }
                            th data-sort="text" { "Storage" }
                            th data-sort="text" { "Last failure" }
                            th data-sort="text" { "Jobs" }
                        } }
                        tbody {
                            @for r in &shown {
                                (row(r, now))
                            }
                        }
                    }
                }
                p.note {
                    "Red: the last backup failed, or the last good one is older than the "
                    code { "backup_stale" } " threshold (26 h unless configured). Amber: no enabled job covers the guest. Click a column heading to sort."
                }
            }
        }
    }
}

fn row(r: &BackupRow<'_>, now: i64) -> Markup {
    let success = r.last_success;
    let kind = match r.kind {
        common::sample::GuestType::Qemu => "VM",
        common::sample::GuestType::Lxc => "CT",
        common::sample::GuestType::Unknown => "?",
    };
    let age_value = age_sort_value(r);
    html! {
        tr class=[row_class(r.status)] data-host=(r.host) data-guest=(r.vmid) {
            td { a href={ "/hosts/" (r.host) } { (r.host) } }
            td data-v=(r.vmid) { (r.vmid) }
            td { (r.name.unwrap_or("")) }
            td { (kind) }
            td data-v=(r.status.as_str()) { (status_badge(r.status)) }
            td.num data-v=(age_value) title={ "threshold " (r.threshold_hours) " h" } { (age(r, now)) }
            td.num data-v=(success.and_then(|s| s.duration_seconds).map_or(-1.0, to_f64)) {
                (or_dash(success.and_then(|s| s.duration_seconds), format::duration_u64))
            }
            td.num data-v=(success.and_then(|s| s.size_bytes).map_or(-1.0, to_f64)) {
                (or_dash(success.and_then(|s| s.size_bytes), bytes_u64))
            }
            td { (success.and_then(|s| s.storage.as_deref()).unwrap_or("–")) }
            td.failure {
                @if let Some(f) = r.last_failure {
                    (time_ago(i64::try_from(f.end_time).unwrap_or(i64::MAX), now)) ": "
                    span.error-text { (f.message) }
                } @else { "–" }
            }
            td { (jobs(r)) }
        }
    }
}

/// The jobs covering a guest: id and schedule, or why there are none.
pub fn jobs(r: &BackupRow<'_>) -> Markup {
    html! {
        @match r.jobs() {
            None => span.muted { "unknown" },
            Some(jobs) if jobs.is_empty() => span.warn { "none" },
            Some(jobs) => {
                @for (i, j) in jobs.iter().enumerate() {
                    @if i > 0 { ", " }
                    span title=(j.selection) { (j.id) }
                    @if let Some(s) = &j.schedule { " " small { "(" (s) ")" } }
                    @if let Some(run) = &j.last_run {
                        @if let Some(status) = &run.status { " " small.muted { (status) } }
                    }
                }
            }
        }
    }
}

/// Enough of percent-encoding for a host name in a query string.
fn percent_encode(text: &str) -> String {
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
    use super::*;
    use common::sample::{BackupRun, GuestType};

    fn row(vmid: u32, status: BackupStatus) -> BackupRow<'static> {
        static RUN: BackupRun = BackupRun {
            end_time: 1000,
            duration_seconds: Some(61),
            size_bytes: Some(1 << 30),
            storage: None,
            archive: None,
            upid: None,
        };
        BackupRow {
            host: "pve1",
            vmid,
            kind: GuestType::Lxc,
            name: Some("<b>x</b>"),
            status,
            age_seconds: Some(3600),
            threshold_hours: 26.0,
            last_success: Some(&RUN),
            last_failure: None,
            running: false,
            job_refs: crate::backups::JobRefs {
                ids: Some(&[]),
                all: &[],
            },
        }
    }

    #[test]
    fn rows_are_coloured_escaped_and_a_big_fleet_lists_only_what_needs_a_look() {
        let rows = vec![
            row(100, BackupStatus::Failed),
            row(101, BackupStatus::NotCovered),
            row(102, BackupStatus::Ok),
        ];
        let html = live_part(&rows, true, "/backups?all=1", 4600).into_string();
        assert!(html.contains("class=\"row-bad\" data-host=\"pve1\" data-guest=\"100\""));
        assert!(html.contains("class=\"row-warn\" data-host=\"pve1\" data-guest=\"101\""));
        assert!(html.contains("<tr data-host=\"pve1\" data-guest=\"102\">"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "names are escaped");
        assert!(html.contains("1h 0m ago"), "{html}");
        assert!(html.contains("1m 1s") && html.contains("1.00 GiB"));
        let html = live_part(&rows, false, "/backups?host=pve1&amp;all=1", 4600).into_string();
        assert!(!html.contains("data-guest=\"102\""));
        assert!(html.contains("1 fine ones not listed"));
        let fine = vec![row(102, BackupStatus::Ok)];
        let html = live_part(&fine, false, "/backups?all=1", 4600).into_string();
        assert!(html.contains("Every guest was backed up within its threshold."));
    }
}
