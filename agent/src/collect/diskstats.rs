//! `/proc/diskstats`: I/O counters per block device.
//!
//! Lines have 14 fields up to Linux 4.17, 18 with the discard counters (4.18+) and 20 with the
//! flush counters (5.5+); we use the first 14. Sectors are always 512 bytes, whatever the
//! device's sector size.

use super::problem::{numbered_lines, quote, Problems};

/// The counters of one device we use (totals since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub write_sectors: u64,
    /// Milliseconds during which the device had I/O in flight.
    pub io_ticks_ms: u64,
}

pub const SECTOR_BYTES: u64 = 512;

/// Parses every line into `(name, counters)`, in file order (kernel `block/genhd.c`
/// `diskstats_show`). The 7-field partition lines of 2.6.x kernels carry no counters we use
/// and are skipped; a line with another number of fields below 14, or a field of the first 14
/// that is not a number, is skipped and reported. Fails only on an empty file.
pub fn parse(text: &str, problems: &mut Problems) -> Result<Vec<(String, DiskCounters)>, String> {
    let mut out = Vec::new();
    let mut fields: Vec<&str> = Vec::with_capacity(20);
    for (number, line) in numbered_lines(text) {
        fields.clear();
        fields.extend(line.split_ascii_whitespace());
        match fields.len() {
            0 | 7 => continue,
            n if n < 14 => {
                problems.line(
                    number,
                    format!("{} has {n} fields, expected 14, 18 or 20", quote(line)),
                );
                continue;
            }
            _ => {}
        }
        let name = fields[2];
        let mut values = [0u64; 14];
        let mut bad = None;
        for (i, slot) in values.iter_mut().enumerate().filter(|(i, _)| *i != 2) {
            match fields[i].parse() {
                Ok(value) => *slot = value,
                Err(_) => {
                    bad = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = bad {
            problems.line(
                number,
                format!(
                    "{name}: field {} {} is not a number",
                    i + 1,
                    quote(fields[i])
                ),
            );
            continue;
        }
        out.push((
            name.to_owned(),
            DiskCounters {
                reads: values[3],
                read_sectors: values[5],
                writes: values[7],
                write_sectors: values[9],
                io_ticks_ms: values[12],
            },
        ));
    }
    if out.is_empty() && text.trim().is_empty() {
        return Err("file is empty".into());
    }
    Ok(out)
}

/// Whether a device is reported by name alone: no loop, RAM, zram, NBD, device-mapper
/// (LVM volumes are guest disks) or ZFS zvol (`zd*`, guest disks too) devices, and no partitions
/// (`sda1`, `nvme0n1p1`, `mmcblk0p1`, `md0p1`). Used where `/sys/block` cannot tell.
pub fn is_reported_by_name(name: &str) -> bool {
    is_reported_whole_device(name) && !is_partition_name(name)
}

fn is_partition_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !bytes.last().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    // sda1, vdb2, xvda1, hdc3: a letter-named disk followed by a number.
    if ["sd", "vd", "hd", "xvd"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return true;
    }
    // nvme0n1p1, mmcblk0p1, md0p1: `p<N>` right after a digit.
    let digits_from = bytes.iter().rposition(|b| !b.is_ascii_digit()).unwrap_or(0);
    digits_from >= 1 && bytes[digits_from] == b'p' && bytes[digits_from - 1].is_ascii_digit()
}

/// Whether a device that `/sys/block` lists (so a whole device) is reported: the same skip list
/// as `is_reported_by_name`, without the partition guess.
pub fn is_reported_whole_device(name: &str) -> bool {
    const SKIPPED: [&str; 7] = ["loop", "ram", "zram", "nbd", "dm-", "zd", "sr"];
    !SKIPPED.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/pve-node/proc/diskstats");

    #[test]
    fn fixture_20_fields() {
        let mut problems = Problems::new();
        let disks = parse(FIXTURE, &mut problems).unwrap();
        assert!(problems.is_empty());
        assert_eq!(disks.len(), 12);
        assert_eq!(disks[0].0, "nvme0n1");
        assert_eq!(
            disks[0].1,
            DiskCounters {
                reads: 2_145_873,
                read_sectors: 187_634_210,
                writes: 9_876_543,
                write_sectors: 612_345_678,
                io_ticks_ms: 3_456_789,
            }
        );
        let reported: Vec<&str> = disks
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| is_reported_by_name(n))
            .collect();
        assert_eq!(reported, ["nvme0n1", "nvme1n1"]);
    }

    #[test]
    fn old_kernel_14_and_18_fields() {
        let text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n\
                    8       1 sda1 1 2 3 4\n\
                    8      16 sdb 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25\n";
        let disks = parse(text, &mut Problems::new()).unwrap();
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks[0].1,
            DiskCounters {
                reads: 1,
                read_sectors: 3,
                writes: 5,
                write_sectors: 7,
                io_ticks_ms: 10
            }
        );
        assert_eq!(disks[1].1.io_ticks_ms, 20);
    }

    #[test]
    fn names() {
        for whole in [
            "sda",
            "sdaa",
            "nvme0n1",
            "nvme10n12",
            "mmcblk0",
            "md0",
            "vda",
            "xvda",
        ] {
            assert!(is_reported_by_name(whole), "{whole}");
        }
        for skipped in [
            "sda1",
            "sdaa12",
            "nvme0n1p1",
            "mmcblk0p2",
            "md0p1",
            "loop0",
            "ram0",
            "zd0",
            "zd16",
            "dm-0",
            "nbd3",
            "zram0",
            "sr0",
        ] {
            assert!(!is_reported_by_name(skipped), "{skipped}");
        }
        assert!(is_reported_whole_device("md127"));
        assert!(!is_reported_whole_device("dm-1"));
    }

    #[test]
    fn a_bad_line_costs_only_itself() {
        let text =
            "8 0 sda 1 2 3\n8 16 sdb 1 2 3 4 5 6 7 8 9 10 x\nx 0 sdc 1 2 3 4 5 6 7 8 9 10 11\n\
                    8 32 sdd 1 2 3 4 5 6 7 8 9 10 11\n";
        let mut problems = Problems::new();
        let disks = parse(text, &mut problems).unwrap();
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].0, "sdd");
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 1: \"8 0 sda 1 2 3\" has 6 fields, expected 14, 18 or 20",
                "line 2: sdb: field 14 \"x\" is not a number",
                "line 3: sdc: field 1 \"x\" is not a number",
            ]
        );
    }

    #[test]
    fn broken() {
        assert!(parse("", &mut Problems::new()).is_err());
    }
}
