//! Filesystem usage: the real mounts of `/proc/mounts`, measured with statvfs(2).
//!
//! Left out: pseudo filesystems, tmpfs, FUSE (the pmxcfs `/etc/pve`, lxcfs), network
//! filesystems (their usage comes from the Proxmox storages, and statvfs on a dead NFS server
//! hangs), and guest volumes (`subvol-<vmid>-disk-<n>`, `/var/lib/lxc/...`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::sample::Filesystem;

use super::problem::{numbered_lines, quote, Problems};

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
}

/// Parses `device mountpoint fstype options dump pass` lines (kernel `fs/proc_namespace.c`
/// `show_vfsmnt`), decoding the kernel's octal escapes (`\040` for a space). A line with fewer
/// than 4 fields or a mount point that is not absolute is skipped and reported. Fails only on
/// an empty file.
pub fn parse(text: &str, problems: &mut Problems) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mountpoint), Some(fstype), Some(_options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            problems.line(number, format!("{} has fewer than 4 fields", quote(line)));
            continue;
        };
        if !mountpoint.starts_with('/') {
            problems.line(
                number,
                format!("mount point {} is not an absolute path", quote(mountpoint)),
            );
            continue;
        }
        out.push(Mount {
            device: unescape(device),
            mountpoint: unescape(mountpoint),
            fstype: fstype.to_owned(),
        });
    }
    if out.is_empty() && text.trim().is_empty() {
        return Err("file is empty".into());
    }
    Ok(out)
}

/// The mounts we report, in file order, one per mount point (the last one mounted there wins).
pub fn reported(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for mount in mounts.into_iter().filter(is_reported) {
        out.retain(|m| m.mountpoint != mount.mountpoint);
        out.push(mount);
    }
    out
}

fn is_reported(mount: &Mount) -> bool {
    const SKIPPED_TYPES: [&str; 35] = [
        "sysfs",
        "proc",
        "devtmpfs",
        "devpts",
        "tmpfs",
        "ramfs",
        "securityfs",
        "cgroup",
        "cgroup2",
        "pstore",
        "efivarfs",
        "bpf",
        "autofs",
        "hugetlbfs",
        "mqueue",
        "debugfs",
        "tracefs",
        "fusectl",
        "configfs",
        "binfmt_misc",
        "rpc_pipefs",
        "nsfs",
        "overlay",
        "squashfs",
        "iso9660",
        "fuse",
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "9p",
        "selinuxfs",
    ];
    if SKIPPED_TYPES.contains(&mount.fstype.as_str()) || mount.fstype.starts_with("fuse.") {
        return false;
    }
    const SKIPPED_PLACES: [&str; 5] = ["/proc/", "/sys/", "/dev/", "/run/", "/var/lib/lxc/"];
    if SKIPPED_PLACES
        .iter()
        .any(|p| mount.mountpoint.starts_with(p))
    {
        return false;
    }
    let last = mount.mountpoint.rsplit('/').next().unwrap_or("");
    !is_guest_volume(last)
}

/// `subvol-101-disk-0`, `basevol-900-disk-1`: a container's volume.
fn is_guest_volume(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("subvol-")
        .or_else(|| name.strip_prefix("basevol-"))
    else {
        return false;
    };
    rest.split_once("-disk-").is_some_and(|(vmid, n)| {
        !vmid.is_empty()
            && vmid.bytes().all(|b| b.is_ascii_digit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What statvfs(2) says about one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    /// The fundamental block size (`f_frsize`) that the block counts are in.
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks for unprivileged users.
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
}

impl FsUsage {
    /// The sample's view of a mount with this usage.
    pub fn to_filesystem(self, mount: &Mount) -> Filesystem {
        let bytes = |blocks: u64| blocks.checked_mul(self.block_size);
        Filesystem {
            mountpoint: mount.mountpoint.clone(),
            device: mount.device.clone(),
            fstype: mount.fstype.clone(),
            size_bytes: bytes(self.blocks),
            used_bytes: bytes(self.blocks.saturating_sub(self.blocks_free)),
            avail_bytes: bytes(self.blocks_avail),
            // Filesystems without a fixed inode table (vfat, btrfs) say 0.
            inodes_total: (self.files > 0).then_some(self.files),
            inodes_used: (self.files > 0).then(|| self.files.saturating_sub(self.files_free)),
        }
    }
}

/// statvfs(2), or a stand-in for it in tests.
pub trait StatFs: Send {
    fn stat(&self, mountpoint: &str) -> Result<FsUsage, String>;
}

/// The real statvfs(2) of `<root><mountpoint>`.
#[derive(Debug, Clone)]
pub struct SystemStatFs {
    pub root: PathBuf,
}

impl StatFs for SystemStatFs {
    fn stat(&self, mountpoint: &str) -> Result<FsUsage, String> {
        let path = self.root.join(mountpoint.trim_start_matches('/'));
        statvfs(&path).map_err(|e| format!("statvfs {}: {e}", path.display()))
    }
}

#[allow(unsafe_code)] // statvfs(2) has no safe std wrapper; the only unsafe in the agent.
fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `libc::statvfs` is plain integers, for which all-zero bytes are a valid value.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `buf` is a writable statvfs.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field types differ between libc targets
    Ok(FsUsage {
        block_size: u64::from(buf.f_frsize),
        blocks: u64::from(buf.f_blocks),
        blocks_free: u64::from(buf.f_bfree),
        blocks_avail: u64::from(buf.f_bavail),
        files: u64::from(buf.f_files),
        files_free: u64::from(buf.f_ffree),
    })
}

/// statvfs as captured on a node into a fixture tree's `cmd/stat-f.txt` with
/// `stat -f -c '%n %S %b %f %a %c %d' <mountpoint>...`.
#[derive(Debug, Clone)]
pub struct FixtureStatFs {
    pub file: PathBuf,
}

impl StatFs for FixtureStatFs {
    fn stat(&self, mountpoint: &str) -> Result<FsUsage, String> {
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        parse_stat_f(&text, &mut Problems::new())?
            .remove(mountpoint)
            .ok_or_else(|| format!("statvfs {mountpoint}: not captured"))
    }
}

/// Parses `stat -f -c '%n %S %b %f %a %c %d'` lines: the mount point (which may contain
/// spaces), then block size, blocks, free, available, inodes, free inodes. A line that is not
/// that is skipped and reported.
pub fn parse_stat_f(
    text: &str,
    problems: &mut Problems,
) -> Result<HashMap<String, FsUsage>, String> {
    let mut out = HashMap::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_stat_f_line(line) {
            Ok((name, usage)) => {
                out.insert(name.to_owned(), usage);
            }
            Err(message) => problems.line(number, message),
        }
    }
    Ok(out)
}

fn parse_stat_f_line(line: &str) -> Result<(&str, FsUsage), String> {
    let mut fields = line.rsplitn(7, ' ');
    let mut numbers = [0u64; 6];
    for slot in numbers.iter_mut().rev() {
        let field = fields.next().unwrap_or("");
        *slot = field
            .parse()
            .map_err(|_| format!("{}: {} is not a number", quote(line), quote(field)))?;
    }
    let name = fields
        .next()
        .filter(|n| n.starts_with('/'))
        .ok_or_else(|| format!("{} has no mount point", quote(line)))?;
    let [block_size, blocks, blocks_free, blocks_avail, files, files_free] = numbers;
    Ok((
        name,
        FsUsage {
            block_size,
            blocks,
            blocks_free,
            blocks_avail,
            files,
            files_free,
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut problems = Problems::new();
        let mounts = parse(
            include_str!("../../../fixtures/pve-node/proc/mounts"),
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty());
        assert_eq!(mounts.len(), 28);
        let kept: Vec<String> = reported(mounts)
            .into_iter()
            .map(|m| format!("{} {} {}", m.mountpoint, m.fstype, m.device))
            .collect();
        assert_eq!(
            kept,
            [
                "/ zfs rpool/ROOT/pve-1",
                "/boot/efi vfat /dev/nvme0n1p2",
                "/rpool zfs rpool",
                "/rpool/ROOT zfs rpool/ROOT",
                "/rpool/data zfs rpool/data",
            ]
        );
    }

    #[test]
    fn escapes_and_overmounts() {
        let text = "/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n\
                    /dev/sdc1 /srv ext4 rw 0 0\n/dev/sdd1 /srv xfs rw 0 0\n";
        let kept = reported(parse(text, &mut Problems::new()).unwrap());
        assert_eq!(kept[0].mountpoint, "/mnt/my disk");
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].device, "/dev/sdd1");
    }

    #[test]
    fn guest_volumes() {
        assert!(is_guest_volume("subvol-101-disk-0"));
        assert!(is_guest_volume("basevol-9000-disk-12"));
        assert!(!is_guest_volume("subvol-x-disk-0"));
        assert!(!is_guest_volume("data"));
    }

    #[test]
    fn stat_f_capture_and_usage() {
        let captured = parse_stat_f(
            include_str!("../../../fixtures/pve-node/cmd/stat-f.txt"),
            &mut Problems::new(),
        )
        .unwrap();
        let root = captured["/"];
        let mount = Mount {
            device: "rpool/ROOT/pve-1".into(),
            mountpoint: "/".into(),
            fstype: "zfs".into(),
        };
        let fs = root.to_filesystem(&mount);
        assert_eq!(fs.size_bytes, Some(799_962_562_560));
        assert_eq!(fs.used_bytes, Some(5_106_958_336));
        assert_eq!(fs.avail_bytes, Some(794_855_604_224));
        assert_eq!(fs.inodes_used, Some(322_344));
        let efi = captured["/boot/efi"].to_filesystem(&mount);
        assert_eq!(efi.inodes_total, None);
        for bad in ["/ 1 2 3\n", "nothing 1 2 3 4 5 6\n"] {
            let mut problems = Problems::new();
            assert!(parse_stat_f(bad, &mut problems).unwrap().is_empty());
            assert_eq!(problems.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn real_statvfs_of_the_root() {
        let usage = SystemStatFs { root: "/".into() }.stat("/").unwrap();
        assert!(usage.block_size > 0 && usage.blocks > 0);
        assert!(SystemStatFs { root: "/".into() }
            .stat("/nonexistent-pm-test")
            .is_err());
    }

    #[test]
    fn broken() {
        assert!(parse("", &mut Problems::new()).is_err());
        for bad in ["garbage\n", "dev relative ext4 rw 0 0\n", "a b\n"] {
            let mut problems = Problems::new();
            let mounts = parse(&format!("{bad}/dev/sda1 / ext4 rw 0 0\n"), &mut problems).unwrap();
            assert_eq!(mounts.len(), 1, "{bad:?}");
            assert_eq!(problems.iter().next().unwrap().line, Some(1), "{bad:?}");
        }
    }
}
