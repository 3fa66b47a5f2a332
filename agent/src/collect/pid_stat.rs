//! `/proc/<pid>/stat`: state, CPU time and start time of one process (a VM's QEMU, a CT's init).

/// The fields of `/proc/<pid>/stat` we use; times are in clock ticks (USER_HZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat {
    /// Field 3: `R`, `S`, `D`, `T` (stopped), `Z` (zombie), ...
    pub state: char,
    /// Fields 14 + 15: user + system time.
    pub cpu_ticks: u64,
    /// Field 22: start time after boot.
    pub start_ticks: u64,
}

/// Parses `1853 (kvm) S 1 ...` (kernel `fs/proc/array.c` `do_task_stat`). The command name
/// may hold spaces and `)`, so fields are counted from the last `)` of the line. The record is
/// the first line; only if that does not read is the whole text tried, for a command name with
/// a line break in it.
pub fn parse(text: &str) -> Result<PidStat, String> {
    let first = text.lines().next().unwrap_or("");
    parse_record(first).or_else(|e| {
        if first.len() < text.trim_end().len() {
            parse_record(text)
        } else {
            Err(e)
        }
    })
}

fn parse_record(text: &str) -> Result<PidStat, String> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or("no \"(comm)\" in the stat line")?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    if fields.len() < 20 {
        return Err(format!(
            "expected at least 22 fields, found {}",
            fields.len() + 2
        ));
    }
    let number = |field: usize| -> Result<u64, String> {
        let text = fields[field - 3];
        text.parse()
            .map_err(|_| format!("field {field} {text:?} is not a number"))
    };
    let mut state_chars = fields[0].chars();
    let state = match (state_chars.next(), state_chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => c,
        _ => return Err(format!("state {:?} is not one letter", fields[0])),
    };
    Ok(PidStat {
        state,
        cpu_ticks: number(14)?.saturating_add(number(15)?),
        start_ticks: number(22)?,
    })
}

/// A pid file (`/var/run/qemu-server/<vmid>.pid`, qemu-server `Helpers::vm_pidfile_name`):
/// the process id on the first line.
pub fn parse_pidfile(text: &str) -> Result<u32, String> {
    let pid = text.lines().next().unwrap_or("").trim();
    pid.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("pid {} is not a process id", super::problem::quote(pid)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let vm = parse(include_str!("../../../fixtures/pve-node/proc/1853/stat")).unwrap();
        assert_eq!(
            vm,
            PidStat {
                state: 'S',
                cpu_ticks: 150_321 + 38_950,
                start_ticks: 1_234_567
            }
        );
        let ct = parse(include_str!("../../../fixtures/pve-node/proc/2467/stat")).unwrap();
        assert_eq!(ct.cpu_ticks, 2210 + 1398);
        assert_eq!(ct.start_ticks, 1_245_890);
    }

    #[test]
    fn command_name_with_spaces_and_parens() {
        let text = "42 (a b) c) R 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 0 0";
        let stat = parse(text).unwrap();
        assert_eq!(
            (stat.state, stat.cpu_ticks, stat.start_ticks),
            ('R', 15, 99)
        );
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pidfile("1853\n"), Ok(1853));
        assert!(parse_pidfile("").is_err());
        assert!(parse_pidfile("0").is_err());
        assert!(parse_pidfile("abc").is_err());
    }

    #[test]
    fn a_line_break_in_the_command_name() {
        let text = "42 (a\nb) R 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 0 0\n";
        assert_eq!(parse(text).unwrap().start_ticks, 99);
        // What follows the record does not count.
        let text = "42 (kvm) R 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 0 0\nx) junk\n";
        assert_eq!(parse(text).unwrap().cpu_ticks, 15);
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "1853 kvm S 1",
            "1853 (kvm) S 1 2 3",
            "1853 (kvm) S 1 1852 1852 0 -1 138412352 1894921 0 1025 0 x 38950 0 0 20 0 9 0 1 2",
            "1853 (kvm) SS 1 1852 1852 0 -1 138412352 1894921 0 1025 0 1 38950 0 0 20 0 9 0 1 2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
