//! The guests of this node: state and usage for the fast sample, configuration facts for the
//! medium sample, found the way Proxmox finds them (pve-manager, qemu-server, pve-container).
//!
//! - Which guests: `/etc/pve/.vmlist` entries whose node is this node.
//! - VM running: `/var/run/qemu-server/<vmid>.pid` names a live process whose argv[0] ends in
//!   `kvm` and which has `-pidfile <that file>` (checked once per process, then remembered by
//!   pid and start time). CPU time and start time come from `/proc/<pid>/stat`.
//! - CT running: LXC's `@/var/lib/lxc/<vmid>/command` socket in `/proc/net/unix`. CPU time from
//!   the cgroup's `cpu.stat`; start time from the CT's init (the lowest pid in
//!   `lxc/<vmid>/ns/cgroup.procs`, or the one in `ns/init.scope/` for systemd containers).
//! - Memory (`memory.current − memory.stat:file`), I/O (`io.stat`) and pressure from the cgroup
//!   v2 directory; network from the guest's `tap`/`veth` ports in `/proc/net/dev`, with the
//!   directions swapped (what the port receives, the guest sent).

use std::collections::{HashMap, HashSet};

use common::sample::{GuestConfig, GuestFast, GuestStatus, GuestType, SourceError};

use super::guest_config::{self, GuestConf};
use super::net_dev::NetCounters;
use super::pmxcfs::{self, VmListEntry};
use super::problem::Problems;
use super::{cgroup, net_unix, pid_stat, rate, round2, whole, Collector};

/// What the collector remembers about guests between cycles.
#[derive(Debug, Default)]
pub(super) struct GuestCache {
    /// Parsed configs with the `.vmlist` version they were read at. pmxcfs gives an entry a new
    /// version on every write of its config (pve-cluster `memdb.c` `memdb_pwrite` →
    /// `vmlist_register_vm`); the medium sample re-reads every config anyway.
    configs: HashMap<u32, (u64, GuestConf)>,
    /// QEMU processes whose command line was checked: (pid, start ticks).
    verified_qemu: HashMap<u32, (u32, u64)>,
    /// CT init processes: (pid, start ticks).
    ct_init: HashMap<u32, (u32, u64)>,
    /// Counters of the previous fast sample.
    counters: HashMap<u32, GuestCounters>,
}

/// A guest's counters in one fast sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct GuestCounters {
    /// The guest's process (pid, start ticks): when it changes, the guest restarted and the
    /// counters started over.
    identity: Option<(u32, u64)>,
    /// VM: clock ticks of the QEMU process; CT: microseconds of the cgroup.
    cpu: Option<u64>,
    io: Option<(u64, u64)>,
    /// Host-side (received, transmitted) bytes of the guest's ports.
    net: Option<(u64, u64)>,
}

/// What the fast sample already knows when it gets to the guests.
pub(super) struct FastContext<'a> {
    pub node: Option<&'a str>,
    pub host_cpus: Option<u32>,
    pub host_uptime: Option<f64>,
    pub elapsed: Option<f64>,
    /// Guest ports of `/proc/net/dev`, summed per VMID.
    pub ports: &'a HashMap<u32, NetCounters>,
}

impl Collector {
    /// Every guest of this node with its state and, when it runs, its usage.
    pub(super) fn guests_fast(
        &mut self,
        context: &FastContext<'_>,
        errors: &mut Vec<SourceError>,
    ) -> Vec<GuestFast> {
        let Some(entries) = self.local_guests(context.node, errors) else {
            self.guest_cache = GuestCache::default();
            return Vec::new();
        };
        let cgroup_v2 = self.root.join("sys/fs/cgroup/cgroup.controllers").exists();
        if !cgroup_v2 {
            self.note_absent(
                "cgroup2",
                "no cgroup v2 hierarchy: no guest memory, I/O or pressure",
            );
        }
        let running_cts = if entries.iter().any(|e| e.kind == GuestType::Lxc) {
            self.source("proc/net/unix", net_unix::running_containers, errors)
                .unwrap_or_default()
        } else {
            HashSet::new()
        };
        let previous = std::mem::take(&mut self.guest_cache.counters);
        let mut counters = HashMap::with_capacity(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        for entry in &entries {
            let conf = self.cached_conf(entry, errors);
            let mut guest = GuestFast {
                vmid: entry.vmid,
                kind: entry.kind,
                name: Some(conf.display_name(entry.kind, entry.vmid)),
                status: GuestStatus::Stopped,
                lock: conf.lock.clone(),
                ..GuestFast::default()
            };
            let process = match entry.kind {
                GuestType::Lxc if running_cts.contains(&entry.vmid) => {
                    guest.status = GuestStatus::Running;
                    let events = format!("sys/fs/cgroup/lxc/{}/cgroup.events", entry.vmid);
                    if self
                        .optional_source(&events, |t, _| Ok(cgroup::parse_frozen(t)), errors)
                        .unwrap_or(false)
                    {
                        guest.status = GuestStatus::Paused;
                    }
                    self.ct_init(entry.vmid, errors)
                }
                GuestType::Qemu => match self.qemu_process(entry.vmid, errors) {
                    Some((pid, stat)) => {
                        guest.status = if matches!(stat.state, 'T' | 't') {
                            GuestStatus::Paused
                        } else {
                            GuestStatus::Running
                        };
                        Some((pid, stat))
                    }
                    None => None,
                },
                _ => None,
            };
            if guest.status == GuestStatus::Stopped {
                out.push(guest);
                continue;
            }
            let now = self.guest_usage(
                entry, &conf, process, cgroup_v2, context, &mut guest, errors,
            );
            let before = previous
                .get(&entry.vmid)
                .filter(|b| b.identity == now.identity);
            self.guest_rates(entry.kind, before, &now, context, &mut guest);
            counters.insert(entry.vmid, now);
            out.push(guest);
        }
        let current: HashSet<u32> = entries.iter().map(|e| e.vmid).collect();
        self.guest_cache.counters = counters;
        self.guest_cache
            .configs
            .retain(|id, _| current.contains(id));
        self.guest_cache
            .verified_qemu
            .retain(|id, _| current.contains(id));
        self.guest_cache
            .ct_init
            .retain(|id, _| current.contains(id));
        out
    }

    /// The configuration facts of every guest of this node, re-reading every config.
    /// The configs of this node's guests (`entries`: its `.vmlist` entries, `None` when they
    /// are not known).
    pub(super) fn guest_configs(
        &mut self,
        entries: Option<&[VmListEntry]>,
        host_cpus: Option<u32>,
        errors: &mut Vec<SourceError>,
    ) -> Vec<GuestConfig> {
        let Some(entries) = entries else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let kind = entry.kind;
            let parse =
                |text: &str, problems: &mut Problems| Ok(guest_config::parse(text, kind, problems));
            if let Some(conf) = self.source(&config_path(entry), parse, errors) {
                out.push(conf.to_guest_config(entry.vmid, entry.kind, host_cpus));
                self.guest_cache
                    .configs
                    .insert(entry.vmid, (entry.version, conf));
            }
        }
        out
    }

    /// `.vmlist` entries of this node; `None` on a host without Proxmox (noted once) or when
    /// `.vmlist` or the node name cannot be read (recorded in `errors`).
    fn local_guests(
        &mut self,
        node: Option<&str>,
        errors: &mut Vec<SourceError>,
    ) -> Option<Vec<VmListEntry>> {
        let node = node?;
        // `vmlist` looks for /etc/pve (once a cycle: each look may be a hand-off, see `guard`).
        let list = self.vmlist(errors)?;
        Some(list.into_iter().filter(|e| e.node == node).collect())
    }

    /// Every guest of the cluster (`.vmlist`); `None` on a host without Proxmox (noted once)
    /// or when `.vmlist` cannot be read (recorded in `errors`).
    pub(super) fn vmlist(&mut self, errors: &mut Vec<SourceError>) -> Option<Vec<VmListEntry>> {
        // Read first and look for /etc/pve only when `.vmlist` is missing: each is a hand-off
        // to the /etc/pve reader (see `guard`), and this runs every fast cycle.
        let before = errors.len();
        let vmlist = "etc/pve/.vmlist";
        if let Some(list) = self.optional_source(vmlist, pmxcfs::parse_vmlist, errors) {
            return Some(list);
        }
        if errors.len() > before {
            return None;
        }
        if !self.is_dir("etc/pve") {
            self.note_absent("pve", "no /etc/pve: not a Proxmox VE node, no guests");
            return None;
        }
        // /etc/pve without `.vmlist`: an error, as any missing file is.
        self.source(vmlist, pmxcfs::parse_vmlist, errors)
    }

    /// The guest's config, from the cache while its `.vmlist` version is unchanged. A config
    /// that cannot be read is recorded and replaced by the defaults for this cycle. Lines of it
    /// that do not read are the medium sample's to report (it reads every config every time).
    fn cached_conf(&mut self, entry: &VmListEntry, errors: &mut Vec<SourceError>) -> GuestConf {
        if let Some((version, conf)) = self.guest_cache.configs.get(&entry.vmid) {
            if *version == entry.version {
                return conf.clone();
            }
        }
        let kind = entry.kind;
        let parse = |text: &str, _: &mut Problems| {
            Ok(guest_config::parse(text, kind, &mut Problems::new()))
        };
        match self.source(&config_path(entry), parse, errors) {
            Some(conf) => {
                self.guest_cache
                    .configs
                    .insert(entry.vmid, (entry.version, conf.clone()));
                conf
            }
            None => GuestConf::default(),
        }
    }

    /// The QEMU process of a VM, if the VM runs: pid and `/proc/<pid>/stat`.
    fn qemu_process(
        &mut self,
        vmid: u32,
        errors: &mut Vec<SourceError>,
    ) -> Option<(u32, pid_stat::PidStat)> {
        let pidfile = format!("/var/run/qemu-server/{vmid}.pid");
        let pid: u32 =
            self.optional_source(&pidfile[1..], whole(pid_stat::parse_pidfile), errors)?;
        // A pid file without its process is a VM that did not shut down cleanly: stopped.
        let stat =
            self.optional_source(&format!("proc/{pid}/stat"), whole(pid_stat::parse), errors)?;
        if stat.state == 'Z' {
            return None;
        }
        if self.guest_cache.verified_qemu.get(&vmid) == Some(&(pid, stat.start_ticks)) {
            return Some((pid, stat));
        }
        let cmdline = self.optional_source(
            &format!("proc/{pid}/cmdline"),
            |t, _| Ok(t.to_owned()),
            errors,
        )?;
        if !is_qemu_of(&cmdline, &pidfile) {
            return None;
        }
        self.guest_cache
            .verified_qemu
            .insert(vmid, (pid, stat.start_ticks));
        Some((pid, stat))
    }

    /// The init process of a running CT: pid and `/proc/<pid>/stat`.
    fn ct_init(
        &mut self,
        vmid: u32,
        errors: &mut Vec<SourceError>,
    ) -> Option<(u32, pid_stat::PidStat)> {
        if let Some((pid, start)) = self.guest_cache.ct_init.get(&vmid).copied() {
            let stat =
                self.optional_source(&format!("proc/{pid}/stat"), whole(pid_stat::parse), errors);
            if let Some(stat) = stat.filter(|s| s.start_ticks == start) {
                return Some((pid, stat));
            }
        }
        let dir = format!("sys/fs/cgroup/lxc/{vmid}/ns/");
        let mut pids = self
            .optional_source(&format!("{dir}cgroup.procs"), cgroup::parse_procs, errors)
            .unwrap_or_default();
        if pids.is_empty() {
            pids = self
                .optional_source(
                    &format!("{dir}init.scope/cgroup.procs"),
                    cgroup::parse_procs,
                    errors,
                )
                .unwrap_or_default();
        }
        let pid = pids.into_iter().min()?;
        let stat =
            self.optional_source(&format!("proc/{pid}/stat"), whole(pid_stat::parse), errors)?;
        self.guest_cache
            .ct_init
            .insert(vmid, (pid, stat.start_ticks));
        Some((pid, stat))
    }

    /// Fills in the guest's absolute figures and returns its counters.
    #[allow(clippy::too_many_arguments)]
    fn guest_usage(
        &mut self,
        entry: &VmListEntry,
        conf: &GuestConf,
        process: Option<(u32, pid_stat::PidStat)>,
        cgroup_v2: bool,
        context: &FastContext<'_>,
        guest: &mut GuestFast,
        errors: &mut Vec<SourceError>,
    ) -> GuestCounters {
        let vmid = entry.vmid;
        let hz = self.user_hz as f64;
        guest.cpus = conf.cpus(entry.kind, context.host_cpus);
        if let (Some(up), Some((_, stat))) = (context.host_uptime, process) {
            let age = (up - stat.start_ticks as f64 / hz).max(0.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite, ≥ 0
            {
                guest.uptime_seconds = Some(age.trunc() as u64);
            }
        }
        let mut now = GuestCounters {
            identity: process.map(|(pid, stat)| (pid, stat.start_ticks)),
            net: context.ports.get(&vmid).map(|p| (p.rx_bytes, p.tx_bytes)),
            ..GuestCounters::default()
        };
        if entry.kind == GuestType::Qemu {
            now.cpu = process.map(|(_, stat)| stat.cpu_ticks);
            guest.mem_limit_bytes = Some(conf.memory_bytes(entry.kind));
        }
        if !cgroup_v2 {
            return now;
        }
        let dir = match entry.kind {
            GuestType::Lxc => format!("sys/fs/cgroup/lxc/{vmid}/"),
            _ => format!("sys/fs/cgroup/qemu.slice/{vmid}.scope/"),
        };
        let file = |name: &str| format!("{dir}{name}");
        if entry.kind == GuestType::Lxc {
            now.cpu = self.optional_source(&file("cpu.stat"), cgroup::parse_cpu_stat, errors);
            let max = self.optional_source(&file("memory.max"), whole(cgroup::parse_limit), errors);
            guest.mem_limit_bytes = max.flatten().or(Some(conf.memory_bytes(entry.kind)));
        }
        let current =
            self.optional_source(&file("memory.current"), whole(cgroup::parse_limit), errors);
        let page_cache =
            self.optional_source(&file("memory.stat"), cgroup::parse_memory_stat_file, errors);
        guest.mem_used_bytes = current
            .flatten()
            .zip(page_cache)
            .map(|(c, f)| c.saturating_sub(f));
        now.io = self
            .optional_source(&file("io.stat"), cgroup::parse_io_stat, errors)
            .map(|devices| cgroup::io_totals(&devices));
        let pressure = self.pressure_files(&dir, ".pressure", errors);
        guest.pressure = (pressure != common::sample::Pressure::default()).then_some(pressure);
        now
    }

    /// Fills in the guest's rates from two samples of the same guest process.
    fn guest_rates(
        &self,
        kind: GuestType,
        before: Option<&GuestCounters>,
        now: &GuestCounters,
        context: &FastContext<'_>,
        guest: &mut GuestFast,
    ) {
        let Some(before) = before else { return };
        let elapsed = context.elapsed;
        // CPU time in the counter's unit per second of wall time = cores busy.
        let per_second = match kind {
            GuestType::Lxc => 1_000_000.0,
            _ => self.user_hz as f64,
        };
        let cores = before
            .cpu
            .zip(now.cpu)
            .and_then(|(b, a)| a.checked_sub(b))
            .zip(elapsed)
            .map(|(delta, seconds)| delta as f64 / per_second / seconds);
        if let Some(cores) = cores {
            let share = |of: f64| round2((cores * 100.0 / of).clamp(0.0, 100.0));
            guest.cpu_percent = guest.cpus.filter(|c| *c > 0.0).map(share);
            guest.cpu_host_percent = context.host_cpus.map(|h| share(f64::from(h)));
        }
        if let (Some((r0, w0)), Some((r1, w1))) = (before.io, now.io) {
            guest.disk_read_bytes_per_s = rate(r0, r1, elapsed);
            guest.disk_write_bytes_per_s = rate(w0, w1, elapsed);
        }
        if let (Some((rx0, tx0)), Some((rx1, tx1))) = (before.net, now.net) {
            guest.net_out_bytes_per_s = rate(rx0, rx1, elapsed);
            guest.net_in_bytes_per_s = rate(tx0, tx1, elapsed);
        }
    }
}

fn config_path(entry: &VmListEntry) -> String {
    match entry.kind {
        GuestType::Lxc => format!("etc/pve/lxc/{}.conf", entry.vmid),
        _ => format!("etc/pve/qemu-server/{}.conf", entry.vmid),
    }
}

/// Whether a NUL-separated command line is a QEMU started by Proxmox with this pid file.
fn is_qemu_of(cmdline: &str, pidfile: &str) -> bool {
    let mut args = cmdline.split('\0');
    if !args.next().is_some_and(|argv0| argv0.ends_with("kvm")) {
        return false;
    }
    let mut previous = "";
    for arg in args {
        if previous == "-pidfile" && arg == pidfile {
            return true;
        }
        previous = arg;
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn qemu_command_line() {
        let cmdline = include_str!("../../../fixtures/pve-node/proc/1853/cmdline");
        assert!(is_qemu_of(cmdline, "/var/run/qemu-server/100.pid"));
        assert!(!is_qemu_of(cmdline, "/var/run/qemu-server/101.pid"));
        assert!(!is_qemu_of(
            "/usr/bin/bash\0-pidfile\0/var/run/qemu-server/100.pid\0",
            "/var/run/qemu-server/100.pid"
        ));
        assert!(!is_qemu_of("", "/var/run/qemu-server/100.pid"));
    }

    #[test]
    fn damaged_command_lines_are_no_qemu() {
        let cmdline = include_str!("../../../fixtures/pve-node/proc/1853/cmdline");
        let pidfile = "/var/run/qemu-server/100.pid";
        // Cut anywhere before the pid file argument ends, it is not (yet) this VM's QEMU.
        let end = cmdline.find(pidfile).unwrap() + pidfile.len();
        for cut in (0..=cmdline.len()).filter(|c| cmdline.is_char_boundary(*c)) {
            assert_eq!(is_qemu_of(&cmdline[..cut], pidfile), cut >= end, "{cut}");
        }
    }
}
