//! The node's local time, for the times vzdump writes as `2026-11-25 01:00:02` (pve-guest-common
//! `PVE::VZDump::Plugin::debugmsg` and `PVE::VZDump` print `strftime("%F %H:%M:%S",
//! localtime)`, without a zone).
//!
//! The zone is the node's `/etc/localtime` (TZif, read with `tz-rs`, which also follows the
//! POSIX rule at the end of the file for years past its table); without that file the node runs
//! on UTC, as glibc does.

use tz::TimeZone;

/// A time zone that turns local wall-clock times into UNIX seconds.
#[derive(Debug, Clone)]
pub struct LocalZone {
    zone: TimeZone,
}

impl Default for LocalZone {
    fn default() -> LocalZone {
        LocalZone::utc()
    }
}

impl LocalZone {
    pub fn utc() -> LocalZone {
        LocalZone {
            zone: TimeZone::utc(),
        }
    }

    /// The zone of a TZif file's bytes (`/etc/localtime`).
    pub fn from_tzif(bytes: &[u8]) -> Result<LocalZone, String> {
        TimeZone::from_tz_data(bytes)
            .map(|zone| LocalZone { zone })
            .map_err(|e| format!("not a time zone file: {e}"))
    }

    /// The offset from UTC, in seconds, at UNIX time `t`.
    fn offset_at(&self, t: i64) -> i64 {
        self.zone
            .find_local_time_type(t)
            .map_or(0, |ty| i64::from(ty.ut_offset()))
    }

    /// UNIX seconds of a local wall-clock time. In the hour a clock is set back, the earlier
    /// of the two moments; a time skipped when it is set forward is taken in the offset before
    /// the change.
    pub fn to_unix(&self, local: LocalDateTime) -> i64 {
        const DAY: i64 = 86_400;
        let wall = local.as_if_utc();
        // Offsets are within a day of UTC and changes are days apart: the offsets in force a
        // day before and a day after are the only candidates.
        let before = self.offset_at(wall - DAY);
        let after = self.offset_at(wall + DAY);
        [before, after]
            .into_iter()
            .map(|offset| wall - offset)
            .filter(|t| self.offset_at(*t) == wall - t)
            .min()
            .unwrap_or(wall - before)
    }
}

/// A wall-clock time without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalDateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl LocalDateTime {
    /// Parses `YYYY-MM-DD HH:MM:SS` (and nothing else).
    pub fn parse(text: &str) -> Option<LocalDateTime> {
        let b = text.as_bytes();
        if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = text.get(range)?;
            if !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        };
        let time = LocalDateTime {
            year: i32::try_from(number(0..4)?).ok()?,
            month: number(5..7)?,
            day: number(8..10)?,
            hour: number(11..13)?,
            minute: number(14..16)?,
            second: number(17..19)?,
        };
        let valid = (1..=12).contains(&time.month)
            && (1..=days_in_month(time.year, time.month)).contains(&time.day)
            && time.hour < 24
            && time.minute < 60
            && time.second < 61;
        valid.then_some(time)
    }

    /// The wall time read as if it were UTC, in UNIX seconds.
    pub fn as_if_utc(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vienna() -> LocalZone {
        LocalZone::from_tzif(include_bytes!("../../../fixtures/pve-node/etc/localtime")).unwrap()
    }

    fn at(text: &str) -> LocalDateTime {
        LocalDateTime::parse(text).unwrap()
    }

    #[test]
    fn parses_vzdump_times() {
        assert_eq!(at("2026-11-25 01:00:02").as_if_utc(), 1_795_568_402);
        assert_eq!(at("1970-01-01 00:00:00").as_if_utc(), 0);
        assert_eq!(at("2024-02-29 23:59:59").as_if_utc(), 1_709_251_199);
        for bad in [
            "",
            "2026-11-25T01:00:02",
            "2026-13-01 00:00:00",
            "2026-02-29 00:00:00",
            "2026-11-25 24:00:00",
            "2026-11-25 01:00:0x",
            "2026-11-25 01:00:02 ",
            "+026-11-25 01:00:02",
        ] {
            assert_eq!(LocalDateTime::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn vienna_winter_summer_and_the_changes() {
        let zone = vienna();
        // CET (+1) in November, CEST (+2) in July.
        assert_eq!(
            zone.to_unix(at("2026-11-25 01:00:02")),
            1_795_568_402 - 3600
        );
        assert_eq!(
            zone.to_unix(at("2026-07-01 12:00:00")),
            1_782_907_200 - 7200
        );
        // 2026-03-29 02:30 does not exist (clocks go 02:00 → 03:00): read in CET.
        assert_eq!(
            zone.to_unix(at("2026-03-29 02:30:00")),
            at("2026-03-29 02:30:00").as_if_utc() - 3600
        );
        // 2026-10-25 02:30 happens twice (03:00 CEST → 02:00 CET): the first one, in CEST.
        assert_eq!(
            zone.to_unix(at("2026-10-25 02:30:00")),
            at("2026-10-25 02:30:00").as_if_utc() - 7200
        );
        // Far past the file's table: the POSIX rule at its end.
        assert_eq!(
            zone.to_unix(at("2090-07-01 12:00:00")),
            at("2090-07-01 12:00:00").as_if_utc() - 7200
        );
        assert_eq!(
            LocalZone::utc().to_unix(at("2026-07-01 12:00:00")),
            1_782_907_200
        );
    }

    #[test]
    fn a_file_that_is_no_zone_is_an_error() {
        assert!(LocalZone::from_tzif(b"").is_err());
        assert!(LocalZone::from_tzif(b"TZif2 garbage").is_err());
    }
}
