//! A host as the dashboard, the JSON API and `/metrics` see it: its row in `hosts` plus its
//! newest fast, medium and slow samples, parsed into the `common::sample` types.

use common::sample::{FastSample, GuestConfig, GuestStatus, MediumSample, SlowSample, ZfsPool};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::Result;
use crate::store::{Host, HostStatus};

/// A sample and when the agent took it (Unix seconds).
#[derive(Debug, Clone)]
pub struct Latest<T> {
    pub collected_at: i64,
    pub sample: T,
}

#[derive(Debug, Clone)]
pub struct HostView {
    pub host: Host,
    pub fast: Option<Latest<FastSample>>,
    pub medium: Option<Latest<MediumSample>>,
    pub slow: Option<Latest<SlowSample>>,
}

/// Running, stopped and total guests of a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestCounts {
    pub running: usize,
    pub stopped: usize,
    pub total: usize,
}

impl HostView {
    /// Every registered host, by name, with its latest samples.
    pub fn load_all(ctx: &Context) -> Result<Vec<HostView>> {
        ctx.store
            .list_hosts()?
            .into_iter()
            .map(|host| HostView::load(ctx, host))
            .collect()
    }

    /// One host's view; `None` when no host has that name.
    pub fn load_by_name(ctx: &Context, name: &str) -> Result<Option<HostView>> {
        match ctx.store.host_by_name(name)? {
            Some(host) => HostView::load(ctx, host).map(Some),
            None => Ok(None),
        }
    }

    fn load(ctx: &Context, host: Host) -> Result<HostView> {
        let mut view = HostView {
            host,
            fast: None,
            medium: None,
            slow: None,
        };
        for (kind, collected_at, data) in ctx.store.latest_samples(view.host.id)? {
            match kind.as_str() {
                "fast" => view.fast = parse(&view.host.name, &kind, collected_at, &data),
                "medium" => view.medium = parse(&view.host.name, &kind, collected_at, &data),
                "slow" => view.slow = parse(&view.host.name, &kind, collected_at, &data),
                _ => {}
            }
        }
        Ok(view)
    }

    pub fn is_online(&self) -> bool {
        self.host.status == HostStatus::Online
    }

    pub fn fast(&self) -> Option<&FastSample> {
        self.fast.as_ref().map(|l| &l.sample)
    }

    pub fn medium(&self) -> Option<&MediumSample> {
        self.medium.as_ref().map(|l| &l.sample)
    }

    pub fn slow(&self) -> Option<&SlowSample> {
        self.slow.as_ref().map(|l| &l.sample)
    }

    /// The pool in the worst state (ties: the first by name); `None` without pools.
    pub fn worst_pool(&self) -> Option<&ZfsPool> {
        self.medium()?
            .pools
            .iter()
            .max_by_key(|p| (pool_severity(&p.health), std::cmp::Reverse(p.name.clone())))
    }

    pub fn guest_counts(&self) -> GuestCounts {
        let guests = self.fast().map(|f| f.guests.as_slice()).unwrap_or_default();
        let running = guests
            .iter()
            .filter(|g| matches!(g.status, GuestStatus::Running | GuestStatus::Paused))
            .count();
        GuestCounts {
            running,
            stopped: guests.len() - running,
            total: guests.len(),
        }
    }

    /// The configuration (name, tags, ...) of guest `vmid` from the medium sample.
    pub fn guest_config(&self, vmid: u32) -> Option<&GuestConfig> {
        self.medium()?.guests.iter().find(|g| g.vmid == vmid)
    }

    /// The Proxmox version: from the newest slow sample, else what the hosts table remembers.
    pub fn proxmox_version(&self) -> Option<&str> {
        self.slow()
            .and_then(|s| s.pve_version.as_deref())
            .or(self.host.proxmox_version.as_deref())
    }

    /// The summary the JSON API gives for each host (documented in the README).
    pub fn summary_json(&self) -> Value {
        let fast = self.fast();
        let counts = self.guest_counts();
        let pools = self
            .medium()
            .map(|m| m.pools.as_slice())
            .unwrap_or_default();
        json!({
            "name": self.host.name,
            "status": self.host.status.as_str(),
            "status_since": self.host.status_changed_at,
            "last_seen_at": self.host.last_seen_at,
            "agent_version": self.host.agent_version,
            "proxmox_version": self.proxmox_version(),
            "zfs_version": self.slow().and_then(|s| s.zfs_version.clone())
                .or_else(|| self.host.zfs_version.clone()),
            "kernel_version": self.slow().and_then(|s| s.kernel_version.clone()),
            "cpu_model": self.slow().and_then(|s| s.cpu_model.clone()),
            "cpu_count": self.slow().and_then(|s| s.cpu_count),
            "cpu_percent": fast.and_then(|f| f.cpu_percent),
            "mem_total_bytes": fast.and_then(|f| f.mem_total_bytes),
            "mem_used_bytes": fast.and_then(|f| f.mem_used_bytes),
            "mem_arc_bytes": fast.and_then(|f| f.mem_arc_bytes),
            "mem_used_without_arc_bytes": fast.and_then(|f| f.mem_used_without_arc_bytes),
            "swap_total_bytes": fast.and_then(|f| f.swap_total_bytes),
            "swap_used_bytes": fast.and_then(|f| {
                Some(f.swap_total_bytes?.saturating_sub(f.swap_free_bytes?))
            }),
            "load1": fast.and_then(|f| f.load1),
            "load5": fast.and_then(|f| f.load5),
            "load15": fast.and_then(|f| f.load15),
            "uptime_seconds": fast.and_then(|f| f.uptime_seconds),
            "guests": {"running": counts.running, "stopped": counts.stopped, "total": counts.total},
            "pools": {
                "count": pools.len(),
                "worst_health": self.worst_pool().map(|p| p.health.clone()),
                "unhealthy": pools.iter().filter(|p| p.health != "ONLINE")
                    .map(|p| p.name.clone()).collect::<Vec<_>>(),
            },
            "collected_at": {
                "fast": self.fast.as_ref().map(|l| l.collected_at),
                "medium": self.medium.as_ref().map(|l| l.collected_at),
                "slow": self.slow.as_ref().map(|l| l.collected_at),
            },
        })
    }
}

/// 0 for ONLINE, higher for worse; an unknown state ranks as bad as FAULTED because we cannot
/// tell it is fine.
pub fn pool_severity(health: &str) -> u8 {
    match health {
        "ONLINE" => 0,
        "DEGRADED" => 1,
        "OFFLINE" | "REMOVED" => 2,
        _ => 3,
    }
}

/// A stored sample this server cannot read is logged and left out, never an error page.
fn parse<T: DeserializeOwned>(
    host: &str,
    kind: &str,
    collected_at: i64,
    data: &str,
) -> Option<Latest<T>> {
    match serde_json::from_str(data) {
        Ok(sample) => Some(Latest {
            collected_at,
            sample,
        }),
        Err(e) => {
            log::warn!("latest {kind} sample of {host} does not match the schema: {e}");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_pool_states() {
        let mut states = ["FAULTED", "ONLINE", "DEGRADED", "SOMETHING-NEW", "OFFLINE"];
        states.sort_by_key(|s| pool_severity(s));
        assert_eq!(states[0], "ONLINE");
        assert_eq!(states[1], "DEGRADED");
        assert_eq!(pool_severity("SOMETHING-NEW"), pool_severity("FAULTED"));
    }
}
