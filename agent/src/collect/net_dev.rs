//! `/proc/net/dev`: byte, packet, error and drop counters per network interface; read once per
//! cycle for both the node's interfaces and the guests' tap/veth ports.

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

/// Parses the two header lines and one `name: 16 counters` line per interface, in file order.
pub fn parse(text: &str) -> Result<Vec<(String, NetCounters)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    for _ in 0..2 {
        match lines.next() {
            Some(header) if header.contains('|') => {}
            Some(other) => return Err(format!("header line {other:?} is not the kernel's")),
            None => return Err("file is empty or truncated".into()),
        }
    }
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (name, counters) = line
            .split_once(':')
            .ok_or_else(|| format!("line {line:?} has no \"name:\""))?;
        let name = name.trim();
        let mut values = [0u64; 16];
        let mut count = 0;
        for (slot, field) in values.iter_mut().zip(counters.split_ascii_whitespace()) {
            *slot = field
                .parse()
                .map_err(|_| format!("{name}: counter {field:?} is not a number"))?;
            count += 1;
        }
        if count < 16 || name.is_empty() {
            return Err(format!("{name}: expected 16 counters, found {count}"));
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
        let interfaces = parse(FIXTURE).unwrap();
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
        let kinds: Vec<InterfaceKind> = parse(FIXTURE)
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
    fn broken() {
        let header = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n";
        for bad in [
            "".to_owned(),
            "garbage\n".to_owned(),
            format!("{header}eth0 1 2 3\n"),
            format!("{header}eth0: 1 2 3\n"),
            format!("{header}eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n"),
            format!("{header}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
