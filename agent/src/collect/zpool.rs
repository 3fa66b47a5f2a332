//! ZFS pools: `zpool list -HpPLo name,size,alloc,free,frag,dedup,health` (the command Proxmox
//! runs) and `zpool status -x` for the details of unhealthy pools.

use std::collections::HashMap;

use common::sample::ZfsPool;

use super::problem::{numbered_lines, quote, Problems};

/// The arguments of the `zpool list` we run.
pub const LIST_ARGS: [&str; 3] = ["list", "-HpPLo", super::command::ZPOOL_PVE_COLUMNS];
/// The arguments of the `zpool status` we run.
pub const STATUS_ARGS: [&str; 2] = ["status", "-x"];

/// Parses the TAB-separated lines (raw bytes with `-p`; `-` for unset values; frag and dedup may
/// carry `%` / `x` when `-p` is missing). A line without the 7 fields, or with a value that does
/// not read, is skipped and reported; fields after the 7th are ignored.
pub fn parse_list(text: &str, problems: &mut Problems) -> Result<Vec<ZfsPool>, String> {
    let mut pools = Vec::new();
    for (number, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_list_line(line) {
            Ok(pool) => pools.push(pool),
            Err(message) => problems.line(number, message),
        }
    }
    Ok(pools)
}

fn parse_list_line(line: &str) -> Result<ZfsPool, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [name, size, alloc, free, frag, dedup, health, ..] = fields[..] else {
        return Err(format!(
            "{} has {} TAB-separated fields, expected 7",
            quote(line),
            fields.len()
        ));
    };
    let bytes = |what: &str, v: &str| -> Result<Option<u64>, String> {
        if v == "-" {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| format!("{name}: {what} {} is not a byte count", quote(v)))
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
            .ok_or_else(|| format!("{name}: {what} {} is not a number", quote(v)))
    };
    let health = parse_health(health)
        .ok_or_else(|| format!("{} has no pool name or health", quote(line)))?;
    if name.is_empty() {
        return Err(format!("{} has no pool name or health", quote(line)));
    }
    Ok(ZfsPool {
        name: name.to_owned(),
        health: health.into(),
        size_bytes: bytes("size", size)?,
        alloc_bytes: bytes("alloc", alloc)?,
        free_bytes: bytes("free", free)?,
        frag_percent: ratio("frag", frag, '%')?,
        dedup_ratio: ratio("dedup", dedup, 'x')?,
        status_details: None,
    })
}

/// A pool state word as `zpool` and the kstat print it (OpenZFS `spa_state_to_name`:
/// ONLINE, DEGRADED, FAULTED, OFFLINE, REMOVED, UNAVAIL, SUSPENDED, ...).
fn parse_health(word: &str) -> Option<String> {
    let word = word.trim();
    (!word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase())).then(|| word.to_owned())
}

/// `/proc/spl/kstat/zfs/<pool>/state` (OpenZFS `module/zfs/spa_stats.c` `spa_state_data`,
/// `"%s\n"`): the pool's state without running `zpool`, which hangs on a suspended pool. Used
/// when `zpool list` cannot be run.
pub fn parse_state(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or("");
    parse_health(line).ok_or_else(|| format!("{} is not a pool state", quote(line)))
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
        let mut problems = Problems::new();
        let pools = parse_list(
            include_str!("../../../fixtures/pve-node/cmd/zpool-list-HpPLo-pve-columns.txt"),
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty());
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
        let pools = parse_list(
            "tank\t-\t-\t-\t12%\t1.50x\tFAULTED\textra\n",
            &mut Problems::new(),
        )
        .unwrap();
        assert_eq!(pools[0].size_bytes, None);
        assert_eq!(pools[0].frag_percent, Some(12.0));
        assert_eq!(pools[0].dedup_ratio, Some(1.5));
        assert_eq!(parse_list("", &mut Problems::new()).unwrap(), []);
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
    fn kstat_states() {
        assert_eq!(
            parse_state(include_str!(
                "../../../fixtures/pve-node/proc/spl/kstat/zfs/rpool/state"
            )),
            Ok("ONLINE".into())
        );
        assert_eq!(parse_state("SUSPENDED\n"), Ok("SUSPENDED".into()));
        for bad in ["", "\n", "online", "ON LINE"] {
            assert!(parse_state(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn broken_lines_cost_only_themselves() {
        let good = "rpool\t1\t2\t3\t4\t1.00\tONLINE";
        for bad in [
            "rpool 1 2 3 4 5 ONLINE",
            "rpool\t1\t2",
            "rpool\tbig\t2\t3\t4\t1.00\tONLINE",
            "rpool\t1\t2\t3\t4\tabc\tONLINE",
            "rpool\t1\t2\t3\t4\t1.00\tonline?",
            "\t1\t2\t3\t4\t1.00\tONLINE",
        ] {
            let mut problems = Problems::new();
            let pools = parse_list(&format!("{bad}\n{good}\n"), &mut problems).unwrap();
            assert_eq!(pools.len(), 1, "{bad:?}");
            assert_eq!(problems.iter().next().unwrap().line, Some(1), "{bad:?}");
        }
    }
}
