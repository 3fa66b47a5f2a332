//! How values read on the dashboard: bytes, rates, percentages, durations and times. Every
//! number a page shows is formatted here (pages, tables, chart axes and tooltips); the page
//! script formats nothing, it fetches server-rendered fragments instead.

/// `1.5 GiB`, `512 B`: IEC units, three significant digits.
pub fn bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if !bytes.is_finite() {
        return "–".into();
    }
    let mut value = bytes.abs();
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    if unit == 0 {
        format!("{sign}{value:.0} B")
    } else if value >= 100.0 {
        format!("{sign}{value:.0} {}", UNITS[unit])
    } else if value >= 10.0 {
        format!("{sign}{value:.1} {}", UNITS[unit])
    } else {
        format!("{sign}{value:.2} {}", UNITS[unit])
    }
}

/// A byte count from a `u64`.
pub fn bytes_u64(value: u64) -> String {
    bytes(to_f64(value))
}

/// `1.5 MiB/s`.
pub fn rate(bytes_per_s: f64) -> String {
    format!("{}/s", bytes(bytes_per_s))
}

/// `18.5 %`.
pub fn percent(percent: f64) -> String {
    if percent.is_finite() {
        format!("{percent:.1} %")
    } else {
        "–".into()
    }
}

/// `0.42`: a load average.
pub fn load(value: f64) -> String {
    format!("{value:.2}")
}

/// `3d 4h`, `5h 12m`, `42s`: the two largest units.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// A duration from a `u64` of seconds (uptimes).
pub fn duration_u64(seconds: u64) -> String {
    duration(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// A duration from fractional seconds (rounded).
pub fn duration_f64(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "–".into();
    }
    #[allow(clippy::cast_possible_truncation)] // clamped to i64's range first
    let s = seconds.round().clamp(0.0, 9.0e18) as i64;
    duration(s)
}

/// `47.0 °C`.
pub fn celsius(c: f64) -> String {
    if c.is_finite() {
        format!("{c:.1} °C")
    } else {
        "–".into()
    }
}

/// `just now`, `5m ago`, `2d 3h ago` relative to `now`.
pub fn ago(unix: i64, now: i64) -> String {
    let age = now - unix;
    if age < 5 {
        "just now".into()
    } else {
        format!("{} ago", duration(age))
    }
}

/// `2026-11-25 12:00:00 UTC`.
pub fn utc(unix: i64) -> String {
    let text = common::time::format_rfc3339(common::time::from_unix_seconds(unix));
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// An optional value formatted, or a dash.
pub fn or_dash<T>(value: Option<T>, format: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), format)
}

/// `42 %` of `part` in `whole` (none when `whole` is 0).
pub fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| to_f64(part) / to_f64(whole) * 100.0)
}

#[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^53
pub fn to_f64(v: u64) -> f64 {
    v as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(67_337_670_656.0), "62.7 GiB");
        assert_eq!(bytes(991_600_574_464.0), "924 GiB");
        assert_eq!(bytes(f64::NAN), "–");
        assert_eq!(rate(1_000_000.0), "977 KiB/s");
        assert_eq!(percent(18.46), "18.5 %");
        assert_eq!(load(0.421), "0.42");
        assert_eq!(duration(350_765), "4d 1h");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration_u64(u64::MAX), duration(i64::MAX));
        assert_eq!(ago(100, 102), "just now");
        assert_eq!(ago(100, 400), "5m 0s ago");
        assert_eq!(utc(1_764_110_715), "2025-11-25 22:45:15 UTC");
        assert_eq!(or_dash(None::<u8>, |v| v.to_string()), "–");
        assert_eq!(share(1, 4), Some(25.0));
        assert_eq!(share(1, 0), None);
        assert_eq!(celsius(47.04), "47.0 °C");
        assert_eq!(duration_f64(61.6), "1m 2s");
        assert_eq!(duration_f64(f64::NAN), "–");
    }
}
