//! Proxmox storages: `/etc/pve/storage.cfg` for what exists, `pvesm status` for usage.

use common::sample::Storage;

use super::problem::{numbered_lines, parse_boolean, quote, Problems};

/// One section of `storage.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageConf {
    pub id: String,
    pub kind: String,
    pub content: Option<String>,
    pub path: Option<String>,
    /// `pool` of a `zfspool` storage: the dataset (`rpool/data`) its volumes live under.
    pub pool: Option<String>,
    /// `nodes` restriction; empty means every node.
    pub nodes: Vec<String>,
    pub disabled: bool,
    pub shared: bool,
}

/// Storage types that are shared between nodes whatever `shared` says: pve-storage
/// `PVE::Storage::Plugin::@SHARED_STORAGE`, which `parse_config` applies after reading each
/// section (`$d->{shared} = 1 if grep { $_ eq $type } @SHARED_STORAGE`), so `shared 0` cannot
/// un-share them.
pub const SHARED_TYPES: [&str; 10] = [
    "iscsi",
    "nfs",
    "cifs",
    "rbd",
    "cephfs",
    "iscsidirect",
    "glusterfs",
    "zfs",
    "drbd",
    "pbs",
];

/// Parses `storage.cfg` the way pve-common `PVE::SectionConfig::parse_config` does:
///
/// - `#` lines (after optional blanks) are skipped anywhere;
/// - a section starts with `type: id` (`^(\S+):\s*(\S+)\s*$`; the type is lower-cased and the id
///   must be a storage id, `^[a-z][a-z0-9\-_.]*[a-z0-9]$`, else the whole section is skipped);
/// - its properties are the following `<blank>key [value]` lines, up to the first empty line;
///   a line in a section that is not one (even a `type: id` line without the empty line
///   before it) is ignored, as is a line outside any section;
/// - booleans (`disable`, `shared`) are written `1`/`0` (or `on`/`yes`/`true`...); a bare key
///   means 1; a repeated property keeps its first value.
///
/// Every line ignored is reported, and the other sections are read.
pub fn parse_config(text: &str, problems: &mut Problems) -> Result<Vec<StorageConf>, String> {
    let mut out: Vec<StorageConf> = Vec::new();
    // The section being read: its index in `out` (`None` when it is skipped), and the keys
    // seen so far.
    let mut section: Option<(Option<usize>, Vec<String>)> = None;
    for (number, line) in numbered_lines(text) {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.is_empty() {
            section = None;
            continue;
        }
        let Some((current, seen)) = section.as_mut() else {
            match parse_header(line) {
                Ok(header) => {
                    out.push(header);
                    section = Some((Some(out.len() - 1), Vec::new()));
                }
                Err(SkipSection(message)) => {
                    problems.line(number, message);
                    section = Some((None, Vec::new()));
                }
                Err(NotHeader) => problems.line(
                    number,
                    format!(
                        "{} is not a \"type: id\" section header: ignored",
                        quote(line)
                    ),
                ),
            }
            continue;
        };
        let Some(index) = *current else { continue };
        let Some((key, value)) = parse_property(line) else {
            problems.line(
                number,
                format!(
                    "{} is not a property of {}: ignored",
                    quote(line),
                    out[index].id
                ),
            );
            continue;
        };
        if seen.iter().any(|k| k == key) {
            problems.line(
                number,
                format!("{}: duplicate property {key}", out[index].id),
            );
            continue;
        }
        seen.push(key.to_owned());
        let conf = &mut out[index];
        match key {
            "content" => conf.content = value.map(str::to_owned),
            "path" => conf.path = value.map(str::to_owned),
            "pool" if conf.kind == "zfspool" => conf.pool = value.map(str::to_owned),
            "nodes" => {
                conf.nodes = value
                    .unwrap_or("")
                    .split([',', ' ', ';'])
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "disable" | "shared" => match value.map_or(Some(true), parse_boolean) {
                None => problems.line(
                    number,
                    format!(
                        "{}: {key} {} is not a boolean",
                        conf.id,
                        quote(value.unwrap_or(""))
                    ),
                ),
                Some(flag) if key == "disable" => conf.disabled = flag,
                Some(flag) => {
                    conf.shared = flag || SHARED_TYPES.contains(&conf.kind.as_str());
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

/// Why a line outside a section does not start one.
enum BadHeader {
    /// Not `type: id` at all: the line is ignored.
    NotHeader,
    /// A header whose section Proxmox skips, with why.
    SkipSection(String),
}
use BadHeader::{NotHeader, SkipSection};

/// `dir: local` → a section of that type and id, shared when its type always is.
fn parse_header(line: &str) -> Result<StorageConf, BadHeader> {
    let header = line
        .split_once(':')
        .map(|(kind, id)| (kind, id.trim()))
        .filter(|(kind, id)| {
            !kind.is_empty()
                && !kind.contains(char::is_whitespace)
                && !id.is_empty()
                && !id.contains(char::is_whitespace)
        });
    let Some((kind, id)) = header else {
        return Err(NotHeader);
    };
    if !is_storage_id(id) {
        return Err(SkipSection(format!(
            "storage id {} is not valid: section skipped",
            quote(id)
        )));
    }
    let kind = kind.to_ascii_lowercase();
    Ok(StorageConf {
        id: id.to_owned(),
        shared: SHARED_TYPES.contains(&kind.as_str()),
        kind,
        ..StorageConf::default()
    })
}

/// pve-common `PVE::JSONSchema::parse_storage_id`: `^[a-z][a-z0-9\-\_\.]*[a-z0-9]$`, any case.
fn is_storage_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

/// `<blank>key [value]` (`^\s+(\S+)(\s+(.*\S))?\s*$`): the key and the trimmed value, if any.
fn parse_property(line: &str) -> Option<(&str, Option<&str>)> {
    if !line.starts_with(char::is_whitespace) {
        return None;
    }
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(match trimmed.split_once(char::is_whitespace) {
        Some((key, value)) => (key, Some(value.trim())),
        None => (trimmed, None),
    })
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
/// since), then `Name Type Status Total Used Available %` rows in KiB (pve-storage
/// `PVE::CLI::pvesm` `$print_status`). A missing heading or a row that does not read is
/// reported, and the other rows are read; columns after the 7th are ignored.
pub fn parse_pvesm_status(
    text: &str,
    problems: &mut Problems,
) -> Result<Vec<StorageStatus>, String> {
    let mut out = Vec::new();
    let mut first = true;
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        if std::mem::take(&mut first) {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            if words.first() == Some(&"Name")
                && ["Total", "Used", "Available"]
                    .iter()
                    .all(|w| words.contains(w))
            {
                continue;
            }
            problems.line(number, format!("heading {} is not pvesm's", quote(line)));
        }
        match parse_pvesm_row(line) {
            Ok(row) => out.push(row),
            Err(message) => problems.line(number, message),
        }
    }
    if first {
        return Err("no output".into());
    }
    Ok(out)
}

fn parse_pvesm_row(line: &str) -> Result<StorageStatus, String> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [id, kind, status, total, used, avail, ..] = fields[..] else {
        return Err(format!("row {} does not have 7 columns", quote(line)));
    };
    let kib = |what: &str, v: &str| -> Result<u64, String> {
        v.parse::<u64>()
            .ok()
            .and_then(|k| k.checked_mul(1024))
            .ok_or_else(|| format!("{id}: {what} {} is not a number of KiB", quote(v)))
    };
    Ok(StorageStatus {
        id: id.to_owned(),
        kind: kind.to_owned(),
        status: status.to_owned(),
        total_bytes: kib("total", total)?,
        used_bytes: kib("used", used)?,
        avail_bytes: kib("available", avail)?,
    })
}

/// What pve-storage `parse_config` makes of a missing or odd `local`: "make sure we have a
/// reasonable 'local:' storage" — a `dir` at `/var/lib/vz` with every content type, first,
/// on every node (its `nodes` are dropped).
fn with_local(configs: &[StorageConf]) -> Vec<StorageConf> {
    let mut out = configs.to_vec();
    let reasonable =
        |c: &StorageConf| c.kind == "dir" && c.path.as_deref().map_or(true, |p| p == "/var/lib/vz");
    match out.iter().position(|c| c.id == "local") {
        Some(i) if reasonable(&out[i]) => out[i].nodes.clear(),
        found => {
            if let Some(i) = found {
                out.remove(i);
            }
            out.insert(
                0,
                StorageConf {
                    id: "local".into(),
                    kind: "dir".into(),
                    content: Some("backup,images,iso,rootdir,snippets,vztmpl".into()),
                    path: Some("/var/lib/vz".into()),
                    ..StorageConf::default()
                },
            );
        }
    }
    out
}

/// The storages usable on `node`, with usage where `pvesm status` gave it (`status` is `None`
/// when the command could not be run). Usage of inactive or disabled storages is left out:
/// pvesm prints zeros for them.
pub fn merge(
    configs: &[StorageConf],
    node: Option<&str>,
    status: Option<&[StorageStatus]>,
) -> Vec<Storage> {
    with_local(configs)
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
                pool: c.pool.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(text: &str) -> (Vec<StorageConf>, Vec<String>) {
        let mut problems = Problems::new();
        let configs = parse_config(text, &mut problems).unwrap();
        (configs, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn config_fixture() {
        let (configs, problems) = config(include_str!(
            "../../../fixtures/pve-node/etc/pve/storage.cfg"
        ));
        assert!(problems.is_empty(), "{problems:?}");
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
    fn always_shared_types_match_pve_storage_and_shared_0_cannot_unshare_them() {
        let mut text = String::new();
        for kind in SHARED_TYPES {
            text.push_str(&format!("{kind}: s-{kind}\n\tshared 0\n\n"));
        }
        text.push_str("dir: nfs-mounted\n\tpath /mnt/nfs\n\tshared 1\n\n");
        text.push_str("lvm: local-lvm2\n\tvgname pve\n\tshared yes\n\n");
        text.push_str("zfspool: tank\n\tpool tank\n\tshared 0\n");
        let (configs, problems) = config(&text);
        assert!(problems.is_empty(), "{problems:?}");
        for c in &configs[..SHARED_TYPES.len()] {
            assert!(c.shared, "{} must stay shared", c.kind);
        }
        let rest: Vec<(&str, bool)> = configs[SHARED_TYPES.len()..]
            .iter()
            .map(|c| (c.id.as_str(), c.shared))
            .collect();
        assert_eq!(
            rest,
            [("nfs-mounted", true), ("local-lvm2", true), ("tank", false)]
        );
        assert!(SHARED_TYPES.contains(&"drbd"));
        // A zfspool's dataset names the pool it lives on; `pool` of another type (the
        // `zfs` over iSCSI plugin's remote pool) is not a local pool.
        let tank = configs.iter().find(|c| c.id == "tank").unwrap();
        assert_eq!(tank.pool.as_deref(), Some("tank"));
        let zfs = configs.iter().find(|c| c.kind == "zfs").unwrap();
        assert_eq!(zfs.pool, None);
        let merged = merge(&configs, None, None);
        let tank = merged.iter().find(|s| s.id == "tank").unwrap();
        assert_eq!(tank.zfs_pool(), Some("tank"));
    }

    #[test]
    fn sections_are_read_as_section_config_reads_them() {
        let text = "# storage.cfg\n\
                    dir: local\n\
                    \tpath /var/lib/vz\n\
                    \t# a comment inside\n\
                    \tcontent iso\n\
                    \tcontent backup\n\
                    \tdisable maybe\n\
                    \n\
                    \tpath /stray\n\
                    Dir: Backup2\n\
                    \tdisable\n\
                    nfs: glued-on\n\
                    \tshared\n\
                    \n\
                    dir: 1bad\n\
                    \tpath /x\n\
                    \n\
                    garbage line\n\
                    pbs: offsite\n\
                    \tdisable 1\n";
        let (configs, problems) = config(text);
        let summary: Vec<(&str, &str, Option<&str>, bool)> = configs
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.kind.as_str(),
                    c.content.as_deref(),
                    c.disabled,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("local", "dir", Some("iso"), false),
                ("Backup2", "dir", None, true),
                ("offsite", "pbs", None, true),
            ]
        );
        assert_eq!(
            problems,
            [
                "line 6: local: duplicate property content",
                "line 7: local: disable \"maybe\" is not a boolean",
                "line 9: \"\\tpath /stray\" is not a \"type: id\" section header: ignored",
                "line 12: \"nfs: glued-on\" is not a property of Backup2: ignored",
                "line 15: storage id \"1bad\" is not valid: section skipped",
                "line 18: \"garbage line\" is not a \"type: id\" section header: ignored",
            ]
        );
        // `shared` of the glued-on section went to Backup2 (a dir), as Proxmox reads it.
        assert!(configs[1].shared);
    }

    #[test]
    fn both_pvesm_headings() {
        let mut problems = Problems::new();
        let old = parse_pvesm_status(
            include_str!("../../../fixtures/pve-node/cmd/pvesm-status.txt"),
            &mut problems,
        )
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
        let new = parse_pvesm_status(
            include_str!("../../../fixtures/pve-node/cmd/pvesm-status.pve9-kib-header.txt"),
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty());
        assert_eq!(new.len(), 5);
        assert_eq!(new[..2], old[..2]);
        assert_eq!(new[2].status, "inactive");
        assert_eq!(new[4].status, "disabled");
    }

    fn status(text: &str) -> Vec<StorageStatus> {
        parse_pvesm_status(text, &mut Problems::new()).unwrap()
    }

    #[test]
    fn merge_restricts_to_this_node_and_hides_zero_usage() {
        let (configs, _) = config(
            "dir: local\n\tpath /var/lib/vz\n\ndir: other\n\tpath /x\n\tnodes pve2,pve3\n\n\
             pbs: backup\n\tdisable\n\tcontent backup\n",
        );
        let status = status(
            "Name Type Status Total (KiB) Used (KiB) Available (KiB) %\n\
             local dir active 100 40 60 40.00%\nbackup pbs disabled 0 0 0 N/A\n",
        );
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
    fn local_is_always_there_as_pve_storage_makes_it() {
        // No `local` at all: pve-storage adds the default one, first.
        let (configs, _) = config("lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n");
        let merged = merge(&configs, Some("pve1"), None);
        let ids: Vec<(&str, &str)> = merged
            .iter()
            .map(|s| (s.id.as_str(), s.kind.as_str()))
            .collect();
        assert_eq!(ids, [("local", "dir"), ("local-lvm", "lvmthin")]);
        assert_eq!(
            merged[0].content.as_deref(),
            Some("backup,images,iso,rootdir,snippets,vztmpl")
        );
        // A `local` that is not a dir at /var/lib/vz is replaced; node restrictions dropped.
        let (configs, _) = config("zfspool: local\n\tpool rpool\n");
        assert_eq!(merge(&configs, None, None)[0].kind, "dir");
        let (configs, _) = config("dir: local\n\tpath /var/lib/vz\n\tnodes pve2\n\tcontent iso\n");
        let merged = merge(&configs, Some("pve1"), None);
        assert_eq!(merged[0].content.as_deref(), Some("iso"));
    }

    #[test]
    fn pvesm_rows_that_do_not_read_cost_only_themselves() {
        let mut problems = Problems::new();
        let rows = parse_pvesm_status(
            "garbage\nlocal dir active 1 2\nnfs1 nfs active x 2 3 1%\nzfs1 zfspool active 1 2 3 4% extra\n",
            &mut problems,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "zfs1");
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(1), Some(2), Some(3)]);
        assert!(parse_pvesm_status("", &mut problems).is_err());
    }
}
