//! A simulated node's operational files, written once at start with times relative to it:
//! the nightly backup job (`/etc/pve/jobs.cfg`, every guest of the cluster but two), its
//! last runs (`/var/lib/pve-manager/jobs/vzdump-<id>.json`), the task index with two nights of
//! `vzdump` tasks and their logs (on `pve-sim1` last night's backup of CT 102 failed), and
//! hwmon temperature sensors (a CPU package with its cores, and an ACPI zone), in the layouts
//! of `fixtures/pve-node` (whose `SOURCES.md` names the Proxmox and kernel code each follows).
//! The node runs on UTC (no `/etc/localtime`), so the logs' local times are UTC.

use std::fmt::Write as _;

use crate::render::File;
use crate::scenario::{Kind, Node};

/// The nightly job's id.
pub const JOB: &str = "backup-d3m0a1b2-c3d4";
/// The guests no job covers (amber on the Backups view).
pub const EXCLUDED: [u32; 2] = [105, 112];
/// The guest whose last backup failed, and on which node.
pub const FAILED: (&str, u32) = ("pve-sim1", 102);

/// The files, for a node started at `now` (Unix seconds).
pub fn files(node: &Node, now: u64) -> Vec<File> {
    let mut files = vec![("etc/pve/jobs.cfg".to_owned(), jobs_cfg())];
    // Two nights: 30 h and 6 h before the start.
    let mut index = String::new();
    let mut last = None;
    for (night, start) in [(0u32, now - 30 * 3600), (1, now - 6 * 3600)] {
        let (upid, log, end, ok) = run(node, start, night == 1);
        let _ = writeln!(
            index,
            "{upid} {end:08X} {}",
            if ok { "OK" } else { "job errors" }
        );
        // Proxmox files a task's log under the last hex digit of its start time.
        files.push((format!("var/log/pve/tasks/{:X}/{upid}", start & 0xF), log));
        last = Some((upid, ok));
    }
    files.push(("var/log/pve/tasks/index".into(), index));
    files.push(("var/log/pve/tasks/active".into(), String::new()));
    if let Some((upid, ok)) = last {
        files.push((
            format!("var/lib/pve-manager/jobs/vzdump-{JOB}.json"),
            format!(
                "{{\"upid\":\"{upid}\",\"msg\":\"{}\",\"state\":\"stopped\",\"config\":{{\"enabled\":1,\"schedule\":\"02:00\"}}}}",
                if ok { "OK" } else { "job errors" }
            ),
        ));
    }
    files.extend(hwmon(node));
    files
}

fn jobs_cfg() -> String {
    let exclude: Vec<String> = EXCLUDED.iter().map(u32::to_string).collect();
    format!(
        "vzdump: {JOB}\n\tschedule 02:00\n\tall 1\n\tcompress zstd\n\tenabled 1\n\texclude {}\n\
         \tmode snapshot\n\tnotes-template {{{{guestname}}}}\n\tstorage backup-nfs\n",
        exclude.join(",")
    )
}

/// One night's vzdump task on `node`: its UPID, log, end time and whether it went well.
fn run(node: &Node, start: u64, last_night: bool) -> (String, String, u64, bool) {
    let pid = 0x0003_A000 + node.id * 0x100 + u32::from(last_night);
    let upid = format!(
        "UPID:{}:{pid:08X}:0358F2A1:{start:08X}:vzdump::root@pam:",
        node.name
    );
    let mut log = format!(
        "INFO: starting new backup job: vzdump --all 1 --exclude {} --storage backup-nfs --mode snapshot --compress zstd --node {} --quiet 1\n",
        EXCLUDED.map(|v| v.to_string()).join(","),
        node.name
    );
    let mut t = start + 3;
    let mut ok = true;
    for guest in node.guests.iter().filter(|g| !EXCLUDED.contains(&g.vmid)) {
        let (kind, label, ext) = match guest.kind {
            Kind::Vm => ("qemu", "VM", "vma.zst"),
            Kind::Ct => ("lxc", "CT", "tar.zst"),
        };
        let _ = writeln!(log, "INFO: Starting Backup of VM {} ({kind})", guest.vmid);
        let _ = writeln!(log, "INFO: Backup started at {}", local(t));
        let _ = writeln!(log, "INFO: {label} Name: {}", guest.name);
        let fails = last_night && (node.name, guest.vmid) == FAILED;
        let took = 20 + u64::from(guest.vmid % 7) * 25 + guest.memory_mib / 1024;
        if fails {
            let _ = writeln!(
                log,
                "ERROR: Backup of VM {} failed - unable to create temporary directory '/mnt/pve/backup-nfs/dump/vzdump-{kind}-{}-{}.tmp' at /usr/share/perl5/PVE/VZDump.pm line 1025. - Stale file handle",
                guest.vmid,
                guest.vmid,
                stamp(t)
            );
            t += 4;
            let _ = writeln!(log, "INFO: Failed at {}", local(t));
            ok = false;
            continue;
        }
        let _ = writeln!(
            log,
            "INFO: creating vzdump archive '/mnt/pve/backup-nfs/dump/vzdump-{kind}-{}-{}.{ext}'",
            guest.vmid,
            stamp(t)
        );
        let size_mb = guest.memory_mib / 4 + u64::from(guest.vmid % 10) * 150;
        let _ = writeln!(log, "INFO: archive file size: {}MB", size_mb.max(90));
        t += took;
        let _ = writeln!(
            log,
            "INFO: Finished Backup of VM {} ({:02}:{:02}:{:02})",
            guest.vmid,
            took / 3600,
            took / 60 % 60,
            took % 60
        );
        let _ = writeln!(log, "INFO: Backup finished at {}", local(t));
    }
    if ok {
        log.push_str("INFO: Backup job finished successfully\nTASK OK\n");
    } else {
        log.push_str("INFO: Backup job finished with errors\nTASK ERROR: job errors\n");
    }
    (upid, log, t + 1, ok)
}

/// hwmon0: an ACPI zone with a critical trip point; hwmon1: the CPU package and four cores
/// (`coretemp`, or `k10temp`'s `Tctl` on AMD), with max and crit.
fn hwmon(node: &Node) -> Vec<File> {
    let base = 38 + node.id * 3;
    let mut files = vec![
        (
            "sys/class/hwmon/hwmon0/name".to_owned(),
            "acpitz\n".to_owned(),
        ),
        (
            "sys/class/hwmon/hwmon0/temp1_input".into(),
            "27800\n".into(),
        ),
        (
            "sys/class/hwmon/hwmon0/temp1_crit".into(),
            "105000\n".into(),
        ),
    ];
    let amd = node.cpu_model.contains("AMD");
    let chip = if amd { "k10temp" } else { "coretemp" };
    files.push(("sys/class/hwmon/hwmon1/name".into(), format!("{chip}\n")));
    let sensors: Vec<(String, u32)> = if amd {
        vec![("Tctl".into(), base + 4), ("Tccd1".into(), base + 2)]
    } else {
        std::iter::once(("Package id 0".to_owned(), base + 5))
            .chain((0..4).map(|c| (format!("Core {c}"), base + c)))
            .collect()
    };
    for (i, (label, celsius)) in sensors.into_iter().enumerate() {
        let n = i + 1;
        let dir = "sys/class/hwmon/hwmon1";
        files.push((format!("{dir}/temp{n}_label"), format!("{label}\n")));
        files.push((
            format!("{dir}/temp{n}_input"),
            format!("{}\n", celsius * 1000),
        ));
        if !amd {
            files.push((format!("{dir}/temp{n}_max"), "84000\n".into()));
            files.push((format!("{dir}/temp{n}_crit"), "100000\n".into()));
        }
    }
    files
}

/// `2026-11-26 02:00:03`: the node's local time (UTC here).
fn local(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// `2026_11_26-02_00_03`, as vzdump names archives.
fn stamp(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix);
    format!("{y:04}_{m:02}_{d:02}-{hh:02}_{mm:02}_{ss:02}")
}

/// UTC calendar fields of `unix` (Howard Hinnant's `civil_from_days`).
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(local(0), "1970-01-01 00:00:00");
        assert_eq!(local(1_764_110_715), "2025-11-25 22:45:15");
        assert_eq!(stamp(1_772_409_600), "2026_03_02-00_00_00");
    }

    #[test]
    fn the_task_index_names_logs_that_exist() {
        let node = crate::scenario::node("pve-sim1").unwrap();
        let files = files(&node, 1_772_409_600);
        let index = &files
            .iter()
            .find(|f| f.0 == "var/log/pve/tasks/index")
            .unwrap()
            .1;
        assert_eq!(index.lines().count(), 2);
        assert!(index.lines().last().unwrap().ends_with(" job errors"));
        for line in index.lines() {
            let upid = line.split(' ').next().unwrap();
            let start = upid.split(':').nth(4).unwrap();
            let dir = &start[start.len() - 1..];
            assert!(
                files
                    .iter()
                    .any(|f| f.0 == format!("var/log/pve/tasks/{dir}/{upid}")),
                "{upid}"
            );
        }
    }
}
