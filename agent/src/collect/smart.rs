//! SMART from smartmontools' JSON output (smartctl ≥ 7.0, `--json`): `smartctl --scan -j`
//! lists the disks, `smartctl --json -a -n standby -d <type> <device>` reads one.
//!
//! smartctl's exit status is a bit mask (smartctl(8) "EXIT STATUS"): bit 0 the command line
//! did not parse, bit 1 the device could not be opened or is in a low-power mode, bit 2 a
//! command to it failed, bit 3 "DISK FAILING", bit 4 prefail attributes at or below threshold,
//! bit 5 some were in the past, bit 6 the error log has errors, bit 7 the self-test log has.
//! A failing or worn disk therefore exits non-zero with a complete document on stdout, which
//! is read all the same. `-n standby` leaves a sleeping disk asleep: smartctl then prints
//! `Device is in STANDBY mode, exit(2)` (`ataprint.cpp`, as a JSON message of severity
//! "information") and exits 2, with no values.
//!
//! The JSON keys (smartmontools `json_format_version` 1.0): `smart_status.passed`,
//! `temperature.current`, `power_on_time.hours`, `power_cycle_count`, `model_name`,
//! `serial_number`, `user_capacity.bytes`; ATA `ata_smart_attributes.table[]` (`id`,
//! `raw.value`); NVMe `nvme_smart_health_information_log` (`critical_warning`,
//! `available_spare`, `available_spare_threshold`, `percentage_used`, `media_errors`,
//! `unsafe_shutdowns`); `smartctl.messages[].string`, `smartctl.exit_status`.

use common::sample::SmartDisk;
use serde_json::Value;

use super::json;
use super::problem::{quote, Problems};

/// The arguments of the scan.
pub const SCAN_ARGS: [&str; 2] = ["--scan", "-j"];

/// The arguments that read one disk without waking it.
pub fn device_args<'a>(kind: &'a str, device: &'a str) -> [&'a str; 7] {
    ["--json", "-a", "-n", "standby", "-d", kind, device]
}

/// Exit status bit: the device could not be opened, or is asleep (`-n standby`).
pub const EXIT_OPEN_OR_ASLEEP: u32 = 1 << 1;
/// Exit status bit: "DISK FAILING".
pub const EXIT_FAILING: u32 = 1 << 3;

/// A disk of the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedDevice {
    /// `/dev/sda`
    pub name: String,
    /// `sat`, `nvme`, `scsi`, `megaraid,0`
    pub kind: String,
    pub protocol: Option<String>,
}

/// The `devices` of `smartctl --scan -j`. A device without a name or type is skipped and
/// reported.
pub fn parse_scan(text: &str, problems: &mut Problems) -> Result<Vec<ScannedDevice>, String> {
    let value = json::parse(text, problems)?;
    let devices = match value.get("devices") {
        Some(Value::Array(devices)) => devices,
        Some(_) => return Err("\"devices\" is not a list".into()),
        // No disk at all: smartctl prints no `devices`.
        None if value.get("smartctl").is_some() => return Ok(Vec::new()),
        None => return Err("no \"devices\": not smartctl --scan output".into()),
    };
    let mut out = Vec::new();
    for device in devices {
        let string = |key: &str| device.get(key).and_then(Value::as_str).map(str::to_owned);
        match (string("name"), string("type")) {
            (Some(name), Some(kind)) if !name.is_empty() && !kind.is_empty() => {
                out.push(ScannedDevice {
                    name,
                    kind,
                    protocol: string("protocol"),
                });
            }
            _ => problems.file(format!(
                "device {} has no name or type: skipped",
                quote(&device.to_string())
            )),
        }
    }
    Ok(out)
}

/// One disk's report. `exit_status` is the process's (smartctl's own `smartctl.exit_status`
/// when the process's is not known). Fails only when there is no JSON object to read.
pub fn parse_device(
    device: &ScannedDevice,
    text: &str,
    exit_status: Option<i32>,
    problems: &mut Problems,
) -> Result<SmartDisk, String> {
    let value = json::parse(text, problems)?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let u64_at = |path: &[&str]| -> Option<u64> { walk(&value, path).and_then(Value::as_u64) };
    let u32_at = |path: &[&str]| u64_at(path).and_then(|v| u32::try_from(v).ok());
    let str_at = |path: &[&str]| {
        walk(&value, path)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let exit_status = exit_status
        .and_then(|s| u32::try_from(s).ok())
        .or_else(|| u32_at(&["smartctl", "exit_status"]));
    let messages: Vec<String> = walk(&value, &["smartctl", "messages"])
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| m.get("string").and_then(Value::as_str))
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let standby = messages.iter().any(|m| {
        m.starts_with("Device is in STANDBY")
            || m.starts_with("Device is in SLEEP")
            || m.starts_with("Device is in IDLE")
    });
    let attribute = |id: u64| -> Option<u64> {
        walk(&value, &["ata_smart_attributes", "table"])?
            .as_array()?
            .iter()
            .find(|a| a.get("id").and_then(Value::as_u64) == Some(id))?
            .get("raw")?
            .get("value")?
            .as_u64()
    };
    let nvme = |key: &str| u64_at(&["nvme_smart_health_information_log", key]);
    let nvme32 = |key: &str| nvme(key).and_then(|v| u32::try_from(v).ok());
    let temperature = walk(&value, &["temperature", "current"]).and_then(Value::as_f64);
    let passed = walk(&value, &["smart_status", "passed"]).and_then(Value::as_bool);
    Ok(SmartDisk {
        device: device.name.clone(),
        kind: device.kind.clone(),
        protocol: str_at(&["device", "protocol"])
            .or_else(|| device.protocol.clone())
            .unwrap_or_default(),
        model: str_at(&["model_name"]),
        serial: str_at(&["serial_number"]),
        capacity_bytes: u64_at(&["user_capacity", "bytes"]),
        passed,
        exit_status,
        standby,
        temperature_celsius: temperature,
        power_on_hours: u64_at(&["power_on_time", "hours"]),
        power_cycles: u64_at(&["power_cycle_count"]),
        reallocated_sectors: attribute(5),
        pending_sectors: attribute(197),
        offline_uncorrectable: attribute(198),
        crc_errors: attribute(199),
        critical_warning: nvme32("critical_warning"),
        available_spare_percent: nvme32("available_spare"),
        available_spare_threshold_percent: nvme32("available_spare_threshold"),
        percentage_used: nvme32("percentage_used"),
        media_errors: nvme("media_errors"),
        unsafe_shutdowns: nvme("unsafe_shutdowns"),
        message: messages.first().cloned(),
    })
}

fn walk<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Whether smartctl could not open the disk for lack of rights (the agent not running as root,
/// or without CAP_SYS_RAWIO / CAP_SYS_ADMIN).
pub fn is_permission_denied(disk: &SmartDisk) -> bool {
    disk.exit_status
        .is_some_and(|s| s & EXIT_OPEN_OR_ASLEEP != 0)
        && disk.message.as_deref().is_some_and(|m| {
            m.contains("Permission denied") || m.contains("Operation not permitted")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    fn device(name: &str, kind: &str) -> ScannedDevice {
        ScannedDevice {
            name: name.into(),
            kind: kind.into(),
            protocol: None,
        }
    }

    fn read(name: &str, kind: &str, file: &str, status: Option<i32>) -> SmartDisk {
        let mut problems = Problems::new();
        let disk =
            parse_device(&device(name, kind), &fixture(file), status, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        disk
    }

    #[test]
    fn scan() {
        let mut problems = Problems::new();
        let devices = parse_scan(
            &fixture("smart-disks/cmd/smartctl-scan-j.txt"),
            &mut problems,
        )
        .unwrap();
        let names: Vec<(&str, &str)> = devices
            .iter()
            .map(|d| (d.name.as_str(), d.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("/dev/sda", "sat"),
                ("/dev/sdb", "sat"),
                ("/dev/sdc", "sat"),
                ("/dev/nvme0", "nvme")
            ]
        );
        assert!(problems.is_empty());
        assert_eq!(
            parse_scan("{\"smartctl\":{\"exit_status\":0}}", &mut problems).unwrap(),
            []
        );
        assert!(parse_scan("{}", &mut problems).is_err());
    }

    #[test]
    fn an_ata_disk_with_pending_sectors_that_still_passes() {
        let disk = read(
            "/dev/sda",
            "sat",
            "smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sda.txt",
            Some(64),
        );
        assert_eq!(disk.passed, Some(true));
        assert_eq!(disk.exit_status, Some(64));
        assert_eq!(disk.protocol, "ATA");
        assert_eq!(disk.model.as_deref(), Some("WDC WD40EFRX-68N32N0"));
        assert_eq!(disk.temperature_celsius, Some(36.0));
        assert_eq!(disk.power_on_hours, Some(41_233));
        assert_eq!(disk.reallocated_sectors, Some(0));
        assert_eq!(disk.pending_sectors, Some(8));
        assert_eq!(disk.offline_uncorrectable, Some(8));
        assert_eq!(disk.crc_errors, Some(0));
        assert_eq!(disk.media_errors, None);
        assert_eq!(disk.message, None);
    }

    #[test]
    fn a_failed_disk() {
        let disk = read(
            "/dev/sdb",
            "sat",
            "smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sdb.txt",
            Some(24),
        );
        assert_eq!(disk.passed, Some(false));
        assert_eq!(disk.exit_status.unwrap() & EXIT_FAILING, EXIT_FAILING);
        assert_eq!(disk.reallocated_sectors, Some(3_408));
    }

    #[test]
    fn a_disk_in_standby_is_not_woken() {
        let disk = read(
            "/dev/sdc",
            "sat",
            "smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sdc.txt",
            Some(2),
        );
        assert!(disk.standby);
        assert_eq!(disk.passed, None);
        assert_eq!(disk.temperature_celsius, None);
        assert_eq!(
            disk.message.as_deref(),
            Some("Device is in STANDBY mode, exit(2)")
        );
        assert!(!is_permission_denied(&disk));
    }

    #[test]
    fn an_nvme_with_wear_and_media_errors() {
        let disk = read(
            "/dev/nvme1",
            "nvme",
            "pve-node/cmd/smartctl-json-a-n-standby-d-nvme--dev-nvme1.txt",
            Some(0),
        );
        assert_eq!(disk.passed, Some(true));
        assert_eq!(disk.protocol, "NVMe");
        assert_eq!(disk.percentage_used, Some(91));
        assert_eq!(disk.media_errors, Some(3));
        assert_eq!(disk.available_spare_percent, Some(42));
        assert_eq!(disk.critical_warning, Some(0));
        assert_eq!(disk.unsafe_shutdowns, Some(17));
        assert_eq!(disk.temperature_celsius, Some(48.0));
        assert_eq!(disk.pending_sectors, None);
    }

    #[test]
    fn permission_denied() {
        let text = "{\"json_format_version\":[1,0],\"smartctl\":{\"version\":[7,3],\"messages\":[{\"string\":\"Smartctl open device: /dev/sda failed: Permission denied\",\"severity\":\"error\"}],\"exit_status\":2},\"device\":{\"name\":\"/dev/sda\",\"type\":\"sat\",\"protocol\":\"ATA\"}}";
        let mut problems = Problems::new();
        let disk = parse_device(&device("/dev/sda", "sat"), text, None, &mut problems).unwrap();
        assert_eq!(disk.exit_status, Some(2));
        assert!(!disk.standby);
        assert!(is_permission_denied(&disk));
    }
}
