//! Alerts in the main file: every alert episode (open ones and 90 days of history), the outbox
//! of notification events, silences, and the change counter other processes bump.
//!
//! Who writes what:
//! - the alert thread (`crate::alerts`) writes alert rows and outbox events, in one short
//!   transaction per batch of changes, through `lock_for_background` (samples waiting for the
//!   lock go first). It never writes the acknowledgement columns;
//! - `ack`, `silence` and `unsilence` (dashboard or command line, any process) write only the
//!   acknowledgement columns and `silences`, and bump `alert_control.generation` in the same
//!   transaction. The server's roster watch reads the counter through its own connection and
//!   has the alert thread reload what changed.
//!
//! Reads for pages and the command line (history, silences) are single indexed queries.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::Store;
use crate::error::{Error, Result};

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<AlertState> {
        match text {
            "pending" => Some(AlertState::Pending),
            "firing" => Some(AlertState::Firing),
            "resolved" => Some(AlertState::Resolved),
            _ => None,
        }
    }
}

/// What a notification event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The alert started firing (or became critical).
    Firing,
    /// Still firing, not acknowledged: reminded after the rule's `repeat`.
    Repeat,
    Resolved,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Firing => "firing",
            EventKind::Repeat => "repeat",
            EventKind::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> EventKind {
        match text {
            "firing" => EventKind::Firing,
            "repeat" => EventKind::Repeat,
            _ => EventKind::Resolved,
        }
    }
}

/// An acknowledgement: who, when, why, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub at: i64,
    pub by: String,
    pub comment: Option<String>,
    pub expires_at: Option<i64>,
}

impl Ack {
    /// Whether it still stops repeats at `now`.
    pub fn holds(&self, now: i64) -> bool {
        self.expires_at.map_or(true, |t| now < t)
    }
}

/// One alert row. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: i64,
    pub rule: String,
    pub host_id: i64,
    pub host: String,
    /// What on the host: a guest's vmid, a mount point, a storage, a pool, an interface, a
    /// pressure resource, a series; empty for the host itself.
    pub object: String,
    pub guest: Option<u32>,
    /// A readable name for the object (a guest's name), or the state seen (`DEGRADED`).
    pub label: Option<String>,
    pub state: AlertState,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub summary: String,
    /// When the condition began (sample time).
    pub since: i64,
    pub fired_at: Option<i64>,
    /// The last change of state or severity.
    pub changed_at: i64,
    pub resolved_at: Option<i64>,
    /// Why it ended when it did not simply clear (`gone`, `host removed`, ...).
    pub resolution: Option<String>,
    /// False when it fired on samples replayed from an agent's spool and was not yet seen
    /// firing live: recorded, never announced as live.
    pub live: bool,
    /// The severity a firing event was last written with; `None`: never announced.
    pub announced: Option<Severity>,
    pub last_notified_at: Option<i64>,
    pub repeats: u32,
    /// What suppresses it (`host_offline`, `pool_unhealthy tank`), as last written.
    pub suppressed_by: Option<String>,
    pub ack: Option<Ack>,
}

/// A notification event for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Stable idempotency key: `alert/<id>/firing/<severity>`, `alert/<id>/repeat/<n>`,
    /// `alert/<id>/resolved`. Writing the same key twice keeps the first.
    pub key: String,
    pub alert_id: i64,
    pub kind: EventKind,
    pub created_at: i64,
    /// The event as JSON (rule, host, object, severity, summary, value, threshold, since, ...).
    pub payload: String,
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub event: OutboxEvent,
    pub delivered_at: Option<i64>,
}

/// What the alert thread changed since its last write.
#[derive(Debug, Clone, Default)]
pub struct AlertChanges {
    /// New or changed rows (written whole, except the acknowledgement columns).
    pub upserts: Vec<AlertRecord>,
    /// Pending alerts whose condition ended before `for`: nothing worth keeping.
    pub deletes: Vec<i64>,
    pub events: Vec<OutboxEvent>,
}

impl AlertChanges {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty() && self.events.is_empty()
    }
}

/// A silence as stored. Every matcher that is set must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRecord {
    pub id: i64,
    pub host: Option<String>,
    pub guest: Option<u32>,
    pub rule: Option<String>,
    pub tag: Option<String>,
    pub object: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: String,
    pub created_at: i64,
}

/// A silence to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSilence {
    pub host: Option<String>,
    pub guest: Option<u32>,
    pub rule: Option<String>,
    pub tag: Option<String>,
    pub object: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: String,
}

/// Which resolved alerts to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub host: Option<String>,
    pub rule: Option<String>,
    /// Only alerts resolved before this id's (paging: the last id of the previous page).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What came of an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    Acknowledged,
    NotFound,
    /// Only a firing alert can be acknowledged; this one is pending or resolved.
    NotFiring(AlertState),
}

/// What the alert thread loads at start.
#[derive(Debug, Clone, Default)]
pub struct LoadedAlerts {
    /// Pending and firing alerts.
    pub open: Vec<AlertRecord>,
    /// The smallest id never handed out.
    pub next_id: i64,
}

const ALERT_COLUMNS: &str = "id, rule, host_id, host, object, guest, label, state, severity, \
    value, threshold, summary, since, fired_at, changed_at, resolved_at, resolution, live, \
    announced, last_notified_at, repeats, suppressed_by, acked_at, acked_by, ack_comment, \
    ack_expires_at";

fn alert_from_row(row: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    let text_err = |i: usize, what: &str, text: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("{what} {text:?}").into(),
        )
    };
    let state: String = row.get(7)?;
    let severity: String = row.get(8)?;
    let announced: Option<String> = row.get(18)?;
    let acked_at: Option<i64> = row.get(22)?;
    Ok(AlertRecord {
        id: row.get(0)?,
        rule: row.get(1)?,
        host_id: row.get(2)?,
        host: row.get(3)?,
        object: row.get(4)?,
        guest: row.get(5)?,
        label: row.get(6)?,
        state: AlertState::parse(&state).ok_or_else(|| text_err(7, "state", &state))?,
        severity: Severity::parse(&severity).ok_or_else(|| text_err(8, "severity", &severity))?,
        value: row.get(9)?,
        threshold: row.get(10)?,
        summary: row.get(11)?,
        since: row.get(12)?,
        fired_at: row.get(13)?,
        changed_at: row.get(14)?,
        resolved_at: row.get(15)?,
        resolution: row.get(16)?,
        live: row.get(17)?,
        announced: announced.as_deref().and_then(Severity::parse),
        last_notified_at: row.get(19)?,
        repeats: row.get(20)?,
        suppressed_by: row.get(21)?,
        ack: match acked_at {
            Some(at) => Some(Ack {
                at,
                by: row.get::<_, Option<String>>(23)?.unwrap_or_default(),
                comment: row.get(24)?,
                expires_at: row.get(25)?,
            }),
            None => None,
        },
    })
}

const SILENCE_COLUMNS: &str =
    "id, host, guest, rule, tag, object, starts_at, ends_at, comment, created_by, created_at";

fn silence_from_row(row: &Row<'_>) -> rusqlite::Result<SilenceRecord> {
    Ok(SilenceRecord {
        id: row.get(0)?,
        host: row.get(1)?,
        guest: row.get(2)?,
        rule: row.get(3)?,
        tag: row.get(4)?,
        object: row.get(5)?,
        starts_at: row.get(6)?,
        ends_at: row.get(7)?,
        comment: row.get(8)?,
        created_by: row.get(9)?,
        created_at: row.get(10)?,
    })
}

/// Bumps the counter other processes' changes are noticed by.
fn bump_generation(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE alert_control SET generation = generation + 1 WHERE id = 1",
        [],
    )
    .map(drop)
}

impl Store {
    /// Open alerts and the next id, for the alert thread's start.
    pub fn load_alerts(&self) -> Result<LoadedAlerts> {
        let db = self.lock();
        let open = db
            .prepare(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE state != 'resolved' ORDER BY id"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([], alert_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.err(e))?;
        let max_row: i64 = db
            .query_row("SELECT coalesce(max(id), 0) FROM alerts", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let max_seq: i64 = db
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'alerts'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or(0);
        Ok(LoadedAlerts {
            open,
            next_id: max_row.max(max_seq) + 1,
        })
    }

    /// Writes what the alert thread changed, in one transaction. Outbox events whose key is
    /// already stored are left as they are (a retry after a failed commit writes them again).
    pub fn save_alert_changes(&self, changes: &AlertChanges) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        {
            // Cancelled pending alerts go first: a new alert of the same (rule, host, object)
            // in the same batch would otherwise meet the old row in the unique index of open
            // alerts, fail the whole batch, and fail it again at every retry.
            let mut delete = tx
                .prepare_cached("DELETE FROM alerts WHERE id = ?1 AND state = 'pending'")
                .map_err(|e| self.err(e))?;
            for id in &changes.deletes {
                delete.execute([id]).map_err(|e| self.err(e))?;
            }
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO alerts (id, rule, host_id, host, object, guest, label, state,
                        severity, value, threshold, summary, since, fired_at, changed_at,
                        resolved_at, resolution, live, announced, last_notified_at, repeats,
                        suppressed_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21, ?22)
                     ON CONFLICT (id) DO UPDATE SET host = excluded.host,
                        guest = excluded.guest, label = excluded.label, state = excluded.state,
                        severity = excluded.severity, value = excluded.value,
                        threshold = excluded.threshold, summary = excluded.summary,
                        since = excluded.since, fired_at = excluded.fired_at,
                        changed_at = excluded.changed_at, resolved_at = excluded.resolved_at,
                        resolution = excluded.resolution, live = excluded.live,
                        announced = excluded.announced,
                        last_notified_at = excluded.last_notified_at,
                        repeats = excluded.repeats, suppressed_by = excluded.suppressed_by",
                )
                .map_err(|e| self.err(e))?;
            for a in &changes.upserts {
                upsert
                    .execute(params![
                        a.id,
                        a.rule,
                        a.host_id,
                        a.host,
                        a.object,
                        a.guest,
                        a.label,
                        a.state.as_str(),
                        a.severity.as_str(),
                        a.value.filter(|v| v.is_finite()),
                        a.threshold.filter(|v| v.is_finite()),
                        a.summary,
                        a.since,
                        a.fired_at,
                        a.changed_at,
                        a.resolved_at,
                        a.resolution,
                        a.live,
                        a.announced.map(Severity::as_str),
                        a.last_notified_at,
                        a.repeats,
                        a.suppressed_by,
                    ])
                    .map_err(|e| self.err(e))?;
            }
            let mut event = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alert_outbox (key, alert_id, kind, created_at, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.err(e))?;
            for e in &changes.events {
                event
                    .execute(params![
                        e.key,
                        e.alert_id,
                        e.kind.as_str(),
                        e.created_at,
                        e.payload
                    ])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Open (pending and firing) alerts, by id.
    pub fn open_alerts(&self) -> Result<Vec<AlertRecord>> {
        Ok(self.load_alerts()?.open)
    }

    /// One alert by id.
    pub fn alert(&self, id: i64) -> Result<Option<AlertRecord>> {
        self.lock()
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                [id],
                alert_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Resolved alerts, newest first.
    pub fn alert_history(&self, query: &HistoryQuery) -> Result<Vec<AlertRecord>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE state = 'resolved'
                   AND (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR rule = ?2)
                   AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![query.host, query.rule, query.before_id, limit],
                alert_from_row,
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Acknowledges firing alert `id`: its repeats stop until it resolves (or `expires_at`).
    pub fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        comment: Option<&str>,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<AckOutcome> {
        let mut db = self.lock();
        let tx = super::main_write(&mut db).map_err(|e| self.err(e))?;
        let state: Option<String> = tx
            .query_row("SELECT state FROM alerts WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let outcome = match state.as_deref().map(AlertState::parse) {
            None => AckOutcome::NotFound,
            Some(Some(AlertState::Firing)) => {
                tx.execute(
                    "UPDATE alerts SET acked_at = ?2, acked_by = ?3, ack_comment = ?4,
                        ack_expires_at = ?5 WHERE id = ?1",
                    params![id, now, by, comment, expires_at],
                )
                .map_err(|e| self.err(e))?;
                bump_generation(&tx).map_err(|e| self.err(e))?;
                AckOutcome::Acknowledged
            }
            Some(other) => AckOutcome::NotFiring(other.unwrap_or(AlertState::Resolved)),
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(outcome)
    }

    /// The acknowledgement of each alert in `ids` that has one.
    pub fn alert_acks(&self, ids: &[i64]) -> Result<Vec<(i64, Ack)>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT acked_at, acked_by, ack_comment, ack_expires_at FROM alerts
                 WHERE id = ?1 AND acked_at IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for &id in ids {
            let ack = stmt
                .query_row([id], |row| {
                    Ok(Ack {
                        at: row.get(0)?,
                        by: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        comment: row.get(2)?,
                        expires_at: row.get(3)?,
                    })
                })
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(ack) = ack {
                out.push((id, ack));
            }
        }
        Ok(out)
    }

    /// Adds a silence; returns its id.
    pub fn add_silence(&self, silence: &NewSilence, now: i64) -> Result<i64> {
        if silence.ends_at <= silence.starts_at {
            return Err(Error::Usage("a silence must end after it starts".into()));
        }
        let mut db = self.lock();
        let tx = super::main_write(&mut db).map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO silences (host, guest, rule, tag, object, starts_at, ends_at, comment,
                created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                silence.host,
                silence.guest,
                silence.rule,
                silence.tag,
                silence.object,
                silence.starts_at,
                silence.ends_at,
                silence.comment,
                silence.created_by,
                now
            ],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        bump_generation(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Ends silence `id` now (it stays listed as ended). `false` when there is no such
    /// silence or it has ended already.
    pub fn end_silence(&self, id: i64, now: i64) -> Result<bool> {
        let mut db = self.lock();
        let tx = super::main_write(&mut db).map_err(|e| self.err(e))?;
        let changed = tx
            .execute(
                "UPDATE silences SET ends_at = max(starts_at, ?2) WHERE id = ?1 AND ends_at > ?2",
                params![id, now],
            )
            .map_err(|e| self.err(e))?;
        if changed > 0 {
            bump_generation(&tx).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Silences that have not ended at `now` (active or starting later); with
    /// `ended_since`, also those that ended after it. By start.
    pub fn silences(&self, now: i64, ended_since: Option<i64>) -> Result<Vec<SilenceRecord>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(&format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ?1 ORDER BY starts_at, id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([ended_since.unwrap_or(now).min(now)], silence_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Outbox events after id `after`, oldest first.
    pub fn outbox(&self, after: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT id, key, alert_id, kind, created_at, payload, delivered_at
                 FROM alert_outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], |row| {
                Ok(OutboxRow {
                    id: row.get(0)?,
                    event: OutboxEvent {
                        key: row.get(1)?,
                        alert_id: row.get(2)?,
                        kind: EventKind::parse(&row.get::<_, String>(3)?),
                        created_at: row.get(4)?,
                        payload: row.get(5)?,
                    },
                    delivered_at: row.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Deletes resolved alerts, outbox events and silences that ended before `before`.
    /// Returns how many rows went.
    pub fn prune_alert_history(&self, before: i64) -> Result<usize> {
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        let mut n = tx
            .execute(
                "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?1",
                [before],
            )
            .map_err(|e| self.err(e))?;
        n += tx
            .execute("DELETE FROM alert_outbox WHERE created_at < ?1", [before])
            .map_err(|e| self.err(e))?;
        n += tx
            .execute("DELETE FROM silences WHERE ends_at < ?1", [before])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The counter of acknowledgements and silences written by any process. Read through
    /// the roster watch's own connection: never waits for ingestion.
    pub fn alert_control_generation(&self) -> Result<i64> {
        self.roster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .query_row(
                "SELECT generation FROM alert_control WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Synchronous;
    use crate::testutil::TempDir;

    fn record(id: i64, state: AlertState) -> AlertRecord {
        AlertRecord {
            id,
            rule: "cpu_high".into(),
            host_id: 1,
            host: "pve1".into(),
            object: String::new(),
            guest: None,
            label: None,
            state,
            severity: Severity::Warning,
            value: Some(93.0),
            threshold: Some(90.0),
            summary: "CPU 93 %".into(),
            since: 100,
            fired_at: (state != AlertState::Pending).then_some(400),
            changed_at: 400,
            resolved_at: (state == AlertState::Resolved).then_some(900),
            resolution: None,
            live: true,
            announced: Some(Severity::Warning),
            last_notified_at: Some(400),
            repeats: 0,
            suppressed_by: None,
            ack: None,
        }
    }

    #[test]
    fn alerts_round_trip_and_ids_are_never_reused() {
        let dir = TempDir::new("store-alerts");
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        assert_eq!(store.load_alerts().unwrap().next_id, 1);
        let firing = record(1, AlertState::Firing);
        let pending = AlertRecord {
            object: "x".into(),
            ..record(2, AlertState::Pending)
        };
        store
            .save_alert_changes(&AlertChanges {
                upserts: vec![firing.clone(), pending],
                deletes: Vec::new(),
                events: vec![OutboxEvent {
                    key: "alert/1/firing/warning".into(),
                    alert_id: 1,
                    kind: EventKind::Firing,
                    created_at: 400,
                    payload: "{}".into(),
                }],
            })
            .unwrap();
        let loaded = store.load_alerts().unwrap();
        assert_eq!(loaded.open.len(), 2);
        assert_eq!(loaded.open[0], firing);
        assert_eq!(loaded.next_id, 3);
        // A cancelled pending alert goes; its id is not handed out again.
        store
            .save_alert_changes(&AlertChanges {
                deletes: vec![2],
                // The same event again (a retried write) is stored once.
                events: vec![OutboxEvent {
                    key: "alert/1/firing/warning".into(),
                    alert_id: 1,
                    kind: EventKind::Firing,
                    created_at: 401,
                    payload: "{\"again\":1}".into(),
                }],
                ..AlertChanges::default()
            })
            .unwrap();
        let loaded = store.load_alerts().unwrap();
        assert_eq!(loaded.open.len(), 1);
        assert_eq!(loaded.next_id, 3);
        let outbox = store.outbox(0, 10).unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].event.payload, "{}");
        // Two open alerts for one (rule, host, object) cannot exist.
        let twin = AlertRecord {
            id: 5,
            ..record(5, AlertState::Firing)
        };
        assert!(store
            .save_alert_changes(&AlertChanges {
                upserts: vec![twin],
                ..AlertChanges::default()
            })
            .is_err());
    }

    #[test]
    fn a_pending_alert_cancelled_and_begun_again_in_one_batch_is_saved() {
        let dir = TempDir::new("store-alerts-again");
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        store
            .save_alert_changes(&AlertChanges {
                upserts: vec![record(1, AlertState::Pending)],
                ..AlertChanges::default()
            })
            .unwrap();
        // The condition cleared (pending 1 cancelled) and came back (pending 2), same key,
        // both before the alert thread wrote.
        store
            .save_alert_changes(&AlertChanges {
                upserts: vec![record(2, AlertState::Pending)],
                deletes: vec![1],
                ..AlertChanges::default()
            })
            .unwrap();
        let loaded = store.load_alerts().unwrap();
        assert_eq!(loaded.open.len(), 1);
        assert_eq!(loaded.open[0].id, 2);
    }

    #[test]
    fn acks_silences_and_history() {
        let dir = TempDir::new("store-alerts-acks");
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        store
            .save_alert_changes(&AlertChanges {
                upserts: vec![
                    record(1, AlertState::Firing),
                    AlertRecord {
                        object: "p".into(),
                        ..record(2, AlertState::Pending)
                    },
                    AlertRecord {
                        object: "r".into(),
                        ..record(3, AlertState::Resolved)
                    },
                ],
                ..AlertChanges::default()
            })
            .unwrap();
        let generation = store.alert_control_generation().unwrap();
        assert_eq!(
            store
                .acknowledge_alert(2, "admin", None, None, 500)
                .unwrap(),
            AckOutcome::NotFiring(AlertState::Pending)
        );
        assert_eq!(
            store
                .acknowledge_alert(9, "admin", None, None, 500)
                .unwrap(),
            AckOutcome::NotFound
        );
        assert_eq!(
            store
                .acknowledge_alert(1, "admin", Some("on it"), Some(900), 500)
                .unwrap(),
            AckOutcome::Acknowledged
        );
        assert_eq!(store.alert_control_generation().unwrap(), generation + 1);
        let acks = store.alert_acks(&[1, 2]).unwrap();
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].1.comment.as_deref(), Some("on it"));
        assert!(acks[0].1.holds(899) && !acks[0].1.holds(900));
        // The alert thread's writes leave the acknowledgement alone.
        store
            .save_alert_changes(&AlertChanges {
                upserts: vec![AlertRecord {
                    value: Some(99.0),
                    ..record(1, AlertState::Firing)
                }],
                ..AlertChanges::default()
            })
            .unwrap();
        assert_eq!(store.alert(1).unwrap().unwrap().ack.unwrap().by, "admin");

        let id = store
            .add_silence(
                &NewSilence {
                    host: Some("pve1".into()),
                    guest: None,
                    rule: Some("cpu_high".into()),
                    tag: None,
                    object: None,
                    starts_at: 500,
                    ends_at: 8000,
                    comment: "kernel update".into(),
                    created_by: "admin".into(),
                },
                500,
            )
            .unwrap();
        assert_eq!(store.silences(600, None).unwrap().len(), 1);
        assert!(store.end_silence(id, 700).unwrap());
        assert!(!store.end_silence(id, 800).unwrap(), "ended already");
        assert!(store.silences(800, None).unwrap().is_empty());
        assert_eq!(store.silences(800, Some(600)).unwrap().len(), 1);
        assert_eq!(store.alert_control_generation().unwrap(), generation + 3);

        let history = store
            .alert_history(&HistoryQuery {
                limit: 10,
                ..HistoryQuery::default()
            })
            .unwrap();
        assert_eq!(history.iter().map(|a| a.id).collect::<Vec<_>>(), [3]);
        assert_eq!(store.prune_alert_history(1000).unwrap(), 2);
        assert!(store.alert(3).unwrap().is_none());
        assert!(store.alert(1).unwrap().is_some(), "open alerts stay");
    }
}
