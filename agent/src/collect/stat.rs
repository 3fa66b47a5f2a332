//! `/proc/stat`: CPU time counters, turned into busy percentages between two samples.

use super::problem::{numbered_lines, quote, set_once, Problems};

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

/// The aggregate `cpu` line and one `cpuN` line per online CPU, in file order, with `N`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuStat {
    /// `None` when the `cpu` line is missing or unreadable (a problem).
    pub total: Option<CpuTimes>,
    /// `(N, times)` of each `cpuN` line: offline CPUs have no line, so positions are not ids.
    pub per_cpu: Vec<(u32, CpuTimes)>,
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

/// Parses the `cpu`/`cpuN` lines of `/proc/stat` (kernel `fs/proc/stat.c`); other lines
/// (`intr`, `ctxt`, ...) are not used. A `cpu` line with fewer than 4 counters (pre-2.6
/// kernels) or a counter that is not a number is skipped and reported; counters missing on
/// older kernels (iowait, irq, softirq, steal) are 0. Fails only without any readable CPU line.
pub fn parse(text: &str, problems: &mut Problems) -> Result<CpuStat, String> {
    let mut stat = CpuStat::default();
    for (number, line) in numbered_lines(text) {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(index) = label.strip_prefix("cpu") else {
            continue;
        };
        let index = if index.is_empty() {
            None
        } else {
            match index.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.line(number, format!("{} is not a CPU", quote(label)));
                    continue;
                }
            }
        };
        let mut counters = [0u64; 8];
        let mut count = 0;
        let mut bad = None;
        for (slot, field) in counters.iter_mut().zip(fields) {
            match field.parse() {
                Ok(value) => *slot = value,
                Err(_) => {
                    bad = Some(field);
                    break;
                }
            }
            count += 1;
        }
        if let Some(field) = bad {
            problems.line(
                number,
                format!("{label}: counter {} is not a number", quote(field)),
            );
            continue;
        }
        if count < 4 {
            problems.line(
                number,
                format!("{label}: expected at least 4 counters, found {count}"),
            );
            continue;
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
        match index {
            None => set_once(&mut stat.total, times, number, label, problems),
            // CPUs come in increasing order; only a number not above the last can repeat.
            Some(n)
                if stat.per_cpu.last().is_some_and(|(m, _)| *m >= n)
                    && stat.per_cpu.iter().any(|(m, _)| *m == n) =>
            {
                problems.line(number, format!("{label} repeated: the first line is kept"));
            }
            Some(n) => stat.per_cpu.push((n, times)),
        }
    }
    if stat.total.is_none() {
        if stat.per_cpu.is_empty() {
            return Err("no readable \"cpu\" line".into());
        }
        problems.file("no readable aggregate \"cpu\" line");
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
        let mut problems = Problems::new();
        let stat = parse(FIXTURE, &mut problems).unwrap();
        assert!(problems.is_empty());
        assert_eq!(stat.per_cpu.len(), 8);
        assert_eq!(stat.per_cpu[0].0, 0);
        assert_eq!(stat.per_cpu[0].1.user, 44490);
        let total = stat.total.unwrap();
        assert_eq!(total.idle, 8_979_004);
        assert_eq!(
            total.total(),
            301_854 + 612 + 111_922 + 8_979_004 + 3552 + 2 + 3944
        );
    }

    #[test]
    fn a_bad_cpu_line_is_skipped_and_the_others_keep_their_ids() {
        let mut problems = Problems::new();
        let text = "cpu  10 0 10 80\ncpu0 5 0 5 x\ncpu1 5 0 5 40\ncpu3 1 2\nintr 1 2\n";
        let stat = parse(text, &mut problems).unwrap();
        assert_eq!(stat.total.unwrap().idle, 80);
        let ids: Vec<u32> = stat.per_cpu.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, [1]);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 2: cpu0: counter \"x\" is not a number",
                "line 4: cpu3: expected at least 4 counters, found 2"
            ]
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
        for bad in ["", "intr 1 2 3", "cpu 1 2 3", "cpu a b c d", "cpux 1 2 3 4"] {
            assert!(parse(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
        // CPU lines without the aggregate: read, and the missing line is a problem.
        let mut problems = Problems::new();
        let stat = parse("cpu0 1 2 3 4\n", &mut problems).unwrap();
        assert_eq!(
            (stat.total, stat.per_cpu.len(), problems.len()),
            (None, 1, 1)
        );
    }
}
