//! Collectors: one module per data source, each a pure parser over text plus the `Collector`
//! that reads the files under a root directory (`/` on a node, a fixture tree in tests), runs the
//! few commands we need through a `CommandRunner`, and keeps the previous counters needed to turn
//! them into rates.
//!
//! One source failing never aborts a sample: its fields stay `None` and the sample's `errors`
//! names the file and what was wrong with it. Within a file, a line or field a parser cannot
//! understand is skipped and becomes one entry of `errors` (`line N: ...`, see `problem`); it
//! never costs the rest of the file. A source the node does not have at all (no ZFS, no
//! Proxmox, no PSI, a missing command) is not an error: its data is absent, and it is logged
//! once.
//!
//! Reported once: a file read every cycle that stays broken shows in every sample's `errors`
//! (each sample stands alone on the server), but each distinct problem is logged only the
//! first time, a sample never lists the same problem twice, and one file contributes at most
//! `DEFAULT_PROBLEMS_PER_FILE` line problems to a sample. Guest configs are parsed in the fast
//! cycle only when pmxcfs says they changed; their line problems are reported by the medium
//! sample, which reads every config.
//!
//! Cost: every file is read at most once per cycle (`/proc/net/dev` serves the host and the
//! guests), guest configs are re-read only when pmxcfs bumps their version in `.vmlist`, and
//! no command runs in the fast cycle.

pub mod arcstats;
mod backup_history;
pub mod cgroup;
pub mod command;
pub mod cpuinfo;
pub mod diskstats;
pub mod guard;
pub mod guest_config;
mod guests;
pub mod ha;
pub mod hostname;
pub mod hwmon;
pub mod jobs;
pub mod json;
pub mod loadavg;
pub mod localtime;
pub mod meminfo;
pub mod mounts;
pub mod net_dev;
pub mod net_unix;
mod operations;
pub mod pid_stat;
pub mod pmxcfs;
pub mod pressure;
pub mod problem;
pub mod replication;
pub mod section_config;
pub mod smart;
pub mod stat;
pub mod storage;
pub mod tasks;
pub mod uptime;
pub mod versions;
pub mod vzdump_log;
pub mod zpool;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc as Shared, Mutex};
use std::time::{Duration, Instant};

use common::sample::{
    Arc, Disk, FastSample, MediumSample, NetInterface, Pressure, SlowSample, SourceError,
    SCHEMA_VERSION,
};

use crate::error::{Error, Result};
use command::{CommandError, CommandRunner, FixtureRunner, SystemRunner};
use hostname::short_name;
use mounts::{FixtureStatFs, StatFs, SystemStatFs};
use net_dev::InterfaceKind;
use problem::Problems;

/// Clock ticks per second of `/proc/<pid>/stat` times. The kernel fixes USER_HZ at 100 on every
/// architecture Proxmox runs on, whatever its internal HZ.
pub const DEFAULT_USER_HZ: u64 = 100;

/// Line problems of one file that one sample lists; the rest are counted in one more entry.
/// Enough to see what is wrong, and a file of garbage cannot swell every sample.
pub const DEFAULT_PROBLEMS_PER_FILE: usize = 10;

/// Distinct problems logged; past this, new ones are only in the samples (a file whose bad
/// line changes every cycle must not grow the agent's memory).
const MAX_LOGGED_PROBLEMS: usize = 1000;

/// Reads a node's files under `root` and produces samples.
pub struct Collector {
    root: PathBuf,
    runner: Box<dyn CommandRunner>,
    statfs: Box<dyn StatFs>,
    user_hz: u64,
    previous: Previous,
    guest_cache: guests::GuestCache,
    interface_kinds: HashMap<String, InterfaceKind>,
    whole_disks: HashMap<String, bool>,
    /// Sources already logged as absent, so that each is logged once.
    noted_absent: HashSet<String>,
    /// Line problems already logged, so that each is logged once.
    noted_problems: RefCell<HashSet<String>>,
    /// At most this many line problems of one file per sample (`None`: all of them).
    problems_per_file: Option<usize>,
    /// Backups learnt from the task index and logs so far, and where reading stopped.
    backup_history: backup_history::BackupHistory,
    /// Temperature sensors as last listed (`None`: list them at the next read).
    sensors: Option<operations::Sensors>,
    /// The reader threads of files that can hang (`guard`).
    guard: RefCell<guard::Guard>,
    /// What the collector is reading now, for whoever waits on it.
    activity: Activity,
}

/// What a collector is busy with (the file or command it is in), readable from another
/// thread: the run loop names it when a collection takes so long that the next is skipped.
#[derive(Debug, Clone, Default)]
pub struct Activity(Shared<Mutex<String>>);

impl Activity {
    fn set(&self, parts: &[&str]) {
        // Reuses the buffer: set for every file read, it must cost next to nothing.
        if let Ok(mut now) = self.0.lock() {
            now.clear();
            for part in parts {
                now.push_str(part);
            }
        }
    }

    /// The file or command last started.
    pub fn get(&self) -> String {
        self.0.lock().map(|now| now.clone()).unwrap_or_default()
    }
}

/// The counters of the previous fast sample.
#[derive(Debug, Default)]
struct Previous {
    at: Option<Instant>,
    cpu: Option<stat::CpuStat>,
    arc: Option<arcstats::ArcStats>,
    net: HashMap<String, net_dev::NetCounters>,
    disks: HashMap<String, diskstats::DiskCounters>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("root", &self.root)
            .field("user_hz", &self.user_hz)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector of the node under `root`. A fixture tree (a root other than `/` with a
    /// `cmd/` directory) answers commands and statvfs from its captures; otherwise the real
    /// commands run, with a 10 s timeout.
    pub fn new(root: impl Into<PathBuf>) -> Collector {
        let root = root.into();
        let cmd = root.join("cmd");
        if root != Path::new("/") && cmd.is_dir() {
            let statfs = FixtureStatFs {
                file: cmd.join("stat-f.txt"),
            };
            let runner = FixtureRunner { dir: cmd };
            Collector::with_parts(root, Box::new(runner), Box::new(statfs))
        } else {
            let statfs = SystemStatFs { root: root.clone() };
            Collector::with_parts(root, Box::new(SystemRunner::default()), Box::new(statfs))
        }
    }

    /// A collector that runs commands through `runner` (filesystem usage as `new` picks it).
    pub fn with_runner(root: impl Into<PathBuf>, runner: Box<dyn CommandRunner>) -> Collector {
        let mut collector = Collector::new(root);
        collector.runner = runner;
        collector
    }

    fn with_parts(
        root: PathBuf,
        runner: Box<dyn CommandRunner>,
        statfs: Box<dyn StatFs>,
    ) -> Collector {
        Collector {
            root,
            runner,
            statfs,
            user_hz: DEFAULT_USER_HZ,
            previous: Previous::default(),
            guest_cache: guests::GuestCache::default(),
            interface_kinds: HashMap::new(),
            whole_disks: HashMap::new(),
            noted_absent: HashSet::new(),
            noted_problems: RefCell::new(HashSet::new()),
            problems_per_file: Some(DEFAULT_PROBLEMS_PER_FILE),
            backup_history: backup_history::BackupHistory::default(),
            sensors: None,
            guard: RefCell::new(guard::Guard::new(
                Shared::new(guard::RealFiles),
                guard::DEFAULT_TIMEOUT,
            )),
            activity: Activity::default(),
        }
    }

    /// How long a file outside `/proc` and `/sys` (see `guard`) or a command may take before
    /// it is given up and reported in the sample (`guard::DEFAULT_TIMEOUT` unless changed).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.guard.get_mut().set_timeout(timeout);
        self.runner.set_timeout(timeout);
    }

    /// Reads the guarded files (all but `/proc` and `/sys`) through `files` (tests).
    pub fn set_files(&mut self, files: Shared<dyn guard::Files>) {
        self.guard.get_mut().set_files(files);
    }

    /// What the collector is reading now; shared, so it can be read while it works.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Whether `relative` exists; through its reader thread unless it is a kernel file. A
    /// file that does not answer in time counts as existing, so that reading it next reports
    /// why it cannot be read instead of taking the node for one without it.
    fn exists(&self, relative: &str) -> bool {
        self.kind(relative) != guard::Kind::Missing
    }

    /// Whether `relative` is a directory (or does not answer in time: see `exists`).
    fn is_dir(&self, relative: &str) -> bool {
        matches!(self.kind(relative), guard::Kind::Dir)
    }

    fn kind(&self, relative: &str) -> guard::Kind {
        let path = self.root.join(relative);
        match guard::subtree(relative) {
            None => guard::Files::kind(&guard::RealFiles, &path),
            Some(subtree) => {
                self.activity.set(&["/", relative]);
                let kind = self.guard.borrow_mut().kind(subtree, &path);
                kind.unwrap_or(guard::Kind::Dir)
            }
        }
    }

    /// Lists at most `limit` line problems of one file in a sample (`None`: every one, as
    /// `collect --check` does). `DEFAULT_PROBLEMS_PER_FILE` unless changed.
    pub fn set_problems_per_file(&mut self, limit: Option<usize>) {
        self.problems_per_file = limit;
    }

    /// Sets the clock ticks per second of process times (`DEFAULT_USER_HZ` unless changed).
    pub fn set_user_hz(&mut self, hz: u64) {
        self.user_hz = hz.max(1);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `metric:fast` sample, now.
    pub fn fast(&mut self) -> FastSample {
        self.fast_at(Instant::now())
    }

    /// The `metric:fast` sample as of `now`, a monotonic time: rates are the counter deltas
    /// since the previous call divided by the time between the two `now`s. The first call,
    /// and any call no time after the previous one, has no rates.
    pub fn fast_at(&mut self, now: Instant) -> FastSample {
        let mut errors = Vec::new();
        let mut sample = FastSample {
            schema: SCHEMA_VERSION,
            ..FastSample::default()
        };
        let elapsed = self
            .previous
            .at
            .map(|at| now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        self.previous.at = Some(now);

        sample.hostname = self.hostname(&mut errors);
        if let Some(load) = self.source("proc/loadavg", loadavg::parse, &mut errors) {
            sample.load1 = load.one;
            sample.load5 = load.five;
            sample.load15 = load.fifteen;
        }
        if let Some(mem) = self.source("proc/meminfo", meminfo::parse, &mut errors) {
            sample.mem_total_bytes = mem.total;
            sample.mem_available_bytes = mem.available;
            sample.mem_used_bytes = mem.used();
            sample.swap_total_bytes = mem.swap_total;
            sample.swap_free_bytes = mem.swap_free;
        }
        let uptime = self.source("proc/uptime", whole(uptime::parse_seconds), &mut errors);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite and ≥ 0
        {
            sample.uptime_seconds = uptime.map(|s| s.trunc() as u64);
        }
        let host_cpus = self.cpu(&mut sample, &mut errors);
        sample.pressure = self.host_pressure(&mut errors);
        self.arc(&mut sample, &mut errors);

        let interfaces = self.source("proc/net/dev", net_dev::parse, &mut errors);
        let mut guest_ports: HashMap<u32, net_dev::NetCounters> = HashMap::new();
        sample.net = match interfaces {
            Some(interfaces) => self.net(interfaces, elapsed, &mut guest_ports),
            None => {
                self.previous.net.clear();
                Vec::new()
            }
        };
        sample.disks = self.disks(elapsed, &mut errors);

        let context = guests::FastContext {
            node: sample.hostname.as_deref().map(short_name),
            host_cpus,
            host_uptime: uptime,
            elapsed,
            ports: &guest_ports,
        };
        sample.guests = self.guests_fast(&context, &mut errors);
        sample.temperatures = self.temperatures(&mut errors);
        sample.errors = bounded(dedup(errors));
        sample
    }

    /// Host CPU shares; returns the number of CPUs.
    fn cpu(&mut self, sample: &mut FastSample, errors: &mut Vec<SourceError>) -> Option<u32> {
        let Some(now) = self.source("proc/stat", stat::parse, errors) else {
            self.previous.cpu = None;
            return None;
        };
        if let Some(before) = &self.previous.cpu {
            let total = before.total.as_ref().zip(now.total.as_ref());
            if let Some(p) = total.and_then(|(b, a)| stat::percent_between(b, a)) {
                sample.cpu_percent = Some(round2(p.busy));
                sample.cpu_user_percent = Some(round2(p.user));
                sample.cpu_system_percent = Some(round2(p.system));
                sample.cpu_iowait_percent = Some(round2(p.iowait));
                sample.cpu_steal_percent = Some(round2(p.steal));
            }
            // CPUs are matched by their number: one going offline (or a line that does not
            // read) must not shift the others.
            if !now.per_cpu.is_empty() {
                sample.cpu_per_core_percent = now
                    .per_cpu
                    .iter()
                    .enumerate()
                    .map(|(i, (n, a))| {
                        let b = before
                            .per_cpu
                            .get(i)
                            .filter(|(m, _)| m == n)
                            .or_else(|| before.per_cpu.iter().find(|(m, _)| m == n))?;
                        stat::percent_between(&b.1, a).map(|p| round2(p.busy))
                    })
                    .collect();
            }
        }
        let count = u32::try_from(now.per_cpu.len()).ok().filter(|n| *n > 0);
        self.previous.cpu = Some(now);
        count
    }

    fn host_pressure(&mut self, errors: &mut Vec<SourceError>) -> Option<Pressure> {
        if !self.root.join("proc/pressure").is_dir() {
            self.note_absent("/proc/pressure", "kernel without PSI: no pressure figures");
            return None;
        }
        Some(self.pressure_files("proc/pressure/", "", errors))
    }

    /// Reads `<dir>cpu<suffix>`, `<dir>io<suffix>` and `<dir>memory<suffix>`; missing files
    /// leave their figures out.
    fn pressure_files(&self, dir: &str, suffix: &str, errors: &mut Vec<SourceError>) -> Pressure {
        let mut read = |name: &str| {
            self.optional_source(&format!("{dir}{name}{suffix}"), pressure::parse, errors)
        };
        let cpu = read("cpu");
        let io = read("io");
        let memory = read("memory");
        Pressure {
            cpu_some: cpu.and_then(|p| p.some_avg10),
            cpu_full: cpu.and_then(|p| p.full_avg10),
            io_some: io.and_then(|p| p.some_avg10),
            io_full: io.and_then(|p| p.full_avg10),
            memory_some: memory.and_then(|p| p.some_avg10),
            memory_full: memory.and_then(|p| p.full_avg10),
        }
    }

    fn arc(&mut self, sample: &mut FastSample, errors: &mut Vec<SourceError>) {
        let path = "proc/spl/kstat/zfs/arcstats";
        if !self.root.join(path).exists() {
            self.note_absent("arcstats", "no ZFS ARC statistics: node without ZFS");
            self.previous.arc = None;
            return;
        }
        let now = self.source(path, arcstats::parse, errors);
        if let Some(now) = now {
            let hit_ratio = self
                .previous
                .arc
                .as_ref()
                .and_then(|before| arcstats::hit_ratio(before, &now))
                .map(round2);
            sample.arc = Some(Arc {
                size_bytes: now.size,
                target_bytes: now.target,
                min_bytes: now.min,
                max_bytes: now.max,
                hit_ratio_percent: hit_ratio,
            });
            sample.mem_arc_bytes = now.size;
            sample.mem_used_without_arc_bytes = sample
                .mem_used_bytes
                .zip(now.size)
                .map(|(used, arc)| used.saturating_sub(arc));
        }
        self.previous.arc = now;
    }

    /// The node's interfaces with rates; fills `guest_ports` with each guest's summed ports.
    fn net(
        &mut self,
        interfaces: Vec<(String, net_dev::NetCounters)>,
        elapsed: Option<f64>,
        guest_ports: &mut HashMap<u32, net_dev::NetCounters>,
    ) -> Vec<NetInterface> {
        let sysfs = self.root.join("sys/class/net");
        let use_sysfs = sysfs.is_dir();
        let mut out = Vec::new();
        let mut seen = HashMap::with_capacity(interfaces.len());
        let previous = std::mem::take(&mut self.previous.net);
        for (name, now) in interfaces {
            let kind = match net_dev::kind_by_name(&name) {
                InterfaceKind::Guest(vmid) => InterfaceKind::Guest(vmid),
                _ if !use_sysfs => net_dev::kind_by_name(&name),
                _ => match self.interface_kinds.get(&name) {
                    Some(kind) => *kind,
                    None => {
                        let dir = sysfs.join(&name);
                        let kind = if dir.is_dir() {
                            net_dev::kind_from_sysfs(
                                &name,
                                dir.join("bridge").exists(),
                                dir.join("bonding").exists(),
                                dir.join("device").exists(),
                            )
                        } else {
                            net_dev::kind_by_name(&name)
                        };
                        self.interface_kinds.insert(name.clone(), kind);
                        kind
                    }
                },
            };
            match kind {
                InterfaceKind::Guest(vmid) => {
                    let sum = guest_ports.entry(vmid).or_default();
                    sum.rx_bytes = sum.rx_bytes.saturating_add(now.rx_bytes);
                    sum.tx_bytes = sum.tx_bytes.saturating_add(now.tx_bytes);
                    sum.rx_packets = sum.rx_packets.saturating_add(now.rx_packets);
                    sum.tx_packets = sum.tx_packets.saturating_add(now.tx_packets);
                }
                InterfaceKind::Ignored => {}
                InterfaceKind::Physical | InterfaceKind::Bridge => {
                    let before = previous.get(&name);
                    let r = |f: fn(&net_dev::NetCounters) -> u64| {
                        before.and_then(|b| rate(f(b), f(&now), elapsed))
                    };
                    out.push(NetInterface {
                        name: name.clone(),
                        bridge: kind == InterfaceKind::Bridge,
                        rx_bytes_per_s: r(|c| c.rx_bytes),
                        tx_bytes_per_s: r(|c| c.tx_bytes),
                        rx_packets_per_s: r(|c| c.rx_packets),
                        tx_packets_per_s: r(|c| c.tx_packets),
                        rx_errors: now.rx_errors,
                        tx_errors: now.tx_errors,
                        rx_dropped: now.rx_dropped,
                        tx_dropped: now.tx_dropped,
                    });
                    seen.insert(name, now);
                }
            }
        }
        self.interface_kinds
            .retain(|name, _| seen.contains_key(name));
        self.previous.net = seen;
        out
    }

    fn disks(&mut self, elapsed: Option<f64>, errors: &mut Vec<SourceError>) -> Vec<Disk> {
        let previous = std::mem::take(&mut self.previous.disks);
        let Some(devices) = self.source("proc/diskstats", diskstats::parse, errors) else {
            return Vec::new();
        };
        let sys_block = self.root.join("sys/block");
        let use_sysfs = sys_block.is_dir();
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (name, now) in devices {
            let reported = match self.whole_disks.get(&name) {
                Some(reported) => *reported,
                None => {
                    let reported = if use_sysfs {
                        sys_block.join(&name).exists() && diskstats::is_reported_whole_device(&name)
                    } else {
                        diskstats::is_reported_by_name(&name)
                    };
                    self.whole_disks.insert(name.clone(), reported);
                    reported
                }
            };
            if !reported {
                continue;
            }
            let before = previous.get(&name);
            let r = |f: fn(&diskstats::DiskCounters) -> u64| {
                before.and_then(|b| rate(f(b), f(&now), elapsed))
            };
            let busy = before.and_then(|b| {
                let ms = now.io_ticks_ms.checked_sub(b.io_ticks_ms)?;
                let seconds = elapsed?;
                Some(round2((ms as f64 / 10.0 / seconds).clamp(0.0, 100.0)))
            });
            out.push(Disk {
                name: name.clone(),
                read_bytes_per_s: r(|c| c.read_sectors.saturating_mul(diskstats::SECTOR_BYTES)),
                write_bytes_per_s: r(|c| c.write_sectors.saturating_mul(diskstats::SECTOR_BYTES)),
                read_iops: r(|c| c.reads),
                write_iops: r(|c| c.writes),
                busy_percent: busy,
            });
            seen.insert(name, now);
        }
        self.previous.disks = seen;
        out
    }

    /// The `metric:medium` sample: ZFS pools, filesystems, Proxmox storages, guest configs,
    /// backups, replication and HA.
    pub fn medium(&mut self) -> MediumSample {
        let mut errors = Vec::new();
        let mut sample = MediumSample {
            schema: SCHEMA_VERSION,
            ..MediumSample::default()
        };
        sample.pools = self.pools(&mut errors);
        if let Some(mounts) = self.source("proc/mounts", mounts::parse, &mut errors) {
            for mount in mounts::reported(mounts) {
                match self.statfs.stat(&mount.mountpoint) {
                    Ok(usage) => sample.filesystems.push(usage.to_filesystem(&mount)),
                    Err(message) => errors.push(SourceError {
                        source: format!("statvfs {}", mount.mountpoint),
                        message,
                    }),
                }
            }
        }
        let host_cpus = self.host_cpu_count();
        let node = self.node_name(&mut errors);
        let storage_configs = self.storage_configs(&mut errors);
        sample.storages = self.storages(storage_configs.as_deref(), node.as_deref(), &mut errors);
        let vmlist = self.vmlist(&mut errors);
        let local: Option<Vec<pmxcfs::VmListEntry>> = vmlist
            .as_ref()
            .zip(node.as_deref())
            .map(|(list, node)| list.iter().filter(|e| e.node == node).cloned().collect());
        sample.guests = self.guest_configs(local.as_deref(), host_cpus, &mut errors);
        if let (Some(vmlist), Some(node)) = (&vmlist, &node) {
            let view = operations::NodeView {
                node,
                vmlist,
                storages: storage_configs.as_deref().unwrap_or(&[]),
            };
            (sample.backup_jobs, sample.backups) = self.backups(&view, &mut errors);
            sample.replication = self.replication(&view, &mut errors);
            sample.ha = self.ha(&view, &mut errors);
        }
        self.refresh_sensors(&mut errors);
        sample.errors = bounded(dedup(errors));
        sample
    }

    fn pools(&mut self, errors: &mut Vec<SourceError>) -> Vec<common::sample::ZfsPool> {
        let has_zfs = self.root.join("sys/module/zfs").exists()
            || self.root.join("proc/spl/kstat/zfs").exists();
        if !has_zfs {
            self.note_absent("zfs", "ZFS module not loaded: no pools");
            return Vec::new();
        }
        let Some(text) = self.command("zpool", &zpool::LIST_ARGS, errors) else {
            // `zpool` hangs on a suspended pool and may be missing: the kernel still says
            // each pool's state.
            return self.kstat_pools(errors);
        };
        let mut pools = self
            .command_output("zpool list", &text, zpool::parse_list, errors)
            .unwrap_or_default();
        if !pools.is_empty() {
            if let Some(status) = self.command("zpool", &zpool::STATUS_ARGS, errors) {
                let mut details = zpool::parse_status(&status);
                for pool in &mut pools {
                    pool.status_details = details.remove(&pool.name);
                }
            }
        }
        pools
    }

    /// The pools of `/proc/spl/kstat/zfs/<pool>/state`, with their state only, by name.
    fn kstat_pools(&mut self, errors: &mut Vec<SourceError>) -> Vec<common::sample::ZfsPool> {
        let Ok(dir) = std::fs::read_dir(self.root.join("proc/spl/kstat/zfs")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join("state").is_file())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                let path = format!("proc/spl/kstat/zfs/{name}/state");
                let health = self.optional_source(&path, whole(zpool::parse_state), errors)?;
                Some(common::sample::ZfsPool {
                    name,
                    health: health.into(),
                    ..common::sample::ZfsPool::default()
                })
            })
            .collect()
    }

    /// `storage.cfg`; `None` when it is missing (noted once) or unreadable (an error).
    fn storage_configs(
        &mut self,
        errors: &mut Vec<SourceError>,
    ) -> Option<Vec<storage::StorageConf>> {
        let path = "etc/pve/storage.cfg";
        if !self.exists(path) {
            self.note_absent(
                "storage.cfg",
                "no /etc/pve/storage.cfg: no Proxmox storages",
            );
            return None;
        }
        self.source(path, storage::parse_config, errors)
    }

    fn storages(
        &mut self,
        configs: Option<&[storage::StorageConf]>,
        node: Option<&str>,
        errors: &mut Vec<SourceError>,
    ) -> Vec<common::sample::Storage> {
        let Some(configs) = configs else {
            return Vec::new();
        };
        let status = self.command("pvesm", &["status"], errors).and_then(|text| {
            self.command_output("pvesm status", &text, storage::parse_pvesm_status, errors)
        });
        storage::merge(configs, node, status.as_deref())
    }

    /// The `metric:slow` sample: versions, CPU model and count, cluster membership.
    pub fn slow(&mut self) -> SlowSample {
        let mut errors = Vec::new();
        let mut sample = SlowSample {
            schema: SCHEMA_VERSION,
            ..SlowSample::default()
        };
        let is_pve = self.is_dir("etc/pve");
        let members = if is_pve {
            self.source("etc/pve/.members", pmxcfs::parse_members, &mut errors)
        } else {
            None
        };
        sample.node_name = match members.as_ref().and_then(|m| m.nodename.clone()) {
            Some(name) => Some(name),
            None => self
                .hostname(&mut errors)
                .map(|h| short_name(&h).to_owned()),
        };
        sample.cluster = members.and_then(|m| m.cluster);

        let pvecfg = "usr/share/perl5/PVE/pvecfg.pm";
        let pve = if self.exists(pvecfg) {
            self.source(pvecfg, whole(versions::parse_pvecfg), &mut errors)
        } else if is_pve {
            self.command("pveversion", &[], &mut errors)
                .and_then(|text| match versions::parse_pveversion(&text) {
                    Ok(v) => Some(v),
                    Err(message) => {
                        errors.push(SourceError {
                            source: "pveversion".into(),
                            message,
                        });
                        None
                    }
                })
        } else {
            self.note_absent("pve", "no /etc/pve: not a Proxmox VE node");
            None
        };
        if let Some(pve) = pve {
            sample.pve_version = Some(pve.version);
            sample.pve_repoid = pve.repoid;
        }
        sample.zfs_version = self.optional_source(
            "sys/module/zfs/version",
            whole(versions::parse_line),
            &mut errors,
        );
        sample.kernel_version = self.source(
            "proc/sys/kernel/osrelease",
            whole(versions::parse_line),
            &mut errors,
        );
        if let Some(cpu) = self.source("proc/cpuinfo", cpuinfo::parse, &mut errors) {
            sample.cpu_model = cpu.model;
            sample.cpu_count = Some(cpu.count);
            sample.cpu_sockets = cpu.sockets;
        }
        (sample.smart, sample.smart_note) = self.smart(&mut errors);
        sample.drive_temperatures = self.drive_temperatures(&mut errors);
        sample.errors = bounded(dedup(errors));
        sample
    }

    /// The number of CPUs per `/proc/stat` (for guest CPU limits in the medium sample; the fast
    /// sample reports the file's problems).
    fn host_cpu_count(&self) -> Option<u32> {
        let bytes = read_bytes(&self.root.join("proc/stat")).ok()?;
        let mut problems = Problems::new();
        let text = problem::decode(&bytes, &mut problems);
        let stat = stat::parse(&text, &mut problems).ok()?;
        u32::try_from(stat.per_cpu.len()).ok().filter(|n| *n > 0)
    }

    /// This node's name as Proxmox uses it: the short host name.
    fn node_name(&self, errors: &mut Vec<SourceError>) -> Option<String> {
        self.hostname(errors).map(|h| short_name(&h).to_owned())
    }

    /// The node name: the kernel's idea of it, else `/etc/hostname`.
    fn hostname(&self, errors: &mut Vec<SourceError>) -> Option<String> {
        let kernel = self.root.join("proc/sys/kernel/hostname");
        if kernel.exists() {
            return self.source("proc/sys/kernel/hostname", whole(hostname::parse), errors);
        }
        self.source("etc/hostname", whole(hostname::parse), errors)
    }

    /// Runs a command. A command that is not installed is logged once and gives `None`
    /// without an error; any other failure is recorded in `errors`.
    fn command(
        &mut self,
        program: &str,
        args: &[&str],
        errors: &mut Vec<SourceError>,
    ) -> Option<String> {
        self.activity
            .set(&["command ", &command::command_line(program, args)]);
        match self.runner.run(program, args) {
            Ok(text) => Some(text),
            Err(CommandError::NotFound { program }) => {
                let message = format!("{program} is not installed: its data is not collected");
                self.note_absent(&program, &message);
                None
            }
            Err(e) => {
                let mut source = program.to_owned();
                if let Some(first) = args.first() {
                    source.push(' ');
                    source.push_str(first);
                }
                errors.push(SourceError {
                    source,
                    message: e.to_string(),
                });
                None
            }
        }
    }

    /// Parses a command's output like a file: its problems are reported under `source`, and so
    /// is a failure.
    fn command_output<T>(
        &self,
        source: &str,
        text: &str,
        parse: impl FnOnce(&str, &mut Problems) -> Result<T, String>,
        errors: &mut Vec<SourceError>,
    ) -> Option<T> {
        let mut problems = Problems::new();
        let result = parse(text, &mut problems);
        self.report(source, problems, errors);
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                errors.push(SourceError {
                    source: source.to_owned(),
                    message,
                });
                None
            }
        }
    }

    /// Logs, once per collector, that a source does not exist on this node.
    fn note_absent(&mut self, what: &str, message: &str) {
        if self.noted_absent.insert(what.to_owned()) {
            log::info!("{message}");
        }
    }

    /// Reads `relative` under the root and parses it; on failure records why in `errors`, and
    /// so are the lines the parser skipped.
    fn source<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str, &mut Problems) -> Result<T, String>,
        errors: &mut Vec<SourceError>,
    ) -> Option<T> {
        self.read_source(relative, parse, errors, false)
    }

    /// Like `source`, but a file that does not exist is no error (a kernel or node without it).
    fn optional_source<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str, &mut Problems) -> Result<T, String>,
        errors: &mut Vec<SourceError>,
    ) -> Option<T> {
        self.read_source(relative, parse, errors, true)
    }

    fn read_source<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str, &mut Problems) -> Result<T, String>,
        errors: &mut Vec<SourceError>,
        missing_is_ok: bool,
    ) -> Option<T> {
        let path = self.root.join(relative);
        let source = || format!("/{relative}");
        self.activity.set(&["/", relative]);
        let read = match guard::subtree(relative) {
            None => read_bytes(&path),
            Some(subtree) => self.guard.borrow_mut().read(subtree, &path),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(Error::Read { source: e, .. })
                if missing_is_ok && e.kind() == std::io::ErrorKind::NotFound =>
            {
                return None;
            }
            Err(e) => {
                errors.push(SourceError {
                    source: source(),
                    message: e.to_string(),
                });
                return None;
            }
        };
        let mut problems = Problems::new();
        let text = problem::decode(&bytes, &mut problems);
        let result = parse(&text, &mut problems);
        if !problems.is_empty() {
            self.report(&source(), problems, errors);
        }
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                errors.push(SourceError {
                    source: source(),
                    message: Error::Parse { path, message }.to_string(),
                });
                None
            }
        }
    }

    /// Turns a file's problems into `errors` (at most `problems_per_file`, then one entry
    /// counting the rest) and logs each one the first time it is met.
    fn report(&self, source: &str, problems: Problems, errors: &mut Vec<SourceError>) {
        let total = problems.len();
        let shown = self.problems_per_file.unwrap_or(usize::MAX).min(total);
        let mut noted = self.noted_problems.borrow_mut();
        for problem in problems.into_vec().into_iter().take(shown) {
            let message = problem.to_string();
            let key = format!("{source}: {message}");
            if noted.len() < MAX_LOGGED_PROBLEMS && noted.insert(key.clone()) {
                log::warn!("{key} (skipped; the rest of the file is read)");
            }
            errors.push(SourceError {
                source: source.to_owned(),
                message,
            });
        }
        if total > shown {
            errors.push(SourceError {
                source: source.to_owned(),
                message: format!("{} more lines or fields skipped", total - shown),
            });
        }
    }
}

/// A parser of a file that is one value (no lines to skip), as `source` takes parsers.
fn whole<T>(
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> impl FnOnce(&str, &mut Problems) -> Result<T, String> {
    move |text, _| parse(text)
}

/// The errors with repeats left out (a file read twice in one cycle, e.g. `.vmlist` by the
/// fast guests and `hostname` by two callers), in first-seen order.
fn dedup(errors: Vec<SourceError>) -> Vec<SourceError> {
    let mut out: Vec<SourceError> = Vec::with_capacity(errors.len());
    for error in errors {
        if !out.contains(&error) {
            out.push(error);
        }
    }
    out
}

/// Longest `message` (and `source`) of one error in a sample, in characters: a parser that
/// quotes a damaged line must not carry a 2 MB file into the sample (which the server would
/// refuse as too large, and the agent would then send again, forever).
pub const MAX_ERROR_CHARS: usize = 300;
/// Most errors in one sample; past it, one entry counts the rest.
pub const MAX_ERRORS: usize = 100;

/// The errors as a sample carries them: each cut to `MAX_ERROR_CHARS`, at most `MAX_ERRORS`.
fn bounded(errors: Vec<SourceError>) -> Vec<SourceError> {
    let total = errors.len();
    let mut out: Vec<SourceError> = errors
        .into_iter()
        .take(MAX_ERRORS)
        .map(|e| SourceError {
            source: cut(e.source),
            message: cut(e.message),
        })
        .collect();
    if total > MAX_ERRORS {
        out.push(SourceError {
            source: "agent".into(),
            message: format!("{} more errors not shown", total - MAX_ERRORS),
        });
    }
    out
}

/// `text` cut to `MAX_ERROR_CHARS` characters, saying how long it was.
fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
        None => text,
    }
}

/// One collection of everything, as the `collect` subcommand prints it:
/// `{"fast": FastSample, "medium": MediumSample, "slow": SlowSample}`. The fast sample is the
/// first of its collector, so it has no rates.
pub fn collect_once(root: &Path) -> serde_json::Value {
    let mut collector = Collector::new(root);
    let fast = collector.fast();
    let medium = collector.medium();
    let slow = collector.slow();
    serde_json::json!({
        "fast": serde_json::to_value(fast).unwrap_or_default(),
        "medium": serde_json::to_value(medium).unwrap_or_default(),
        "slow": serde_json::to_value(slow).unwrap_or_default(),
    })
}

/// Every problem one collection of everything meets (what `collect --check` prints): each
/// file that cannot be read and every line or field skipped (no per-file limit), once each,
/// in the order met.
pub fn check_once(root: &Path) -> Vec<SourceError> {
    let mut collector = Collector::new(root);
    collector.set_problems_per_file(None);
    let fast = collector.fast();
    let medium = collector.medium();
    let slow = collector.slow();
    dedup([fast.errors, medium.errors, slow.errors].concat())
}

/// Reads a whole (small) file, with the path in the error.
///
/// Unlike `std::fs::read` this does not `statx` and `lseek` the file first for a size hint
/// (procfs, sysfs and cgroupfs report size 0 anyway): the collector reads ~1500 files per fast
/// cycle on a 200-guest node, and the kernel's side of open/read/close is most of its cost, so
/// this leaves 4 system calls per file instead of 6.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let read = || -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO (or a device) put where a file should be must not wait
        // for a writer and stall the agent; only regular files are read.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; not read",
            ));
        }
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(bytes)
    };
    read().map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Percentages travel with two decimals: finer is noise, and it keeps payloads short.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// `(after − before) / seconds`, rounded to 2 decimals; `None` without a time span or when the
/// counter went backwards (reset, reboot, device re-created).
pub fn rate(before: u64, after: u64, seconds: Option<f64>) -> Option<f64> {
    let delta = after.checked_sub(before)?;
    let seconds = seconds.filter(|s| *s > 0.0)?;
    Some(round2(delta as f64 / seconds))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(name)
    }

    #[test]
    fn fast_sample_of_the_pve_node() {
        let mut collector = Collector::new(fixture("pve-node"));
        let sample = collector.fast();
        assert_eq!(sample.errors, vec![]);
        assert_eq!(sample.hostname.as_deref(), Some("pve1"));
        assert_eq!(
            (sample.load1, sample.load5, sample.load15),
            (Some(0.21), Some(0.37), Some(0.39))
        );
        assert_eq!(sample.mem_total_bytes, Some(65_759_444 * 1024));
        assert_eq!(sample.mem_available_bytes, Some(55_988_844 * 1024));
        assert_eq!(
            sample.mem_used_bytes,
            Some((65_759_444 - 55_988_844) * 1024)
        );
        assert_eq!(sample.swap_total_bytes, Some(8_388_604 * 1024));
        assert_eq!(sample.uptime_seconds, Some(350_735));
        // The first sample has no previous counters: no CPU percentage rather than a bogus one.
        assert_eq!(sample.cpu_percent, None);
        // The same counters again: no time passed, still no percentage.
        assert_eq!(collector.fast().cpu_percent, None);
    }

    #[test]
    fn a_huge_damaged_file_does_not_make_a_huge_sample() {
        let root = std::env::temp_dir().join(format!("pm-agent-huge-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        // One 2 MB line where each file expects a few numbers: parsers quote what they skip.
        let line = "9".repeat(2_000_000);
        for file in ["loadavg", "meminfo", "stat", "uptime", "net/dev"] {
            let path = root.join("proc").join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{line} {line}\n{line}:\n")).unwrap();
        }
        let sample = Collector::new(&root).fast();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(!sample.errors.is_empty());
        let size = serde_json::to_string(&sample).unwrap().len();
        assert!(size < 64 * 1024, "a {size}-byte sample");
        assert!(sample
            .errors
            .iter()
            .all(|e| e.message.chars().count() <= MAX_ERROR_CHARS + 40));
    }

    #[test]
    fn a_fifo_where_a_file_should_be_is_an_error_not_a_hang() {
        let root = std::env::temp_dir().join(format!("pm-agent-fifo-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let fifo = root.join("proc/loadavg");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = root.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Collector::new(&dir).fast());
        });
        // A generous deadline only for the hang this test is about, not a speed check.
        let sample = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("reading a FIFO blocked the collector");
        std::fs::remove_dir_all(&root).unwrap();
        let error = sample
            .errors
            .iter()
            .find(|e| e.source == "/proc/loadavg")
            .unwrap();
        assert!(
            error.message.contains("not a regular file"),
            "{}",
            error.message
        );
    }

    #[test]
    fn errors_are_cut_and_counted_past_the_limit() {
        let many: Vec<SourceError> = (0..MAX_ERRORS + 5)
            .map(|i| SourceError {
                source: format!("/f{i}"),
                message: "é".repeat(MAX_ERROR_CHARS + 1),
            })
            .collect();
        let out = bounded(many);
        assert_eq!(out.len(), MAX_ERRORS + 1);
        assert_eq!(out[MAX_ERRORS].message, "5 more errors not shown");
        assert!(
            out[0].message.ends_with("… (602 bytes in all)"),
            "{}",
            out[0].message
        );
        assert_eq!(bounded(vec![]), vec![]);
    }

    #[test]
    fn missing_files_are_errors_not_panics() {
        let mut collector = Collector::new("/nonexistent/root/xyz");
        let sample = collector.fast();
        assert_eq!(sample.load1, None);
        assert_eq!(sample.mem_total_bytes, None);
        assert_eq!(sample.uptime_seconds, None);
        let sources: Vec<&str> = sample.errors.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "/etc/hostname",
                "/proc/loadavg",
                "/proc/meminfo",
                "/proc/uptime",
                "/proc/stat",
                "/proc/net/dev",
                "/proc/diskstats"
            ]
        );
        assert!(sample.errors[1]
            .message
            .contains("/nonexistent/root/xyz/proc/loadavg"));
    }

    #[test]
    fn each_problem_is_logged_once_and_listed_once_per_sample() {
        let dir = std::env::temp_dir().join(format!("pm-noted-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(dir.join("proc/loadavg"), "0.1 x 0.3 1/2 3\n").unwrap();
        let mut collector = Collector::new(&dir);
        for _ in 0..3 {
            let sample = collector.fast();
            let loadavg: Vec<&SourceError> = sample
                .errors
                .iter()
                .filter(|e| e.source == "/proc/loadavg")
                .collect();
            assert_eq!(loadavg.len(), 1);
            assert_eq!(
                loadavg[0].message,
                "line 1: 5-minute load average \"x\" is not a number"
            );
            assert_eq!((sample.load1, sample.load5), (Some(0.1), None));
        }
        // Logged the first time only.
        let noted = collector.noted_problems.borrow();
        assert_eq!(
            noted.iter().collect::<Vec<_>>(),
            ["/proc/loadavg: line 1: 5-minute load average \"x\" is not a number"]
        );
        drop(noted);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_collector_can_move_to_the_run_loop_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Collector>();
    }

    #[test]
    fn rates() {
        assert_eq!(rate(100, 400, Some(30.0)), Some(10.0));
        assert_eq!(rate(100, 400, None), None);
        assert_eq!(rate(100, 400, Some(0.0)), None);
        assert_eq!(rate(400, 100, Some(30.0)), None);
        assert_eq!(rate(0, 1, Some(3.0)), Some(0.33));
    }
}
