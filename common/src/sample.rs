//! The payload schema: what the agent measures, as it travels in `MetricPush::data`.
//!
//! Every field is optional (`#[serde(default)]`), so a server reads the samples of older and newer
//! agents alike: a source the agent could not read is `null` (or an absent list) and named in
//! `errors`; a source the node simply does not have (no ZFS, no Proxmox, a kernel without PSI) is
//! `null` without an error. Inside the per-item structs (guests, interfaces, disks, ...) unknown
//! values are left out rather than sent as `null`, which keeps a 200-guest sample short.
//! Rates (`*_per_s`, `*_iops`, percentages of time) need two samples: they are absent on the
//! first sample after the agent starts and whenever a counter went backwards (reboot, guest
//! restart, device gone and back), never a bogus spike.
//!
//! `series_points` flattens a sample into the named numeric series the server stores; the names
//! are `crate::series::SeriesName`s, documented there.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::events::MetricKind;
use crate::series::{
    ArcField, DiskField, FsField, GuestField, HostField, NetField, PoolField, Psi, PsiLine,
    PsiResource, SeriesName, SmartField, StorageField, TempField,
};

/// Bumped when a field changes meaning; adding a field does not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// A source the agent could not read this time, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SourceError {
    /// What was being read, e.g. `/proc/meminfo` or `zpool`.
    pub source: String,
    pub message: String,
}

/// The `metric:fast` sample: host CPU, memory, load, pressure, ARC, network, disks and guests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FastSample {
    pub schema: u32,
    pub hostname: Option<String>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    /// `MemTotal − MemAvailable`. The ZFS ARC counts as used here (the kernel does not count it
    /// as available); see `mem_used_without_arc_bytes`.
    pub mem_used_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub uptime_seconds: Option<u64>,
    /// Busy share of all CPUs since the previous sample, 0–100; null on the first sample.
    pub cpu_percent: Option<f64>,
    /// Busy share of each CPU since the previous sample, 0–100; null on the first sample.
    pub cpu_per_core_percent: Option<Vec<f64>>,
    /// Share of all CPU time in user + nice since the previous sample, 0–100.
    pub cpu_user_percent: Option<f64>,
    /// Share in system + irq + softirq.
    pub cpu_system_percent: Option<f64>,
    pub cpu_iowait_percent: Option<f64>,
    /// Time the hypervisor under this node gave to others (nested or cloud nodes).
    pub cpu_steal_percent: Option<f64>,
    /// Size of the ZFS ARC, which `mem_used_bytes` includes; null without ZFS.
    pub mem_arc_bytes: Option<u64>,
    /// `mem_used_bytes − mem_arc_bytes`: what applications and guests use.
    pub mem_used_without_arc_bytes: Option<u64>,
    /// Host pressure stall information (`/proc/pressure/*`); null on kernels without PSI.
    pub pressure: Option<Pressure>,
    /// ZFS ARC; null without ZFS.
    pub arc: Option<Arc>,
    /// Physical interfaces, bonds and bridges (guest ports are counted under their guest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<NetInterface>,
    /// Whole block devices (no partitions, zvols, loop or device-mapper devices).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Every guest of this node, running or not, by VMID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestFast>,
    /// Temperature sensors of `/sys/class/hwmon` (CPU packages and cores, NVMe, chipset, ...),
    /// by chip and sensor. Drive sensors of the `drivetemp` driver are in the slow sample:
    /// reading them talks to the disk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub temperatures: Vec<Temperature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SourceError>,
}

/// One temperature sensor (`tempN_*` of a hwmon chip, kernel
/// `Documentation/hwmon/sysfs-interface.rst`), in degrees Celsius.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Temperature {
    /// The chip's `name`: `coretemp`, `k10temp`, `nvme`, `drivetemp`, `acpitz`, ...
    pub chip: String,
    /// Which chip of that name: the device it belongs to (`coretemp.0`, `nvme0`,
    /// `0000:00:18.3`), else its `hwmonN` directory (numbered in probe order, so it may change
    /// at boot).
    pub device: String,
    /// `temp1`, `temp2`, ...
    pub sensor: String,
    /// The chip's own name for it (`Package id 0`, `Core 3`, `Composite`, `Tctl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The disk it measures (`nvme` and `drivetemp` chips): `nvme0n1`, `sda`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub celsius: Option<f64>,
    /// The chip's own "high" threshold (`tempN_max`), where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_celsius: Option<f64>,
    /// The chip's critical threshold (`tempN_crit`), where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crit_celsius: Option<f64>,
}

/// Pressure stall information: the `avg10` figures (share of the last 10 s, 0–100) of the
/// `some` and `full` lines of the cpu, io and memory files.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Pressure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_some: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_full: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_some: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_full: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_some: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_full: Option<f64>,
}

/// The ZFS adaptive replacement cache.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Arc {
    pub size_bytes: Option<u64>,
    /// The size the ARC is currently aiming for (`c`).
    pub target_bytes: Option<u64>,
    pub min_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
    /// Hits / (hits + misses) since the previous sample, 0–100.
    pub hit_ratio_percent: Option<f64>,
}

/// One network interface of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NetInterface {
    pub name: String,
    /// A Linux bridge (`vmbr0`): its traffic is also counted on its ports.
    #[serde(skip_serializing_if = "is_false")]
    pub bridge: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_packets_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_packets_per_s: Option<f64>,
    /// Totals since boot.
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One whole block device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Disk {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<f64>,
    /// Share of the time the device had I/O in flight, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy_percent: Option<f64>,
}

/// A QEMU virtual machine or an LXC container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    #[default]
    Qemu,
    Lxc,
    /// A type this server does not know (from a newer agent).
    #[serde(other)]
    Unknown,
}

/// Whether a guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    Running,
    #[default]
    Stopped,
    /// A stopped (SIGSTOP) QEMU process or a frozen container cgroup. A VM paused over QMP
    /// cannot be seen from files and shows as running.
    Paused,
    #[serde(other)]
    Unknown,
}

impl GuestStatus {
    /// Whether the guest occupies its resources: running, or paused (a paused guest keeps its
    /// memory and comes back where it stopped).
    pub fn is_up(self) -> bool {
        matches!(self, GuestStatus::Running | GuestStatus::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GuestStatus::Running => "running",
            GuestStatus::Stopped => "stopped",
            GuestStatus::Paused => "paused",
            GuestStatus::Unknown => "unknown",
        }
    }
}

/// A guest's state and usage in the fast sample. Usage fields are absent for stopped guests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GuestFast {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: GuestStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// CPUs the guest may use (VM: sockets × cores or vcpus; CT: cores or all; capped by
    /// cpulimit), as Proxmox counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPU used, as a share of the guest's own `cpus`, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CPU used, as a share of all host CPUs, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_host_percent: Option<f64>,
    /// cgroup `memory.current − file` (what Proxmox shows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<u64>,
    /// VM: configured memory; CT: the cgroup's `memory.max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes_per_s: Option<f64>,
    /// Received by the guest (sent by the host into its tap/veth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_in_bytes_per_s: Option<f64>,
    /// Sent by the guest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_out_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<Pressure>,
    /// The config's `lock` (`backup`, `migrate`, `rollback`, `suspended`, `mounted`, ...):
    /// Proxmox is doing something with the guest, which explains it being stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
}

/// The `metric:medium` sample: pools, filesystems, storages and guest configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MediumSample {
    pub schema: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<ZfsPool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<Storage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestConfig>,
    /// The backup jobs that run on this node: `/etc/pve/jobs.cfg` and the legacy
    /// `/etc/pve/vzdump.cron`, with their last run here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backup_jobs: Vec<BackupJob>,
    /// Every guest of this node: its last good backup, its last failed one, the jobs that
    /// cover it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<GuestBackup>,
    /// Storage replication jobs of this node's guests (`/etc/pve/replication.cfg`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replication: Vec<ReplicationJob>,
    /// The cluster's HA manager as this node sees it; null when HA is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SourceError>,
}

/// A backup job: a `vzdump` section of `jobs.cfg`, or a line of the legacy `vzdump.cron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BackupJob {
    /// The job id of `jobs.cfg` (`backup-1b5c6ad5-8d0e`); a `vzdump.cron` line is
    /// `vzdump.cron:<n>`, numbered from 1 in file order as Proxmox numbers them.
    pub id: String,
    /// When it runs: a Proxmox calendar event (`21:00`, `sat 02:00`, `mon..fri 01:30`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub enabled: bool,
    /// Target storage; null means vzdump's default (`/etc/vzdump.conf`, else `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// The only node it runs on; null: every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What it selects, as configured: `all`, `all except 102,103`, `pool prod`, `100,101`.
    pub selection: String,
    /// This node's guests it backs up, by VMID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Its last run on this node (`/var/lib/pve-manager/jobs/vzdump-<id>.json`); null when it
    /// has not run here yet (or for a `vzdump.cron` job, which keeps no state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<JobRun>,
}

/// A run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobRun {
    pub state: RunState,
    /// When it started, UNIX seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// When it ended, UNIX seconds (from the task index; null while it runs or when the
    /// index no longer has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<u64>,
    /// The task's status as Proxmox writes it: `OK`, `WARNINGS: 2`, `job errors`, or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The task (`UPID:pve1:...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
}

/// How a task or job run ended, as Proxmox's `upid_status_is_error` and job states tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Ended with `TASK OK`.
    Ok,
    /// Ended with `TASK WARNINGS: N`: done, with warnings.
    Warnings,
    /// Ended with an error.
    Error,
    /// Started and still running.
    Running,
    /// About to start (the scheduler took it).
    Starting,
    #[default]
    #[serde(other)]
    Unknown,
}

/// One guest's backups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GuestBackup {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestType,
    /// The ids of the jobs that back it up on this node. Empty: no job covers it. Null: the
    /// jobs could not be read, so nobody knows.
    pub jobs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<BackupRun>,
    /// The last failed backup, whether or not a good one came after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<BackupFailure>,
    /// A backup of it runs now.
    #[serde(skip_serializing_if = "is_false")]
    pub running: bool,
}

/// A successful backup of one guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BackupRun {
    /// When it finished, UNIX seconds.
    pub end_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// The archive's size as vzdump reports it (`archive file size: 1.52GB`: three
    /// significant digits); null for Proxmox Backup Server targets, which report none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// The archive: a file path, or a Proxmox Backup Server snapshot (`vm/100/2026-...Z`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// The task that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
}

/// A failed backup of one guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BackupFailure {
    /// When it failed, UNIX seconds.
    pub end_time: u64,
    /// vzdump's reason (`Backup of VM 101 failed - <message>`).
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
}

/// A storage replication job and its state on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReplicationJob {
    /// `<vmid>-<n>`, e.g. `100-0`.
    pub id: String,
    pub guest: u32,
    pub target: String,
    /// Calendar event; Proxmox's default is `*/15`.
    pub schedule: String,
    pub enabled: bool,
    /// Start of the last successful sync, UNIX seconds; null: never synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<u64>,
    /// Start of the last attempt, UNIX seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_try: Option<u64>,
    /// How long the last attempt took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Failed attempts in a row (0 after a success).
    pub fail_count: u32,
    /// The last attempt's error, while it keeps failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A sync runs now.
    #[serde(skip_serializing_if = "is_false")]
    pub running: bool,
}

/// The HA manager's view of the cluster (`/etc/pve/ha/manager_status`, `resources.cfg` and
/// each node's `lrm_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HaStatus {
    /// Whether this node is in the quorate partition (`.members`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorate: Option<bool>,
    /// The node whose CRM is master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// When the master last wrote its status, UNIX seconds (older than 30 s: Proxmox says
    /// "old timestamp - dead?").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<HaNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<HaService>,
}

/// A node as the HA manager sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HaNode {
    pub name: String,
    /// The CRM's node state: `online`, `maintenance`, `unknown`, `fence`, `gone`.
    pub state: String,
    /// Its LRM: `wait_for_agent_lock`, `active`, `lost_agent_lock`, `maintenance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lrm_state: Option<String>,
    /// `active`, `restart`, `shutdown`, `maintenance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lrm_mode: Option<String>,
    /// When its LRM last wrote its status, UNIX seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lrm_timestamp: Option<u64>,
}

/// An HA resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HaService {
    /// `vm:100`, `ct:101`.
    pub sid: String,
    /// The node it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its state as the CRM keeps it: `started`, `stopped`, `error`, `fence`, `recovery`,
    /// `migrate`, `relocate`, `freeze`, `request_stop`, ...; null before the CRM saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_state: Option<String>,
    /// What the admin asked for in `resources.cfg`: `started`, `stopped`, `disabled`,
    /// `ignored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_state: Option<String>,
    /// The state the GUI shows (pve-ha-manager `get_verbose_service_state`): `started`,
    /// `starting`, `stopping`, `queued`, `error`, `deleting`, `ignored`, ...
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One ZFS pool, from `zpool list` and `zpool status -x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ZfsPool {
    pub name: String,
    pub health: PoolHealth,
    pub size_bytes: Option<u64>,
    pub alloc_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub frag_percent: Option<f64>,
    pub dedup_ratio: Option<f64>,
    /// The pool's block of `zpool status -x` when it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<String>,
}

/// The health of a ZFS pool, as `zpool list` prints it. A state this version does not know
/// (from a newer ZFS) is kept as its text and counts as bad: we cannot tell it is fine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PoolHealth {
    Online,
    Degraded,
    Faulted,
    Offline,
    Removed,
    Unavail,
    Suspended,
    Other(String),
}

impl PoolHealth {
    const KNOWN: [PoolHealth; 7] = [
        PoolHealth::Online,
        PoolHealth::Degraded,
        PoolHealth::Faulted,
        PoolHealth::Offline,
        PoolHealth::Removed,
        PoolHealth::Unavail,
        PoolHealth::Suspended,
    ];

    /// The states `zpool` documents, in that order.
    pub fn known() -> &'static [PoolHealth] {
        &Self::KNOWN
    }

    pub fn parse(text: &str) -> PoolHealth {
        Self::KNOWN
            .iter()
            .find(|h| h.as_str() == text)
            .cloned()
            .unwrap_or_else(|| PoolHealth::Other(text.to_owned()))
    }

    /// `ONLINE`, `DEGRADED`, ... as `zpool` prints it.
    pub fn as_str(&self) -> &str {
        match self {
            PoolHealth::Online => "ONLINE",
            PoolHealth::Degraded => "DEGRADED",
            PoolHealth::Faulted => "FAULTED",
            PoolHealth::Offline => "OFFLINE",
            PoolHealth::Removed => "REMOVED",
            PoolHealth::Unavail => "UNAVAIL",
            PoolHealth::Suspended => "SUSPENDED",
            PoolHealth::Other(text) => text,
        }
    }

    pub fn is_online(&self) -> bool {
        *self == PoolHealth::Online
    }

    /// 0 for ONLINE, higher for worse: DEGRADED still serves all data with less redundancy,
    /// OFFLINE and REMOVED were taken away (by an admin or the hardware), everything else
    /// (FAULTED, UNAVAIL, SUSPENDED, unknown) may have lost access to data.
    pub fn severity(&self) -> u8 {
        match self {
            PoolHealth::Online => 0,
            PoolHealth::Degraded => 1,
            PoolHealth::Offline | PoolHealth::Removed => 2,
            _ => 3,
        }
    }
}

impl Default for PoolHealth {
    /// A pool whose health was not sent is not known to be fine.
    fn default() -> PoolHealth {
        PoolHealth::Other(String::new())
    }
}

impl fmt::Display for PoolHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `health == "DEGRADED"`: compares with the text `zpool` prints.
impl PartialEq<str> for PoolHealth {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PoolHealth {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for PoolHealth {
    fn from(text: &str) -> PoolHealth {
        PoolHealth::parse(text)
    }
}

impl From<String> for PoolHealth {
    fn from(text: String) -> PoolHealth {
        PoolHealth::parse(&text)
    }
}

impl Serialize for PoolHealth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PoolHealth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PoolHealth, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(PoolHealth::parse(&text))
    }
}

/// One mounted filesystem (pseudo, network and guest filesystems left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Filesystem {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Available to unprivileged users.
    pub avail_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// One Proxmox storage of `/etc/pve/storage.cfg` that this node can use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Storage {
    pub id: String,
    /// `dir`, `zfspool`, `lvmthin`, `nfs`, `pbs`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Comma-separated content types, as configured (`images,rootdir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub shared: bool,
    pub enabled: bool,
    /// From `pvesm status`; null when it could not be run.
    pub active: Option<bool>,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub avail_bytes: Option<u64>,
    /// A `zfspool` storage's dataset (`pool rpool/data` in `storage.cfg`): its pool is the
    /// part before the first `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

impl Storage {
    /// The ZFS pool this storage lives on, for a `zfspool` storage.
    pub fn zfs_pool(&self) -> Option<&str> {
        let dataset = self.pool.as_deref()?;
        dataset.split('/').next().filter(|p| !p.is_empty())
    }
}

/// A guest's configuration facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GuestConfig {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestType,
    pub name: String,
    pub cores: Option<u32>,
    /// VMs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u32>,
    /// The `cpus` of `GuestFast`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Containers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_bytes: Option<u64>,
    pub onboot: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub template: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The config's `lock`, as in `GuestFast::lock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
}

/// The `metric:slow` sample: versions, hardware and cluster membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SlowSample {
    pub schema: u32,
    /// The node name as Proxmox knows it (`/etc/pve/.members`), else the host name.
    pub node_name: Option<String>,
    /// `pve-manager` version, e.g. `8.2.4`; null on a host without Proxmox.
    pub pve_version: Option<String>,
    /// The build's commit, e.g. `faa83925c9641325`.
    pub pve_repoid: Option<String>,
    /// The loaded ZFS module, e.g. `2.2.4-pve1`.
    pub zfs_version: Option<String>,
    pub kernel_version: Option<String>,
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    pub cpu_count: Option<u32>,
    pub cpu_sockets: Option<u32>,
    /// Null on a standalone node.
    pub cluster: Option<Cluster>,
    /// The disks `smartctl --scan` finds, with their health.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub smart: Vec<SmartDisk>,
    /// Why SMART data is missing: `smartctl` not installed, not allowed to open the disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_note: Option<String>,
    /// Drive temperature sensors (hwmon `drivetemp`), read at this slow interval because each
    /// read is a command to the disk (and some drives then never spin down).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drive_temperatures: Vec<Temperature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SourceError>,
}

/// One disk as `smartctl --json -a -n standby` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SmartDisk {
    /// `/dev/sda`, `/dev/nvme0`.
    pub device: String,
    /// smartctl's device type (`sat`, `nvme`, `scsi`, `megaraid,0`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `ATA`, `NVMe` or `SCSI`.
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    /// The overall health self-assessment: PASSED (true) or FAILED (false); null when it was
    /// not read (disk asleep, smartctl failed).
    pub passed: Option<bool>,
    /// smartctl's exit status, a bit mask (smartctl(8)): 2 could not open or asleep, 4 a
    /// command failed, 8 "DISK FAILING", 16 prefail attribute at or below threshold, 32 an
    /// attribute was at or below threshold in the past, 64 errors in the error log, 128
    /// errors in the self-test log.
    pub exit_status: Option<u32>,
    /// The disk was in standby or sleep and was left so (`-n standby`): no values this time.
    #[serde(skip_serializing_if = "is_false")]
    pub standby: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_celsius: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_on_hours: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_cycles: Option<u64>,
    /// ATA attribute 5 Reallocated_Sector_Ct, raw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reallocated_sectors: Option<u64>,
    /// ATA attribute 197 Current_Pending_Sector, raw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_sectors: Option<u64>,
    /// ATA attribute 198 Offline_Uncorrectable, raw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_uncorrectable: Option<u64>,
    /// ATA attribute 199 UDMA_CRC_Error_Count, raw (cabling, not the medium).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc_errors: Option<u64>,
    /// NVMe critical warning bits (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_warning: Option<u32>,
    /// NVMe available spare, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_spare_percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_spare_threshold_percent: Option<u32>,
    /// NVMe percentage used (wear); may exceed 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage_used: Option<u32>,
    /// NVMe media and data integrity errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsafe_shutdowns: Option<u64>,
    /// smartctl's first message (`Device is in STANDBY mode, exit(2)`, `Smartctl open device:
    /// /dev/sdb failed: Permission denied`), or why it gave no report (it timed out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The Proxmox cluster this node is a member of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Cluster {
    pub name: String,
    pub quorate: Option<bool>,
    pub nodes: Vec<ClusterNode>,
}

/// One member of the cluster, as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClusterNode {
    pub name: String,
    pub id: Option<u32>,
    pub online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// One numeric value of a named series, as the server stores it: the name's text (see
/// `crate::series`) and the value.
pub type SeriesPoint = (String, f64);

/// A sample of any kind, typed: what a `metric:*` push's `data` becomes once it is parsed.
// A value lives only from parsing to being moved into the host state: boxing the big variant
// would add an allocation per sample and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Fast(FastSample),
    Medium(MediumSample),
    Slow(SlowSample),
}

impl Sample {
    /// Parses the `data` JSON of a push of `kind`.
    pub fn from_json(kind: MetricKind, json: &str) -> Result<Sample, serde_json::Error> {
        Ok(match kind {
            MetricKind::Fast => Sample::Fast(serde_json::from_str(json)?),
            MetricKind::Medium => Sample::Medium(serde_json::from_str(json)?),
            MetricKind::Slow => Sample::Slow(serde_json::from_str(json)?),
        })
    }

    pub fn kind(&self) -> MetricKind {
        match self {
            Sample::Fast(_) => MetricKind::Fast,
            Sample::Medium(_) => MetricKind::Medium,
            Sample::Slow(_) => MetricKind::Slow,
        }
    }

    /// The numeric series in this sample.
    pub fn series_points(&self) -> Vec<SeriesPoint> {
        match self {
            Sample::Fast(s) => s.series_points(),
            Sample::Medium(s) => s.series_points(),
            Sample::Slow(s) => s.series_points(),
        }
    }
}

/// Collects series points, dropping absent and non-finite values.
struct Points(Vec<SeriesPoint>);

impl Points {
    fn put(&mut self, name: impl Into<SeriesName>, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.0.push((name.into().to_string(), v));
        }
    }

    fn put_u64(&mut self, name: impl Into<SeriesName>, value: Option<u64>) {
        self.put(name, value.map(to_f64));
    }

    /// `temp.<device>/<sensor>.celsius` of each sensor.
    fn put_temperatures(&mut self, sensors: &[Temperature]) {
        for t in sensors {
            let name = SeriesName::Temp(format!("{}/{}", t.device, t.sensor), TempField::Celsius);
            self.put(name, t.celsius);
        }
    }

    /// The six pressure figures, named by `name` (the node's, or a guest's).
    fn put_pressure(&mut self, p: &Pressure, name: impl Fn(Psi) -> SeriesName) {
        use PsiLine::{Full, Some as Partial};
        use PsiResource::{Cpu, Io, Memory};
        for (resource, line, value) in [
            (Cpu, Partial, p.cpu_some),
            (Cpu, Full, p.cpu_full),
            (Io, Partial, p.io_some),
            (Io, Full, p.io_full),
            (Memory, Partial, p.memory_some),
            (Memory, Full, p.memory_full),
        ] {
            self.put(name(Psi { resource, line }), value);
        }
    }
}

impl FastSample {
    /// The numeric series in this sample, e.g. `("load1", 0.42)`, `("cpu.3.percent", 12.5)`.
    pub fn series_points(&self) -> Vec<SeriesPoint> {
        use HostField as H;
        let mut p = Points(Vec::with_capacity(64 + 16 * self.guests.len()));
        p.put(H::Load1, self.load1);
        p.put(H::Load5, self.load5);
        p.put(H::Load15, self.load15);
        p.put(H::CpuPercent, self.cpu_percent);
        p.put_u64(H::MemTotalBytes, self.mem_total_bytes);
        p.put_u64(H::MemAvailableBytes, self.mem_available_bytes);
        p.put_u64(H::MemUsedBytes, self.mem_used_bytes);
        p.put_u64(H::SwapTotalBytes, self.swap_total_bytes);
        p.put_u64(H::SwapUsedBytes, self.swap_used_bytes());
        p.put_u64(H::UptimeSeconds, self.uptime_seconds);
        if let Some(cores) = &self.cpu_per_core_percent {
            for (i, v) in (0u32..).zip(cores) {
                p.put(SeriesName::CpuCore(i), Some(*v));
            }
        }
        p.put(H::CpuUserPercent, self.cpu_user_percent);
        p.put(H::CpuSystemPercent, self.cpu_system_percent);
        p.put(H::CpuIowaitPercent, self.cpu_iowait_percent);
        p.put(H::CpuStealPercent, self.cpu_steal_percent);
        p.put_u64(H::MemArcBytes, self.mem_arc_bytes);
        p.put_u64(H::MemUsedWithoutArcBytes, self.mem_used_without_arc_bytes);
        if let Some(pressure) = &self.pressure {
            p.put_pressure(pressure, SeriesName::Psi);
        }
        if let Some(arc) = &self.arc {
            p.put_u64(SeriesName::Arc(ArcField::SizeBytes), arc.size_bytes);
            p.put_u64(SeriesName::Arc(ArcField::TargetBytes), arc.target_bytes);
            p.put_u64(SeriesName::Arc(ArcField::MinBytes), arc.min_bytes);
            p.put_u64(SeriesName::Arc(ArcField::MaxBytes), arc.max_bytes);
            p.put(
                SeriesName::Arc(ArcField::HitRatioPercent),
                arc.hit_ratio_percent,
            );
        }
        for n in &self.net {
            let name = |field| SeriesName::Net(n.name.clone(), field);
            p.put(name(NetField::RxBytesPerS), n.rx_bytes_per_s);
            p.put(name(NetField::TxBytesPerS), n.tx_bytes_per_s);
            p.put(name(NetField::RxPacketsPerS), n.rx_packets_per_s);
            p.put(name(NetField::TxPacketsPerS), n.tx_packets_per_s);
            p.put_u64(name(NetField::RxErrors), Some(n.rx_errors));
            p.put_u64(name(NetField::TxErrors), Some(n.tx_errors));
            p.put_u64(name(NetField::RxDropped), Some(n.rx_dropped));
            p.put_u64(name(NetField::TxDropped), Some(n.tx_dropped));
        }
        for d in &self.disks {
            let name = |field| SeriesName::Disk(d.name.clone(), field);
            p.put(name(DiskField::ReadBytesPerS), d.read_bytes_per_s);
            p.put(name(DiskField::WriteBytesPerS), d.write_bytes_per_s);
            p.put(name(DiskField::ReadIops), d.read_iops);
            p.put(name(DiskField::WriteIops), d.write_iops);
            p.put(name(DiskField::BusyPercent), d.busy_percent);
        }
        for g in &self.guests {
            let name = |field| SeriesName::Guest(g.vmid, field);
            let running = if g.status.is_up() { 1.0 } else { 0.0 };
            p.put(name(GuestField::Running), Some(running));
            p.put_u64(name(GuestField::UptimeSeconds), g.uptime_seconds);
            p.put(name(GuestField::CpuPercent), g.cpu_percent);
            p.put(name(GuestField::CpuHostPercent), g.cpu_host_percent);
            p.put_u64(name(GuestField::MemUsedBytes), g.mem_used_bytes);
            p.put_u64(name(GuestField::MemLimitBytes), g.mem_limit_bytes);
            p.put(name(GuestField::DiskReadBytesPerS), g.disk_read_bytes_per_s);
            p.put(
                name(GuestField::DiskWriteBytesPerS),
                g.disk_write_bytes_per_s,
            );
            p.put(name(GuestField::NetInBytesPerS), g.net_in_bytes_per_s);
            p.put(name(GuestField::NetOutBytesPerS), g.net_out_bytes_per_s);
            if let Some(pressure) = &g.pressure {
                p.put_pressure(pressure, |psi| SeriesName::GuestPsi(g.vmid, psi));
            }
        }
        p.put_temperatures(&self.temperatures);
        p.0
    }

    /// `swap_total_bytes − swap_free_bytes`, when both are known.
    pub fn swap_used_bytes(&self) -> Option<u64> {
        Some(self.swap_total_bytes?.saturating_sub(self.swap_free_bytes?))
    }

    /// Memory used by applications and guests: without the ZFS ARC when the agent could tell
    /// it apart, else everything `mem_used_bytes` counts.
    pub fn mem_used_for_display(&self) -> Option<u64> {
        self.mem_used_without_arc_bytes.or(self.mem_used_bytes)
    }
}

impl MediumSample {
    /// The numeric series in this sample, e.g. `("pool.rpool.alloc_bytes", 1.8e11)`.
    pub fn series_points(&self) -> Vec<SeriesPoint> {
        let mut p = Points(Vec::new());
        for pool in &self.pools {
            let name = |field| SeriesName::Pool(pool.name.clone(), field);
            p.put_u64(name(PoolField::SizeBytes), pool.size_bytes);
            p.put_u64(name(PoolField::AllocBytes), pool.alloc_bytes);
            p.put_u64(name(PoolField::FreeBytes), pool.free_bytes);
            p.put(name(PoolField::FragPercent), pool.frag_percent);
            p.put(name(PoolField::DedupRatio), pool.dedup_ratio);
            let healthy = if pool.health.is_online() { 1.0 } else { 0.0 };
            p.put(name(PoolField::Healthy), Some(healthy));
        }
        for fs in &self.filesystems {
            let name = |field| SeriesName::fs(&fs.mountpoint, field);
            p.put_u64(name(FsField::SizeBytes), fs.size_bytes);
            p.put_u64(name(FsField::UsedBytes), fs.used_bytes);
            p.put_u64(name(FsField::AvailBytes), fs.avail_bytes);
            p.put_u64(name(FsField::InodesTotal), fs.inodes_total);
            p.put_u64(name(FsField::InodesUsed), fs.inodes_used);
        }
        for s in &self.storages {
            let name = |field| SeriesName::Storage(s.id.clone(), field);
            p.put_u64(name(StorageField::TotalBytes), s.total_bytes);
            p.put_u64(name(StorageField::UsedBytes), s.used_bytes);
            p.put_u64(name(StorageField::AvailBytes), s.avail_bytes);
            p.put(
                name(StorageField::Active),
                s.active.map(|a| if a { 1.0 } else { 0.0 }),
            );
        }
        p.0
    }

    /// The pool in the worst state (ties: the first by name); `None` without pools.
    pub fn worst_pool(&self) -> Option<&ZfsPool> {
        self.pools.iter().max_by(|a, b| {
            a.health
                .severity()
                .cmp(&b.health.severity())
                .then_with(|| b.name.cmp(&a.name))
        })
    }

    /// The configuration (name, tags, ...) of guest `vmid`.
    pub fn guest_config(&self, vmid: u32) -> Option<&GuestConfig> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }
}

impl SlowSample {
    /// The numeric series in this sample: `cpu_count`, the SMART values that change over a
    /// disk's life, and the drive temperature sensors.
    pub fn series_points(&self) -> Vec<SeriesPoint> {
        let mut p = Points(Vec::new());
        p.put(HostField::CpuCount, self.cpu_count.map(f64::from));
        for d in self.smart.iter().filter(|d| !d.standby) {
            let dev = d.device.strip_prefix("/dev/").unwrap_or(&d.device);
            let name = |field| SeriesName::Smart(dev.to_owned(), field);
            p.put(name(SmartField::TemperatureCelsius), d.temperature_celsius);
            p.put_u64(name(SmartField::PowerOnHours), d.power_on_hours);
            p.put(
                name(SmartField::PercentageUsed),
                d.percentage_used.map(f64::from),
            );
            p.put(
                name(SmartField::AvailableSparePercent),
                d.available_spare_percent.map(f64::from),
            );
            p.put_u64(name(SmartField::MediaErrors), d.media_errors);
        }
        p.put_temperatures(&self.drive_temperatures);
        p.0
    }
}

/// A mount point as it appears in series names: `/` → `_`, `/var/lib/vz` → `_var_lib_vz`.
pub use crate::series::{mountpoint_of_series_name, mountpoint_series_name};

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

#[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^53
fn to_f64(v: u64) -> f64 {
    v as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::events::MetricPush;
    use crate::Frame;
    use serde_json::Value;

    #[test]
    fn phase1_payload_without_newer_fields_parses() {
        let sample: FastSample =
            serde_json::from_str(r#"{"hostname":"pve","load1":0.5,"mem_used_bytes":10}"#).unwrap();
        assert_eq!(sample.load1, Some(0.5));
        assert_eq!(sample.cpu_percent, None);
        let points = sample.series_points();
        assert_eq!(
            points,
            vec![
                ("load1".to_owned(), 0.5),
                ("mem_used_bytes".to_owned(), 10.0)
            ]
        );
    }

    #[test]
    fn per_core_series_are_numbered() {
        let sample = FastSample {
            cpu_per_core_percent: Some(vec![1.0, 2.0]),
            ..FastSample::default()
        };
        let names: Vec<String> = sample.series_points().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["cpu.0.percent", "cpu.1.percent"]);
    }

    /// Parses a golden frame, checks it is a `metric:*` push, and returns its `data`.
    fn golden(text: &str, event: &str) -> Value {
        let frame = Frame::decode(text).unwrap();
        assert_eq!(frame.topic, "host:pve1");
        assert_eq!(frame.event, event);
        let push: MetricPush = serde_json::from_value(frame.payload).unwrap();
        assert_eq!(push.collected_at, "2026-11-25T12:00:00Z");
        push.data
    }

    /// Golden → typed → JSON gives back the golden JSON: no field is lost or renamed.
    fn round_trip<T: serde::de::DeserializeOwned + Serialize>(data: &Value) -> T {
        let typed: T = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&typed).unwrap(), data);
        typed
    }

    #[test]
    fn golden_fast_round_trips() {
        let data = golden(
            include_str!("../../fixtures/protocol/metric_fast.json"),
            "metric:fast",
        );
        let sample: FastSample = round_trip(&data);
        assert_eq!(sample.guests.len(), 3);
        assert_eq!(sample.guests[1].kind, GuestType::Lxc);
        assert_eq!(sample.guests[2].status, GuestStatus::Stopped);
        let points = sample.series_points();
        let get = |name: &str| points.iter().find(|p| p.0 == name).map(|p| p.1);
        assert_eq!(get("cpu_user_percent"), Some(10.0));
        assert_eq!(get("psi.io.some_avg10"), Some(0.18));
        assert_eq!(get("arc.size_bytes"), Some(1_610_612_736.0));
        assert_eq!(get("arc.hit_ratio_percent"), Some(90.0));
        assert_eq!(get("net.eno1.rx_bytes_per_s"), Some(1_000_000.0));
        assert_eq!(get("net.vmbr0.rx_dropped"), Some(0.0));
        assert_eq!(get("disk.nvme0n1.busy_percent"), Some(25.0));
        assert_eq!(get("guest.100.cpu_percent"), Some(50.0));
        assert_eq!(get("guest.100.mem_used_bytes"), Some(4_461_088_768.0));
        assert_eq!(get("guest.101.psi.cpu.some_avg10"), Some(0.0));
        assert_eq!(get("guest.102.running"), Some(0.0));
        assert_eq!(get("guest.102.cpu_percent"), None);
        assert_eq!(get("temp.hwmon1/temp1.celsius"), Some(41.85));
    }

    #[test]
    fn golden_medium_round_trips() {
        let data = golden(
            include_str!("../../fixtures/protocol/metric_medium.json"),
            "metric:medium",
        );
        let sample: MediumSample = round_trip(&data);
        let points = sample.series_points();
        let get = |name: &str| points.iter().find(|p| p.0 == name).map(|p| p.1);
        assert_eq!(get("pool.rpool.alloc_bytes"), Some(187_246_247_936.0));
        assert_eq!(get("pool.rpool.healthy"), Some(1.0));
        assert_eq!(get("fs._.used_bytes"), Some(5_106_958_336.0));
        assert_eq!(get("fs._boot_efi.used_bytes"), Some(12_136_448.0));
        assert_eq!(get("fs._boot_efi.inodes_total"), None);
        assert_eq!(get("storage.local-zfs.used_bytes"), Some(178_393_894_912.0));
        assert_eq!(get("storage.nas-iso.active"), Some(1.0));
    }

    #[test]
    fn golden_slow_round_trips() {
        let data = golden(
            include_str!("../../fixtures/protocol/metric_slow.json"),
            "metric:slow",
        );
        let sample: SlowSample = round_trip(&data);
        assert_eq!(sample.pve_version.as_deref(), Some("8.2.4"));
        assert_eq!(sample.cluster.as_ref().map(|c| c.nodes.len()), Some(2));
        let points = sample.series_points();
        assert_eq!(points[0], ("cpu_count".to_owned(), 8.0));
        let get = |name: &str| points.iter().find(|p| p.0 == name).map(|p| p.1);
        assert_eq!(get("smart.nvme1.percentage_used"), Some(91.0));
        assert_eq!(get("smart.nvme1.media_errors"), Some(3.0));
        assert_eq!(get("smart.nvme0.power_on_hours"), Some(10423.0));
    }

    #[test]
    fn unknown_guest_type_and_status_from_a_newer_agent_still_parse() {
        let g: GuestFast =
            serde_json::from_str(r#"{"vmid":7,"type":"openvz","status":"migrating"}"#).unwrap();
        assert_eq!(
            (g.kind, g.status),
            (GuestType::Unknown, GuestStatus::Unknown)
        );
    }

    #[test]
    fn pool_health_keeps_states_it_does_not_know() {
        for known in PoolHealth::known() {
            assert_eq!(&PoolHealth::parse(known.as_str()), known);
        }
        let new: PoolHealth = serde_json::from_str("\"RESILVERING\"").unwrap();
        assert_eq!(new, PoolHealth::Other("RESILVERING".into()));
        assert_eq!(serde_json::to_string(&new).unwrap(), "\"RESILVERING\"");
        assert_eq!(new.severity(), PoolHealth::Faulted.severity());
        assert!(PoolHealth::Online.severity() < PoolHealth::Degraded.severity());
        assert!(PoolHealth::Degraded.severity() < PoolHealth::Removed.severity());
        assert!(!PoolHealth::default().is_online());
    }

    #[test]
    fn worst_pool_and_guest_status() {
        let pool = |name: &str, health: &str| ZfsPool {
            name: name.into(),
            health: health.into(),
            ..ZfsPool::default()
        };
        let medium = MediumSample {
            pools: vec![
                pool("a", "ONLINE"),
                pool("b", "DEGRADED"),
                pool("c", "DEGRADED"),
            ],
            ..MediumSample::default()
        };
        assert_eq!(medium.worst_pool().map(|p| p.name.as_str()), Some("b"));
        assert!(MediumSample::default().worst_pool().is_none());
        assert!(GuestStatus::Running.is_up() && GuestStatus::Paused.is_up());
        assert!(!GuestStatus::Stopped.is_up() && !GuestStatus::Unknown.is_up());
    }

    #[test]
    fn typed_samples_of_every_kind() {
        for kind in MetricKind::ALL {
            let sample = Sample::from_json(kind, "{}").unwrap();
            assert_eq!(sample.kind(), kind);
            assert!(sample.series_points().is_empty());
        }
        assert!(Sample::from_json(MetricKind::Fast, r#"{"load1":"high"}"#).is_err());
    }
}
