//! The alert subcommands: `alerts`, `silence`, `silences`, `unsilence`, `ack` and
//! `alert-events`. They work on the database directly, so they work whether the server runs
//! or not; a running server picks up acknowledgements and silences within a second (its
//! roster watch notices the change counter they bump).

use std::io::Write;

use clap::Args;

use crate::alerts::quiet::{Quiet, Silence, Subject};
use crate::alerts::{alert_json, silence_json, summary};
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::store::alerts::{AckOutcome, AlertRecord, HistoryQuery, NewSilence};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Print a JSON object {"alerts": [...]}, as GET /api/alerts does
    #[arg(long)]
    pub json: bool,
    /// Also list resolved alerts (newest first, at most --limit)
    #[arg(long)]
    pub all: bool,
    /// How many resolved alerts --all lists
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// Host name (a glob like pve-* silences several)
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// Only this rule (e.g. cpu_high; globs allowed)
    #[arg(long, value_name = "RULE")]
    pub rule: Option<String>,
    /// Only this object: a vmid, mount point, storage, pool, interface (globs allowed)
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
    /// Only alerts about this guest (vmid)
    #[arg(long, value_name = "VMID")]
    pub guest: Option<u32>,
    /// Only alerts about guests with this tag
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// How long, e.g. 30m, 2h, 1d
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// When it starts: RFC 3339, Unix seconds or "now"
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub start: String,
    /// Why (shown next to the silence and the alerts it silences)
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
    /// Who [default: $SUDO_USER or $USER]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct SilencesArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Also list silences that ended in the last 7 days
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// The alert's id (from `alerts`)
    pub id: i64,
    /// A note for the others
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Reminders start again after this long (e.g. 24h) if it is still firing
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Who [default: $SUDO_USER or $USER]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one JSON object per line (the events' payloads)
    #[arg(long)]
    pub json: bool,
    /// Only events after this outbox id
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub after: i64,
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

fn time(unix: i64) -> String {
    common::time::format_rfc3339(common::time::from_unix_seconds(unix))
}

fn who(by: Option<&str>) -> String {
    by.map(str::to_owned)
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "command line".into())
}

fn duration_seconds(flag: &str, text: &str) -> Result<i64> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| Error::Usage(format!("{flag}: {text:?} is not a duration like 2h ({e})")))?;
    i64::try_from(d.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| Error::Usage(format!("{flag}: {text:?} must be longer than 0 s")))
}

/// Silences and maintenance windows as the server applies them.
fn quiet(config: &ServerConfig, store: &Store, now: i64) -> Result<Quiet> {
    let mut quiet = Quiet::new(config.alerts.windows.clone());
    quiet.set_silences(
        store
            .silences(now, None)?
            .iter()
            .map(Silence::from_record)
            .collect(),
    );
    Ok(quiet)
}

/// `alerts`: open alerts (and with `--all` the history).
pub fn alerts(config: &ServerConfig, store: &Store, args: &AlertsArgs) -> Result<()> {
    let now = common::time::now_unix();
    let mut quiet = quiet(config, store, now)?;
    let mut rows: Vec<AlertRecord> = store.open_alerts()?;
    rows.sort_by(|a, b| {
        (b.state.as_str() == "firing")
            .cmp(&(a.state.as_str() == "firing"))
            .then(b.severity.cmp(&a.severity))
            .then(a.since.cmp(&b.since))
    });
    if args.all {
        rows.extend(store.alert_history(&HistoryQuery {
            limit: args.limit,
            ..HistoryQuery::default()
        })?);
    }
    let rules = config.alerts.rules.clone();
    let mut out = std::io::stdout().lock();
    let quiet_of = |quiet: &mut Quiet, a: &AlertRecord| {
        (a.state.as_str() != "resolved")
            .then(|| {
                quiet.reason(
                    &Subject {
                        host: &a.host,
                        rule: &a.rule,
                        object: &a.object,
                        guest: a.guest,
                        tags: &[],
                    },
                    now,
                )
            })
            .flatten()
    };
    if args.json {
        let alerts: Vec<serde_json::Value> = rows
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.summary = summary::summary(&rules, &a);
                let q = quiet_of(&mut quiet, &a);
                alert_json(&a, q.as_ref(), now)
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "now": now, "alerts": alerts })
        );
        return Ok(());
    }
    if rows.is_empty() {
        let _ = writeln!(out, "No open alerts.");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<8}  {:<8}  {:<22}  {:<16}  {:<14}  {:<20}  {:<24}  SUMMARY",
        "ID", "STATE", "SEVERITY", "RULE", "HOST", "OBJECT", "SINCE", "NOTE"
    );
    for a in &rows {
        let mut notes = Vec::new();
        if let Some(q) = quiet_of(&mut quiet, a) {
            notes.push(q.describe());
        }
        if let Some(s) = &a.suppressed_by {
            notes.push(format!("suppressed by {s}"));
        }
        if let Some(ack) = a.ack.as_ref().filter(|ack| ack.holds(now)) {
            notes.push(format!("acked by {}", ack.by));
        }
        if !a.live {
            notes.push("replayed".into());
        }
        if let Some(r) = &a.resolution {
            notes.push(r.clone());
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<8}  {:<8}  {:<22}  {:<16}  {:<14}  {:<20}  {:<24}  {}",
            a.id,
            a.state.as_str(),
            a.severity.as_str(),
            a.rule,
            a.host,
            if a.object.is_empty() { "-" } else { &a.object },
            time(a.since),
            if notes.is_empty() {
                "-".to_owned()
            } else {
                notes.join("; ")
            },
            summary::summary(&rules, a)
        );
    }
    Ok(())
}

/// `silence`.
pub fn silence(config: &ServerConfig, store: &Store, args: &SilenceArgs) -> Result<()> {
    let now = common::time::now_unix();
    let starts_at = common::time::parse_time(&args.start, now)
        .map_err(|m| Error::Usage(format!("--start: {m}")))?;
    let seconds = duration_seconds("--for", &args.duration)?;
    if args.comment.trim().is_empty() {
        return Err(Error::Usage(
            "--comment: say why (it is shown next to what it silences)".into(),
        ));
    }
    if let Some(rule) = args.rule.as_deref().filter(|r| !r.contains(['*', '?'])) {
        if config.alerts.rules.id(rule).is_none() {
            let names: Vec<String> = config
                .alerts
                .rules
                .ids()
                .map(|id| config.alerts.rules.name(id).to_owned())
                .collect();
            return Err(Error::Usage(format!(
                "--rule: no rule is called {rule:?} (they are {})",
                names.join(", ")
            )));
        }
    }
    let silence = NewSilence {
        host: Some(args.host.clone()),
        guest: args.guest,
        rule: args.rule.clone(),
        tag: args.tag.clone(),
        object: args.object.clone(),
        starts_at,
        ends_at: starts_at.saturating_add(seconds),
        comment: args.comment.trim().to_owned(),
        created_by: who(args.by.as_deref()),
    };
    let id = store.add_silence(&silence, now)?;
    let described = Silence::from_record(&crate::store::alerts::SilenceRecord {
        id,
        host: silence.host.clone(),
        guest: silence.guest,
        rule: silence.rule.clone(),
        tag: silence.tag.clone(),
        object: silence.object.clone(),
        starts_at: silence.starts_at,
        ends_at: silence.ends_at,
        comment: silence.comment.clone(),
        created_by: silence.created_by.clone(),
        created_at: now,
    });
    println!(
        "Silence {id} added: {} from {} until {}.",
        described.matchers.describe(),
        time(silence.starts_at),
        time(silence.ends_at)
    );
    Ok(())
}

/// `silences`.
pub fn silences(config: &ServerConfig, store: &Store, args: &SilencesArgs) -> Result<()> {
    let now = common::time::now_unix();
    let rows: Vec<Silence> = store
        .silences(now, args.all.then_some(now - 7 * 86400))?
        .iter()
        .map(Silence::from_record)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = rows.iter().map(|s| silence_json(s, now)).collect();
        let windows: Vec<serde_json::Value> = config
            .alerts
            .windows
            .iter()
            .map(|w| {
                serde_json::json!({
                    "name": w.name,
                    "schedule": w.describe(),
                    "matchers": w.matchers.describe(),
                    "active": w.active_at(now),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "now": now, "silences": list, "maintenance": windows })
        );
        return Ok(());
    }
    if rows.is_empty() {
        let _ = writeln!(out, "No silences.");
    } else {
        let _ = writeln!(
            out,
            "{:>5}  {:<7}  {:<20}  {:<20}  {:<12}  {:<32}  COMMENT",
            "ID", "STATE", "STARTS", "ENDS", "BY", "MATCHES"
        );
        for s in &rows {
            let state = if s.active_at(now) {
                "active"
            } else if s.starts_at > now {
                "planned"
            } else {
                "ended"
            };
            let _ = writeln!(
                out,
                "{:>5}  {:<7}  {:<20}  {:<20}  {:<12}  {:<32}  {}",
                s.id,
                state,
                time(s.starts_at),
                time(s.ends_at),
                s.created_by,
                s.matchers.describe(),
                s.comment
            );
        }
    }
    for w in &config.alerts.windows {
        let _ = writeln!(
            out,
            "maintenance {:?}: {} for {}{}",
            w.name,
            w.describe(),
            w.matchers.describe(),
            if w.active_at(now) {
                " (active now)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `unsilence ID`.
pub fn unsilence(store: &Store, id: i64) -> Result<()> {
    if store.end_silence(id, common::time::now_unix())? {
        println!("Silence {id} ended.");
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "no silence {id} is active or planned (list them with: proxmox-monitor-server silences)"
        )))
    }
}

/// `ack ID`.
pub fn ack(store: &Store, args: &AckArgs) -> Result<()> {
    let now = common::time::now_unix();
    let expires_at = args
        .expires
        .as_deref()
        .map(|e| duration_seconds("--expires", e).map(|s| now.saturating_add(s)))
        .transpose()?;
    let by = who(args.by.as_deref());
    match store.acknowledge_alert(args.id, &by, args.comment.as_deref(), expires_at, now)? {
        AckOutcome::Acknowledged => {
            println!(
                "Alert {} acknowledged by {by}{}: no reminders until it resolves.",
                args.id,
                expires_at.map_or_else(String::new, |t| format!(" until {}", time(t)))
            );
            Ok(())
        }
        AckOutcome::NotFound => Err(Error::Usage(format!(
            "no alert {} (list them with: proxmox-monitor-server alerts)",
            args.id
        ))),
        AckOutcome::NotFiring(state) => Err(Error::Usage(format!(
            "alert {} is {}; only a firing alert can be acknowledged",
            args.id,
            state.as_str()
        ))),
    }
}

/// `alert-events`: the outbox of notification events.
pub fn events(store: &Store, args: &EventsArgs) -> Result<()> {
    let rows = store.outbox(args.after, args.limit)?;
    let mut out = std::io::stdout().lock();
    for row in rows {
        if args.json {
            let _ = writeln!(out, "{}", row.event.payload);
        } else {
            let _ = writeln!(
                out,
                "{:>6}  {}  {:<8}  {}{}",
                row.id,
                time(row.event.created_at),
                row.event.kind.as_str(),
                row.event.key,
                if row.delivered_at.is_some() {
                    "  (delivered)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
