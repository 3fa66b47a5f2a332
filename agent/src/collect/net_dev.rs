//! `/proc/net/dev`: byte, packet, error and drop counters per network interface; read once per
//! cycle for both the node's interfaces and the guests' tap/veth ports.

use super::problem::{numbered_lines, quote, Problems};

/// The counters of one interface (totals since it was created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev` (kernel `net/core/net-procfs.c` `dev_seq_printf_stats`:
/// `"%6s:%8llu %7llu ..."`), one `name: 16 counters` line per interface, in file order. The
/// two header lines (they hold `|`) are skipped.
///
/// The name is everything before the *last* colon of the line, trimmed: older kernels allow
/// alias names with a colon (`ibr10:30:`), a wide first counter follows the colon with no
/// space (`eth0:68210035552 ...`), and names may be any UTF-8 (`💩0`). Counters never hold a
/// colon, so this is exact (pve-common `read_proc_net_dev` matches the same way, with a greedy
/// `^\s*(.*):`). More than 16 counters are fine (the first 16 are read); a line with fewer,
/// with a counter that is not a number, or without a name is skipped and reported.
pub fn parse(text: &str, problems: &mut Problems) -> Result<Vec<(String, NetCounters)>, String> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() || line.contains('|') {
            continue;
        }
        let Some((name, counters)) = line.rsplit_once(':') else {
            problems.line(number, format!("{} has no \"name:\"", quote(line)));
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            problems.line(number, format!("{} has no interface name", quote(line)));
            continue;
        }
        let mut values = [0u64; 16];
        let mut count = 0;
        let mut bad = None;
        for (slot, field) in values.iter_mut().zip(counters.split_ascii_whitespace()) {
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
                format!("{name}: counter {} is not a number", quote(field)),
            );
            continue;
        }
        if count < 16 {
            problems.line(
                number,
                format!("{name}: expected 16 counters, found {count}"),
            );
            continue;
        }
        out.push((
            name.to_owned(),
            NetCounters {
                rx_bytes: values[0],
                rx_packets: values[1],
                rx_errors: values[2],
                rx_dropped: values[3],
                tx_bytes: values[8],
                tx_packets: values[9],
                tx_errors: values[10],
                tx_dropped: values[11],
            },
        ));
    }
    if out.is_empty() && text.trim().is_empty() {
        return Err("file is empty".into());
    }
    Ok(out)
}

/// What an interface is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceKind {
    /// A NIC (or a bond of NICs): reported.
    Physical,
    /// A Linux bridge: reported, marked as a bridge.
    Bridge,
    /// A port of guest `vmid` (`tap<vmid>i<N>` of a VM, `veth<vmid>i<N>` of a CT): counted
    /// under that guest, with the directions swapped.
    Guest(u32),
    /// Loopback, firewall bridges (`fwbr`/`fwln`/`fwpr`), VLAN sub-interfaces and other virtual
    /// devices: left out.
    Ignored,
}

/// Tells the kind from the name alone: guest ports and firewall plumbing by Proxmox's naming,
/// `vmbr*` as bridges, VLAN (`x.N`) and known virtual prefixes ignored, the rest physical.
/// `sysfs_kind` refines `Physical`/`Bridge` from `/sys/class/net` where that exists.
pub fn kind_by_name(name: &str) -> InterfaceKind {
    if let Some(vmid) = guest_port(name, "tap").or_else(|| guest_port(name, "veth")) {
        return InterfaceKind::Guest(vmid);
    }
    const IGNORED: [&str; 12] = [
        "lo",
        "fwbr",
        "fwln",
        "fwpr",
        "tap",
        "veth",
        "docker",
        "virbr",
        "vnet",
        "tun",
        "dummy",
        "ovs-system",
    ];
    if name == "lo" || IGNORED.iter().any(|p| name.starts_with(p)) || name.contains('.') {
        return InterfaceKind::Ignored;
    }
    if name.starts_with("vmbr") || name.starts_with("br") {
        return InterfaceKind::Bridge;
    }
    InterfaceKind::Physical
}

/// From what `/sys/class/net/<name>/` holds: a `bridge` directory, a `bonding` directory, or a
/// `device` link (a real NIC). Anything else is a virtual device we leave out. Guest ports
/// keep their name-based kind.
pub fn kind_from_sysfs(
    name: &str,
    has_bridge: bool,
    has_bonding: bool,
    has_device: bool,
) -> InterfaceKind {
    match kind_by_name(name) {
        InterfaceKind::Guest(vmid) => InterfaceKind::Guest(vmid),
        InterfaceKind::Ignored if name == "lo" || name.starts_with("fw") => InterfaceKind::Ignored,
        _ if has_bridge => InterfaceKind::Bridge,
        _ if has_bonding || has_device => InterfaceKind::Physical,
        _ => InterfaceKind::Ignored,
    }
}

/// `tap100i0` → 100 (prefix `tap`), `veth101i0` → 101.
fn guest_port(name: &str, prefix: &str) -> Option<u32> {
    let (vmid, index) = name.strip_prefix(prefix)?.split_once('i')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    vmid.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/pve-node/proc/net/dev");

    #[test]
    fn fixture() {
        let mut problems = Problems::new();
        let interfaces = parse(FIXTURE, &mut problems).unwrap();
        assert!(problems.is_empty());
        let names: Vec<&str> = interfaces.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "lo",
                "eno1",
                "eno2",
                "vmbr0",
                "tap100i0",
                "fwbr100i0",
                "fwpr100p0",
                "fwln100i0",
                "veth101i0",
                "fwbr101i0",
                "fwpr101p0",
                "fwln101i0"
            ]
        );
        assert_eq!(
            interfaces[1].1,
            NetCounters {
                rx_bytes: 98_124_377_231,
                rx_packets: 81_734_562,
                rx_errors: 0,
                rx_dropped: 1842,
                tx_bytes: 41_237_789_012,
                tx_packets: 44_012_387,
                tx_errors: 0,
                tx_dropped: 0,
            }
        );
        assert_eq!(interfaces[4].1.rx_bytes, 8_123_456_789);
        assert_eq!(interfaces[4].1.tx_bytes, 33_456_789_012);
    }

    #[test]
    fn kinds_by_name() {
        let kinds: Vec<InterfaceKind> = parse(FIXTURE, &mut Problems::new())
            .unwrap()
            .iter()
            .map(|(n, _)| kind_by_name(n))
            .collect();
        use InterfaceKind::*;
        assert_eq!(
            kinds,
            [
                Ignored,
                Physical,
                Physical,
                Bridge,
                Guest(100),
                Ignored,
                Ignored,
                Ignored,
                Guest(101),
                Ignored,
                Ignored,
                Ignored
            ]
        );
        assert_eq!(kind_by_name("vmbr0.100"), Ignored);
        assert_eq!(kind_by_name("bond0"), Physical);
        assert_eq!(kind_by_name("tapfoo"), Ignored);
        assert_eq!(kind_by_name("tap100i"), Ignored);
    }

    #[test]
    fn kinds_from_sysfs() {
        use InterfaceKind::*;
        assert_eq!(kind_from_sysfs("enp3s0", false, false, true), Physical);
        assert_eq!(kind_from_sysfs("vmbr1", true, false, false), Bridge);
        assert_eq!(kind_from_sysfs("bond0", false, true, false), Physical);
        assert_eq!(kind_from_sysfs("wg0", false, false, false), Ignored);
        assert_eq!(kind_from_sysfs("lo", false, false, false), Ignored);
        assert_eq!(kind_from_sysfs("fwbr100i0", true, false, false), Ignored);
        assert_eq!(kind_from_sysfs("tap100i0", false, false, false), Guest(100));
    }

    #[test]
    fn names_with_colons_glued_counters_and_non_ascii() {
        // Lines of node_exporter's collector/fixtures/proc/net/dev (see fixtures/node-exporter).
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
            ibr10:30:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n\
            \x20 eth0:68210035552 520993275    0    0    0     0          0         0 9315587528 43451486    0    0    0     0       0          0\n\
            \x20\u{1F4A9}0: 57750104  105557    0    0    0     0          0        72 404570255  304261    0    0    0     0       0          0 0 0\n";
        let mut problems = Problems::new();
        let interfaces = parse(text, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<&str> = interfaces.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ibr10:30", "eth0", "\u{1F4A9}0"]);
        assert_eq!(interfaces[1].1.rx_bytes, 68_210_035_552);
        assert_eq!(interfaces[1].1.tx_bytes, 9_315_587_528);
        assert_eq!(interfaces[2].1.tx_packets, 304_261);
    }

    #[test]
    fn a_bad_line_costs_only_itself() {
        let header = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n";
        let good = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        let text = format!(
            "{header}lo: {good}\neth0 1 2 3\neth1: 1 2 3\neth2: 1 2 x\n: {good}\nvmbr0: {good}\n"
        );
        let mut problems = Problems::new();
        let interfaces = parse(&text, &mut problems).unwrap();
        let names: Vec<&str> = interfaces.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "vmbr0"]);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(4), Some(5), Some(6), Some(7)]);
    }

    #[test]
    fn broken() {
        assert!(parse("", &mut Problems::new()).is_err());
        assert!(parse("\n\n", &mut Problems::new()).is_err());
    }
}
