//! Guest configuration files: `/etc/pve/qemu-server/<vmid>.conf` and `/etc/pve/lxc/<vmid>.conf`,
//! read the way qemu-server (`PVE::QemuServer::parse_vm_config`) and pve-container
//! (`PVE::LXC::Config::parse_pct_config`) read them, and the values derived from them the way
//! their status code (`vmstatus`) derives them at run time — not the GUI's creation defaults.
//!
//! Only the current configuration counts: it ends at the first section header (`[snapname]`,
//! `[PENDING]` / `[pve:pending]`, `[special:cloudinit]`). Within it:
//! - blank lines are skipped, `#` lines (at the start of the line) are the description;
//! - `lxc.*` lines of a container (`lxc.idmap: u 0 100000 65536`, `lxc.apparmor.profile =
//!   unconfined`, ...) are raw LXC keys, passed to LXC by pve-container: not ours, ignored;
//! - `description:`, `args:` (VM), `snapstate:` and `delete:` (pending only) lines are theirs;
//! - every other line must be `key: value` (`^([a-z][a-z_]*\d*):\s*(.+?)\s*$`, VM keys may
//!   also hold `-`). Keys we do not use are ignored; a key we use whose value does not have
//!   its schema type is reported and treated as unset. A line that is none of these is
//!   reported (Proxmox warns "unable to parse config") and the rest is read.

use common::sample::{GuestConfig, GuestType};

use super::problem::{numbered_lines, parse_boolean, quote, Problems};

/// Memory of a VM without a `memory` line, in MiB: qemu-server `PVE::QemuServer::Memory`
/// `$memory_fmt->{current}->{default}` (what `get_current_memory(undef)` returns).
pub const VM_DEFAULT_MEMORY_MIB: u64 = 512;

/// Memory of a CT without a `memory` line (or with 0), in MiB: pve-container `vmstatus`
/// `$d->{maxmem} = ($conf->{memory} || 512) * 1024 * 1024`, and `update_lxc_config`
/// `my $memory = $conf->{memory} || 512` for the cgroup limit.
pub const CT_DEFAULT_MEMORY_MIB: u64 = 512;

const MIB: u64 = 1024 * 1024;

/// The configuration facts we use, as written (`None`: not set, or not readable).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestConf {
    /// `name` of a VM, `hostname` of a CT.
    pub name: Option<String>,
    pub cores: Option<u32>,
    pub sockets: Option<u32>,
    pub vcpus: Option<u32>,
    pub cpulimit: Option<f64>,
    /// `memory`: a VM's `current` amount (with memory hotplug this is the total of the static
    /// memory and the hot-plugged DIMMs, which qemu-server derives from it at start, so there
    /// is nothing else to add).
    pub memory_mib: Option<u64>,
    pub swap_mib: Option<u64>,
    /// `balloon` of a VM: the minimum the balloon driver may shrink it to (0 disables the
    /// driver). `vmstatus` reports it as `balloon_min` and keeps `maxmem` at `memory`, so it
    /// does not change the memory we report.
    pub balloon_mib: Option<u64>,
    pub onboot: bool,
    pub template: bool,
    pub tags: Vec<String>,
    /// `lock`: an operation in progress (`backup`, `migrate`, `clone`, `rollback`, ...) or a
    /// state (`suspended` after hibernation, `mounted` by `pct mount`). qemu-server and
    /// pve-container write it while they work and remove it after.
    pub lock: Option<String>,
}

/// Parses a config of a guest of `kind`. Never fails: an empty file is a guest with every
/// default, and a line that does not read is reported in `problems` and skipped.
pub fn parse(text: &str, kind: GuestType, problems: &mut Problems) -> GuestConf {
    let lxc = kind == GuestType::Lxc;
    let mut conf = GuestConf::default();
    // Keys we use, as first seen: Proxmox writes each once, so a repeat is a hand edit or
    // damage (a section header lost); the last value counts, as in Proxmox, and it is reported.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if is_section_header(line, lxc) {
            break;
        }
        if lxc && is_raw_lxc_line(line) {
            continue;
        }
        let Some((key, value)) = split_key_value(line, lxc) else {
            problems.line(number, format!("{} is not \"key: value\"", quote(line)));
            continue;
        };
        if USED_KEYS.contains(&key) {
            match seen.iter().find(|(k, _)| *k == key) {
                Some((_, first)) => problems.line(
                    number,
                    format!("{key} repeats line {first}: this later value counts"),
                ),
                None => seen.push((key, number)),
            }
        }
        match key {
            "description" | "snapstate" => {}
            "args" if !lxc => {}
            "delete" => {
                let pending = if lxc { "[pve:pending]" } else { "[PENDING]" };
                problems.line(number, format!("\"delete\" is only allowed in {pending}"));
            }
            "name" if !lxc => conf.name = Some(value.to_owned()),
            // pve-container `vmstatus`: `$d->{name} =~ s/[\s]//g`.
            "hostname" if lxc => conf.name = Some(value.split_whitespace().collect()),
            "cores" => conf.cores = integer(number, key, value, problems),
            "sockets" if !lxc => conf.sockets = integer(number, key, value, problems),
            "vcpus" if !lxc => conf.vcpus = integer(number, key, value, problems),
            "cpulimit" => conf.cpulimit = decimal(number, key, value, problems),
            "memory" if lxc => {
                conf.memory_mib = integer(number, key, value, problems).map(u64::from);
            }
            "memory" => conf.memory_mib = vm_memory(number, value, problems),
            "swap" if lxc => conf.swap_mib = integer(number, key, value, problems).map(u64::from),
            "balloon" if !lxc => {
                conf.balloon_mib = integer(number, key, value, problems).map(u64::from);
            }
            "onboot" => conf.onboot = boolean(number, key, value, problems).unwrap_or(false),
            "template" => conf.template = boolean(number, key, value, problems).unwrap_or(false),
            "lock" => conf.lock = Some(value.to_owned()),
            "tags" => {
                conf.tags = value
                    .split([';', ',', ' '])
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    conf
}

/// The keys `parse` reads.
const USED_KEYS: [&str; 13] = [
    "name", "hostname", "cores", "sockets", "vcpus", "cpulimit", "memory", "swap", "balloon",
    "onboot", "template", "tags", "lock",
];

/// A section header ends the current config. qemu-server: `[PENDING]`, `[special:...]`, a
/// snapshot `[name]`, and any other `[...]` (an unknown section, skipped). pve-container:
/// `[pve:pending]` and a snapshot `[name]` only (`^\[([a-z][a-z0-9_\-]+)\]\s*$`, any case);
/// another bracketed line is a line it cannot parse.
fn is_section_header(line: &str, lxc: bool) -> bool {
    let Some(inner) = line
        .trim_end()
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
    else {
        return false;
    };
    if !lxc {
        return !inner.contains(']');
    }
    if inner.eq_ignore_ascii_case("pve:pending") {
        return true;
    }
    let bytes = inner.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// `lxc.cgroup2.devices.allow: c 10:200 rwm`, `lxc.apparmor.profile = unconfined`
/// (pve-container: `^(lxc\.[a-z0-9_\-\.]+)(:|\s*=)\s*(.*?)\s*$`).
fn is_raw_lxc_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("lxc.") else {
        return false;
    };
    let key_end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c)))
        .unwrap_or(rest.len());
    if key_end == 0 {
        return false;
    }
    let after = &rest[key_end..];
    after.starts_with(':') || after.trim_start().starts_with('=')
}

/// `key: value` as Proxmox matches it: the key is a lower-case letter, then letters and `_`
/// (and `-` for VMs), then digits; the value is trimmed and not empty.
fn split_key_value(line: &str, lxc: bool) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let letters_end = key
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || (!lxc && c == '-')))
        .unwrap_or(key.len());
    let valid_key = key.starts_with(|c: char| c.is_ascii_lowercase())
        && key[letters_end..].bytes().all(|b| b.is_ascii_digit());
    let value = value.trim();
    (valid_key && !value.is_empty()).then_some((key, value))
}

/// An `integer` of the schema: `^\d+$`.
fn integer(number: usize, key: &str, value: &str, problems: &mut Problems) -> Option<u32> {
    let parsed = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten();
    if parsed.is_none() {
        problems.line(
            number,
            format!("{key} {} is not a whole number", quote(value)),
        );
    }
    parsed
}

/// A `number` of the schema: `^\d+(\.\d+)?$`.
fn decimal(number: usize, key: &str, value: &str, problems: &mut Problems) -> Option<f64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parsed = (digits(whole) && digits(fraction))
        .then(|| value.parse().ok())
        .flatten()
        .filter(|v: &f64| v.is_finite());
    if parsed.is_none() {
        problems.line(number, format!("{key} {} is not a number", quote(value)));
    }
    parsed
}

fn boolean(number: usize, key: &str, value: &str, problems: &mut Problems) -> Option<bool> {
    let parsed = parse_boolean(value);
    if parsed.is_none() {
        problems.line(number, format!("{key} {} is not a boolean", quote(value)));
    }
    parsed
}

/// A VM's `memory`: `8192`, or since qemu-server 8.1 the property string `current=8192`
/// (`$memory_fmt`: `current` is the default key).
fn vm_memory(number: usize, value: &str, problems: &mut Problems) -> Option<u64> {
    let current = value
        .split(',')
        .find_map(|part| match part.split_once('=') {
            Some((key, n)) if key.trim() == "current" => Some(n.trim()),
            Some(_) => None,
            None => Some(part.trim()),
        });
    let parsed = current
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok());
    if parsed.is_none() {
        problems.line(
            number,
            format!("memory {} is not a number of MiB", quote(value)),
        );
    }
    parsed
}

impl GuestConf {
    /// The guest's name as Proxmox shows it: qemu-server `$conf->{name} || "VM $vmid"`,
    /// pve-container `$conf->{hostname} || "CT$vmid"`.
    pub fn display_name(&self, kind: GuestType, vmid: u32) -> String {
        match (self.name.as_deref().filter(|n| !n.is_empty()), kind) {
            (Some(name), _) => name.to_owned(),
            (None, GuestType::Lxc) => format!("CT{vmid}"),
            (None, _) => format!("VM {vmid}"),
        }
    }

    /// CPUs the guest may use, as Proxmox's status counts them (`cpus`, the base of its CPU
    /// percentage):
    /// - VM (qemu-server `vmstatus`): `(sockets || 1) * (cores || 1)`, no more than the host
    ///   has, and `vcpus` instead when set. `cpulimit` does not enter into it.
    /// - CT (pve-container `vmstatus`): `cores || cpulimit`, else every host CPU.
    pub fn cpus(&self, kind: GuestType, host_cpus: Option<u32>) -> Option<f64> {
        let set = |v: Option<u32>| v.filter(|n| *n > 0);
        match kind {
            GuestType::Lxc => set(self.cores)
                .map(f64::from)
                .or(self.cpulimit.filter(|l| *l > 0.0))
                .or(host_cpus.map(f64::from)),
            _ => {
                if let Some(vcpus) = set(self.vcpus) {
                    return Some(f64::from(vcpus));
                }
                let all = set(self.sockets)
                    .unwrap_or(1)
                    .saturating_mul(set(self.cores).unwrap_or(1));
                let capped = host_cpus.map_or(all, |h| all.min(h.max(1)));
                Some(f64::from(capped))
            }
        }
    }

    /// The memory Proxmox reports as the guest's maximum (`maxmem`), in bytes: the `memory`
    /// line, else 512 MiB (see `VM_DEFAULT_MEMORY_MIB`, `CT_DEFAULT_MEMORY_MIB`).
    pub fn memory_bytes(&self, kind: GuestType) -> u64 {
        let default = match kind {
            GuestType::Lxc => CT_DEFAULT_MEMORY_MIB,
            _ => VM_DEFAULT_MEMORY_MIB,
        };
        self.memory_mib
            .filter(|m| *m > 0)
            .unwrap_or(default)
            .saturating_mul(MIB)
    }

    /// A CT's swap, in bytes: pve-container uses `$conf->{swap} // 0` both when it starts the
    /// CT (`update_lxc_config`, the cgroup's memory+swap limit) and in `vmstatus`
    /// (`maxswap`): no `swap` line is no swap. (512 MiB is only the GUI's creation default.)
    pub fn swap_bytes(&self) -> u64 {
        self.swap_mib.unwrap_or(0).saturating_mul(MIB)
    }

    /// The facts of the medium sample.
    pub fn to_guest_config(
        &self,
        vmid: u32,
        kind: GuestType,
        host_cpus: Option<u32>,
    ) -> GuestConfig {
        let lxc = kind == GuestType::Lxc;
        GuestConfig {
            vmid,
            kind,
            name: self.display_name(kind, vmid),
            // qemu-server's schema defaults: cores 1, sockets 1; a CT without `cores` may use
            // every host CPU.
            cores: if lxc {
                self.cores
            } else {
                Some(self.cores.filter(|n| *n > 0).unwrap_or(1))
            },
            sockets: if lxc {
                None
            } else {
                Some(self.sockets.filter(|n| *n > 0).unwrap_or(1))
            },
            cpus: self.cpus(kind, host_cpus),
            memory_bytes: Some(self.memory_bytes(kind)),
            swap_bytes: lxc.then(|| self.swap_bytes()),
            onboot: self.onboot,
            // `PVE::AbstractConfig::is_template`: `template` set to 1.
            template: self.template,
            tags: self.tags.clone(),
            lock: self.lock.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(text: &str, kind: GuestType) -> (GuestConf, Vec<String>) {
        let mut problems = Problems::new();
        let conf = parse(text, kind, &mut problems);
        (conf, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn vm_fixture_stops_at_the_snapshot_section() {
        let (conf, problems) = check(
            include_str!("../../../fixtures/pve-node/etc/pve/qemu-server/100.conf"),
            GuestType::Qemu,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            conf,
            GuestConf {
                name: Some("web01".into()),
                cores: Some(4),
                sockets: Some(1),
                memory_mib: Some(8192),
                onboot: true,
                tags: vec!["prod".into(), "web".into()],
                ..GuestConf::default()
            }
        );
        assert_eq!(conf.cpus(GuestType::Qemu, Some(8)), Some(4.0));
        assert_eq!(conf.memory_bytes(GuestType::Qemu), 8_589_934_592);
    }

    #[test]
    fn second_vm_and_ct_fixture() {
        let (vm, problems) = check(
            include_str!("../../../fixtures/pve-node/etc/pve/qemu-server/102.conf"),
            GuestType::Qemu,
        );
        assert!(problems.is_empty());
        assert_eq!(vm.cpus(GuestType::Qemu, Some(8)), Some(4.0));
        assert_eq!(vm.balloon_mib, Some(1024));
        // The balloon minimum does not lower the memory Proxmox reports.
        assert_eq!(vm.memory_bytes(GuestType::Qemu), 2048 * MIB);
        assert!(!vm.onboot);
        let (ct, problems) = check(
            include_str!("../../../fixtures/pve-node/etc/pve/lxc/101.conf"),
            GuestType::Lxc,
        );
        assert!(problems.is_empty());
        let facts = ct.to_guest_config(101, GuestType::Lxc, Some(8));
        assert_eq!(facts.name, "dns01");
        assert_eq!(facts.cpus, Some(2.0));
        assert_eq!(facts.memory_bytes, Some(1_073_741_824));
        assert_eq!(facts.swap_bytes, Some(536_870_912));
        assert_eq!(facts.sockets, None);
        assert_eq!(facts.tags, ["infra"]);
    }

    #[test]
    fn raw_lxc_keys_snapshots_and_pending_keep_the_facts() {
        let (ct, problems) = check(
            include_str!("../../../fixtures/guest-configs/lxc/120.conf"),
            GuestType::Lxc,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let facts = ct.to_guest_config(120, GuestType::Lxc, Some(16));
        assert_eq!(facts.name, "jellyfin");
        assert_eq!(facts.cores, Some(4));
        assert_eq!(facts.cpus, Some(4.0));
        assert_eq!(facts.memory_bytes, Some(6144 * MIB));
        // No `swap` line: no swap, as pve-container runs it.
        assert_eq!(facts.swap_bytes, Some(0));
        assert_eq!(facts.tags, ["media", "gpu"]);
        assert!(facts.onboot);
    }

    #[test]
    fn vm_with_hotplug_memory_property_string_and_pending() {
        let (vm, problems) = check(
            include_str!("../../../fixtures/guest-configs/qemu-server/130.conf"),
            GuestType::Qemu,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let facts = vm.to_guest_config(130, GuestType::Qemu, Some(16));
        assert_eq!(facts.name, "db01");
        assert_eq!(facts.memory_bytes, Some(16384 * MIB));
        // 2 sockets × 4 cores, but `vcpus: 6` are plugged.
        assert_eq!(
            (facts.sockets, facts.cores, facts.cpus),
            (Some(2), Some(4), Some(6.0))
        );
        assert!(!facts.template);
    }

    #[test]
    fn run_time_defaults() {
        let (empty, problems) = check("", GuestType::Qemu);
        assert!(problems.is_empty());
        assert_eq!(empty.memory_bytes(GuestType::Qemu), 512 * MIB);
        assert_eq!(empty.memory_bytes(GuestType::Lxc), 512 * MIB);
        assert_eq!(empty.swap_bytes(), 0);
        assert_eq!(empty.display_name(GuestType::Qemu, 7), "VM 7");
        assert_eq!(empty.display_name(GuestType::Lxc, 7), "CT7");
        assert_eq!(empty.cpus(GuestType::Lxc, Some(16)), Some(16.0));
        assert_eq!(empty.cpus(GuestType::Qemu, Some(16)), Some(1.0));
        // More vCPUs than the host has are capped, as qemu-server's status does.
        let (big, _) = check("cores: 32\n", GuestType::Qemu);
        assert_eq!(big.cpus(GuestType::Qemu, Some(8)), Some(8.0));
        // `vcpus` wins; `cpulimit` is not part of a VM's `cpus`.
        let (vm, _) = check(
            "memory: current=2048\nvcpus: 3\ncores: 2\nsockets: 2\ncpulimit: 1.5\ntemplate: 1\n",
            GuestType::Qemu,
        );
        assert_eq!(vm.memory_mib, Some(2048));
        assert_eq!(vm.cpus(GuestType::Qemu, Some(8)), Some(3.0));
        assert!(vm.template);
        // CT: `cores || cpulimit`, else every host CPU.
        let (ct, _) = check("cores: 2\ncpulimit: 1.5\n", GuestType::Lxc);
        assert_eq!(ct.cpus(GuestType::Lxc, Some(8)), Some(2.0));
        let (ct, _) = check("cpulimit: 1.5\nmemory: 0\n", GuestType::Lxc);
        assert_eq!(ct.cpus(GuestType::Lxc, Some(8)), Some(1.5));
        assert_eq!(ct.memory_bytes(GuestType::Lxc), 512 * MIB);
        let (ct, _) = check("cores: 0\ncpulimit: 0\n", GuestType::Lxc);
        assert_eq!(ct.cpus(GuestType::Lxc, Some(8)), Some(8.0));
        // Booleans as Proxmox's schema reads them; a CT name loses its blanks.
        let (ct, _) = check(
            "template: yes\nonboot: on\nhostname: my host\n",
            GuestType::Lxc,
        );
        assert!(ct.template && ct.onboot);
        assert_eq!(ct.display_name(GuestType::Lxc, 1), "myhost");
    }

    #[test]
    fn a_lock_of_the_current_config_is_kept_and_a_snapshots_is_not() {
        // qemu-server writes `lock: backup` while vzdump runs; a snapshot section may hold
        // its own `lock` (e.g. a snapshot taken while locked), which is not the guest's now.
        let (vm, problems) = check(
            "cores: 2\nlock: backup\n\n[snap1]\nlock: snapshot\n",
            GuestType::Qemu,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(vm.lock.as_deref(), Some("backup"));
        let facts = vm.to_guest_config(100, GuestType::Qemu, Some(8));
        assert_eq!(facts.lock.as_deref(), Some("backup"));
        let (ct, _) = check(
            "hostname: a\n[pve:pending]\nlock: migrate\n",
            GuestType::Lxc,
        );
        assert_eq!(ct.lock, None);
    }

    #[test]
    fn a_bad_line_or_value_costs_only_itself() {
        let text = "#notes\nthis is not a config\ncores: four\nmemory: lots\ncpulimit: -1\n\
                    hostname: web\ntags:\n  indented: 1\nUpper: 1\ndelete: swap\n\
                    lxc.idmap: u 0 100000 65536\nlxc.apparmor.profile = unconfined\n\
                    lxc.bad key\nonboot: maybe\nmemory: 2048\n[special]\ncores: 9\n";
        let (ct, problems) = check(text, GuestType::Lxc);
        assert_eq!(ct.name.as_deref(), Some("web"));
        assert_eq!(ct.memory_mib, Some(2048));
        assert_eq!(ct.cores, None);
        assert_eq!(
            problems,
            [
                "line 2: \"this is not a config\" is not \"key: value\"",
                "line 3: cores \"four\" is not a whole number",
                "line 4: memory \"lots\" is not a whole number",
                "line 5: cpulimit \"-1\" is not a number",
                "line 7: \"tags:\" is not \"key: value\"",
                "line 8: \"  indented: 1\" is not \"key: value\"",
                "line 9: \"Upper: 1\" is not \"key: value\"",
                "line 10: \"delete\" is only allowed in [pve:pending]",
                "line 13: \"lxc.bad key\" is not \"key: value\"",
                "line 14: onboot \"maybe\" is not a boolean",
                "line 15: memory repeats line 4: this later value counts",
            ]
        );
        // A VM stops at any bracketed line; `[special]` ends a CT's config too.
        let (vm, problems) = check("cores: 2\n[weird section]\ncores: 9\n", GuestType::Qemu);
        assert_eq!((vm.cores, problems.len()), (Some(2), 0));
        let (ct, problems) = check("cores: 2\n[weird section]\ncores: 9\n", GuestType::Lxc);
        assert_eq!((ct.cores, problems.len()), (Some(9), 2));
    }

    #[test]
    fn a_repeated_key_is_reported_and_the_last_counts_as_in_proxmox() {
        let (vm, problems) = check("cores: 2\nname: a\n#[snap]\ncores: 4\n", GuestType::Qemu);
        assert_eq!(vm.cores, Some(4));
        assert_eq!(
            problems,
            ["line 4: cores repeats line 1: this later value counts"]
        );
    }

    #[test]
    fn garbage_is_defaults_and_problems() {
        let (conf, problems) = check("\u{0}\u{1}garbage", GuestType::Qemu);
        assert_eq!(conf, GuestConf::default());
        assert_eq!(problems.len(), 1);
    }
}
