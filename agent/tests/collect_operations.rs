//! The node's operational state over fixture trees (see `fixtures/README.md`): backups and
//! their jobs, replication, HA, SMART and temperatures, with exact values; the task index read
//! incrementally (grown, rotated, rewritten); smartctl missing, refused and hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agent::collect::command::{CommandError, CommandRunner, FixtureRunner, Output};
use agent::collect::Collector;
use common::sample::{GuestBackup, GuestType, MediumSample, RunState, SmartDisk};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// A private copy of a fixture tree, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(layer: &str) -> TempTree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pm-ops-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixture(layer), &dir);
        TempTree(dir)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn append(&self, relative: &str, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(relative))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
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

fn guest(medium: &MediumSample, vmid: u32) -> &GuestBackup {
    medium.backups.iter().find(|g| g.vmid == vmid).unwrap()
}

// 2026-11-24 and 2026-11-25, 01:00 in Vienna (CET, UTC+1): the nightly job.
const TASK_24: &str = "UPID:pve1:0003A1F2:0358F2A1:6B04D382:vzdump::root@pam:";
const TASK_25: &str = "UPID:pve1:0003C4D8:0358F2A1:6B062502:vzdump::root@pam:";
const JOB: &str = "backup-5f0d2c1e-9a41";

#[test]
fn backups_of_the_pve_node() {
    let mut collector = Collector::new(fixture("pve-node"));
    let medium = collector.medium();
    assert_eq!(medium.errors, []);
    assert_eq!(medium.backups.len(), 3);

    // The VM of the multi-guest job: backed up last night (01:01:48 CET).
    let vm = guest(&medium, 100);
    assert_eq!(vm.kind, GuestType::Qemu);
    assert_eq!(vm.jobs.as_deref(), Some(&[JOB.to_owned()][..]));
    let good = vm.last_success.as_ref().unwrap();
    assert_eq!(good.end_time, 1_795_564_908);
    assert_eq!(good.duration_seconds, Some(105));
    assert_eq!(good.size_bytes, Some(1_632_087_572)); // "1.52GB"
    assert_eq!(good.storage.as_deref(), Some("local"));
    assert_eq!(good.upid.as_deref(), Some(TASK_25));
    assert_eq!(vm.last_failure, None);
    assert!(!vm.running);

    // The CT: last night's backup failed, the one before succeeded.
    let ct = guest(&medium, 101);
    assert_eq!(ct.kind, GuestType::Lxc);
    let good = ct.last_success.as_ref().unwrap();
    assert_eq!(good.end_time, 1_795_478_549); // 2026-11-24 01:02:29 CET
    assert_eq!(good.duration_seconds, Some(42));
    assert_eq!(good.size_bytes, Some(412 * 1024 * 1024));
    assert_eq!(
        good.archive.as_deref(),
        Some("/var/lib/vz/dump/vzdump-lxc-101-2026_11_24-01_01_47.tar.zst")
    );
    assert_eq!(good.upid.as_deref(), Some(TASK_24));
    let bad = ct.last_failure.as_ref().unwrap();
    assert_eq!(bad.end_time, 1_795_564_930); // 2026-11-25 01:02:10 CET
    assert!(bad.message.starts_with("command 'rsync --stats"));
    assert!(bad.message.ends_with("failed: exit code 23"));
    assert_eq!(bad.upid.as_deref(), Some(TASK_25));

    // The stopped VM: backed up by hand once; only a disabled legacy job selects it.
    let other = guest(&medium, 102);
    assert_eq!(other.jobs.as_deref(), Some(&[][..]));
    let good = other.last_success.as_ref().unwrap();
    assert_eq!(good.end_time, 1_795_174_392);
    assert_eq!(good.duration_seconds, Some(186));
    assert_eq!(good.size_bytes, Some(20_121_921_782)); // "18.74GB"

    // Jobs of this node: the nightly job, a disabled pool job, a disabled cron line. The job
    // restricted to pve2 and the cron line for pve2 are pve2's.
    let ids: Vec<&str> = medium.backup_jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [JOB, "backup-8c3e7b20-41d7", "vzdump.cron:1"]);
    let nightly = &medium.backup_jobs[0];
    assert_eq!(nightly.schedule.as_deref(), Some("01:00"));
    assert!(nightly.enabled);
    assert_eq!(nightly.selection, "100,101");
    assert_eq!(nightly.guests, [100, 101]);
    let run = nightly.last_run.as_ref().unwrap();
    assert_eq!(run.state, RunState::Error);
    assert_eq!(run.status.as_deref(), Some("job errors"));
    assert_eq!(run.start_time, Some(1_795_564_802));
    assert_eq!(run.end_time, Some(1_795_564_931));
    let pool = &medium.backup_jobs[1];
    assert_eq!(
        (pool.enabled, pool.selection.as_str()),
        (false, "pool prod")
    );
    assert_eq!(pool.guests, [100]);
    assert_eq!(pool.last_run, None);
    let cron = &medium.backup_jobs[2];
    assert_eq!(cron.schedule.as_deref(), Some("sun 03:30"));
    assert_eq!((cron.enabled, cron.guests.as_slice()), (false, &[102][..]));
}

#[test]
fn replication_and_ha_of_the_pve_node() {
    let mut collector = Collector::new(fixture("pve-node"));
    let medium = collector.medium();
    // 200-0 replicates a guest of pve2: pve2's business.
    let ids: Vec<&str> = medium.replication.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["100-0", "101-0"]);
    let failing = &medium.replication[1];
    assert_eq!(failing.fail_count, 3);
    assert_eq!(failing.last_sync, Some(1_795_561_200));
    assert_eq!(failing.last_try, Some(1_795_606_200));
    assert!(failing
        .error
        .as_deref()
        .unwrap()
        .ends_with("destination rpool/data/subvol-101-disk-0 has been modified"));
    assert_eq!(medium.replication[0].fail_count, 0);
    assert_eq!(medium.replication[0].error, None);

    let ha = medium.ha.unwrap();
    assert_eq!(
        (ha.master.as_deref(), ha.quorate),
        (Some("pve2"), Some(true))
    );
    let error = ha.services.iter().find(|s| s.sid == "vm:102").unwrap();
    assert_eq!(error.state, "error");
    assert_eq!(error.crm_state.as_deref(), Some("error"));
    assert_eq!(error.request_state.as_deref(), Some("started"));
    assert_eq!(error.node.as_deref(), Some("pve1"));
    let pve2 = ha.nodes.iter().find(|n| n.name == "pve2").unwrap();
    assert_eq!(pve2.lrm_state.as_deref(), Some("wait_for_agent_lock"));
}

/// A `vzdump` index line for a task of pve1 started at `start` (UNIX seconds).
fn index_line(upid: &str, end: u64, status: &str) -> String {
    format!("{upid} {end:08X} {status}\n")
}

fn upid(pid: u32, start: u64, id: &str) -> String {
    format!("UPID:pve1:{pid:08X}:0358F2A1:{start:08X}:vzdump:{id}:root@pam:")
}

/// The log of a run of the nightly job in which both guests succeed, on 2026-11-26.
fn good_night_log() -> String {
    "INFO: starting new backup job: vzdump 100 101 --storage local --mode snapshot\n\
     INFO: Starting Backup of VM 100 (qemu)\n\
     INFO: Backup started at 2026-11-26 01:00:02\n\
     INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-100-2026_11_26-01_00_02.vma.zst'\n\
     INFO: archive file size: 1.53GB\n\
     INFO: Finished Backup of VM 100 (00:01:40)\n\
     INFO: Backup finished at 2026-11-26 01:01:42\n\
     INFO: Starting Backup of VM 101 (lxc)\n\
     INFO: Backup started at 2026-11-26 01:01:42\n\
     INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2026_11_26-01_01_42.tar.zst'\n\
     INFO: archive file size: 415MB\n\
     INFO: Finished Backup of VM 101 (00:00:40)\n\
     INFO: Backup finished at 2026-11-26 01:02:22\n\
     INFO: Backup job finished successfully\n\
     TASK OK\n"
        .to_owned()
}

const NIGHT_26: u64 = 1_795_651_201; // 2026-11-26 00:00:01 UTC

/// Overwrites the start of the index's first line in place, keeping the file's identity and size.
fn damage_first_line(index: &Path) {
    let mut file = std::fs::OpenOptions::new().write(true).open(index).unwrap();
    file.write_all(b"garbage:1").unwrap();
}

fn write_task_log(tree: &TempTree, upid: &str, text: &str) {
    let digit = upid.split(':').nth(4).unwrap().chars().last().unwrap();
    tree.write(&format!("var/log/pve/tasks/{digit}/{upid}"), text);
}

#[test]
fn a_growing_task_index_is_read_from_where_it_stopped() {
    let tree = TempTree::new("pve-node");
    let mut collector = Collector::new(&tree.0);
    let first = collector.medium();
    assert_eq!(first.errors, []);

    // Damage a line the collector already read, keeping the file's size: read again, it
    // would be a problem; read from where it stopped, it is never seen.
    damage_first_line(&tree.path("var/log/pve/tasks/index"));

    // The next night's run, appended.
    let night = upid(0x4_0001, NIGHT_26, "");
    write_task_log(&tree, &night, &good_night_log());
    tree.append(
        "var/log/pve/tasks/index",
        &index_line(&night, NIGHT_26 + 142, "OK"),
    );
    let second = collector.medium();
    assert_eq!(second.errors, []);
    let ct = guest(&second, 101);
    let good = ct.last_success.as_ref().unwrap();
    assert_eq!(good.end_time, 1_795_651_342); // 2026-11-26 01:02:22 CET
    assert_eq!(good.upid.as_deref(), Some(night.as_str()));
    // The failure of the night before stays the last failure.
    assert_eq!(ct.last_failure.as_ref().unwrap().end_time, 1_795_564_930);

    // A line still being written is left for later, then read whole.
    let late = upid(0x4_0002, NIGHT_26 + 3600, "100");
    tree.append("var/log/pve/tasks/index", &late[..20]);
    assert_eq!(collector.medium().errors, []);
    tree.append(
        "var/log/pve/tasks/index",
        &format!("{} {:08X} OK\n", &late[20..], NIGHT_26 + 3700),
    );
    let third = collector.medium();
    assert_eq!(third.errors, []);
    // Its log is gone: the index alone says it succeeded.
    let vm = guest(&third, 100).last_success.as_ref().unwrap();
    assert_eq!(
        (vm.end_time, vm.duration_seconds),
        (NIGHT_26 + 3700, Some(100))
    );
}

#[test]
fn a_rotated_task_index_is_noticed() {
    let tree = TempTree::new("pve-node");
    let mut collector = Collector::new(&tree.0);
    assert_eq!(collector.medium().errors, []);

    // A task ends and is appended to the old index, which then grows past 50 000 bytes and
    // is renamed to index.1 (PVE::RESTEnvironment::active_workers); the next task starts a
    // new index. Both are read: the rest of the old file, then the new one.
    let before = upid(0x4_0001, NIGHT_26, "");
    write_task_log(&tree, &before, &good_night_log());
    tree.append(
        "var/log/pve/tasks/index",
        &index_line(&before, NIGHT_26 + 142, "OK"),
    );
    // As in the test above: lines already read are damaged, so reading them again would show.
    damage_first_line(&tree.path("var/log/pve/tasks/index"));
    std::fs::rename(
        tree.path("var/log/pve/tasks/index"),
        tree.path("var/log/pve/tasks/index.1"),
    )
    .unwrap();
    let after = upid(0x4_0002, NIGHT_26 + 86_400, "101");
    write_task_log(
        &tree,
        &after,
        "INFO: starting new backup job: vzdump 101 --storage local\n\
         INFO: Starting Backup of VM 101 (lxc)\n\
         INFO: Backup started at 2026-11-27 01:00:02\n\
         ERROR: Backup of VM 101 failed - unable to create temporary directory '/var/tmp/vzdumptmp9_101'\n\
         INFO: Failed at 2026-11-27 01:00:03\n\
         INFO: Backup job finished with errors\n\
         TASK ERROR: job errors\n",
    );
    tree.write(
        "var/log/pve/tasks/index",
        &index_line(&after, NIGHT_26 + 86_402, "job errors"),
    );
    let medium = collector.medium();
    assert_eq!(medium.errors, []);
    let vm = guest(&medium, 100).last_success.as_ref().unwrap();
    assert_eq!(vm.upid.as_deref(), Some(before.as_str()));
    let ct = guest(&medium, 101);
    assert_eq!(
        ct.last_success.as_ref().unwrap().upid.as_deref(),
        Some(before.as_str())
    );
    let failure = ct.last_failure.as_ref().unwrap();
    assert_eq!(failure.end_time, NIGHT_26 + 86_402);
    assert_eq!(
        failure.message,
        "unable to create temporary directory '/var/tmp/vzdumptmp9_101'"
    );

    // Rewritten in place, smaller: read again from its start (same results).
    tree.write("var/log/pve/tasks/index", "");
    assert_eq!(collector.medium().errors, []);
    tree.write(
        "var/log/pve/tasks/index",
        &index_line(&after, NIGHT_26 + 86_402, "job errors"),
    );
    let again = collector.medium();
    assert_eq!(again.errors, []);
    assert_eq!(guest(&again, 101), guest(&medium, 101));
}

#[test]
fn a_task_log_with_bytes_that_are_not_utf8_costs_that_line_only() {
    let tree = TempTree::new("pve-node");
    let night = upid(0x4_0001, NIGHT_26, "");
    // Damage the first line (the job's command line) only.
    let mut log = good_night_log().into_bytes();
    log.splice(6..6, b"\xff\xfe".iter().copied());
    let digit = night.split(':').nth(4).unwrap().chars().last().unwrap();
    let path = tree.path(&format!("var/log/pve/tasks/{digit}/{night}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &log).unwrap();
    tree.append(
        "var/log/pve/tasks/index",
        &index_line(&night, NIGHT_26 + 142, "OK"),
    );
    let medium = Collector::new(&tree.0).medium();
    assert_eq!(medium.errors.len(), 1, "{:?}", medium.errors);
    assert_eq!(
        medium.errors[0].source,
        format!("/var/log/pve/tasks/{digit}/{night}")
    );
    assert_eq!(
        medium.errors[0].message,
        "line 1: bytes that are not UTF-8 (read as U+FFFD)"
    );
    for vmid in [100, 101] {
        let good = guest(&medium, vmid).last_success.as_ref().unwrap();
        assert_eq!(good.upid.as_deref(), Some(night.as_str()));
        // The storage was on the damaged line; the archive path still names it.
        assert_eq!(good.storage.as_deref(), Some("local"));
    }
}

#[test]
fn a_job_that_failed_before_its_first_guest_failed_each_of_its_guests() {
    let tree = TempTree::new("pve-node");
    let night = upid(0x4_0001, NIGHT_26, "");
    let error = "could not activate storage 'local': storage is disabled";
    write_task_log(&tree, &night, &format!("TASK ERROR: {error}\n"));
    tree.append(
        "var/log/pve/tasks/index",
        &index_line(&night, NIGHT_26 + 2, error),
    );
    tree.write(
        &format!("var/lib/pve-manager/jobs/vzdump-{JOB}.json"),
        &format!("{{\"state\":\"stopped\",\"msg\":\"{error}\",\"upid\":\"{night}\"}}"),
    );
    let medium = Collector::new(&tree.0).medium();
    assert_eq!(medium.errors, []);
    let run = medium.backup_jobs[0].last_run.as_ref().unwrap();
    assert_eq!(
        (run.state, run.end_time),
        (RunState::Error, Some(NIGHT_26 + 2))
    );
    for vmid in [100, 101] {
        let failure = guest(&medium, vmid).last_failure.as_ref().unwrap();
        assert_eq!(
            (failure.end_time, failure.message.as_str()),
            (NIGHT_26 + 2, error)
        );
    }
    // The guest the job does not select is untouched.
    assert_eq!(guest(&medium, 102).last_failure, None);
}

#[test]
fn a_running_backup_and_an_unreadable_jobs_cfg() {
    let tree = TempTree::new("pve-node");
    let night = upid(0x4_0001, NIGHT_26, "");
    write_task_log(
        &tree,
        &night,
        "INFO: starting new backup job: vzdump 100 101 --storage local\n\
         INFO: Starting Backup of VM 100 (qemu)\n\
         INFO: Backup started at 2026-11-26 01:00:02\n",
    );
    tree.append("var/log/pve/tasks/active", &format!("{night} 0\n"));
    std::fs::remove_file(tree.path("etc/pve/jobs.cfg")).unwrap();
    std::fs::create_dir(tree.path("etc/pve/jobs.cfg")).unwrap();
    let medium = Collector::new(&tree.0).medium();
    assert!(guest(&medium, 100).running);
    assert!(!guest(&medium, 101).running);
    // jobs.cfg cannot be read: which guests no job covers is unknown, not "none".
    assert_eq!(guest(&medium, 102).jobs, None);
    assert_eq!(medium.errors.len(), 1, "{:?}", medium.errors);
    assert_eq!(medium.errors[0].source, "/etc/pve/jobs.cfg");
}

#[test]
fn smart_of_a_shelf_of_disks() {
    let mut collector = Collector::new(fixture("smart-disks"));
    let slow = collector.slow();
    assert_eq!(slow.errors, []);
    assert_eq!(slow.smart_note, None);
    let disk = |name: &str| -> &SmartDisk { slow.smart.iter().find(|d| d.device == name).unwrap() };

    // Pending and offline-uncorrectable sectors, and errors in its log, yet it passes.
    let sda = disk("/dev/sda");
    assert_eq!((sda.passed, sda.exit_status), (Some(true), Some(64)));
    assert_eq!(
        (sda.pending_sectors, sda.offline_uncorrectable),
        (Some(8), Some(8))
    );
    assert_eq!(
        (sda.reallocated_sectors, sda.crc_errors),
        (Some(0), Some(0))
    );
    assert_eq!(sda.temperature_celsius, Some(36.0));
    assert_eq!(sda.power_on_hours, Some(41_233));

    // Failing: "DISK FAILING" and a prefail attribute at its threshold.
    let sdb = disk("/dev/sdb");
    assert_eq!((sdb.passed, sdb.exit_status), (Some(false), Some(24)));
    assert_eq!(sdb.reallocated_sectors, Some(3408));
    assert_eq!(sdb.pending_sectors, Some(224));

    // Asleep: left asleep, no values.
    let sdc = disk("/dev/sdc");
    assert!(sdc.standby);
    assert_eq!((sdc.passed, sdc.exit_status), (None, Some(2)));
    assert_eq!(sdc.temperature_celsius, None);
    assert_eq!(
        sdc.message.as_deref(),
        Some("Device is in STANDBY mode, exit(2)")
    );

    // smartctl hung on it: said in its entry, not an error of the sample.
    let nvme = disk("/dev/nvme0");
    assert_eq!(nvme.passed, None);
    assert!(
        nvme.message
            .as_deref()
            .unwrap()
            .contains("took longer than"),
        "{nvme:?}"
    );

    // Drive temperatures: with the drive's SCT limits, and without.
    let temps: Vec<String> = slow
        .drive_temperatures
        .iter()
        .map(|t| {
            format!(
                "{:?} {:?} {:?} {:?}",
                t.disk, t.celsius, t.max_celsius, t.crit_celsius
            )
        })
        .collect();
    assert_eq!(
        temps,
        [
            "Some(\"sda\") Some(36.0) Some(60.0) Some(70.0)",
            "Some(\"sdb\") Some(41.0) None None",
            "Some(\"sdc\") Some(29.0) Some(60.0) Some(70.0)",
        ]
    );
    // Drive sensors are not read in the fast cycle.
    assert_eq!(collector.fast().temperatures, []);
}

/// Runs captured commands from a tree's `cmd/`, recording each command line.
#[derive(Clone)]
struct Recording {
    inner: FixtureRunner,
    calls: Arc<Mutex<Vec<String>>>,
}

impl CommandRunner for Recording {
    fn run_output(&self, program: &str, args: &[&str]) -> Result<Output, CommandError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{program} {}", args.join(" ")));
        self.inner.run_output(program, args)
    }
}

#[test]
fn a_sleeping_disk_is_never_woken() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let runner = Recording {
        inner: FixtureRunner {
            dir: fixture("smart-disks/cmd"),
        },
        calls: calls.clone(),
    };
    let mut collector = Collector::with_runner(fixture("smart-disks"), Box::new(runner));
    collector.slow();
    let calls = calls.lock().unwrap();
    assert_eq!(calls[0], "smartctl --scan -j");
    assert_eq!(calls.len(), 5);
    for call in &calls[1..] {
        assert!(
            call.starts_with("smartctl --json -a -n standby -d "),
            "{call}"
        );
    }
}

#[test]
fn no_smartctl_is_one_note_not_an_error_every_cycle() {
    let tree = TempTree::new("smart-disks");
    for entry in std::fs::read_dir(tree.path("cmd")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let mut collector = Collector::new(&tree.0);
    for _ in 0..3 {
        let slow = collector.slow();
        assert_eq!(slow.errors, []);
        assert_eq!(slow.smart, []);
        assert_eq!(
            slow.smart_note.as_deref(),
            Some("smartctl is not installed (package smartmontools): no SMART data")
        );
    }
}

/// smartctl run without the rights to open the disks: its scan works, each disk refuses.
struct Refused;

impl CommandRunner for Refused {
    fn run_output(&self, _program: &str, args: &[&str]) -> Result<Output, CommandError> {
        if args == ["--scan", "-j"] {
            return FixtureRunner {
                dir: fixture("smart-disks/cmd"),
            }
            .run_output("smartctl", args);
        }
        let device = args.last().unwrap();
        Ok(Output {
            status: Some(2),
            stdout: format!(
                "{{\"json_format_version\":[1,0],\"smartctl\":{{\"version\":[7,3],\"messages\":[{{\"string\":\"Smartctl open device: {device} failed: Permission denied\",\"severity\":\"error\"}}],\"exit_status\":2}}}}"
            ),
            stderr: String::new(),
        })
    }
}

#[test]
fn no_permission_is_one_note() {
    let mut collector = Collector::with_runner(fixture("smart-disks"), Box::new(Refused));
    for _ in 0..2 {
        let slow = collector.slow();
        assert_eq!(slow.errors, []);
        assert_eq!(slow.smart.len(), 4);
        assert!(slow.smart.iter().all(|d| d.passed.is_none() && !d.standby));
        assert_eq!(
            slow.smart[0].message.as_deref(),
            Some("Smartctl open device: /dev/sda failed: Permission denied")
        );
        assert_eq!(
            slow.smart_note.as_deref(),
            Some("smartctl may not open 4 of 4 disks (permission denied): the agent needs root, or CAP_SYS_RAWIO and CAP_SYS_ADMIN")
        );
    }
}

#[test]
fn temperatures_with_and_without_thresholds() {
    let mut collector = Collector::new(fixture("pve-node"));
    let fast = collector.fast();
    assert_eq!(fast.errors, []);
    let t = &fast.temperatures;
    assert_eq!(t.len(), 10);
    // ACPI zone: no label, no thresholds.
    assert_eq!(
        (
            t[0].chip.as_str(),
            t[0].label.as_deref(),
            t[0].celsius,
            t[0].max_celsius,
            t[0].crit_celsius
        ),
        ("acpitz", None, Some(27.8), None, None)
    );
    // NVMe composite with its thresholds; a sensor whose "max" is the 65261.85 °C of "none".
    assert_eq!(
        (
            t[1].label.as_deref(),
            t[1].disk.as_deref(),
            t[1].celsius,
            t[1].max_celsius,
            t[1].crit_celsius
        ),
        (
            Some("Composite"),
            Some("nvme0n1"),
            Some(41.85),
            Some(81.85),
            Some(84.85)
        )
    );
    assert_eq!(
        (t[2].label.as_deref(), t[2].max_celsius),
        (Some("Sensor 1"), None)
    );
    assert_eq!(t[4].disk.as_deref(), Some("nvme1n1"));
    assert_eq!(
        (
            t[5].chip.as_str(),
            t[5].label.as_deref(),
            t[5].celsius,
            t[5].crit_celsius
        ),
        ("coretemp", Some("Package id 0"), Some(53.0), Some(100.0))
    );
}

#[test]
fn chips_are_named_by_their_device_link_and_a_hotplug_is_seen() {
    let tree = TempTree::new("pve-node");
    std::os::unix::fs::symlink(
        "../../../devices/platform/coretemp.0",
        tree.path("sys/class/hwmon/hwmon3/device"),
    )
    .unwrap();
    let mut collector = Collector::new(&tree.0);
    let fast = collector.fast();
    let core = fast
        .temperatures
        .iter()
        .find(|t| t.chip == "coretemp")
        .unwrap();
    assert_eq!(core.device, "coretemp.0");
    assert_eq!(fast.temperatures.len(), 10);
    // A new chip appears: the medium cycle lists the chips again.
    tree.write("sys/class/hwmon/hwmon4/name", "k10temp\n");
    tree.write("sys/class/hwmon/hwmon4/temp1_input", "61125\n");
    tree.write("sys/class/hwmon/hwmon4/temp1_label", "Tctl\n");
    assert_eq!(collector.fast().temperatures.len(), 10);
    collector.medium();
    let fast = collector.fast();
    assert_eq!(fast.temperatures.len(), 11);
    assert_eq!(fast.temperatures[10].celsius, Some(61.125));
    // A chip that goes away is dropped at the next read.
    std::fs::remove_dir_all(tree.path("sys/class/hwmon/hwmon4")).unwrap();
    collector.fast();
    assert_eq!(collector.fast().temperatures.len(), 10);
}
