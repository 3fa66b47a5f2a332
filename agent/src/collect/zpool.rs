//! ZFS pools: `zpool list -HpPLo name,size,alloc,free,frag,dedup,health` (the command Proxmox
//! runs) and `zpool status -x` for the details of unhealthy pools.

use std::collections::HashMap;

use common::sample::ZfsPool;

/// The arguments of the `zpool list` we run.
pub const LIST_ARGS: [&str; 3] = ["list", "-HpPLo", super::command::ZPOOL_PVE_COLUMNS];
/// The arguments of the `zpool status` we run.
pub const STATUS_ARGS: [&str; 2] = ["status", "-x"];

/// Parses the TAB-separated lines (raw bytes with `-p`; `-` for unset values; frag and dedup may
/// carry `%` / `x` when `-p` is missing).
pub fn parse_list(text: &str) -> Result<Vec<ZfsPool>, String> {
    let mut pools = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, size, alloc, free, frag, dedup, health] = fields[..] else {
            return Err(format!(
                "line {line:?} has {} TAB-separated fields, expected 7",
                fields.len()
            ));
        };
        let bytes = |what: &str, v: &str| -> Result<Option<u64>, String> {
            if v == "-" {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| format!("{name}: {what} {v:?} is not a byte count"))
        };
        let ratio = |what: &str, v: &str, suffix: char| -> Result<Option<f64>, String> {
            if v == "-" {
                return Ok(None);
            }
            v.trim_end_matches(suffix)
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Some)
                .ok_or_else(|| format!("{name}: {what} {v:?} is not a number"))
        };
        if name.is_empty() || health.is_empty() || !health.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("line {line:?} has no pool name or health"));
        }
        pools.push(ZfsPool {
            name: name.to_owned(),
            health: health.into(),
            size_bytes: bytes("size", size)?,
            alloc_bytes: bytes("alloc", alloc)?,
            free_bytes: bytes("free", free)?,
            frag_percent: ratio("frag", frag, '%')?,
            dedup_ratio: ratio("dedup", dedup, 'x')?,
            status_details: None,
        });
    }
    Ok(pools)
}

/// Splits `zpool status -x` into one block of text per pool it mentions (`  pool: <name>`
/// starts a block). `all pools are healthy` and `no pools available` give none.
pub fn parse_status(text: &str) -> HashMap<String, String> {
    let mut blocks: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some(name) = line.trim_start().strip_prefix("pool: ") {
            if let Some((pool, lines)) = current.take() {
                blocks.insert(pool, lines.join("\n").trim_end().to_owned());
            }
            current = Some((name.trim().to_owned(), vec![line]));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((pool, lines)) = current {
        blocks.insert(pool, lines.join("\n").trim_end().to_owned());
    }
    blocks
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn list_fixture() {
        let pools = parse_list(include_str!(
            "../../../fixtures/pve-node/cmd/zpool-list-HpPLo-pve-columns.txt"
        ))
        .unwrap();
        assert_eq!(
            pools,
            [ZfsPool {
                name: "rpool".into(),
                health: "ONLINE".into(),
                size_bytes: Some(991_600_574_464),
                alloc_bytes: Some(187_246_247_936),
                free_bytes: Some(804_354_326_528),
                frag_percent: Some(7.0),
                dedup_ratio: Some(1.0),
                status_details: None,
            }]
        );
    }

    #[test]
    fn list_without_p_and_unset_values() {
        let pools = parse_list("tank\t-\t-\t-\t12%\t1.50x\tFAULTED\n").unwrap();
        assert_eq!(pools[0].size_bytes, None);
        assert_eq!(pools[0].frag_percent, Some(12.0));
        assert_eq!(pools[0].dedup_ratio, Some(1.5));
        assert_eq!(parse_list("").unwrap(), []);
    }

    #[test]
    fn status_fixtures() {
        let healthy = parse_status(include_str!(
            "../../../fixtures/pve-node/cmd/zpool-status-x.txt"
        ));
        assert!(healthy.is_empty());
        let degraded = parse_status(include_str!(
            "../../../fixtures/pve-node/cmd/zpool-status-x.degraded.txt"
        ));
        let tank = &degraded["tank"];
        assert!(tank.starts_with("  pool: tank\n state: DEGRADED\n"));
        assert!(tank.ends_with("errors: No known data errors"));
        assert!(tank.contains("UNAVAIL      0     0     0  was /dev/disk/by-id/"));
    }

    #[test]
    fn broken() {
        for bad in [
            "rpool 1 2 3 4 5 ONLINE\n",
            "rpool\t1\t2\n",
            "rpool\tbig\t2\t3\t4\t1.00\tONLINE\n",
            "rpool\t1\t2\t3\t4\tabc\tONLINE\n",
            "rpool\t1\t2\t3\t4\t1.00\tonline?\n",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
    }
}
