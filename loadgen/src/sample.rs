//! Realistic fast samples of a Proxmox node with N guests, built from `common::sample` types so
//! that the server flattens them exactly as it does a real agent's (about 100 host points plus
//! 10–16 per running guest: ~395 points with 30 guests).

use common::sample::{
    Arc, Disk, FastSample, GuestFast, GuestStatus, GuestType, NetInterface, Pressure,
};

/// How many differently-valued samples `Templates` keeps: values change from sample to sample
/// (SQLite stores whole-number REALs more compactly, so constant values would flatter the
/// bytes-per-point figure), without building JSON for every push.
pub const VARIANTS: usize = 16;

/// Pre-serialized `data` objects of fast samples, and how many points each flattens into.
pub struct Templates {
    data: Vec<String>,
    points: usize,
}

impl Templates {
    pub fn new(guests: u32) -> Templates {
        let samples: Vec<FastSample> = (0..VARIANTS)
            .map(|v| fast_sample(guests, u32::try_from(v).unwrap_or(0)))
            .collect();
        Templates {
            points: samples.first().map_or(0, |s| s.series_points().len()),
            data: samples
                .iter()
                .map(|s| serde_json::to_string(s).unwrap_or_default())
                .collect(),
        }
    }

    /// The `data` JSON of variant `i` (any number; wraps around).
    pub fn data(&self, i: usize) -> &str {
        &self.data[i % self.data.len()]
    }

    /// Series points per sample.
    pub fn points(&self) -> usize {
        self.points
    }

    /// The average size of a `data` object in bytes.
    pub fn bytes(&self) -> usize {
        self.data.iter().map(String::len).sum::<usize>() / self.data.len().max(1)
    }
}

/// A 16-core node with ZFS, 4 interfaces, 6 disks and `guests` guests: five in six run
/// (a sixth of those are containers, with pressure figures), the rest are stopped.
pub fn fast_sample(guests: u32, variant: u32) -> FastSample {
    let v = f64::from(variant);
    let wobble = |base: f64, i: u32| base * (1.0 + 0.013 * f64::from((variant * 7 + i) % 23));
    let gib: u64 = 1 << 30;
    FastSample {
        schema: common::sample::SCHEMA_VERSION,
        hostname: Some("bench-node".into()),
        load1: Some(1.37 + v / 10.0),
        load5: Some(1.21 + v / 20.0),
        load15: Some(1.02),
        mem_total_bytes: Some(128 * gib),
        mem_available_bytes: Some(61 * gib + u64::from(variant) * 4096 * 1013),
        mem_used_bytes: Some(67 * gib - u64::from(variant) * 4096 * 1013),
        swap_total_bytes: Some(8 * gib),
        swap_free_bytes: Some(8 * gib - 12_345_678),
        uptime_seconds: Some(3_456_789 + u64::from(variant)),
        cpu_percent: Some(wobble(23.4, 0)),
        cpu_per_core_percent: Some((0..16).map(|c| wobble(17.9, c)).collect()),
        cpu_user_percent: Some(wobble(15.2, 1)),
        cpu_system_percent: Some(wobble(6.1, 2)),
        cpu_iowait_percent: Some(wobble(1.3, 3)),
        cpu_steal_percent: Some(0.0),
        mem_arc_bytes: Some(16 * gib + u64::from(variant) * 65_536),
        mem_used_without_arc_bytes: Some(51 * gib),
        pressure: Some(pressure(variant)),
        arc: Some(Arc {
            size_bytes: Some(16 * gib + u64::from(variant) * 65_536),
            target_bytes: Some(16 * gib),
            min_bytes: Some(4 * gib),
            max_bytes: Some(64 * gib),
            hit_ratio_percent: Some(wobble(97.1, 4).min(100.0)),
        }),
        net: ["eno1", "eno2", "bond0", "vmbr0"]
            .iter()
            .zip(0u32..)
            .map(|(name, i)| NetInterface {
                name: (*name).into(),
                bridge: name.starts_with("vmbr"),
                rx_bytes_per_s: Some(wobble(1_234_567.0, i)),
                tx_bytes_per_s: Some(wobble(765_432.0, i + 1)),
                rx_packets_per_s: Some(wobble(1789.0, i + 2)),
                tx_packets_per_s: Some(wobble(1456.0, i + 3)),
                rx_errors: 0,
                tx_errors: 0,
                rx_dropped: u64::from(variant / 4),
                tx_dropped: 0,
            })
            .collect(),
        disks: ["nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd"]
            .iter()
            .zip(0u32..)
            .map(|(name, i)| Disk {
                name: (*name).into(),
                read_bytes_per_s: Some(wobble(2_345_678.0, i)),
                write_bytes_per_s: Some(wobble(3_456_789.0, i + 5)),
                read_iops: Some(wobble(123.4, i + 7)),
                write_iops: Some(wobble(234.5, i + 9)),
                busy_percent: Some(wobble(12.5, i + 11)),
            })
            .collect(),
        guests: (0..guests).map(|g| guest(g, variant)).collect(),
        temperatures: Vec::new(),
        errors: Vec::new(),
    }
}

fn pressure(variant: u32) -> Pressure {
    let p = |base: f64| Some(base + f64::from(variant % 5) * 0.01);
    Pressure {
        cpu_some: p(1.25),
        cpu_full: p(0.0),
        io_some: p(0.42),
        io_full: p(0.31),
        memory_some: p(0.0),
        memory_full: p(0.0),
    }
}

fn guest(index: u32, variant: u32) -> GuestFast {
    let vmid = 100 + index;
    let running = index % 6 != 5;
    let container = index % 6 == 4;
    let kind = if container {
        GuestType::Lxc
    } else {
        GuestType::Qemu
    };
    let limit = u64::from(2 + index % 8) << 30;
    if !running {
        return GuestFast {
            vmid,
            kind,
            name: Some(format!("guest-{vmid}")),
            status: GuestStatus::Stopped,
            mem_limit_bytes: Some(limit),
            ..GuestFast::default()
        };
    }
    let f = f64::from((variant * 13 + index * 7) % 97);
    GuestFast {
        vmid,
        kind,
        name: Some(format!("guest-{vmid}")),
        status: GuestStatus::Running,
        uptime_seconds: Some(100_000 + u64::from(index) * 37 + u64::from(variant)),
        cpus: Some(f64::from(1 + index % 4)),
        cpu_percent: Some(f * 0.87 + 0.13),
        cpu_host_percent: Some(f * 0.11 + 0.07),
        mem_used_bytes: Some(limit / 2 + u64::from(variant) * 1_048_576 + 4096 * 3),
        mem_limit_bytes: Some(limit),
        disk_read_bytes_per_s: Some(f * 1024.5 + 0.25),
        disk_write_bytes_per_s: Some(f * 2048.25 + 0.5),
        net_in_bytes_per_s: Some(f * 512.125 + 0.75),
        net_out_bytes_per_s: Some(f * 256.0625 + 1.5),
        pressure: container.then(|| pressure(variant + index)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_guests_give_a_few_hundred_points_in_every_variant() {
        let t = Templates::new(30);
        assert!((300..500).contains(&t.points()), "{}", t.points());
        for v in 0..VARIANTS {
            let sample: FastSample = serde_json::from_str(t.data(v)).unwrap_or_default();
            assert_eq!(sample.series_points().len(), t.points(), "variant {v}");
        }
    }
}
