//! The moving parts of a simulated node: every counter the kernel would keep (CPU ticks,
//! network and disk counters, the guests' cgroup and process counters, ARC hits, PSI totals),
//! advanced by `Model::advance` from the waves of the scenario. Counters only grow; gauges
//! (memory, load, pool usage) follow the same waves, so what the agent derives is consistent:
//! the host's CPU is its own work plus its guests', its uplink carries its guests' traffic,
//! its disks their I/O.

use std::collections::BTreeMap;

use crate::scenario::{Guest, Kind, Node};

/// Clock ticks per second (`USER_HZ`).
pub const HZ: f64 = 100.0;

/// One CPU's `/proc/stat` ticks: user nice system idle iowait irq softirq steal guest guest_nice.
pub type CpuTicks = [f64; 10];

#[derive(Debug, Clone, Copy, Default)]
pub struct NetCounters {
    pub rx_bytes: f64,
    pub rx_packets: f64,
    pub tx_bytes: f64,
    pub tx_packets: f64,
}

impl NetCounters {
    fn add(&mut self, rx_bytes: f64, tx_bytes: f64) {
        self.rx_bytes += rx_bytes;
        self.tx_bytes += tx_bytes;
        // About 1 KiB per packet on average.
        self.rx_packets += rx_bytes / 1000.0;
        self.tx_packets += tx_bytes / 1000.0;
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DiskCounters {
    pub reads: f64,
    pub read_sectors: f64,
    pub read_ms: f64,
    pub writes: f64,
    pub write_sectors: f64,
    pub write_ms: f64,
    pub io_ticks_ms: f64,
    pub queue_ms: f64,
}

impl DiskCounters {
    fn add(&mut self, read: f64, write: f64, busy_s: f64) {
        // 64 KiB per request, 0.2 ms each.
        let reads = read / 65_536.0;
        let writes = write / 65_536.0;
        self.reads += reads;
        self.writes += writes;
        self.read_sectors += read / 512.0;
        self.write_sectors += write / 512.0;
        self.read_ms += reads * 0.2;
        self.write_ms += writes * 0.2;
        self.io_ticks_ms += busy_s * 1000.0;
        self.queue_ms += busy_s * 1500.0;
    }
}

/// Pressure stall information: the three averages and the total in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Psi {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_us: f64,
}

impl Psi {
    /// Stalled for `share` (0..1) of the last `dt` seconds.
    fn add(&mut self, share: f64, dt: f64) {
        let percent = (share * 100.0).clamp(0.0, 100.0);
        for (avg, window) in [
            (&mut self.avg10, 10.0),
            (&mut self.avg60, 60.0),
            (&mut self.avg300, 300.0),
        ] {
            let keep = (-dt / window).exp();
            *avg = *avg * keep + percent * (1.0 - keep);
        }
        self.total_us += share.clamp(0.0, 1.0) * dt * 1e6;
    }
}

/// A running guest's counters.
#[derive(Debug, Clone, Default)]
pub struct GuestCounters {
    /// The QEMU process's (or the CT init's) `/proc/PID/stat` utime and stime, in ticks.
    pub utime: f64,
    pub stime: f64,
    /// cgroup `cpu.stat`, microseconds.
    pub usage_us: f64,
    pub user_us: f64,
    pub system_us: f64,
    /// cgroup `io.stat`.
    pub rbytes: f64,
    pub wbytes: f64,
    pub rios: f64,
    pub wios: f64,
    /// cgroup `memory.current` and the `file` part of `memory.stat`.
    pub memory_bytes: u64,
    pub file_bytes: u64,
    /// Its ports' counters as the host sees them (received = what the guest sent).
    pub port: NetCounters,
    pub cpu_psi: Psi,
    pub io_psi: Psi,
    pub memory_psi: Psi,
}

/// Everything that moves on one node.
#[derive(Debug, Clone)]
pub struct Model {
    pub node: Node,
    /// Seconds since the simulation started.
    pub t: f64,
    pub uptime_s: f64,
    pub idle_s: f64,
    pub cpus: Vec<CpuTicks>,
    /// Load averages 1, 5, 15 min.
    pub load: [f64; 3],
    pub runnable: u32,
    pub mem_available: u64,
    pub net: BTreeMap<&'static str, NetCounters>,
    pub disks: BTreeMap<&'static str, DiskCounters>,
    pub guests: BTreeMap<u32, GuestCounters>,
    pub arc_size: f64,
    pub arc_hits: f64,
    pub arc_misses: f64,
    pub cpu_psi: Psi,
    pub io_psi: Psi,
    pub memory_psi: Psi,
    /// Allocated bytes per pool.
    pub pool_alloc: BTreeMap<&'static str, f64>,
    rng: fastrand::Rng,
}

impl Model {
    /// The node as it is when the simulation starts: counters as after its uptime, gauges at
    /// the waves' values for t = 0.
    pub fn new(node: Node) -> Model {
        let uptime = node.uptime_s as f64;
        let mut model = Model {
            t: 0.0,
            uptime_s: uptime,
            idle_s: 0.0,
            cpus: vec![[0.0; 10]; node.cpus as usize],
            load: [0.0; 3],
            runnable: 1,
            mem_available: node.mem_bytes,
            net: BTreeMap::new(),
            disks: BTreeMap::new(),
            guests: BTreeMap::new(),
            arc_size: node.arc_target as f64 * 0.9,
            arc_hits: 0.0,
            arc_misses: 0.0,
            cpu_psi: Psi::default(),
            io_psi: Psi::default(),
            memory_psi: Psi::default(),
            pool_alloc: node
                .pools
                .iter()
                .map(|p| (p.name, p.alloc as f64))
                .collect(),
            rng: fastrand::Rng::with_seed(u64::from(node.id)),
            node,
        };
        for nic in model.node.physical_nics {
            model.net.insert(nic, NetCounters::default());
        }
        model.net.insert("vmbr0", NetCounters::default());
        model.net.insert("lo", NetCounters::default());
        for disk in &model.node.disks {
            model.disks.insert(disk.name, DiskCounters::default());
        }
        for guest in model.node.running_guests() {
            model.guests.insert(guest.vmid, GuestCounters::default());
        }
        // Counters do not start at zero on a node that has been up for weeks: run the
        // averages of its uptime in one step (and of each guest's), then settle the gauges.
        model.step(uptime, 1.0);
        model.step(1.0, 0.0);
        model.t = 0.0;
        model
    }

    /// The guest spec of a running guest.
    pub fn guest(&self, vmid: u32) -> Option<&Guest> {
        self.node.guests.iter().find(|g| g.vmid == vmid)
    }

    /// Moves the node `dt` seconds on.
    pub fn advance(&mut self, dt: f64) {
        if dt > 0.0 {
            self.step(dt, 0.0);
        }
    }

    /// `history` (0 or 1): how much of `dt` is past for the guests' counters (the start-up
    /// step gives each guest only its own uptime's worth).
    fn step(&mut self, dt: f64, history: f64) {
        self.t += dt;
        self.uptime_s += dt * (1.0 - history);
        let t = self.t;
        let node = self.node.clone();

        // Guests: CPU, memory, I/O, network.
        let mut guest_cores = 0.0;
        let mut guest_memory = 0u64;
        let (mut net_in, mut net_out, mut disk_read, mut disk_write) = (0.0, 0.0, 0.0, 0.0);
        for guest in node.running_guests() {
            let guest_dt = if history > 0.0 {
                (guest.up_for_s as f64).min(dt)
            } else {
                dt
            };
            let cores = guest.cpu.at(t, self.noise()).min(f64::from(guest.cores));
            let used = guest.memory_used.at(t, self.noise()).clamp(0.05, 0.98);
            let out = guest.net_out.at(t, self.noise());
            let inn = guest.net_in.at(t, self.noise());
            let read = guest.disk_read.at(t, self.noise());
            let write = guest.disk_write.at(t, self.noise());
            let Some(c) = self.guests.get_mut(&guest.vmid) else {
                continue;
            };
            let cpu_s = cores * guest_dt;
            c.utime += cpu_s * 0.85 * HZ;
            c.stime += cpu_s * 0.15 * HZ;
            c.usage_us += cpu_s * 1e6;
            c.user_us += cpu_s * 0.85 * 1e6;
            c.system_us += cpu_s * 0.15 * 1e6;
            c.rbytes += read * guest_dt;
            c.wbytes += write * guest_dt;
            c.rios += read * guest_dt / 65_536.0;
            c.wios += write * guest_dt / 65_536.0;
            c.port.add(out * guest_dt, inn * guest_dt);
            let limit = guest.memory_mib * 1024 * 1024;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                c.memory_bytes = (limit as f64 * used) as u64;
                // Page cache: little in a VM's scope, a third in a container.
                c.file_bytes = match guest.kind {
                    Kind::Vm => c.memory_bytes / 100,
                    Kind::Ct => c.memory_bytes / 3,
                };
            }
            let busy = cores / f64::from(guest.cores);
            c.cpu_psi.add((busy - 0.7).max(0.0) * 0.3, dt);
            c.io_psi.add((write / 200_000_000.0).min(0.2), dt);
            c.memory_psi.add(((used - 0.9) * 2.0).max(0.0), dt);
            guest_cores += cores;
            guest_memory += c.memory_bytes;
            net_in += inn;
            net_out += out;
            disk_read += read;
            disk_write += write;
        }

        // The host: its own work on top of its guests'.
        let cpus = f64::from(node.cpus);
        let busy = (node.host_cpu.at(t, self.noise()) + guest_cores).min(cpus * 0.97);
        let iowait = (disk_write + disk_read) / 400_000_000.0 * cpus * 0.05;
        let mut idle_total = 0.0;
        for i in 0..self.cpus.len() {
            let share = (busy / cpus * (1.0 + 0.25 * self.noise())).clamp(0.0, 0.99);
            let wait = (iowait / cpus).min(1.0 - share);
            let ticks = dt * HZ;
            let cpu = &mut self.cpus[i];
            cpu[0] += ticks * share * 0.68; // user
            cpu[1] += ticks * share * 0.02; // nice
            cpu[2] += ticks * share * 0.24; // system
            cpu[5] += ticks * share * 0.01; // irq
            cpu[6] += ticks * share * 0.05; // softirq
            cpu[4] += ticks * wait; // iowait
            let idle = ticks * (1.0 - share - wait);
            cpu[3] += idle;
            idle_total += idle / HZ;
        }
        self.idle_s += idle_total;
        let runnable = busy + iowait;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            self.runnable = runnable.ceil().max(1.0) as u32;
        }
        for (load, minutes) in self.load.iter_mut().zip([1.0, 5.0, 15.0]) {
            let keep = (-dt / (60.0 * minutes)).exp();
            *load = *load * keep + runnable * (1.0 - keep);
        }
        self.cpu_psi.add((busy / cpus - 0.6).max(0.0) * 0.2, dt);
        self.io_psi.add((iowait / cpus).min(0.5), dt);
        self.memory_psi.add(0.0, dt);

        // Network: the uplink and the bridge carry the guests' traffic plus the host's own.
        let host_rx = 50_000.0 * (1.0 + 0.3 * self.noise());
        let host_tx = 30_000.0 * (1.0 + 0.3 * self.noise());
        if let Some(uplink) = node.physical_nics.first() {
            if let Some(c) = self.net.get_mut(uplink) {
                c.add((net_in + host_rx) * dt, (net_out + host_tx) * dt);
            }
        }
        for idle_nic in node.physical_nics.iter().skip(1) {
            if let Some(c) = self.net.get_mut(idle_nic) {
                c.add(200.0 * dt, 0.0);
            }
        }
        if let Some(c) = self.net.get_mut("vmbr0") {
            c.add((net_in + host_rx) * dt, (net_out + host_tx) * dt);
        }
        if let Some(c) = self.net.get_mut("lo") {
            c.add(20_000.0 * dt, 20_000.0 * dt);
        }

        // Disks: each pool's members carry the guests' I/O (mirrors write on every member).
        let host_write = 200_000.0 * (1.0 + 0.5 * self.noise());
        for pool in &node.pools {
            let share = if pool.name == "rpool" { 0.6 } else { 0.4 };
            let single_pool = node.pools.len() == 1;
            let share = if single_pool { 1.0 } else { share };
            let read = disk_read * share / pool.disks.len().max(1) as f64;
            let write = disk_write * share + host_write;
            for name in pool.disks {
                let max = node
                    .disks
                    .iter()
                    .find(|d| d.name == *name)
                    .map_or(200_000_000.0, |d| d.max_bytes_per_s);
                let busy = ((read + write) / max * 3.0).min(0.95);
                if let Some(c) = self.disks.get_mut(name) {
                    c.add(read * dt, write * dt, busy * dt);
                }
            }
            if let Some(alloc) = self.pool_alloc.get_mut(pool.name) {
                *alloc = (*alloc + pool.growth_per_s * dt * (1.0 - history))
                    .min(pool.size as f64 * 0.98);
            }
        }

        // ZFS ARC and memory.
        let lookups = node.arc_lookups.at(t, self.noise()) * dt;
        self.arc_hits += lookups * 0.94;
        self.arc_misses += lookups * 0.06;
        let target = node.arc_target as f64;
        self.arc_size =
            (self.arc_size + (target - self.arc_size) * 0.05 + target * 0.01 * self.noise())
                .clamp(target * 0.5, target);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let used = node.host_memory + guest_memory + self.arc_size as u64;
        self.mem_available = node.mem_bytes.saturating_sub(used);
    }

    /// A number in [-1, 1].
    fn noise(&mut self) -> f64 {
        self.rng.f64() * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    #[test]
    fn counters_only_grow_and_cpu_ticks_add_up_to_the_time_passed() {
        let mut model = Model::new(scenario::node("pve-sim1").unwrap());
        let before = model.clone();
        model.advance(2.0);
        for (a, b) in before.cpus.iter().zip(&model.cpus) {
            let spent: f64 = b.iter().zip(a).map(|(b, a)| b - a).sum();
            assert!((spent - 2.0 * HZ).abs() < 1e-6, "{spent}");
            assert!(b.iter().zip(a).all(|(b, a)| b >= a));
        }
        for (name, c) in &model.net {
            assert!(c.rx_bytes >= before.net[name].rx_bytes, "{name}");
        }
        let eno1 = model.net["eno1"].rx_bytes - before.net["eno1"].rx_bytes;
        assert!(
            eno1 > 1_000_000.0,
            "the uplink carries the guests' traffic: {eno1}"
        );
        for (vmid, c) in &model.guests {
            let b = &before.guests[vmid];
            assert!(c.usage_us > b.usage_us && c.utime > b.utime, "{vmid}");
            assert!(c.wbytes > b.wbytes, "{vmid}");
        }
        assert!(model.uptime_s - before.uptime_s == 2.0);
        assert!(model.mem_available < model.node.mem_bytes);
        assert!(model.load[0] > 0.5, "{:?}", model.load);
    }

    #[test]
    fn a_degraded_pools_missing_disk_is_not_simulated() {
        let model = Model::new(scenario::node("pve-sim2").unwrap());
        assert!(model.disks.contains_key("sdc"));
        assert!(!model.disks.contains_key("sdd"));
        assert_eq!(model.guests.len(), 2, "two running guests");
    }
}
