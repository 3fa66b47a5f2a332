//! The built-in rules: their stable names (tools, tests and docs rely on them), what each
//! watches, and their defaults. The README's rule table is this one.
//!
//! A threshold rule compares a number with a warning, a critical and a separate clear level
//! (hysteresis: a firing alert resolves only once the value is back at or past `clear`). A
//! state rule (a pool's health, a guest stopped, a host gone) has its severity from the state.
//! Every rule has `for` (how long the condition must hold before it fires), `clear_for` (how
//! long it must be gone before it resolves) and `repeat` (how often a firing, unacknowledged
//! alert is announced again; 0 never).

use common::events::MetricKind;

pub use crate::store::alerts::Severity;

/// Which way a threshold points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bad when high (CPU, memory, ...).
    Above,
    /// Bad when low (days until a storage is full).
    Below,
}

impl Direction {
    /// Whether `value` is at or past `level` in the bad direction.
    pub fn reaches(self, value: f64, level: f64) -> bool {
        match self {
            Direction::Above => value >= level,
            Direction::Below => value <= level,
        }
    }

    /// Whether `value` is back at or past `clear` in the good direction.
    pub fn cleared(self, value: f64, clear: f64) -> bool {
        match self {
            Direction::Above => value <= clear,
            Direction::Below => value >= clear,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// The levels of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub warning: f64,
    pub critical: f64,
    pub clear: f64,
    pub direction: Direction,
}

impl Levels {
    /// The severity `value` reaches, if any.
    pub fn level(&self, value: f64) -> Option<Severity> {
        if self.direction.reaches(value, self.critical) {
            Some(Severity::Critical)
        } else if self.direction.reaches(value, self.warning) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    pub fn threshold(&self, severity: Severity) -> f64 {
        match severity {
            Severity::Warning => self.warning,
            Severity::Critical => self.critical,
        }
    }

    /// Warning before critical, clear before warning, in the rule's direction.
    pub fn check(&self) -> Result<(), String> {
        let d = self.direction;
        if !(self.warning.is_finite() && self.critical.is_finite() && self.clear.is_finite()) {
            return Err("levels must be finite numbers".into());
        }
        if !d.reaches(self.critical, self.warning) {
            return Err(format!(
                "critical ({}) must be {} warning ({})",
                self.critical,
                if d == Direction::Above {
                    "at or above"
                } else {
                    "at or below"
                },
                self.warning
            ));
        }
        if d.reaches(self.clear, self.warning) && self.clear != self.warning {
            return Err(format!(
                "clear ({}) must be {} warning ({})",
                self.clear,
                if d == Direction::Above {
                    "at or below"
                } else {
                    "at or above"
                },
                self.warning
            ));
        }
        Ok(())
    }
}

/// How a rule is configured for one host (and guest, object): the defaults, overlaid by the
/// matching overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub enabled: bool,
    /// `None` for state rules.
    pub levels: Option<Levels>,
    /// Seconds the condition must hold before the alert fires.
    pub for_s: i64,
    /// Seconds the condition must be gone before a firing alert resolves.
    pub clear_for_s: i64,
    /// Seconds between reminders of a firing, unacknowledged alert; 0: never.
    pub repeat_s: i64,
}

/// When a rule is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// On the alert thread's timer (and on status changes): conditions that become true
    /// without any event.
    Timer,
    /// On each new sample of this kind.
    Sample(MetricKind),
}

/// How a rule's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    PerCore,
    Days,
    PerMinute,
    /// A state rule: the value is 1 while the state is bad.
    State,
    /// Hours (a backup's age).
    Hours,
    /// A count (failed attempts in a row).
    Count,
    /// Degrees Celsius.
    Celsius,
    /// A custom rule on a stored series: the series' own unit.
    Plain,
}

/// The default `repeat` of every rule (`[alerts] repeat`).
pub const DEFAULT_REPEAT_S: i64 = 4 * 3600;

/// Defines `Builtin` with each rule's name, source, unit and defaults in one table.
macro_rules! builtins {
    ($($variant:ident = $name:literal, $source:expr, $unit:expr, $object:literal,
        levels: $levels:expr, for: $for:expr, doc: $doc:literal;)*) => {
        /// The built-in rules.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Builtin { $($variant,)* }

        impl Builtin {
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant,)*];

            /// The stable name.
            pub fn name(self) -> &'static str {
                match self { $(Builtin::$variant => $name,)* }
            }

            pub fn parse(name: &str) -> Option<Builtin> {
                match name { $($name => Some(Builtin::$variant),)* _ => None }
            }

            pub fn source(self) -> Source {
                match self { $(Builtin::$variant => $source,)* }
            }

            pub fn unit(self) -> Unit {
                match self { $(Builtin::$variant => $unit,)* }
            }

            /// What its object is (empty: the host itself).
            pub fn object_kind(self) -> &'static str {
                match self { $(Builtin::$variant => $object,)* }
            }

            /// The default levels; `None` for state rules.
            pub fn default_levels(self) -> Option<Levels> {
                match self { $(Builtin::$variant => $levels,)* }
            }

            /// The default `for`, in seconds.
            pub fn default_for(self) -> i64 {
                match self { $(Builtin::$variant => $for,)* }
            }

            /// One line on what it watches.
            pub fn doc(self) -> &'static str {
                match self { $(Builtin::$variant => $doc,)* }
            }
        }
    };
}

const fn above(warning: f64, critical: f64, clear: f64) -> Option<Levels> {
    Some(Levels {
        warning,
        critical,
        clear,
        direction: Direction::Above,
    })
}

const FAST: Source = Source::Sample(MetricKind::Fast);
const MEDIUM: Source = Source::Sample(MetricKind::Medium);
const SLOW: Source = Source::Sample(MetricKind::Slow);

builtins! {
    HostOffline = "host_offline", Source::Timer, Unit::State, "",
        levels: None, for: 120,
        doc: "No agent connection (critical). Counted from the disconnect, or from the server's start.";
    HostStale = "host_stale", Source::Timer, Unit::State, "",
        levels: None, for: 0,
        doc: "Connected, but no fast sample for 3 of its intervals, at least 90 s (warning).";
    CpuHigh = "cpu_high", FAST, Unit::Percent, "",
        levels: above(90.0, 98.0, 80.0), for: 300,
        doc: "Busy share of all CPUs, %.";
    MemoryHigh = "memory_high", FAST, Unit::Percent, "",
        levels: above(90.0, 95.0, 85.0), for: 300,
        doc: "Memory used by applications and guests (without the ZFS ARC), % of total.";
    SwapHigh = "swap_high", FAST, Unit::Percent, "",
        levels: above(50.0, 80.0, 40.0), for: 600,
        doc: "Swap used, % of swap (hosts with swap only).";
    LoadHigh = "load_high", FAST, Unit::PerCore, "",
        levels: above(2.0, 4.0, 1.5), for: 600,
        doc: "5-minute load average per logical CPU.";
    PressureHigh = "pressure_high", FAST, Unit::Percent, "cpu, io or memory",
        levels: above(40.0, 80.0, 25.0), for: 300,
        doc: "Pressure stall information: share of the last 10 s some task waited (PSI some avg10), per resource.";
    FsFull = "fs_full", MEDIUM, Unit::Percent, "mount point",
        levels: above(85.0, 95.0, 80.0), for: 300,
        doc: "Filesystem used, % of what is usable (used + available).";
    StorageFull = "storage_full", MEDIUM, Unit::Percent, "storage id",
        levels: above(85.0, 95.0, 80.0), for: 300,
        doc: "Proxmox storage used, % of total (active storages).";
    StorageFillForecast = "storage_fill_forecast", MEDIUM, Unit::Days, "storage id",
        levels: Some(Levels { warning: 7.0, critical: 2.0, clear: 10.0, direction: Direction::Below }),
        for: 1800,
        doc: "Days until the storage is full at the rate it filled over the last 24 h (needs 6 h of history).";
    PoolUnhealthy = "pool_unhealthy", MEDIUM, Unit::State, "pool",
        levels: None, for: 0,
        doc: "ZFS pool not ONLINE: critical for DEGRADED, FAULTED, UNAVAIL, SUSPENDED; warning otherwise.";
    PoolCapacity = "pool_capacity", MEDIUM, Unit::Percent, "pool",
        levels: above(80.0, 90.0, 75.0), for: 300,
        doc: "ZFS pool allocated, % of size.";
    GuestDown = "guest_down", FAST, Unit::State, "vmid",
        levels: None, for: 120,
        doc: "A guest that was running (warning) or has onboot: 1 (critical) is stopped; not a template, not while the config holds a lock (backup, migrate, ...), not once it moved to another node.";
    GuestMemoryHigh = "guest_memory_high", FAST, Unit::Percent, "vmid",
        levels: above(90.0, 98.0, 85.0), for: 600,
        doc: "Memory a running guest uses, % of its limit.";
    NetErrors = "net_errors", FAST, Unit::PerMinute, "interface",
        levels: above(10.0, 100.0, 1.0), for: 300,
        doc: "Receive and transmit errors of an interface, per minute.";
    BackupFailed = "backup_failed", MEDIUM, Unit::State, "vmid",
        levels: None, for: 0,
        doc: "The guest's newest backup failed: no good backup since the failure (critical).";
    BackupStale = "backup_stale", MEDIUM, Unit::Hours, "vmid",
        levels: above(26.0, 50.0, 26.0), for: 0,
        doc: "Hours since the last good backup of a guest that a backup job covers (guests never backed up are left to backup_failed and guest_not_backed_up).";
    GuestNotBackedUp = "guest_not_backed_up", MEDIUM, Unit::State, "vmid",
        levels: None, for: 3600,
        doc: "No enabled backup job on its node selects the guest (warning).";
    ReplicationFailing = "replication_failing", MEDIUM, Unit::Count, "replication job",
        levels: above(1.0, 3.0, 0.0), for: 0,
        doc: "Failed attempts in a row of an enabled storage replication job.";
    HaError = "ha_error", MEDIUM, Unit::State, "HA resource, or quorum",
        levels: None, for: 0,
        doc: "An HA resource in error, fence or recovery, judged on the node whose CRM is master (critical); or this node not in the quorate partition (object `quorum`, critical).";
    SmartFailed = "smart_failed", SLOW, Unit::State, "device",
        levels: None, for: 0,
        doc: "The disk's SMART overall health self-assessment says FAILED (critical).";
    SmartDegrading = "smart_degrading", SLOW, Unit::State, "device",
        levels: None, for: 0,
        doc: "Pending or offline-uncorrectable sectors, reallocated sectors or NVMe media errors grown in the last 7 days, NVMe wear at 90 % (warning); NVMe spare under its threshold, a critical warning bit other than temperature, or wear at 100 % (critical).";
    TempHigh = "temp_high", FAST, Unit::Celsius, "sensor",
        levels: above(80.0, 95.0, 75.0), for: 120,
        doc: "A hwmon temperature: at the sensor's own max (warning) and crit (critical), clear 5 °C under; the levels apply to sensors without thresholds, or to all when set in the config. Drive sensors come with the slow sample.";
}

impl Builtin {
    /// The defaults, with `repeat` from `[alerts]`.
    pub fn defaults(self, repeat_s: i64) -> Settings {
        Settings {
            enabled: true,
            levels: self.default_levels(),
            for_s: self.default_for(),
            clear_for_s: 0,
            repeat_s,
        }
    }

    /// Whether it is about one of a host's guests (its object is a vmid).
    pub fn is_guest_rule(self) -> bool {
        matches!(
            self,
            Builtin::GuestDown
                | Builtin::GuestMemoryHigh
                | Builtin::BackupFailed
                | Builtin::BackupStale
                | Builtin::GuestNotBackedUp
                | Builtin::ReplicationFailing
        )
    }

    /// Whether an offline or stale host's alert of this rule is suppressed by it.
    pub fn is_absence_rule(self) -> bool {
        matches!(self, Builtin::HostOffline | Builtin::HostStale)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_parse_back() {
        let names: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(
            names,
            [
                "host_offline",
                "host_stale",
                "cpu_high",
                "memory_high",
                "swap_high",
                "load_high",
                "pressure_high",
                "fs_full",
                "storage_full",
                "storage_fill_forecast",
                "pool_unhealthy",
                "pool_capacity",
                "guest_down",
                "guest_memory_high",
                "net_errors",
                "backup_failed",
                "backup_stale",
                "guest_not_backed_up",
                "replication_failing",
                "ha_error",
                "smart_failed",
                "smart_degrading",
                "temp_high",
            ]
        );
        for b in Builtin::ALL {
            assert_eq!(Builtin::parse(b.name()), Some(*b));
            if let Some(levels) = b.default_levels() {
                levels.check().unwrap();
            }
        }
        assert_eq!(Builtin::parse("cpu"), None);
    }

    #[test]
    fn levels_in_both_directions() {
        let cpu = Builtin::CpuHigh.default_levels().unwrap();
        assert_eq!(cpu.level(89.9), None);
        assert_eq!(cpu.level(90.0), Some(Severity::Warning));
        assert_eq!(cpu.level(98.0), Some(Severity::Critical));
        assert!(cpu.direction.cleared(80.0, cpu.clear) && !cpu.direction.cleared(80.1, cpu.clear));
        let days = Builtin::StorageFillForecast.default_levels().unwrap();
        assert_eq!(days.level(8.0), None);
        assert_eq!(days.level(6.0), Some(Severity::Warning));
        assert_eq!(days.level(1.0), Some(Severity::Critical));
        assert!(days.direction.cleared(10.0, days.clear));
        let bad = Levels {
            warning: 90.0,
            critical: 80.0,
            clear: 70.0,
            direction: Direction::Above,
        };
        assert!(bad.check().unwrap_err().contains("critical"));
        let bad = Levels {
            clear: 95.0,
            critical: 99.0,
            ..bad
        };
        assert!(bad.check().unwrap_err().contains("clear"));
    }
}
