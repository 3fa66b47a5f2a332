//! `/proc/meminfo`: memory and swap, in bytes.

use super::problem::{numbered_lines, quote, set_once, Problems};

/// The fields of `/proc/meminfo` we use, converted from kB to bytes. A field whose line is
/// missing or unreadable is `None` (and a problem, except `MemAvailable`, which kernels before
/// 3.14 do not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: Option<u64>,
    pub free: Option<u64>,
    /// Since Linux 3.14; older kernels do not have it.
    pub available: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub s_reclaimable: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_free: Option<u64>,
}

impl MemInfo {
    /// Memory in use as Proxmox counts it: `MemTotal − MemAvailable` (pve-common
    /// `ProcFSTools::read_meminfo`). Without `MemAvailable` (kernels before 3.14) we fall back to
    /// what `free` showed then: total minus free, buffers, page cache and reclaimable slab.
    pub fn used(&self) -> Option<u64> {
        let total = self.total?;
        match self.available {
            Some(available) => Some(total.saturating_sub(available)),
            None => Some(
                total
                    .saturating_sub(self.free?)
                    .saturating_sub(self.buffers.unwrap_or(0))
                    .saturating_sub(self.cached.unwrap_or(0))
                    .saturating_sub(self.s_reclaimable.unwrap_or(0)),
            ),
        }
    }
}

/// Parses the `Key:   value kB` lines (kernel `fs/proc/meminfo.c`). Fails only when no line we
/// use is there at all.
pub fn parse(text: &str, problems: &mut Problems) -> Result<MemInfo, String> {
    let mut info = MemInfo::default();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            problems.line(number, format!("{} is not \"Key: value\"", quote(line)));
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut info.total,
            "MemFree" => &mut info.free,
            "MemAvailable" => &mut info.available,
            "Buffers" => &mut info.buffers,
            "Cached" => &mut info.cached,
            "SReclaimable" => &mut info.s_reclaimable,
            "SwapTotal" => &mut info.swap_total,
            "SwapFree" => &mut info.swap_free,
            _ => continue,
        };
        match kib_to_bytes(key, rest) {
            Ok(value) => set_once(slot, value, number, key, problems),
            Err(message) => problems.line(number, message),
        }
    }
    if info == MemInfo::default() {
        return Err("no MemTotal, MemFree, SwapTotal or SwapFree line".into());
    }
    for (value, key) in [
        (info.total, "MemTotal"),
        (info.free, "MemFree"),
        (info.swap_total, "SwapTotal"),
        (info.swap_free, "SwapFree"),
    ] {
        if value.is_none() {
            problems.file(format!("no readable {key} line"));
        }
    }
    Ok(info)
}

fn kib_to_bytes(key: &str, rest: &str) -> Result<u64, String> {
    let mut parts = rest.split_ascii_whitespace();
    let number = parts.next().unwrap_or("");
    let kib: u64 = number
        .parse()
        .map_err(|_| format!("{key} value {} is not a number", quote(number)))?;
    match parts.next() {
        Some("kB") => kib
            .checked_mul(1024)
            .ok_or_else(|| format!("{key} value {kib} is too large")),
        Some(unit) => Err(format!("{key} has unit {}, expected kB", quote(unit))),
        None => Err(format!("{key} has no unit, expected kB")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(text: &str) -> (MemInfo, Vec<String>) {
        let mut problems = Problems::new();
        let info = parse(text, &mut problems).unwrap();
        (info, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn fixture() {
        let (info, problems) = check(include_str!("../../../fixtures/pve-node/proc/meminfo"));
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(info.total, Some(65_759_444 * 1024));
        assert_eq!(info.available, Some(55_988_844 * 1024));
        assert_eq!(info.used(), Some((65_759_444 - 55_988_844) * 1024));
        assert_eq!(info.swap_total, Some(8_388_604 * 1024));
        assert_eq!(info.swap_free, Some(8_388_604 * 1024));
    }

    #[test]
    fn without_mem_available_falls_back_to_free_buffers_cache() {
        let (info, problems) = check(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n\
             SReclaimable: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\nHugePages_Total: 0\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(info.available, None);
        assert_eq!(info.used(), Some(600 * 1024));
    }

    #[test]
    fn a_bad_or_missing_line_leaves_the_others() {
        let (info, problems) = check(
            "MemTotal: 1000 kB\nMemFree: x kB\ngarbage\nMemAvailable: 400 kB\nSwapTotal: 8 kB\n",
        );
        assert_eq!(info.total, Some(1000 * 1024));
        assert_eq!(info.used(), Some(600 * 1024));
        assert_eq!(info.swap_total, Some(8 * 1024));
        assert_eq!(
            problems,
            [
                "line 2: MemFree value \"x\" is not a number",
                "line 3: \"garbage\" is not \"Key: value\"",
                "no readable MemFree line",
                "no readable SwapFree line",
            ]
        );
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "garbage\n",
            "MemTotal: 10\n",
            "MemTotal: 99999999999999999999 kB\n",
        ] {
            assert!(parse(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
    }
}
