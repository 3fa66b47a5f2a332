//! cgroup v2 files of a guest's cgroup (`qemu.slice/<vmid>.scope/`, `lxc/<vmid>/`): CPU time,
//! memory and block I/O.

/// `cpu.stat`: `user_usec + system_usec` (the CPU time Proxmox counts), in microseconds.
pub fn parse_cpu_stat(text: &str) -> Result<u64, String> {
    let (mut user, mut system) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "user_usec" => &mut user,
            "system_usec" => &mut system,
            _ => continue,
        };
        *slot = Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{key} {value:?} is not a number"))?,
        );
    }
    match (user, system) {
        (Some(u), Some(s)) => Ok(u.saturating_add(s)),
        _ => Err("no user_usec / system_usec lines".into()),
    }
}

/// A single-value file (`memory.current`, `memory.max`): a number, or `None` for `max`.
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let value = text.trim();
    if value == "max" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("value {value:?} is neither a number nor \"max\""))
}

/// `memory.stat`: the `file` line (page cache), in bytes.
pub fn parse_memory_stat_file(text: &str) -> Result<u64, String> {
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("file ") {
            return value
                .trim()
                .parse()
                .map_err(|_| format!("file {value:?} is not a number"));
        }
    }
    Err("no \"file\" line".into())
}

/// `io.stat`: `rbytes` and `wbytes` summed over all devices.
pub fn parse_io_stat(text: &str) -> Result<(u64, u64), String> {
    let (mut read, mut written) = (0u64, 0u64);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        if !device.contains(':') {
            return Err(format!("line {line:?} does not start with major:minor"));
        }
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("{device}: field {field:?} is not key=value"));
            };
            let slot = match key {
                "rbytes" => &mut read,
                "wbytes" => &mut written,
                _ => continue,
            };
            let value: u64 = value
                .parse()
                .map_err(|_| format!("{device}: {key} {value:?} is not a number"))?;
            *slot = slot.saturating_add(value);
        }
    }
    Ok((read, written))
}

/// `cgroup.events`: whether the cgroup is frozen (`frozen 1`), as a paused CT is.
pub fn parse_frozen(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "frozen 1")
}

/// `cgroup.procs`: the process ids, one per line.
pub fn parse_procs(text: &str) -> Result<Vec<u32>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .map_err(|_| format!("pid {l:?} is not a number"))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        assert_eq!(
            parse_cpu_stat(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/lxc/101/cpu.stat"
            )),
            Ok(51_201_450 + 33_319_887)
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
            parse_memory_stat_file(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.stat"
            )),
            Ok(12_582_912)
        );
        assert_eq!(
            parse_io_stat(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/io.stat"
            )),
            Ok((2_379_522_048, 15_208_677_376))
        );
        assert_eq!(
            parse_procs(include_str!(
                "../../../fixtures/pve-node/sys/fs/cgroup/lxc/101/ns/init.scope/cgroup.procs"
            )),
            Ok(vec![2467])
        );
    }

    #[test]
    fn io_stat_sums_devices_and_accepts_empty() {
        let text = "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n\
                    230:16 rbytes=5 wbytes=7 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(text), Ok((15, 27)));
        assert_eq!(parse_io_stat(""), Ok((0, 0)));
    }

    #[test]
    fn frozen() {
        assert!(parse_frozen("populated 1\nfrozen 1\n"));
        assert!(!parse_frozen("populated 1\nfrozen 0\n"));
    }

    #[test]
    fn broken() {
        assert!(parse_cpu_stat("").is_err());
        assert!(parse_cpu_stat("user_usec x\nsystem_usec 1\n").is_err());
        assert!(parse_limit("").is_err());
        assert!(parse_limit("12k").is_err());
        assert!(parse_memory_stat_file("anon 1\n").is_err());
        assert!(parse_memory_stat_file("file -3\n").is_err());
        assert!(parse_io_stat("garbage\n").is_err());
        assert!(parse_io_stat("8:0 rbytes=x\n").is_err());
        assert!(parse_io_stat("8:0 rbytes\n").is_err());
        assert!(parse_procs("12\nab\n").is_err());
    }
}
