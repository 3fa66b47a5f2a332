//! Guest configuration files: `/etc/pve/qemu-server/<vmid>.conf` and `/etc/pve/lxc/<vmid>.conf`.
//!
//! `key: value` lines; leading `#` lines are the description; the current config ends at the
//! first `[section]` (snapshots, `[PENDING]`, `[special:cloudinit]`).

use common::sample::{GuestConfig, GuestType};

/// Memory Proxmox assumes when a config has no `memory` line, in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 512;

/// The configuration facts we use.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestConf {
    /// `name` of a VM, `hostname` of a CT.
    pub name: Option<String>,
    pub cores: Option<u32>,
    pub sockets: Option<u32>,
    pub vcpus: Option<u32>,
    /// 0 or absent means unlimited.
    pub cpulimit: Option<f64>,
    pub memory_mib: Option<u64>,
    pub swap_mib: Option<u64>,
    pub onboot: bool,
    pub template: bool,
    pub tags: Vec<String>,
}

/// Parses a config; lines that are not `key: value` are refused, values of the keys we use
/// must be well-formed, all other keys are ignored.
pub fn parse(text: &str) -> Result<GuestConf, String> {
    let mut conf = GuestConf::default();
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with('[') {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .filter(|(k, _)| {
                k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .ok_or_else(|| format!("line {line:?} is not \"key: value\""))?;
        let value = value.trim();
        let number = |what: &str| -> Result<u32, String> {
            value
                .parse()
                .map_err(|_| format!("{what} {value:?} is not a number"))
        };
        match key {
            "name" | "hostname" => conf.name = Some(value.to_owned()),
            "cores" => conf.cores = Some(number("cores")?),
            "sockets" => conf.sockets = Some(number("sockets")?),
            "vcpus" => conf.vcpus = Some(number("vcpus")?),
            "cpulimit" => {
                let limit: f64 = value
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("cpulimit {value:?} is not a number"))?;
                conf.cpulimit = Some(limit);
            }
            "memory" => conf.memory_mib = Some(parse_memory(value)?),
            "swap" => {
                conf.swap_mib = Some(
                    value
                        .parse()
                        .map_err(|_| format!("swap {value:?} is not a number"))?,
                );
            }
            "onboot" => conf.onboot = value == "1",
            "template" => conf.template = value == "1",
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
    Ok(conf)
}

/// `8192` or `current=8192` (with possibly more `,key=value` options), in MiB.
fn parse_memory(value: &str) -> Result<u64, String> {
    value
        .split(',')
        .find_map(|part| match part.split_once('=') {
            Some(("current", n)) => Some(n),
            Some(_) => None,
            None => Some(part),
        })
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("memory {value:?} is not a number of MiB"))
}

impl GuestConf {
    /// The guest's name as Proxmox shows it: `VM <vmid>` / `CT<vmid>` without one.
    pub fn display_name(&self, kind: GuestType, vmid: u32) -> String {
        match (&self.name, kind) {
            (Some(name), _) => name.clone(),
            (None, GuestType::Lxc) => format!("CT{vmid}"),
            (None, _) => format!("VM {vmid}"),
        }
    }

    /// CPUs the guest may use, as Proxmox counts them: a VM gets `vcpus` or sockets × cores
    /// (no more than the host has); a CT its `cores` or every host CPU; `cpulimit` caps both.
    pub fn cpus(&self, kind: GuestType, host_cpus: Option<u32>) -> Option<f64> {
        let base = match kind {
            GuestType::Lxc => self.cores.or(host_cpus).map(f64::from),
            _ => {
                let all = self
                    .sockets
                    .unwrap_or(1)
                    .saturating_mul(self.cores.unwrap_or(1));
                let capped = host_cpus.map_or(all, |h| all.min(h.max(1)));
                Some(f64::from(self.vcpus.unwrap_or(capped)))
            }
        }?;
        match self.cpulimit {
            Some(limit) if limit > 0.0 && limit < base => Some(limit),
            _ => Some(base),
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib
            .unwrap_or(DEFAULT_MEMORY_MIB)
            .saturating_mul(1024 * 1024)
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
            cores: if lxc {
                self.cores
            } else {
                Some(self.cores.unwrap_or(1))
            },
            sockets: if lxc {
                None
            } else {
                Some(self.sockets.unwrap_or(1))
            },
            cpus: self.cpus(kind, host_cpus),
            memory_bytes: Some(self.memory_bytes()),
            swap_bytes: lxc.then(|| {
                self.swap_mib
                    .unwrap_or(DEFAULT_MEMORY_MIB)
                    .saturating_mul(1024 * 1024)
            }),
            onboot: self.onboot,
            template: self.template,
            tags: self.tags.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vm_fixture_stops_at_the_snapshot_section() {
        let conf = parse(include_str!(
            "../../../fixtures/pve-node/etc/pve/qemu-server/100.conf"
        ))
        .unwrap();
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
        assert_eq!(conf.memory_bytes(), 8_589_934_592);
    }

    #[test]
    fn second_vm_and_ct_fixture() {
        let vm = parse(include_str!(
            "../../../fixtures/pve-node/etc/pve/qemu-server/102.conf"
        ))
        .unwrap();
        assert_eq!(vm.cpus(GuestType::Qemu, Some(8)), Some(4.0));
        assert!(!vm.onboot);
        let ct = parse(include_str!(
            "../../../fixtures/pve-node/etc/pve/lxc/101.conf"
        ))
        .unwrap();
        let facts = ct.to_guest_config(101, GuestType::Lxc, Some(8));
        assert_eq!(facts.name, "dns01");
        assert_eq!(facts.cpus, Some(2.0));
        assert_eq!(facts.memory_bytes, Some(1_073_741_824));
        assert_eq!(facts.swap_bytes, Some(536_870_912));
        assert_eq!(facts.sockets, None);
        assert_eq!(facts.tags, ["infra"]);
    }

    #[test]
    fn defaults_current_memory_vcpus_and_cpulimit() {
        let conf = parse(
            "memory: current=2048\nvcpus: 3\ncores: 2\nsockets: 2\ncpulimit: 1.5\ntemplate: 1\n",
        )
        .unwrap();
        assert_eq!(conf.memory_mib, Some(2048));
        assert_eq!(conf.cpus(GuestType::Qemu, Some(8)), Some(1.5));
        assert!(conf.template);
        let empty = parse("").unwrap();
        assert_eq!(empty.memory_bytes(), 512 * 1024 * 1024);
        assert_eq!(empty.display_name(GuestType::Qemu, 7), "VM 7");
        assert_eq!(empty.display_name(GuestType::Lxc, 7), "CT7");
        assert_eq!(empty.cpus(GuestType::Lxc, Some(16)), Some(16.0));
        assert_eq!(empty.cpus(GuestType::Qemu, Some(16)), Some(1.0));
        // More vCPUs than the host has are capped, as Proxmox does.
        let big = parse("cores: 32\n").unwrap();
        assert_eq!(big.cpus(GuestType::Qemu, Some(8)), Some(8.0));
    }

    #[test]
    fn broken() {
        for bad in [
            "this is not a config\n",
            "cores: four\n",
            "memory: lots\n",
            "cpulimit: -1\n",
            "\u{0}\u{1}garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
