//! `proxmox-monitor-agent collect --root DIR --check`, run as the real binary: every problem
//! met (file, line, what was wrong) on stdout and exit 1, or a "no problems" line and exit 0.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn check(root: &Path) -> (i32, Vec<String>) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_proxmox-monitor-agent"))
        .args(["collect", "--check", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let lines = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (status.code().unwrap(), lines)
}

#[test]
fn a_clean_node_has_no_problems() {
    for tree in [
        "pve-node",
        "no-zfs",
        "debian-plain",
        "old-kernel",
        "node-exporter",
        "smart-disks",
    ] {
        let (code, lines) = check(&fixture(tree));
        assert_eq!(code, 0, "{tree}: {lines:?}");
        assert_eq!(lines.len(), 1, "{tree}: {lines:?}");
        assert!(lines[0].starts_with("no problems"), "{tree}: {lines:?}");
    }
}

#[test]
fn a_broken_node_lists_every_problem_and_fails() {
    let (code, lines) = check(&fixture("broken"));
    assert_eq!(code, 1);
    for expected in [
        "/proc/net/dev: line 3: eno1: expected 16 counters, found 3",
        "/proc/diskstats: line 1: \"   8 0 sda 1 2 3\" has 6 fields, expected 14, 18 or 20",
        "/etc/pve/storage.cfg: line 1: \"this is not a storage config\" is not a \"type: id\" section header: ignored",
        "/proc/uptime: file is empty",
        "zpool list: line 1: \"cannot open: garbage\" has 1 TAB-separated fields, expected 7",
        "/sys/class/hwmon/hwmon0/temp1_input: line 1: \"N/A\" is not a temperature in millidegrees",
        "smartctl --scan: line 29: not JSON (EOF while parsing a string at line 29 column 14): the lines before it are read",
        "smartctl /dev/sda: not JSON: expected value at line 1 column 1",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected:?} not in {lines:#?}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(
        *summary,
        format!(
            "{} problems under {}",
            lines.len() - 1,
            fixture("broken").display()
        )
    );
    // Each problem once, though fast and medium both read `.vmlist`.
    let mut sorted = lines.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), lines.len());
}

#[test]
fn check_lists_more_than_a_sample_would() {
    let dir = std::env::temp_dir().join(format!("pm-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture("pve-node"), &dir);
    let mut net = std::fs::read_to_string(dir.join("proc/net/dev")).unwrap();
    for i in 0..15 {
        net.push_str(&format!("bad{i}: 1 2 3\n"));
    }
    std::fs::write(dir.join("proc/net/dev"), net).unwrap();
    let (code, lines) = check(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 16, "{lines:#?}");
    assert_eq!(
        lines[0],
        "/proc/net/dev: line 15: bad0: expected 16 counters, found 3"
    );
    assert_eq!(lines[15], format!("15 problems under {}", dir.display()));
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
