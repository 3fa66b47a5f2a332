//! `storage_fill_forecast`: days until a storage is full at the rate it filled over the last
//! 24 hours — a least-squares line through the stored `storage.<id>.used_bytes` points.
//!
//! The history is read through the store's query API (bucketed averages, at most
//! `MAX_POINTS`), at most once per `EVERY_S` per storage, from the alert thread — never on
//! the ingestion path. A forecast needs `MIN_SPAN_S` of history and `MIN_POINTS` points; a
//! storage that did not grow has none (it never fills).

/// The trend window.
pub const WINDOW_S: i64 = 24 * 3600;
/// How often one storage's forecast is recomputed.
pub const EVERY_S: i64 = 600;
/// The least history a forecast is made from.
pub const MIN_SPAN_S: i64 = 6 * 3600;
pub const MIN_POINTS: usize = 6;
/// Buckets asked of the store: enough for a line, cheap to read.
pub const MAX_POINTS: usize = 96;

/// Reads stored history (the alert thread's view of the store).
pub trait History {
    /// Points of `series` of host `host_id` in `[from, to]`, by time.
    fn points(&self, host_id: i64, series: &str, from: i64, to: i64) -> Vec<(i64, f64)>;
}

/// Nothing stored: every forecast is "not enough history".
pub struct NoHistory;

impl History for NoHistory {
    fn points(&self, _: i64, _: &str, _: i64, _: i64) -> Vec<(i64, f64)> {
        Vec::new()
    }
}

/// What the trend says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecast {
    /// Too little history to tell.
    Unknown,
    /// Not growing: never full.
    Never,
    /// Full in this many days (0 when full already).
    Days(f64),
}

/// The slope of the least-squares line through `points`, per second; `None` with too few
/// points or too short a span.
pub fn slope(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < MIN_POINTS {
        return None;
    }
    let first = points.first()?.0;
    let last = points.last()?.0;
    if last - first < MIN_SPAN_S {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // a handful of points
    let n = points.len() as f64;
    // Times relative to the first point keep the sums small and exact enough.
    #[allow(clippy::cast_precision_loss)]
    let xs = points.iter().map(|(t, _)| (t - first) as f64);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (x, (_, y)) in xs.zip(points) {
        cov += (x - mean_x) * (y - mean_y);
        var += (x - mean_x) * (x - mean_x);
    }
    (var > 0.0).then(|| cov / var)
}

/// Days until `used` reaches `total` along the trend of `points` (used bytes over time).
pub fn days_until_full(points: &[(i64, f64)], used: f64, total: f64) -> Forecast {
    match slope(points) {
        None => Forecast::Unknown,
        Some(s) if s <= 0.0 => Forecast::Never,
        Some(s) => Forecast::Days(((total - used).max(0.0) / s / 86400.0).max(0.0)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_fill_gives_the_days_left() {
        // 1 GB per hour over 24 h, 100 GB left: 100 h.
        let gb = 1e9;
        let points: Vec<(i64, f64)> = (0..=24i32)
            .map(|h| (i64::from(h) * 3600, 500.0 * gb + f64::from(h) * gb))
            .collect();
        let Forecast::Days(days) = days_until_full(&points, 524.0 * gb, 624.0 * gb) else {
            panic!("a forecast");
        };
        assert!((days - 100.0 / 24.0).abs() < 1e-9, "{days}");
    }

    #[test]
    fn noise_around_a_flat_line_or_shrinking_never_fills() {
        let points: Vec<(i64, f64)> = (0..48)
            .map(|i| (i * 1800, 100.0 + if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        // Each rise is followed by a fall of the same size: the line leans down, never fills.
        assert_eq!(days_until_full(&points, 100.0, 200.0), Forecast::Never);
        let shrinking: Vec<(i64, f64)> = (0..48i32)
            .map(|i| (i64::from(i) * 1800, 1000.0 - f64::from(i)))
            .collect();
        assert_eq!(days_until_full(&shrinking, 950.0, 2000.0), Forecast::Never);
    }

    #[test]
    fn too_little_history_is_unknown() {
        let short: Vec<(i64, f64)> = (0..10i32)
            .map(|i| (i64::from(i) * 60, f64::from(i)))
            .collect();
        assert_eq!(days_until_full(&short, 10.0, 100.0), Forecast::Unknown);
        let few: Vec<(i64, f64)> = (0..3i32)
            .map(|i| (i64::from(i) * 10_000, f64::from(i)))
            .collect();
        assert_eq!(days_until_full(&few, 10.0, 100.0), Forecast::Unknown);
        // Full already.
        let growing: Vec<(i64, f64)> = (0..10i32)
            .map(|i| (i64::from(i) * 3600, f64::from(i)))
            .collect();
        assert_eq!(days_until_full(&growing, 120.0, 100.0), Forecast::Days(0.0));
    }
}
