//! `/proc/spl/kstat/zfs/arcstats`: the ZFS ARC's size, limits and hit counters.

/// The ARC figures we report, in bytes and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArcStats {
    pub size: u64,
    /// `c`: the size the ARC currently aims for.
    pub target: u64,
    pub min: u64,
    pub max: u64,
    pub hits: u64,
    pub misses: u64,
}

/// Parses the kstat text: a header line, a `name type data` line, then one `name type data`
/// row per statistic. `size`, `c`, `c_min`, `c_max`, `hits` and `misses` must be present.
pub fn parse(text: &str) -> Result<ArcStats, String> {
    let mut lines = text.lines();
    let mut saw_columns = false;
    for line in lines.by_ref() {
        if line.split_ascii_whitespace().eq(["name", "type", "data"]) {
            saw_columns = true;
            break;
        }
    }
    if !saw_columns {
        return Err("no \"name type data\" header".into());
    }
    let (mut size, mut target, mut min, mut max, mut hits, mut misses) =
        (None, None, None, None, None, None);
    for line in lines {
        let mut fields = line.split_ascii_whitespace();
        let (Some(name), Some(_kind), Some(data)) = (fields.next(), fields.next(), fields.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("row {line:?} does not have 3 fields"));
        };
        let slot = match name {
            "size" => &mut size,
            "c" => &mut target,
            "c_min" => &mut min,
            "c_max" => &mut max,
            "hits" => &mut hits,
            "misses" => &mut misses,
            _ => continue,
        };
        *slot = Some(
            data.parse::<u64>()
                .map_err(|_| format!("{name} value {data:?} is not a number"))?,
        );
    }
    let require = |v: Option<u64>, name: &str| v.ok_or_else(|| format!("no {name} row"));
    Ok(ArcStats {
        size: require(size, "size")?,
        target: require(target, "c")?,
        min: require(min, "c_min")?,
        max: require(max, "c_max")?,
        hits: require(hits, "hits")?,
        misses: require(misses, "misses")?,
    })
}

/// Hits / (hits + misses) between two snapshots, 0–100; `None` without accesses or when the
/// counters went backwards (module reload).
pub fn hit_ratio(before: &ArcStats, after: &ArcStats) -> Option<f64> {
    let hits = after.hits.checked_sub(before.hits)?;
    let misses = after.misses.checked_sub(before.misses)?;
    let total = hits.checked_add(misses)?;
    if total == 0 {
        return None;
    }
    Some(hits as f64 * 100.0 / total as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/pve-node/proc/spl/kstat/zfs/arcstats");

    #[test]
    fn fixture() {
        assert_eq!(
            parse(FIXTURE).unwrap(),
            ArcStats {
                size: 1_603_939_792,
                target: 1_643_208_777,
                min: 33_554_432,
                max: 8_367_976_448,
                hits: 8_772_612,
                misses: 604_635,
            }
        );
    }

    #[test]
    fn hit_ratio_between_snapshots() {
        let before = parse(FIXTURE).unwrap();
        let after = ArcStats {
            hits: before.hits + 9000,
            misses: before.misses + 1000,
            ..before
        };
        assert_eq!(hit_ratio(&before, &after), Some(90.0));
        assert_eq!(hit_ratio(&before, &before), None);
        assert_eq!(hit_ratio(&after, &before), None);
    }

    #[test]
    fn broken() {
        let truncated = &FIXTURE[..FIXTURE.find("hits ").unwrap()];
        for bad in [
            "",
            "6 1 0x01 91 4368 5266997922 97951858082072\n",
            truncated,
            "6 1\nname type data\nsize 4 abc\nc 4 1\nc_min 4 1\nc_max 4 1\nhits 4 1\nmisses 4 1\n",
            "6 1\nname type data\nsize 4\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
