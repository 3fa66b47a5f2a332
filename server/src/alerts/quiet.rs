//! When an alert is not announced: silences (made by an admin, stored in the database, with a
//! start and an end) and maintenance windows (recurring, from the config, in a time zone).
//! A quiet alert still goes through its states and is listed; only its firing and repeat
//! events are held back (a resolved event still closes one that was announced).
//!
//! Maintenance windows are local wall-clock times on given weekdays in an IANA time zone, so
//! "Sundays 02:00–04:00 Europe/Berlin" stays 02:00–04:00 for the people there across daylight
//! saving changes. On the night clocks go forward, a start inside the skipped hour begins at
//! the first valid moment after it (02:00 → 03:00 CEST, so that window is one hour long); on
//! the night they go back, 02:00–04:00 spans three hours. This is `jiff`'s "compatible"
//! disambiguation, the one RFC 5545 calendars use.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::store::alerts::SilenceRecord;

/// `*` matches any run of characters (also none), `?` any one character; everything else
/// itself. Names of hosts, rules and objects are short, so the backtracking is cheap.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it now stands for the end of.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// What an alert is about, for matching.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub host: &'a str,
    pub rule: &'a str,
    pub object: &'a str,
    pub guest: Option<u32>,
    /// The guest's tags (empty for alerts that are not about a guest).
    pub tags: &'a [String],
}

/// Matchers of a silence, a maintenance window or a rule override: every list that is not
/// empty must have a match (a list matches when any of its entries does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers {
    /// Host name globs.
    pub hosts: Vec<String>,
    pub guests: Vec<u32>,
    /// Rule name globs.
    pub rules: Vec<String>,
    /// Guest tags (exact).
    pub tags: Vec<String>,
    /// Object globs (mount point, storage, pool, interface, vmid, series).
    pub objects: Vec<String>,
}

impl Matchers {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.guests.is_empty()
            && self.rules.is_empty()
            && self.tags.is_empty()
            && self.objects.is_empty()
    }

    pub fn matches(&self, s: &Subject<'_>) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|g| glob_match(g, s.host)))
            && (self.rules.is_empty() || self.rules.iter().any(|g| glob_match(g, s.rule)))
            && (self.objects.is_empty() || self.objects.iter().any(|g| glob_match(g, s.object)))
            && (self.guests.is_empty() || s.guest.is_some_and(|g| self.guests.contains(&g)))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
    }

    /// `host=pve-* rule=cpu_high`: for lists and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut list = |key: &str, values: Vec<String>| {
            if !values.is_empty() {
                parts.push(format!("{key}={}", values.join(",")));
            }
        };
        list("host", self.hosts.clone());
        list(
            "guest",
            self.guests.iter().map(ToString::to_string).collect(),
        );
        list("rule", self.rules.clone());
        list("tag", self.tags.clone());
        list("object", self.objects.clone());
        if parts.is_empty() {
            "everything".into()
        } else {
            parts.join(" ")
        }
    }
}

/// A silence from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    pub matchers: Matchers,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    pub fn from_record(r: &SilenceRecord) -> Silence {
        Silence {
            id: r.id,
            matchers: Matchers {
                hosts: r.host.iter().cloned().collect(),
                guests: r.guest.into_iter().collect(),
                rules: r.rule.iter().cloned().collect(),
                tags: r.tag.iter().cloned().collect(),
                objects: r.object.iter().cloned().collect(),
            },
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            comment: r.comment.clone(),
            created_by: r.created_by.clone(),
        }
    }

    pub fn active_at(&self, t: i64) -> bool {
        self.starts_at <= t && t < self.ends_at
    }
}

/// A recurring maintenance window from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    /// Monday first.
    pub days: [bool; 7],
    pub start: Time,
    /// The local end time; at or before `start` means the next day.
    pub end: WindowEnd,
    pub tz: TimeZone,
    pub matchers: Matchers,
}

/// Where a window ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowEnd {
    /// At this local time (the next day when not after the start).
    At(Time),
    /// This many seconds after the start.
    After(i64),
}

impl Window {
    /// The occurrences that start on the local dates around `t` (from the day before to a
    /// week after), as Unix-second intervals `[start, end)`.
    fn occurrences(&self, t: i64) -> Vec<(i64, i64)> {
        let Ok(ts) = Timestamp::from_second(t) else {
            return Vec::new();
        };
        let today = ts.to_zoned(self.tz.clone()).date();
        let mut out = Vec::new();
        for offset in -1i64..=8 {
            let Some(date) = add_days(today, offset) else {
                continue;
            };
            if !self.days[weekday_index(date.weekday())] {
                continue;
            }
            let Some(start) = self.instant(date, self.start) else {
                continue;
            };
            let end = match self.end {
                WindowEnd::After(seconds) => Some(start + seconds),
                WindowEnd::At(end) => {
                    let end_date = if end > self.start {
                        Some(date)
                    } else {
                        add_days(date, 1)
                    };
                    end_date.and_then(|d| self.instant(d, end))
                }
            };
            if let Some(end) = end.filter(|e| *e > start) {
                out.push((start, end));
            }
        }
        out
    }

    /// Local `time` on `date` as Unix seconds (compatible disambiguation).
    fn instant(&self, date: Date, time: Time) -> Option<i64> {
        date.to_datetime(time)
            .to_zoned(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_second())
    }

    pub fn active_at(&self, t: i64) -> bool {
        self.occurrences(t)
            .iter()
            .any(|(start, end)| *start <= t && t < *end)
    }

    /// The next start or end after `t`.
    pub fn next_change_after(&self, t: i64) -> Option<i64> {
        self.occurrences(t)
            .iter()
            .flat_map(|(start, end)| [*start, *end])
            .filter(|x| *x > t)
            .min()
    }

    /// `Sun 02:00–04:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let days: Vec<&str> = NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        let days = if days.len() == 7 {
            "daily".to_owned()
        } else {
            days.join(",")
        };
        let end = match self.end {
            WindowEnd::At(t) => t.strftime("%H:%M").to_string(),
            WindowEnd::After(s) => format!(
                "+{}",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(s).unwrap_or(0)
                ))
            ),
        };
        format!(
            "{days} {}–{end} {}",
            self.start.strftime("%H:%M"),
            self.tz.iana_name().unwrap_or("UTC")
        )
    }
}

fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(jiff::Span::new().days(days)).ok()
}

/// Monday 0 … Sunday 6.
pub fn weekday_index(day: Weekday) -> usize {
    usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)
}

/// Why an alert is quiet now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuietReason {
    Silence(i64),
    Maintenance(String),
}

impl QuietReason {
    /// `silence 12`, `maintenance "patch night"`.
    pub fn describe(&self) -> String {
        match self {
            QuietReason::Silence(id) => format!("silence {id}"),
            QuietReason::Maintenance(name) => format!("maintenance {name:?}"),
        }
    }
}

/// Every silence and window, and which are active at one moment.
#[derive(Debug, Clone, Default)]
pub struct Quiet {
    silences: Vec<Silence>,
    windows: Vec<Window>,
    /// The moment `active` was computed for, and until when it holds.
    computed: Option<(i64, i64)>,
    /// Counts recomputations of the active sets: a change means something may have started
    /// or ended.
    generation: u64,
    active_silences: Vec<usize>,
    active_windows: Vec<usize>,
}

impl Quiet {
    pub fn new(windows: Vec<Window>) -> Quiet {
        Quiet {
            windows,
            ..Quiet::default()
        }
    }

    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
        self.computed = None;
    }

    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Brings the active sets up to `now` (cheap while nothing started or ended).
    fn refresh(&mut self, now: i64) {
        if let Some((from, until)) = self.computed {
            if from <= now && now < until {
                return;
            }
        }
        self.active_silences = (0..self.silences.len())
            .filter(|&i| self.silences[i].active_at(now))
            .collect();
        self.active_windows = (0..self.windows.len())
            .filter(|&i| self.windows[i].active_at(now))
            .collect();
        let until = self.next_change_after(now).unwrap_or(i64::MAX);
        self.computed = Some((now, until));
        self.generation += 1;
    }

    /// Changes whenever the active silences and windows were recomputed (see `refresh`).
    pub fn generation(&mut self, now: i64) -> u64 {
        self.refresh(now);
        self.generation
    }

    /// Why `subject` is quiet at `now`, if it is.
    pub fn reason(&mut self, subject: &Subject<'_>, now: i64) -> Option<QuietReason> {
        self.refresh(now);
        if let Some(&i) = self
            .active_silences
            .iter()
            .find(|&&i| self.silences[i].matchers.matches(subject))
        {
            return Some(QuietReason::Silence(self.silences[i].id));
        }
        self.active_windows
            .iter()
            .find(|&&i| self.windows[i].matchers.matches(subject))
            .map(|&i| QuietReason::Maintenance(self.windows[i].name.clone()))
    }

    /// The next moment a silence or window starts or ends after `now`, from the cached
    /// active sets (cheap to ask often).
    pub fn next_change(&mut self, now: i64) -> Option<i64> {
        self.refresh(now);
        self.computed
            .map(|(_, until)| until)
            .filter(|until| *until != i64::MAX)
    }

    /// The next moment a silence or window starts or ends, after `now`.
    pub fn next_change_after(&self, now: i64) -> Option<i64> {
        let silences = self
            .silences
            .iter()
            .flat_map(|s| [s.starts_at, s.ends_at])
            .filter(|t| *t > now);
        let windows = self.windows.iter().filter_map(|w| w.next_change_after(now));
        silences.chain(windows).min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unix(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    fn berlin_sunday_night() -> Window {
        let mut days = [false; 7];
        days[6] = true;
        Window {
            name: "patch night".into(),
            days,
            start: Time::constant(2, 0, 0, 0),
            end: WindowEnd::At(Time::constant(4, 0, 0, 0)),
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            matchers: Matchers::default(),
        }
    }

    #[test]
    fn globs() {
        for (p, t, yes) in [
            ("pve-*", "pve-01", true),
            ("pve-*", "pve-", true),
            ("pve-*", "pbs-01", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("disk.*.busy_percent", "disk.sda.busy_percent", true),
            ("disk.*.busy_percent", "disk.sda.read_iops", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("n?de", "node", true),
            ("n?de", "nde", false),
            ("*x", "xxxx", true),
            ("ü*", "über", true),
        ] {
            assert_eq!(glob_match(p, t), yes, "{p} on {t}");
        }
    }

    #[test]
    fn matchers_need_every_list_that_is_set() {
        let tags = vec!["prod".to_owned()];
        let subject = Subject {
            host: "pve1",
            rule: "guest_down",
            object: "100",
            guest: Some(100),
            tags: &tags,
        };
        assert!(Matchers::default().matches(&subject));
        let m = Matchers {
            hosts: vec!["pve*".into()],
            tags: vec!["prod".into()],
            ..Matchers::default()
        };
        assert!(m.matches(&subject));
        let m = Matchers {
            guests: vec![101],
            ..m
        };
        assert!(!m.matches(&subject));
        let host_level = Subject {
            guest: None,
            tags: &[],
            ..subject
        };
        let by_tag = Matchers {
            tags: vec!["prod".into()],
            ..Matchers::default()
        };
        assert!(!by_tag.matches(&host_level), "a tag matcher needs a guest");
        assert_eq!(
            Matchers {
                hosts: vec!["a".into(), "b".into()],
                rules: vec!["cpu_high".into()],
                ..Matchers::default()
            }
            .describe(),
            "host=a,b rule=cpu_high"
        );
    }

    #[test]
    fn a_maintenance_window_keeps_local_time_across_dst_changes() {
        let w = berlin_sunday_night();
        // An ordinary Sunday in winter (CET, UTC+1): 01:00–03:00 UTC.
        assert!(!w.active_at(unix("2026-03-08T00:59:59Z")));
        assert!(w.active_at(unix("2026-03-08T01:00:00Z")));
        assert!(w.active_at(unix("2026-03-08T02:59:59Z")));
        assert!(!w.active_at(unix("2026-03-08T03:00:00Z")));
        // Clocks go forward on 2026-03-29 at 02:00 CET → 03:00 CEST: the start falls in the
        // gap and begins at 03:00 CEST (01:00 UTC); it ends at 04:00 CEST (02:00 UTC).
        assert!(!w.active_at(unix("2026-03-29T00:59:59Z")));
        assert!(w.active_at(unix("2026-03-29T01:00:00Z")));
        assert!(w.active_at(unix("2026-03-29T01:59:59Z")));
        assert!(!w.active_at(unix("2026-03-29T02:00:00Z")));
        // A summer Sunday (CEST, UTC+2): 00:00–02:00 UTC.
        assert!(w.active_at(unix("2026-04-05T00:00:00Z")));
        assert!(!w.active_at(unix("2026-04-05T02:00:00Z")));
        // Clocks go back on 2026-10-25 at 03:00 CEST → 02:00 CET: 02:00 is the first (CEST)
        // one, 00:00 UTC; 04:00 is CET, 03:00 UTC. Three hours.
        assert!(!w.active_at(unix("2026-10-24T23:59:59Z")));
        assert!(w.active_at(unix("2026-10-25T00:00:00Z")));
        assert!(w.active_at(unix("2026-10-25T02:59:59Z")));
        assert!(!w.active_at(unix("2026-10-25T03:00:00Z")));
        // Never on other days.
        assert!(!w.active_at(unix("2026-03-09T01:30:00Z")));
        // The next change is found across the change of offset.
        assert_eq!(
            w.next_change_after(unix("2026-03-28T12:00:00Z")),
            Some(unix("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            w.next_change_after(unix("2026-03-29T01:00:00Z")),
            Some(unix("2026-03-29T02:00:00Z"))
        );
        assert_eq!(w.describe(), "Sun 02:00–04:00 Europe/Berlin");
    }

    #[test]
    fn windows_across_midnight_and_by_duration() {
        let mut w = berlin_sunday_night();
        w.days = [true; 7];
        w.start = Time::constant(23, 0, 0, 0);
        w.end = WindowEnd::At(Time::constant(1, 0, 0, 0));
        w.tz = TimeZone::UTC;
        assert!(w.active_at(unix("2026-05-05T23:30:00Z")));
        assert!(w.active_at(unix("2026-05-06T00:30:00Z")));
        assert!(!w.active_at(unix("2026-05-06T01:00:00Z")));
        w.end = WindowEnd::After(90 * 60);
        assert!(w.active_at(unix("2026-05-06T00:29:59Z")));
        assert!(!w.active_at(unix("2026-05-06T00:30:00Z")));
        // Equal start and end: the whole day.
        w.start = Time::constant(0, 0, 0, 0);
        w.end = WindowEnd::At(Time::constant(0, 0, 0, 0));
        assert!(w.active_at(unix("2026-05-06T13:00:00Z")));
    }

    #[test]
    fn quiet_finds_the_silence_or_window_and_when_that_changes() {
        let mut quiet = Quiet::new(vec![Window {
            matchers: Matchers {
                hosts: vec!["pve2".into()],
                ..Matchers::default()
            },
            ..berlin_sunday_night()
        }]);
        quiet.set_silences(vec![Silence {
            id: 7,
            matchers: Matchers {
                hosts: vec!["pve1".into()],
                rules: vec!["cpu_high".into()],
                ..Matchers::default()
            },
            starts_at: 1000,
            ends_at: 2000,
            comment: "x".into(),
            created_by: "admin".into(),
        }]);
        let subject = |host: &'static str| Subject {
            host,
            rule: "cpu_high",
            object: "",
            guest: None,
            tags: &[],
        };
        assert_eq!(quiet.reason(&subject("pve1"), 999), None);
        assert_eq!(
            quiet.reason(&subject("pve1"), 1000),
            Some(QuietReason::Silence(7))
        );
        assert_eq!(quiet.reason(&subject("pve2"), 1500), None);
        assert_eq!(quiet.reason(&subject("pve1"), 2000), None);
        assert_eq!(quiet.next_change_after(1500), Some(2000));
        let sunday = unix("2026-03-08T01:30:00Z");
        assert_eq!(
            quiet.reason(&subject("pve2"), sunday),
            Some(QuietReason::Maintenance("patch night".into()))
        );
    }
}
