//! Notification delivery in the main file (migration 7): messages, the (event, channel)
//! deliveries they carry, and how far the outbox has been routed.
//!
//! Only the delivery thread writes here (besides pruning). Routing a batch of outbox events
//! (their deliveries, new or joined messages, the new `routed_until`) is one transaction, so
//! a crash routes a batch entirely or not at all; `(outbox_id, channel)` is the primary key
//! of `notify_deliveries`, so no event is ever put in two messages for one channel. A message
//! becomes `sent` only after its receiver accepted it, in a transaction of its own.

use rusqlite::{params, OptionalExtension};

use super::Store;
use crate::error::Result;

/// Where an event goes on one channel (see `notify::plan::Target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub channel: String,
    pub escalation: bool,
    pub due_at: i64,
    pub held: bool,
}

/// A routed outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEvent {
    pub outbox_id: i64,
    pub host: String,
    pub deliveries: Vec<NewDelivery>,
}

/// One event of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    pub outbox_id: i64,
    pub alert_id: i64,
    pub payload: String,
}

/// A message due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMessage {
    pub id: i64,
    pub channel: String,
    pub host: String,
    pub escalation: bool,
    pub held: bool,
    pub attempts: u32,
    pub events: Vec<MessageEvent>,
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEnd {
    Sent,
    /// Dead-lettered: failed `max_attempts` times, or rejected.
    Dead,
    /// Nothing left to say (held or escalated, and the alert no longer fires).
    Dropped,
}

impl MessageEnd {
    fn as_str(self) -> &'static str {
        match self {
            MessageEnd::Sent => "sent",
            MessageEnd::Dead => "dead",
            MessageEnd::Dropped => "dropped",
        }
    }
}

/// A dead-lettered message, for the Alerts page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub channel: String,
    pub host: String,
    pub attempts: u32,
    pub last_error: String,
    pub finished_at: i64,
    /// The idempotency keys of its events.
    pub keys: Vec<String>,
}

impl Store {
    /// The last outbox id routed.
    pub fn notify_routed_until(&self) -> Result<i64> {
        self.lock()
            .query_row(
                "SELECT routed_until FROM notify_progress WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// The channels earlier events of alert `alert_id` went to, or wait for in a message that
    /// will go out (an escalation still waiting may yet be dropped: not counted).
    pub fn alert_channels(&self, alert_id: i64) -> Result<Vec<String>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT DISTINCT d.channel FROM alert_outbox o
                 JOIN notify_deliveries d ON d.outbox_id = o.id
                 JOIN notify_messages m ON m.id = d.message_id
                 WHERE o.alert_id = ?1
                   AND (m.state = 'sent' OR (m.state = 'pending' AND m.escalation = 0))
                 ORDER BY d.channel",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([alert_id], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Whether a firing or repeat event of `alert_id` was sent on `channel`.
    pub fn announced_on(&self, alert_id: i64, channel: &str) -> Result<bool> {
        self.lock()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM alert_outbox o
                 JOIN notify_deliveries d ON d.outbox_id = o.id AND d.channel = ?2
                 JOIN notify_messages m ON m.id = d.message_id
                 WHERE o.alert_id = ?1 AND o.kind != 'resolved' AND m.state = 'sent')",
                params![alert_id, channel],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Writes the deliveries of routed events and moves `routed_until`, in one transaction.
    /// An event joins the pending, never-tried message of its host and channel whose group
    /// window is still open (same kind: held or not, escalation or not), else opens one due
    /// at `max(due_at, now + group_window)`.
    pub fn save_routes(
        &self,
        routed: &[RoutedEvent],
        routed_until: i64,
        group_window: i64,
        now: i64,
    ) -> Result<()> {
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        {
            let mut exists = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM notify_deliveries
                     WHERE outbox_id = ?1 AND channel = ?2)",
                )
                .map_err(|e| self.err(e))?;
            let mut joinable = tx
                .prepare_cached(
                    "SELECT id FROM notify_messages
                     WHERE state = 'pending' AND attempts = 0 AND channel = ?1 AND host = ?2
                       AND escalation = 0 AND held = ?3 AND group_until > ?4
                     ORDER BY id LIMIT 1",
                )
                .map_err(|e| self.err(e))?;
            let mut open = tx
                .prepare_cached(
                    "INSERT INTO notify_messages (channel, host, escalation, held, state,
                        group_until, due_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7)",
                )
                .map_err(|e| self.err(e))?;
            let mut deliver = tx
                .prepare_cached(
                    "INSERT INTO notify_deliveries (outbox_id, channel, message_id)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for event in routed {
                for d in &event.deliveries {
                    let done: bool = exists
                        .query_row(params![event.outbox_id, d.channel], |r| r.get(0))
                        .map_err(|e| self.err(e))?;
                    if done {
                        continue;
                    }
                    let joined: Option<i64> = if d.escalation {
                        None
                    } else {
                        joinable
                            .query_row(params![d.channel, event.host, d.held, now], |r| r.get(0))
                            .optional()
                            .map_err(|e| self.err(e))?
                    };
                    let message_id = match joined {
                        Some(id) => id,
                        None => {
                            let group_until = now + group_window;
                            let due = if d.escalation {
                                d.due_at
                            } else {
                                d.due_at.max(group_until)
                            };
                            open.execute(params![
                                d.channel,
                                event.host,
                                d.escalation,
                                d.held,
                                group_until,
                                due,
                                now
                            ])
                            .map_err(|e| self.err(e))?;
                            tx.last_insert_rowid()
                        }
                    };
                    deliver
                        .execute(params![event.outbox_id, d.channel, message_id])
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.execute(
                "INSERT INTO notify_progress (id, routed_until) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET routed_until = max(routed_until, ?1)",
                [routed_until],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Pending messages due at `now`, earliest first, with their events in outbox order.
    pub fn due_messages(&self, now: i64, limit: usize) -> Result<Vec<DueMessage>> {
        let db = self.lock();
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let mut stmt = db
            .prepare_cached(
                "SELECT id, channel, host, escalation, held, attempts FROM notify_messages
                 WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let mut messages = stmt
            .query_map(params![now, limit], |r| {
                Ok(DueMessage {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    host: r.get(2)?,
                    escalation: r.get(3)?,
                    held: r.get(4)?,
                    attempts: r.get(5)?,
                    events: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        let mut events = db
            .prepare_cached(
                "SELECT o.id, o.alert_id, o.payload FROM notify_deliveries d
                 JOIN alert_outbox o ON o.id = d.outbox_id
                 WHERE d.message_id = ?1 ORDER BY o.id",
            )
            .map_err(|e| self.err(e))?;
        for m in &mut messages {
            m.events = events
                .query_map([m.id], |r| {
                    Ok(MessageEvent {
                        outbox_id: r.get(0)?,
                        alert_id: r.get(1)?,
                        payload: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?;
        }
        Ok(messages)
    }

    /// When the next pending message is due.
    pub fn next_message_due(&self) -> Result<Option<i64>> {
        self.lock()
            .query_row(
                "SELECT min(due_at) FROM notify_messages WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Ends message `id` after `attempts` attempts. `left_out`: its events that were not
    /// part of what was sent (held ones whose alert ended meanwhile): their deliveries are
    /// removed. Outbox events none of whose messages is pending any more get `delivered_at`.
    pub fn finish_message(
        &self,
        id: i64,
        end: MessageEnd,
        attempts: u32,
        error: Option<&str>,
        left_out: &[i64],
        now: i64,
    ) -> Result<()> {
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE notify_messages SET state = ?2, attempts = ?3, last_error = ?4,
                finished_at = ?5 WHERE id = ?1 AND state = 'pending'",
            params![id, end.as_str(), attempts, error, now],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE alert_outbox SET delivered_at = ?2
             WHERE id IN (SELECT outbox_id FROM notify_deliveries WHERE message_id = ?1)
               AND delivered_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM notify_deliveries d
                   JOIN notify_messages m ON m.id = d.message_id
                   WHERE d.outbox_id = alert_outbox.id AND m.state = 'pending')",
            params![id, now],
        )
        .map_err(|e| self.err(e))?;
        for outbox_id in left_out {
            tx.execute(
                "DELETE FROM notify_deliveries WHERE message_id = ?1 AND outbox_id = ?2",
                params![id, outbox_id],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records a failed attempt of message `id`: tried again at `next_at`.
    pub fn retry_message(&self, id: i64, attempts: u32, next_at: i64, error: &str) -> Result<()> {
        self.lock_for_background()
            .execute(
                "UPDATE notify_messages SET attempts = ?2, due_at = ?3, last_error = ?4
                 WHERE id = ?1 AND state = 'pending'",
                params![id, attempts, next_at, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Moves message `id` to `due_at` without an attempt (its channel's rate limit).
    pub fn postpone_message(&self, id: i64, due_at: i64) -> Result<()> {
        self.lock_for_background()
            .execute(
                "UPDATE notify_messages SET due_at = ?2 WHERE id = ?1 AND state = 'pending'",
                params![id, due_at],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Dead-lettered messages, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let db = self.lock();
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let mut stmt = db
            .prepare_cached(
                "SELECT m.id, m.channel, m.host, m.attempts, coalesce(m.last_error, ''),
                    coalesce(m.finished_at, 0),
                    (SELECT group_concat(o.key, ' ') FROM notify_deliveries d
                     JOIN alert_outbox o ON o.id = d.outbox_id WHERE d.message_id = m.id)
                 FROM notify_messages m WHERE m.state = 'dead'
                 ORDER BY m.finished_at DESC, m.id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit], |r| {
                let keys: Option<String> = r.get(6)?;
                Ok(DeadLetter {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    host: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    finished_at: r.get(5)?,
                    keys: keys
                        .unwrap_or_default()
                        .split(' ')
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Pending messages by channel.
    pub fn pending_messages(&self) -> Result<Vec<(String, u64)>> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT channel, count(*) FROM notify_messages WHERE state = 'pending'
                 GROUP BY channel ORDER BY channel",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Deletes finished messages (and their deliveries) that ended before `before`.
    pub fn prune_notifications(&self, before: i64) -> Result<usize> {
        let mut db = self.lock_for_background();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        let mut n = tx
            .execute(
                "DELETE FROM notify_deliveries WHERE message_id IN (SELECT id FROM
                 notify_messages WHERE state != 'pending' AND finished_at < ?1)",
                [before],
            )
            .map_err(|e| self.err(e))?;
        n += tx
            .execute(
                "DELETE FROM notify_messages WHERE state != 'pending' AND finished_at < ?1",
                [before],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::alerts::{AlertChanges, EventKind, OutboxEvent};
    use crate::store::Synchronous;
    use crate::testutil::TempDir;

    fn outbox(store: &Store, ids: &[(i64, &str)]) {
        let events = ids
            .iter()
            .map(|(alert, kind)| OutboxEvent {
                key: format!("alert/{alert}/{kind}"),
                alert_id: *alert,
                kind: if *kind == "resolved" {
                    EventKind::Resolved
                } else {
                    EventKind::Firing
                },
                created_at: 1,
                payload: format!("{{\"alert\":{alert}}}"),
            })
            .collect();
        store
            .save_alert_changes(&AlertChanges {
                events,
                ..AlertChanges::default()
            })
            .unwrap();
    }

    fn to(channel: &str, due_at: i64) -> NewDelivery {
        NewDelivery {
            channel: channel.into(),
            escalation: false,
            due_at,
            held: false,
        }
    }

    #[test]
    fn events_of_a_host_group_within_the_window_and_each_is_delivered_once() {
        let dir = TempDir::new("notify-store");
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        // Events written before notifications existed are not routed.
        assert_eq!(store.notify_routed_until().unwrap(), 0);
        outbox(&store, &[(1, "firing"), (2, "firing"), (3, "firing")]);
        let routed = vec![
            RoutedEvent {
                outbox_id: 1,
                host: "a".into(),
                deliveries: vec![to("mail", 100), to("hook", 100)],
            },
            RoutedEvent {
                outbox_id: 2,
                host: "a".into(),
                deliveries: vec![to("mail", 105)],
            },
            RoutedEvent {
                outbox_id: 3,
                host: "b".into(),
                deliveries: vec![to("mail", 105)],
            },
        ];
        store.save_routes(&routed, 3, 30, 100).unwrap();
        // Routing the same events again (a crash before the progress was seen) adds nothing.
        store.save_routes(&routed, 3, 30, 101).unwrap();
        assert_eq!(store.notify_routed_until().unwrap(), 3);
        assert_eq!(store.next_message_due().unwrap(), Some(130));
        assert!(store.due_messages(129, 10).unwrap().is_empty());
        let due = store.due_messages(130, 10).unwrap();
        let shape: Vec<(&str, &str, Vec<i64>)> = due
            .iter()
            .map(|m| {
                (
                    m.channel.as_str(),
                    m.host.as_str(),
                    m.events.iter().map(|e| e.outbox_id).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("mail", "a", vec![1, 2]),
                ("hook", "a", vec![1]),
                ("mail", "b", vec![3])
            ]
        );
        store.retry_message(due[0].id, 1, 140, "500").unwrap();
        store
            .finish_message(due[1].id, MessageEnd::Sent, 1, None, &[], 131)
            .unwrap();
        assert!(store.announced_on(1, "hook").unwrap());
        assert!(!store.announced_on(1, "mail").unwrap());
        // Event 1 still waits on mail: not delivered yet.
        let delivered = |id: i64| {
            store
                .outbox(id - 1, 1)
                .unwrap()
                .first()
                .and_then(|r| r.delivered_at)
        };
        assert_eq!(delivered(1), None);
        store
            .finish_message(due[0].id, MessageEnd::Dead, 8, Some("gone"), &[], 150)
            .unwrap();
        assert_eq!(delivered(1), Some(150));
        let dead = store.dead_letters(10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].keys, vec!["alert/1/firing", "alert/2/firing"]);
        // Where alert 1 was heard of: hook (sent); not mail (dead-lettered), not an
        // escalation that is still waiting (it may yet be dropped).
        store
            .save_routes(
                &[RoutedEvent {
                    outbox_id: 1,
                    host: "a".into(),
                    deliveries: vec![NewDelivery {
                        channel: "pager".into(),
                        escalation: true,
                        due_at: 10_000,
                        held: false,
                    }],
                }],
                3,
                30,
                160,
            )
            .unwrap();
        assert_eq!(store.alert_channels(1).unwrap(), vec!["hook"]);
        // A new event after the window opens a new message.
        outbox(&store, &[(1, "resolved")]);
        store
            .save_routes(
                &[RoutedEvent {
                    outbox_id: 4,
                    host: "a".into(),
                    deliveries: vec![to("hook", 200)],
                }],
                4,
                0,
                200,
            )
            .unwrap();
        assert_eq!(store.due_messages(200, 10).unwrap()[0].events.len(), 1);
        assert_eq!(
            store.pending_messages().unwrap(),
            vec![("hook".into(), 1), ("mail".into(), 1), ("pager".into(), 1)]
        );
        assert!(store.prune_notifications(1000).unwrap() >= 2);
    }
}
