//! `/proc/spl/kstat/zfs/arcstats`: the ZFS ARC's size, limits and hit counters.

use super::problem::{numbered_lines, quote, set_once, Problems};

/// The ARC figures we report, in bytes and counts; a row that is missing or unreadable is
/// `None` (and a problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArcStats {
    pub size: Option<u64>,
    /// `c`: the size the ARC currently aims for.
    pub target: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub hits: Option<u64>,
    pub misses: Option<u64>,
}

/// The rows we use, by kstat name.
const ROWS: [&str; 6] = ["size", "c", "c_min", "c_max", "hits", "misses"];

/// Parses the kstat text (OpenZFS `module/os/linux/spl/spl-kstat.c`): a header line of
/// numbers, a `name type data` line, then one `name type data` row per statistic. Rows we do
/// not use are ignored whatever their value (`memory_available_bytes` is signed); a row that
/// does not have the three fields, or one we use whose data is not a number, is skipped and
/// reported, and so is a missing row we use. Fails when none of them reads.
pub fn parse(text: &str, problems: &mut Problems) -> Result<ArcStats, String> {
    let mut stats = ArcStats::default();
    for (number, line) in numbered_lines(text) {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let column_names = line
            .split_ascii_whitespace()
            .take(3)
            .eq(["name", "type", "data"]);
        if column_names || number == 1 && is_kstat_header(line) {
            continue;
        }
        let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
            problems.line(number, format!("{} is not \"name type data\"", quote(line)));
            continue;
        };
        if kind.parse::<u8>().is_err() {
            problems.line(
                number,
                format!("{name}: type {} is not a number", quote(kind)),
            );
            continue;
        }
        let slot = match name {
            "size" => &mut stats.size,
            "c" => &mut stats.target,
            "c_min" => &mut stats.min,
            "c_max" => &mut stats.max,
            "hits" => &mut stats.hits,
            "misses" => &mut stats.misses,
            _ => continue,
        };
        match data.parse::<u64>() {
            Ok(value) => set_once(slot, value, number, name, problems),
            Err(_) => problems.line(
                number,
                format!("{name} value {} is not a number", quote(data)),
            ),
        }
    }
    let found = [
        stats.size,
        stats.target,
        stats.min,
        stats.max,
        stats.hits,
        stats.misses,
    ];
    if found.iter().all(Option::is_none) {
        return Err("no readable size, c, c_min, c_max, hits or misses row".into());
    }
    for (value, name) in found.iter().zip(ROWS) {
        if value.is_none() {
            problems.file(format!("no readable {name} row"));
        }
    }
    Ok(stats)
}

/// The kstat header: `6 1 0x01 91 4368 5266997922 97951858082072` (kid, type, flags, ndata,
/// data size, creation and snapshot times).
fn is_kstat_header(line: &str) -> bool {
    line.split_ascii_whitespace().all(|f| {
        f.bytes().all(|b| b.is_ascii_digit())
            || f.strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// Hits / (hits + misses) between two snapshots, 0–100; `None` without accesses or when the
/// counters went backwards (module reload).
pub fn hit_ratio(before: &ArcStats, after: &ArcStats) -> Option<f64> {
    let hits = after.hits?.checked_sub(before.hits?)?;
    let misses = after.misses?.checked_sub(before.misses?)?;
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

    fn check(text: &str) -> (ArcStats, Vec<String>) {
        let mut problems = Problems::new();
        let stats = parse(text, &mut problems).unwrap();
        (stats, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn fixture() {
        let (stats, problems) = check(FIXTURE);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            stats,
            ArcStats {
                size: Some(1_603_939_792),
                target: Some(1_643_208_777),
                min: Some(33_554_432),
                max: Some(8_367_976_448),
                hits: Some(8_772_612),
                misses: Some(604_635),
            }
        );
    }

    #[test]
    fn hit_ratio_between_snapshots() {
        let (before, _) = check(FIXTURE);
        let after = ArcStats {
            hits: before.hits.map(|h| h + 9000),
            misses: before.misses.map(|m| m + 1000),
            ..before
        };
        assert_eq!(hit_ratio(&before, &after), Some(90.0));
        assert_eq!(hit_ratio(&before, &before), None);
        assert_eq!(hit_ratio(&after, &before), None);
    }

    #[test]
    fn a_truncated_file_keeps_the_rows_before_the_cut() {
        let truncated = &FIXTURE[..FIXTURE.find("\nhits ").unwrap() + 1];
        let (stats, problems) = check(truncated);
        assert_eq!(stats.max, Some(8_367_976_448));
        assert_eq!((stats.hits, stats.misses, stats.size), (None, None, None));
        assert_eq!(
            problems,
            [
                "no readable size row",
                "no readable hits row",
                "no readable misses row"
            ]
        );
        let (stats, problems) =
            check("6 1\nname type data\nsize 4 abc\nc 4 1\nc_min 4\nhits 4 7\n");
        assert_eq!(
            (stats.size, stats.target, stats.hits),
            (None, Some(1), Some(7))
        );
        assert_eq!(
            &problems[..2],
            [
                "line 3: size value \"abc\" is not a number",
                "line 5: \"c_min 4\" is not \"name type data\""
            ]
        );
    }

    #[test]
    fn broken() {
        for bad in [
            "",
            "6 1 0x01 91 4368 5266997922 97951858082072\n",
            "6 1\nname type data\nsize 4\n",
        ] {
            assert!(parse(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
    }
}
