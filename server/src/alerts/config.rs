//! `[alerts]` in the server's TOML: global settings, per-rule overrides scoped by host, guest,
//! tag or object, custom threshold rules on any stored series, and maintenance windows.
//!
//! ```toml
//! [alerts]
//! repeat = "4h"              # reminders of firing, unacknowledged alerts ("0s": never)
//! history_days = 90
//!
//! [alerts.rules.cpu_high]    # one table: applies everywhere
//! warning = 85
//! critical = 95
//! clear = 80
//! for = "10m"
//!
//! [[alerts.rules.fs_full]]   # an array of tables: several scopes, the most specific wins
//! objects = ["/mnt/backup*"]
//! warning = 95
//! critical = 99
//! clear = 90
//!
//! [alerts.rules.nightly_io]  # a custom rule: any stored series, globs allowed
//! series = "disk.*.busy_percent"
//! warning = 80
//! critical = 95
//! for = "15m"
//!
//! [[alerts.maintenance]]
//! name = "patch night"
//! days = ["sun"]
//! start = "02:00"
//! end = "04:00"
//! timezone = "Europe/Berlin"
//! hosts = ["pve-*"]
//! ```
//!
//! Specificity: a scope naming guests weighs 8, objects 4, tags 2, hosts 1 (summed when a
//! scope names several); each key is taken from the heaviest matching scope that sets it
//! (later entries win ties), then from unscoped entries, then from the defaults. Every error
//! names the rule and the key, and the server refuses to start on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::quiet::{Matchers, Subject, Window, WindowEnd};
use super::rules::{Builtin, Direction, Levels, Settings, DEFAULT_REPEAT_S};

/// The default `history_days`.
pub const DEFAULT_HISTORY_DAYS: i64 = 90;

/// A rule's index in the `RuleTable` (built-in rules first, in `Builtin::ALL` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u16);

/// The alerting settings, checked.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `false`: no rule is evaluated (the pages still show history).
    pub enabled: bool,
    pub history_days: i64,
    pub rules: Arc<RuleTable>,
    pub windows: Vec<Window>,
    /// Set from `[notify.repeat]` (see `crate::notify`).
    pub repeat_by_severity: RepeatBySeverity,
}

/// Reminder intervals by severity (seconds; 0: never) that replace the rules' `repeat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepeatBySeverity {
    pub warning: Option<i64>,
    pub critical: Option<i64>,
}

impl RepeatBySeverity {
    pub fn get(&self, severity: crate::store::alerts::Severity) -> Option<i64> {
        match severity {
            crate::store::alerts::Severity::Warning => self.warning,
            crate::store::alerts::Severity::Critical => self.critical,
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            enabled: true,
            history_days: DEFAULT_HISTORY_DAYS,
            rules: Arc::new(RuleTable::defaults(DEFAULT_REPEAT_S)),
            windows: Vec::new(),
            repeat_by_severity: RepeatBySeverity::default(),
        }
    }
}

/// Every rule with its defaults and overrides.
#[derive(Debug, Clone)]
pub struct RuleTable {
    rules: Vec<RuleDef>,
}

#[derive(Debug, Clone)]
pub struct RuleDef {
    pub name: String,
    pub kind: RuleKind,
    /// Defaults overlaid with the unscoped entries.
    pub base: Settings,
    /// Scoped entries, lightest first (so applying them in order lets the heaviest win).
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Builtin(Builtin),
    /// A threshold on every stored series whose name matches `series` (a glob).
    Custom {
        series: String,
    },
}

#[derive(Debug, Clone)]
pub struct Override {
    pub scope: Matchers,
    pub weight: u32,
    pub partial: Partial,
}

/// The keys one entry sets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Partial {
    pub enabled: Option<bool>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub clear: Option<f64>,
    pub for_s: Option<i64>,
    pub clear_for_s: Option<i64>,
    pub repeat_s: Option<i64>,
}

impl Partial {
    fn apply(&self, settings: &mut Settings) {
        if let Some(v) = self.enabled {
            settings.enabled = v;
        }
        if let Some(levels) = settings.levels.as_mut() {
            if let Some(v) = self.warning {
                levels.warning = v;
            }
            if let Some(v) = self.critical {
                levels.critical = v;
            }
            if let Some(v) = self.clear {
                levels.clear = v;
            }
        }
        if let Some(v) = self.for_s {
            settings.for_s = v;
        }
        if let Some(v) = self.clear_for_s {
            settings.clear_for_s = v;
        }
        if let Some(v) = self.repeat_s {
            settings.repeat_s = v;
        }
    }
}

impl RuleTable {
    /// The built-in rules with their defaults.
    pub fn defaults(repeat_s: i64) -> RuleTable {
        RuleTable {
            rules: Builtin::ALL
                .iter()
                .map(|b| RuleDef {
                    name: b.name().to_owned(),
                    kind: RuleKind::Builtin(*b),
                    base: b.defaults(repeat_s),
                    overrides: Vec::new(),
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn get(&self, id: RuleId) -> &RuleDef {
        &self.rules[usize::from(id.0).min(self.rules.len().saturating_sub(1))]
    }

    pub fn name(&self, id: RuleId) -> &str {
        &self.get(id).name
    }

    pub fn id(&self, name: &str) -> Option<RuleId> {
        self.rules
            .iter()
            .position(|r| r.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(RuleId)
    }

    /// The id of a built-in rule (they come first, in `Builtin::ALL` order).
    pub fn builtin(b: Builtin) -> RuleId {
        RuleId(b as u16)
    }

    /// Every rule's id.
    pub fn ids(&self) -> impl Iterator<Item = RuleId> + '_ {
        (0..self.rules.len()).filter_map(|i| u16::try_from(i).ok().map(RuleId))
    }

    /// The custom rules.
    pub fn custom(&self) -> impl Iterator<Item = (RuleId, &str)> + '_ {
        self.ids().filter_map(|id| match &self.get(id).kind {
            RuleKind::Custom { series } => Some((id, series.as_str())),
            RuleKind::Builtin(_) => None,
        })
    }

    pub fn has_custom(&self) -> bool {
        self.custom().next().is_some()
    }

    /// Whether any override of `id` is scoped by guest tags (they are then looked up per
    /// guest).
    pub fn needs_tags(&self, id: RuleId) -> bool {
        self.get(id)
            .overrides
            .iter()
            .any(|o| !o.scope.tags.is_empty())
    }

    /// The settings of rule `id` for `subject`.
    pub fn settings(&self, id: RuleId, subject: &Subject<'_>) -> Settings {
        let rule = self.get(id);
        let mut settings = rule.base;
        for o in &rule.overrides {
            if o.scope.matches(subject) {
                o.partial.apply(&mut settings);
            }
        }
        settings
    }
}

/// Durations are written like `90s`, `5m`, `2h`, `1d` (or `0`).
pub(crate) fn seconds(text: &str) -> Result<i64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like \"5m\" or \"2h\" ({e})"))?;
    i64::try_from(d.as_secs()).map_err(|_| format!("{text:?} is too long"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    enabled: Option<bool>,
    history_days: Option<i64>,
    repeat: Option<String>,
    #[serde(default)]
    rules: BTreeMap<String, toml::Value>,
    #[serde(default)]
    maintenance: Vec<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    enabled: Option<bool>,
    warning: Option<f64>,
    critical: Option<f64>,
    clear: Option<f64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    clear_for: Option<String>,
    repeat: Option<String>,
    hosts: Option<Vec<String>>,
    guests: Option<Vec<u32>>,
    tags: Option<Vec<String>>,
    objects: Option<Vec<String>>,
    series: Option<String>,
    direction: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    name: Option<String>,
    #[serde(default)]
    days: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    duration: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    guests: Vec<u32>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    objects: Vec<String>,
}

impl AlertsConfig {
    /// Reads an `[alerts]` table. The error is `key: message`, the key spelled out from
    /// `alerts` down (`alerts.rules.cpu_high.warning`).
    pub fn from_toml(value: toml::Value) -> Result<AlertsConfig, String> {
        let raw: RawAlerts = value
            .try_into()
            .map_err(|e: toml::de::Error| format!("alerts: {}", one_line(&e.to_string())))?;
        let history_days = raw.history_days.unwrap_or(DEFAULT_HISTORY_DAYS);
        if !(1..=3650).contains(&history_days) {
            return Err(format!(
                "alerts.history_days: {history_days} is outside 1..=3650"
            ));
        }
        let repeat_s = match &raw.repeat {
            Some(text) => seconds(text).map_err(|m| format!("alerts.repeat: {m}"))?,
            None => DEFAULT_REPEAT_S,
        };
        let mut table = RuleTable::defaults(repeat_s);
        for (name, value) in raw.rules {
            let key = format!("alerts.rules.{name}");
            let entries: Vec<RawRule> = match value {
                toml::Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.try_into().map_err(|e: toml::de::Error| {
                            format!("{key}[{i}]: {}", one_line(&e.to_string()))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                value @ toml::Value::Table(_) => {
                    vec![value.try_into().map_err(|e: toml::de::Error| {
                        format!("{key}: {}", one_line(&e.to_string()))
                    })?]
                }
                _ => return Err(format!("{key}: must be a table or an array of tables")),
            };
            add_rule(&mut table, &name, &key, entries, repeat_s)?;
        }
        let windows = raw
            .maintenance
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let key = format!("alerts.maintenance[{i}]");
                let raw: RawWindow = value
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("{key}: {}", one_line(&e.to_string())))?;
                window(raw, i, &key, &table)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertsConfig {
            enabled: raw.enabled.unwrap_or(true),
            history_days,
            rules: Arc::new(table),
            windows,
            repeat_by_severity: RepeatBySeverity::default(),
        })
    }
}

pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A custom rule's name: it is a label value, a URL part and a config key.
fn valid_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

fn add_rule(
    table: &mut RuleTable,
    name: &str,
    key: &str,
    entries: Vec<RawRule>,
    repeat_s: i64,
) -> Result<(), String> {
    let builtin = Builtin::parse(name);
    let custom_series = entries.iter().find_map(|e| e.series.clone());
    let mut def = match (builtin, &custom_series) {
        (Some(b), None) => RuleDef {
            name: name.to_owned(),
            kind: RuleKind::Builtin(b),
            base: b.defaults(repeat_s),
            overrides: Vec::new(),
        },
        (Some(_), Some(_)) => {
            return Err(format!(
                "{key}.series: {name} is a built-in rule; a custom rule needs a name of its own"
            ))
        }
        (None, None) => {
            let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
            return Err(format!(
                "{key}: no built-in rule is called {name:?} (they are {}); a custom rule needs \
                 `series`",
                known.join(", ")
            ));
        }
        (None, Some(series)) => {
            if !valid_rule_name(name) {
                return Err(format!(
                    "{key}: a rule name is 1-64 characters of a-z, 0-9 and _, starting with a letter"
                ));
            }
            if series.is_empty()
                || !series
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-*?:@+".contains(c))
            {
                return Err(format!(
                    "{key}.series: {series:?} is not a series name or glob (e.g. \"disk.*.busy_percent\")"
                ));
            }
            let direction = match entries.iter().find_map(|e| e.direction.as_deref()) {
                None | Some("above") => Direction::Above,
                Some("below") => Direction::Below,
                Some(other) => {
                    return Err(format!(
                        "{key}.direction: {other:?} is neither \"above\" nor \"below\""
                    ))
                }
            };
            let first = entries.first();
            let warning = first.and_then(|e| e.warning).ok_or_else(|| {
                format!("{key}.warning: a custom rule needs warning and critical levels")
            })?;
            let critical = first.and_then(|e| e.critical).ok_or_else(|| {
                format!("{key}.critical: a custom rule needs warning and critical levels")
            })?;
            RuleDef {
                name: name.to_owned(),
                kind: RuleKind::Custom {
                    series: series.clone(),
                },
                base: Settings {
                    enabled: true,
                    levels: Some(Levels {
                        warning,
                        critical,
                        clear: warning,
                        direction,
                    }),
                    for_s: 300,
                    clear_for_s: 0,
                    repeat_s,
                },
                overrides: Vec::new(),
            }
        }
    };
    let is_custom = matches!(def.kind, RuleKind::Custom { .. });
    let mut scoped: Vec<(usize, Override)> = Vec::new();
    let mut unscoped: Vec<Partial> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let at = |field: &str| {
            if i == 0 {
                format!("{key}.{field}")
            } else {
                format!("{key}[{i}].{field}")
            }
        };
        if !is_custom && entry.direction.is_some() {
            return Err(format!(
                "{}: only custom rules have a direction",
                at("direction")
            ));
        }
        if is_custom && i > 0 && (entry.series.is_some() || entry.direction.is_some()) {
            return Err(format!(
                "{}: `series` and `direction` belong in the first entry",
                at("series")
            ));
        }
        if def.base.levels.is_none() {
            for (field, v) in [
                ("warning", entry.warning),
                ("critical", entry.critical),
                ("clear", entry.clear),
            ] {
                if v.is_some() {
                    return Err(format!(
                        "{}: {name} is about states, not numbers; it has no levels (only \
                         enabled, for, clear_for, repeat)",
                        at(field)
                    ));
                }
            }
        }
        let duration = |field: &str, text: &Option<String>| -> Result<Option<i64>, String> {
            text.as_deref()
                .map(|t| seconds(t).map_err(|m| format!("{}: {m}", at(field))))
                .transpose()
        };
        let partial = Partial {
            enabled: entry.enabled,
            warning: entry.warning,
            critical: entry.critical,
            clear: entry.clear,
            for_s: duration("for", &entry.for_)?,
            clear_for_s: duration("clear_for", &entry.clear_for)?,
            repeat_s: duration("repeat", &entry.repeat)?,
        };
        let scope = Matchers {
            hosts: entry.hosts.unwrap_or_default(),
            guests: entry.guests.unwrap_or_default(),
            rules: Vec::new(),
            tags: entry.tags.unwrap_or_default(),
            objects: entry.objects.unwrap_or_default(),
        };
        if let Some(b) = builtin {
            if !b.is_guest_rule() && (!scope.guests.is_empty() || !scope.tags.is_empty()) {
                let field = if scope.guests.is_empty() {
                    "tags"
                } else {
                    "guests"
                };
                return Err(format!(
                    "{}: {name} is not about guests, so a guests or tags scope never matches",
                    at(field)
                ));
            }
            if b.object_kind().is_empty() && !scope.objects.is_empty() {
                return Err(format!(
                    "{}: {name} has no objects (it is about the host as a whole)",
                    at("objects")
                ));
            }
        }
        // The levels this entry leads to must make sense on their own.
        let mut check = def.base;
        for p in &unscoped {
            p.apply(&mut check);
        }
        partial.apply(&mut check);
        if let Some(levels) = check.levels {
            levels.check().map_err(|m| {
                let field = if partial.clear.is_some() {
                    "clear"
                } else if partial.critical.is_some() {
                    "critical"
                } else {
                    "warning"
                };
                format!("{}: {m}", at(field))
            })?;
        }
        if scope.is_empty() {
            unscoped.push(partial);
        } else {
            let weight = 8 * u32::from(!scope.guests.is_empty())
                + 4 * u32::from(!scope.objects.is_empty())
                + 2 * u32::from(!scope.tags.is_empty())
                + u32::from(!scope.hosts.is_empty());
            scoped.push((
                i,
                Override {
                    scope,
                    weight,
                    partial,
                },
            ));
        }
    }
    for p in &unscoped {
        p.apply(&mut def.base);
    }
    scoped.sort_by_key(|(i, o)| (o.weight, *i));
    def.overrides = scoped.into_iter().map(|(_, o)| o).collect();
    match table.id(name) {
        Some(id) => table.rules[usize::from(id.0)] = def,
        None => {
            if table.rules.len() >= usize::from(u16::MAX) {
                return Err(format!("{key}: too many rules"));
            }
            table.rules.push(def);
        }
    }
    Ok(())
}

fn window(raw: RawWindow, index: usize, key: &str, rules: &RuleTable) -> Result<Window, String> {
    let name = raw
        .name
        .unwrap_or_else(|| format!("maintenance {}", index + 1));
    let mut days = [raw.days.is_empty(); 7];
    for day in &raw.days {
        let i = parse_day(day).ok_or_else(|| {
            format!("{key}.days: {day:?} is not a weekday (mon, tue, … sun, or daily)")
        })?;
        match i {
            None => days = [true; 7],
            Some(i) => days[i] = true,
        }
    }
    let time = |field: &str, text: &str| -> Result<Time, String> {
        if text == "24:00" {
            return Ok(Time::midnight());
        }
        text.parse::<Time>()
            .map_err(|_| format!("{key}.{field}: {text:?} is not a time like \"02:00\""))
    };
    let start = time(
        "start",
        raw.start
            .as_deref()
            .ok_or_else(|| format!("{key}.start: a maintenance window needs a start"))?,
    )?;
    let end = match (&raw.end, &raw.duration) {
        (Some(end), None) => WindowEnd::At(time("end", end)?),
        (None, Some(d)) => {
            let s = seconds(d).map_err(|m| format!("{key}.duration: {m}"))?;
            if !(1..=7 * 86400).contains(&s) {
                return Err(format!("{key}.duration: must be between 1s and 7d"));
            }
            WindowEnd::After(s)
        }
        _ => return Err(format!("{key}.end: give either end or duration")),
    };
    let tz = match &raw.timezone {
        Some(name) => TimeZone::get(name).map_err(|e| {
            format!("{key}.timezone: {name:?} is not a time zone like \"Europe/Berlin\" ({e})")
        })?,
        None => TimeZone::system(),
    };
    for rule in &raw.rules {
        if !rule.contains(['*', '?']) && rules.id(rule).is_none() {
            return Err(format!("{key}.rules: no rule is called {rule:?}"));
        }
    }
    Ok(Window {
        name,
        days,
        start,
        end,
        tz,
        matchers: Matchers {
            hosts: raw.hosts,
            guests: raw.guests,
            rules: raw.rules,
            tags: raw.tags,
            objects: raw.objects,
        },
    })
}

/// A schedule without matchers (a route's quiet hours in `[notify]`), read as a maintenance
/// window's days, start, end or duration and time zone; errors name `key`.
pub(crate) fn schedule(
    days: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    duration: Option<String>,
    timezone: Option<String>,
    key: &str,
) -> Result<Window, String> {
    let raw = RawWindow {
        name: Some(key.to_owned()),
        days,
        start,
        end,
        duration,
        timezone,
        ..RawWindow::default()
    };
    window(raw, 0, key, &RuleTable::defaults(DEFAULT_REPEAT_S))
}

/// `Some(None)`: every day; `Some(Some(i))`: weekday `i` (Monday 0).
fn parse_day(text: &str) -> Option<Option<usize>> {
    let t = text.to_ascii_lowercase();
    if t == "daily" || t == "*" {
        return Some(None);
    }
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter()
        .position(|d| t.len() >= 3 && d.starts_with(&t))
        .map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let value: toml::Table = toml::from_str(text).unwrap();
        AlertsConfig::from_toml(toml::Value::Table(value))
    }

    fn subject<'a>(
        host: &'a str,
        object: &'a str,
        guest: Option<u32>,
        tags: &'a [String],
    ) -> Subject<'a> {
        Subject {
            host,
            rule: "",
            object,
            guest,
            tags,
        }
    }

    #[test]
    fn defaults_without_a_table() {
        let config = AlertsConfig::default();
        assert!(config.enabled);
        assert_eq!(config.history_days, 90);
        let cpu = RuleTable::builtin(Builtin::CpuHigh);
        let s = config.rules.settings(cpu, &subject("pve1", "", None, &[]));
        assert_eq!(s.levels.unwrap().warning, 90.0);
        assert_eq!(s.for_s, 300);
        assert_eq!(s.repeat_s, 4 * 3600);
        assert_eq!(config.rules.name(cpu), "cpu_high");
        assert_eq!(
            config.rules.id("net_errors"),
            Some(RuleTable::builtin(Builtin::NetErrors))
        );
    }

    #[test]
    fn the_most_specific_scope_wins_key_by_key() {
        let config = parse(
            r#"
            repeat = "1h"
            [alerts.rules.cpu_high]
            warning = 85
            critical = 95
            clear = 80
            for = "10m"
            [[alerts.rules.guest_memory_high]]
            warning = 88
            [[alerts.rules.guest_memory_high]]
            hosts = ["pve-*"]
            warning = 70
            clear = 60
            [[alerts.rules.guest_memory_high]]
            tags = ["db"]
            warning = 95
            [[alerts.rules.guest_memory_high]]
            guests = [100]
            enabled = false
            "#
            .replace("[alerts.", "[")
            .replace("[[alerts.", "[[")
            .as_str(),
        )
        .unwrap();
        let rules = &config.rules;
        let cpu = rules.settings(
            RuleTable::builtin(Builtin::CpuHigh),
            &subject("x", "", None, &[]),
        );
        assert_eq!(cpu.levels.unwrap().warning, 85.0);
        assert_eq!(cpu.for_s, 600);
        assert_eq!(cpu.repeat_s, 3600);
        let gm = RuleTable::builtin(Builtin::GuestMemoryHigh);
        let db = vec!["db".to_owned()];
        let at = |host, guest, tags| rules.settings(gm, &subject(host, "", Some(guest), tags));
        assert_eq!(at("other", 101, &[]).levels.unwrap().warning, 88.0);
        let pve = at("pve-1", 101, &[]);
        assert_eq!(pve.levels.unwrap().warning, 70.0);
        assert_eq!(pve.levels.unwrap().clear, 60.0);
        // Tags weigh more than hosts; the host scope still gives `clear`.
        let tagged = at("pve-1", 101, &db);
        assert_eq!(tagged.levels.unwrap().warning, 95.0);
        assert_eq!(tagged.levels.unwrap().clear, 60.0);
        assert!(!at("pve-1", 100, &db).enabled);
        assert!(rules.needs_tags(gm));
    }

    #[test]
    fn custom_rules_on_stored_series() {
        let config = parse(
            r#"
            [rules.nightly_io]
            series = "disk.*.busy_percent"
            warning = 80
            critical = 95
            for = "15m"
            [rules.arc_small]
            series = "arc.size_bytes"
            direction = "below"
            warning = 4e9
            critical = 1e9
            clear = 5e9
            "#,
        )
        .unwrap();
        let (id, series) = config.rules.custom().next().unwrap();
        assert_eq!(config.rules.name(id), "arc_small");
        assert_eq!(series, "arc.size_bytes");
        let io = config.rules.id("nightly_io").unwrap();
        let s = config
            .rules
            .settings(io, &subject("h", "disk.sda.busy_percent", None, &[]));
        assert_eq!(s.for_s, 900);
        assert_eq!(s.levels.unwrap().clear, 80.0, "clear defaults to warning");
        assert_eq!(
            config
                .rules
                .get(config.rules.id("arc_small").unwrap())
                .base
                .levels
                .unwrap()
                .direction,
            Direction::Below
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_key() {
        for (text, wanted) in [
            ("[rules.cpu_high]\nwarnin = 5\n", "alerts.rules.cpu_high: unknown field `warnin`"),
            ("[rules.cpu_high]\nwarning = 99\n", "alerts.rules.cpu_high.warning: critical (98)"),
            ("[rules.cpu_high]\nclear = 95\n", "alerts.rules.cpu_high.clear"),
            ("[rules.cpu_high]\nfor = \"soon\"\n", "alerts.rules.cpu_high.for"),
            ("[rules.pool_unhealthy]\nwarning = 1\n", "alerts.rules.pool_unhealthy.warning: pool_unhealthy is about states"),
            ("[rules.cpu_hihg]\nwarning = 1\n", "alerts.rules.cpu_hihg: no built-in rule"),
            ("[rules.x]\nseries = \"load1\"\nwarning = 1\n", "alerts.rules.x.critical"),
            ("[rules.X]\nseries = \"load1\"\nwarning = 1\ncritical = 2\n", "alerts.rules.X: a rule name"),
            ("[rules.cpu_high]\nseries = \"load1\"\n", "alerts.rules.cpu_high.series"),
            ("[rules.cpu_high]\nguests = [100]\n", "alerts.rules.cpu_high.guests"),
            ("[rules.cpu_high]\nobjects = [\"/\"]\n", "alerts.rules.cpu_high.objects"),
            ("[[rules.fs_full]]\nobjects = [\"/\"]\nwarning = 99\n", "alerts.rules.fs_full.warning"),
            ("[[rules.fs_full]]\n[[rules.fs_full]]\nhosts = [\"a\"]\nwarning = 99\n", "alerts.rules.fs_full[1].warning"),
            ("[rules.x]\nseries = \"a\"\nwarning = 1\ncritical = 2\ndirection = \"up\"\n", "alerts.rules.x.direction"),
            ("history_days = 0\n", "alerts.history_days"),
            ("repeat = \"often\"\n", "alerts.repeat"),
            ("colour = 1\n", "alerts: unknown field `colour`"),
            ("[[maintenance]]\nstart = \"02:00\"\n", "alerts.maintenance[0].end"),
            ("[[maintenance]]\nstart = \"2am\"\nend = \"04:00\"\n", "alerts.maintenance[0].start"),
            ("[[maintenance]]\ndays = [\"sundae\"]\nstart = \"02:00\"\nend = \"04:00\"\n", "alerts.maintenance[0].days"),
            ("[[maintenance]]\nstart = \"02:00\"\nend = \"04:00\"\ntimezone = \"Mars/Olympus\"\n", "alerts.maintenance[0].timezone"),
            ("[[maintenance]]\nstart = \"02:00\"\nend = \"04:00\"\nrules = [\"cpu\"]\n", "alerts.maintenance[0].rules"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_readmes_example_is_a_valid_config() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n[alerts]").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let mut config = crate::config::ServerConfig::default();
        config.apply_toml(&readme[start..end], "README.md").unwrap();
        let rules = &config.alerts.rules;
        assert!(rules.id("nightly_io").is_some());
        let down = RuleTable::builtin(Builtin::GuestDown);
        assert!(
            !rules
                .settings(down, &subject("pve1", "9000", Some(9000), &[]))
                .enabled
        );
        assert_eq!(
            config.alerts.windows[0].describe(),
            "Sun 02:00–04:00 Europe/Berlin"
        );
    }

    #[test]
    fn maintenance_windows() {
        let config = parse(
            r#"
            [[maintenance]]
            name = "patch night"
            days = ["Sun"]
            start = "02:00"
            end = "04:00"
            timezone = "Europe/Berlin"
            hosts = ["pve-*"]
            [[maintenance]]
            days = ["daily"]
            start = "23:30"
            duration = "1h"
            timezone = "UTC"
            "#,
        )
        .unwrap();
        assert_eq!(config.windows.len(), 2);
        assert_eq!(
            config.windows[0].describe(),
            "Sun 02:00–04:00 Europe/Berlin"
        );
        assert_eq!(config.windows[1].name, "maintenance 2");
        assert_eq!(config.windows[1].days, [true; 7]);
        assert_eq!(config.windows[1].end, WindowEnd::After(3600));
    }
}
