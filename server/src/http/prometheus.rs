//! `/metrics`: every host's and guest's latest values and the server's own health, in the
//! Prometheus text exposition format (version 0.0.4).
//!
//! Names follow pve-exporter (`pve_up`, `pve_cpu_usage_ratio`, `pve_memory_usage_bytes`, ...,
//! with its `id` label: `node/NAME`, `qemu/VMID`, `lxc/VMID`, `storage/NODE/ID`) and
//! node_exporter (`node_load1`, `node_zfs_zpool_state`, ...) where the meaning is the same, and
//! `proxmox_monitor_*` otherwise — in particular for rates, which those exporters expose as
//! counters and we only have as per-second averages. Every series has a `node` label (the
//! registered host name), since one server speaks for many nodes.
//!
//! An offline host exports only `pve_up 0`, its info and when it was last seen: its last values
//! are history, and exporting them as current would hide that the host is gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::sample::GuestType;

use super::{compress, Request, Response};

mod operations;
use crate::context::Context;
use crate::error::Result;
use crate::notify::Tally;
use crate::state::HostState;
use crate::store::HostStatus;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The states `node_zfs_zpool_state` enumerates (node_exporter's list).
const ZPOOL_STATES: [&str; 7] = [
    "online",
    "degraded",
    "faulted",
    "offline",
    "removed",
    "unavail",
    "suspended",
];

/// `GET /metrics`, after the access check of `allowed`.
pub fn metrics(ctx: &Context, request: &Request) -> Result<Response> {
    match access(ctx, request) {
        Access::Hidden => return Ok(Response::text(404, "not found\n")),
        Access::Unauthorized => {
            return Ok(Response::text(401, "metrics token required\n")
                .with_header("WWW-Authenticate", "Bearer realm=\"metrics\""))
        }
        Access::Allowed => {}
    }
    let hosts = ctx.hosts.snapshot();
    let mut out = Exposition::default();
    for view in &hosts {
        host_metrics(&mut out, view);
    }
    server_metrics(&mut out, ctx, &hosts);
    if compress::accepts_gzip(request) {
        // Compressed straight from the family buffers: a 1000-host exposition is ~30 MB, and
        // gluing it together first would cost a copy of all of it.
        let parts = out.parts();
        let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        match compress::gzip_parts(&slices) {
            Ok(body) => {
                return Ok(Response::new(200, CONTENT_TYPE, body)
                    .with_header("Content-Encoding", "gzip")
                    .with_header("Vary", "Accept-Encoding"))
            }
            Err(e) => log::warn!("gzip of /metrics failed ({e}); sending it uncompressed"),
        }
    }
    Ok(Response::new(200, CONTENT_TYPE, out.render()))
}

enum Access {
    Allowed,
    Unauthorized,
    /// Not enabled in the config: pretend there is nothing here.
    Hidden,
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110: `bearer`, `BEARER` are the same scheme).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn access(ctx: &Context, request: &Request) -> Access {
    let http = &ctx.config.http;
    match &http.metrics_token {
        Some(token) => {
            let offered = request.header("authorization").and_then(bearer_token);
            match offered {
                Some(offered) if constant_time_eq(offered.as_bytes(), token.as_bytes()) => {
                    Access::Allowed
                }
                _ => Access::Unauthorized,
            }
        }
        None if http.metrics_public => Access::Allowed,
        None => Access::Hidden,
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right. (The length may leak; the token's length is no secret worth keeping.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Metric families in order of first use; each family's samples are written together, as the
/// format requires. With 1000 hosts of 30 guests this is ~700 000 lines, so the hot path
/// (`family` + `Family::push`) neither hashes nor allocates: a family is found by the address
/// of its name (every call site passes the same literal), and its buffer is the last
/// scrape's (`spare_buffers`).
struct Exposition {
    families: Vec<Family>,
    index: HashMap<&'static str, usize>,
    /// `(address of the name, index + 1)`, direct-mapped by address; 0 is empty.
    by_address: [(usize, usize); 256],
}

impl Default for Exposition {
    fn default() -> Exposition {
        Exposition {
            families: Vec::new(),
            index: HashMap::new(),
            by_address: [(0, 0); 256],
        }
    }
}

/// The family buffers of the last scrape, emptied, for the next one to write into: memory
/// that is already mapped, and already as big as it needs to be. Fresh buffers — 50 MB at 1000
/// hosts of 30 guests — cost about a sixth of a scrape in page faults alone. What is kept is
/// one scrape's worth, the size of the fleet's exposition.
fn spare_buffers() -> &'static std::sync::Mutex<HashMap<&'static str, String>> {
    static SPARE: std::sync::OnceLock<std::sync::Mutex<HashMap<&'static str, String>>> =
        std::sync::OnceLock::new();
    SPARE.get_or_init(Default::default)
}

impl Drop for Exposition {
    fn drop(&mut self) {
        let Ok(mut spare) = spare_buffers().lock() else {
            return;
        };
        for family in &mut self.families {
            let mut samples = std::mem::take(&mut family.samples);
            // Grown by doubling, a buffer can be twice its text: keep an eighth of slack only.
            let len = samples.len();
            if samples.capacity() > len + len / 4 {
                samples.shrink_to(len + len / 8);
            }
            samples.clear();
            // Two scrapes at once: keep the bigger buffer.
            let keep = spare
                .get(family.name)
                .map_or(true, |kept| kept.capacity() < samples.capacity());
            if keep {
                spare.insert(family.name, samples);
            }
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: String,
}

impl Exposition {
    fn family(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
    ) -> &mut Family {
        let address = name.as_ptr() as usize;
        let slot = (address >> 3) % self.by_address.len();
        let (known, index) = self.by_address[slot];
        if known == address && index > 0 && self.families[index - 1].name.len() == name.len() {
            return &mut self.families[index - 1];
        }
        let index = match self.index.get(name) {
            Some(index) => *index,
            None => {
                let samples = spare_buffers()
                    .lock()
                    .ok()
                    .and_then(|mut spare| spare.remove(name))
                    .unwrap_or_default();
                self.families.push(Family {
                    name,
                    help,
                    kind,
                    samples,
                });
                self.index.insert(name, self.families.len() - 1);
                self.families.len() - 1
            }
        };
        self.by_address[slot] = (address, index + 1);
        &mut self.families[index]
    }

    fn gauge<L: Labels + ?Sized>(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &L,
        value: f64,
    ) {
        self.family(name, "gauge", help).push(labels, value);
    }

    /// A gauge only when the value is known.
    fn gauge_opt<L: Labels + ?Sized>(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &L,
        value: Option<f64>,
    ) {
        if let Some(v) = value {
            self.gauge(name, help, labels, v);
        }
    }

    fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.family(name, "counter", help)
            .push(NO_LABELS, to_f64(value));
    }

    /// A counter with labels, or whose value is not a whole number (seconds).
    fn counter_with<L: Labels + ?Sized>(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &L,
        value: f64,
    ) {
        self.family(name, "counter", help).push(labels, value);
    }

    /// The exposition as pieces in order: each family's header, then its samples.
    fn parts(&self) -> Vec<std::borrow::Cow<'_, str>> {
        let mut parts = Vec::with_capacity(2 * self.families.len());
        for f in &self.families {
            parts.push(std::borrow::Cow::Owned(format!(
                "# HELP {0} {1}\n# TYPE {0} {2}\n",
                f.name, f.help, f.kind
            )));
            parts.push(std::borrow::Cow::Borrowed(f.samples.as_str()));
        }
        parts
    }

    /// The exposition as one text.
    fn render(&self) -> String {
        let parts = self.parts();
        let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in &parts {
            out.push_str(part);
        }
        out
    }
}

impl Family {
    fn push<L: Labels + ?Sized>(&mut self, labels: &L, value: f64) {
        let out = &mut self.samples;
        out.push_str(self.name);
        labels.write_to(out);
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }
}

/// What goes between a sample's name and its value: `{key="value",...}`, or nothing.
trait Labels {
    fn write_to(&self, out: &mut String);
}

const NO_LABELS: &[(&str, &str)] = &[];

impl Labels for [(&str, &str)] {
    fn write_to(&self, out: &mut String) {
        if self.is_empty() {
            return;
        }
        out.push('{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            push_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
}

impl<const N: usize> Labels for [(&str, &str); N] {
    fn write_to(&self, out: &mut String) {
        self.as_slice().write_to(out);
    }
}

/// A label set written out (and escaped) once, for the many samples that share it — a guest's
/// dozen, a disk's or a pool's handful: each of those samples is then three copies and a
/// number. At 1000 hosts of 30 guests, the exposition has ~700 000 samples.
struct LabelSet(String);

impl LabelSet {
    fn new(labels: &[(&str, &str)]) -> LabelSet {
        let mut text = String::with_capacity(64);
        labels.write_to(&mut text);
        LabelSet(text)
    }
}

impl Labels for LabelSet {
    fn write_to(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

/// Label values escape `\`, `"` and newlines.
fn push_label_value(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 9e18 {
        // Whole numbers (bytes, counts, timestamps) through the integer formatter; below
        // 9e18 they fit an i64 exactly.
        #[allow(clippy::cast_possible_truncation)]
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        // zmij: the shortest text that reads back as the same number, several times faster
        // than `Display` (one sample in three is a fraction: ratios, rates).
        out.push_str(zmij::Buffer::new().format_finite(value));
    }
}

#[allow(clippy::cast_precision_loss)] // byte counts and counters stay far below 2^53
fn to_f64(v: u64) -> f64 {
    v as f64
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn host_metrics(out: &mut Exposition, view: &HostState) {
    let node = view.host.name.as_str();
    let id = format!("node/{node}");
    let host_labels = LabelSet::new(&[("id", id.as_str()), ("node", node)]);
    out.gauge(
        "pve_up",
        "Node or guest is up: the agent is connected (node) or the guest runs (qemu/lxc).",
        &host_labels,
        bool_value(view.is_online()),
    );
    out.gauge(
        "pve_node_info",
        "Node information (always 1).",
        &[
            ("id", id.as_str()),
            ("node", node),
            ("name", node),
            ("status", view.host.status.as_str()),
        ],
        1.0,
    );
    if let Some(version) = view.proxmox_version() {
        let repoid = view
            .slow()
            .and_then(|s| s.pve_repoid.as_deref())
            .unwrap_or("");
        out.gauge(
            "pve_version_info",
            "Proxmox VE version of the node (always 1).",
            &[("node", node), ("version", version), ("repoid", repoid)],
            1.0,
        );
    }
    if let Some(agent) = view.host.agent_version.as_deref() {
        out.gauge(
            "proxmox_monitor_agent_info",
            "Version of the node's Proxmox Monitor agent (always 1).",
            &[("node", node), ("version", agent)],
            1.0,
        );
    }
    out.gauge_opt(
        "proxmox_monitor_last_seen_timestamp_seconds",
        "When the server last heard from the node's agent (Unix time).",
        &[("node", node)],
        view.host.last_seen_at.map(|t| t as f64),
    );
    if view.host.status != HostStatus::Online {
        return;
    }
    for (kind, at) in [
        ("fast", view.fast.as_ref().map(|l| l.collected_at)),
        ("medium", view.medium.as_ref().map(|l| l.collected_at)),
        ("slow", view.slow.as_ref().map(|l| l.collected_at)),
    ] {
        out.gauge_opt(
            "proxmox_monitor_sample_timestamp_seconds",
            "When the agent took the node's newest sample of each kind (Unix time).",
            &[("node", node), ("kind", kind)],
            at.map(|t| t as f64),
        );
    }
    if let Some(fast) = view.fast() {
        host_fast_metrics(out, view, fast, &host_labels);
        operations::hwmon_metrics(out, node, &fast.temperatures);
    }
    if let Some(medium) = view.medium() {
        operations::medium_metrics(out, node, medium);
    }
    if let Some(slow) = view.slow() {
        operations::slow_metrics(out, node, slow);
    }
    if let Some(medium) = view.medium() {
        for pool in &medium.pools {
            let labels = LabelSet::new(&[("node", node), ("zpool", pool.name.as_str())]);
            for state in ZPOOL_STATES {
                out.gauge(
                    "node_zfs_zpool_state",
                    "ZFS pool state (1 for the current state).",
                    &[
                        ("node", node),
                        ("zpool", pool.name.as_str()),
                        ("state", state),
                    ],
                    bool_value(pool.health.as_str().eq_ignore_ascii_case(state)),
                );
            }
            out.gauge_opt(
                "proxmox_monitor_zpool_size_bytes",
                "ZFS pool size.",
                &labels,
                pool.size_bytes.map(to_f64),
            );
            out.gauge_opt(
                "proxmox_monitor_zpool_allocated_bytes",
                "ZFS pool space allocated.",
                &labels,
                pool.alloc_bytes.map(to_f64),
            );
            out.gauge_opt(
                "proxmox_monitor_zpool_free_bytes",
                "ZFS pool space free.",
                &labels,
                pool.free_bytes.map(to_f64),
            );
            out.gauge_opt(
                "proxmox_monitor_zpool_fragmentation_ratio",
                "ZFS pool free-space fragmentation, 0 to 1.",
                &labels,
                pool.frag_percent.map(|p| p / 100.0),
            );
        }
        for storage in &medium.storages {
            let storage_id = format!("storage/{node}/{}", storage.id);
            let labels = LabelSet::new(&[("id", storage_id.as_str()), ("node", node)]);
            out.gauge(
                "pve_storage_info",
                "Storage information (always 1).",
                &[
                    ("id", storage_id.as_str()),
                    ("node", node),
                    ("storage", storage.id.as_str()),
                    ("type", storage.kind.as_str()),
                    ("content", storage.content.as_deref().unwrap_or("")),
                    ("shared", if storage.shared { "1" } else { "0" }),
                ],
                1.0,
            );
            out.gauge_opt(
                "pve_disk_size_bytes",
                "Storage size.",
                &labels,
                storage.total_bytes.map(to_f64),
            );
            out.gauge_opt(
                "pve_disk_usage_bytes",
                "Storage space used.",
                &labels,
                storage.used_bytes.map(to_f64),
            );
            out.gauge_opt(
                "proxmox_monitor_storage_active",
                "Storage is active (1) or not (0), as pvesm status says.",
                &labels,
                storage.active.map(bool_value),
            );
        }
    }
}

fn host_fast_metrics(
    out: &mut Exposition,
    view: &HostState,
    fast: &common::sample::FastSample,
    host_labels: &LabelSet,
) {
    let node = view.host.name.as_str();
    out.gauge_opt(
        "pve_cpu_usage_ratio",
        "CPU usage, 0 to 1 (guests: of the guest's own CPUs).",
        host_labels,
        fast.cpu_percent.map(|p| p / 100.0),
    );
    out.gauge_opt(
        "pve_cpu_usage_limit",
        "Number of CPUs available (guests: the CPUs it may use).",
        host_labels,
        view.slow().and_then(|s| s.cpu_count).map(f64::from),
    );
    out.gauge_opt(
        "pve_memory_usage_bytes",
        "Memory used (nodes: total minus available, including the ZFS ARC).",
        host_labels,
        fast.mem_used_bytes.map(to_f64),
    );
    out.gauge_opt(
        "pve_memory_size_bytes",
        "Memory size (guests: the configured or cgroup limit).",
        host_labels,
        fast.mem_total_bytes.map(to_f64),
    );
    out.gauge_opt(
        "pve_uptime_seconds",
        "Uptime.",
        host_labels,
        fast.uptime_seconds.map(to_f64),
    );
    let node_only = LabelSet::new(&[("node", node)]);
    out.gauge_opt("node_load1", "1m load average.", &node_only, fast.load1);
    out.gauge_opt("node_load5", "5m load average.", &node_only, fast.load5);
    out.gauge_opt("node_load15", "15m load average.", &node_only, fast.load15);
    out.gauge_opt(
        "node_zfs_arc_size",
        "ZFS ARC size in bytes.",
        &node_only,
        fast.arc.and_then(|a| a.size_bytes).map(to_f64),
    );
    out.gauge_opt(
        "proxmox_monitor_memory_available_bytes",
        "Memory available (MemAvailable).",
        &node_only,
        fast.mem_available_bytes.map(to_f64),
    );
    out.gauge_opt(
        "proxmox_monitor_swap_size_bytes",
        "Swap size.",
        &node_only,
        fast.swap_total_bytes.map(to_f64),
    );
    out.gauge_opt(
        "proxmox_monitor_swap_free_bytes",
        "Swap free.",
        &node_only,
        fast.swap_free_bytes.map(to_f64),
    );
    for (mode, value) in [
        ("user", fast.cpu_user_percent),
        ("system", fast.cpu_system_percent),
        ("iowait", fast.cpu_iowait_percent),
        ("steal", fast.cpu_steal_percent),
    ] {
        out.gauge_opt(
            "proxmox_monitor_cpu_mode_ratio",
            "Share of all CPU time in each mode since the previous sample, 0 to 1.",
            &[("node", node), ("mode", mode)],
            value.map(|p| p / 100.0),
        );
    }
    for iface in &fast.net {
        let labels = LabelSet::new(&[("node", node), ("device", iface.name.as_str())]);
        out.gauge_opt(
            "proxmox_monitor_network_receive_bytes_per_second",
            "Bytes received per second, averaged since the previous sample.",
            &labels,
            iface.rx_bytes_per_s,
        );
        out.gauge_opt(
            "proxmox_monitor_network_transmit_bytes_per_second",
            "Bytes sent per second, averaged since the previous sample.",
            &labels,
            iface.tx_bytes_per_s,
        );
        out.family(
            "node_network_receive_errs_total",
            "counter",
            "Receive errors since boot.",
        )
        .push(&labels, to_f64(iface.rx_errors));
        out.family(
            "node_network_transmit_errs_total",
            "counter",
            "Transmit errors since boot.",
        )
        .push(&labels, to_f64(iface.tx_errors));
    }
    for disk in &fast.disks {
        let labels = LabelSet::new(&[("node", node), ("device", disk.name.as_str())]);
        out.gauge_opt(
            "proxmox_monitor_disk_read_bytes_per_second",
            "Bytes read per second, averaged since the previous sample.",
            &labels,
            disk.read_bytes_per_s,
        );
        out.gauge_opt(
            "proxmox_monitor_disk_written_bytes_per_second",
            "Bytes written per second, averaged since the previous sample.",
            &labels,
            disk.write_bytes_per_s,
        );
        out.gauge_opt(
            "proxmox_monitor_disk_busy_ratio",
            "Share of time the device had I/O in flight, 0 to 1.",
            &labels,
            disk.busy_percent.map(|p| p / 100.0),
        );
    }
    for guest in &fast.guests {
        guest_metrics(out, view, guest);
    }
}

fn guest_metrics(out: &mut Exposition, view: &HostState, guest: &common::sample::GuestFast) {
    let node = view.host.name.as_str();
    let kind = match guest.kind {
        GuestType::Qemu => "qemu",
        GuestType::Lxc => "lxc",
        GuestType::Unknown => "unknown",
    };
    let id = format!("{kind}/{}", guest.vmid);
    let labels = LabelSet::new(&[("id", id.as_str()), ("node", node)]);
    let config = view.guest_config(guest.vmid);
    let name = guest
        .name
        .as_deref()
        .or(config.map(|c| c.name.as_str()))
        .unwrap_or("");
    let tags = config.map(|c| c.tags.join(";")).unwrap_or_default();
    let template = config.is_some_and(|c| c.template);
    out.gauge(
        "pve_guest_info",
        "Guest information (always 1).",
        &[
            ("id", id.as_str()),
            ("node", node),
            ("name", name),
            ("type", kind),
            ("template", if template { "1" } else { "0" }),
            ("tags", tags.as_str()),
        ],
        1.0,
    );
    out.gauge(
        "pve_up",
        "Node or guest is up: the agent is connected (node) or the guest runs (qemu/lxc).",
        &labels,
        bool_value(guest.status.is_up()),
    );
    out.gauge_opt(
        "pve_cpu_usage_ratio",
        "CPU usage, 0 to 1 (guests: of the guest's own CPUs).",
        &labels,
        guest.cpu_percent.map(|p| p / 100.0),
    );
    out.gauge_opt(
        "pve_cpu_usage_limit",
        "Number of CPUs available (guests: the CPUs it may use).",
        &labels,
        guest.cpus.or(config.and_then(|c| c.cpus)),
    );
    out.gauge_opt(
        "pve_memory_usage_bytes",
        "Memory used (nodes: total minus available, including the ZFS ARC).",
        &labels,
        guest.mem_used_bytes.map(to_f64),
    );
    out.gauge_opt(
        "pve_memory_size_bytes",
        "Memory size (guests: the configured or cgroup limit).",
        &labels,
        guest
            .mem_limit_bytes
            .or(config.and_then(|c| c.memory_bytes))
            .map(to_f64),
    );
    out.gauge_opt(
        "pve_uptime_seconds",
        "Uptime.",
        &labels,
        guest.uptime_seconds.map(to_f64),
    );
    for (name, help, value) in [
        (
            "proxmox_monitor_guest_disk_read_bytes_per_second",
            "Guest disk bytes read per second.",
            guest.disk_read_bytes_per_s,
        ),
        (
            "proxmox_monitor_guest_disk_written_bytes_per_second",
            "Guest disk bytes written per second.",
            guest.disk_write_bytes_per_s,
        ),
        (
            "proxmox_monitor_guest_network_receive_bytes_per_second",
            "Bytes per second received by the guest.",
            guest.net_in_bytes_per_s,
        ),
        (
            "proxmox_monitor_guest_network_transmit_bytes_per_second",
            "Bytes per second sent by the guest.",
            guest.net_out_bytes_per_s,
        ),
    ] {
        out.gauge_opt(name, help, &labels, value);
    }
}

/// `proxmox_monitor_alert{rule,severity,node,object} 1` per firing alert (as Prometheus'
/// own `ALERTS`), and what evaluating them costs.
fn alert_metrics(out: &mut Exposition, ctx: &Context) {
    let view = ctx.alerts.view();
    for row in view.firing() {
        let r = &row.rec;
        out.gauge(
            "proxmox_monitor_alert",
            "Firing alerts (silenced and acknowledged ones included), one series each.",
            &[
                ("rule", r.rule.as_str()),
                ("severity", r.severity.as_str()),
                ("node", r.host.as_str()),
                ("object", r.object.as_str()),
            ],
            1.0,
        );
    }
    let stats = &ctx.alerts.stats;
    out.counter(
        "proxmox_monitor_alert_samples_evaluated_total",
        "Samples the alert rules were evaluated on.",
        stats.samples_evaluated.load(Ordering::Relaxed),
    );
    #[allow(clippy::cast_precision_loss)]
    let seconds = stats.evaluation_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    out.counter_with(
        "proxmox_monitor_alert_evaluation_seconds_total",
        "Time spent evaluating alert rules on samples.",
        &[],
        seconds,
    );
    for (kind, value) in [
        ("firing", &stats.firing_events),
        ("repeat", &stats.repeat_events),
        ("resolved", &stats.resolved_events),
    ] {
        out.counter_with(
            "proxmox_monitor_alert_events_total",
            "Notification events written to the outbox since the server started.",
            &[("event", kind)],
            to_f64(value.load(Ordering::Relaxed)),
        );
    }
}

fn notify_metrics(out: &mut Exposition, ctx: &Context) {
    // Every configured channel shows, at 0 before its first message.
    let counts = ctx.notifier.counts();
    for name in ctx.config.notify.channels.keys() {
        for result in [Tally::Sent, Tally::Failed, Tally::Dead, Tally::Dropped] {
            let n = counts
                .iter()
                .find(|(c, r, _)| c == name && *r == result)
                .map_or(0, |(_, _, n)| *n);
            out.counter_with(
                "proxmox_monitor_notifications_total",
                "Notification attempts by channel and result: sent (accepted by the receiver), \
                 failed (tried again later), dead (dead-lettered), dropped (the alert ended \
                 before a held or escalated message was due).",
                &[("channel", name.as_str()), ("result", result.as_str())],
                to_f64(n),
            );
        }
    }
    for (result, counter) in [
        ("ok", &ctx.notifier.heartbeats_ok),
        ("failed", &ctx.notifier.heartbeats_failed),
    ] {
        out.counter_with(
            "proxmox_monitor_heartbeats_total",
            "Calls of the heartbeat URL ([notify] heartbeat_url) by result.",
            &[("result", result)],
            to_f64(counter.load(Ordering::Relaxed)),
        );
    }
}

fn server_metrics(out: &mut Exposition, ctx: &Context, hosts: &[Arc<HostState>]) {
    alert_metrics(out, ctx);
    notify_metrics(out, ctx);
    let stats = &ctx.stats;
    out.gauge(
        "proxmox_monitor_connected_agents",
        "Agents connected now.",
        &[],
        to_f64(ctx.registry.connected() as u64),
    );
    for status in [
        HostStatus::Online,
        HostStatus::Offline,
        HostStatus::NeverConnected,
    ] {
        let n = hosts.iter().filter(|h| h.host.status == status).count();
        out.gauge(
            "proxmox_monitor_hosts",
            "Registered hosts by status.",
            &[("status", status.as_str())],
            to_f64(n as u64),
        );
    }
    out.counter(
        "proxmox_monitor_samples_ingested_total",
        "Samples stored since the server started.",
        stats.samples_ingested.load(Ordering::Relaxed),
    );
    out.counter(
        "proxmox_monitor_points_ingested_total",
        "Series points stored since the server started.",
        stats.points_ingested.load(Ordering::Relaxed),
    );
    out.counter(
        "proxmox_monitor_connections_accepted_total",
        "TCP connections accepted since the server started.",
        stats.connections_accepted.load(Ordering::Relaxed),
    );
    out.gauge(
        "proxmox_monitor_open_connections",
        "TCP connections open now (agents and browsers).",
        &[],
        to_f64(stats.open_connections.load(Ordering::Relaxed)),
    );
    out.counter(
        "proxmox_monitor_joins_rejected_total",
        "Agent joins refused (unknown host, wrong token, bad payload).",
        stats.joins_rejected.load(Ordering::Relaxed),
    );
    out.counter(
        "proxmox_monitor_bad_frames_total",
        "Agent frames that could not be understood.",
        stats.bad_frames.load(Ordering::Relaxed),
    );
    out.counter(
        "proxmox_monitor_token_verifications_total",
        "Agent joins whose token bcrypt verified (no valid resumption ticket).",
        ctx.auth.verifications(),
    );
    out.counter(
        "proxmox_monitor_samples_refused_total",
        "Agent samples refused: dated too far ahead, older than raw retention, or over a cap.",
        stats.samples_refused.load(Ordering::Relaxed),
    );
    out.counter(
        "proxmox_monitor_host_events_dropped_total",
        "Host state changes a full subscriber could not take.",
        ctx.hosts.dropped_events(),
    );
    out.gauge(
        "proxmox_monitor_database_size_bytes",
        "Size of the SQLite database (main and history files) with their write-ahead logs.",
        &[],
        to_f64(database_size(ctx.store.path()) + database_size(ctx.store.history_path())),
    );
}

/// The database file plus its `-wal` and `-shm` companions (missing ones count 0).
fn database_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        total += std::fs::metadata(&name).map_or(0, |m| m.len());
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn families_are_grouped_and_labels_escaped() {
        let mut out = Exposition::default();
        out.gauge("a", "A.", &[("x", "1")], 1.0);
        out.gauge("b", "B.", &[], 2.5);
        out.gauge("a", "A.", &[("x", "q\"u\\o\nte")], f64::NAN);
        out.counter("c_total", "C.", 7);
        assert_eq!(
            out.render(),
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"q\\\"u\\\\o\\nte\"} NaN\n\
             # HELP b B.\n# TYPE b gauge\nb 2.5\n\
             # HELP c_total C.\n# TYPE c_total counter\nc_total 7\n"
        );
    }

    #[test]
    fn the_next_scrape_writes_into_the_last_ones_buffers_from_empty() {
        let scrape = |value: f64| {
            let mut out = Exposition::default();
            out.gauge("reuse_test", "R.", &LabelSet::new(&[("x", "1")]), value);
            let buffer = out.families[0].samples.as_ptr() as usize;
            (out.render(), buffer)
        };
        let (first, first_buffer) = scrape(1.0);
        let (second, second_buffer) = scrape(2.0);
        assert_eq!(
            first,
            "# HELP reuse_test R.\n# TYPE reuse_test gauge\nreuse_test{x=\"1\"} 1\n"
        );
        assert_eq!(second, first.replace("} 1", "} 2"));
        assert_eq!(first_buffer, second_buffer);
    }

    #[test]
    fn values() {
        let value = |v: f64| {
            let mut out = String::new();
            push_value(&mut out, v);
            out
        };
        assert_eq!(value(1e15), "1000000000000000");
        assert_eq!(value(123_456.0), "123456");
        assert_eq!(value(-3.0), "-3");
        assert_eq!(value(0.185), "0.185");
        assert_eq!(value(1e300), "1e+300");
        assert_eq!(value(2.5e-7), "2.5e-7");
        // Prometheus reads both back as the same number (Go's ParseFloat).
        assert_eq!("1e+300".parse::<f64>().unwrap(), 1e300);
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(f64::NAN), "NaN");
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
