//! `/proc/meminfo`: memory and swap, in bytes.

/// The fields of `/proc/meminfo` we use, converted from kB to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    /// Since Linux 3.14; older kernels do not have it.
    pub available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    pub s_reclaimable: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemInfo {
    /// Memory in use as Proxmox counts it: `MemTotal − MemAvailable`. Without `MemAvailable`
    /// (kernels before 3.14) we fall back to what `free` showed then: total minus free, buffers,
    /// page cache and reclaimable slab.
    pub fn used(&self) -> u64 {
        match self.available {
            Some(available) => self.total.saturating_sub(available),
            None => self
                .total
                .saturating_sub(self.free)
                .saturating_sub(self.buffers)
                .saturating_sub(self.cached)
                .saturating_sub(self.s_reclaimable),
        }
    }
}

/// Parses the `Key:   value kB` lines; `MemTotal`, `MemFree`, `SwapTotal` and `SwapFree` must be
/// present, everything else defaults to 0 (or `None` for `MemAvailable`).
pub fn parse(text: &str) -> Result<MemInfo, String> {
    let mut info = MemInfo::default();
    let (mut total, mut free, mut swap_total, mut swap_free) = (None, None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemFree" => &mut free,
            "MemAvailable" => &mut info.available,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            "Buffers" | "Cached" | "SReclaimable" => {
                let value = kib_to_bytes(key, rest)?;
                match key {
                    "Buffers" => info.buffers = value,
                    "Cached" => info.cached = value,
                    _ => info.s_reclaimable = value,
                }
                continue;
            }
            _ => continue,
        };
        *slot = Some(kib_to_bytes(key, rest)?);
    }
    let require = |value: Option<u64>, key: &str| value.ok_or_else(|| format!("no {key} line"));
    info.total = require(total, "MemTotal")?;
    info.free = require(free, "MemFree")?;
    info.swap_total = require(swap_total, "SwapTotal")?;
    info.swap_free = require(swap_free, "SwapFree")?;
    Ok(info)
}

fn kib_to_bytes(key: &str, rest: &str) -> Result<u64, String> {
    let mut parts = rest.split_ascii_whitespace();
    let number = parts.next().unwrap_or("");
    let kib: u64 = number
        .parse()
        .map_err(|_| format!("{key} value {number:?} is not a number"))?;
    match parts.next() {
        Some("kB") => kib
            .checked_mul(1024)
            .ok_or_else(|| format!("{key} value {kib} is too large")),
        Some(unit) => Err(format!("{key} has unit {unit:?}, expected kB")),
        None => Err(format!("{key} has no unit, expected kB")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let info = parse(include_str!("../../../fixtures/pve-node/proc/meminfo")).unwrap();
        assert_eq!(info.total, 65_759_444 * 1024);
        assert_eq!(info.available, Some(55_988_844 * 1024));
        assert_eq!(info.used(), (65_759_444 - 55_988_844) * 1024);
        assert_eq!(info.swap_total, 8_388_604 * 1024);
        assert_eq!(info.swap_free, 8_388_604 * 1024);
    }

    #[test]
    fn without_mem_available_falls_back_to_free_buffers_cache() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n\
                    SReclaimable: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
        let info = parse(text).unwrap();
        assert_eq!(info.available, None);
        assert_eq!(info.used(), 600 * 1024);
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "MemTotal: 10 kB\n",
            "MemTotal: x kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB",
            "MemTotal: 10\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB",
            "MemTotal: 99999999999999999999 kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
