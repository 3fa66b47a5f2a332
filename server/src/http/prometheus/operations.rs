//! `/metrics` for a node's operational state: backups, backup jobs, replication, HA, SMART
//! and temperatures. SMART follows prometheus-community/smartctl_exporter's names
//! (`smartctl_device_smart_status`, `smartctl_device_temperature`, `smartctl_device_attribute`,
//! ... with a `device` label, the device's name without `/dev/`), temperatures node_exporter's
//! hwmon collector (`node_hwmon_temp_celsius{chip,sensor}`, `_max_celsius`, `_crit_celsius`,
//! `node_hwmon_sensor_label`, `node_hwmon_chip_names`; our `chip` is the sensor's device,
//! e.g. `coretemp.0`, `nvme0`, `0000:00:18.3`), the rest is `proxmox_monitor_*`. Every series
//! has the `node` label. HA is the cluster's view, so every node of a cluster exports the same
//! resources under its own `node`.

use common::sample::{GuestType, MediumSample, SlowSample, Temperature};

use super::{bool_value, to_f64, Exposition, LabelSet};
use crate::alerts::engine::operations::{backup_failed, ha_state_severity};

/// Unix seconds as a sample value.
fn seconds(t: u64) -> f64 {
    to_f64(t)
}

pub(super) fn medium_metrics(out: &mut Exposition, node: &str, medium: &MediumSample) {
    let mut vmid_text = itoa::Buffer::new();
    for b in &medium.backups {
        let kind = match b.kind {
            GuestType::Qemu => "qemu",
            GuestType::Lxc => "lxc",
            GuestType::Unknown => "unknown",
        };
        let vmid = vmid_text.format(b.vmid);
        let labels = LabelSet::new(&[("node", node), ("vmid", vmid), ("type", kind)]);
        if let Some(s) = &b.last_success {
            out.gauge(
                "proxmox_monitor_guest_last_backup_timestamp_seconds",
                "When the guest's last good backup ended (Unix time).",
                &labels,
                seconds(s.end_time),
            );
            out.gauge_opt(
                "proxmox_monitor_guest_last_backup_duration_seconds",
                "How long the guest's last good backup took.",
                &labels,
                s.duration_seconds.map(to_f64),
            );
            out.gauge_opt(
                "proxmox_monitor_guest_last_backup_size_bytes",
                "The archive size of the guest's last good backup, as vzdump reports it.",
                &labels,
                s.size_bytes.map(to_f64),
            );
        }
        out.gauge(
            "proxmox_monitor_guest_last_backup_failed",
            "1 when the guest's newest backup failed (no good one since), else 0.",
            &labels,
            bool_value(backup_failed(b)),
        );
        if let Some(f) = &b.last_failure {
            out.gauge(
                "proxmox_monitor_guest_last_backup_failure_timestamp_seconds",
                "When the guest's last failed backup ended (Unix time).",
                &labels,
                seconds(f.end_time),
            );
        }
        if b.jobs.as_ref().is_some_and(Vec::is_empty) {
            let id = format!("{kind}/{vmid}");
            out.gauge(
                "pve_not_backed_up_info",
                "A guest no enabled backup job selects (1; absent for covered guests).",
                &[("id", id.as_str()), ("node", node)],
                1.0,
            );
        }
    }
    for job in &medium.backup_jobs {
        let labels = LabelSet::new(&[("node", node), ("job", job.id.as_str())]);
        out.gauge(
            "proxmox_monitor_backup_job_info",
            "A backup job that runs on the node (always 1).",
            &[
                ("node", node),
                ("job", job.id.as_str()),
                ("schedule", job.schedule.as_deref().unwrap_or("")),
                ("storage", job.storage.as_deref().unwrap_or("")),
                ("enabled", if job.enabled { "1" } else { "0" }),
            ],
            1.0,
        );
        if let Some(run) = &job.last_run {
            out.gauge_opt(
                "proxmox_monitor_backup_job_last_run_end_timestamp_seconds",
                "When the job's last run on the node ended (Unix time).",
                &labels,
                run.end_time.map(seconds),
            );
            out.gauge(
                "proxmox_monitor_backup_job_last_run_failed",
                "1 when the job's last run on the node ended in an error, else 0.",
                &labels,
                bool_value(run.state == common::sample::RunState::Error),
            );
        }
    }
    for r in &medium.replication {
        let guest = vmid_text.format(r.guest).to_owned();
        let labels = LabelSet::new(&[
            ("node", node),
            ("job", r.id.as_str()),
            ("vmid", guest.as_str()),
            ("target", r.target.as_str()),
        ]);
        out.gauge_opt(
            "proxmox_monitor_replication_last_sync_timestamp_seconds",
            "Start of the replication job's last successful sync (Unix time).",
            &labels,
            r.last_sync.map(seconds),
        );
        out.gauge_opt(
            "proxmox_monitor_replication_last_duration_seconds",
            "How long the replication job's last attempt took.",
            &labels,
            r.duration_seconds,
        );
        out.gauge(
            "proxmox_monitor_replication_failures",
            "Failed attempts in a row of the replication job (0 after a success).",
            &labels,
            f64::from(r.fail_count),
        );
    }
    if let Some(ha) = &medium.ha {
        out.gauge_opt(
            "proxmox_monitor_ha_quorate",
            "1 when the node is in the quorate partition, as the HA stack sees it.",
            &[("node", node)],
            ha.quorate.map(bool_value),
        );
        if let Some(master) = &ha.master {
            out.gauge(
                "proxmox_monitor_ha_master_info",
                "The node whose HA CRM is master (always 1).",
                &[("node", node), ("master", master.as_str())],
                1.0,
            );
        }
        for s in &ha.services {
            out.gauge(
                "proxmox_monitor_ha_service_state",
                "An HA resource's state as the GUI shows it (1 for the current state).",
                &[
                    ("node", node),
                    ("sid", s.sid.as_str()),
                    ("service_node", s.node.as_deref().unwrap_or("")),
                    ("state", s.state.as_str()),
                ],
                1.0,
            );
            out.gauge(
                "proxmox_monitor_ha_service_error",
                "1 when an HA resource is in error, fence or recovery, else 0.",
                &[("node", node), ("sid", s.sid.as_str())],
                bool_value(ha_state_severity(&s.state).is_some()),
            );
        }
    }
}

pub(super) fn slow_metrics(out: &mut Exposition, node: &str, slow: &SlowSample) {
    for d in &slow.smart {
        let device = d.device.strip_prefix("/dev/").unwrap_or(&d.device);
        let labels = LabelSet::new(&[("node", node), ("device", device)]);
        out.gauge(
            "smartctl_device",
            "A disk smartctl reports on (always 1).",
            &[
                ("node", node),
                ("device", device),
                ("interface", d.kind.as_str()),
                ("protocol", d.protocol.as_str()),
                ("model_name", d.model.as_deref().unwrap_or("")),
                ("serial_number", d.serial.as_deref().unwrap_or("")),
            ],
            1.0,
        );
        out.gauge_opt(
            "smartctl_device_smartctl_exit_status",
            "smartctl's exit status, a bit mask (smartctl(8)).",
            &labels,
            d.exit_status.map(f64::from),
        );
        out.gauge(
            "proxmox_monitor_smart_device_standby",
            "1 when the disk was asleep and left so (no values this time).",
            &labels,
            bool_value(d.standby),
        );
        out.gauge_opt(
            "smartctl_device_capacity_bytes",
            "Disk capacity.",
            &labels,
            d.capacity_bytes.map(to_f64),
        );
        out.gauge_opt(
            "smartctl_device_smart_status",
            "SMART overall health self-assessment: 1 PASSED, 0 FAILED.",
            &labels,
            d.passed.map(bool_value),
        );
        out.gauge_opt(
            "smartctl_device_temperature",
            "Disk temperature, degrees Celsius.",
            &[
                ("node", node),
                ("device", device),
                ("temperature_type", "current"),
            ],
            d.temperature_celsius,
        );
        out.gauge_opt(
            "smartctl_device_power_on_seconds",
            "Power-on time.",
            &labels,
            d.power_on_hours.map(|h| to_f64(h) * 3600.0),
        );
        out.gauge_opt(
            "proxmox_monitor_smart_power_cycles",
            "Power cycles (smartctl_exporter's smartctl_device_power_cycle_count, renamed for promtool).",
            &labels,
            d.power_cycles.map(to_f64),
        );
        for (id, name, value) in [
            ("5", "Reallocated_Sector_Ct", d.reallocated_sectors),
            ("197", "Current_Pending_Sector", d.pending_sectors),
            ("198", "Offline_Uncorrectable", d.offline_uncorrectable),
            ("199", "UDMA_CRC_Error_Count", d.crc_errors),
        ] {
            out.gauge_opt(
                "smartctl_device_attribute",
                "An ATA SMART attribute's raw value.",
                &[
                    ("node", node),
                    ("device", device),
                    ("attribute_id", id),
                    ("attribute_name", name),
                    ("attribute_value_type", "raw"),
                ],
                value.map(to_f64),
            );
        }
        out.gauge_opt(
            "smartctl_device_critical_warning",
            "NVMe critical warning bits (0: none).",
            &labels,
            d.critical_warning.map(f64::from),
        );
        out.gauge_opt(
            "smartctl_device_available_spare",
            "NVMe available spare, percent.",
            &labels,
            d.available_spare_percent.map(f64::from),
        );
        out.gauge_opt(
            "smartctl_device_available_spare_threshold",
            "NVMe available spare threshold, percent.",
            &labels,
            d.available_spare_threshold_percent.map(f64::from),
        );
        out.gauge_opt(
            "smartctl_device_percentage_used",
            "NVMe percentage used (wear); may exceed 100.",
            &labels,
            d.percentage_used.map(f64::from),
        );
        out.gauge_opt(
            "smartctl_device_media_errors",
            "NVMe media and data integrity errors.",
            &labels,
            d.media_errors.map(to_f64),
        );
        out.gauge_opt(
            "proxmox_monitor_smart_unsafe_shutdowns",
            "NVMe unsafe shutdowns.",
            &labels,
            d.unsafe_shutdowns.map(to_f64),
        );
    }
    hwmon_metrics(out, node, &slow.drive_temperatures);
}

/// node_exporter's hwmon temperature families for `sensors`.
pub(super) fn hwmon_metrics(out: &mut Exposition, node: &str, sensors: &[Temperature]) {
    let mut last_chip: Option<&str> = None;
    for t in sensors {
        let labels = LabelSet::new(&[
            ("node", node),
            ("chip", t.device.as_str()),
            ("sensor", t.sensor.as_str()),
        ]);
        if last_chip != Some(t.device.as_str()) {
            out.gauge(
                "node_hwmon_chip_names",
                "Annotation metric for human-readable chip names.",
                &[
                    ("node", node),
                    ("chip", t.device.as_str()),
                    ("chip_name", t.chip.as_str()),
                ],
                1.0,
            );
            last_chip = Some(t.device.as_str());
        }
        out.gauge_opt(
            "node_hwmon_temp_celsius",
            "Hardware monitor for temperature (input).",
            &labels,
            t.celsius,
        );
        out.gauge_opt(
            "node_hwmon_temp_max_celsius",
            "Hardware monitor for temperature (max).",
            &labels,
            t.max_celsius,
        );
        out.gauge_opt(
            "node_hwmon_temp_crit_celsius",
            "Hardware monitor for temperature (crit).",
            &labels,
            t.crit_celsius,
        );
        if let Some(label) = &t.label {
            out.gauge(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor.",
                &[
                    ("node", node),
                    ("chip", t.device.as_str()),
                    ("sensor", t.sensor.as_str()),
                    ("label", label.as_str()),
                ],
                1.0,
            );
        }
    }
}
