//! What happens to a `metric:*` push once its host is authenticated: its `data` is parsed once
//! into the typed sample, flattened into series points and stored together with the text as
//! received (the host's `latest` of its kind); after the commit, the typed sample becomes the
//! host's newest in memory (`crate::state`).

use common::events::MetricKind;
use common::sample::Sample;

use crate::context::{Context, Stats};
use crate::error::Result;
use crate::store::SampleWrite;

/// Longest excerpt of a payload written to the log; a 200-guest sample would drown the journal.
const LOG_EXCERPT_CHARS: usize = 2000;

/// A push made ready for the store, and its typed sample for the host state.
#[derive(Debug)]
pub struct Prepared {
    pub write: SampleWrite,
    /// `None` when the data does not match the schema (kept in `latest`, without series).
    pub sample: Option<Sample>,
}

/// Records one sample of `host_id` whose `data` is the JSON text `data`. Returns only after
/// the data is committed, so the caller's `ok` reply means "stored".
pub fn ingest(
    ctx: &Context,
    host_id: i64,
    host_name: &str,
    kind: MetricKind,
    collected_at: i64,
    data: &str,
) -> Result<()> {
    let Prepared { write, sample } = prepare(host_id, kind, collected_at, data, host_name);
    if write.points.len() > ctx.config.max_series_per_sample {
        return Err(crate::Error::Store(format!(
            "{}: the sample has {} series, more than max_series_per_sample ({})",
            crate::store::SERIES_CAP,
            write.points.len(),
            ctx.config.max_series_per_sample
        )));
    }
    let points = write.points.len() as u64;
    let received_at = write.received_at;
    // Debug, not info: at 1000 agents an info line per push was ~6 GB of log a day.
    let excerpt = log::log_enabled!(log::Level::Debug).then(|| excerpt(data));
    ctx.store.write_sample(write)?;
    if let Some(sample) = sample {
        ctx.hosts
            .record_sample(host_id, sample, collected_at, received_at);
    }
    Stats::add(&ctx.stats.samples_ingested, 1);
    Stats::add(&ctx.stats.points_ingested, points);
    if let Some(excerpt) = excerpt {
        log::debug!(
            "{} host={host_name} collected_at={} data={excerpt}",
            kind.event(),
            common::time::format_rfc3339(common::time::from_unix_seconds(collected_at))
        );
    }
    Ok(())
}

/// Turns a push into what the store writes and the typed sample. A payload this server cannot
/// read as the typed schema (a much newer or broken agent) is still kept as the latest JSON,
/// without points.
pub fn prepare(
    host_id: i64,
    kind: MetricKind,
    collected_at: i64,
    data: &str,
    host_name: &str,
) -> Prepared {
    let sample = Sample::from_json(kind, data)
        .map_err(|e| {
            log::warn!(
                "{} from {host_name}: data does not match the sample schema ({e}); kept without series",
                kind.event()
            );
        })
        .ok();
    let versions = match &sample {
        Some(Sample::Slow(s)) => Some((s.pve_version.clone(), s.zfs_version.clone())),
        _ => None,
    };
    Prepared {
        write: SampleWrite {
            host_id,
            kind,
            collected_at,
            data_json: data.to_owned(),
            points: sample
                .as_ref()
                .map(Sample::series_points)
                .unwrap_or_default(),
            versions,
            received_at: common::time::now_unix(),
        },
        sample,
    }
}

/// Why a sample's `collected_at` is refused: the reason code of the error reply and a
/// message naming the stamp and the limit. A sample dated in the future (a wrong agent clock)
/// would stay the host's newest, its current view frozen until that date; one older than raw
/// retention would be deleted before it could be rolled up, and would start the rollups there.
pub fn check_collected_at(
    collected_at: i64,
    now: i64,
    max_skew_seconds: i64,
    raw_retention_seconds: i64,
) -> Option<(&'static str, String)> {
    let stamp = || common::time::format_rfc3339(common::time::from_unix_seconds(collected_at));
    let ahead = collected_at.saturating_sub(now);
    if ahead > max_skew_seconds {
        return Some((
            common::events::reason::CLOCK_SKEW,
            format!(
                "collected_at {} is {ahead} s ahead of the server's clock (at most \
                 {max_skew_seconds} s allowed: max_clock_skew_seconds); fix the agent's clock (NTP)",
                stamp()
            ),
        ));
    }
    let age = now.saturating_sub(collected_at);
    if age > raw_retention_seconds {
        return Some((
            common::events::reason::TOO_OLD,
            format!(
                "collected_at {} is {age} s old, older than the {raw_retention_seconds} s \
                 the server keeps raw points (retention.raw_days)",
                stamp()
            ),
        ));
    }
    None
}

/// What the store writes for a push (benchmarks: the same work the server does per sample).
pub fn sample_write(
    host_id: i64,
    kind: MetricKind,
    collected_at: i64,
    data: &str,
    host_name: &str,
) -> SampleWrite {
    prepare(host_id, kind, collected_at, data, host_name).write
}

fn excerpt(data: &str) -> String {
    match data.char_indices().nth(LOG_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &data[..cut], data.len()),
        None => data.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_push_is_parsed_once_into_points_and_kept_as_sent() {
        let data = r#"{"load1": 0.5,  "guests":[{"vmid":100,"status":"running"}]}"#;
        let prepared = prepare(7, MetricKind::Fast, 100, data, "pve1");
        assert_eq!(prepared.write.data_json, data, "stored as received");
        assert_eq!(prepared.write.kind, MetricKind::Fast);
        assert!(prepared.write.points.contains(&("load1".into(), 0.5)));
        assert!(prepared
            .write
            .points
            .contains(&("guest.100.running".into(), 1.0)));
        assert!(matches!(prepared.sample, Some(Sample::Fast(_))));
    }

    #[test]
    fn a_sample_of_another_shape_is_kept_without_points() {
        let prepared = prepare(7, MetricKind::Medium, 100, r#"{"pools":5}"#, "pve1");
        assert!(prepared.write.points.is_empty());
        assert!(prepared.sample.is_none());
        assert_eq!(prepared.write.data_json, r#"{"pools":5}"#);
    }

    #[test]
    fn slow_samples_carry_versions() {
        let prepared = prepare(
            7,
            MetricKind::Slow,
            100,
            r#"{"pve_version":"8.2.4","cpu_count":8}"#,
            "pve1",
        );
        assert_eq!(prepared.write.versions, Some((Some("8.2.4".into()), None)));
        assert_eq!(prepared.write.points, vec![("cpu_count".into(), 8.0)]);
    }

    #[test]
    fn stamps_too_far_ahead_or_older_than_raw_retention_are_refused() {
        let now = 1_800_000_000;
        assert_eq!(check_collected_at(now, now, 300, 86_400), None);
        assert_eq!(check_collected_at(now + 300, now, 300, 86_400), None);
        assert_eq!(check_collected_at(now - 86_400, now, 300, 86_400), None);
        let (code, message) = check_collected_at(now + 3600, now, 300, 86_400).unwrap();
        assert_eq!(code, "clock_skew");
        assert!(message.contains("3600 s ahead"), "{message}");
        assert!(message.contains("at most 300 s"), "{message}");
        let (code, message) = check_collected_at(4_102_444_800, now, 300, 86_400).unwrap();
        assert_eq!(code, "clock_skew");
        assert!(message.contains("2100-01-01T00:00:00Z"), "{message}");
        let (code, message) = check_collected_at(0, now, 300, 86_400).unwrap();
        assert_eq!(code, "too_old");
        assert!(message.contains("1970-01-01T00:00:00Z"), "{message}");
        assert!(check_collected_at(i64::MIN, now, 300, 86_400).is_some());
        assert!(check_collected_at(i64::MAX, now, 300, 86_400).is_some());
    }

    #[test]
    fn long_payloads_are_cut_in_the_log() {
        let long = "x".repeat(LOG_EXCERPT_CHARS + 10);
        assert!(excerpt(&long).ends_with(&format!("… ({} bytes)", long.len())));
        assert_eq!(excerpt("{}"), "{}");
    }
}
