//! The JSON status files of the Proxmox cluster filesystem: `/etc/pve/.vmlist` (which guest
//! lives on which node) and `/etc/pve/.members` (cluster name and nodes).
//!
//! pmxcfs writes them as JSON with one guest or node per line (pve-cluster
//! `src/pmxcfs/status.c`, `cfs_create_vmlist_msg` and `cfs_create_memberlist_msg`). They are
//! parsed as JSON; when the document does not parse (cut short, a stray byte), that is
//! reported and every line that still holds a whole entry is read on its own, so one damaged
//! entry does not hide the others.

use common::sample::{Cluster, ClusterNode, GuestType};
use serde_json::Value;

use super::problem::{numbered_lines, quote, Problems};

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
/// into entries sorted by VMID. A cluster without guests has no `ids` at all. Legacy `openvz`
/// entries are skipped; an entry without a numeric VMID, a node or a type is skipped and
/// reported. Fails only on a file with no entry to read and no `version`.
pub fn parse_vmlist(text: &str, problems: &mut Problems) -> Result<Vec<VmListEntry>, String> {
    let mut out = Vec::new();
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let Some(object) = value.as_object() else {
                return Err("not a JSON object".into());
            };
            match object.get("ids") {
                Some(Value::Object(ids)) => {
                    for (id, entry) in ids {
                        if let Some(entry) = vmlist_entry(id, entry).unwrap_or_else(|message| {
                            problems.file(message);
                            None
                        }) {
                            out.push(entry);
                        }
                    }
                }
                Some(_) => problems.file("\"ids\" is not an object"),
                None if object.contains_key("version") => {}
                None => return Err("no \"version\" or \"ids\"".into()),
            }
        }
        Err(e) => {
            let mut found = Problems::new();
            found.file(format!("not JSON ({e}): read line by line"));
            let mut version = false;
            for (number, line) in numbered_lines(text) {
                version |= line.trim_start().starts_with("\"version\":");
                let entry = match keyed_object(line) {
                    Some(("ids", _)) | None => continue,
                    Some((id, Some(entry))) => vmlist_entry(id, &entry),
                    Some((_, None)) => Err(format!("entry {} does not parse", quote(line))),
                };
                match entry {
                    Ok(Some(entry)) => out.push(entry),
                    Ok(None) => {}
                    Err(message) => found.line(number, message),
                }
            }
            if out.is_empty() && !version {
                return Err(format!("not JSON: {e}"));
            }
            problems.extend(found);
        }
    }
    out.sort_by_key(|e| e.vmid);
    Ok(out)
}

/// One `"100": { "node": "pve1", "type": "qemu", "version": 15 }`; `None` for a legacy type.
fn vmlist_entry(id: &str, entry: &Value) -> Result<Option<VmListEntry>, String> {
    let vmid: u32 = id
        .parse()
        .map_err(|_| format!("VMID {} is not a number", quote(id)))?;
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let node = field("node").ok_or_else(|| format!("guest {vmid} has no node"))?;
    let kind = match field("type") {
        Some("qemu") => GuestType::Qemu,
        Some("lxc") => GuestType::Lxc,
        Some(_) => return Ok(None),
        None => return Err(format!("guest {vmid} has no type")),
    };
    Ok(Some(VmListEntry {
        vmid,
        node: node.to_owned(),
        kind,
        version: entry.get("version").and_then(Value::as_u64).unwrap_or(0),
    }))
}

/// A line `"key": { ... }` (with whatever `,` or `}` pmxcfs put after it): `None` when the line
/// is not one, else the key and the object (`None` when it is not whole).
fn keyed_object(line: &str) -> Option<(&str, Option<Value>)> {
    let rest = line.trim_start().strip_prefix('"')?;
    let (key, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if !rest.starts_with('{') {
        return None;
    }
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    match values.next() {
        Some(Ok(value @ Value::Object(_))) => Some((key, Some(value))),
        _ => Some((key, None)),
    }
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
/// sorted by name. A cluster without a name is reported and left out.
pub fn parse_members(text: &str, problems: &mut Problems) -> Result<Members, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let object = value.as_object().ok_or("not a JSON object")?;
            let nodes = object
                .get("nodelist")
                .and_then(Value::as_object)
                .map(|list| {
                    list.iter()
                        .map(|(name, info)| cluster_node(name, info))
                        .collect()
                })
                .unwrap_or_default();
            Ok(members(
                object.get("nodename").and_then(Value::as_str),
                object.get("cluster"),
                nodes,
                problems,
            ))
        }
        Err(e) => {
            let mut nodename = None;
            let mut cluster = None;
            let mut nodes = Vec::new();
            let mut in_nodelist = false;
            for (_, line) in numbered_lines(text) {
                let trimmed = line.trim_start();
                if let Some(rest) = trimmed.strip_prefix("\"nodename\":") {
                    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                    if let Some(Ok(Value::String(name))) = values.next() {
                        nodename = Some(name);
                    }
                } else if trimmed.starts_with("\"nodelist\":") {
                    in_nodelist = true;
                } else if let Some((key, Some(value))) = keyed_object(line) {
                    if in_nodelist {
                        nodes.push(cluster_node(key, &value));
                    } else if key == "cluster" {
                        cluster = Some(value);
                    }
                }
            }
            if nodename.is_none() && cluster.is_none() {
                return Err(format!("not JSON: {e}"));
            }
            problems.file(format!("not JSON ({e}): read line by line"));
            Ok(members(
                nodename.as_deref(),
                cluster.as_ref(),
                nodes,
                problems,
            ))
        }
    }
}

fn cluster_node(name: &str, info: &Value) -> ClusterNode {
    ClusterNode {
        name: name.to_owned(),
        id: info
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok()),
        online: info
            .get("online")
            .and_then(Value::as_u64)
            .is_some_and(|o| o != 0),
        ip: info.get("ip").and_then(Value::as_str).map(str::to_owned),
    }
}

fn members(
    nodename: Option<&str>,
    cluster: Option<&Value>,
    mut nodes: Vec<ClusterNode>,
    problems: &mut Problems,
) -> Members {
    let nodename = nodename.map(str::to_owned);
    let Some(cluster) = cluster else {
        return Members {
            nodename,
            cluster: None,
        };
    };
    let Some(name) = cluster.get("name").and_then(Value::as_str) else {
        problems.file("cluster has no name");
        return Members {
            nodename,
            cluster: None,
        };
    };
    let quorate = cluster
        .get("quorate")
        .and_then(Value::as_u64)
        .map(|q| q != 0);
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Members {
        nodename,
        cluster: Some(Cluster {
            name: name.to_owned(),
            quorate,
            nodes,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const VMLIST: &str = include_str!("../../../fixtures/pve-node/etc/pve/.vmlist");
    const MEMBERS: &str = include_str!("../../../fixtures/pve-node/etc/pve/.members");

    fn summary(list: &[VmListEntry]) -> Vec<(u32, &str, GuestType, u64)> {
        list.iter()
            .map(|e| (e.vmid, e.node.as_str(), e.kind, e.version))
            .collect()
    }

    #[test]
    fn vmlist_fixture() {
        let mut problems = Problems::new();
        let list = parse_vmlist(VMLIST, &mut problems).unwrap();
        assert!(problems.is_empty());
        assert_eq!(
            summary(&list),
            [
                (100, "pve1", GuestType::Qemu, 15),
                (101, "pve1", GuestType::Lxc, 12),
                (102, "pve1", GuestType::Qemu, 4),
                (200, "pve2", GuestType::Qemu, 9),
            ]
        );
    }

    #[test]
    fn a_cluster_without_guests_has_no_ids() {
        // pve-cluster `cfs_create_vmlist_msg` with an empty list.
        let mut problems = Problems::new();
        let list = parse_vmlist("{\n\"version\": 3\n\n}\n", &mut problems).unwrap();
        assert_eq!((list.len(), problems.len()), (0, 0));
    }

    #[test]
    fn a_cut_or_damaged_vmlist_keeps_the_whole_entries() {
        let cut = &VMLIST[..VMLIST.find("\"200\"").unwrap() + 12];
        let mut problems = Problems::new();
        let list = parse_vmlist(cut, &mut problems).unwrap();
        let vmids: Vec<u32> = list.iter().map(|e| e.vmid).collect();
        assert_eq!(vmids, [100, 101]);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [None, Some(6)]);
        assert!(problems
            .iter()
            .next()
            .unwrap()
            .message
            .starts_with("not JSON"));

        let damaged = VMLIST
            .replace(
                "\"101\": { \"node\": \"pve1\", \"type\": \"lxc\"",
                "\"101\": { \"node\" \u{7}",
            )
            .replace("\"102\"", "\"1o2\"");
        let mut problems = Problems::new();
        let list = parse_vmlist(&damaged, &mut problems).unwrap();
        let vmids: Vec<u32> = list.iter().map(|e| e.vmid).collect();
        assert_eq!(vmids, [100, 200]);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [None, Some(4), Some(7)]);
        let last = problems.iter().last().unwrap().to_string();
        assert_eq!(last, "line 7: VMID \"1o2\" is not a number");
    }

    #[test]
    fn bad_entries_cost_only_themselves() {
        let text = "{\"version\": 1, \"ids\": {\"abc\": {\"node\": \"pve1\", \"type\": \"qemu\"}, \
                    \"101\": {\"type\": \"qemu\"}, \"102\": {\"node\": \"pve1\"}, \
                    \"103\": {\"node\": \"pve1\", \"type\": \"openvz\"}, \
                    \"104\": {\"node\": \"pve1\", \"type\": \"lxc\"}}}";
        let mut problems = Problems::new();
        let list = parse_vmlist(text, &mut problems).unwrap();
        assert_eq!(summary(&list), [(104, "pve1", GuestType::Lxc, 0)]);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "VMID \"abc\" is not a number",
                "guest 101 has no node",
                "guest 102 has no type"
            ]
        );
    }

    #[test]
    fn members_fixture() {
        let mut problems = Problems::new();
        let members = parse_members(MEMBERS, &mut problems).unwrap();
        assert!(problems.is_empty());
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
    fn a_cut_members_file_keeps_what_came_before() {
        let cut = &MEMBERS[..MEMBERS.find("\"pve2\"").unwrap()];
        let mut problems = Problems::new();
        let members = parse_members(cut, &mut problems).unwrap();
        assert_eq!(members.nodename.as_deref(), Some("pve1"));
        let cluster = members.cluster.unwrap();
        assert_eq!(cluster.name, "homelab");
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["pve1"]);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn standalone_node_has_no_cluster() {
        let members = parse_members(
            "{\n\"nodename\": \"pve\",\n\"version\": 0\n}\n",
            &mut Problems::new(),
        )
        .unwrap();
        assert_eq!(members.nodename.as_deref(), Some("pve"));
        assert_eq!(members.cluster, None);
    }

    #[test]
    fn broken() {
        for bad in ["", "[1,2]", "{\"other\": 1}", "<html>not json</html>"] {
            assert!(parse_vmlist(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
        for bad in ["", "[1,2]", "{\"nodename\": ", "<html>not json</html>"] {
            assert!(parse_members(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
        let mut problems = Problems::new();
        let members = parse_members("{\"cluster\": {\"nodes\": 2}}", &mut problems).unwrap();
        assert_eq!((members.cluster, problems.len()), (None, 1));
    }
}
