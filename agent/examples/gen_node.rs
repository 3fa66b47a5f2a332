//! Writes a big synthetic Proxmox VE node as a fixture tree, for benchmarks of the collector:
//!
//! `cargo run --release -p proxmox-monitor-agent --example gen_node -- OUT_DIR --guests 200 --disks 24 --pools 8`
//!
//! Half the guests are VMs and half containers; nine in ten run. Every file follows the
//! layout of `fixtures/pve-node` (see its `SOURCES.md`); the numbers are made up. `OUT_DIR` is
//! created (and its old content overwritten file by file).
//!
//! The node has a year of task history as Proxmox leaves it: a nightly backup job of every
//! guest (one task log per night, one guest in 37 failing now and then) and two dozen other
//! tasks a day, appended to `var/log/pve/tasks/index` and rotated to `index.1` past 50 000
//! bytes as `PVE::RESTEnvironment::active_workers` does; each guest's last vzdump log; jobs,
//! job state, replication and HA files; temperature sensors (two CPU packages of 16 cores, an
//! ACPI zone, a `drivetemp` per disk) and `smartctl` captures for every disk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Options {
    out: PathBuf,
    guests: u32,
    disks: u32,
    pools: u32,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1).collect()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("gen_node: {message}");
            eprintln!("usage: gen_node OUT_DIR [--guests N] [--disks N] [--pools N]");
            return ExitCode::from(2);
        }
    };
    match generate(&options) {
        Ok(files) => {
            println!(
                "gen_node: wrote {files} files to {} ({} guests, {} disks, {} pools)",
                options.out.display(),
                options.guests,
                options.disks,
                options.pools
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut out = None;
    let (mut guests, mut disks, mut pools) = (200, 24, 8);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u32, String> {
            let value = args.next().ok_or(format!("{what} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{what} {value:?} is not a number"))
        };
        match arg.as_str() {
            "--guests" => guests = number("--guests")?,
            "--disks" => disks = number("--disks")?.clamp(1, 26 * 26),
            "--pools" => pools = number("--pools")?,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => out = Some(PathBuf::from(other)),
        }
    }
    Ok(Options {
        out: out.ok_or("no OUT_DIR")?,
        guests,
        disks,
        pools,
    })
}

struct Tree {
    root: PathBuf,
    files: usize,
}

impl Tree {
    fn write(&mut self, relative: &str, content: &str) -> std::io::Result<()> {
        self.write_bytes(relative, content.as_bytes())
    }

    fn write_bytes(&mut self, relative: &str, content: &[u8]) -> std::io::Result<()> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content)?;
        self.files += 1;
        Ok(())
    }
}

const CPUS: u64 = 64;
const NET_HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";
const PSI: &str = "some avg10=0.12 avg60=0.08 avg300=0.05 total=42398871\nfull avg10=0.11 avg60=0.07 avg300=0.05 total=41877209\n";

fn generate(options: &Options) -> std::io::Result<usize> {
    let mut tree = Tree {
        root: options.out.clone(),
        files: 0,
    };
    host(&mut tree)?;
    net_dev(&mut tree, options.guests)?;
    diskstats(&mut tree, options)?;
    guests(&mut tree, options.guests)?;
    storage(&mut tree, options.pools)?;
    operations(&mut tree, options)?;
    Ok(tree.files)
}

fn host(tree: &mut Tree) -> std::io::Result<()> {
    tree.write("etc/hostname", "bench1\n")?;
    tree.write("proc/loadavg", "12.21 10.37 9.39 14/2719 1973712\n")?;
    tree.write("proc/uptime", "3507350.47 201032331.68\n")?;
    let mut stat = String::new();
    let _ = writeln!(
        stat,
        "cpu  {} 6120 {} {} 35520 20 39440 0 440 360",
        3_018_540 * CPUS,
        1_119_220 * CPUS,
        89_790_040 * CPUS
    );
    for cpu in 0..CPUS {
        let _ = writeln!(stat, "cpu{cpu} 3018540 95 1119220 89790040 555 0 616 0 6 5");
    }
    stat.push_str("intr 8885917 17 0 0\nctxt 38014093\nbtime 1418183276\nprocesses 26442\nprocs_running 2\nprocs_blocked 0\n");
    tree.write("proc/stat", &stat)?;
    tree.write(
        "proc/meminfo",
        &std::fs::read_to_string(fixture("pve-node/proc/meminfo"))?,
    )?;
    tree.write(
        "proc/cpuinfo",
        &std::fs::read_to_string(fixture("pve-node/proc/cpuinfo"))?,
    )?;
    for name in ["cpu", "io", "memory"] {
        tree.write(&format!("proc/pressure/{name}"), PSI)?;
    }
    tree.write(
        "proc/spl/kstat/zfs/arcstats",
        &std::fs::read_to_string(fixture("pve-node/proc/spl/kstat/zfs/arcstats"))?,
    )?;
    tree.write("proc/sys/kernel/osrelease", "6.8.8-2-pve\n")?;
    tree.write("sys/module/zfs/version", "2.2.4-pve1\n")?;
    tree.write(
        "sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    )?;
    tree.write(
        "usr/share/perl5/PVE/pvecfg.pm",
        &std::fs::read_to_string(fixture("pve-node/usr/share/perl5/PVE/pvecfg.pm"))?,
    )?;
    tree.write(
        "etc/pve/.members",
        "{\n\"nodename\": \"bench1\",\n\"version\": 5,\n\"cluster\": { \"name\": \"bench\", \"version\": 2, \"nodes\": 1, \"quorate\": 1 },\n\"nodelist\": {\n  \"bench1\": { \"id\": 1, \"online\": 1, \"ip\": \"10.0.0.1\"}\n  }\n}\n",
    )?;
    Ok(())
}

fn net_line(out: &mut String, name: &str, seed: u64) {
    let _ = writeln!(
        out,
        "{name:>6}: {:>7} {:>7}    0    0    0     0          0         0 {:>8} {:>7}    0    0    0     0       0          0",
        seed * 1_000_003,
        seed * 1009,
        seed * 700_001,
        seed * 707
    );
}

fn net_dev(tree: &mut Tree, guests: u32) -> std::io::Result<()> {
    let mut out = NET_HEADER.to_owned();
    net_line(&mut out, "lo", 5);
    for (i, nic) in ["eno1", "eno2", "enp65s0f0", "enp65s0f1"]
        .iter()
        .enumerate()
    {
        net_line(&mut out, nic, 1000 + i as u64);
    }
    net_line(&mut out, "vmbr0", 900);
    net_line(&mut out, "vmbr1", 800);
    for vmid in guest_ids(guests) {
        let port = if is_vm(vmid) { "tap" } else { "veth" };
        let seed = u64::from(vmid);
        net_line(&mut out, &format!("{port}{vmid}i0"), seed);
        net_line(&mut out, &format!("fwbr{vmid}i0"), seed);
        net_line(&mut out, &format!("fwpr{vmid}p0"), seed);
        net_line(&mut out, &format!("fwln{vmid}i0"), seed);
    }
    tree.write("proc/net/dev", &out)
}

fn diskstats(tree: &mut Tree, options: &Options) -> std::io::Result<()> {
    let mut out = String::new();
    let line = |out: &mut String, major: u32, minor: u32, name: &str, seed: u64| {
        let _ = writeln!(
            out,
            "{major:>4} {minor:>7} {name} {} 1203 {} 412345 {} 3456789 {} 2345678 0 {} 2789012 12345 0 987654321 4567 456789 12345",
            seed * 2_145_873,
            seed * 187_634_210,
            seed * 9_876_543,
            seed * 612_345_678,
            seed * 3_456_789
        );
    };
    for d in 0..options.disks {
        let letters = disk_letters(d);
        let seed = u64::from(d) + 1;
        line(&mut out, 8, d * 16, &format!("sd{letters}"), seed);
        for p in 1..=3 {
            line(&mut out, 8, d * 16 + p, &format!("sd{letters}{p}"), seed);
        }
    }
    // One zvol per VM, as on a ZFS-backed node.
    for (i, vmid) in guest_ids(options.guests).filter(|v| is_vm(*v)).enumerate() {
        let minor = u32::try_from(i).unwrap_or(0) * 16;
        line(&mut out, 230, minor, &format!("zd{minor}"), u64::from(vmid));
        line(
            &mut out,
            230,
            minor + 1,
            &format!("zd{minor}p1"),
            u64::from(vmid),
        );
    }
    tree.write("proc/diskstats", &out)
}

fn disk_letters(index: u32) -> String {
    let letter = |i: u32| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0));
    if index < 26 {
        letter(index).to_string()
    } else {
        format!("{}{}", letter(index / 26 - 1), letter(index))
    }
}

fn guest_ids(guests: u32) -> impl Iterator<Item = u32> {
    1000..1000 + guests
}

fn is_vm(vmid: u32) -> bool {
    vmid % 2 == 0
}

fn is_running(vmid: u32) -> bool {
    vmid % 10 != 7
}

fn guests(tree: &mut Tree, guests: u32) -> std::io::Result<()> {
    let mut vmlist = String::from("{\n\"version\": 4242,\n\"ids\": {\n");
    let mut unix = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
    for i in 0..20 {
        let _ = writeln!(
            unix,
            "0000000000000000: 00000002 00000000 00010000 0001 01 {} /run/systemd/socket{i}",
            20_000 + i
        );
    }
    let ids: Vec<u32> = guest_ids(guests).collect();
    for (i, &vmid) in ids.iter().enumerate() {
        let kind = if is_vm(vmid) { "qemu" } else { "lxc" };
        let end = if i + 1 == ids.len() {
            "}\n\n}\n"
        } else {
            ",\n"
        };
        let _ = write!(
            vmlist,
            "\"{vmid}\": {{ \"node\": \"bench1\", \"type\": \"{kind}\", \"version\": {} }}{end}",
            vmid % 97
        );
        let pid = 100_000 + vmid;
        let stat = format!(
            "{pid} ({}) S 1 {pid} {pid} 0 -1 138412352 1894921 0 1025 0 {} {} 0 0 20 0 9 0 {} 9713025024 1092183 18446744073709551615 1 1 0 0 0 0 268444224 4096 17635 0 0 0 17 5 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            if is_vm(vmid) { "kvm" } else { "systemd" },
            vmid * 150,
            vmid * 38,
            1_234_567 + vmid
        );
        let memory_stat = std::fs::read_to_string(fixture(
            "pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.stat",
        ))?;
        if is_vm(vmid) {
            tree.write(
                &format!("etc/pve/qemu-server/{vmid}.conf"),
                &format!(
                    "#bench VM\nagent: 1\nboot: order=scsi0\ncores: 4\nmemory: 8192\nname: vm{vmid}\nnet0: virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1\nonboot: 1\nostype: l26\nscsi0: local-zfs:vm-{vmid}-disk-0,size=64G\nscsihw: virtio-scsi-single\nsockets: 1\ntags: bench;vm\n"
                ),
            )?;
            if !is_running(vmid) {
                continue;
            }
            tree.write(
                &format!("var/run/qemu-server/{vmid}.pid"),
                &format!("{pid}\n"),
            )?;
            tree.write(&format!("proc/{pid}/stat"), &stat)?;
            tree.write(
                &format!("proc/{pid}/cmdline"),
                &format!("/usr/bin/kvm\0-id\0{vmid}\0-name\0vm{vmid},debug-threads=on\0-pidfile\0/var/run/qemu-server/{vmid}.pid\0-daemonize\0-m\08192\0"),
            )?;
            cgroup(
                tree,
                &format!("sys/fs/cgroup/qemu.slice/{vmid}.scope/"),
                vmid,
                &memory_stat,
                "max",
            )?;
        } else {
            tree.write(
                &format!("etc/pve/lxc/{vmid}.conf"),
                &format!(
                    "#bench CT\narch: amd64\ncores: 2\nhostname: ct{vmid}\nmemory: 1024\nnet0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:3A:5C:02,ip=dhcp,type=veth\nonboot: 1\nostype: debian\nrootfs: local-zfs:subvol-{vmid}-disk-0,size=8G\nswap: 512\ntags: bench\nunprivileged: 1\n"
                ),
            )?;
            if !is_running(vmid) {
                continue;
            }
            let _ = writeln!(
                unix,
                "0000000000000000: 00000002 00000000 00010000 0001 01 {} @/var/lib/lxc/{vmid}/command",
                30_000 + vmid
            );
            tree.write(&format!("proc/{pid}/stat"), &stat)?;
            let dir = format!("sys/fs/cgroup/lxc/{vmid}/");
            cgroup(tree, &dir, vmid, &memory_stat, "1073741824")?;
            tree.write(&format!("{dir}ns/cgroup.procs"), "")?;
            tree.write(
                &format!("{dir}ns/init.scope/cgroup.procs"),
                &format!("{pid}\n"),
            )?;
        }
    }
    if ids.is_empty() {
        vmlist.push_str("}\n\n}\n");
    }
    tree.write("etc/pve/.vmlist", &vmlist)?;
    tree.write("proc/net/unix", &unix)
}

fn cgroup(
    tree: &mut Tree,
    dir: &str,
    vmid: u32,
    memory_stat: &str,
    max: &str,
) -> std::io::Result<()> {
    let usec = u64::from(vmid) * 1_897_262;
    tree.write(
        &format!("{dir}cpu.stat"),
        &format!("usage_usec {usec}\nuser_usec {}\nsystem_usec {}\nnice_usec 0\ncore_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n", usec / 4 * 3, usec / 4),
    )?;
    tree.write(
        &format!("{dir}memory.current"),
        &format!("{}\n", 4_473_671_680u64 + u64::from(vmid)),
    )?;
    tree.write(&format!("{dir}memory.max"), &format!("{max}\n"))?;
    tree.write(&format!("{dir}memory.stat"), memory_stat)?;
    tree.write(
        &format!("{dir}io.stat"),
        &format!(
            "230:0 rbytes={} wbytes={} rios=96311 wios=1172840 dbytes=0 dios=0\n",
            u64::from(vmid) * 2_379_522,
            u64::from(vmid) * 15_208_677
        ),
    )?;
    for name in ["cpu", "io", "memory"] {
        tree.write(&format!("{dir}{name}.pressure"), PSI)?;
    }
    Ok(())
}

fn storage(tree: &mut Tree, pools: u32) -> std::io::Result<()> {
    let mut cfg = String::from("dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n");
    let mut pvesm = String::from("Name               Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %\nlocal               dir     active       781263616         4987264       776276376    0.64%\n");
    let mut zpool = String::new();
    let mut mounts = std::fs::read_to_string(fixture("pve-node/proc/mounts"))?;
    let mut stat_f = std::fs::read_to_string(fixture("pve-node/cmd/stat-f.txt"))?;
    for p in 0..pools {
        let name = if p == 0 {
            "rpool".to_owned()
        } else {
            format!("tank{p}")
        };
        let _ = writeln!(
            zpool,
            "{name}\t991600574464\t187246247936\t804354326528\t{}\t1.00\tONLINE",
            p + 3
        );
        let _ = writeln!(
            cfg,
            "zfspool: zfs-{name}\n\tpool {name}/data\n\tsparse\n\tcontent images,rootdir\n"
        );
        let _ = writeln!(
            pvesm,
            "zfs-{name:<10} zfspool     active       950439140       174212788       776226352   18.33%"
        );
        if p > 0 {
            let _ = writeln!(
                mounts,
                "{name} /{name} zfs rw,relatime,xattr,noacl,casesensitive 0 0"
            );
            let _ = writeln!(
                mounts,
                "{name}/data /{name}/data zfs rw,relatime,xattr,noacl,casesensitive 0 0"
            );
            let _ = writeln!(
                stat_f,
                "/{name} 131072 6064268 6064267 6064267 1551896007 1551896001"
            );
            let _ = writeln!(
                stat_f,
                "/{name}/data 131072 6064268 6064267 6064267 1551896007 1551896001"
            );
        }
    }
    tree.write("etc/pve/storage.cfg", &cfg)?;
    tree.write("cmd/pvesm-status.txt", &pvesm)?;
    tree.write("cmd/zpool-list-HpPLo-pve-columns.txt", &zpool)?;
    tree.write("cmd/zpool-status-x.txt", "all pools are healthy\n")?;
    tree.write("proc/mounts", &mounts)?;
    tree.write("cmd/stat-f.txt", &stat_f)
}

/// "Now" on the generated node: 2026-11-25 12:00:00 UTC.
const NOW: u64 = 1_795_608_000;
const DAY: u64 = 86_400;
/// Proxmox renames the index to `index.1` once it grows past this.
const INDEX_MAX: usize = 50_000;
const JOB: &str = "backup-bench-nightly";

/// A guest's part of a night's backup: every 37th guest-night fails.
fn backup_fails(vmid: u32, night: u64) -> bool {
    (u64::from(vmid) + night) % 37 == 0
}

fn operations(tree: &mut Tree, options: &Options) -> std::io::Result<()> {
    let ids: Vec<u32> = guest_ids(options.guests).collect();
    task_history(tree, &ids)?;
    let jobs = format!(
        "vzdump: {JOB}\n\tschedule 01:00\n\tall 1\n\tcompress zstd\n\tenabled 1\n\tmode snapshot\n\tstorage local\n\nvzdump: backup-bench-weekly\n\tschedule sat 03:00\n\tpool prod\n\tenabled 1\n\tstorage local\n"
    );
    tree.write("etc/pve/jobs.cfg", &jobs)?;
    let members: Vec<String> = ids.iter().take(40).map(ToString::to_string).collect();
    tree.write(
        "etc/pve/user.cfg",
        &format!(
            "user:root@pam:1:0:::::\npool:prod:Production:{}::\n",
            members.join(",")
        ),
    )?;
    let mut replication = String::new();
    let mut replication_state = String::from("{");
    let mut resources = String::new();
    let mut services = String::from("{");
    for (i, vmid) in ids.iter().enumerate() {
        let kind = if is_vm(*vmid) { "vm" } else { "ct" };
        if i % 10 == 0 {
            let _ = write!(
                replication,
                "local: {vmid}-0\n\ttarget bench2\n\tsource bench1\n\n"
            );
            let failing = i % 30 == 0;
            let _ = write!(
                replication_state,
                "{}\"{vmid}\":{{\"local/bench2\":{{\"last_sync\":{},\"last_try\":{},\"fail_count\":{},\"duration\":3.2{}}}}}",
                if replication_state.len() > 1 { "," } else { "" },
                NOW - 900 * if failing { 8 } else { 1 },
                NOW - 900,
                u32::from(failing) * 4,
                if failing { ",\"error\":\"no route to host\"" } else { "" }
            );
        }
        if i % 4 == 0 {
            let _ = write!(resources, "{kind}: {vmid}\n\tstate started\n\n");
            let _ = write!(
                services,
                "{}\"{kind}:{vmid}\":{{\"node\":\"bench1\",\"running\":1,\"state\":\"started\",\"uid\":\"u{vmid}\"}}",
                if services.len() > 1 { "," } else { "" }
            );
        }
    }
    replication_state.push('}');
    services.push('}');
    tree.write("etc/pve/replication.cfg", &replication)?;
    tree.write(
        "var/lib/pve-manager/pve-replication-state.json",
        &replication_state,
    )?;
    tree.write("etc/pve/ha/resources.cfg", &resources)?;
    tree.write(
        "etc/pve/ha/manager_status",
        &format!("{{\"master_node\":\"bench1\",\"node_status\":{{\"bench1\":\"online\"}},\"service_status\":{services},\"timestamp\":{NOW}}}"),
    )?;
    tree.write(
        "etc/pve/nodes/bench1/lrm_status",
        &format!(
            "{{\"mode\":\"active\",\"results\":{{}},\"state\":\"active\",\"timestamp\":{NOW}}}"
        ),
    )?;
    sensors(tree, options.disks)?;
    smart(tree, options.disks)
}

/// A year of tasks: the index as Proxmox rotates it, every task's log, each guest's last
/// vzdump log and the nightly job's state.
fn task_history(tree: &mut Tree, ids: &[u32]) -> std::io::Result<()> {
    const OTHER: [(&str, bool); 6] = [
        ("vncproxy", true),
        ("qmstart", true),
        ("vzstart", true),
        ("qmsnapshot", true),
        ("aptupdate", false),
        ("imgcopy", false),
    ];
    let mut index = String::new();
    let mut pid: u32 = 0x10000;
    let mut last_upid = String::new();
    for night in (0..365u64).rev() {
        let day = NOW / DAY * DAY - night * DAY;
        // The nightly job (the node runs on UTC: no /etc/localtime), one task for every guest.
        let start = day + 2 + night % 13;
        pid += 7;
        let upid = format!("UPID:bench1:{pid:08X}:0358F2A1:{start:08X}:vzdump::root@pam:");
        let mut log = String::from(
            "INFO: starting new backup job: vzdump --all 1 --storage local --mode snapshot --compress zstd --quiet 1\n",
        );
        let mut errors = 0;
        let mut t = start + 1;
        for &vmid in ids {
            let (kind, ext) = if is_vm(vmid) {
                ("qemu", "vma")
            } else {
                ("lxc", "tar")
            };
            let begin = t;
            t += 20;
            let _ = write!(
                log,
                "INFO: Starting Backup of VM {vmid} ({kind})\nINFO: Backup started at {}\nINFO: status = running\nINFO: backup mode: snapshot\nINFO: creating vzdump archive '/var/lib/vz/dump/vzdump-{kind}-{vmid}-{}.{ext}.zst'\nINFO:  50% (32.0 GiB of 64.0 GiB) in 10s, read: 3.2 GiB/s, write: 120.1 MiB/s\n",
                local(begin),
                local(begin).replace(['-', ' ', ':'], "_")
            );
            if backup_fails(vmid, night) {
                errors += 1;
                let _ = write!(
                    log,
                    "ERROR: Backup of VM {vmid} failed - job failed with err -5 - Input/output error\nINFO: Failed at {}\n",
                    local(t)
                );
            } else {
                let _ = write!(
                    log,
                    "INFO: 100% (64.0 GiB of 64.0 GiB) in 20s, read: 3.2 GiB/s, write: 90.2 MiB/s\nINFO: archive file size: 2.31GB\nINFO: Finished Backup of VM {vmid} (00:00:20)\nINFO: Backup finished at {}\n",
                    local(t)
                );
            }
            if night == 0 {
                tree.write(
                    &format!("var/log/vzdump/{kind}-{vmid}.log"),
                    &guest_log(&log, vmid),
                )?;
            }
        }
        let status = if errors > 0 { "job errors" } else { "OK" };
        log.push_str(if errors > 0 {
            "INFO: Backup job finished with errors\nTASK ERROR: job errors\n"
        } else {
            "INFO: Backup job finished successfully\nTASK OK\n"
        });
        tree.write(&task_log_path(&upid), &log)?;
        append_index(
            tree,
            &mut index,
            &format!("{upid} {:08X} {status}\n", t + 1),
        )?;
        last_upid = upid;
        // Two dozen other tasks through the day.
        for k in 0..24u64 {
            let (kind, per_guest) = OTHER[usize::try_from(k).unwrap_or(0) % OTHER.len()];
            let start = day + 3 * 3600 + k * 3000 + 17 + (night * 7 + k) % 16;
            let id = if per_guest {
                ids.get(usize::try_from((night * 24 + k) % ids.len().max(1) as u64).unwrap_or(0))
                    .map(ToString::to_string)
                    .unwrap_or_default()
            } else {
                String::new()
            };
            pid += 3;
            let upid = format!("UPID:bench1:{pid:08X}:0358F2A1:{start:08X}:{kind}:{id}:root@pam:");
            tree.write(&task_log_path(&upid), "TASK OK\n")?;
            append_index(tree, &mut index, &format!("{upid} {:08X} OK\n", start + 4))?;
        }
    }
    tree.write("var/log/pve/tasks/index", &index)?;
    tree.write(
        "var/log/pve/tasks/active",
        &format!("{last_upid} 1 {:08X} OK\n", NOW),
    )?;
    tree.write(
        &format!("var/lib/pve-manager/jobs/vzdump-{JOB}.json"),
        &format!("{{\"state\":\"stopped\",\"msg\":\"job errors\",\"upid\":\"{last_upid}\",\"config\":{{\"enabled\":1,\"schedule\":\"01:00\"}}}}"),
    )
}

/// Appends an index line; past `INDEX_MAX` bytes the index becomes `index.1`.
fn append_index(tree: &mut Tree, index: &mut String, line: &str) -> std::io::Result<()> {
    index.push_str(line);
    if index.len() > INDEX_MAX {
        tree.write("var/log/pve/tasks/index.1", index)?;
        index.clear();
    }
    Ok(())
}

fn task_log_path(upid: &str) -> String {
    let starttime = upid.split(':').nth(4).unwrap_or("0");
    let digit = starttime.chars().last().unwrap_or('0');
    format!("var/log/pve/tasks/{digit}/{upid}")
}

/// The per-guest vzdump log of `vmid`'s part of `task_log`: its lines written to the log file,
/// each with its time (the start, and the end for the line that ends it).
fn guest_log(task_log: &str, vmid: u32) -> String {
    let start = format!("INFO: Starting Backup of VM {vmid} ");
    let Some(from) = task_log.rfind(&start) else {
        return String::new();
    };
    let lines: Vec<&str> = task_log[from..].lines().collect();
    let time_of = |prefixes: &[&str]| {
        lines
            .iter()
            .find_map(|l| prefixes.iter().find_map(|p| l.strip_prefix(p)))
    };
    let begin = time_of(&["INFO: Backup started at "]).unwrap_or("");
    let end = time_of(&["INFO: Backup finished at ", "INFO: Failed at "]).unwrap_or(begin);
    let mut out = String::new();
    for line in lines {
        if line.contains(" at ")
            && (line.contains("Backup started")
                || line.contains("Backup finished")
                || line.starts_with("INFO: Failed at"))
        {
            if line.starts_with("INFO: Backup started") {
                continue;
            }
            break;
        }
        let ends =
            line.starts_with("INFO: Finished Backup") || line.starts_with("ERROR: Backup of VM");
        let _ = writeln!(out, "{} {line}", if ends { end } else { begin });
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` of UNIX seconds, in UTC (the generated node's zone).
fn local(t: u64) -> String {
    let (days, secs) = (t / DAY, t % DAY);
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Two CPU packages of 16 cores, an ACPI zone, and a `drivetemp` chip per disk.
fn sensors(tree: &mut Tree, disks: u32) -> std::io::Result<()> {
    tree.write("sys/class/hwmon/hwmon0/name", "acpitz\n")?;
    tree.write("sys/class/hwmon/hwmon0/temp1_input", "27800\n")?;
    for package in 0..2u32 {
        let dir = format!("sys/class/hwmon/hwmon{}", package + 1);
        tree.write(&format!("{dir}/name"), "coretemp\n")?;
        for sensor in 1..=17u32 {
            let label = if sensor == 1 {
                format!("Package id {package}")
            } else {
                format!("Core {}", sensor - 2)
            };
            tree.write(&format!("{dir}/temp{sensor}_label"), &format!("{label}\n"))?;
            tree.write(
                &format!("{dir}/temp{sensor}_input"),
                &format!("{}\n", 48_000 + sensor * 500),
            )?;
            tree.write(&format!("{dir}/temp{sensor}_max"), "90000\n")?;
            tree.write(&format!("{dir}/temp{sensor}_crit"), "100000\n")?;
        }
    }
    for d in 0..disks {
        let dir = format!("sys/class/hwmon/hwmon{}", d + 3);
        tree.write(&format!("{dir}/name"), "drivetemp\n")?;
        tree.write(
            &format!("{dir}/temp1_input"),
            &format!("{}\n", 33_000 + d * 250),
        )?;
        tree.write(&format!("{dir}/temp1_max"), "60000\n")?;
        tree.write(&format!("{dir}/temp1_crit"), "70000\n")?;
        tree.write(
            &format!("{dir}/device/block/sd{}/size", disk_letters(d)),
            "7814037168\n",
        )?;
    }
    Ok(())
}

/// `smartctl --scan -j` and a report per disk (the smart-disks fixture's ATA disk).
fn smart(tree: &mut Tree, disks: u32) -> std::io::Result<()> {
    let report = std::fs::read_to_string(fixture(
        "smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sda.txt",
    ))?;
    let mut scan =
        String::from("{\n  \"json_format_version\": [\n    1,\n    0\n  ],\n  \"devices\": [\n");
    for d in 0..disks {
        let name = format!("/dev/sd{}", disk_letters(d));
        let _ = write!(
            scan,
            "{}    {{\n      \"name\": \"{name}\",\n      \"info_name\": \"{name} [SAT]\",\n      \"type\": \"sat\",\n      \"protocol\": \"ATA\"\n    }}",
            if d > 0 { ",\n" } else { "" }
        );
        tree.write(
            &format!(
                "cmd/smartctl-json-a-n-standby-d-sat--dev-sd{}.txt",
                disk_letters(d)
            ),
            &report.replace("/dev/sda", &name),
        )?;
    }
    scan.push_str("\n  ]\n}\n");
    tree.write("cmd/smartctl-scan-j.txt", &scan)
}

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(relative)
}
