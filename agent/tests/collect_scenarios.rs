//! The collector over whole fixture trees, one per scenario (see `fixtures/README.md`), and over
//! two consecutive snapshots of the pve-node tree for exact rates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::collect::command::{CommandError, CommandRunner, Output};
use agent::collect::Collector;
use common::sample::{FastSample, GuestStatus, MediumSample, SourceError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// A private copy of fixture trees (later ones laid over earlier ones), removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(layers: &[&str]) -> TempTree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pm-collect-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let tree = TempTree(dir);
        for layer in layers {
            tree.overlay(layer);
        }
        tree
    }

    fn overlay(&self, layer: &str) {
        copy_dir(&fixture(layer), &self.0);
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remove(&self, relative: &str) {
        std::fs::remove_file(self.0.join(relative)).unwrap();
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The sources of `errors`, each once, in order (a file may have several problems).
fn sources(errors: &[common::sample::SourceError]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for e in errors {
        if !out.contains(&e.source.as_str()) {
            out.push(&e.source);
        }
    }
    out
}

/// The `data` of a golden protocol frame.
fn golden_data(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("protocol").join(name)).unwrap();
    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
    frame[4]["data"].clone()
}

/// pve-node, then pve-node-t1 30 s later.
fn two_samples() -> (FastSample, FastSample, TempTree, Collector, Instant) {
    let tree = TempTree::new(&["pve-node"]);
    let mut collector = Collector::new(&tree.0);
    let t0 = Instant::now();
    let first = collector.fast_at(t0);
    tree.overlay("pve-node-t1");
    let t1 = t0 + Duration::from_secs(30);
    let second = collector.fast_at(t1);
    (first, second, tree, collector, t1)
}

#[test]
fn first_sample_has_no_rates() {
    let (first, _, _tree, _, _) = two_samples();
    assert_eq!(first.errors, []);
    assert_eq!(first.cpu_percent, None);
    assert_eq!(first.arc.unwrap().hit_ratio_percent, None);
    assert!(first.net.iter().all(|n| n.rx_bytes_per_s.is_none()));
    assert!(first.disks.iter().all(|d| d.busy_percent.is_none()));
    assert!(first.guests.iter().all(|g| g.cpu_percent.is_none()));
}

#[test]
fn rates_over_30_seconds_are_exact() {
    let (_, second, _tree, _, _) = two_samples();
    assert_eq!(second.errors, []);
    assert_eq!(second.cpu_percent, Some(18.5));
    assert_eq!(second.cpu_per_core_percent, Some(vec![18.5; 8]));
    assert_eq!(
        (
            second.cpu_user_percent,
            second.cpu_system_percent,
            second.cpu_iowait_percent,
            second.cpu_steal_percent
        ),
        (Some(10.0), Some(7.5), Some(2.5), Some(1.0))
    );
    let arc = second.arc.unwrap();
    assert_eq!(arc.size_bytes, Some(1_610_612_736));
    assert_eq!(arc.hit_ratio_percent, Some(90.0));
    assert_eq!(second.mem_arc_bytes, Some(1_610_612_736));
    assert_eq!(
        second.mem_used_without_arc_bytes,
        Some(10_005_094_400 - 1_610_612_736)
    );

    let eno1 = &second.net[0];
    assert_eq!(eno1.name, "eno1");
    assert_eq!(eno1.rx_bytes_per_s, Some(1_000_000.0));
    assert_eq!(eno1.tx_bytes_per_s, Some(500_000.0));
    assert_eq!(eno1.rx_packets_per_s, Some(1000.0));
    assert_eq!(eno1.tx_packets_per_s, Some(500.0));
    assert_eq!(eno1.rx_dropped, 1842);
    assert_eq!(second.net[1].rx_bytes_per_s, Some(0.0));
    assert!(second.net[2].bridge);
    assert_eq!(second.net[2].rx_bytes_per_s, Some(900_000.0));

    let nvme0 = &second.disks[0];
    assert_eq!(nvme0.read_bytes_per_s, Some(1_024_000.0));
    assert_eq!(nvme0.write_bytes_per_s, Some(2_048_000.0));
    assert_eq!(nvme0.read_iops, Some(100.0));
    assert_eq!(nvme0.write_iops, Some(200.0));
    assert_eq!(nvme0.busy_percent, Some(25.0));
    assert_eq!(second.disks[1].busy_percent, Some(20.0));

    let vm = &second.guests[0];
    assert_eq!((vm.vmid, vm.status), (100, GuestStatus::Running));
    // 6000 ticks in 30 s at USER_HZ 100 = 2 cores busy: half of its 4, a quarter of the host's 8.
    assert_eq!(vm.cpu_percent, Some(50.0));
    assert_eq!(vm.cpu_host_percent, Some(25.0));
    assert_eq!(vm.uptime_seconds, Some(338_419));
    assert_eq!(vm.disk_read_bytes_per_s, Some(1_024_000.0));
    assert_eq!(vm.disk_write_bytes_per_s, Some(2_048_000.0));
    // tap100i0 received 3 MB (the VM sent them) and transmitted 6 MB (the VM received them).
    assert_eq!(vm.net_out_bytes_per_s, Some(100_000.0));
    assert_eq!(vm.net_in_bytes_per_s, Some(200_000.0));
    let ct = &second.guests[1];
    // 9 s of CPU in 30 s = 0.3 cores: 15 % of its 2 cores, 3.75 % of the host.
    assert_eq!(ct.cpu_percent, Some(15.0));
    assert_eq!(ct.cpu_host_percent, Some(3.75));
    assert_eq!(ct.disk_read_bytes_per_s, Some(102_400.0));
    assert_eq!(ct.disk_write_bytes_per_s, Some(51_200.0));
    assert_eq!(ct.net_out_bytes_per_s, Some(10_000.0));
    assert_eq!(ct.net_in_bytes_per_s, Some(20_000.0));
    assert_eq!(second.guests[2].status, GuestStatus::Stopped);
}

#[test]
fn golden_fast_frame_is_what_the_collector_produces() {
    let (_, second, _tree, _, _) = two_samples();
    assert_eq!(
        serde_json::to_value(&second).unwrap(),
        golden_data("metric_fast.json")
    );
}

#[test]
fn counter_resets_and_vanished_devices_give_no_rates() {
    let (_, _, tree, mut collector, t1) = two_samples();
    // Reboot-like: counters back at the t0 values; the VM restarted (new start time); eno2
    // and nvme1n1 vanished.
    tree.overlay("pve-node");
    tree.write(
        "proc/1853/stat",
        &std::fs::read_to_string(fixture("pve-node/proc/1853/stat"))
            .unwrap()
            .replace(" 1234567 ", " 9999999 "),
    );
    let dev = std::fs::read_to_string(fixture("pve-node/proc/net/dev")).unwrap();
    tree.write(
        "proc/net/dev",
        &dev.lines()
            .filter(|l| !l.contains("eno2:"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let disks = std::fs::read_to_string(fixture("pve-node/proc/diskstats")).unwrap();
    tree.write(
        "proc/diskstats",
        &disks
            .lines()
            .filter(|l| !l.contains("nvme1n1"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let third = collector.fast_at(t1 + Duration::from_secs(30));
    assert_eq!(third.errors, []);
    assert_eq!(third.cpu_percent, None);
    assert_eq!(third.arc.unwrap().hit_ratio_percent, None);
    assert_eq!(third.net.len(), 2);
    assert!(third.net.iter().all(|n| n.rx_bytes_per_s.is_none()));
    assert_eq!(third.disks.len(), 1);
    assert_eq!(third.disks[0].read_bytes_per_s, None);
    for guest in &third.guests {
        assert_eq!(guest.cpu_percent, None, "{}", guest.vmid);
        assert_eq!(guest.disk_read_bytes_per_s, None, "{}", guest.vmid);
        assert_eq!(guest.net_in_bytes_per_s, None, "{}", guest.vmid);
    }
    // Memory is not a rate: still there.
    assert_eq!(third.guests[0].mem_used_bytes, Some(4_461_088_768));
    // eno2 comes back: its first sample has no rate, the others have theirs again.
    tree.overlay("pve-node");
    let fourth = collector.fast_at(t1 + Duration::from_secs(60));
    let eno2 = fourth.net.iter().find(|n| n.name == "eno2").unwrap();
    assert_eq!(eno2.rx_bytes_per_s, None);
    assert_eq!(fourth.net[0].rx_bytes_per_s, Some(0.0));
}

#[test]
fn a_stopped_vm_with_a_stale_pid_file_is_stopped() {
    let tree = TempTree::new(&["pve-node"]);
    // The pid now belongs to some other process.
    tree.write("proc/1853/cmdline", "/usr/sbin/sshd\0-D\0");
    let sample = Collector::new(&tree.0).fast();
    assert_eq!(sample.guests[0].status, GuestStatus::Stopped);
    assert_eq!(sample.guests[0].mem_used_bytes, None);
    // And a pid file whose process is gone.
    tree.remove("proc/1853/stat");
    assert_eq!(
        Collector::new(&tree.0).fast().guests[0].status,
        GuestStatus::Stopped
    );
}

#[test]
fn paused_guests() {
    let tree = TempTree::new(&["pve-node"]);
    tree.write(
        "sys/fs/cgroup/lxc/101/cgroup.events",
        "populated 1\nfrozen 1\n",
    );
    let stat = std::fs::read_to_string(fixture("pve-node/proc/1853/stat")).unwrap();
    tree.write("proc/1853/stat", &stat.replace("(kvm) S", "(kvm) T"));
    let sample = Collector::new(&tree.0).fast();
    assert_eq!(sample.guests[0].status, GuestStatus::Paused);
    assert_eq!(sample.guests[1].status, GuestStatus::Paused);
}

#[test]
fn a_broken_guest_file_is_an_error_for_that_guest_only() {
    let tree = TempTree::new(&["pve-node"]);
    tree.write(
        "sys/fs/cgroup/qemu.slice/100.scope/memory.stat",
        "garbage\n",
    );
    tree.remove("etc/pve/qemu-server/102.conf");
    let mut collector = Collector::new(&tree.0);
    let sample = collector.fast();
    assert_eq!(
        sources(&sample.errors),
        [
            "/sys/fs/cgroup/qemu.slice/100.scope/memory.stat",
            "/etc/pve/qemu-server/102.conf"
        ]
    );
    assert_eq!(sample.guests[0].mem_used_bytes, None);
    assert_eq!(sample.guests[0].cpus, Some(4.0));
    // The VM without a config still reports, with the default name.
    assert_eq!(sample.guests[2].name.as_deref(), Some("VM 102"));
    assert_eq!(sample.guests[1].mem_used_bytes, Some(124_792_832));
}

#[test]
fn a_bad_line_in_a_ct_config_costs_only_that_line() {
    let tree = TempTree::new(&["pve-node"]);
    let config = "#DNS resolver\narch: amd64\ncores: 2\nhostname: dns01\nmemory: lots\n\
                  tags: infra\nlxc.idmap: u 0 100000 65536\nlxc.cgroup2.devices.allow: c 10:200 rwm\n\
                  lxc.apparmor.profile = unconfined\n";
    tree.write("etc/pve/lxc/101.conf", config);
    let mut collector = Collector::new(&tree.0);
    let fast = collector.fast();
    // The fast sample uses the config; its line problems are the medium sample's to report.
    assert_eq!(fast.errors, []);
    assert_eq!(fast.guests[1].name.as_deref(), Some("dns01"));
    assert_eq!(fast.guests[1].cpus, Some(2.0));
    let medium = collector.medium();
    assert_eq!(
        medium.errors,
        [SourceError {
            source: "/etc/pve/lxc/101.conf".into(),
            message: "line 5: memory \"lots\" is not a whole number".into()
        }]
    );
    let ct = &medium.guests[1];
    assert_eq!((ct.name.as_str(), ct.cores), ("dns01", Some(2)));
    assert_eq!(ct.tags, ["infra"]);
    // Memory unreadable: the run-time default; no `swap` line: no swap.
    assert_eq!(ct.memory_bytes, Some(512 * 1024 * 1024));
    assert_eq!(ct.swap_bytes, Some(0));
    // Reported again by the next medium sample (it still is wrong), once each time.
    assert_eq!(collector.medium().errors.len(), 1);
}

#[test]
fn a_file_full_of_bad_lines_lists_ten_and_counts_the_rest() {
    let tree = TempTree::new(&["pve-node"]);
    let mut net = std::fs::read_to_string(tree.0.join("proc/net/dev")).unwrap();
    for i in 0..15 {
        net.push_str(&format!("bad{i}: 1 2 3\n"));
    }
    tree.write("proc/net/dev", &net);
    let mut collector = Collector::new(&tree.0);
    for _ in 0..2 {
        let fast = collector.fast();
        let messages: Vec<&str> = fast
            .errors
            .iter()
            .filter(|e| e.source == "/proc/net/dev")
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(messages.len(), 11, "{messages:?}");
        assert_eq!(messages[0], "line 15: bad0: expected 16 counters, found 3");
        assert_eq!(messages[10], "5 more lines or fields skipped");
        assert_eq!(fast.errors.len(), 11);
        // Every good interface is still read.
        let names: Vec<&str> = fast.net.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["eno1", "eno2", "vmbr0"]);
    }
}

#[test]
fn medium_and_slow_of_the_pve_node() {
    let mut collector = Collector::new(fixture("pve-node"));
    let medium = collector.medium();
    assert_eq!(medium.errors, []);
    assert_eq!(medium.pools.len(), 1);
    assert_eq!(medium.pools[0].status_details, None);
    let mounts: Vec<&str> = medium
        .filesystems
        .iter()
        .map(|f| f.mountpoint.as_str())
        .collect();
    assert_eq!(
        mounts,
        ["/", "/boot/efi", "/rpool", "/rpool/ROOT", "/rpool/data"]
    );
    assert_eq!(medium.storages[1].used_bytes, Some(174_212_788 * 1024));
    assert_eq!(medium.guests.len(), 3);
    let golden: MediumSample = serde_json::from_value(golden_data("metric_medium.json")).unwrap();
    assert_eq!(medium.pools, golden.pools);
    assert_eq!(medium.storages, golden.storages);
    assert_eq!(medium.guests, golden.guests);
    assert_eq!(medium.filesystems[..2], golden.filesystems[..]);
    assert_eq!(medium.backup_jobs, golden.backup_jobs);
    assert_eq!(medium.backups, golden.backups);
    assert_eq!(medium.replication, golden.replication);
    assert_eq!(medium.ha, golden.ha);
    let slow = collector.slow();
    assert_eq!(
        serde_json::to_value(&slow).unwrap(),
        golden_data("metric_slow.json")
    );
}

#[test]
fn no_zfs_node() {
    let mut collector = Collector::new(fixture("no-zfs"));
    let t0 = Instant::now();
    let fast = collector.fast_at(t0);
    assert_eq!(fast.errors, []);
    assert_eq!((fast.arc, fast.mem_arc_bytes), (None, None));
    assert_eq!(fast.mem_used_without_arc_bytes, None);
    assert_eq!(fast.mem_used_bytes, Some((32_768_000 - 24_576_000) * 1024));
    let names: Vec<&str> = fast.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["sda"]);
    let names: Vec<&str> = fast.net.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["enp1s0", "vmbr0"]);
    assert_eq!(fast.net[0].rx_errors, 3);
    assert_eq!(fast.net[0].rx_dropped, 17);
    assert_eq!(fast.pressure.unwrap().cpu_some, Some(1.25));
    assert_eq!(fast.guests.len(), 1);
    assert_eq!(fast.guests[0].status, GuestStatus::Stopped);
    assert_eq!(fast.guests[0].name.as_deref(), Some("backup-test"));
    for _ in 0..2 {
        let medium = collector.medium();
        assert_eq!(medium.errors, []);
        assert_eq!(medium.pools, []);
        assert_eq!(medium.filesystems.len(), 2);
        assert_eq!(medium.storages[1].id, "local-lvm");
        assert_eq!(medium.storages[1].total_bytes, Some(832_888_832 * 1024));
        assert_eq!(medium.guests[0].memory_bytes, Some(4096 * 1024 * 1024));
    }
    let slow = collector.slow();
    assert_eq!(slow.errors, []);
    assert_eq!(slow.zfs_version, None);
    // No pvecfg.pm here: the version comes from `pveversion`.
    assert_eq!(slow.pve_version.as_deref(), Some("8.3.0"));
    assert_eq!(slow.pve_repoid.as_deref(), Some("c1689ccb1065a83b"));
    assert_eq!(slow.cluster, None);
    assert_eq!(slow.node_name.as_deref(), Some("pve3"));
    assert_eq!(slow.cpu_count, Some(4));
}

#[test]
fn degraded_pool() {
    let medium = Collector::new(fixture("degraded-pool")).medium();
    assert_eq!(medium.errors, []);
    assert_eq!(medium.pools.len(), 2);
    assert_eq!(medium.pools[0].status_details, None);
    let tank = &medium.pools[1];
    assert_eq!(tank.health, "DEGRADED");
    assert_eq!(tank.frag_percent, Some(23.0));
    let details = tank.status_details.as_deref().unwrap();
    assert!(
        details.starts_with("  pool: tank\n state: DEGRADED\n"),
        "{details}"
    );
    assert!(details.contains("ZFS-8000-2Q"));
    let points = medium.series_points();
    assert!(points.contains(&("pool.tank.healthy".into(), 0.0)));
    assert!(points.contains(&("pool.rpool.healthy".into(), 1.0)));
    assert!(points.contains(&("fs._tank.used_bytes".into(), 20_000_000.0 * 131_072.0)));
}

#[test]
fn plain_debian_host_without_proxmox_or_zfs() {
    let mut collector = Collector::new(fixture("debian-plain"));
    for _ in 0..2 {
        let fast = collector.fast();
        assert_eq!(fast.errors, []);
        assert_eq!(fast.guests, []);
        assert_eq!(fast.arc, None);
        let names: Vec<&str> = fast.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda"]);
        let medium = collector.medium();
        assert_eq!(medium.errors, []);
        assert_eq!((medium.pools.len(), medium.storages.len()), (0, 0));
        assert_eq!(medium.filesystems.len(), 1);
        let slow = collector.slow();
        assert_eq!(slow.errors, []);
        assert_eq!(slow.pve_version, None);
        assert_eq!(slow.node_name.as_deref(), Some("deb1"));
        assert_eq!(slow.kernel_version.as_deref(), Some("6.1.0-27-amd64"));
    }
}

#[test]
fn old_kernel() {
    let tree = TempTree::new(&["old-kernel"]);
    let mut collector = Collector::new(&tree.0);
    let t0 = Instant::now();
    let first = collector.fast_at(t0);
    assert_eq!(first.errors, []);
    assert_eq!(first.mem_available_bytes, None);
    // No MemAvailable: total − free − buffers − cached − reclaimable slab.
    assert_eq!(
        first.mem_used_bytes,
        Some((4_096_000 - 1_024_000 - 102_400 - 1_536_000 - 81_920) * 1024)
    );
    assert_eq!(first.pressure, None);
    let names: Vec<&str> = first.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["sda", "sdb"]);
    tree.write(
        "proc/diskstats",
        "   8       0 sda 5600 100 86000 3000 4100 200 64800 2500 0 4400 5500\n\
            8      16 sdb 100 0 800 40 0 0 0 0 0 40 40\n",
    );
    let second = collector.fast_at(t0 + Duration::from_secs(10));
    let sda = &second.disks[0];
    assert_eq!(sda.read_iops, Some(60.0));
    assert_eq!(sda.read_bytes_per_s, Some(6000.0 * 512.0 / 10.0));
    assert_eq!(sda.write_bytes_per_s, Some(800.0 * 512.0 / 10.0));
    assert_eq!(sda.busy_percent, Some(4.0));
    assert_eq!(second.disks[1].busy_percent, Some(0.0));
    let medium = collector.medium();
    assert_eq!(medium.errors, []);
    assert_eq!(medium.filesystems[0].device, "/dev/sda1");
}

#[test]
fn broken_files_are_errors_not_panics() {
    let mut collector = Collector::new(fixture("broken"));
    let fast = collector.fast();
    assert_eq!(
        sources(&fast.errors),
        [
            "/proc/loadavg",
            "/proc/meminfo",
            "/proc/uptime",
            "/proc/stat",
            "/proc/pressure/cpu",
            "/proc/pressure/io",
            "/proc/spl/kstat/zfs/arcstats",
            "/proc/net/dev",
            "/proc/diskstats",
            "/etc/pve/.vmlist",
            "/sys/class/hwmon/hwmon0/temp1_input",
        ]
    );
    assert_eq!(fast.hostname.as_deref(), Some("pve1"));
    // A sensor whose value does not read is still listed, with its label.
    assert_eq!(fast.temperatures.len(), 1);
    assert_eq!(fast.temperatures[0].label.as_deref(), Some("Package id 0"));
    assert_eq!(fast.temperatures[0].celsius, None);
    assert_eq!(fast.pressure.unwrap().memory_some, Some(0.0));
    // What comes before the damage is still read.
    assert_eq!(fast.mem_total_bytes, Some(65_759_444 * 1024));
    assert_eq!(fast.arc.map(|a| a.size_bytes), Some(None));
    // A file that cannot be used at all is named by its path; a skipped line by its number.
    assert!(fast.errors[0]
        .message
        .contains("fixtures/broken/proc/loadavg"));
    let net = fast
        .errors
        .iter()
        .find(|e| e.source == "/proc/net/dev")
        .unwrap();
    assert_eq!(net.message, "line 3: eno1: expected 16 counters, found 3");
    let medium = collector.medium();
    assert_eq!(
        sources(&medium.errors),
        [
            "zpool list",
            "/proc/mounts",
            "/etc/pve/storage.cfg",
            "/etc/pve/.vmlist"
        ]
    );
    let slow = collector.slow();
    assert_eq!(
        sources(&slow.errors),
        [
            "/etc/pve/.members",
            "/usr/share/perl5/PVE/pvecfg.pm",
            "/sys/module/zfs/version",
            "/proc/sys/kernel/osrelease",
            "/proc/cpuinfo",
            "smartctl --scan",
            "smartctl /dev/sda",
        ]
    );
    assert_eq!(slow.node_name.as_deref(), Some("pve1"));
    // The scan's whole lines before the damage name one disk.
    assert_eq!(slow.smart.len(), 1);
    assert_eq!(slow.smart[0].device, "/dev/sda");
}

/// Answers every command with "not installed", counting the calls.
#[derive(Clone, Default)]
struct Missing(Arc<Mutex<Vec<String>>>);

impl CommandRunner for Missing {
    fn run_output(&self, program: &str, _args: &[&str]) -> Result<Output, CommandError> {
        self.0.lock().unwrap().push(program.to_owned());
        Err(CommandError::NotFound {
            program: program.to_owned(),
        })
    }
}

/// Answers every command with a timeout.
struct Hanging;

impl CommandRunner for Hanging {
    fn run_output(&self, program: &str, args: &[&str]) -> Result<Output, CommandError> {
        Err(CommandError::Timeout {
            command: format!("{program} {}", args.join(" ")),
            timeout: Duration::from_secs(10),
        })
    }
}

#[test]
fn missing_commands_are_absent_data_not_errors() {
    let calls = Missing::default();
    let mut collector = Collector::with_runner(fixture("pve-node"), Box::new(calls.clone()));
    for _ in 0..3 {
        let medium = collector.medium();
        assert_eq!(medium.errors, []);
        // Without `zpool`, the pools' states still come from the kernel's kstats.
        let pools: Vec<(&str, &str, Option<u64>)> = medium
            .pools
            .iter()
            .map(|p| (p.name.as_str(), p.health.as_str(), p.size_bytes))
            .collect();
        assert_eq!(pools, [("rpool", "ONLINE", None)]);
        // Storages are still listed from storage.cfg, without usage.
        assert_eq!(medium.storages.len(), 3);
        assert_eq!(medium.storages[0].active, None);
        assert_eq!(medium.storages[0].total_bytes, None);
    }
    assert_eq!(
        *calls.0.lock().unwrap(),
        ["zpool", "pvesm", "zpool", "pvesm", "zpool", "pvesm"]
    );
}

#[test]
fn failing_commands_are_errors_every_cycle() {
    let mut collector = Collector::with_runner(fixture("pve-node"), Box::new(Hanging));
    for _ in 0..2 {
        let medium = collector.medium();
        assert_eq!(sources(&medium.errors), ["zpool list", "pvesm status"]);
        assert!(medium.errors[0].message.contains("killed"));
        // A hanging `zpool` (a suspended pool does that) still leaves the pools' states.
        assert_eq!(medium.pools.len(), 1);
        assert_eq!(medium.pools[0].health, "ONLINE");
    }
}
