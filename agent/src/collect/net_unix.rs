//! `/proc/net/unix`: which containers run. LXC's monitor listens on the abstract socket
//! `@/var/lib/lxc/<vmid>/command` while a CT runs (pve-container `list_active_containers`).

use std::collections::HashSet;

/// The VMIDs with a `@/var/lib/lxc/<vmid>/command` socket.
pub fn running_containers(text: &str) -> Result<HashSet<u32>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(header) if header.starts_with("Num") => {}
        _ => return Err("no \"Num RefCount ...\" header".into()),
    }
    let mut running = HashSet::new();
    for line in lines {
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
    Ok(running)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let running =
            running_containers(include_str!("../../../fixtures/pve-node/proc/net/unix")).unwrap();
        assert_eq!(running, HashSet::from([101]));
    }

    #[test]
    fn broken() {
        assert!(running_containers("").is_err());
        assert!(running_containers("garbage\n").is_err());
        // Other sockets and odd lines are no container.
        let text = "Num RefCount\n0: 2 0 0 1 1 5 @/var/lib/lxc/abc/command\nshort line\n";
        assert_eq!(running_containers(text).unwrap(), HashSet::new());
    }
}
