//! `/proc/stat`: CPU time counters, turned into busy percentages between two samples.

/// The jiffy counters of one `cpu` line. `guest` and `guest_nice` are already counted in `user`
/// and `nice`, so they are left out of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }

    fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }
}

/// The aggregate `cpu` line and one `cpuN` line per CPU, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub total: CpuTimes,
    pub per_cpu: Vec<CpuTimes>,
}

/// Shares of CPU time spent in each state between two snapshots, 0–100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPercent {
    pub busy: f64,
    pub user: f64,
    pub system: f64,
    pub iowait: f64,
    pub steal: f64,
}

/// Parses the `cpu`/`cpuN` lines of `/proc/stat`. Lines with fewer than 4 counters (pre-2.6
/// kernels) are refused; counters missing on older kernels (iowait, irq, softirq, steal) are 0.
pub fn parse(text: &str) -> Result<CpuStat, String> {
    let mut stat = CpuStat::default();
    let mut saw_total = false;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        if !label.starts_with("cpu") {
            continue;
        }
        let mut counters = [0u64; 8];
        let mut count = 0;
        for (slot, field) in counters.iter_mut().zip(fields) {
            *slot = field
                .parse()
                .map_err(|_| format!("{label}: counter {field:?} is not a number"))?;
            count += 1;
        }
        if count < 4 {
            return Err(format!(
                "{label}: expected at least 4 counters, found {count}"
            ));
        }
        let [user, nice, system, idle, iowait, irq, softirq, steal] = counters;
        let times = CpuTimes {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
        };
        if label == "cpu" {
            stat.total = times;
            saw_total = true;
        } else if label[3..].parse::<u32>().is_ok() {
            stat.per_cpu.push(times);
        }
    }
    if !saw_total {
        return Err("no aggregate \"cpu\" line".into());
    }
    Ok(stat)
}

/// The CPU shares between `before` and `after`, or `None` when no time passed or a counter went
/// backwards (a reboot between samples, or a CPU going offline and back).
pub fn percent_between(before: &CpuTimes, after: &CpuTimes) -> Option<CpuPercent> {
    let delta = |a: u64, b: u64| b.checked_sub(a);
    let total = delta(before.total(), after.total())?;
    if total == 0 {
        return None;
    }
    let idle = delta(before.idle_all(), after.idle_all())?;
    let share = |d: u64| (d as f64 * 100.0 / total as f64).clamp(0.0, 100.0);
    Some(CpuPercent {
        busy: share(total.saturating_sub(idle)),
        user: share(delta(before.user + before.nice, after.user + after.nice)?),
        system: share(delta(
            before.system + before.irq + before.softirq,
            after.system + after.irq + after.softirq,
        )?),
        iowait: share(delta(before.iowait, after.iowait)?),
        steal: share(delta(before.steal, after.steal)?),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/pve-node/proc/stat");

    #[test]
    fn fixture() {
        let stat = parse(FIXTURE).unwrap();
        assert_eq!(stat.per_cpu.len(), 8);
        assert_eq!(stat.per_cpu[0].user, 44490);
        assert_eq!(stat.total.idle, 8_979_004);
        assert_eq!(
            stat.total.total(),
            301_854 + 612 + 111_922 + 8_979_004 + 3552 + 2 + 3944
        );
    }

    #[test]
    fn percent_from_two_snapshots() {
        let before = CpuTimes {
            user: 100,
            idle: 800,
            iowait: 100,
            ..CpuTimes::default()
        };
        let after = CpuTimes {
            user: 130,
            system: 20,
            idle: 840,
            iowait: 110,
            ..CpuTimes::default()
        };
        let p = percent_between(&before, &after).unwrap();
        // 100 jiffies passed: 30 user + 20 system busy, 40 idle + 10 iowait.
        assert_eq!(p.busy, 50.0);
        assert_eq!(p.user, 30.0);
        assert_eq!(p.system, 20.0);
        assert_eq!(p.iowait, 10.0);
        assert_eq!(p.steal, 0.0);
    }

    #[test]
    fn counter_reset_gives_no_percentage() {
        let before = CpuTimes {
            user: 1000,
            idle: 1000,
            ..CpuTimes::default()
        };
        let after = CpuTimes {
            user: 10,
            idle: 10,
            ..CpuTimes::default()
        };
        assert_eq!(percent_between(&before, &after), None);
        assert_eq!(percent_between(&before, &before), None);
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "intr 1 2 3",
            "cpu 1 2 3",
            "cpu a b c d",
            "cpu0 1 2 3 4\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
