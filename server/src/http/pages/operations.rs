//! The host page's tables of a node's operational state: disks with their SMART health,
//! temperatures, HA and replication. Each is shown only when the node reports something for
//! it; a row is red where the matching alert rule would fire (`alerts::engine::operations`
//! gives the verdicts), so page and alerts agree.

use common::sample::{HaStatus, ReplicationJob, SmartDisk, Temperature};
use maud::{html, Markup};

use super::parts::time_ago;
use crate::alerts::engine::operations::{ha_state_severity, sensor_levels, smart_degradation};
use crate::alerts::rules::Builtin;
use crate::http::format::{self, bytes_u64, celsius, or_dash};
use crate::state::HostState;

/// The four tables, in order.
pub fn all(state: &HostState, now: i64) -> Markup {
    html! {
        (smart(state))
        (temperatures(state))
        (ha(state, now))
        (replication(state, now))
    }
}

/// `PASSED`/`FAILED`/`standby` as a badge.
fn health_badge(d: &SmartDisk) -> Markup {
    html! {
        @if d.standby {
            span.badge.stopped title="asleep: left so (smartctl -n standby)" { "standby" }
        } @else {
            @match d.passed {
                Some(true) => span.badge.online { "PASSED" },
                Some(false) => span.badge.offline { "FAILED" },
                None => span.badge.stopped title=(d.message.as_deref().unwrap_or("")) { "unknown" },
            }
        }
    }
}

/// Whole disks with their SMART health.
pub fn smart(state: &HostState) -> Markup {
    let slow = state.slow();
    let disks = slow.map(|s| s.smart.as_slice()).unwrap_or_default();
    let note = slow.and_then(|s| s.smart_note.as_deref());
    let count = |v: Option<u64>| or_dash(v, |n| n.to_string());
    html! {
        @if !disks.is_empty() || note.is_some() {
            section {
                h2 { "Disk health (SMART)" }
                @if let Some(note) = note { p.muted { (note) } }
                @if !disks.is_empty() {
                    div.scroll { table.smart {
                        thead { tr {
                            th { "Device" } th { "Model" } th { "Health" } th.num { "Temperature" }
                            th.num { "Power-on" } th.num { "Reallocated" } th.num { "Pending" }
                            th.num { "Uncorrectable" } th.num { "CRC errors" } th.num { "Wear" }
                            th.num { "Spare" } th.num { "Media errors" } th { "Notes" }
                        } }
                        tbody {
                            @for d in disks {
                                @let verdict = smart_degradation(d, false);
                                @let class = if d.passed == Some(false) || verdict.as_ref().is_some_and(|(s, _)| *s == crate::store::alerts::Severity::Critical) {
                                    "row-bad"
                                } else if verdict.is_some() { "row-warn" } else { "" };
                                tr class=(class) data-device=(d.device) {
                                    td { (d.device) " " small.muted { (d.protocol) } }
                                    td {
                                        (d.model.as_deref().unwrap_or("–"))
                                        @if let Some(c) = d.capacity_bytes { " " small { (bytes_u64(c)) } }
                                    }
                                    td { (health_badge(d)) }
                                    td.num { (or_dash(d.temperature_celsius, celsius)) }
                                    td.num { (or_dash(d.power_on_hours, |h| format!("{h} h"))) }
                                    td.num { (count(d.reallocated_sectors)) }
                                    td.num { (count(d.pending_sectors)) }
                                    td.num { (count(d.offline_uncorrectable)) }
                                    td.num { (count(d.crc_errors)) }
                                    td.num { (or_dash(d.percentage_used, |p| format!("{p} %"))) }
                                    td.num { (or_dash(d.available_spare_percent, |p| format!("{p} %"))) }
                                    td.num { (count(d.media_errors)) }
                                    td {
                                        @if let Some((_, why)) = &verdict { span.warn { (why) } " " }
                                        @if let Some(m) = &d.message { small.muted { (m) } }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        }
    }
}

/// hwmon sensors (fast sample) and drive sensors (slow sample), by chip.
pub fn temperatures(state: &HostState) -> Markup {
    let mut sensors: Vec<&Temperature> = state
        .fast()
        .map(|f| f.temperatures.iter().collect())
        .unwrap_or_default();
    if let Some(slow) = state.slow() {
        sensors.extend(slow.drive_temperatures.iter());
    }
    let defaults = Builtin::TempHigh.default_levels();
    html! {
        @if !sensors.is_empty() {
            section {
                h2 { "Temperatures" }
                div.scroll { table.temperatures {
                    thead { tr {
                        th { "Chip" } th { "Sensor" } th { "Label" } th.num { "Now" }
                        th.num { "Max" } th.num { "Crit" }
                    } }
                    tbody {
                        @for t in &sensors {
                            @let levels = sensor_levels(t, defaults).or(defaults);
                            @let class = match (t.celsius, levels) {
                                (Some(c), Some(l)) if c >= l.critical => "row-bad",
                                (Some(c), Some(l)) if c >= l.warning => "row-warn",
                                _ => "",
                            };
                            tr class=(class) {
                                td { (t.chip) " " small.muted { (t.device) } }
                                td { (t.sensor) }
                                td {
                                    (t.label.as_deref().unwrap_or(""))
                                    @if let Some(disk) = &t.disk { " " span.tag { (disk) } }
                                }
                                td.num { (or_dash(t.celsius, celsius)) }
                                td.num { (or_dash(t.max_celsius, celsius)) }
                                td.num { (or_dash(t.crit_celsius, celsius)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// The HA manager: quorum, master, nodes and resources.
pub fn ha(state: &HostState, now: i64) -> Markup {
    let Some(ha) = state.medium().and_then(|m| m.ha.as_ref()) else {
        return html! {};
    };
    html! {
        section {
            h2 { "High availability" }
            (ha_head(ha, now))
            @if !ha.services.is_empty() {
                div.scroll { table.ha {
                    thead { tr {
                        th { "Resource" } th { "State" } th { "Node" } th { "Requested" }
                        th { "CRM state" } th { "Group" }
                    } }
                    tbody {
                        @for s in &ha.services {
                            tr class=(if ha_state_severity(&s.state).is_some() { "row-bad" } else { "" }) {
                                td { (s.sid) }
                                td { (s.state) }
                                td { (s.node.as_deref().unwrap_or("–")) }
                                td { (s.request_state.as_deref().unwrap_or("–")) }
                                td { (s.crm_state.as_deref().unwrap_or("–")) }
                                td { (s.group.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

fn ha_head(ha: &HaStatus, now: i64) -> Markup {
    html! {
        p {
            @match ha.quorate {
                Some(true) => span.badge.online { "quorate" },
                Some(false) => span.badge.offline { "no quorum" },
                None => {},
            }
            " master: " strong { (ha.master.as_deref().unwrap_or("none")) }
            @if let Some(t) = ha.master_timestamp {
                " " small { "(status written " (time_ago(i64::try_from(t).unwrap_or(i64::MAX), now)) ")" }
            }
            @for n in &ha.nodes {
                " · " (n.name) " " small { (n.state) @if let Some(lrm) = &n.lrm_state { ", LRM " (lrm) } }
            }
        }
    }
}

/// Storage replication jobs.
pub fn replication(state: &HostState, now: i64) -> Markup {
    let jobs: &[ReplicationJob] = state
        .medium()
        .map(|m| m.replication.as_slice())
        .unwrap_or_default();
    html! {
        @if !jobs.is_empty() {
            section {
                h2 { "Replication" }
                div.scroll { table.replication {
                    thead { tr {
                        th { "Job" } th { "Guest" } th { "Target" } th { "Schedule" }
                        th.num { "Last sync" } th.num { "Duration" } th.num { "Failures" } th { "Error" }
                    } }
                    tbody {
                        @for j in jobs {
                            tr class=(if j.enabled && j.fail_count > 0 { "row-bad" } else { "" }) {
                                td { (j.id) @if !j.enabled { " " span.badge.stopped { "disabled" } } @if j.running { " " span.badge.online { "running" } } }
                                td { (j.guest) }
                                td { (j.target) }
                                td { (j.schedule) }
                                td.num {
                                    @match j.last_sync {
                                        Some(t) => (time_ago(i64::try_from(t).unwrap_or(i64::MAX), now)),
                                        None => span.muted { "never" },
                                    }
                                }
                                td.num { (or_dash(j.duration_seconds, format::duration_f64)) }
                                td.num { (j.fail_count) }
                                td { (j.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                } }
            }
        }
    }
}
