//! `/proc/net/unix`: which containers run. LXC's monitor listens on the abstract socket
//! `@/var/lib/lxc/<vmid>/command` while a CT runs (pve-container `list_active_containers`).

use std::collections::HashSet;

use super::problem::{numbered_lines, quote, Problems};

/// The VMIDs with a `@/var/lib/lxc/<vmid>/command` socket. The socket lines are
/// `Num RefCount Protocol Flags Type St Inode [Path]` (kernel `net/unix/af_unix.c`
/// `unix_seq_show`); unnamed sockets have no path, other sockets are no container. A missing
/// `Num ...` heading is reported, and the lines are read anyway.
pub fn running_containers(text: &str, problems: &mut Problems) -> Result<HashSet<u32>, String> {
    let mut running = HashSet::new();
    for (number, line) in numbered_lines(text) {
        if number == 1 {
            if !line.starts_with("Num") {
                problems.line(1, format!("{} is not the kernel's heading", quote(line)));
            } else {
                continue;
            }
        }
        let Some(path) = line.split_ascii_whitespace().nth(7) else {
            continue;
        };
        if let Some(vmid) = path
            .strip_prefix("@/var/lib/lxc/")
            .and_then(|rest| rest.strip_suffix("/command"))
            .and_then(|vmid| vmid.parse().ok())
        {
            running.insert(vmid);
        }
    }
    if text.trim().is_empty() {
        return Err("file is empty".into());
    }
    Ok(running)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut problems = Problems::new();
        let running = running_containers(
            include_str!("../../../fixtures/pve-node/proc/net/unix"),
            &mut problems,
        )
        .unwrap();
        assert_eq!(running, HashSet::from([101]));
        assert!(problems.is_empty());
    }

    #[test]
    fn odd_lines() {
        assert!(running_containers("", &mut Problems::new()).is_err());
        let mut problems = Problems::new();
        assert_eq!(
            running_containers("garbage\n", &mut problems).unwrap(),
            HashSet::new()
        );
        assert_eq!(problems.len(), 1);
        // Other sockets and odd lines are no container.
        let text = "Num RefCount\n0: 2 0 0 1 1 5 @/var/lib/lxc/abc/command\nshort line\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 31401 @/var/lib/lxc/107/command\n";
        let mut problems = Problems::new();
        assert_eq!(
            running_containers(text, &mut problems).unwrap(),
            HashSet::from([107])
        );
        assert!(problems.is_empty());
    }
}
