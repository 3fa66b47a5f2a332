//! Simulated Proxmox nodes whose fast samples move the way a real node's do, built from
//! `common::sample` types so that the server flattens them exactly as it does a real agent's
//! (about 100 host points plus 10–16 per running guest: ~395 points with 30 guests).
//!
//! What the storage sees matters here: a chunk of constant values, of a slowly wandering gauge
//! and of a noisy rate compress very differently, so uniform noise (or a handful of repeated
//! variants) would misstate bytes per point either way. Each node therefore keeps state and
//! derives every value the way the agent does from the node's files:
//! - **constant facts**: memory and swap totals, ARC limits, guests' memory limits and vCPU
//!   counts, error counters that stay 0, `steal` on bare metal;
//! - **slowly varying gauges**: load averages (exponentially smoothed, two decimals), memory
//!   in use (KiB from `/proc/meminfo`, so multiples of 1024), ARC size, PSI averages, uptimes;
//! - **noisy rates**: counters (bytes, packets, sectors, jiffies) advance by a noisy amount
//!   around a level that itself wanders, and the rate is the delta over the measured interval
//!   (which jitters by a millisecond) rounded to two decimals, as `agent::collect::rate` does;
//!   idle disks and guests mostly report 0 with bursts.
//!
//! Every node is seeded by its index: runs are repeatable.

use common::sample::{
    Arc, Cluster, ClusterNode, Disk, FastSample, Filesystem, GuestConfig, GuestFast, GuestStatus,
    GuestType, MediumSample, NetInterface, Pressure, SlowSample, Storage, ZfsPool,
};

const GIB: u64 = 1 << 30;
const CORES: u32 = 16;

/// A wandering level: mean-reverting (Ornstein–Uhlenbeck) around `mean`, with `sigma` of
/// noise per √second and reverting at `theta` per second.
#[derive(Debug, Clone, Copy)]
struct Level {
    value: f64,
    mean: f64,
    theta: f64,
    sigma: f64,
    min: f64,
    max: f64,
}

impl Level {
    fn new(mean: f64, theta: f64, sigma: f64, min: f64, max: f64) -> Level {
        Level {
            value: mean,
            mean,
            theta,
            sigma,
            min,
            max,
        }
    }

    fn step(&mut self, rng: &mut fastrand::Rng, dt: f64) -> f64 {
        let pull = self.theta * (self.mean - self.value) * dt;
        self.value =
            (self.value + pull + self.sigma * dt.sqrt() * normal(rng)).clamp(self.min, self.max);
        self.value
    }
}

/// A draw of mean 0 and variance 1, near enough normal (the sum of four uniforms): a tenth of
/// the cost of Box–Muller, which matters with ~1000 draws per sample on the CPU the load
/// generator shares with the server.
fn normal(rng: &mut fastrand::Rng) -> f64 {
    (rng.f64() + rng.f64() + rng.f64() + rng.f64() - 2.0) * 3.0_f64.sqrt()
}

/// A Poisson-ish count with mean `mean` (normal approximation above 30).
fn count(rng: &mut fastrand::Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let (mut k, mut p) = (0u64, 1.0);
    loop {
        p *= rng.f64();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// Two decimals, as the agent rounds rates and percentages.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `delta / seconds` rounded to two decimals: the agent's rate.
fn rate(delta: u64, seconds: f64) -> f64 {
    round2(delta as f64 / seconds)
}

/// A counter-backed rate whose level wanders; idle sources are 0 most of the time.
#[derive(Debug, Clone, Copy)]
struct Flow {
    level: Level,
    /// Probability per second of any activity (1 for a busy link).
    active: f64,
    /// Counter unit: bytes move in whole units (512-byte sectors, 4 KiB pages, 1 byte).
    unit: u64,
}

impl Flow {
    fn new(mean: f64, active: f64, unit: u64) -> Flow {
        Flow {
            level: Level::new(mean, 0.01, mean * 0.05, 0.0, mean * 20.0),
            active,
            unit,
        }
    }

    /// The counter's advance over `dt` seconds.
    fn delta(&mut self, rng: &mut fastrand::Rng, dt: f64) -> u64 {
        let level = self.level.step(rng, dt);
        // Activity comes in bursts: the chance that any of the interval's seconds had some.
        let busy = 1.0 - (1.0 - self.active).powf(dt);
        if rng.f64() >= busy {
            return 0;
        }
        let mean_units = level * dt / busy.max(1e-9) / self.unit as f64;
        // Noise of a real link: a few tens of percent at 1 s, averaging out over longer.
        let noisy = mean_units * (1.0 + 0.3 / dt.sqrt() * normal(rng)).max(0.0);
        noisy.round() as u64 * self.unit
    }
}

struct NetState {
    name: &'static str,
    bridge: bool,
    rx: Flow,
    tx: Flow,
    packet_bytes: f64,
    dropped: u64,
}

struct DiskState {
    name: &'static str,
    read: Flow,
    write: Flow,
    /// Bytes per I/O.
    io_bytes: f64,
}

struct GuestState {
    vmid: u32,
    kind: GuestType,
    running: bool,
    cpus: u32,
    limit: u64,
    cpu: Level,
    mem_used: f64,
    mem_wander: f64,
    uptime: f64,
    disk_read: Flow,
    disk_write: Flow,
    net_in: Flow,
    net_out: Flow,
    pressure: Option<PressureState>,
}

#[derive(Clone, Copy)]
struct PressureState {
    cpu: Level,
    io: Level,
    memory: Level,
}

impl PressureState {
    fn new(rng: &mut fastrand::Rng, busy: f64) -> PressureState {
        PressureState {
            cpu: Level::new(busy * (0.5 + rng.f64()), 0.05, 0.3, 0.0, 100.0),
            io: Level::new(busy * 0.3 * rng.f64(), 0.05, 0.15, 0.0, 100.0),
            // Memory pressure is 0.00 on a healthy node, most of the time.
            memory: Level::new(0.0, 0.2, 0.02, 0.0, 100.0),
        }
    }

    fn next(&mut self, rng: &mut fastrand::Rng, dt: f64) -> Pressure {
        let cpu = round2(self.cpu.step(rng, dt));
        let io = round2(self.io.step(rng, dt));
        let memory = round2((self.memory.step(rng, dt) - 0.05).max(0.0));
        Pressure {
            cpu_some: Some(cpu),
            cpu_full: Some(0.0),
            io_some: Some(io),
            io_full: Some(round2(io * 0.7)),
            memory_some: Some(memory),
            memory_full: Some(round2(memory * 0.5)),
        }
    }
}

/// One simulated node: its shape (16 cores with ZFS, 4 interfaces, 6 disks, `guests` guests,
/// five in six running, a sixth of those containers) and the state its values move from.
pub struct Node {
    rng: fastrand::Rng,
    hostname: String,
    uptime: f64,
    runnable: Level,
    load: [f64; 3],
    busy: Level,
    cores: Vec<Level>,
    mem_total: u64,
    mem_other: f64,
    arc: f64,
    arc_target: u64,
    hit_ratio: Level,
    swap_used: u64,
    pressure: PressureState,
    net: Vec<NetState>,
    disks: Vec<DiskState>,
    guests: Vec<GuestState>,
}

impl Node {
    pub fn new(seed: u64, guests: u32) -> Node {
        let mut rng = fastrand::Rng::with_seed(seed);
        let busy_mean = 5.0 + 35.0 * rng.f64();
        let mut guest_states = Vec::new();
        for index in 0..guests {
            let running = index % 6 != 5;
            let container = index % 6 == 4;
            let limit = u64::from(2 + index % 8) * GIB;
            // Most guests idle, a few busy.
            let profile = rng.f64();
            let (cpu_mean, io_active, net_mean) = if profile < 0.7 {
                (0.5 + 2.0 * rng.f64(), 0.15, 300.0)
            } else if profile < 0.9 {
                (10.0 + 20.0 * rng.f64(), 0.6, 50_000.0)
            } else {
                (40.0 + 40.0 * rng.f64(), 1.0, 2_000_000.0)
            };
            guest_states.push(GuestState {
                vmid: 100 + index,
                kind: if container {
                    GuestType::Lxc
                } else {
                    GuestType::Qemu
                },
                running,
                cpus: 1 + index % 4,
                limit,
                cpu: Level::new(cpu_mean, 0.02, cpu_mean * 0.1, 0.0, 100.0),
                mem_used: limit as f64 * (0.3 + 0.5 * rng.f64()),
                mem_wander: limit as f64 * 0.0005,
                uptime: 50_000.0 + 1_000_000.0 * rng.f64(),
                disk_read: Flow::new(io_active * 200_000.0, io_active * 0.5, 4096),
                disk_write: Flow::new(io_active * 400_000.0, io_active, 4096),
                net_in: Flow::new(net_mean, 1.0, 1),
                net_out: Flow::new(net_mean * 0.6, 1.0, 1),
                pressure: container.then(|| PressureState::new(&mut rng, cpu_mean / 20.0)),
            });
        }
        let link = 5_000_000.0 * (0.2 + rng.f64());
        let net = vec![
            NetState {
                name: "eno1",
                bridge: false,
                rx: Flow::new(link, 1.0, 1),
                tx: Flow::new(link * 0.7, 1.0, 1),
                packet_bytes: 900.0,
                dropped: rng.u64(0..50),
            },
            NetState {
                name: "eno2",
                bridge: false,
                rx: Flow::new(link * 0.4, 1.0, 1),
                tx: Flow::new(link * 0.3, 1.0, 1),
                packet_bytes: 900.0,
                dropped: rng.u64(0..50),
            },
            // The bond's and the bridge's are their own counters; close to the sums.
            NetState {
                name: "bond0",
                bridge: false,
                rx: Flow::new(link * 1.4, 1.0, 1),
                tx: Flow::new(link, 1.0, 1),
                packet_bytes: 900.0,
                dropped: 0,
            },
            NetState {
                name: "vmbr0",
                bridge: true,
                rx: Flow::new(link * 1.3, 1.0, 1),
                tx: Flow::new(link * 0.9, 1.0, 1),
                packet_bytes: 950.0,
                dropped: 0,
            },
        ];
        let disks = ["nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd"]
            .iter()
            .map(|&name| {
                let ssd = name.starts_with("nvme");
                let (activity, level) = if ssd {
                    (1.0, 3_000_000.0)
                } else {
                    (0.3, 400_000.0)
                };
                DiskState {
                    name,
                    read: Flow::new(level * 0.6, activity * 0.8, 512),
                    write: Flow::new(level, activity, 512),
                    io_bytes: if ssd { 16_384.0 } else { 65_536.0 },
                }
            })
            .collect();
        Node {
            hostname: format!("node-{seed}"),
            uptime: 100_000.0 + 3_000_000.0 * rng.f64(),
            runnable: Level::new(busy_mean / 10.0, 0.01, 0.5, 0.0, 64.0),
            load: [busy_mean / 10.0; 3],
            busy: Level::new(busy_mean, 0.01, 2.0, 0.0, 100.0),
            cores: (0..CORES)
                .map(|_| Level::new(busy_mean, 0.05, 6.0, 0.0, 100.0))
                .collect(),
            mem_total: 128 * GIB,
            mem_other: (8 + rng.u64(0..8)) as f64 * GIB as f64,
            arc: 16.0 * GIB as f64,
            arc_target: 16 * GIB,
            hit_ratio: Level::new(95.0 + 4.0 * rng.f64(), 0.01, 0.2, 50.0, 100.0),
            swap_used: rng.u64(0..64) * 1024 * 1024,
            pressure: PressureState::new(&mut rng, busy_mean / 10.0),
            net,
            disks,
            guests: guest_states,
            rng,
        }
    }

    /// The next fast sample, `interval` seconds after the previous one.
    pub fn next(&mut self, interval: f64) -> FastSample {
        let rng = &mut self.rng;
        // The agent measures each interval with a monotonic clock: a millisecond off, or so.
        let elapsed = (interval + 0.001 * normal(rng)).max(interval * 0.5);
        let dt = interval;
        self.uptime += elapsed;

        // Load: the kernel's exponential averages of the runnable count, every 5 s.
        let runnable = self.runnable.step(rng, dt);
        for (avg, window) in self.load.iter_mut().zip([60.0, 300.0, 900.0]) {
            let keep = (-dt / window).exp();
            *avg = *avg * keep + runnable * (1.0 - keep);
        }
        // CPU from jiffies (100 per second per core): the busy share of the interval.
        let jiffies = (100.0 * elapsed * f64::from(CORES)).round().max(1.0);
        let busy_level = self.busy.step(rng, dt);
        let busy = (busy_level / 100.0 * jiffies + (jiffies * 0.01).sqrt() * 3.0 * normal(rng))
            .round()
            .clamp(0.0, jiffies);
        let share = |part: f64| round2(100.0 * part / jiffies);
        let user = (busy * 0.68).round();
        let iowait = (jiffies * 0.004 * rng.f64()).round();
        let cpu_percent = share(busy);
        let core_jiffies = (100.0 * elapsed).round().max(1.0);
        let per_core = self
            .cores
            .iter_mut()
            .map(|core| {
                core.mean = busy_level;
                let level = core.step(rng, dt);
                let b = (level / 100.0 * core_jiffies + 2.0 * normal(rng))
                    .round()
                    .clamp(0.0, core_jiffies);
                round2(100.0 * b / core_jiffies)
            })
            .collect();

        // Memory in KiB, as /proc/meminfo has it: guests, ARC and the rest.
        self.mem_other = (self.mem_other + 2_000_000.0 * dt.sqrt() * normal(rng))
            .clamp(2.0 * GIB as f64, 24.0 * GIB as f64);
        // The ARC grows and shrinks in steps towards its target; the target moves rarely.
        if rng.f64() < 0.0005 * dt {
            self.arc_target = (8 + rng.u64(0..24)) * GIB;
        }
        self.arc += (self.arc_target as f64 - self.arc) * (1.0 - (-dt / 600.0).exp())
            + 1_000_000.0 * dt.sqrt() * normal(rng);
        let arc = self.arc.max(GIB as f64).round() as u64;
        let guests_used: f64 = self
            .guests
            .iter()
            .filter(|g| g.running)
            .map(|g| g.mem_used)
            .sum();
        let used_kib = ((guests_used + self.mem_other) / 1024.0).round() as u64 + arc / 1024;
        let mem_used = (used_kib * 1024).min(self.mem_total);
        if rng.f64() < 0.001 * dt {
            self.swap_used += rng.u64(1..256) * 4096;
        }

        let net = self
            .net
            .iter_mut()
            .map(|n| {
                let rx = n.rx.delta(rng, dt);
                let tx = n.tx.delta(rng, dt);
                let packets =
                    |bytes: u64, rng: &mut fastrand::Rng| count(rng, bytes as f64 / n.packet_bytes);
                let (rx_packets, tx_packets) = (packets(rx, rng), packets(tx, rng));
                n.dropped += count(rng, 0.002 * dt);
                NetInterface {
                    name: n.name.into(),
                    bridge: n.bridge,
                    rx_bytes_per_s: Some(rate(rx, elapsed)),
                    tx_bytes_per_s: Some(rate(tx, elapsed)),
                    rx_packets_per_s: Some(rate(rx_packets, elapsed)),
                    tx_packets_per_s: Some(rate(tx_packets, elapsed)),
                    rx_errors: 0,
                    tx_errors: 0,
                    rx_dropped: n.dropped,
                    tx_dropped: 0,
                }
            })
            .collect();
        let disks = self
            .disks
            .iter_mut()
            .map(|d| {
                let read = d.read.delta(rng, dt);
                let write = d.write.delta(rng, dt);
                let ios = |bytes: u64, rng: &mut fastrand::Rng| {
                    if bytes == 0 {
                        0
                    } else {
                        count(rng, bytes as f64 / d.io_bytes).max(1)
                    }
                };
                let (reads, writes) = (ios(read, rng), ios(write, rng));
                // io_ticks: milliseconds busy, roughly a fraction of a millisecond per I/O.
                let ticks = ((reads + writes) as f64 * 0.4 * (1.0 + 0.2 * normal(rng)))
                    .round()
                    .clamp(0.0, 1000.0 * elapsed);
                Disk {
                    name: d.name.into(),
                    read_bytes_per_s: Some(rate(read, elapsed)),
                    write_bytes_per_s: Some(rate(write, elapsed)),
                    read_iops: Some(rate(reads, elapsed)),
                    write_iops: Some(rate(writes, elapsed)),
                    busy_percent: Some(round2((ticks / 10.0 / elapsed).clamp(0.0, 100.0))),
                }
            })
            .collect();
        let guests = self
            .guests
            .iter_mut()
            .map(|g| guest(g, rng, dt, elapsed))
            .collect();
        let pressure = self.pressure.next(rng, dt);
        let hit_ratio = round2(self.hit_ratio.step(rng, dt));
        FastSample {
            schema: common::sample::SCHEMA_VERSION,
            hostname: Some(self.hostname.clone()),
            load1: Some(round2(self.load[0])),
            load5: Some(round2(self.load[1])),
            load15: Some(round2(self.load[2])),
            mem_total_bytes: Some(self.mem_total),
            mem_available_bytes: Some(self.mem_total - mem_used),
            mem_used_bytes: Some(mem_used),
            swap_total_bytes: Some(8 * GIB),
            swap_free_bytes: Some(8 * GIB - self.swap_used),
            uptime_seconds: Some(self.uptime as u64),
            cpu_percent: Some(cpu_percent),
            cpu_per_core_percent: Some(per_core),
            cpu_user_percent: Some(share(user)),
            cpu_system_percent: Some(share(busy - user)),
            cpu_iowait_percent: Some(share(iowait)),
            cpu_steal_percent: Some(0.0),
            mem_arc_bytes: Some(arc),
            mem_used_without_arc_bytes: Some(mem_used.saturating_sub(arc)),
            pressure: Some(pressure),
            arc: Some(Arc {
                size_bytes: Some(arc),
                target_bytes: Some(self.arc_target),
                min_bytes: Some(4 * GIB),
                max_bytes: Some(64 * GIB),
                hit_ratio_percent: Some(hit_ratio),
            }),
            net,
            disks,
            guests,
            temperatures: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// [`Node::next`] as the `data` JSON of a push.
    pub fn next_json(&mut self, interval: f64) -> String {
        serde_json::to_string(&self.next(interval)).unwrap_or_default()
    }
}

fn guest(g: &mut GuestState, rng: &mut fastrand::Rng, dt: f64, elapsed: f64) -> GuestFast {
    if !g.running {
        return GuestFast {
            vmid: g.vmid,
            kind: g.kind,
            name: Some(format!("guest-{}", g.vmid)),
            status: GuestStatus::Stopped,
            mem_limit_bytes: Some(g.limit),
            ..GuestFast::default()
        };
    }
    g.uptime += elapsed;
    // CPU from the guest's clock ticks (100 per second per vCPU).
    let ticks_max = (100.0 * elapsed * f64::from(g.cpus)).round().max(1.0);
    let level = g.cpu.step(rng, dt);
    let ticks = (level / 100.0 * ticks_max + (ticks_max * level / 100.0).sqrt() * normal(rng))
        .round()
        .clamp(0.0, ticks_max);
    let cpu_percent = round2(100.0 * ticks / ticks_max);
    g.mem_used = (g.mem_used + g.mem_wander * dt.sqrt() * normal(rng))
        .clamp(0.05 * g.limit as f64, g.limit as f64);
    let mem_used = (g.mem_used / 4096.0).round() as u64 * 4096;
    GuestFast {
        vmid: g.vmid,
        kind: g.kind,
        name: Some(format!("guest-{}", g.vmid)),
        status: GuestStatus::Running,
        uptime_seconds: Some(g.uptime as u64),
        cpus: Some(f64::from(g.cpus)),
        cpu_percent: Some(cpu_percent),
        cpu_host_percent: Some(round2(cpu_percent * f64::from(g.cpus) / f64::from(CORES))),
        mem_used_bytes: Some(mem_used),
        mem_limit_bytes: Some(g.limit),
        disk_read_bytes_per_s: Some(rate(g.disk_read.delta(rng, dt), elapsed)),
        disk_write_bytes_per_s: Some(rate(g.disk_write.delta(rng, dt), elapsed)),
        net_in_bytes_per_s: Some(rate(g.net_in.delta(rng, dt), elapsed)),
        net_out_bytes_per_s: Some(rate(g.net_out.delta(rng, dt), elapsed)),
        pressure: g.pressure.as_mut().map(|p| p.next(rng, dt)),
        lock: None,
    }
}

/// The medium sample of bench host number `host` with `guests` guests: two ZFS pools (one in
/// fifty hosts has a degraded one), three filesystems, three storages and every guest's
/// configuration with a tag or two, for the pages to show what a real fleet has.
pub fn medium_sample(guests: u32, host: usize) -> MediumSample {
    let gib: u64 = 1 << 30;
    let degraded = host % 50 == 7;
    let pool = |name: &str, size: u64, health: &str| ZfsPool {
        name: name.into(),
        health: health.into(),
        size_bytes: Some(size),
        alloc_bytes: Some(size / 3),
        free_bytes: Some(size - size / 3),
        frag_percent: Some(12.0),
        dedup_ratio: Some(1.0),
        status_details: (health != "ONLINE").then(|| {
            "  pool: tank\n state: DEGRADED\nstatus: One or more devices has been removed.".into()
        }),
    };
    let fs = |mountpoint: &str, device: &str, size: u64| Filesystem {
        mountpoint: mountpoint.into(),
        device: device.into(),
        fstype: "zfs".into(),
        size_bytes: Some(size),
        used_bytes: Some(size / 4),
        avail_bytes: Some(size - size / 4),
        inodes_total: None,
        inodes_used: None,
    };
    let storage = |id: &str, kind: &str, content: &str, total: u64, shared: bool| Storage {
        id: id.into(),
        kind: kind.into(),
        content: Some(content.into()),
        shared,
        enabled: true,
        active: Some(true),
        total_bytes: Some(total),
        used_bytes: Some(total / 3),
        avail_bytes: Some(total - total / 3),
        pool: (kind == "zfspool").then(|| "rpool/data".to_owned()),
    };
    const TAGS: [&str; 5] = ["prod", "web", "db", "backup", "test"];
    MediumSample {
        schema: common::sample::SCHEMA_VERSION,
        pools: vec![
            pool("rpool", 900 * gib, "ONLINE"),
            pool(
                "tank",
                16_000 * gib,
                if degraded { "DEGRADED" } else { "ONLINE" },
            ),
        ],
        filesystems: vec![
            fs("/", "rpool/ROOT/pve-1", 800 * gib),
            fs("/var/lib/vz", "rpool/data", 800 * gib),
            fs("/tank", "tank", 15_000 * gib),
        ],
        storages: vec![
            storage("local", "dir", "iso,vztmpl,backup", 800 * gib, false),
            storage("local-zfs", "zfspool", "images,rootdir", 800 * gib, false),
            storage("nas", "nfs", "backup,iso", 40_000 * gib, true),
        ],
        guests: (0..guests)
            .map(|index| {
                let vmid = 100 + index;
                let i = index as usize;
                GuestConfig {
                    vmid,
                    kind: if index % 6 == 4 {
                        GuestType::Lxc
                    } else {
                        GuestType::Qemu
                    },
                    name: format!("guest-{vmid}"),
                    cores: Some(1 + index % 4),
                    sockets: Some(1),
                    cpus: Some(f64::from(1 + index % 4)),
                    memory_bytes: Some(u64::from(2 + index % 8) << 30),
                    swap_bytes: None,
                    onboot: true,
                    template: false,
                    tags: vec![TAGS[i % 5].into(), TAGS[(i + host) % 5].into()],
                    lock: None,
                }
            })
            .collect(),
        backup_jobs: Vec::new(),
        backups: Vec::new(),
        replication: Vec::new(),
        ha: None,
        errors: Vec::new(),
    }
}

/// The slow sample of bench host number `host`: versions, and membership in a cluster of 16.
pub fn slow_sample(host: usize, name: &str) -> SlowSample {
    let cluster = host / 16;
    SlowSample {
        schema: common::sample::SCHEMA_VERSION,
        node_name: Some(name.into()),
        pve_version: Some(if host % 10 == 3 { "8.1.4" } else { "8.2.4" }.into()),
        pve_repoid: Some("faa83925c9641325".into()),
        zfs_version: Some("2.2.4-pve1".into()),
        kernel_version: Some("6.8.8-2-pve".into()),
        cpu_model: Some("AMD EPYC 7302P 16-Core Processor".into()),
        cpu_count: Some(16),
        cpu_sockets: Some(1),
        cluster: Some(Cluster {
            name: format!("cluster-{cluster:02}"),
            quorate: Some(true),
            nodes: (0..16)
                .map(|n| ClusterNode {
                    name: format!("node-{n}"),
                    id: Some(n + 1),
                    online: true,
                    ip: None,
                })
                .collect(),
        }),
        smart: Vec::new(),
        smart_note: None,
        drive_temperatures: Vec::new(),
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_guests_give_a_few_hundred_points_every_time() {
        let mut node = Node::new(1, 30);
        let first = node.next(1.0).series_points().len();
        assert!((300..500).contains(&first), "{first}");
        for _ in 0..100 {
            let json = node.next_json(1.0);
            let sample: FastSample = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(sample.series_points().len(), first);
        }
    }

    #[test]
    fn values_move_like_a_nodes() {
        let mut node = Node::new(7, 30);
        let samples: Vec<Vec<(String, f64)>> =
            (0..300).map(|_| node.next(1.0).series_points()).collect();
        let series = |name: &str| -> Vec<f64> {
            samples
                .iter()
                .map(|s| s.iter().find(|(n, _)| n == name).map_or(f64::NAN, |p| p.1))
                .collect()
        };
        // Constant facts.
        assert!(series("mem_total_bytes").windows(2).all(|w| w[0] == w[1]));
        assert!(series("guest.100.mem_limit_bytes")
            .windows(2)
            .all(|w| w[0] == w[1]));
        // Uptime climbs by about a second a second.
        let up = series("uptime_seconds");
        assert!(
            (295.0..=305.0).contains(&(up[299] - up[0])),
            "{}",
            up[299] - up[0]
        );
        // Gauges wander slowly: load1 moves by far less than its range per step.
        let load = series("load1");
        let steps = load
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f64::max);
        assert!(steps < 1.0, "{steps}");
        // Rates are noisy, with two decimals at most.
        let rx = series("net.eno1.rx_bytes_per_s");
        let distinct: std::collections::BTreeSet<u64> = rx.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 250, "{}", distinct.len());
        assert!(rx
            .iter()
            .all(|v| ((v * 100.0).round() / 100.0).to_bits() == v.to_bits()));
        // Memory comes in KiB.
        assert!(series("mem_used_bytes").iter().all(|v| v % 1024.0 == 0.0));
    }
}
