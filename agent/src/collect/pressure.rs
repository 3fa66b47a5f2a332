//! Pressure stall information: `/proc/pressure/{cpu,io,memory}` and the cgroup v2
//! `{cpu,io,memory}.pressure` files, which share one format (kernel `kernel/sched/psi.c`
//! `psi_show`).

use super::problem::{numbered_lines, quote, Problems};

/// One PSI file: the `avg10` figures (percent of the last 10 s) we send, and the `total`
/// stall times (µs) the kernel keeps. `full` is absent for the host's cpu file before Linux
/// 5.13; a line that is missing or unreadable is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub some_avg10: Option<f64>,
    pub full_avg10: Option<f64>,
    pub some_total_us: Option<u64>,
    pub full_total_us: Option<u64>,
}

/// Parses `some avg10=0.18 avg60=0.34 avg300=0.10 total=159886802` and the `full` line. A
/// line of another kind is ignored (not a problem); a line that is not `kind key=value...`,
/// or a `some`/`full` line without a readable `avg10`, is skipped and reported. Fails when
/// neither `some` nor `full` reads.
pub fn parse(text: &str, problems: &mut Problems) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for (number, line) in numbered_lines(text) {
        let mut fields = line.split_ascii_whitespace();
        let Some(kind) = fields.next() else { continue };
        let mut avg10 = None;
        let mut total = None;
        let mut shape_ok = true;
        for field in fields {
            if let Some(v) = field.strip_prefix("avg10=") {
                avg10 = Some(v);
            } else if let Some(v) = field.strip_prefix("total=") {
                total = Some(v);
            } else if !field.contains('=') {
                shape_ok = false;
            }
        }
        if !shape_ok {
            problems.line(
                number,
                format!("{} is not \"kind key=value...\"", quote(line)),
            );
            continue;
        }
        let (avg_slot, total_slot) = match kind {
            "some" => (&mut psi.some_avg10, &mut psi.some_total_us),
            "full" => (&mut psi.full_avg10, &mut psi.full_total_us),
            _ => continue,
        };
        if avg_slot.is_some() {
            problems.line(number, format!("{kind} repeated: the first line is kept"));
            continue;
        }
        let Some(avg10) = avg10 else {
            problems.line(number, format!("{kind} line has no avg10"));
            continue;
        };
        match avg10
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && (0.0..=100.0).contains(v))
        {
            Some(value) => *avg_slot = Some(value),
            None => {
                problems.line(
                    number,
                    format!("{kind} avg10 {} is not a percentage", quote(avg10)),
                );
                continue;
            }
        }
        match total.map(|t| t.parse::<u64>()) {
            Some(Ok(us)) => *total_slot = Some(us),
            Some(Err(_)) => problems.line(number, format!("{kind} total is not a number")),
            None => {}
        }
    }
    if text.trim().is_empty() {
        return Err("file is empty".into());
    }
    if psi.some_avg10.is_none() && psi.full_avg10.is_none() {
        return Err("no readable \"some\" or \"full\" line".into());
    }
    if psi.some_avg10.is_none() {
        problems.file("no readable \"some\" line");
    }
    Ok(psi)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Psi, Vec<String>) {
        let mut problems = Problems::new();
        let psi = parse(text, &mut problems).unwrap();
        (psi, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn fixture() {
        let (io, problems) = check(include_str!("../../../fixtures/pve-node/proc/pressure/io"));
        assert!(problems.is_empty());
        assert_eq!(
            io,
            Psi {
                some_avg10: Some(0.18),
                full_avg10: Some(0.18),
                some_total_us: Some(159_886_802),
                full_total_us: Some(159_229_614),
            }
        );
        let (vm, _) = check(include_str!(
            "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/io.pressure"
        ));
        assert_eq!((vm.some_avg10, vm.full_avg10), (Some(0.12), Some(0.11)));
        // Kernels before 5.13 have no `full` line for cpu.
        let (old, problems) = check("some avg10=1.50 avg60=0.00 avg300=0.00 total=1\n");
        assert_eq!(old.full_avg10, None);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_bad_line_leaves_the_other() {
        let (psi, problems) = check(
            "some avg10=abc avg60=0.00 avg300=0.00 total=1\nfull avg10=0.50 total=2\n\
             partial avg10=1.00\n",
        );
        assert_eq!((psi.some_avg10, psi.full_avg10), (None, Some(0.5)));
        assert_eq!(
            problems,
            [
                "line 1: some avg10 \"abc\" is not a percentage",
                "no readable \"some\" line"
            ]
        );
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "some avg60=0.00",
            "some avg10=abc",
            "some avg10=250.00",
            "garbage here",
        ] {
            assert!(parse(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
    }
}
