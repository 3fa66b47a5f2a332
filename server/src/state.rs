//! The fleet in memory: every registered host's row (status, since, last seen, versions) and
//! its newest fast, medium and slow sample, typed. Pages, the JSON API and `/metrics` read it;
//! none of them parses JSON or touches the database to show a host.
//!
//! How it stays true:
//! - loaded from SQLite at start (`hosts` and `latest`, each stored sample parsed once);
//! - a sample is recorded right after its transaction committed (by the connection thread
//!   that pushed it), and only if it is not older than the one held (the rule `latest` follows);
//! - status changes (join, leave, shutdown) come from the store's answer to the update, under
//!   the registry's ordering, so memory and database change in the same order;
//! - hosts registered or removed by another process (`register-host`, `remove-host`) are
//!   picked up by `reconcile`, which the maintenance thread runs every few seconds with the
//!   ids read through its own connection; a join of a host not known yet adds it at once.
//!
//! Reading is cheap and never holds up ingestion: each host is an immutable `Arc<HostState>`
//! snapshot; a writer builds the host's next snapshot (sharing the unchanged samples, which
//! are `Arc`s too) and swaps it in under a short lock; readers clone the `Arc`s under the same
//! lock and then read without any lock, however long they take.
//!
//! Who else wants to know: `subscribe` hands out a receiver of `HostEvent`s — a host's new
//! newest sample, a status change, a host added or removed — sent right after the change with
//! `try_send` on a bounded channel, so a slow subscriber loses events (counted in
//! `dropped_events`) rather than slowing ingestion; it should re-read `snapshot` on its own
//! timer as well. Alert rules are meant to work this way.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use common::events::MetricKind;
use common::sample::{FastSample, GuestConfig, MediumSample, Sample, SlowSample, ZfsPool};

use crate::error::Result;
use crate::store::{Host, HostStatus, LatestRow, Store};

/// A host online whose newest fast sample is older than this many of its own intervals is
/// stale: connected, but its numbers are not current.
pub const STALE_INTERVALS: i64 = 3;
/// ... and never sooner than this many seconds (agents send a fast sample every 30 s by
/// default; a replayed backlog or a slow collector must not flap the state).
pub const STALE_MIN_SECONDS: i64 = 90;

/// A sample and when the agent took it (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest<T> {
    pub collected_at: i64,
    pub sample: T,
}

/// One host as everything above the store sees it. Immutable once shared.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    pub host: Host,
    pub fast: Option<Arc<Latest<FastSample>>>,
    pub medium: Option<Arc<Latest<MediumSample>>>,
    pub slow: Option<Arc<Latest<SlowSample>>>,
    /// Seconds between the two newest fast samples: how often this agent sends them.
    pub fast_interval: Option<i64>,
}

/// The worst thing about a host right now, in the order the overview lists problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// Registered, its agent not connected (any more).
    Offline,
    /// Connected, but its newest fast sample is old (see `STALE_INTERVALS`).
    Stale,
    /// Connected and current, with a ZFS pool that is not ONLINE.
    Degraded,
    /// Registered, its agent never connected.
    NeverConnected,
    Ok,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Condition::Offline,
        Condition::Stale,
        Condition::Degraded,
        Condition::NeverConnected,
        Condition::Ok,
    ];

    /// Whether an admin should look at it: offline, stale or degraded.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Condition::Offline | Condition::Stale | Condition::Degraded
        )
    }

    /// `offline`, `stale`, `degraded`, `never_connected`, `ok`: in URLs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Offline => "offline",
            Condition::Stale => "stale",
            Condition::Degraded => "degraded",
            Condition::NeverConnected => "never_connected",
            Condition::Ok => "ok",
        }
    }

    pub fn parse(text: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Running (or paused), stopped and total guests of a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestCounts {
    pub running: usize,
    pub stopped: usize,
    pub total: usize,
}

impl HostState {
    /// A host with no samples yet.
    pub fn new(host: Host) -> HostState {
        HostState {
            host,
            fast: None,
            medium: None,
            slow: None,
            fast_interval: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.host.name
    }

    pub fn is_online(&self) -> bool {
        self.host.status == HostStatus::Online
    }

    pub fn fast(&self) -> Option<&FastSample> {
        self.fast.as_deref().map(|l| &l.sample)
    }

    pub fn medium(&self) -> Option<&MediumSample> {
        self.medium.as_deref().map(|l| &l.sample)
    }

    pub fn slow(&self) -> Option<&SlowSample> {
        self.slow.as_deref().map(|l| &l.sample)
    }

    pub fn has_samples(&self) -> bool {
        self.fast.is_some() || self.medium.is_some() || self.slow.is_some()
    }

    /// When the newest sample of `kind` was taken.
    pub fn collected_at(&self, kind: MetricKind) -> Option<i64> {
        match kind {
            MetricKind::Fast => self.fast.as_ref().map(|l| l.collected_at),
            MetricKind::Medium => self.medium.as_ref().map(|l| l.collected_at),
            MetricKind::Slow => self.slow.as_ref().map(|l| l.collected_at),
        }
    }

    /// The pool in the worst state (ties: the first by name); `None` without pools.
    pub fn worst_pool(&self) -> Option<&ZfsPool> {
        self.medium()?.worst_pool()
    }

    /// Whether a pool is not ONLINE.
    pub fn has_degraded_pool(&self) -> bool {
        self.worst_pool().is_some_and(|p| !p.health.is_online())
    }

    pub fn guest_counts(&self) -> GuestCounts {
        let guests = self.fast().map(|f| f.guests.as_slice()).unwrap_or_default();
        let running = guests.iter().filter(|g| g.status.is_up()).count();
        GuestCounts {
            running,
            stopped: guests.len() - running,
            total: guests.len(),
        }
    }

    /// The configuration (name, tags, ...) of guest `vmid` from the medium sample.
    pub fn guest_config(&self, vmid: u32) -> Option<&GuestConfig> {
        self.medium()?.guest_config(vmid)
    }

    /// The Proxmox version: from the newest slow sample, else what the hosts table remembers.
    pub fn proxmox_version(&self) -> Option<&str> {
        self.slow()
            .and_then(|s| s.pve_version.as_deref())
            .or(self.host.proxmox_version.as_deref())
    }

    /// The ZFS version: from the newest slow sample, else what the hosts table remembers.
    pub fn zfs_version(&self) -> Option<&str> {
        self.slow()
            .and_then(|s| s.zfs_version.as_deref())
            .or(self.host.zfs_version.as_deref())
    }

    /// The Proxmox cluster the node belongs to; `None` for a standalone node (or not known).
    pub fn cluster_name(&self) -> Option<&str> {
        self.slow()?.cluster.as_ref().map(|c| c.name.as_str())
    }

    /// Every tag of the host's guests, sorted, without repeats.
    pub fn guest_tags(&self) -> Vec<&str> {
        let mut tags: Vec<&str> = self
            .medium()
            .map(|m| {
                m.guests
                    .iter()
                    .flat_map(|g| g.tags.iter().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    /// How many seconds of silence make this host stale.
    pub fn stale_after(&self) -> i64 {
        self.fast_interval
            .map_or(0, |i| i.saturating_mul(STALE_INTERVALS))
            .max(STALE_MIN_SECONDS)
    }

    /// Whether the host is online but its newest fast sample (or, without one, the time it
    /// came online) is older than `stale_after` at `now`.
    pub fn is_stale(&self, now: i64) -> bool {
        if !self.is_online() {
            return false;
        }
        let since = self
            .fast
            .as_ref()
            .map(|l| l.collected_at)
            .or(self.host.status_changed_at)
            .or(self.host.last_seen_at);
        since.is_some_and(|t| now - t > self.stale_after())
    }

    /// The worst thing about the host at `now`.
    pub fn condition(&self, now: i64) -> Condition {
        match self.host.status {
            HostStatus::Offline => Condition::Offline,
            HostStatus::NeverConnected => Condition::NeverConnected,
            HostStatus::Online if self.is_stale(now) => Condition::Stale,
            HostStatus::Online if self.has_degraded_pool() => Condition::Degraded,
            HostStatus::Online => Condition::Ok,
        }
    }

    /// Takes `sample` (collected at `collected_at`, received at `received_at`) if it is not
    /// older than the one held; the host's `last_seen_at` and versions follow the database's
    /// rules either way. Returns whether the newest sample changed.
    fn take_sample(&mut self, sample: Sample, collected_at: i64, received_at: i64) -> bool {
        self.host.last_seen_at = Some(self.host.last_seen_at.unwrap_or(0).max(received_at));
        fn newer<T>(slot: &Option<Arc<Latest<T>>>, collected_at: i64) -> bool {
            slot.as_ref()
                .map_or(true, |l| collected_at >= l.collected_at)
        }
        match sample {
            Sample::Fast(sample) => {
                if !newer(&self.fast, collected_at) {
                    return false;
                }
                if let Some(previous) = &self.fast {
                    let gap = collected_at - previous.collected_at;
                    if gap > 0 {
                        self.fast_interval = Some(gap);
                    }
                }
                self.fast = Some(Arc::new(Latest {
                    collected_at,
                    sample,
                }));
            }
            Sample::Medium(sample) => {
                if !newer(&self.medium, collected_at) {
                    return false;
                }
                self.medium = Some(Arc::new(Latest {
                    collected_at,
                    sample,
                }));
            }
            Sample::Slow(sample) => {
                // The hosts table keeps the versions of any slow sample (COALESCE), newest or not.
                if let Some(v) = &sample.pve_version {
                    self.host.proxmox_version = Some(v.clone());
                }
                if let Some(v) = &sample.zfs_version {
                    self.host.zfs_version = Some(v.clone());
                }
                if !newer(&self.slow, collected_at) {
                    return false;
                }
                self.slow = Some(Arc::new(Latest {
                    collected_at,
                    sample,
                }));
            }
        }
        true
    }
}

/// A change to the fleet, sent to subscribers right after it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// The host has a new newest sample of `kind`.
    Sample {
        host_id: i64,
        kind: MetricKind,
        collected_at: i64,
    },
    /// The host went online or offline.
    Status {
        host_id: i64,
        status: HostStatus,
    },
    /// A host appeared (registered, or first seen by this server process).
    Added {
        host_id: i64,
    },
    Removed {
        host_id: i64,
    },
}

/// Every host, by name, as `Arc` snapshots.
#[derive(Default)]
struct Hosts {
    by_name: BTreeMap<String, Arc<HostState>>,
    /// Name and when (in `added` counts) the host came into memory, by id.
    names: HashMap<i64, (String, u64)>,
    /// Counts hosts coming into memory: `reconcile` must not drop a host that came in after
    /// the database's ids were read.
    added: u64,
}

impl Hosts {
    fn name(&self, id: i64) -> Option<&String> {
        self.names.get(&id).map(|(name, _)| name)
    }

    fn insert(&mut self, state: HostState) {
        self.added += 1;
        self.names
            .insert(state.host.id, (state.host.name.clone(), self.added));
        self.by_name
            .insert(state.host.name.clone(), Arc::new(state));
    }
}

/// Where the host roster stood when a caller read the database's ids (see `reconcile`).
#[derive(Debug, Clone, Copy)]
pub struct RosterMark(u64);

/// Hands an event to one subscriber without waiting.
type Subscriber = Box<dyn Fn(&HostEvent) -> Result<(), TrySendError<()>> + Send>;

/// The fleet in memory (see the module doc).
#[derive(Default)]
pub struct HostStates {
    hosts: Mutex<Hosts>,
    subscribers: Mutex<Vec<Subscriber>>,
    dropped_events: AtomicU64,
}

impl HostStates {
    /// Every registered host with its newest samples, from the database. A stored sample this
    /// version cannot read is logged and left out.
    pub fn load(store: &Store) -> Result<HostStates> {
        let states = HostStates::default();
        let mut rows_by_host: HashMap<i64, Vec<LatestRow>> = HashMap::new();
        for row in store.all_latest()? {
            rows_by_host.entry(row.host_id).or_default().push(row);
        }
        let mut hosts = states.lock();
        for host in store.list_hosts()? {
            let mut state = HostState::new(host);
            for row in rows_by_host.remove(&state.host.id).unwrap_or_default() {
                match Sample::from_json(row.kind, &row.data) {
                    Ok(sample) => {
                        // Loading keeps the stored row as it is: no last-seen update.
                        let last_seen = state.host.last_seen_at;
                        state.take_sample(sample, row.collected_at, 0);
                        state.host.last_seen_at = last_seen;
                    }
                    Err(e) => log::warn!(
                        "the stored {} sample of {} does not match the schema ({e}); not shown",
                        row.kind.as_str(),
                        state.host.name
                    ),
                }
            }
            hosts.insert(state);
        }
        drop(hosts);
        Ok(states)
    }

    fn lock(&self) -> MutexGuard<'_, Hosts> {
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every host, by name.
    pub fn snapshot(&self) -> Vec<Arc<HostState>> {
        self.lock().by_name.values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<HostState>> {
        self.lock().by_name.get(name).cloned()
    }

    pub fn get_by_id(&self, id: i64) -> Option<Arc<HostState>> {
        let hosts = self.lock();
        let name = hosts.name(id)?;
        hosts.by_name.get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a sample of host `host_id` that was just committed. A host not known here
    /// (removed meanwhile) is ignored.
    pub fn record_sample(&self, host_id: i64, sample: Sample, collected_at: i64, received_at: i64) {
        let kind = sample.kind();
        let changed = self.update(host_id, |state| {
            state.take_sample(sample, collected_at, received_at)
        });
        if changed == Some(true) {
            self.notify(HostEvent::Sample {
                host_id,
                kind,
                collected_at,
            });
        }
    }

    /// Sets a host's row as the store returned it after an update (join, leave), adding the
    /// host when it is new to this process.
    pub fn set_row(&self, host: Host) {
        let host_id = host.id;
        let status = host.status;
        let mut hosts = self.lock();
        let previous = hosts
            .name(host_id)
            .and_then(|n| hosts.by_name.get(n))
            .cloned();
        let event = match previous {
            Some(old) => {
                let mut next = HostState::clone(&old);
                next.host = host;
                hosts.by_name.insert(next.host.name.clone(), Arc::new(next));
                (old.host.status != status).then_some(HostEvent::Status { host_id, status })
            }
            None => {
                hosts.insert(HostState::new(host));
                Some(HostEvent::Added { host_id })
            }
        };
        drop(hosts);
        if let Some(event) = event {
            self.notify(event);
        }
    }

    /// Every online host becomes offline at `now` (what `Store::mark_all_offline` did to the
    /// rows).
    pub fn mark_all_offline(&self, now: i64) {
        let mut changed = Vec::new();
        let mut hosts = self.lock();
        for state in hosts.by_name.values_mut() {
            if state.host.status == HostStatus::Online {
                let mut next = HostState::clone(state);
                next.host.status = HostStatus::Offline;
                next.host.status_changed_at = Some(now);
                next.host.updated_at = now;
                changed.push(next.host.id);
                *state = Arc::new(next);
            }
        }
        drop(hosts);
        for host_id in changed {
            self.notify(HostEvent::Status {
                host_id,
                status: HostStatus::Offline,
            });
        }
    }

    /// Taken before reading the database's host ids for `reconcile`.
    pub fn roster_mark(&self) -> RosterMark {
        RosterMark(self.lock().added)
    }

    /// Brings the set of hosts in line with the database's `ids`, read after `mark` was
    /// taken: hosts no longer there are dropped (unless they came into memory after `mark`:
    /// a join of a host registered meanwhile), new ones are read with `load_row` and added.
    /// Hosts in both keep what memory holds (at least as new as any row read before).
    /// Returns the ids of the hosts dropped.
    pub fn reconcile(
        &self,
        mark: RosterMark,
        ids: &[i64],
        load_row: impl Fn(i64) -> Result<Option<Host>>,
    ) -> Result<Vec<i64>> {
        let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let (gone, new): (Vec<i64>, Vec<i64>) = {
            let hosts = self.lock();
            (
                hosts
                    .names
                    .iter()
                    .filter(|(id, (_, added))| !wanted.contains(id) && *added <= mark.0)
                    .map(|(id, _)| *id)
                    .collect(),
                ids.iter()
                    .filter(|id| !hosts.names.contains_key(id))
                    .copied()
                    .collect(),
            )
        };
        for &host_id in &gone {
            let mut hosts = self.lock();
            if let Some((name, _)) = hosts.names.remove(&host_id) {
                hosts.by_name.remove(&name);
                drop(hosts);
                log::info!("host {name} was removed from the database; no longer shown");
                self.notify(HostEvent::Removed { host_id });
            }
        }
        for host_id in new {
            if let Some(host) = load_row(host_id)? {
                let mut hosts = self.lock();
                if hosts.names.contains_key(&host_id) {
                    continue; // a join added it meanwhile
                }
                // A name registered again under a new id replaces the old id's entry.
                if let Some(old) = hosts.by_name.get(&host.name).map(|s| s.host.id) {
                    hosts.names.remove(&old);
                }
                hosts.insert(HostState::new(host));
                drop(hosts);
                self.notify(HostEvent::Added { host_id });
            }
        }
        Ok(gone)
    }

    /// A receiver of every `HostEvent` from now on, holding at most `capacity` unread ones
    /// (events past that are dropped and counted, never waited for).
    pub fn subscribe(&self, capacity: usize) -> Receiver<HostEvent> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        self.subscribe_with(tx, |event| event);
        rx
    }

    /// Like `subscribe`, into a channel of the subscriber's own (bounded) queue, each event
    /// wrapped by `wrap`: a thread that waits for other things too (the alert thread's
    /// commands) can wait on one queue.
    pub fn subscribe_with<T: Send + 'static>(&self, tx: SyncSender<T>, wrap: fn(HostEvent) -> T) {
        let deliver = move |event: &HostEvent| {
            tx.try_send(wrap(event.clone())).map_err(|e| match e {
                TrySendError::Full(_) => TrySendError::Full(()),
                TrySendError::Disconnected(_) => TrySendError::Disconnected(()),
            })
        };
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(deliver));
    }

    /// Events a full subscriber could not take.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    fn notify(&self, event: HostEvent) {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if subscribers.is_empty() {
            return;
        }
        subscribers.retain(|deliver| match deliver(&event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Applies `change` to a copy of host `host_id`'s state and swaps the copy in when
    /// `change` says it changed something. `None` when the host is not known.
    fn update(&self, host_id: i64, change: impl FnOnce(&mut HostState) -> bool) -> Option<bool> {
        let mut hosts = self.lock();
        let name = hosts.name(host_id)?.clone();
        let slot = hosts.by_name.get_mut(&name)?;
        let mut next = HostState::clone(slot);
        let changed = change(&mut next);
        if changed || next.host != slot.host {
            *slot = Arc::new(next);
        }
        Some(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{SampleWrite, Synchronous};
    use crate::testutil::TempDir;

    fn host(id: i64, name: &str, status: HostStatus) -> Host {
        Host {
            id,
            name: name.into(),
            agent_version: None,
            proxmox_version: None,
            zfs_version: None,
            status,
            status_changed_at: Some(100),
            last_seen_at: Some(100),
            inserted_at: 1,
            updated_at: 1,
        }
    }

    fn fast(load1: f64) -> Sample {
        Sample::Fast(FastSample {
            load1: Some(load1),
            ..FastSample::default()
        })
    }

    fn states(hosts: &[Host]) -> HostStates {
        let states = HostStates::default();
        for h in hosts {
            states.set_row(h.clone());
        }
        states
    }

    #[test]
    fn an_older_sample_does_not_replace_a_newer_one() {
        let states = states(&[host(1, "a", HostStatus::Online)]);
        states.record_sample(1, fast(1.0), 200, 201);
        states.record_sample(1, fast(2.0), 150, 202); // replayed from a spool
        let a = states.get("a").unwrap();
        assert_eq!(a.fast().unwrap().load1, Some(1.0));
        assert_eq!(a.fast.as_ref().unwrap().collected_at, 200);
        assert_eq!(a.host.last_seen_at, Some(202), "heard from it all the same");
        states.record_sample(1, fast(3.0), 230, 231);
        let a = states.get("a").unwrap();
        assert_eq!(a.fast().unwrap().load1, Some(3.0));
        assert_eq!(a.fast_interval, Some(30));
        states.record_sample(99, fast(1.0), 1, 1); // unknown host: ignored
    }

    #[test]
    fn readers_keep_their_snapshot_while_writers_move_on() {
        let states = states(&[host(1, "a", HostStatus::Online)]);
        states.record_sample(1, fast(1.0), 200, 200);
        let before = states.snapshot();
        states.record_sample(1, fast(9.0), 210, 210);
        assert_eq!(before[0].fast().unwrap().load1, Some(1.0));
        assert_eq!(states.get("a").unwrap().fast().unwrap().load1, Some(9.0));
    }

    #[test]
    fn slow_samples_set_versions_and_medium_samples_the_pools() {
        let states = states(&[host(1, "a", HostStatus::Online)]);
        states.record_sample(
            1,
            Sample::Slow(SlowSample {
                pve_version: Some("8.2.4".into()),
                zfs_version: Some("2.2.4".into()),
                ..SlowSample::default()
            }),
            100,
            100,
        );
        states.record_sample(
            1,
            Sample::Medium(MediumSample {
                pools: vec![ZfsPool {
                    name: "tank".into(),
                    health: "DEGRADED".into(),
                    ..ZfsPool::default()
                }],
                ..MediumSample::default()
            }),
            100,
            100,
        );
        let a = states.get("a").unwrap();
        assert_eq!(a.host.proxmox_version.as_deref(), Some("8.2.4"));
        assert_eq!(a.zfs_version(), Some("2.2.4"));
        assert!(a.has_degraded_pool());
        assert_eq!(a.condition(100), Condition::Degraded);
    }

    #[test]
    fn conditions() {
        let mut a = HostState::new(host(1, "a", HostStatus::Online));
        a.take_sample(fast(1.0), 1000, 1000);
        assert_eq!(a.condition(1000 + STALE_MIN_SECONDS), Condition::Ok);
        assert_eq!(a.condition(1001 + STALE_MIN_SECONDS), Condition::Stale);
        a.take_sample(fast(1.0), 1300, 1300); // an agent at a 5-minute interval
        assert_eq!(a.stale_after(), 900);
        assert_eq!(a.condition(1300 + 900), Condition::Ok);
        assert_eq!(a.condition(1301 + 900), Condition::Stale);
        let online_without_samples = HostState::new(host(2, "b", HostStatus::Online));
        assert_eq!(online_without_samples.condition(150), Condition::Ok);
        assert_eq!(online_without_samples.condition(1000), Condition::Stale);
        let offline = HostState::new(host(3, "c", HostStatus::Offline));
        assert_eq!(offline.condition(0), Condition::Offline);
        let never = HostState::new(host(4, "d", HostStatus::NeverConnected));
        assert_eq!(never.condition(0), Condition::NeverConnected);
        assert!(Condition::Offline.is_problem() && !Condition::NeverConnected.is_problem());
        for c in Condition::ALL {
            assert_eq!(Condition::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn subscribers_hear_of_changes_and_a_full_one_loses_events() {
        let states = states(&[host(1, "a", HostStatus::Offline)]);
        let events = states.subscribe(16);
        let small = states.subscribe(1);
        states.set_row(host(1, "a", HostStatus::Online));
        states.record_sample(1, fast(1.0), 200, 200);
        states.record_sample(1, fast(1.0), 100, 200); // older: no event
        states.mark_all_offline(300);
        let got: Vec<HostEvent> = events.try_iter().collect();
        assert_eq!(
            got,
            vec![
                HostEvent::Status {
                    host_id: 1,
                    status: HostStatus::Online
                },
                HostEvent::Sample {
                    host_id: 1,
                    kind: MetricKind::Fast,
                    collected_at: 200
                },
                HostEvent::Status {
                    host_id: 1,
                    status: HostStatus::Offline
                },
            ]
        );
        assert_eq!(small.try_iter().count(), 1);
        assert_eq!(states.dropped_events(), 2);
        drop(events);
        drop(small);
        states.set_row(host(1, "a", HostStatus::Online)); // prunes the gone subscribers
        assert!(states.subscribers.lock().unwrap().is_empty());
    }

    #[test]
    fn reconcile_adds_and_removes_what_another_process_did() {
        let states = states(&[
            host(1, "a", HostStatus::Online),
            host(2, "b", HostStatus::Offline),
        ]);
        states.record_sample(1, fast(1.0), 200, 200);
        let events = states.subscribe(16);
        let rows = [
            host(1, "a", HostStatus::NeverConnected),
            host(3, "c", HostStatus::NeverConnected),
        ];
        let mark = states.roster_mark();
        states
            .reconcile(mark, &[1, 3], |id| {
                Ok(rows.iter().find(|h| h.id == id).cloned())
            })
            .unwrap();
        let names: Vec<String> = states
            .snapshot()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        assert_eq!(names, ["a", "c"]);
        let a = states.get("a").unwrap();
        assert_eq!(
            a.host.status,
            HostStatus::Online,
            "memory wins for known hosts"
        );
        assert!(a.fast.is_some());
        assert_eq!(states.get_by_id(3).unwrap().name(), "c");
        assert_eq!(
            events.try_iter().collect::<Vec<_>>(),
            vec![
                HostEvent::Removed { host_id: 2 },
                HostEvent::Added { host_id: 3 }
            ]
        );
        // A name registered again under a new id.
        let again = [host(4, "c", HostStatus::NeverConnected)];
        let mark = states.roster_mark();
        states
            .reconcile(mark, &[1, 4], |id| {
                Ok(again.iter().find(|h| h.id == id).cloned())
            })
            .unwrap();
        assert_eq!(states.get("c").unwrap().host.id, 4);
        assert!(states.get_by_id(3).is_none());
    }

    #[test]
    fn reconcile_keeps_a_host_that_joined_after_the_ids_were_read() {
        let states = states(&[host(1, "a", HostStatus::Online)]);
        let mark = states.roster_mark();
        let ids = [1]; // read now; host 2 is registered and joins right after
        states.set_row(host(2, "b", HostStatus::Online));
        states.reconcile(mark, &ids, |_| Ok(None)).unwrap();
        assert!(states.get("b").is_some());
        let mark = states.roster_mark();
        states.reconcile(mark, &[1], |_| Ok(None)).unwrap();
        assert!(
            states.get("b").is_none(),
            "gone from a read that came after it"
        );
    }

    #[test]
    fn loads_rows_and_samples_from_the_database() {
        let dir = TempDir::new("state-load");
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let a = store.create_host("a", "h", 1).unwrap().id;
        store.create_host("b", "h", 1).unwrap();
        store.mark_online(a, Some("1.0"), 50).unwrap();
        let write = |kind, collected_at, data: &str| SampleWrite {
            host_id: a,
            kind,
            collected_at,
            data_json: data.into(),
            points: Vec::new(),
            versions: None,
            received_at: 60,
        };
        store
            .write_samples_direct(vec![
                write(
                    MetricKind::Fast,
                    55,
                    r#"{"load1":0.5,"guests":[{"vmid":100,"status":"running"}]}"#,
                ),
                write(MetricKind::Slow, 55, r#"{"pve_version":"8.2.4"}"#),
                write(MetricKind::Medium, 55, r#"{"pools":"not a list"}"#),
            ])
            .unwrap();
        let states = HostStates::load(&store).unwrap();
        assert_eq!(states.len(), 2);
        let a = states.get("a").unwrap();
        assert_eq!(a.host.status, HostStatus::Online);
        assert_eq!(a.host.last_seen_at, Some(60));
        assert_eq!(a.fast().unwrap().load1, Some(0.5));
        assert_eq!(a.guest_counts().running, 1);
        assert_eq!(a.proxmox_version(), Some("8.2.4"));
        assert!(
            a.medium.is_none(),
            "an unreadable stored sample is left out"
        );
        assert!(!states.get("b").unwrap().has_samples());
    }
}
