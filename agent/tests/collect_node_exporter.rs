//! The agent over node_exporter's own `/proc` fixtures (`fixtures/node-exporter`, verbatim from
//! prometheus/node_exporter): every file reads without a problem, and every value
//! node_exporter's end-to-end test expects from them that the agent also collects is the same
//! (`fixtures/node-exporter/expected-e2e-excerpt.txt`, read here, not copied into the test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent::collect::problem::Problems;
use agent::collect::{
    arcstats, cpuinfo, diskstats, loadavg, meminfo, net_dev, pressure, stat, zpool, Collector,
};

fn tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/node-exporter")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(tree().join(relative)).unwrap()
}

/// Parses `relative` with `parse` and insists on no problem at all.
fn clean<T>(relative: &str, parse: fn(&str, &mut Problems) -> Result<T, String>) -> T {
    let mut problems = Problems::new();
    let value = parse(&read(relative), &mut problems).unwrap();
    assert!(problems.is_empty(), "{relative}: {problems:?}");
    value
}

/// One sample line of the Prometheus text format: name, labels, value.
struct Expected {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn expected() -> Vec<Expected> {
    let mut out = Vec::new();
    for line in read("expected-e2e-excerpt.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.push(Expected {
            name: name.to_owned(),
            labels,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// Metrics of the excerpt the agent does not collect (it sends what Proxmox shows, not every
/// kernel counter): listed so that none is skipped silently.
const NOT_COLLECTED: [&str; 17] = [
    "node_boot_time_seconds",
    "node_context_switches_total",
    "node_cpu_guest_seconds_total",
    "node_disk_discards_completed_total",
    "node_disk_flush_requests_total",
    "node_disk_read_time_seconds_total",
    "node_disk_write_time_seconds_total",
    "node_forks_total",
    "node_intr_total",
    "node_memory_Active_bytes",
    "node_memory_Inactive_bytes",
    "node_memory_Shmem_bytes",
    "node_memory_SwapCached_bytes",
    "node_procs_blocked",
    "node_procs_running",
    "node_zfs_arc_arc_meta_used",
    "node_zfs_arc_memory_available_bytes",
];

#[test]
fn every_file_reads_without_a_problem_and_agrees_with_node_exporter() {
    let load = clean("proc/loadavg", loadavg::parse);
    let mem = clean("proc/meminfo", meminfo::parse);
    let cpu = clean("proc/stat", stat::parse);
    let disks: BTreeMap<String, diskstats::DiskCounters> =
        clean("proc/diskstats", diskstats::parse)
            .into_iter()
            .collect();
    let net: BTreeMap<String, net_dev::NetCounters> =
        clean("proc/net/dev", net_dev::parse).into_iter().collect();
    let arc = clean("proc/spl/kstat/zfs/arcstats", arcstats::parse);
    let psi = |name: &str| clean(&format!("proc/pressure/{name}"), pressure::parse);
    let (psi_cpu, psi_io, psi_memory) = (psi("cpu"), psi("io"), psi("memory"));
    let pool_state = |pool: &str| {
        zpool::parse_state(&read(&format!("proc/spl/kstat/zfs/{pool}/state"))).unwrap()
    };

    let expected = expected();
    let mut compared = 0;
    for e in &expected {
        let label = |k: &str| e.labels.get(k).map(String::as_str).unwrap_or("");
        let per_cpu = || {
            let n: u32 = label("cpu").parse().unwrap();
            cpu.per_cpu
                .iter()
                .find(|(m, _)| *m == n)
                .expect("cpu line")
                .1
        };
        let disk = || disks.get(label("device")).expect("disk line");
        let iface = || net.get(label("device")).expect("interface line");
        let seconds = |us: Option<u64>| us.unwrap() as f64 / 1e6;
        let ours: f64 = match e.name.as_str() {
            "node_load1" => load.one.unwrap(),
            "node_load5" => load.five.unwrap(),
            "node_load15" => load.fifteen.unwrap(),
            "node_memory_MemTotal_bytes" => mem.total.unwrap() as f64,
            "node_memory_MemFree_bytes" => mem.free.unwrap() as f64,
            "node_memory_Buffers_bytes" => mem.buffers.unwrap() as f64,
            "node_memory_Cached_bytes" => mem.cached.unwrap() as f64,
            "node_memory_SwapTotal_bytes" => mem.swap_total.unwrap() as f64,
            "node_memory_SwapFree_bytes" => mem.swap_free.unwrap() as f64,
            "node_cpu_seconds_total" => {
                let t = per_cpu();
                let ticks = match label("mode") {
                    "user" => t.user,
                    "nice" => t.nice,
                    "system" => t.system,
                    "idle" => t.idle,
                    "iowait" => t.iowait,
                    "irq" => t.irq,
                    "softirq" => t.softirq,
                    "steal" => t.steal,
                    other => panic!("mode {other}"),
                };
                ticks as f64 / 100.0
            }
            "node_disk_reads_completed_total" => disk().reads as f64,
            "node_disk_writes_completed_total" => disk().writes as f64,
            "node_disk_read_bytes_total" => (disk().read_sectors * 512) as f64,
            "node_disk_written_bytes_total" => (disk().write_sectors * 512) as f64,
            "node_disk_io_time_seconds_total" => disk().io_ticks_ms as f64 / 1000.0,
            "node_network_receive_bytes_total" => iface().rx_bytes as f64,
            "node_network_receive_packets_total" => iface().rx_packets as f64,
            "node_network_transmit_bytes_total" => iface().tx_bytes as f64,
            "node_network_transmit_packets_total" => iface().tx_packets as f64,
            "node_zfs_arc_size" => arc.size.unwrap() as f64,
            "node_zfs_arc_c" => arc.target.unwrap() as f64,
            "node_zfs_arc_c_min" => arc.min.unwrap() as f64,
            "node_zfs_arc_c_max" => arc.max.unwrap() as f64,
            "node_zfs_arc_hits" => arc.hits.unwrap() as f64,
            "node_zfs_arc_misses" => arc.misses.unwrap() as f64,
            "node_pressure_cpu_waiting_seconds_total" => seconds(psi_cpu.some_total_us),
            "node_pressure_io_waiting_seconds_total" => seconds(psi_io.some_total_us),
            "node_pressure_io_stalled_seconds_total" => seconds(psi_io.full_total_us),
            "node_pressure_memory_waiting_seconds_total" => seconds(psi_memory.some_total_us),
            "node_pressure_memory_stalled_seconds_total" => seconds(psi_memory.full_total_us),
            "node_zfs_zpool_state" => {
                let ours = pool_state(label("zpool")).to_ascii_lowercase();
                f64::from(u8::from(ours == label("state")))
            }
            name => {
                assert!(
                    NOT_COLLECTED.contains(&name),
                    "{name} is neither compared nor listed"
                );
                continue;
            }
        };
        let tolerance = 1e-9 * e.value.abs().max(1.0);
        assert!(
            (ours - e.value).abs() <= tolerance,
            "{}{:?}: node_exporter expects {}, the agent reads {ours}",
            e.name,
            e.labels,
            e.value
        );
        compared += 1;
    }
    // Every line of the excerpt but those of NOT_COLLECTED, and that list is exact.
    let skipped = expected
        .iter()
        .filter(|e| NOT_COLLECTED.contains(&e.name.as_str()))
        .count();
    assert_eq!(compared + skipped, expected.len());
    assert!(compared > 100, "{compared}");
    for name in NOT_COLLECTED {
        assert!(
            expected.iter().any(|e| e.name == name),
            "{name} is not in the excerpt"
        );
    }

    // The CPU file has no expected series in the excerpt; what it says, by hand.
    let info = clean("proc/cpuinfo", cpuinfo::parse);
    assert_eq!(info.count, 8);
    assert_eq!(info.sockets, Some(1));
    assert_eq!(
        info.model.as_deref(),
        Some("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    );
}

#[test]
fn the_collector_reads_the_whole_tree() {
    let mut collector = Collector::new(tree());
    let fast = collector.fast();
    assert_eq!(fast.errors, []);
    // By name (no /sys here): loopback, tunnels, docker, VLAN-style `flannel.1` and veth pairs
    // are left out; the odd names are kept.
    let names: Vec<&str> = fast.net.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["eth0", "lxcbr0", "wlan0", "ibr10:30", "\u{1F4A9}0"]);
    let disks: Vec<&str> = fast.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        disks,
        ["sda", "mmcblk0", "fd0", "vda", "nvme0n1", "sdb", "sdc"]
    );
    // No MemAvailable in this meminfo: total − free − buffers − cached − reclaimable slab.
    assert_eq!(
        fast.mem_used_bytes,
        Some((3_742_148 - 225_472 - 22_040 - 930_888 - 44_772) * 1024)
    );
    assert_eq!(fast.arc.unwrap().size_bytes, Some(1_603_939_792));
    assert_eq!(fast.pressure.unwrap().io_full, Some(0.18));
    let medium = collector.medium();
    assert_eq!(medium.errors, []);
    // `cmd/` has no `zpool`: the states come from the kstat files.
    let pools: Vec<(&str, &str)> = medium
        .pools
        .iter()
        .map(|p| (p.name.as_str(), p.health.as_str()))
        .collect();
    assert_eq!(
        pools,
        [
            ("pool1", "ONLINE"),
            ("pool2", "SUSPENDED"),
            ("pool3", "ONLINE"),
            ("poolz1", "DEGRADED")
        ]
    );
    let slow = collector.slow();
    assert_eq!(slow.errors, []);
    assert_eq!(slow.cpu_count, Some(8));
}
