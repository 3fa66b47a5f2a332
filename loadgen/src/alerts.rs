//! What evaluating the alert rules costs per sample: the server's own `alerts::engine::Engine`
//! with the default rules, fed the fast samples `run` pushes (30 guests: ~70 observations per
//! sample), host after host, round after round, each host with a medium and a slow sample.
//!
//! Two fleets: `quiet` (nothing firing, the common case: every observation is "fine and
//! nothing open") and `busy` (one host in `busy_every` with CPU at 95 %, a stopped onboot
//! guest and a full storage, so alerts are pending, firing and announced). Only the
//! evaluation is timed (wall clock and the thread's CPU time from `/proc/thread-self/schedstat`);
//! building the samples is not.

use std::sync::Arc;
use std::time::Instant;

use common::events::MetricKind;
use common::sample::{FastSample, GuestStatus};
use server::alerts::engine::Engine;
use server::alerts::forecast::NoHistory;
use server::alerts::AlertsConfig;
use server::state::{HostState, Latest};
use server::store::alerts::LoadedAlerts;
use server::store::{Host, HostStatus};

use crate::sample;

#[derive(Debug, Clone)]
pub struct AlertBenchOptions {
    pub hosts: usize,
    pub rounds: usize,
    pub guests: u32,
    /// In the busy fleet, one host in this many has alerts (0: none).
    pub busy_every: usize,
}

/// What one fleet cost.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertBenchReport {
    pub samples: u64,
    pub wall_ns_per_sample: f64,
    pub cpu_ns_per_sample: f64,
    pub open_alerts: usize,
    pub events: u64,
    /// `rule:state=count,…` of the open alerts at the end.
    pub open_by_rule: String,
}

/// Nanoseconds this thread has run, from `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn host(id: usize) -> Host {
    Host {
        id: i64::try_from(id + 1).unwrap_or(i64::MAX),
        name: format!("bench-{:04}", id + 1),
        agent_version: None,
        proxmox_version: None,
        zfs_version: None,
        status: HostStatus::Online,
        status_changed_at: Some(0),
        last_seen_at: Some(0),
        inserted_at: 0,
        updated_at: 0,
    }
}

/// Runs one fleet: `busy` gives some hosts alerts.
pub fn run(options: &AlertBenchOptions, busy: bool) -> AlertBenchReport {
    let now0 = common::time::now_unix();
    // Sixteen successive samples of one simulated node, reused round-robin: evaluation cost,
    // not sample generation, is what this measures.
    let mut node = sample::Node::new(0, options.guests);
    let variants: Vec<FastSample> = (0..16).map(|_| node.next(1.0)).collect();
    let is_busy = |h: usize| busy && options.busy_every > 0 && h % options.busy_every == 0;
    let mut states: Vec<HostState> = (0..options.hosts)
        .map(|h| {
            let mut state = HostState::new(host(h));
            let mut medium = sample::medium_sample(options.guests, h);
            // Stopped guests that are meant to be (no onboot): no alert in a quiet fleet.
            for g in &mut medium.guests {
                g.onboot = false;
            }
            if is_busy(h) {
                if let Some(s) = medium.storages.first_mut() {
                    s.used_bytes = s.total_bytes.map(|t| t / 100 * 97);
                }
                // The guest the busy rounds stop (the first, which runs) has onboot: 1.
                if let Some(g) = medium.guests.first_mut() {
                    g.onboot = true;
                }
            }
            state.medium = Some(Arc::new(Latest {
                collected_at: now0,
                sample: medium,
            }));
            // Bench hosts share their vmids; in a real cluster a vmid is one guest, so a
            // cluster here would read every stop as a migration.
            let mut slow = sample::slow_sample(h, &state.host.name);
            slow.cluster = None;
            state.slow = Some(Arc::new(Latest {
                collected_at: now0,
                sample: slow,
            }));
            state.fast_interval = Some(1);
            state
        })
        .collect();
    let mut engine = Engine::new(
        &AlertsConfig::default(),
        LoadedAlerts::default(),
        Vec::new(),
        now0,
    );
    let shared: Vec<Arc<HostState>> = states.iter().cloned().map(Arc::new).collect();
    engine.seed(&shared, now0);
    drop(shared);
    // What seeding found counts as evaluated; a new medium sample is evaluated.
    for state in &mut states {
        if let Some(medium) = state.medium.take() {
            state.medium = Some(Arc::new(Latest {
                collected_at: now0 + 1,
                sample: medium.sample.clone(),
            }));
        }
        engine.evaluate_sample(state, MetricKind::Medium, now0 + 1, &NoHistory);
    }
    let mut wall_ns: u128 = 0;
    let mut cpu_ns: u64 = 0;
    let mut samples = 0u64;
    // The previous round's samples, kept alive while a round is timed: the engine holds the
    // previous fast sample of each host (for error rates), so replacing it there would free
    // it inside the timed part — work the server's connection thread did before alerts
    // existed, and a cost of the sample, not of the rules.
    let mut previous: Vec<Arc<Latest<FastSample>>> = Vec::with_capacity(options.hosts);
    for round in 0..options.rounds {
        let t = now0 + 1 + i64::try_from(round).unwrap_or(0);
        previous.clear();
        previous.extend(states.iter().filter_map(|s| s.fast.clone()));
        // Build this round's samples first: not timed.
        for (h, state) in states.iter_mut().enumerate() {
            let mut fast = variants[(h + round) % variants.len()].clone();
            if is_busy(h) {
                fast.cpu_percent = Some(95.0);
                if let Some(g) = fast.guests.first_mut() {
                    g.status = GuestStatus::Stopped;
                    g.cpu_percent = None;
                    g.mem_used_bytes = None;
                }
            }
            state.fast = Some(Arc::new(Latest {
                collected_at: t,
                sample: fast,
            }));
        }
        let cpu0 = thread_cpu_ns();
        let started = Instant::now();
        for state in &states {
            engine.evaluate_sample(state, MetricKind::Fast, t, &NoHistory);
        }
        wall_ns += started.elapsed().as_nanos();
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            cpu_ns += b.saturating_sub(a);
        }
        samples += options.hosts as u64;
        // What the worker writes after a batch (kept out of the timing: it is the store's).
        let _ = engine.take_changes();
    }
    let c = engine.counters;
    let mut by_rule: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let end = now0 + i64::try_from(options.rounds).unwrap_or(0);
    for row in engine.view(end) {
        *by_rule
            .entry(format!("{}:{}", row.rec.rule, row.rec.state.as_str()))
            .or_default() += 1;
    }
    let open_by_rule = by_rule
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(",");
    #[allow(clippy::cast_precision_loss)]
    let per = |ns: f64| ns / samples.max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    AlertBenchReport {
        samples,
        wall_ns_per_sample: per(wall_ns as f64),
        cpu_ns_per_sample: per(cpu_ns as f64),
        open_alerts: engine.open_ids().len(),
        events: c.firing_events + c.repeat_events + c.resolved_events,
        open_by_rule,
    }
}
