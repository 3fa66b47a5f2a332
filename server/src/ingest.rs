//! What happens to a `metric:*` push once its host is authenticated: flatten it into series
//! points and store it, together with the whole sample as the host's latest of its kind.

use common::events::{MetricKind, MetricPush};
use common::sample::{FastSample, MediumSample, SlowSample};
use serde::Deserialize;

use crate::context::{Context, Stats};
use crate::error::Result;
use crate::store::SampleWrite;

/// Longest excerpt of a payload written to the log; a 200-guest sample would drown the journal.
const LOG_EXCERPT_CHARS: usize = 2000;

/// Records one sample of `host_id`. Returns only after the data is committed, so the caller's
/// `ok` reply means "stored".
pub fn ingest(
    ctx: &Context,
    host_id: i64,
    host_name: &str,
    kind: MetricKind,
    collected_at: i64,
    push: &MetricPush,
) -> Result<()> {
    let write = sample_write(host_id, kind, collected_at, push, host_name);
    let points = write.points.len() as u64;
    // Cut from the JSON text the store keeps anyway, rather than serializing the sample again.
    let excerpt = log::log_enabled!(log::Level::Info).then(|| {
        let data = &write.data_json;
        match data.char_indices().nth(LOG_EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}… ({} bytes)", &data[..cut], data.len()),
            None => data.clone(),
        }
    });
    ctx.store.write_sample(write)?;
    Stats::add(&ctx.stats.samples_ingested, 1);
    Stats::add(&ctx.stats.points_ingested, points);
    if let Some(excerpt) = excerpt {
        log::info!(
            "{} host={host_name} collected_at={} data={excerpt}",
            kind.event(),
            push.collected_at
        );
    }
    Ok(())
}

/// Turns a push into what the store writes. A payload this server cannot read as the typed
/// schema (a much newer or broken agent) is still kept as the latest JSON, without points.
pub fn sample_write(
    host_id: i64,
    kind: MetricKind,
    collected_at: i64,
    push: &MetricPush,
    host_name: &str,
) -> SampleWrite {
    let mut versions = None;
    // Deserialized from the borrowed tree: a 400-point sample is not copied first.
    let parsed = match kind {
        MetricKind::Fast => FastSample::deserialize(&push.data).map(|s| s.series_points()),
        MetricKind::Medium => MediumSample::deserialize(&push.data).map(|s| s.series_points()),
        MetricKind::Slow => SlowSample::deserialize(&push.data).map(|s| {
            versions = Some((s.pve_version.clone(), s.zfs_version.clone()));
            s.series_points()
        }),
    };
    let points = parsed.unwrap_or_else(|e| {
        log::warn!(
            "{} from {host_name}: data does not match the sample schema ({e}); kept without series",
            kind.event()
        );
        Vec::new()
    });
    SampleWrite {
        host_id,
        kind: kind.as_str(),
        collected_at,
        data_json: push.data.to_string(),
        points,
        versions,
        received_at: common::time::now_unix(),
    }
}
