//! The JSON status files of the Proxmox cluster filesystem: `/etc/pve/.vmlist` (which guest
//! lives on which node) and `/etc/pve/.members` (cluster name and nodes).
//!
//! pmxcfs writes them with its own whitespace; they are parsed as JSON, never by line.

use common::sample::{Cluster, ClusterNode, GuestType};
use serde_json::Value;

/// One guest of `.vmlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmListEntry {
    pub vmid: u32,
    pub node: String,
    pub kind: GuestType,
    /// Bumped by pmxcfs whenever the guest's config file changes.
    pub version: u64,
}

/// Parses `{"version": 17, "ids": {"100": {"node": "pve1", "type": "qemu", "version": 15}}}`
/// into entries sorted by VMID. Legacy `openvz` entries are skipped.
pub fn parse_vmlist(text: &str) -> Result<Vec<VmListEntry>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ids = value
        .get("ids")
        .and_then(Value::as_object)
        .ok_or("no \"ids\" object")?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, entry) in ids {
        let vmid: u32 = id
            .parse()
            .map_err(|_| format!("VMID {id:?} is not a number"))?;
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let node = field("node").ok_or_else(|| format!("guest {id} has no node"))?;
        let kind = match field("type") {
            Some("qemu") => GuestType::Qemu,
            Some("lxc") => GuestType::Lxc,
            Some(_) => continue,
            None => return Err(format!("guest {id} has no type")),
        };
        out.push(VmListEntry {
            vmid,
            node: node.to_owned(),
            kind,
            version: entry.get("version").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    out.sort_by_key(|e| e.vmid);
    Ok(out)
}

/// What `.members` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Members {
    /// This node's name as the cluster knows it.
    pub nodename: Option<String>,
    /// `None` on a standalone node (only `nodename` and `version`).
    pub cluster: Option<Cluster>,
}

/// Parses `{"nodename": "pve1", "version": 5, "cluster": {...}, "nodelist": {...}}`; nodes are
/// sorted by name.
pub fn parse_members(text: &str) -> Result<Members, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let nodename = object
        .get("nodename")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(cluster) = object.get("cluster") else {
        return Ok(Members {
            nodename,
            cluster: None,
        });
    };
    let name = cluster
        .get("name")
        .and_then(Value::as_str)
        .ok_or("cluster has no name")?;
    let quorate = cluster
        .get("quorate")
        .and_then(Value::as_u64)
        .map(|q| q != 0);
    let mut nodes = Vec::new();
    if let Some(list) = object.get("nodelist").and_then(Value::as_object) {
        for (node, info) in list {
            nodes.push(ClusterNode {
                name: node.clone(),
                id: info
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok()),
                online: info
                    .get("online")
                    .and_then(Value::as_u64)
                    .is_some_and(|o| o != 0),
                ip: info.get("ip").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Members {
        nodename,
        cluster: Some(Cluster {
            name: name.to_owned(),
            quorate,
            nodes,
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vmlist_fixture() {
        let list =
            parse_vmlist(include_str!("../../../fixtures/pve-node/etc/pve/.vmlist")).unwrap();
        let summary: Vec<(u32, &str, GuestType, u64)> = list
            .iter()
            .map(|e| (e.vmid, e.node.as_str(), e.kind, e.version))
            .collect();
        assert_eq!(
            summary,
            [
                (100, "pve1", GuestType::Qemu, 15),
                (101, "pve1", GuestType::Lxc, 12),
                (102, "pve1", GuestType::Qemu, 4),
                (200, "pve2", GuestType::Qemu, 9),
            ]
        );
    }

    #[test]
    fn members_fixture() {
        let members =
            parse_members(include_str!("../../../fixtures/pve-node/etc/pve/.members")).unwrap();
        assert_eq!(members.nodename.as_deref(), Some("pve1"));
        let cluster = members.cluster.unwrap();
        assert_eq!(cluster.name, "homelab");
        assert_eq!(cluster.quorate, Some(true));
        assert_eq!(
            cluster.nodes[1],
            ClusterNode {
                name: "pve2".into(),
                id: Some(2),
                online: true,
                ip: Some("192.168.1.12".into())
            }
        );
    }

    #[test]
    fn standalone_node_has_no_cluster() {
        let members = parse_members("{\n\"nodename\": \"pve\",\n\"version\": 0\n}\n").unwrap();
        assert_eq!(members.nodename.as_deref(), Some("pve"));
        assert_eq!(members.cluster, None);
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "{\"version\": 17, \"ids\": {\"100\": {\"node\": \"pve1\", \"ty",
            "{\"version\": 17}",
            "{\"ids\": {\"abc\": {\"node\": \"pve1\", \"type\": \"qemu\"}}}",
            "{\"ids\": {\"100\": {\"type\": \"qemu\"}}}",
        ] {
            assert!(parse_vmlist(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "[1,2]",
            "{\"cluster\": {\"nodes\": 2}}",
            "{\"nodename\": ",
        ] {
            assert!(parse_members(bad).is_err(), "{bad:?}");
        }
    }
}
