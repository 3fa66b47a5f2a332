//! The `latest` table: each host's newest sample of each kind, as the agent sent it. Written by
//! the ingestion writer (`series::write_one`, together with the sample's points); read once at
//! start to fill the in-memory host state (`crate::state`), which everything else reads.

use common::events::MetricKind;

use super::Store;
use crate::error::Result;

/// A host's newest sample of one kind: the `data` JSON text as received.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub host_id: i64,
    pub kind: MetricKind,
    /// Unix seconds.
    pub collected_at: i64,
    pub data: String,
}

impl Store {
    /// When the newest sample of any host was taken (`None` before the first): how far the
    /// data reaches, which retention compares with the clock.
    pub fn newest_sample_time(&self) -> Result<Option<i64>> {
        self.lock()
            .query_row("SELECT max(collected_at) FROM latest", [], |row| row.get(0))
            .map_err(|e| self.err(e))
    }

    /// Every host's newest samples. Rows of a kind this version does not know are skipped; so
    /// is a damaged row (a value of the wrong type, text that is not UTF-8), with a warning
    /// naming its host: it costs only that host's current view, never the others'.
    pub fn all_latest(&self) -> Result<Vec<LatestRow>> {
        let db = self.lock();
        let mut stmt = db
            .prepare(
                "SELECT l.host_id, l.kind, l.collected_at, l.data, h.name
                 FROM latest l LEFT JOIN hosts h ON h.id = l.host_id ORDER BY l.host_id, l.kind",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let decoded = (|| {
                Ok::<_, rusqlite::Error>(Some(LatestRow {
                    host_id: row.get(0)?,
                    kind: match MetricKind::parse(&row.get::<_, String>(1)?) {
                        Some(kind) => kind,
                        None => return Ok(None),
                    },
                    collected_at: row.get(2)?,
                    data: row.get(3)?,
                }))
            })();
            match decoded {
                Ok(Some(latest)) => out.push(latest),
                Ok(None) => {}
                Err(e) => {
                    let host = row
                        .get::<_, String>(4)
                        .or_else(|_| row.get::<_, i64>(0).map(|id| format!("#{id}")))
                        .unwrap_or_else(|_| "?".into());
                    log::warn!(
                        "the stored latest sample of host {host} is damaged ({e}); its current \
                         view stays empty until its next sample"
                    );
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{SampleWrite, Synchronous};
    use crate::testutil::TempDir;

    #[test]
    fn newest_samples_of_every_host_and_kind() {
        let dir = TempDir::new("latest");
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let a = store.create_host("a", "h", 1).unwrap().id;
        let b = store.create_host("b", "h", 1).unwrap().id;
        let write = |host_id, kind, collected_at, data: &str| SampleWrite {
            host_id,
            kind,
            collected_at,
            data_json: data.into(),
            points: vec![("load1".into(), 1.0)],
            versions: None,
            received_at: collected_at,
        };
        store
            .write_samples_direct(vec![
                write(a, MetricKind::Fast, 10, r#"{"n":1}"#),
                write(a, MetricKind::Fast, 20, r#"{"n":2}"#),
                write(a, MetricKind::Fast, 15, r#"{"n":"older, sent late"}"#),
                write(a, MetricKind::Slow, 10, r#"{"s":1}"#),
                write(b, MetricKind::Medium, 30, r#"{"m":1}"#),
            ])
            .unwrap();
        let rows = store.all_latest().unwrap();
        let summary: Vec<(i64, MetricKind, i64, &str)> = rows
            .iter()
            .map(|r| (r.host_id, r.kind, r.collected_at, r.data.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (a, MetricKind::Fast, 20, r#"{"n":2}"#),
                (a, MetricKind::Slow, 10, r#"{"s":1}"#),
                (b, MetricKind::Medium, 30, r#"{"m":1}"#),
            ]
        );
    }
}
