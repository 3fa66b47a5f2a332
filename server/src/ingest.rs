//! What happens to a `metric:*` push once its host is authenticated.

use common::events::{MetricKind, MetricPush};

use crate::context::{Context, Stats};
use crate::error::Result;

/// The version fields of a `metric:slow` sample, kept in the `hosts` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct SlowSampleVersions {
    proxmox_version: Option<String>,
    zfs_version: Option<String>,
}

/// Longest excerpt of a payload written to the log; a 200-guest sample would drown the journal.
const LOG_EXCERPT_BYTES: usize = 2000;

/// Records one sample of `host_id`. Returns only after the data is committed, so the caller's
/// `ok` reply means "stored".
pub fn ingest(
    ctx: &Context,
    host_id: i64,
    host_name: &str,
    kind: MetricKind,
    push: &MetricPush,
) -> Result<()> {
    let now = common::time::now_unix();
    ctx.store.touch_host(host_id, now)?;
    if kind == MetricKind::Slow {
        if let Ok(versions) = serde_json::from_value::<SlowSampleVersions>(push.data.clone()) {
            ctx.store.set_versions(
                host_id,
                versions.proxmox_version.as_deref(),
                versions.zfs_version.as_deref(),
            )?;
        }
    }
    Stats::add(&ctx.stats.samples_ingested, 1);
    if log::log_enabled!(log::Level::Info) {
        let data = push.data.to_string();
        let excerpt = match data.char_indices().nth(LOG_EXCERPT_BYTES) {
            Some((cut, _)) => format!("{}… ({} bytes)", &data[..cut], data.len()),
            None => data,
        };
        log::info!(
            "{} host={host_name} collected_at={} data={excerpt}",
            kind.event(),
            push.collected_at
        );
    }
    Ok(())
}
