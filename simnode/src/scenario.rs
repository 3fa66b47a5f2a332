//! The two simulated nodes of the demo cluster `demo`: what they are made of (CPUs, memory,
//! guests, pools, storages, disks, interfaces) and how busy each part is. Everything that
//! moves is in `model`; how it looks on disk is in `render`.

/// A guest's kind, as in `.vmlist` (`qemu` or `lxc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vm,
    Ct,
}

/// How busy something is: `base + amplitude · sin(2πt / period + phase)`, plus a little noise,
/// never below zero.
#[derive(Debug, Clone, Copy)]
pub struct Wave {
    pub base: f64,
    pub amplitude: f64,
    pub period_s: f64,
    pub phase: f64,
}

impl Wave {
    pub const fn new(base: f64, amplitude: f64, period_s: f64, phase: f64) -> Wave {
        Wave {
            base,
            amplitude,
            period_s,
            phase,
        }
    }

    /// The value at `t` seconds, with `noise` in [-1, 1] scaled to a tenth of the base.
    pub fn at(&self, t: f64, noise: f64) -> f64 {
        let angle = std::f64::consts::TAU * t / self.period_s + self.phase;
        (self.base + self.amplitude * angle.sin() + 0.1 * self.base * noise).max(0.0)
    }
}

#[derive(Debug, Clone)]
pub struct Guest {
    pub vmid: u32,
    pub kind: Kind,
    pub name: &'static str,
    pub cores: u32,
    pub memory_mib: u64,
    pub running: bool,
    pub template: bool,
    pub tags: &'static str,
    pub description: &'static str,
    /// CPU in cores.
    pub cpu: Wave,
    /// Share of its memory in use (0..1).
    pub memory_used: Wave,
    /// Bytes per second the guest sends and receives.
    pub net_out: Wave,
    pub net_in: Wave,
    /// Bytes per second the guest reads and writes on its disks.
    pub disk_read: Wave,
    pub disk_write: Wave,
    /// How long it has been running when the simulation starts.
    pub up_for_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Online,
    Degraded,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: &'static str,
    pub size: u64,
    pub alloc: u64,
    pub frag_percent: u32,
    pub health: Health,
    /// Bytes the pool grows by per second (logs, backups, VM disks).
    pub growth_per_s: f64,
    /// Whole disks of the pool (their I/O is the pool's); a missing member is not listed.
    pub disks: &'static [&'static str],
    /// `zpool status -x` text for an unhealthy pool.
    pub status: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub enum StorageKind {
    /// A directory on the root dataset.
    Dir { path: &'static str },
    /// A ZFS dataset of `pool`.
    ZfsPool {
        pool: &'static str,
        dataset: &'static str,
    },
    /// An NFS export shared by the cluster.
    Nfs {
        server: &'static str,
        export: &'static str,
        total_kib: u64,
        used_kib: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub id: &'static str,
    pub kind: StorageKind,
    pub content: &'static str,
}

#[derive(Debug, Clone)]
pub struct DiskDevice {
    pub name: &'static str,
    pub major: u32,
    pub minor: u32,
    /// Bytes per second the disk can move when fully busy.
    pub max_bytes_per_s: f64,
    /// Partitions (names), which diskstats lists and the agent skips.
    pub partitions: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: &'static str,
    pub id: u32,
    pub ip: &'static str,
    pub cpus: u32,
    pub cpu_model: &'static str,
    pub mem_bytes: u64,
    pub swap_bytes: u64,
    /// The host's own CPU use in cores (pmxcfs, pvestatd, ZFS threads …).
    pub host_cpu: Wave,
    /// The host's own memory in bytes (kernel, services).
    pub host_memory: u64,
    /// ZFS ARC target size in bytes.
    pub arc_target: u64,
    /// ARC lookups per second.
    pub arc_lookups: Wave,
    pub uptime_s: u64,
    pub physical_nics: &'static [&'static str],
    pub guests: Vec<Guest>,
    pub pools: Vec<Pool>,
    pub storages: Vec<Storage>,
    pub disks: Vec<DiskDevice>,
}

impl Node {
    pub fn running_guests(&self) -> impl Iterator<Item = &Guest> {
        self.guests.iter().filter(|g| g.running)
    }
}

pub const CLUSTER: &str = "demo";

/// The node names `--node` accepts.
pub const NODE_NAMES: [&str; 2] = ["pve-sim1", "pve-sim2"];

/// Every node of the demo cluster (each tree's `.vmlist` and `.members` list them all).
pub fn cluster() -> Vec<Node> {
    vec![sim1(), sim2()]
}

/// The node called `name`, if it is one of `NODE_NAMES`.
pub fn node(name: &str) -> Option<Node> {
    cluster().into_iter().find(|n| n.name == name)
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

fn guest(vmid: u32, kind: Kind, name: &'static str, cores: u32, memory_mib: u64) -> Guest {
    Guest {
        vmid,
        kind,
        name,
        cores,
        memory_mib,
        running: true,
        template: false,
        tags: "",
        description: "",
        cpu: Wave::new(0.2, 0.1, 90.0, 0.0),
        memory_used: Wave::new(0.5, 0.02, 600.0, 0.0),
        net_out: Wave::new(20_000.0, 10_000.0, 60.0, 0.0),
        net_in: Wave::new(10_000.0, 5_000.0, 60.0, 1.0),
        disk_read: Wave::new(50_000.0, 40_000.0, 45.0, 0.5),
        disk_write: Wave::new(100_000.0, 60_000.0, 75.0, 2.0),
        up_for_s: 3 * 86_400,
    }
}

/// Node 1: a healthy 16-thread EPYC with a web stack, a database, two containers, a stopped
/// Windows VM, a stopped build container and a template. Mirrored NVMe `rpool`.
fn sim1() -> Node {
    Node {
        name: "pve-sim1",
        id: 1,
        ip: "192.168.10.11",
        cpus: 16,
        cpu_model: "AMD EPYC 7313P 16-Core Processor",
        mem_bytes: 128 * GIB,
        swap_bytes: 8 * GIB,
        host_cpu: Wave::new(0.4, 0.15, 30.0, 0.0),
        host_memory: 6 * GIB,
        arc_target: 16 * GIB,
        arc_lookups: Wave::new(4000.0, 2500.0, 120.0, 0.0),
        uptime_s: 23 * 86_400 + 4 * 3600,
        physical_nics: &["eno1", "eno2"],
        guests: vec![
            Guest {
                tags: "prod;web",
                description: "Public web server (nginx + php-fpm)",
                cpu: Wave::new(1.2, 0.9, 120.0, 0.0),
                memory_used: Wave::new(0.62, 0.05, 300.0, 0.0),
                net_out: Wave::new(3_500_000.0, 2_500_000.0, 90.0, 0.0),
                net_in: Wave::new(600_000.0, 400_000.0, 90.0, 0.3),
                up_for_s: 6 * 86_400 + 3_000,
                ..guest(100, Kind::Vm, "web01", 4, 8192)
            },
            Guest {
                tags: "prod;db",
                description: "PostgreSQL 16",
                cpu: Wave::new(2.6, 1.8, 300.0, 1.0),
                memory_used: Wave::new(0.81, 0.03, 900.0, 0.0),
                net_out: Wave::new(900_000.0, 600_000.0, 120.0, 0.0),
                net_in: Wave::new(1_200_000.0, 700_000.0, 120.0, 0.7),
                disk_read: Wave::new(6_000_000.0, 4_000_000.0, 150.0, 0.0),
                disk_write: Wave::new(9_000_000.0, 7_000_000.0, 60.0, 1.3),
                up_for_s: 6 * 86_400 + 2_900,
                ..guest(101, Kind::Vm, "db01", 8, 32768)
            },
            Guest {
                tags: "infra",
                description: "DNS resolver (unbound)",
                cpu: Wave::new(0.05, 0.03, 40.0, 0.0),
                memory_used: Wave::new(0.35, 0.02, 600.0, 0.0),
                net_out: Wave::new(40_000.0, 25_000.0, 30.0, 0.0),
                net_in: Wave::new(30_000.0, 20_000.0, 30.0, 0.2),
                disk_read: Wave::new(2_000.0, 1_500.0, 60.0, 0.0),
                disk_write: Wave::new(8_000.0, 6_000.0, 60.0, 0.0),
                up_for_s: 23 * 86_400,
                ..guest(102, Kind::Ct, "dns01", 1, 512)
            },
            Guest {
                tags: "infra;web",
                description: "Reverse proxy (Caddy)",
                cpu: Wave::new(0.3, 0.2, 90.0, 2.0),
                memory_used: Wave::new(0.4, 0.05, 300.0, 0.0),
                net_out: Wave::new(4_000_000.0, 2_800_000.0, 90.0, 0.1),
                net_in: Wave::new(3_800_000.0, 2_600_000.0, 90.0, 0.0),
                up_for_s: 23 * 86_400,
                ..guest(103, Kind::Ct, "proxy", 2, 2048)
            },
            Guest {
                running: false,
                tags: "test",
                description: "Windows Server 2022 test machine",
                ..guest(104, Kind::Vm, "win-test", 4, 8192)
            },
            Guest {
                running: false,
                tags: "ci",
                ..guest(105, Kind::Ct, "build-runner", 4, 4096)
            },
            Guest {
                running: false,
                template: true,
                description: "Debian 12 cloud-init template",
                ..guest(9000, Kind::Vm, "debian12-template", 2, 2048)
            },
        ],
        pools: vec![Pool {
            name: "rpool",
            size: 1_992_864_825_344,
            alloc: 412_316_860_416,
            frag_percent: 9,
            health: Health::Online,
            growth_per_s: 40_000.0,
            disks: &["nvme0n1", "nvme1n1"],
            status: None,
        }],
        storages: vec![
            Storage {
                id: "local",
                kind: StorageKind::Dir {
                    path: "/var/lib/vz",
                },
                content: "iso,vztmpl,backup",
            },
            Storage {
                id: "local-zfs",
                kind: StorageKind::ZfsPool {
                    pool: "rpool",
                    dataset: "rpool/data",
                },
                content: "images,rootdir",
            },
            backup_nfs(),
        ],
        disks: vec![
            DiskDevice {
                name: "nvme0n1",
                major: 259,
                minor: 0,
                max_bytes_per_s: 400_000_000.0,
                partitions: &["nvme0n1p1", "nvme0n1p2", "nvme0n1p3"],
            },
            DiskDevice {
                name: "nvme1n1",
                major: 259,
                minor: 4,
                max_bytes_per_s: 400_000_000.0,
                partitions: &["nvme1n1p1", "nvme1n1p2", "nvme1n1p3"],
            },
        ],
    }
}

/// Node 2: an 8-thread Xeon with a Nextcloud VM and a container, a stopped VM, and two pools:
/// `rpool` ONLINE and `tank` DEGRADED (one side of its mirror is gone).
fn sim2() -> Node {
    Node {
        name: "pve-sim2",
        id: 2,
        ip: "192.168.10.12",
        cpus: 8,
        cpu_model: "Intel(R) Xeon(R) E-2278G CPU @ 3.40GHz",
        mem_bytes: 64 * GIB,
        swap_bytes: 0,
        host_cpu: Wave::new(0.3, 0.1, 45.0, 1.0),
        host_memory: 4 * GIB,
        arc_target: 12 * GIB,
        arc_lookups: Wave::new(2500.0, 1800.0, 200.0, 1.0),
        uptime_s: 61 * 86_400 + 7 * 3600,
        physical_nics: &["enp3s0"],
        guests: vec![
            Guest {
                tags: "prod",
                description: "Nextcloud",
                cpu: Wave::new(1.5, 1.0, 180.0, 0.5),
                memory_used: Wave::new(0.7, 0.05, 600.0, 0.0),
                net_out: Wave::new(2_000_000.0, 1_800_000.0, 150.0, 0.0),
                net_in: Wave::new(2_500_000.0, 2_000_000.0, 150.0, 1.5),
                disk_read: Wave::new(3_000_000.0, 2_500_000.0, 100.0, 0.0),
                disk_write: Wave::new(4_000_000.0, 3_500_000.0, 100.0, 1.0),
                up_for_s: 20 * 86_400,
                ..guest(110, Kind::Vm, "nextcloud", 4, 8192)
            },
            Guest {
                tags: "infra;backup",
                description: "Proxmox Backup Server proxy",
                cpu: Wave::new(0.4, 0.35, 240.0, 0.0),
                memory_used: Wave::new(0.5, 0.05, 600.0, 0.0),
                disk_read: Wave::new(8_000_000.0, 7_000_000.0, 240.0, 0.0),
                disk_write: Wave::new(500_000.0, 300_000.0, 240.0, 0.0),
                up_for_s: 61 * 86_400,
                ..guest(111, Kind::Ct, "backup-proxy", 2, 2048)
            },
            Guest {
                running: false,
                tags: "legacy",
                description: "Old ERP, kept for the archive",
                ..guest(112, Kind::Vm, "old-erp", 2, 4096)
            },
        ],
        pools: vec![
            Pool {
                name: "rpool",
                size: 479_559_942_144,
                alloc: 98_784_247_808,
                frag_percent: 14,
                health: Health::Online,
                growth_per_s: 10_000.0,
                disks: &["sda", "sdb"],
                status: None,
            },
            Pool {
                name: "tank",
                size: 3_985_729_650_688,
                alloc: 2_818_572_288_000,
                frag_percent: 23,
                health: Health::Degraded,
                growth_per_s: 120_000.0,
                disks: &["sdc"],
                status: Some(include_str!(
                    "../../fixtures/degraded-pool/cmd/zpool-status-x.txt"
                )),
            },
        ],
        storages: vec![
            Storage {
                id: "local",
                kind: StorageKind::Dir {
                    path: "/var/lib/vz",
                },
                content: "iso,vztmpl,backup",
            },
            Storage {
                id: "local-zfs",
                kind: StorageKind::ZfsPool {
                    pool: "rpool",
                    dataset: "rpool/data",
                },
                content: "images,rootdir",
            },
            Storage {
                id: "tank",
                kind: StorageKind::ZfsPool {
                    pool: "tank",
                    dataset: "tank/data",
                },
                content: "images,rootdir,backup",
            },
            backup_nfs(),
        ],
        disks: vec![
            DiskDevice {
                name: "sda",
                major: 8,
                minor: 0,
                max_bytes_per_s: 250_000_000.0,
                partitions: &["sda1", "sda2", "sda3"],
            },
            DiskDevice {
                name: "sdb",
                major: 8,
                minor: 16,
                max_bytes_per_s: 250_000_000.0,
                partitions: &["sdb1", "sdb2", "sdb3"],
            },
            DiskDevice {
                name: "sdc",
                major: 8,
                minor: 32,
                max_bytes_per_s: 180_000_000.0,
                partitions: &["sdc1", "sdc9"],
            },
        ],
    }
}

fn backup_nfs() -> Storage {
    Storage {
        id: "backup-nfs",
        kind: StorageKind::Nfs {
            server: "192.168.10.5",
            export: "/volume1/pve-backup",
            total_kib: 7_813_988_352,
            used_kib: 3_120_541_696,
        },
        content: "backup",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_has_guests_of_every_kind_and_state_and_one_degraded_pool() {
        let nodes = cluster();
        assert_eq!(nodes.iter().map(|n| n.name).collect::<Vec<_>>(), NODE_NAMES);
        let guests: Vec<&Guest> = nodes.iter().flat_map(|n| &n.guests).collect();
        for (kind, running) in [
            (Kind::Vm, true),
            (Kind::Vm, false),
            (Kind::Ct, true),
            (Kind::Ct, false),
        ] {
            assert!(guests
                .iter()
                .any(|g| g.kind == kind && g.running == running));
        }
        let mut vmids: Vec<u32> = guests.iter().map(|g| g.vmid).collect();
        vmids.sort_unstable();
        vmids.dedup();
        assert_eq!(vmids.len(), guests.len(), "VMIDs are unique in a cluster");
        let pools: Vec<&Pool> = nodes.iter().flat_map(|n| &n.pools).collect();
        assert!(pools.iter().any(|p| p.health == Health::Online));
        assert!(pools
            .iter()
            .any(|p| p.health == Health::Degraded && p.status.is_some()));
    }

    #[test]
    fn waves_stay_at_or_above_zero() {
        let wave = Wave::new(1.0, 3.0, 10.0, 0.0);
        for i in 0..100 {
            assert!(wave.at(f64::from(i), -1.0) >= 0.0);
        }
        assert!((Wave::new(2.0, 1.0, 4.0, 0.0).at(1.0, 0.0) - 3.0).abs() < 1e-9);
    }
}
