//! Series names: the stable names of the numeric series the server stores, as typed values.
//!
//! `SeriesName` is built by `series_points` (`crate::sample`) when a sample is flattened, and
//! parsed back by whoever reads stored names (the dashboard finding a host's disks and
//! interfaces, scripts listing `metrics HOST`). Its text form is a stable interface: `<x>` is a
//! name taken from the node; a mount point becomes its path with every `/` replaced by `_`
//! (`/` → `_`, `/var/lib/vz` → `_var_lib_vz`), and `_` and `%` written as `%5F` and `%25`, so
//! that two mount points never share a name (`/mnt/backup_nas` is `_mnt_backup%5Fnas`,
//! `/mnt/backup/nas` is `_mnt_backup_nas`).
//!
//! | sample | series |
//! |---|---|
//! | fast | `load1` `load5` `load15` `uptime_seconds` |
//! | fast | `cpu_percent` `cpu_user_percent` `cpu_system_percent` `cpu_iowait_percent` `cpu_steal_percent` `cpu.<n>.percent` |
//! | fast | `mem_total_bytes` `mem_available_bytes` `mem_used_bytes` `mem_arc_bytes` `mem_used_without_arc_bytes` `swap_total_bytes` `swap_used_bytes` |
//! | fast | `psi.<cpu\|io\|memory>.<some\|full>_avg10` |
//! | fast | `arc.size_bytes` `arc.target_bytes` `arc.min_bytes` `arc.max_bytes` `arc.hit_ratio_percent` |
//! | fast | `net.<iface>.rx_bytes_per_s` `.tx_bytes_per_s` `.rx_packets_per_s` `.tx_packets_per_s` `.rx_errors` `.tx_errors` `.rx_dropped` `.tx_dropped` |
//! | fast | `disk.<dev>.read_bytes_per_s` `.write_bytes_per_s` `.read_iops` `.write_iops` `.busy_percent` |
//! | fast | `guest.<vmid>.running` `.uptime_seconds` `.cpu_percent` `.cpu_host_percent` `.mem_used_bytes` `.mem_limit_bytes` `.disk_read_bytes_per_s` `.disk_write_bytes_per_s` `.net_in_bytes_per_s` `.net_out_bytes_per_s` `.psi.<cpu\|io\|memory>.<some\|full>_avg10` |
//! | fast | `temp.<device>/<sensor>.celsius` |
//! | medium | `pool.<name>.size_bytes` `.alloc_bytes` `.free_bytes` `.frag_percent` `.dedup_ratio` `.healthy` |
//! | medium | `fs.<mountpoint>.size_bytes` `.used_bytes` `.avail_bytes` `.inodes_total` `.inodes_used` |
//! | medium | `storage.<id>.total_bytes` `.used_bytes` `.avail_bytes` `.active` |
//! | slow | `cpu_count` |
//! | slow | `smart.<dev>.temperature_celsius` `.power_on_hours` `.percentage_used` `.available_spare_percent` `.media_errors` |
//!
//! A temperature is a hwmon sensor, named by its device and sensor as the alert `temp_high`
//! names it (`temp.coretemp.0/temp1.celsius`, `temp.hwmon1/temp1.celsius`); drive sensors
//! (`drivetemp`) come with the slow sample under the same name. `smart.<dev>` is a disk of
//! `smartctl --scan` without `/dev/` (`smart.nvme0.percentage_used`); the ATA sector counts are
//! exported on `/metrics` but not stored (they change rarely; `smart_degrading` watches them).
//!
//! Counters that are not rates (`rx_errors`, ...) are totals since boot. `running`, `healthy`
//! and `active` are 1 or 0. A test checks this table against what the golden samples of
//! `fixtures/protocol/` produce, in both directions.
//!
//! Names taken from the node may contain dots (`eno1.100`, a pool `tank.old`): the field is
//! always the last part (after the node's name), and no field contains a dot, so the parser
//! splits at the last dot. A vmid is a number, so a guest's field is everything after it.

use std::fmt;

/// Defines a field enum whose variants have fixed texts, with `ALL`, `as_str` and `parse`.
macro_rules! fields {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

fields! {
    /// Series of the node as a whole, named without a prefix.
    HostField {
        Load1 = "load1",
        Load5 = "load5",
        Load15 = "load15",
        UptimeSeconds = "uptime_seconds",
        CpuPercent = "cpu_percent",
        CpuUserPercent = "cpu_user_percent",
        CpuSystemPercent = "cpu_system_percent",
        CpuIowaitPercent = "cpu_iowait_percent",
        CpuStealPercent = "cpu_steal_percent",
        MemTotalBytes = "mem_total_bytes",
        MemAvailableBytes = "mem_available_bytes",
        MemUsedBytes = "mem_used_bytes",
        MemArcBytes = "mem_arc_bytes",
        MemUsedWithoutArcBytes = "mem_used_without_arc_bytes",
        SwapTotalBytes = "swap_total_bytes",
        SwapUsedBytes = "swap_used_bytes",
        /// From the slow sample.
        CpuCount = "cpu_count",
    }
}

fields! {
    /// The resource of a pressure stall figure.
    PsiResource {
        Cpu = "cpu",
        Io = "io",
        Memory = "memory",
    }
}

fields! {
    /// `some` (at least one task stalled) or `full` (all stalled).
    PsiLine {
        Some = "some",
        Full = "full",
    }
}

fields! {
    /// `arc.<field>`.
    ArcField {
        SizeBytes = "size_bytes",
        TargetBytes = "target_bytes",
        MinBytes = "min_bytes",
        MaxBytes = "max_bytes",
        HitRatioPercent = "hit_ratio_percent",
    }
}

fields! {
    /// `net.<iface>.<field>`.
    NetField {
        RxBytesPerS = "rx_bytes_per_s",
        TxBytesPerS = "tx_bytes_per_s",
        RxPacketsPerS = "rx_packets_per_s",
        TxPacketsPerS = "tx_packets_per_s",
        RxErrors = "rx_errors",
        TxErrors = "tx_errors",
        RxDropped = "rx_dropped",
        TxDropped = "tx_dropped",
    }
}

fields! {
    /// `disk.<dev>.<field>`.
    DiskField {
        ReadBytesPerS = "read_bytes_per_s",
        WriteBytesPerS = "write_bytes_per_s",
        ReadIops = "read_iops",
        WriteIops = "write_iops",
        BusyPercent = "busy_percent",
    }
}

fields! {
    /// `guest.<vmid>.<field>` (pressure figures are `SeriesName::GuestPsi`).
    GuestField {
        Running = "running",
        UptimeSeconds = "uptime_seconds",
        CpuPercent = "cpu_percent",
        CpuHostPercent = "cpu_host_percent",
        MemUsedBytes = "mem_used_bytes",
        MemLimitBytes = "mem_limit_bytes",
        DiskReadBytesPerS = "disk_read_bytes_per_s",
        DiskWriteBytesPerS = "disk_write_bytes_per_s",
        NetInBytesPerS = "net_in_bytes_per_s",
        NetOutBytesPerS = "net_out_bytes_per_s",
    }
}

fields! {
    /// `pool.<name>.<field>`.
    PoolField {
        SizeBytes = "size_bytes",
        AllocBytes = "alloc_bytes",
        FreeBytes = "free_bytes",
        FragPercent = "frag_percent",
        DedupRatio = "dedup_ratio",
        Healthy = "healthy",
    }
}

fields! {
    /// `fs.<mountpoint>.<field>`.
    FsField {
        SizeBytes = "size_bytes",
        UsedBytes = "used_bytes",
        AvailBytes = "avail_bytes",
        InodesTotal = "inodes_total",
        InodesUsed = "inodes_used",
    }
}

fields! {
    /// `storage.<id>.<field>`.
    StorageField {
        TotalBytes = "total_bytes",
        UsedBytes = "used_bytes",
        AvailBytes = "avail_bytes",
        Active = "active",
    }
}

fields! {
    /// `temp.<device>/<sensor>.<field>`.
    TempField {
        Celsius = "celsius",
    }
}

fields! {
    /// `smart.<dev>.<field>`.
    SmartField {
        TemperatureCelsius = "temperature_celsius",
        PowerOnHours = "power_on_hours",
        PercentageUsed = "percentage_used",
        AvailableSparePercent = "available_spare_percent",
        MediaErrors = "media_errors",
    }
}

/// A pressure figure: `psi.<resource>.<line>_avg10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Psi {
    pub resource: PsiResource,
    pub line: PsiLine,
}

impl Psi {
    /// `cpu.some_avg10` (without the `psi.` prefix).
    fn parse_tail(text: &str) -> Option<Psi> {
        let (resource, line) = text.strip_suffix("_avg10")?.split_once('.')?;
        Some(Psi {
            resource: PsiResource::parse(resource)?,
            line: PsiLine::parse(line)?,
        })
    }
}

impl fmt::Display for Psi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "psi.{}.{}_avg10", self.resource, self.line)
    }
}

/// The name of one stored series of a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesName {
    Host(HostField),
    /// `cpu.<n>.percent`: one CPU, numbered from 0.
    CpuCore(u32),
    /// The node's pressure figures.
    Psi(Psi),
    Arc(ArcField),
    Net(String, NetField),
    Disk(String, DiskField),
    Guest(u32, GuestField),
    GuestPsi(u32, Psi),
    Pool(String, PoolField),
    /// The mount point as it appears in names (see [`mountpoint_series_name`]).
    Fs(String, FsField),
    Storage(String, StorageField),
    /// A hwmon sensor: `<device>/<sensor>` (`coretemp.0/temp1`).
    Temp(String, TempField),
    /// A disk of `smartctl --scan`, without `/dev/`.
    Smart(String, SmartField),
}

impl SeriesName {
    /// `fs.<mountpoint>.<field>` of a mount point as the node names it (`/var/lib/vz`).
    pub fn fs(mountpoint: &str, field: FsField) -> SeriesName {
        SeriesName::Fs(mountpoint_series_name(mountpoint), field)
    }

    /// Parses a stored name; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<SeriesName> {
        if let Some(field) = HostField::parse(name) {
            return Some(SeriesName::Host(field));
        }
        let (prefix, rest) = name.split_once('.')?;
        // `<node's name>.<field>`: the field is the part after the last dot.
        let named = || rest.rsplit_once('.').filter(|(n, _)| !n.is_empty());
        match prefix {
            "cpu" => rest
                .strip_suffix(".percent")
                .and_then(number)
                .map(SeriesName::CpuCore),
            "psi" => Psi::parse_tail(rest).map(SeriesName::Psi),
            "arc" => ArcField::parse(rest).map(SeriesName::Arc),
            "net" => {
                named().and_then(|(n, f)| Some(SeriesName::Net(n.into(), NetField::parse(f)?)))
            }
            "disk" => {
                named().and_then(|(n, f)| Some(SeriesName::Disk(n.into(), DiskField::parse(f)?)))
            }
            "pool" => {
                named().and_then(|(n, f)| Some(SeriesName::Pool(n.into(), PoolField::parse(f)?)))
            }
            "fs" => named().and_then(|(n, f)| Some(SeriesName::Fs(n.into(), FsField::parse(f)?))),
            "storage" => named()
                .and_then(|(n, f)| Some(SeriesName::Storage(n.into(), StorageField::parse(f)?))),
            "temp" => {
                named().and_then(|(n, f)| Some(SeriesName::Temp(n.into(), TempField::parse(f)?)))
            }
            "smart" => {
                named().and_then(|(n, f)| Some(SeriesName::Smart(n.into(), SmartField::parse(f)?)))
            }
            "guest" => {
                let (vmid, field) = rest.split_once('.')?;
                let vmid = number(vmid)?;
                match field.strip_prefix("psi.") {
                    Some(psi) => Psi::parse_tail(psi).map(|p| SeriesName::GuestPsi(vmid, p)),
                    None => GuestField::parse(field).map(|f| SeriesName::Guest(vmid, f)),
                }
            }
            _ => None,
        }
    }
}

impl fmt::Display for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesName::Host(field) => f.write_str(field.as_str()),
            SeriesName::CpuCore(n) => write!(f, "cpu.{n}.percent"),
            SeriesName::Psi(psi) => psi.fmt(f),
            SeriesName::Arc(field) => write!(f, "arc.{field}"),
            SeriesName::Net(name, field) => write!(f, "net.{name}.{field}"),
            SeriesName::Disk(name, field) => write!(f, "disk.{name}.{field}"),
            SeriesName::Guest(vmid, field) => write!(f, "guest.{vmid}.{field}"),
            SeriesName::GuestPsi(vmid, psi) => write!(f, "guest.{vmid}.{psi}"),
            SeriesName::Pool(name, field) => write!(f, "pool.{name}.{field}"),
            SeriesName::Fs(name, field) => write!(f, "fs.{name}.{field}"),
            SeriesName::Storage(name, field) => write!(f, "storage.{name}.{field}"),
            SeriesName::Temp(name, field) => write!(f, "temp.{name}.{field}"),
            SeriesName::Smart(name, field) => write!(f, "smart.{name}.{field}"),
        }
    }
}

impl From<HostField> for SeriesName {
    fn from(field: HostField) -> SeriesName {
        SeriesName::Host(field)
    }
}

/// A mount point as it appears in series names: `/` → `_`, `/var/lib/vz` → `_var_lib_vz`;
/// `_` → `%5F` and `%` → `%25`, so that the mapping is one-to-one ([`mountpoint_of_series_name`]
/// reverses it).
pub fn mountpoint_series_name(mountpoint: &str) -> String {
    let mut out = String::with_capacity(mountpoint.len());
    for c in mountpoint.chars() {
        match c {
            '/' => out.push('_'),
            '_' => out.push_str("%5F"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// The mount point a series name was made from; `None` if no mount point makes it.
pub fn mountpoint_of_series_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '_' => out.push('/'),
            '%' if rest.starts_with("5F") => {
                out.push('_');
                rest = &rest[2..];
            }
            '%' if rest.starts_with("25") => {
                out.push('%');
                rest = &rest[2..];
            }
            '%' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A plain decimal number (no sign, no leading `+`), as vmids and CPU numbers are written.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::events::MetricPush;
    use crate::sample::{FastSample, MediumSample, SlowSample};
    use crate::Frame;

    fn all_psi() -> Vec<Psi> {
        PsiResource::ALL
            .iter()
            .flat_map(|&resource| PsiLine::ALL.iter().map(move |&line| Psi { resource, line }))
            .collect()
    }

    /// One of every shape, including names from the node with dots, dashes and underscores.
    fn every_shape() -> Vec<SeriesName> {
        let mut names: Vec<SeriesName> = HostField::ALL.iter().map(|&f| f.into()).collect();
        names.push(SeriesName::CpuCore(0));
        names.push(SeriesName::CpuCore(127));
        names.extend(all_psi().into_iter().map(SeriesName::Psi));
        names.extend(ArcField::ALL.iter().map(|&f| SeriesName::Arc(f)));
        for iface in ["eno1", "eno1.100", "vmbr0v5", "bond0"] {
            names.extend(
                NetField::ALL
                    .iter()
                    .map(|&f| SeriesName::Net(iface.into(), f)),
            );
        }
        for dev in ["nvme0n1", "sda", "dm.x"] {
            names.extend(
                DiskField::ALL
                    .iter()
                    .map(|&f| SeriesName::Disk(dev.into(), f)),
            );
        }
        for vmid in [100, 999_999_999] {
            names.extend(GuestField::ALL.iter().map(|&f| SeriesName::Guest(vmid, f)));
            names.extend(all_psi().into_iter().map(|p| SeriesName::GuestPsi(vmid, p)));
        }
        for pool in ["rpool", "tank.old", "a-b_c:d"] {
            names.extend(
                PoolField::ALL
                    .iter()
                    .map(|&f| SeriesName::Pool(pool.into(), f)),
            );
        }
        for mount in ["/", "/var/lib/vz", "/mnt/a.b"] {
            names.extend(FsField::ALL.iter().map(|&f| SeriesName::fs(mount, f)));
        }
        for id in ["local", "local-zfs", "nas.iso"] {
            names.extend(
                StorageField::ALL
                    .iter()
                    .map(|&f| SeriesName::Storage(id.into(), f)),
            );
        }
        for sensor in ["coretemp.0/temp1", "hwmon1/temp3", "0000:00:18.3/temp1"] {
            names.extend(
                TempField::ALL
                    .iter()
                    .map(|&f| SeriesName::Temp(sensor.into(), f)),
            );
        }
        for dev in ["sda", "nvme0"] {
            names.extend(
                SmartField::ALL
                    .iter()
                    .map(|&f| SeriesName::Smart(dev.into(), f)),
            );
        }
        names
    }

    #[test]
    fn every_name_parses_back_to_itself() {
        let names = every_shape();
        for name in &names {
            let text = name.to_string();
            assert_eq!(SeriesName::parse(&text).as_ref(), Some(name), "{text}");
        }
        let texts: std::collections::HashSet<String> =
            names.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), names.len(), "two names share a text");
    }

    #[test]
    fn names_we_do_not_know_are_none() {
        for bad in [
            "",
            "load2",
            "cpu..percent",
            "cpu.x.percent",
            "cpu.-1.percent",
            "cpu.1.busy",
            "psi.cpu.some",
            "psi.disk.some_avg10",
            "net.eno1",
            "net..rx_bytes_per_s",
            "net.eno1.rx_bytes",
            "guest.abc.running",
            "guest.100",
            "guest.100.psi.cpu.half_avg10",
            "pool.rpool.health",
            "fs.rx_bytes_per_s",
            "other.x.y",
        ] {
            assert_eq!(SeriesName::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mountpoint_names_are_one_to_one() {
        assert_eq!(
            mountpoint_series_name("/mnt/backup_nas"),
            "_mnt_backup%5Fnas"
        );
        assert_eq!(mountpoint_series_name("/mnt/backup/nas"), "_mnt_backup_nas");
        assert_eq!(mountpoint_series_name("/a%5Fb"), "_a%255Fb");
        let mounts = [
            "/", "/_", "//", "/a_b", "/a/b", "/a%b", "/a%5Fb", "/a%25", "_", "%", "/é_ü", "",
        ];
        let names: std::collections::HashSet<String> =
            mounts.iter().map(|m| mountpoint_series_name(m)).collect();
        assert_eq!(names.len(), mounts.len());
        for mount in mounts {
            let name = mountpoint_series_name(mount);
            assert_eq!(
                mountpoint_of_series_name(&name).as_deref(),
                Some(mount),
                "{name}"
            );
        }
        assert_eq!(mountpoint_of_series_name("_a%zz"), None);
    }

    #[test]
    fn mountpoints_in_series_names() {
        assert_eq!(mountpoint_series_name("/"), "_");
        assert_eq!(mountpoint_series_name("/var/lib/vz"), "_var_lib_vz");
        assert_eq!(
            SeriesName::fs("/var/lib/vz", FsField::UsedBytes).to_string(),
            "fs._var_lib_vz.used_bytes"
        );
    }

    /// The documented table as patterns: `net.<iface>.rx_bytes_per_s`, one per name, with
    /// `<a\|b>` alternatives expanded and `.suffix` cells completed from the row's first name.
    fn documented_patterns() -> Vec<String> {
        let source = include_str!("series.rs");
        let mut patterns = Vec::new();
        for line in source.lines() {
            let Some(row) = line.strip_prefix("//! | ") else {
                continue;
            };
            let Some((kind, cells)) = row.split_once(" | ") else {
                continue;
            };
            if !["fast", "medium", "slow"].contains(&kind) {
                continue;
            }
            let names: Vec<&str> = cells
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| !n.is_empty())
                .collect();
            let first = names[0].replace("\\|", "|");
            // The prefix `.suffix` cells extend: everything up to the first field's last dot
            // outside a `<...>` placeholder.
            let prefix = match first.rfind('>') {
                Some(end) => first[..end + 1].to_owned() + ".",
                None => first[..first.rfind('.').map_or(0, |i| i + 1)].to_owned(),
            };
            for name in names {
                let name = name.replace("\\|", "|");
                let full = match name.strip_prefix('.') {
                    Some(rest) => format!("{prefix}{rest}"),
                    None => name,
                };
                patterns.extend(expand(&full));
            }
        }
        patterns
    }

    /// `psi.<cpu|io>.<some|full>_avg10` → four patterns; `<x>` without `|` stays a placeholder.
    fn expand(pattern: &str) -> Vec<String> {
        let Some(start) = pattern.match_indices('<').map(|(i, _)| i).find(|&i| {
            pattern[i..]
                .find('>')
                .is_some_and(|e| pattern[i..i + e].contains('|'))
        }) else {
            return vec![pattern.to_owned()];
        };
        let end = start + pattern[start..].find('>').unwrap();
        pattern[start + 1..end]
            .split('|')
            .flat_map(|choice| {
                expand(&format!(
                    "{}{choice}{}",
                    &pattern[..start],
                    &pattern[end + 1..]
                ))
            })
            .collect()
    }

    /// Whether `name` fits `pattern`, where a `<x>` placeholder stands for one or more
    /// characters.
    fn fits(pattern: &str, name: &str) -> bool {
        match pattern.find('<') {
            None => pattern == name,
            Some(start) => {
                let end = start + pattern[start..].find('>').unwrap();
                let (head, tail) = (&pattern[..start], &pattern[end + 1..]);
                // The tail may hold placeholders too (`<device>/<sensor>`): try every cut.
                name.starts_with(head)
                    && (head.len() + 1..=name.len())
                        .any(|cut| name.is_char_boundary(cut) && fits(tail, &name[cut..]))
            }
        }
    }

    fn golden_names() -> Vec<String> {
        let data = |text: &str| {
            let frame = Frame::decode(text).unwrap();
            serde_json::from_value::<MetricPush>(frame.payload)
                .unwrap()
                .data
        };
        let fast: FastSample = serde_json::from_value(data(include_str!(
            "../../fixtures/protocol/metric_fast.json"
        )))
        .unwrap();
        let medium: MediumSample = serde_json::from_value(data(include_str!(
            "../../fixtures/protocol/metric_medium.json"
        )))
        .unwrap();
        let slow: SlowSample = serde_json::from_value(data(include_str!(
            "../../fixtures/protocol/metric_slow.json"
        )))
        .unwrap();
        fast.series_points()
            .into_iter()
            .chain(medium.series_points())
            .chain(slow.series_points())
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn the_documented_table_matches_what_the_golden_samples_produce() {
        let patterns = documented_patterns();
        assert!(patterns.len() > 60, "table not found: {patterns:?}");
        let names = golden_names();
        for name in &names {
            let matching: Vec<&String> = patterns.iter().filter(|p| fits(p, name)).collect();
            assert_eq!(
                matching.len(),
                1,
                "golden series {name:?} fits {matching:?} of the documented table"
            );
            assert!(SeriesName::parse(name).is_some(), "{name:?} does not parse");
        }
        for pattern in &patterns {
            assert!(
                names.iter().any(|n| fits(pattern, n)),
                "documented {pattern:?} is produced by no golden sample"
            );
        }
    }

    #[test]
    fn patterns_and_placeholders() {
        assert_eq!(
            expand("psi.<cpu|io>.<some|full>_avg10"),
            [
                "psi.cpu.some_avg10",
                "psi.cpu.full_avg10",
                "psi.io.some_avg10",
                "psi.io.full_avg10"
            ]
        );
        assert!(fits("net.<iface>.rx_errors", "net.eno1.100.rx_errors"));
        assert!(!fits("net.<iface>.rx_errors", "net..rx_errors"));
        assert!(!fits("load1", "load15"));
        assert!(fits(
            "temp.<d>/<s>.celsius",
            "temp.coretemp.0/temp1.celsius"
        ));
        assert!(!fits("temp.<d>/<s>.celsius", "temp./temp1.celsius"));
    }
}
