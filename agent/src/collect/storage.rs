//! Proxmox storages: `/etc/pve/storage.cfg` for what exists, `pvesm status` for usage.

use common::sample::Storage;

/// One section of `storage.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageConf {
    pub id: String,
    pub kind: String,
    pub content: Option<String>,
    /// `nodes` restriction; empty means every node.
    pub nodes: Vec<String>,
    pub disabled: bool,
    pub shared: bool,
}

/// Storage types that are shared between nodes whether or not `shared 1` is written.
const SHARED_TYPES: [&str; 9] = [
    "nfs",
    "cifs",
    "glusterfs",
    "cephfs",
    "rbd",
    "iscsi",
    "iscsidirect",
    "pbs",
    "zfs",
];

/// Parses `type: id` section headers followed by TAB-indented `key value` properties.
pub fn parse_config(text: &str) -> Result<Vec<StorageConf>, String> {
    let mut out: Vec<StorageConf> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            let (kind, id) = line
                .split_once(':')
                .map(|(k, i)| (k.trim(), i.trim()))
                .filter(|(k, i)| {
                    !k.is_empty()
                        && !i.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric())
                        && !i.contains(char::is_whitespace)
                })
                .ok_or_else(|| format!("line {line:?} is not a \"type: id\" section header"))?;
            out.push(StorageConf {
                id: id.to_owned(),
                kind: kind.to_owned(),
                shared: SHARED_TYPES.contains(&kind),
                ..StorageConf::default()
            });
            continue;
        }
        let current = out
            .last_mut()
            .ok_or_else(|| format!("property {trimmed:?} before any section"))?;
        let (key, value) = trimmed
            .split_once(char::is_whitespace)
            .map_or((trimmed, ""), |(k, v)| (k, v.trim()));
        match key {
            "content" => current.content = Some(value.to_owned()),
            "nodes" => {
                current.nodes = value
                    .split([',', ' ', ';'])
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "disable" => current.disabled = value.is_empty() || value == "1",
            "shared" => current.shared = value.is_empty() || value == "1",
            _ => {}
        }
    }
    Ok(out)
}

/// One row of `pvesm status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageStatus {
    pub id: String,
    pub kind: String,
    /// `active`, `inactive` or `disabled`.
    pub status: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
}

/// Parses `pvesm status`: a heading (`Total Used Available` before 2025, `Total (KiB)` ...
/// since), then `Name Type Status Total Used Available %` rows in KiB.
pub fn parse_pvesm_status(text: &str) -> Result<Vec<StorageStatus>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("no output")?;
    let words: Vec<&str> = header.split_ascii_whitespace().collect();
    if words.first() != Some(&"Name")
        || !["Total", "Used", "Available"]
            .iter()
            .all(|w| words.contains(w))
    {
        return Err(format!("heading {header:?} is not pvesm's"));
    }
    let mut out = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [id, kind, status, total, used, avail, _percent] = fields[..] else {
            return Err(format!("row {line:?} does not have 7 columns"));
        };
        let kib = |what: &str, v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .ok()
                .and_then(|k| k.checked_mul(1024))
                .ok_or_else(|| format!("{id}: {what} {v:?} is not a number of KiB"))
        };
        out.push(StorageStatus {
            id: id.to_owned(),
            kind: kind.to_owned(),
            status: status.to_owned(),
            total_bytes: kib("total", total)?,
            used_bytes: kib("used", used)?,
            avail_bytes: kib("available", avail)?,
        });
    }
    Ok(out)
}

/// The storages usable on `node`, with usage where `pvesm status` gave it (`status` is `None`
/// when the command could not be run). Usage of inactive or disabled storages is left out:
/// pvesm prints zeros for them.
pub fn merge(
    configs: &[StorageConf],
    node: Option<&str>,
    status: Option<&[StorageStatus]>,
) -> Vec<Storage> {
    configs
        .iter()
        .filter(|c| c.nodes.is_empty() || node.is_some_and(|n| c.nodes.iter().any(|x| x == n)))
        .map(|c| {
            let row = status.and_then(|rows| rows.iter().find(|r| r.id == c.id));
            let active = match (status, row) {
                (None, _) => None,
                (Some(_), Some(r)) => Some(r.status == "active"),
                (Some(_), None) => Some(false),
            };
            let usage = row.filter(|r| r.status == "active");
            Storage {
                id: c.id.clone(),
                kind: c.kind.clone(),
                content: c.content.clone(),
                shared: c.shared,
                enabled: !c.disabled,
                active,
                total_bytes: usage.map(|r| r.total_bytes),
                used_bytes: usage.map(|r| r.used_bytes),
                avail_bytes: usage.map(|r| r.avail_bytes),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_fixture() {
        let configs = parse_config(include_str!(
            "../../../fixtures/pve-node/etc/pve/storage.cfg"
        ))
        .unwrap();
        let summary: Vec<(&str, &str, Option<&str>, bool)> = configs
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.kind.as_str(),
                    c.content.as_deref(),
                    c.shared,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("local", "dir", Some("iso,vztmpl,backup"), false),
                ("local-zfs", "zfspool", Some("images,rootdir"), false),
                ("nas-iso", "nfs", Some("iso,vztmpl"), true),
            ]
        );
    }

    #[test]
    fn both_pvesm_headings() {
        let old = parse_pvesm_status(include_str!(
            "../../../fixtures/pve-node/cmd/pvesm-status.txt"
        ))
        .unwrap();
        assert_eq!(old.len(), 3);
        assert_eq!(
            old[1],
            StorageStatus {
                id: "local-zfs".into(),
                kind: "zfspool".into(),
                status: "active".into(),
                total_bytes: 950_439_140 * 1024,
                used_bytes: 174_212_788 * 1024,
                avail_bytes: 776_226_352 * 1024,
            }
        );
        let new = parse_pvesm_status(include_str!(
            "../../../fixtures/pve-node/cmd/pvesm-status.pve9-kib-header.txt"
        ))
        .unwrap();
        assert_eq!(new.len(), 5);
        assert_eq!(new[..2], old[..2]);
        assert_eq!(new[2].status, "inactive");
        assert_eq!(new[4].status, "disabled");
    }

    #[test]
    fn merge_restricts_to_this_node_and_hides_zero_usage() {
        let configs = parse_config(
            "dir: local\n\tpath /var/lib/vz\n\ndir: other\n\tpath /x\n\tnodes pve2,pve3\n\n\
             pbs: backup\n\tdisable\n\tcontent backup\n",
        )
        .unwrap();
        let status = parse_pvesm_status(
            "Name Type Status Total (KiB) Used (KiB) Available (KiB) %\n\
             local dir active 100 40 60 40.00%\nbackup pbs disabled 0 0 0 N/A\n",
        )
        .unwrap();
        let merged = merge(&configs, Some("pve1"), Some(&status));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].used_bytes, Some(40 * 1024));
        assert_eq!(merged[0].active, Some(true));
        assert!(!merged[1].enabled && merged[1].shared);
        assert_eq!(
            (merged[1].active, merged[1].total_bytes),
            (Some(false), None)
        );
        let without_pvesm = merge(&configs, Some("pve1"), None);
        assert_eq!(without_pvesm[0].active, None);
    }

    #[test]
    fn broken() {
        for bad in ["\tpath /x\n", "garbage line\n", "dir:\n"] {
            assert!(parse_config(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "garbage\n",
            "Name Type Status Total Used Available %\nlocal dir active 1 2\n",
            "Name Type Status Total Used Available %\nlocal dir active x 2 3 1%\n",
        ] {
            assert!(parse_pvesm_status(bad).is_err(), "{bad:?}");
        }
    }
}
