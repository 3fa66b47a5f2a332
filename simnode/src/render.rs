//! How a simulated node looks on disk: the files of a fixture tree (see `fixtures/README.md`),
//! in the layouts of `fixtures/pve-node` (whose `SOURCES.md` names the kernel, Proxmox and
//! OpenZFS code each one follows). `static_files` are written once; `dynamic_files` every tick.

use std::fmt::Write as _;

use crate::model::{GuestCounters, Model, NetCounters, Psi};
use crate::scenario::{self, Guest, Health, Kind, Node, StorageKind};

/// A file of the tree: path relative to the root, content.
pub type File = (String, String);

const PVECFG: &str = include_str!("../../fixtures/pve-node/usr/share/perl5/PVE/pvecfg.pm");
const NET_HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

/// The files that never change while the simulation runs.
pub fn static_files(model: &Model) -> Vec<File> {
    let node = &model.node;
    let cluster = scenario::cluster();
    let mut files = vec![
        ("etc/hostname".into(), format!("{}\n", node.name)),
        (
            "proc/sys/kernel/osrelease".into(),
            "6.8.12-4-pve\n".to_owned(),
        ),
        ("sys/module/zfs/version".into(), "2.2.6-pve1\n".into()),
        (
            "sys/fs/cgroup/cgroup.controllers".into(),
            "cpuset cpu io memory hugetlb pids rdma misc\n".into(),
        ),
        ("usr/share/perl5/PVE/pvecfg.pm".into(), PVECFG.into()),
        ("proc/cpuinfo".into(), cpuinfo(node)),
        ("etc/pve/.members".into(), members(node, &cluster)),
        ("etc/pve/.vmlist".into(), vmlist(&cluster)),
        ("etc/pve/storage.cfg".into(), storage_cfg(node)),
        ("proc/mounts".into(), mounts(node)),
        ("proc/net/unix".into(), net_unix(node)),
        ("cmd/zpool-status-x.txt".into(), zpool_status(node)),
    ];
    for guest in &node.guests {
        let dir = match guest.kind {
            Kind::Vm => "qemu-server",
            Kind::Ct => "lxc",
        };
        let config = guest_config(guest);
        files.push((format!("etc/pve/{dir}/{}.conf", guest.vmid), config.clone()));
        files.push((
            format!("etc/pve/nodes/{}/{dir}/{}.conf", node.name, guest.vmid),
            config,
        ));
        if !guest.running {
            continue;
        }
        let pid = pid(guest);
        match guest.kind {
            Kind::Vm => {
                files.push((
                    format!("var/run/qemu-server/{}.pid", guest.vmid),
                    format!("{pid}\n"),
                ));
                files.push((format!("proc/{pid}/cmdline"), kvm_cmdline(guest)));
            }
            Kind::Ct => {
                let dir = format!("sys/fs/cgroup/lxc/{}/", guest.vmid);
                files.push((format!("{dir}ns/cgroup.procs"), String::new()));
                files.push((
                    format!("{dir}ns/init.scope/cgroup.procs"),
                    format!("{pid}\n"),
                ));
                files.push((format!("proc/{pid}/cmdline"), "/sbin/init\0".into()));
            }
        }
        let dir = cgroup_dir(guest);
        let max = match guest.kind {
            Kind::Vm => "max".to_owned(),
            Kind::Ct => (guest.memory_mib * 1024 * 1024).to_string(),
        };
        files.push((format!("{dir}memory.max"), format!("{max}\n")));
        files.push((format!("{dir}memory.high"), format!("{max}\n")));
        files.push((format!("{dir}cpu.max"), "max 100000\n".into()));
    }
    files
}

/// The files whose contents move: counters, gauges, command output.
pub fn dynamic_files(model: &Model) -> Vec<File> {
    let node = &model.node;
    let mut files = vec![
        ("proc/stat".into(), proc_stat(model)),
        (
            "proc/uptime".into(),
            format!("{:.2} {:.2}\n", model.uptime_s, model.idle_s),
        ),
        (
            "proc/loadavg".into(),
            format!(
                "{:.2} {:.2} {:.2} {}/{} {}\n",
                model.load[0],
                model.load[1],
                model.load[2],
                model.runnable,
                1200 + 40 * node.guests.len(),
                3_000_000 + model.t as u64
            ),
        ),
        ("proc/meminfo".into(), meminfo(model)),
        ("proc/pressure/cpu".into(), psi(&model.cpu_psi, None)),
        (
            "proc/pressure/io".into(),
            psi(&model.io_psi, Some(&model.io_psi)),
        ),
        (
            "proc/pressure/memory".into(),
            psi(&model.memory_psi, Some(&model.memory_psi)),
        ),
        ("proc/net/dev".into(), net_dev(model)),
        ("proc/diskstats".into(), diskstats(model)),
        ("proc/spl/kstat/zfs/arcstats".into(), arcstats(model)),
        (
            "cmd/zpool-list-HpPLo-pve-columns.txt".into(),
            zpool_list(model),
        ),
        ("cmd/pvesm-status.txt".into(), pvesm_status(model)),
        ("cmd/stat-f.txt".into(), stat_f(model)),
    ];
    for pool in &node.pools {
        let state = match pool.health {
            Health::Online => "ONLINE",
            Health::Degraded => "DEGRADED",
        };
        files.push((
            format!("proc/spl/kstat/zfs/{}/state", pool.name),
            format!("{state}\n"),
        ));
    }
    for guest in node.running_guests() {
        let Some(c) = model.guests.get(&guest.vmid) else {
            continue;
        };
        files.push((
            format!("proc/{}/stat", pid(guest)),
            pid_stat(model, guest, c),
        ));
        let dir = cgroup_dir(guest);
        files.push((
            format!("{dir}cpu.stat"),
            format!(
                "usage_usec {}\nuser_usec {}\nsystem_usec {}\nnice_usec 0\ncore_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                whole(c.usage_us),
                whole(c.user_us),
                whole(c.system_us)
            ),
        ));
        let device = match guest.kind {
            Kind::Vm => "230:0",
            Kind::Ct => "259:0",
        };
        files.push((
            format!("{dir}io.stat"),
            format!(
                "{device} rbytes={} wbytes={} rios={} wios={} dbytes=0 dios=0\n",
                whole(c.rbytes),
                whole(c.wbytes),
                whole(c.rios),
                whole(c.wios)
            ),
        ));
        files.push((
            format!("{dir}memory.current"),
            format!("{}\n", c.memory_bytes),
        ));
        files.push((format!("{dir}memory.stat"), memory_stat(c)));
        files.push((format!("{dir}memory.swap.current"), "0\n".into()));
        files.push((
            format!("{dir}cpu.pressure"),
            psi(&c.cpu_psi, Some(&c.cpu_psi)),
        ));
        files.push((format!("{dir}io.pressure"), psi(&c.io_psi, Some(&c.io_psi))));
        files.push((
            format!("{dir}memory.pressure"),
            psi(&c.memory_psi, Some(&c.memory_psi)),
        ));
    }
    files
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(value: f64) -> u64 {
    value.max(0.0) as u64
}

/// The guest's QEMU process or CT init: a pid of its own per VMID.
fn pid(guest: &Guest) -> u32 {
    match guest.kind {
        Kind::Vm => 10_000 + guest.vmid * 7,
        Kind::Ct => 20_000 + guest.vmid * 7,
    }
}

fn cgroup_dir(guest: &Guest) -> String {
    match guest.kind {
        Kind::Vm => format!("sys/fs/cgroup/qemu.slice/{}.scope/", guest.vmid),
        Kind::Ct => format!("sys/fs/cgroup/lxc/{}/", guest.vmid),
    }
}

fn cpuinfo(node: &Node) -> String {
    let mut out = String::new();
    let cores = node.cpus / 2;
    let vendor = if node.cpu_model.starts_with("AMD") {
        "AuthenticAMD"
    } else {
        "GenuineIntel"
    };
    for cpu in 0..node.cpus {
        let _ = write!(
            out,
            "processor\t: {cpu}\nvendor_id\t: {vendor}\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: {}\nstepping\t: 1\ncpu MHz\t\t: 2994.375\ncache size\t: 512 KB\nphysical id\t: 0\nsiblings\t: {}\ncore id\t\t: {}\ncpu cores\t: {cores}\napicid\t\t: {cpu}\ninitial apicid\t: {cpu}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 16\nwp\t\t: yes\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc rep_good nopl cpuid pni ssse3 fma cx16 sse4_1 sse4_2 popcnt aes xsave avx f16c rdrand avx2\nbogomips\t: 5988.75\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 48 bits physical, 48 bits virtual\npower management:\n\n",
            node.cpu_model,
            node.cpus,
            cpu % cores.max(1)
        );
    }
    out
}

fn members(node: &Node, cluster: &[Node]) -> String {
    let mut out = format!(
        "{{\n\"nodename\": \"{}\",\n\"version\": 7,\n\"cluster\": {{ \"name\": \"{}\", \"version\": 2, \"nodes\": {}, \"quorate\": 1 }},\n\"nodelist\": {{\n",
        node.name,
        scenario::CLUSTER,
        cluster.len()
    );
    for (i, n) in cluster.iter().enumerate() {
        let comma = if i + 1 == cluster.len() { "" } else { "," };
        let _ = writeln!(
            out,
            "  \"{}\": {{ \"id\": {}, \"online\": 1, \"ip\": \"{}\"}}{comma}",
            n.name, n.id, n.ip
        );
    }
    out.push_str("  }\n}\n");
    out
}

/// pmxcfs's `.vmlist`: every guest of the cluster with its node (see `SOURCES.md`).
fn vmlist(cluster: &[Node]) -> String {
    let entries: Vec<String> = cluster
        .iter()
        .flat_map(|n| n.guests.iter().map(move |g| (n.name, g)))
        .map(|(node, g)| {
            let kind = match g.kind {
                Kind::Vm => "qemu",
                Kind::Ct => "lxc",
            };
            format!(
                "\"{}\": {{ \"node\": \"{node}\", \"type\": \"{kind}\", \"version\": {} }}",
                g.vmid,
                g.vmid % 50 + 3
            )
        })
        .collect();
    format!(
        "{{\n\"version\": 42,\n\"ids\": {{\n{}}}\n\n}}\n",
        entries.join(",\n")
    )
}

fn guest_config(guest: &Guest) -> String {
    let mut out = String::new();
    if !guest.description.is_empty() {
        let _ = writeln!(out, "#{}", guest.description);
    }
    let mac = format!(
        "BC:24:11:{:02X}:{:02X}:01",
        guest.vmid / 256 % 256,
        guest.vmid % 256
    );
    match guest.kind {
        Kind::Vm => {
            let _ = write!(
                out,
                "agent: 1\nboot: order=scsi0;net0\ncores: {}\ncpu: x86-64-v2-AES\nmemory: {}\nname: {}\nnet0: virtio={mac},bridge=vmbr0,firewall=1\nnuma: 0\nonboot: {}\nostype: l26\nscsi0: local-zfs:vm-{}-disk-0,discard=on,iothread=1,size=64G\nscsihw: virtio-scsi-single\nsockets: 1\n",
                guest.cores,
                guest.memory_mib,
                guest.name,
                u8::from(guest.running),
                guest.vmid
            );
        }
        Kind::Ct => {
            let _ = write!(
                out,
                "arch: amd64\ncores: {}\nfeatures: nesting=1\nhostname: {}\nmemory: {}\nnet0: name=eth0,bridge=vmbr0,firewall=1,hwaddr={mac},ip=dhcp,type=veth\nonboot: {}\nostype: debian\nrootfs: local-zfs:subvol-{}-disk-0,size=8G\nswap: 512\n",
                guest.cores,
                guest.name,
                guest.memory_mib,
                u8::from(guest.running),
                guest.vmid
            );
        }
    }
    if !guest.tags.is_empty() {
        let _ = writeln!(out, "tags: {}", guest.tags);
    }
    if guest.template {
        out.push_str("template: 1\n");
    }
    if guest.kind == Kind::Ct {
        out.push_str("unprivileged: 1\n");
    }
    out
}

fn kvm_cmdline(guest: &Guest) -> String {
    let id = guest.vmid;
    [
        "/usr/bin/kvm".to_owned(),
        "-id".into(),
        id.to_string(),
        "-name".into(),
        format!("{},debug-threads=on", guest.name),
        "-no-shutdown".into(),
        "-pidfile".into(),
        format!("/var/run/qemu-server/{id}.pid"),
        "-daemonize".into(),
        "-smp".into(),
        format!("{c},sockets=1,cores={c},maxcpus={c}", c = guest.cores),
        "-m".into(),
        guest.memory_mib.to_string(),
        "-netdev".into(),
        format!(
            "type=tap,id=net0,ifname=tap{id}i0,script=/var/lib/qemu-server/pve-bridge,vhost=on"
        ),
        "-machine".into(),
        "type=pc-i440fx-9.0+pve0".into(),
    ]
    .iter()
    .map(|a| format!("{a}\0"))
    .collect()
}

fn storage_cfg(node: &Node) -> String {
    let mut out = String::new();
    for storage in &node.storages {
        match &storage.kind {
            StorageKind::Dir { path } => {
                let _ = writeln!(
                    out,
                    "dir: {}\n\tpath {path}\n\tcontent {}\n",
                    storage.id, storage.content
                );
            }
            StorageKind::ZfsPool { dataset, .. } => {
                let _ = writeln!(
                    out,
                    "zfspool: {}\n\tpool {dataset}\n\tsparse\n\tcontent {}\n",
                    storage.id, storage.content
                );
            }
            StorageKind::Nfs { server, export, .. } => {
                let _ = writeln!(
                    out,
                    "nfs: {}\n\texport {export}\n\tpath /mnt/pve/{}\n\tserver {server}\n\tcontent {}\n\tprune-backups keep-daily=7,keep-weekly=4\n",
                    storage.id, storage.id, storage.content
                );
            }
        }
    }
    out
}

fn mounts(node: &Node) -> String {
    let mut out = String::from(
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,relatime 0 0\nudev /dev devtmpfs rw,nosuid,relatime,size=32856372k,nr_inodes=8214093,mode=755,inode64 0 0\ntmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=6575948k,mode=755,inode64 0 0\nrpool/ROOT/pve-1 / zfs rw,relatime,xattr,noacl,casesensitive 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n",
    );
    for pool in &node.pools {
        let _ = writeln!(
            out,
            "{0} /{0} zfs rw,relatime,xattr,noacl,casesensitive 0 0",
            pool.name
        );
        if pool.name == "rpool" {
            out.push_str("rpool/ROOT /rpool/ROOT zfs rw,relatime,xattr,noacl,casesensitive 0 0\n");
        }
        let _ = writeln!(
            out,
            "{0}/data /{0}/data zfs rw,relatime,xattr,noacl,casesensitive 0 0",
            pool.name
        );
    }
    for guest in node.running_guests().filter(|g| g.kind == Kind::Ct) {
        let _ = writeln!(
            out,
            "rpool/data/subvol-{0}-disk-0 /rpool/data/subvol-{0}-disk-0 zfs rw,relatime,xattr,posixacl,casesensitive 0 0",
            guest.vmid
        );
    }
    for storage in &node.storages {
        if let StorageKind::Nfs { server, export, .. } = &storage.kind {
            let _ = writeln!(
                out,
                "{server}:{export} /mnt/pve/{} nfs4 rw,relatime,vers=4.2,rsize=1048576,wsize=1048576,hard,proto=tcp 0 0",
                storage.id
            );
        }
    }
    out.push_str("/dev/fuse /etc/pve fuse rw,nosuid,nodev,relatime,user_id=0,group_id=0,default_permissions,allow_other 0 0\n");
    out
}

fn net_unix(node: &Node) -> String {
    let mut out = String::from(
        "Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 20851 /run/systemd/notify\n0000000000000000: 00000002 00000000 00010000 0001 01 29114 /var/run/pve-cluster.sock\n",
    );
    for guest in node.running_guests() {
        let path = match guest.kind {
            Kind::Vm => format!("/var/run/qemu-server/{}.qmp", guest.vmid),
            Kind::Ct => format!("@/var/lib/lxc/{}/command", guest.vmid),
        };
        let _ = writeln!(
            out,
            "0000000000000000: 00000002 00000000 00010000 0001 01 {} {path}",
            30_000 + guest.vmid
        );
    }
    out
}

fn zpool_status(node: &Node) -> String {
    let unhealthy: Vec<&str> = node.pools.iter().filter_map(|p| p.status).collect();
    if unhealthy.is_empty() {
        "all pools are healthy\n".into()
    } else {
        unhealthy.join("\n")
    }
}

fn proc_stat(model: &Model) -> String {
    let mut total = [0.0; 10];
    for cpu in &model.cpus {
        for (t, v) in total.iter_mut().zip(cpu) {
            *t += v;
        }
    }
    let line = |name: &str, ticks: &[f64; 10]| {
        let fields: Vec<String> = ticks.iter().map(|v| whole(*v).to_string()).collect();
        format!("{name} {}\n", fields.join(" "))
    };
    let mut out = line("cpu ", &total);
    for (i, cpu) in model.cpus.iter().enumerate() {
        out.push_str(&line(&format!("cpu{i}"), cpu));
    }
    let boot = 1_764_000_000 - whole(model.uptime_s - model.t);
    let _ = write!(
        out,
        "intr {}\nctxt {}\nbtime {boot}\nprocesses {}\nprocs_running {}\nprocs_blocked 0\nsoftirq {}\n",
        whole(model.uptime_s * 25_000.0),
        whole(model.uptime_s * 40_000.0),
        whole(model.uptime_s * 3.0),
        model.runnable,
        whole(model.uptime_s * 9_000.0)
    );
    out
}

fn meminfo(model: &Model) -> String {
    let kib = |bytes: u64| bytes / 1024;
    let total = kib(model.node.mem_bytes);
    let available = kib(model.mem_available);
    let cached = total / 40;
    let free = available.saturating_sub(cached);
    let swap = kib(model.node.swap_bytes);
    let mut out = String::new();
    for (key, value) in [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", 6428),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", total / 6),
        ("Inactive", total / 8),
        ("SwapTotal", swap),
        ("SwapFree", swap),
        ("Dirty", 212),
        ("AnonPages", total.saturating_sub(available) / 2),
        ("Shmem", 60492),
        ("Slab", 1_573_016),
        ("SReclaimable", 221_388),
        ("SUnreclaim", 1_351_628),
        ("PageTables", 28212),
        ("CommitLimit", total / 2 + swap),
        ("Committed_AS", total.saturating_sub(available)),
    ] {
        let _ = writeln!(out, "{:<16}{value:>8} kB", format!("{key}:"));
    }
    out.push_str(
        "HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n",
    );
    out
}

fn psi(some: &Psi, full: Option<&Psi>) -> String {
    let line = |kind: &str, p: &Psi| {
        format!(
            "{kind} avg10={:.2} avg60={:.2} avg300={:.2} total={}\n",
            p.avg10,
            p.avg60,
            p.avg300,
            whole(p.total_us)
        )
    };
    let full_line = match full {
        Some(p) => line(
            "full",
            &Psi {
                avg10: p.avg10 * 0.8,
                avg60: p.avg60 * 0.8,
                avg300: p.avg300 * 0.8,
                total_us: p.total_us * 0.8,
            },
        ),
        // The host's CPU has no "full" line before 5.13; 6.x prints zeros.
        None => "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into(),
    };
    line("some", some) + &full_line
}

fn net_line(out: &mut String, name: &str, c: &NetCounters) {
    let _ = writeln!(
        out,
        "{name:>6}: {:>7} {:>7}    0    0    0     0          0         0 {:>8} {:>7}    0    0    0     0       0          0",
        whole(c.rx_bytes),
        whole(c.rx_packets),
        whole(c.tx_bytes),
        whole(c.tx_packets)
    );
}

fn net_dev(model: &Model) -> String {
    let mut out = NET_HEADER.to_owned();
    for (name, c) in &model.net {
        net_line(&mut out, name, c);
    }
    for guest in model.node.running_guests() {
        let Some(c) = model.guests.get(&guest.vmid) else {
            continue;
        };
        let port = match guest.kind {
            Kind::Vm => "tap",
            Kind::Ct => "veth",
        };
        net_line(&mut out, &format!("{port}{}i0", guest.vmid), &c.port);
        // firewall=1: the bridge ports Proxmox adds (ignored by the agent).
        net_line(&mut out, &format!("fwbr{}i0", guest.vmid), &c.port);
        net_line(&mut out, &format!("fwpr{}p0", guest.vmid), &c.port);
        net_line(&mut out, &format!("fwln{}i0", guest.vmid), &c.port);
    }
    out
}

/// One `/proc/diskstats` line with the 17 counters of kernel 5.5+ (discards none).
#[allow(clippy::too_many_arguments)]
fn disk_line(
    out: &mut String,
    major: u32,
    minor: u32,
    name: &str,
    reads: f64,
    read_sectors: f64,
    read_ms: f64,
    writes: f64,
    write_sectors: f64,
    write_ms: f64,
    io_ticks_ms: f64,
    queue_ms: f64,
) {
    let _ = writeln!(
        out,
        "{major:>4} {minor:>7} {name} {} 0 {} {} {} 0 {} {} 0 {} {} 0 0 0 0 {} {}",
        whole(reads),
        whole(read_sectors),
        whole(read_ms),
        whole(writes),
        whole(write_sectors),
        whole(write_ms),
        whole(io_ticks_ms),
        whole(queue_ms),
        whole(writes / 100.0),
        whole(write_ms / 100.0)
    );
}

fn diskstats(model: &Model) -> String {
    let mut out = String::new();
    for disk in &model.node.disks {
        let Some(c) = model.disks.get(disk.name) else {
            continue;
        };
        disk_line(
            &mut out,
            disk.major,
            disk.minor,
            disk.name,
            c.reads,
            c.read_sectors,
            c.read_ms,
            c.writes,
            c.write_sectors,
            c.write_ms,
            c.io_ticks_ms,
            c.queue_ms,
        );
        for (i, part) in (1..).zip(disk.partitions) {
            // The last partition (the pool's) carries the disk's I/O; the others boot.
            let share = if i == disk.partitions.len() { 1.0 } else { 0.0 };
            disk_line(
                &mut out,
                disk.major,
                disk.minor + u32::try_from(i).unwrap_or(0),
                part,
                c.reads * share + 120.0,
                c.read_sectors * share + 4_000.0,
                c.read_ms * share,
                c.writes * share + 3.0,
                c.write_sectors * share + 16.0,
                c.write_ms * share,
                c.io_ticks_ms * share + 80.0,
                c.queue_ms * share + 80.0,
            );
        }
    }
    // The running VMs' zvols; the agent leaves zd* out (their I/O is in the pool's disks
    // and in each VM's cgroup).
    let vms = model.node.running_guests().filter(|g| g.kind == Kind::Vm);
    for (i, guest) in (0u32..).zip(vms) {
        let Some(c) = model.guests.get(&guest.vmid) else {
            continue;
        };
        disk_line(
            &mut out,
            230,
            i * 16,
            &format!("zd{}", i * 16),
            c.rios,
            c.rbytes / 512.0,
            c.rios * 0.2,
            c.wios,
            c.wbytes / 512.0,
            c.wios * 0.2,
            0.0,
            0.0,
        );
    }
    out
}

fn arcstats(model: &Model) -> String {
    let node = &model.node;
    let size = whole(model.arc_size);
    let rows: [(&str, u64); 10] = [
        ("hits", whole(model.arc_hits)),
        ("misses", whole(model.arc_misses)),
        ("demand_data_hits", whole(model.arc_hits * 0.7)),
        ("demand_data_misses", whole(model.arc_misses * 0.7)),
        ("c", node.arc_target),
        ("c_min", node.mem_bytes / 32),
        ("c_max", node.arc_target),
        ("size", size),
        ("data_size", size / 10 * 7),
        ("metadata_size", size / 10 * 2),
    ];
    let mut out = String::from(
        "6 1 0x01 91 4368 5266997922 97951858082072\nname                            type data\n",
    );
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<32}4    {value}");
    }
    out.push_str("memory_available_bytes          3    -922337203685477580\n");
    out
}

fn zpool_list(model: &Model) -> String {
    let mut out = String::new();
    for pool in &model.node.pools {
        let alloc = whole(model.pool_alloc.get(pool.name).copied().unwrap_or(0.0));
        let state = match pool.health {
            Health::Online => "ONLINE",
            Health::Degraded => "DEGRADED",
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{alloc}\t{}\t{}\t1.00\t{state}",
            pool.name,
            pool.size,
            pool.size.saturating_sub(alloc),
            pool.frag_percent
        );
    }
    out
}

/// (total, used, available) KiB of a storage as `pvesm status` reports it.
fn storage_kib(model: &Model, kind: &StorageKind) -> (u64, u64, u64) {
    let pool_of = |name: &str| {
        model.node.pools.iter().find(|p| p.name == name).map(|p| {
            let alloc = whole(model.pool_alloc.get(p.name).copied().unwrap_or(0.0));
            (p.size, alloc)
        })
    };
    match kind {
        StorageKind::Dir { .. } => {
            // The root dataset: a small, slowly growing part of rpool.
            let (size, alloc) = pool_of("rpool").unwrap_or((1 << 40, 1 << 35));
            let used = alloc / 20;
            let avail = size.saturating_sub(alloc);
            (used / 1024 + avail / 1024, used / 1024, avail / 1024)
        }
        StorageKind::ZfsPool { pool, .. } => {
            let (size, alloc) = pool_of(pool).unwrap_or((1 << 40, 1 << 35));
            let used = alloc / 20 * 19;
            let avail = size.saturating_sub(alloc);
            (used / 1024 + avail / 1024, used / 1024, avail / 1024)
        }
        StorageKind::Nfs {
            total_kib,
            used_kib,
            ..
        } => {
            let used = used_kib + whole(model.t * 2.0);
            (*total_kib, used, total_kib.saturating_sub(used))
        }
    }
}

/// `pvesm status` in the pre-2025 layout (pve-storage `pvesm.pm` `$print_status`).
fn pvesm_status(model: &Model) -> String {
    let width = model
        .node
        .storages
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(4)
        + 1;
    let mut out = format!(
        "{:<width$} {:>10} {:>10} {:>15} {:>15} {:>15} {:>8}\n",
        "Name", "Type", "Status", "Total", "Used", "Available", "%"
    );
    let mut storages: Vec<_> = model.node.storages.iter().collect();
    storages.sort_by_key(|s| s.id);
    for storage in storages {
        let kind = match storage.kind {
            StorageKind::Dir { .. } => "dir",
            StorageKind::ZfsPool { .. } => "zfspool",
            StorageKind::Nfs { .. } => "nfs",
        };
        let (total, used, avail) = storage_kib(model, &storage.kind);
        #[allow(clippy::cast_precision_loss)]
        let percent = if total == 0 {
            0.0
        } else {
            used as f64 * 100.0 / total as f64
        };
        let _ = writeln!(
            out,
            "{:<width$} {kind:>10} {:>10} {total:>15} {used:>15} {avail:>15} {:>7.2}%",
            storage.id, "active", percent
        );
    }
    out
}

/// statvfs of each reported mount point (see `fixtures/README.md`).
fn stat_f(model: &Model) -> String {
    let block = 131_072u64;
    let mut out = String::new();
    let mut line = |mountpoint: &str, total_kib: u64, avail_kib: u64| {
        let blocks = total_kib * 1024 / block;
        let avail = avail_kib * 1024 / block;
        let _ = writeln!(
            out,
            "{mountpoint} {block} {blocks} {avail} {avail} {} {}",
            avail * 256 + 40_000,
            avail * 256
        );
    };
    let root = storage_kib(model, &StorageKind::Dir { path: "/" });
    line("/", root.0, root.2);
    for pool in &model.node.pools {
        let (total, _, avail) = storage_kib(
            model,
            &StorageKind::ZfsPool {
                pool: pool.name,
                dataset: "",
            },
        );
        // Datasets of a pool share its free space; each reports its own use on top.
        line(&format!("/{}", pool.name), avail + 96, avail);
        if pool.name == "rpool" {
            line("/rpool/ROOT", avail + 96, avail);
        }
        line(&format!("/{}/data", pool.name), total, avail);
    }
    out
}

fn pid_stat(model: &Model, guest: &Guest, c: &GuestCounters) -> String {
    let pid = pid(guest);
    let start_ticks = whole((model.uptime_s - model.t - guest.up_for_s as f64).max(1.0) * 100.0);
    let (comm, utime, stime) = match guest.kind {
        Kind::Vm => ("kvm", whole(c.utime), whole(c.stime)),
        // A CT's init uses little itself; its cgroup counts the CT.
        Kind::Ct => ("systemd", whole(c.utime / 1000.0), whole(c.stime / 1000.0)),
    };
    let rss_pages = c.memory_bytes / 4096;
    format!(
        "{pid} ({comm}) S 1 {pid} {pid} 0 -1 138412352 1894921 0 1025 0 {utime} {stime} 0 0 20 0 {} 0 {start_ticks} {} {rss_pages} 18446744073709551615 1 1 0 0 0 0 268444224 4096 17635 0 0 0 17 5 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        guest.cores + 5,
        c.memory_bytes + 512 * 1024 * 1024
    )
}

fn memory_stat(c: &GuestCounters) -> String {
    let anon = c.memory_bytes.saturating_sub(c.file_bytes) / 10 * 9;
    let kernel = c
        .memory_bytes
        .saturating_sub(c.file_bytes)
        .saturating_sub(anon);
    format!(
        "anon {anon}\nfile {}\nkernel {kernel}\nkernel_stack 245760\npagetables 1019904\nsec_pagetables 0\npercpu 2880\nsock 4096\nvmalloc 0\nshmem 0\nfile_mapped {}\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\ninactive_anon {}\nactive_anon {}\ninactive_file {}\nactive_file {}\nunevictable 0\n",
        c.file_bytes,
        c.file_bytes / 4,
        anon / 2,
        anon / 2,
        c.file_bytes / 2,
        c.file_bytes / 2
    )
}
