//! Pressure stall information: `/proc/pressure/{cpu,io,memory}` and the cgroup v2
//! `{cpu,io,memory}.pressure` files, which share one format.

/// The `avg10` figures (percent of the last 10 s) of one PSI file. `full` is absent for the
/// host's cpu file before Linux 5.13.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub some_avg10: f64,
    pub full_avg10: Option<f64>,
}

/// Parses `some avg10=0.18 avg60=0.34 avg300=0.10 total=159886802` and the `full` line.
pub fn parse(text: &str) -> Result<Psi, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(other) => return Err(format!("unexpected line kind {other:?}")),
            None => continue,
        };
        let avg10 = fields
            .find_map(|f| f.strip_prefix("avg10="))
            .ok_or_else(|| format!("line {line:?} has no avg10"))?;
        let value: f64 = avg10
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && (0.0..=100.0).contains(v))
            .ok_or_else(|| format!("avg10 {avg10:?} is not a percentage"))?;
        *slot = Some(value);
    }
    Ok(Psi {
        some_avg10: some.ok_or("no \"some\" line")?,
        full_avg10: full,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let io = parse(include_str!("../../../fixtures/pve-node/proc/pressure/io")).unwrap();
        assert_eq!(
            io,
            Psi {
                some_avg10: 0.18,
                full_avg10: Some(0.18)
            }
        );
        let vm = include_str!(
            "../../../fixtures/pve-node/sys/fs/cgroup/qemu.slice/100.scope/io.pressure"
        );
        assert_eq!(
            parse(vm).unwrap(),
            Psi {
                some_avg10: 0.12,
                full_avg10: Some(0.11)
            }
        );
        // Kernels before 5.13 have no `full` line for cpu.
        let old = parse("some avg10=1.50 avg60=0.00 avg300=0.00 total=1\n").unwrap();
        assert_eq!(old.full_avg10, None);
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0",
            "some avg60=0.00",
            "some avg10=abc",
            "some avg10=250.00",
            "garbage here",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
