//! The tables of a host page, from its newest samples: guests (with their backup's age), ZFS
//! pools, storages, disks, the operational tables of `operations` (SMART, temperatures, HA,
//! replication), network interfaces, filesystems, and what the agent could not read.
//!
//! Sortable tables mark their headings `data-sort="num|text"` and numeric cells `data-v` (the
//! raw number, -1 when unknown); the page script only reorders rows.

use common::sample::{GuestFast, GuestType};
use maud::{html, Markup};

use super::alerts::alert_badge;
use super::backups as backup_page;
use super::parts::{guest_status_badge, pool_badge};
use crate::alerts::AlertView;
use crate::alerts::AlertsConfig;
use crate::backups::{BackupRow, BackupStatus};
use crate::http::format::{self, bytes_u64, or_dash, to_f64};
use crate::state::HostState;
use crate::store::alerts::Severity;

/// Every table of the host page, in order; guests carry the badge of their firing alerts and
/// their backup's age, judged by `alerts_config`'s `backup_stale` threshold.
pub fn all(
    state: &HostState,
    alerts: &AlertView,
    alerts_config: &AlertsConfig,
    now: i64,
) -> Markup {
    let backups = crate::backups::host_rows(state, alerts_config, now);
    html! {
        (guests(state, alerts, &backups, now))
        (pools(state))
        (storages(state))
        (disks(state))
        (super::operations::all(state, now))
        (network(state))
        (filesystems(state))
        (errors(state))
    }
}

/// A guest's backup cell: red when failed or stale, amber when no job covers it.
fn backup_cell_class(status: BackupStatus) -> &'static str {
    match status {
        BackupStatus::Failed | BackupStatus::Stale => "bad",
        BackupStatus::NotCovered => "warn",
        _ => "",
    }
}

/// "12.3 GiB (42 %)" of `part` in `whole`.
fn used_with_share(part: Option<u64>, whole: Option<u64>) -> Markup {
    html! {
        @match (part, whole) {
            (Some(p), Some(w)) if w > 0 => {
                (bytes_u64(p)) " " small { "(" (format!("{:.0}", to_f64(p) / to_f64(w) * 100.0)) " %)" }
            }
            (Some(p), _) => (bytes_u64(p)),
            _ => "–",
        }
    }
}

/// A numeric cell that sorts by `value` (-1 when unknown).
fn num_cell(key: &str, value: Option<f64>, text: Markup) -> Markup {
    html! {
        td.num data-v=(value.unwrap_or(-1.0)) { span data-k=(key) { (text) } }
    }
}

pub fn guests(
    state: &HostState,
    alerts: &AlertView,
    backups: &[BackupRow<'_>],
    now: i64,
) -> Markup {
    let mut guests: Vec<&GuestFast> = state
        .fast()
        .map(|f| f.guests.iter().collect())
        .unwrap_or_default();
    guests.sort_by_key(|g| g.vmid);
    let rate = |v: Option<f64>| html! { (or_dash(v, format::rate)) };
    html! {
        section {
            h2 { "Guests " small { "(" (guests.len()) ")" } }
            @if guests.is_empty() {
                p.muted { "No guests reported." }
            } @else {
                div.scroll {
                    table.sortable.guests id="guests" {
                        thead { tr {
                            th data-sort="num" { "ID" }
                            th data-sort="text" { "Name" }
                            th data-sort="text" { "Type" }
                            th data-sort="text" { "Status" }
                            th.num data-sort="num" { "CPU" }
                            th.num data-sort="num" { "Memory" }
                            th.num data-sort="num" { "Disk read" }
                            th.num data-sort="num" { "Disk write" }
                            th.num data-sort="num" { "Net in" }
                            th.num data-sort="num" { "Net out" }
                            th.num data-sort="num" { "Uptime" }
                            @if !backups.is_empty() { th.num data-sort="num" { "Last backup" } }
                        } }
                        tbody {
                            @for g in &guests {
                                @let config = state.guest_config(g.vmid);
                                @let name = g.name.as_deref().or(config.map(|c| c.name.as_str())).unwrap_or("");
                                @let limit = g.mem_limit_bytes.or(config.and_then(|c| c.memory_bytes));
                                tr data-guest=(g.vmid) {
                                    td data-v=(g.vmid) { (g.vmid) }
                                    td {
                                        (name)
                                        @for tag in config.map(|c| c.tags.as_slice()).unwrap_or_default() {
                                            " " span.tag { (tag) }
                                        }
                                    }
                                    td { (match g.kind { GuestType::Qemu => "VM", GuestType::Lxc => "CT", GuestType::Unknown => "?" }) }
                                    td {
                                        (guest_status_badge(g.status))
                                        @match alerts.guest(state.name(), g.vmid) {
                                            Some(Severity::Critical) => { " " (alert_badge(1, 0)) },
                                            Some(Severity::Warning) => { " " (alert_badge(0, 1)) },
                                            None => {},
                                        }
                                    }
                                    (num_cell("cpu_percent", g.cpu_percent, html! { (or_dash(g.cpu_percent, format::percent)) }))
                                    (num_cell("mem_used_bytes", g.mem_used_bytes.map(to_f64), html! {
                                        (or_dash(g.mem_used_bytes, bytes_u64))
                                        @if let Some(limit) = limit { " " small { "/ " (bytes_u64(limit)) } }
                                    }))
                                    (num_cell("disk_read_bytes_per_s", g.disk_read_bytes_per_s, rate(g.disk_read_bytes_per_s)))
                                    (num_cell("disk_write_bytes_per_s", g.disk_write_bytes_per_s, rate(g.disk_write_bytes_per_s)))
                                    (num_cell("net_in_bytes_per_s", g.net_in_bytes_per_s, rate(g.net_in_bytes_per_s)))
                                    (num_cell("net_out_bytes_per_s", g.net_out_bytes_per_s, rate(g.net_out_bytes_per_s)))
                                    (num_cell("uptime_seconds", g.uptime_seconds.map(to_f64), html! { (or_dash(g.uptime_seconds, format::duration_u64)) }))
                                    @if !backups.is_empty() {
                                        @match backups.binary_search_by_key(&g.vmid, |b| b.vmid).ok().map(|i| &backups[i]) {
                                            Some(b) => {
                                                td.num class=(backup_cell_class(b.status)) data-v=(backup_page::age_sort_value(b)) data-k="backup_age" {
                                                    (backup_page::age(b, now))
                                                    @if b.status != BackupStatus::Ok { " " (backup_page::status_badge(b.status)) }
                                                }
                                            },
                                            None => td.num data-v="-1" { "–" },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p.note { "Click a column heading to sort." }
            }
        }
    }
}

pub fn pools(state: &HostState) -> Markup {
    let pools = state
        .medium()
        .map(|m| m.pools.as_slice())
        .unwrap_or_default();
    html! {
        section {
            h2 { "ZFS pools" }
            @if pools.is_empty() {
                p.muted { "No ZFS pools reported." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th { "Pool" } th { "Health" } th.num { "Size" } th.num { "Allocated" }
                        th.num { "Free" } th.num { "Fragmentation" } th.num { "Dedup" }
                    } }
                    tbody {
                        @for pool in pools {
                            tr.row-bad[!pool.health.is_online()] {
                                td { (pool.name) }
                                td { (pool_badge(&pool.health)) }
                                td.num { (or_dash(pool.size_bytes, bytes_u64)) }
                                td.num { (used_with_share(pool.alloc_bytes, pool.size_bytes)) }
                                td.num { (or_dash(pool.free_bytes, bytes_u64)) }
                                td.num { (or_dash(pool.frag_percent, |p| format!("{p:.0} %"))) }
                                td.num { (or_dash(pool.dedup_ratio, |d| format!("{d:.2}×"))) }
                            }
                            @if let Some(details) = &pool.status_details {
                                tr.row-bad { td colspan="7" { pre.details { (details) } } }
                            }
                        }
                    }
                } }
            }
        }
    }
}

pub fn storages(state: &HostState) -> Markup {
    let storages = state
        .medium()
        .map(|m| m.storages.as_slice())
        .unwrap_or_default();
    html! {
        @if !storages.is_empty() {
            section {
                h2 { "Storages" }
                div.scroll { table {
                    thead { tr {
                        th { "Storage" } th { "Type" } th { "Content" } th { "State" }
                        th.num { "Used" } th.num { "Total" } th.num { "Available" }
                    } }
                    tbody {
                        @for s in storages {
                            tr {
                                td { (s.id) @if s.shared { " " span.tag { "shared" } } }
                                td { (s.kind) }
                                td { (s.content.as_deref().unwrap_or("")) }
                                td {
                                    @match (s.enabled, s.active) {
                                        (false, _) => span.badge.stopped { "disabled" },
                                        (true, Some(true)) => span.badge.online { "active" },
                                        (true, Some(false)) => span.badge.offline { "inactive" },
                                        (true, None) => span.muted { "unknown" },
                                    }
                                }
                                td.num { (used_with_share(s.used_bytes, s.total_bytes)) }
                                td.num { (or_dash(s.total_bytes, bytes_u64)) }
                                td.num { (or_dash(s.avail_bytes, bytes_u64)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

pub fn disks(state: &HostState) -> Markup {
    let disks = state.fast().map(|f| f.disks.as_slice()).unwrap_or_default();
    let iops = |v: f64| format!("{v:.0}");
    html! {
        @if !disks.is_empty() {
            section {
                h2 { "Disks" }
                div.scroll { table {
                    thead { tr {
                        th { "Device" } th.num { "Read" } th.num { "Write" } th.num { "Read IOPS" }
                        th.num { "Write IOPS" } th.num { "Busy" }
                    } }
                    tbody {
                        @for d in disks {
                            tr {
                                td { (d.name) }
                                td.num { (or_dash(d.read_bytes_per_s, format::rate)) }
                                td.num { (or_dash(d.write_bytes_per_s, format::rate)) }
                                td.num { (or_dash(d.read_iops, iops)) }
                                td.num { (or_dash(d.write_iops, iops)) }
                                td.num { (or_dash(d.busy_percent, format::percent)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

pub fn network(state: &HostState) -> Markup {
    let net = state.fast().map(|f| f.net.as_slice()).unwrap_or_default();
    html! {
        @if !net.is_empty() {
            section {
                h2 { "Network interfaces" }
                div.scroll { table {
                    thead { tr {
                        th { "Interface" } th.num { "Received" } th.num { "Sent" }
                        th.num { "Errors (rx/tx)" } th.num { "Dropped (rx/tx)" }
                    } }
                    tbody {
                        @for n in net {
                            tr {
                                td { (n.name) @if n.bridge { " " span.tag { "bridge" } } }
                                td.num { (or_dash(n.rx_bytes_per_s, format::rate)) }
                                td.num { (or_dash(n.tx_bytes_per_s, format::rate)) }
                                td.num { (n.rx_errors) " / " (n.tx_errors) }
                                td.num { (n.rx_dropped) " / " (n.tx_dropped) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

pub fn filesystems(state: &HostState) -> Markup {
    let filesystems = state
        .medium()
        .map(|m| m.filesystems.as_slice())
        .unwrap_or_default();
    html! {
        @if !filesystems.is_empty() {
            section {
                h2 { "Filesystems" }
                div.scroll { table {
                    thead { tr {
                        th { "Mount point" } th { "Device" } th { "Type" } th.num { "Used" }
                        th.num { "Size" } th.num { "Available" }
                    } }
                    tbody {
                        @for f in filesystems {
                            tr {
                                td { (f.mountpoint) }
                                td { (f.device) }
                                td { (f.fstype) }
                                td.num { (used_with_share(f.used_bytes, f.size_bytes)) }
                                td.num { (or_dash(f.size_bytes, bytes_u64)) }
                                td.num { (or_dash(f.avail_bytes, bytes_u64)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// What the agent could not read, so that a missing table has an explanation.
pub fn errors(state: &HostState) -> Markup {
    let errors: Vec<_> = [
        state.fast().map(|s| s.errors.as_slice()),
        state.medium().map(|s| s.errors.as_slice()),
        state.slow().map(|s| s.errors.as_slice()),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect();
    html! {
        @if !errors.is_empty() {
            section {
                h2 { "Collector errors" }
                ul.errors {
                    @for err in &errors {
                        li { code { (err.source) } ": " (err.message) }
                    }
                }
            }
        }
    }
}
