//! Temperatures of `/sys/class/hwmon` (kernel `Documentation/hwmon/sysfs-interface.rst`).
//!
//! Each `hwmonN` directory is one chip with a `name` (`coretemp`, `k10temp`, `nvme`,
//! `drivetemp`, `acpitz`, ...) and per sensor `tempN_input` (millidegrees Celsius), maybe
//! `tempN_label` (`Package id 0`, `Core 3`, `Composite`, `Tctl`), `tempN_max` and `tempN_crit`
//! (millidegrees; a chip without thresholds has no such files). Older drivers keep the files in
//! `hwmonN/device/` instead (node_exporter reads both places; so do we).
//!
//! `device` is a link to the device the chip belongs to; its last part names the chip
//! (`coretemp.0`, `nvme0`, `0000:00:18.3`). An `nvme` chip's device is the controller, which
//! holds its namespaces (`nvme0n1`, or `nvme0c0n1` under native multipathing); a `drivetemp`
//! chip's device is the SCSI device, whose `block/` holds the disk (`sda`).
//!
//! Which sensors exist and their labels and thresholds are read when the chips are listed (at
//! start and then every medium cycle); a fast cycle reads only the `tempN_input` files.

use super::problem::quote;

/// What a sensor file is: `temp3_input` → (3, Input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attribute {
    Input,
    Label,
    Max,
    Crit,
}

/// `tempN_<input|label|max|crit>` → (N, attribute); other files are not ours.
pub fn sensor_file(name: &str) -> Option<(u32, Attribute)> {
    let rest = name.strip_prefix("temp")?;
    let (number, attribute) = rest.split_once('_')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let attribute = match attribute {
        "input" => Attribute::Input,
        "label" => Attribute::Label,
        "max" => Attribute::Max,
        "crit" => Attribute::Crit,
        _ => return None,
    };
    Some((number.parse().ok()?, attribute))
}

/// A millidegree value (`45000\n`) in degrees Celsius, to 0.001. A sysfs attribute is one
/// line: only the first is read.
pub fn parse_millidegrees(text: &str) -> Result<f64, String> {
    let trimmed = text.lines().next().unwrap_or("").trim();
    let value: i64 = trimmed
        .parse()
        .map_err(|_| format!("{} is not a temperature in millidegrees", quote(trimmed)))?;
    // A sensor that cannot read gives an error on read, not a value; values past ±1000 °C are
    // not temperatures.
    if value.abs() > 1_000_000 {
        return Err(format!("{} is out of range", quote(trimmed)));
    }
    #[allow(clippy::cast_precision_loss)] // |value| ≤ 10^6
    Ok(value as f64 / 1000.0)
}

/// A threshold file (`tempN_max`, `tempN_crit`): its value in degrees Celsius, or `None` when it
/// is no temperature: NVMe sensors without a threshold say 65261.850 °C (0xffff kelvin).
pub fn parse_threshold(text: &str) -> Result<Option<f64>, String> {
    let trimmed = text.lines().next().unwrap_or("").trim();
    let value: i64 = trimmed
        .parse()
        .map_err(|_| format!("{} is not a temperature in millidegrees", quote(trimmed)))?;
    if value.abs() > 1_000_000 {
        return Ok(None);
    }
    #[allow(clippy::cast_precision_loss)] // |value| ≤ 10^6
    Ok(Some(value as f64 / 1000.0))
}

/// A label file's text (one line).
pub fn parse_label(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err("empty label".into());
    }
    Ok(line.to_owned())
}

/// The chip's `name` file.
pub fn parse_name(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() || line.contains(char::is_whitespace) {
        return Err(format!("{} is not a chip name", quote(line)));
    }
    Ok(line.to_owned())
}

/// The disk of an NVMe controller's entry: `nvme0n1` → `nvme0n1`, `nvme0c0n1` → `nvme0n1`;
/// `None` for other entries.
pub fn nvme_namespace(entry: &str) -> Option<String> {
    let rest = entry.strip_prefix("nvme")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (controller, rest) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit())?);
    if !digits(controller) {
        return None;
    }
    let namespace = match rest.strip_prefix('c') {
        Some(path) => {
            let (path_id, ns) = path.split_once('n')?;
            if !digits(path_id) {
                return None;
            }
            ns
        }
        None => rest.strip_prefix('n')?,
    };
    digits(namespace).then(|| format!("nvme{controller}n{namespace}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sensor_files() {
        assert_eq!(sensor_file("temp1_input"), Some((1, Attribute::Input)));
        assert_eq!(sensor_file("temp12_crit"), Some((12, Attribute::Crit)));
        assert_eq!(sensor_file("temp2_label"), Some((2, Attribute::Label)));
        for other in [
            "temp1_crit_alarm",
            "temp_input",
            "tempx_input",
            "in0_input",
            "name",
            "temp1",
        ] {
            assert_eq!(sensor_file(other), None, "{other}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(parse_millidegrees("45000\n"), Ok(45.0));
        assert_eq!(parse_millidegrees("-5500"), Ok(-5.5));
        assert_eq!(parse_millidegrees("27850"), Ok(27.85));
        assert!(parse_millidegrees("").is_err());
        assert!(parse_millidegrees("N/A").is_err());
        assert!(parse_millidegrees("99999999").is_err());
        assert_eq!(parse_threshold("84850\n"), Ok(Some(84.85)));
        assert_eq!(parse_threshold("65261850\n"), Ok(None));
        assert!(parse_threshold("max").is_err());
        assert_eq!(parse_label("Package id 0\n").unwrap(), "Package id 0");
        assert!(parse_label("\n").is_err());
        assert_eq!(parse_name("coretemp\n").unwrap(), "coretemp");
        assert!(parse_name("core temp").is_err());
    }

    #[test]
    fn nvme_namespaces() {
        assert_eq!(nvme_namespace("nvme0n1").as_deref(), Some("nvme0n1"));
        assert_eq!(nvme_namespace("nvme1c1n1").as_deref(), Some("nvme1n1"));
        for other in ["nvme0", "nvme0n", "nvme0n1p1", "hwmon2", "power", "nvmexn1"] {
            assert_eq!(nvme_namespace(other), None, "{other}");
        }
    }
}
