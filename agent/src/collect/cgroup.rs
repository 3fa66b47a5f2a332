//! cgroup v2 files of a guest's cgroup (`qemu.slice/<vmid>.scope/`, `lxc/<vmid>/`): CPU time,
//! memory and block I/O (formats: linux `Documentation/admin-guide/cgroup-v2.rst`).

use super::problem::{numbered_lines, quote, set_once, Problems};

/// `cpu.stat` (flat keyed): `user_usec + system_usec` (the CPU time Proxmox counts), in
/// microseconds. A line of a key we use with a value that is not a number is skipped and
/// reported; without both lines there is no figure.
pub fn parse_cpu_stat(text: &str, problems: &mut Problems) -> Result<u64, String> {
    let (mut user, mut system) = (None, None);
    for (number, line) in numbered_lines(text) {
        let Some((key, value)) = line.split_once(' ') else {
            if !line.trim().is_empty() {
                problems.line(number, format!("{} is not \"key value\"", quote(line)));
            }
            continue;
        };
        let slot = match key {
            "user_usec" => &mut user,
            "system_usec" => &mut system,
            _ => continue,
        };
        match value.trim().parse::<u64>() {
            Ok(v) => set_once(slot, v, number, key, problems),
            Err(_) => problems.line(number, format!("{key} {} is not a number", quote(value))),
        }
    }
    match (user, system) {
        (Some(u), Some(s)) => Ok(u.saturating_add(s)),
        _ => Err("no readable user_usec and system_usec lines".into()),
    }
}

/// A single-value file (`memory.current`, `memory.max`): a number, or `None` for `max`.
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let value = text.lines().next().unwrap_or("").trim();
    if value == "max" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("value {} is neither a number nor \"max\"", quote(value)))
}

/// `memory.stat` (flat keyed): the `file` line (page cache), in bytes. The file has ~50
/// lines per guest and `file` is the second, so reading stops there: the lines after it cannot
/// change the figure (the kernel writes each key once), and a 200-guest node reads this file
/// 200 times a cycle. A line before it that is not `key value`, or a `file` value that is not
/// a number, is reported.
pub fn parse_memory_stat_file(text: &str, problems: &mut Problems) -> Result<u64, String> {
    for (number, line) in numbered_lines(text) {
        let Some((key, value)) = line.split_once(' ') else {
            if !line.trim().is_empty() {
                problems.line(number, format!("{} is not \"key value\"", quote(line)));
            }
            continue;
        };
        if key == "file" {
            match value.trim().parse::<u64>() {
                Ok(v) => return Ok(v),
                Err(_) => problems.line(number, format!("file {} is not a number", quote(value))),
            }
        }
    }
    Err("no readable \"file\" line".into())
}

/// One device's line of `io.stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIo {
    /// `major:minor`.
    pub device: (u32, u32),
    pub rbytes: Option<u64>,
    pub wbytes: Option<u64>,
}

/// `io.stat` (nested keyed): `rbytes` and `wbytes` per device. A line that does not start with
/// `major:minor`, or a field of it that is not `key=value` (or whose value we use and is not a
/// number), is skipped and reported; the line's other fields still count.
pub fn parse_io_stat(text: &str, problems: &mut Problems) -> Result<Vec<DeviceIo>, String> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        let mut fields = line.split_ascii_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        let Some(numbers) = parse_device(device) else {
            problems.line(
                number,
                format!("{} does not start with major:minor", quote(line)),
            );
            continue;
        };
        let mut io = DeviceIo {
            device: numbers,
            rbytes: None,
            wbytes: None,
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                problems.line(
                    number,
                    format!("{device}: field {} is not key=value", quote(field)),
                );
                continue;
            };
            let slot = match key {
                "rbytes" => &mut io.rbytes,
                "wbytes" => &mut io.wbytes,
                _ => continue,
            };
            match value.parse::<u64>() {
                Ok(value) => *slot = Some(value),
                Err(_) => problems.line(
                    number,
                    format!("{device}: {key} {} is not a number", quote(value)),
                ),
            }
        }
        out.push(io);
    }
    Ok(out)
}

/// Bytes read and written, summed over the devices (what Proxmox reports for a guest).
pub fn io_totals(devices: &[DeviceIo]) -> (u64, u64) {
    devices.iter().fold((0u64, 0u64), |(r, w), d| {
        (
            r.saturating_add(d.rbytes.unwrap_or(0)),
            w.saturating_add(d.wbytes.unwrap_or(0)),
        )
    })
}

/// `8:0`, `230:16`.
fn parse_device(field: &str) -> Option<(u32, u32)> {
    let (major, minor) = field.split_once(':')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(major)?, number(minor)?))
}

/// `cgroup.events`: whether the cgroup is frozen (`frozen 1`), as a paused CT is.
pub fn parse_frozen(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "frozen 1")
}

/// `cgroup.procs`: the process ids, one per line; a line that is not one is skipped and
/// reported.
pub fn parse_procs(text: &str, problems: &mut Problems) -> Result<Vec<u32>, String> {
    let mut pids = Vec::new();
    for (number, line) in numbered_lines(text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.parse() {
            Ok(pid) => pids.push(pid),
            Err(_) => problems.line(number, format!("pid {} is not a number", quote(line))),
        }
    }
    Ok(pids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok<T>(parse: impl FnOnce(&str, &mut Problems) -> Result<T, String>, text: &str) -> T {
        let mut problems = Problems::new();
        let value = parse(text, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        value
    }

    #[test]
    fn fixture() {
        assert_eq!(
            ok(
                parse_cpu_stat,
                include_str!("../../../fixtures/pve-node/sys/fs/cgroup/lxc/101/cpu.stat")
            ),
            51_201_450 + 33_319_887
        );
        assert_eq!(
            parse_limit(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.current"
            )),
            Ok(Some(4_473_671_680))
        );
        assert_eq!(
            parse_limit(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.max"
            )),
            Ok(None)
        );
        assert_eq!(
            ok(
                parse_memory_stat_file,
                include_str!(
                    "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.stat"
                )
            ),
            12_582_912
        );
        assert_eq!(
            io_totals(&ok(
                parse_io_stat,
                include_str!(
                    "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/io.stat"
                )
            )),
            (2_379_522_048, 15_208_677_376)
        );
        assert_eq!(
            ok(
                parse_procs,
                include_str!(
                    "../../../fixtures/pve-node/sys/fs/cgroup/lxc/101/ns/init.scope/cgroup.procs"
                )
            ),
            vec![2467]
        );
    }

    #[test]
    fn io_stat_sums_devices_and_accepts_empty() {
        let text = "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n\
                    230:16 rbytes=5 wbytes=7 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(io_totals(&ok(parse_io_stat, text)), (15, 27));
        assert_eq!(io_totals(&ok(parse_io_stat, "")), (0, 0));
    }

    #[test]
    fn bad_lines_and_fields_cost_only_themselves() {
        let mut problems = Problems::new();
        let text = "garbage\n8:0 rbytes=x wbytes=20 junk\n8:16 rbytes=5 wbytes=7\n";
        assert_eq!(
            io_totals(&parse_io_stat(text, &mut problems).unwrap()),
            (5, 27)
        );
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(2)]);
        let mut problems = Problems::new();
        assert_eq!(parse_procs("12\nab\n14\n", &mut problems), Ok(vec![12, 14]));
        assert_eq!(problems.len(), 1);
        let mut problems = Problems::new();
        let text = "usage_usec 9\nuser_usec x\nuser_usec 5\nsystem_usec 4\n";
        assert_eq!(parse_cpu_stat(text, &mut problems), Ok(9));
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn frozen() {
        assert!(parse_frozen("populated 1\nfrozen 1\n"));
        assert!(!parse_frozen("populated 1\nfrozen 0\n"));
    }

    #[test]
    fn broken() {
        let mut problems = Problems::new();
        assert!(parse_cpu_stat("", &mut problems).is_err());
        assert!(parse_cpu_stat("user_usec x\nsystem_usec 1\n", &mut problems).is_err());
        assert!(parse_limit("").is_err());
        assert!(parse_limit("12k").is_err());
        assert!(parse_memory_stat_file("anon 1\n", &mut problems).is_err());
        assert!(parse_memory_stat_file("file -3\n", &mut problems).is_err());
    }
}
