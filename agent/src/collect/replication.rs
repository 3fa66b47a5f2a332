//! Storage replication: the jobs of `/etc/pve/replication.cfg` (pve-guest-common
//! `PVE::ReplicationConfig`: `local: <vmid>-<n>` sections with `target`, `schedule` (default
//! `*/15`), `rate`, `disable`, `source`) and their state on this node,
//! `/var/lib/pve-manager/pve-replication-state.json` (`PVE::ReplicationState`:
//! `{"<vmid>": {"local/<target>": {"last_sync": .., "last_try": .., "fail_count": ..,
//! "duration": .., "error": "..", "pid": ..}}}`, written with `encode_json`, one line).

use std::collections::BTreeMap;

use common::sample::ReplicationJob;
use serde_json::Value;

use super::json;
use super::problem::{parse_boolean, quote, Problems};
use super::section_config;

/// A replication job as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicationConf {
    pub id: String,
    pub guest: u32,
    pub target: String,
    pub schedule: Option<String>,
    /// `disable` as written (absent: enabled).
    pub disable: Option<bool>,
}

/// The `local` sections of `replication.cfg`. A job id must be `<vmid>-<n>`; a job without a
/// target is skipped and reported.
pub fn parse_config(text: &str, problems: &mut Problems) -> Result<Vec<ReplicationConf>, String> {
    let sections = section_config::parse(text, |_, id| job_guest(id).is_some(), problems);
    let mut out = Vec::new();
    for section in sections.iter().filter(|s| s.kind == "local") {
        let Some(guest) = job_guest(&section.id) else {
            continue;
        };
        let Some(target) = section.value("target") else {
            problems.line(section.line, format!("{}: no target: skipped", section.id));
            continue;
        };
        let disable = section.get("disable").and_then(|value| {
            let flag = parse_boolean(value.unwrap_or("1"));
            if flag.is_none() {
                problems.line(
                    section.line_of("disable"),
                    format!(
                        "{}: disable {} is not a boolean",
                        section.id,
                        quote(value.unwrap_or(""))
                    ),
                );
            }
            flag
        });
        out.push(ReplicationConf {
            id: section.id.clone(),
            guest,
            target: target.to_owned(),
            schedule: section.value("schedule").map(str::to_owned),
            disable,
        });
    }
    Ok(out)
}

/// `100-0` → 100 (`PVE::ReplicationConfig::parse_replication_job_id`: `^(\d+)-(\d+)$`).
fn job_guest(id: &str) -> Option<u32> {
    let (guest, n) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(guest) && digits(n))
        .then(|| guest.parse().ok())
        .flatten()
}

/// One job's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplicationState {
    pub last_sync: Option<u64>,
    pub last_try: Option<u64>,
    pub fail_count: u32,
    pub duration: Option<f64>,
    pub error: Option<String>,
    /// A sync runs (`pid` is set while it does).
    pub running: bool,
}

/// The state file: by guest, then by target id (`local/<node>`). An entry that is not an
/// object is skipped and reported.
pub fn parse_state(
    text: &str,
    problems: &mut Problems,
) -> Result<BTreeMap<(u32, String), ReplicationState>, String> {
    let mut out = BTreeMap::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let value = json::parse(text, problems)?;
    let guests = value.as_object().ok_or("not a JSON object")?;
    for (vmid, targets) in guests {
        let (Ok(guest), Some(targets)) = (vmid.parse::<u32>(), targets.as_object()) else {
            problems.file(format!("guest {}: not a VMID with targets", quote(vmid)));
            continue;
        };
        for (target, state) in targets {
            let Some(state) = state.as_object() else {
                problems.file(format!("guest {guest} {}: not an object", quote(target)));
                continue;
            };
            let time = |key: &str| state.get(key).and_then(Value::as_u64).filter(|t| *t > 0);
            out.insert(
                (guest, target.clone()),
                ReplicationState {
                    last_sync: time("last_sync"),
                    last_try: time("last_try"),
                    fail_count: state
                        .get("fail_count")
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    duration: state.get("duration").and_then(Value::as_f64),
                    error: state
                        .get("error")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    running: state.get("pid").is_some_and(|p| !p.is_null()),
                },
            );
        }
    }
    Ok(out)
}

/// The jobs of `local` guests with their state (`PVE::ReplicationState::job_status`: a job of
/// a guest of another node is that node's business).
pub fn merge(
    configs: &[ReplicationConf],
    local: impl Fn(u32) -> bool,
    states: &BTreeMap<(u32, String), ReplicationState>,
) -> Vec<ReplicationJob> {
    configs
        .iter()
        .filter(|c| local(c.guest))
        .map(|c| {
            let state = states
                .get(&(c.guest, format!("local/{}", c.target)))
                .cloned()
                .unwrap_or_default();
            ReplicationJob {
                id: c.id.clone(),
                guest: c.guest,
                target: c.target.clone(),
                schedule: c.schedule.clone().unwrap_or_else(|| "*/15".to_owned()),
                enabled: !c.disable.unwrap_or(false),
                last_sync: state.last_sync,
                last_try: state.last_try,
                duration_seconds: state.duration,
                fail_count: state.fail_count,
                error: state.error,
                running: state.running,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture_jobs_and_state() {
        let mut problems = Problems::new();
        let configs = parse_config(
            include_str!("../../../fixtures/pve-node/etc/pve/replication.cfg"),
            &mut problems,
        )
        .unwrap();
        let states = parse_state(
            include_str!(
                "../../../fixtures/pve-node/var/lib/pve-manager/pve-replication-state.json"
            ),
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let jobs = merge(&configs, |vmid| vmid < 200, &states);
        assert_eq!(jobs.len(), 2);
        let ok = &jobs[0];
        assert_eq!(
            (
                ok.id.as_str(),
                ok.guest,
                ok.target.as_str(),
                ok.schedule.as_str()
            ),
            ("100-0", 100, "pve2", "*/15")
        );
        assert_eq!((ok.fail_count, ok.error.as_deref()), (0, None));
        assert_eq!(ok.last_sync, Some(1_795_607_100));
        assert_eq!(ok.duration_seconds, Some(4.21));
        let failing = &jobs[1];
        assert_eq!(failing.id, "101-0");
        assert_eq!(failing.fail_count, 3);
        assert_eq!(failing.last_sync, Some(1_795_561_200));
        assert_eq!(failing.last_try, Some(1_795_606_200));
        assert!(failing
            .error
            .as_deref()
            .unwrap()
            .contains("cannot receive incremental stream"));
        assert_eq!(failing.schedule, "*/30");
    }

    #[test]
    fn bad_ids_and_entries() {
        let mut problems = Problems::new();
        let configs = parse_config(
            "local: 100-0\n\ttarget pve2\n\nlocal: abc\n\ttarget pve2\n\nlocal: 101-1\n\tschedule */5\n",
            &mut problems,
        )
        .unwrap();
        assert_eq!(configs.len(), 1);
        assert_eq!(problems.len(), 2);
        let mut problems = Problems::new();
        let states = parse_state(
            "{\"100\":{\"local/pve2\":{\"fail_count\":1,\"pid\":42}},\"x\":1}",
            &mut problems,
        )
        .unwrap();
        assert!(states[&(100, "local/pve2".to_owned())].running);
        assert_eq!(problems.len(), 1);
        assert!(parse_state("[]", &mut problems).is_err());
        assert!(parse_state("", &mut problems).unwrap().is_empty());
    }
}
