//! RFC 3339 timestamps as they appear on the wire (`collected_at`) and in the database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-25T22:45:15Z`: UTC, whole seconds; what the agent puts in `collected_at`.
/// Times outside what RFC 3339 can write (humantime panics there) are written as the nearest
/// it can: 1970-01-01T00:00:00Z or 9999-12-31T23:59:59Z.
pub fn format_rfc3339(time: SystemTime) -> String {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_RFC3339_SECONDS);
    let time = time.clamp(UNIX_EPOCH, latest);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// 9999-12-31T23:59:59Z, the last second a four-digit year can write.
const LATEST_RFC3339_SECONDS: u64 = 253_402_300_799;

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp (fractions are dropped).
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("{text:?} is not an RFC 3339 UTC timestamp: {e}"))?;
    Ok(unix_seconds(time))
}

/// A point in time as an admin types it: RFC 3339, Unix seconds, `now`, or a duration ago
/// (`90m`, `7d`, `-1h`); Unix seconds relative to `now`.
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(duration) = humantime::parse_duration(text.trim_start_matches('-')) {
        let ago =
            i64::try_from(duration.as_secs()).map_err(|_| format!("{text:?} is too long ago"))?;
        return Ok(now.saturating_sub(ago));
    }
    parse_rfc3339(text).map_err(|_| {
        format!("{text:?} is not RFC 3339, Unix seconds, \"now\" or a duration like 90m")
    })
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `SystemTime` of a Unix timestamp.
/// Beyond what `SystemTime` holds, the nearest time it does hold (never a panic).
pub fn from_unix_seconds(seconds: i64) -> SystemTime {
    let offset = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH
            .checked_add(offset)
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(LATEST_RFC3339_SECONDS))
    } else {
        UNIX_EPOCH.checked_sub(offset).unwrap_or(UNIX_EPOCH)
    }
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    unix_seconds(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_rfc3339_cannot_write_are_clamped_not_a_panic() {
        assert_eq!(
            format_rfc3339(from_unix_seconds(i64::MIN)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(from_unix_seconds(-1)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(from_unix_seconds(i64::MAX)),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn round_trip() {
        let t = from_unix_seconds(1_764_110_715);
        let text = format_rfc3339(t);
        assert_eq!(text, "2025-11-25T22:45:15Z");
        assert_eq!(parse_rfc3339(&text), Ok(1_764_110_715));
        assert_eq!(parse_rfc3339("2025-11-25T22:45:15.75Z"), Ok(1_764_110_715));
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn times_as_admins_type_them() {
        assert_eq!(parse_time("now", 1000), Ok(1000));
        assert_eq!(parse_time(" 1h ", 10_000), Ok(10_000 - 3600));
        assert_eq!(parse_time("-90m", 10_000), Ok(10_000 - 5400));
        assert_eq!(parse_time("1764110715", 0), Ok(1_764_110_715));
        assert_eq!(parse_time("2025-11-25T22:45:15Z", 0), Ok(1_764_110_715));
        assert!(parse_time("yesterday-ish", 0).is_err());
        assert!(parse_time("", 0).is_err());
    }
}
