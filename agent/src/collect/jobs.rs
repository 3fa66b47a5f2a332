//! Backup jobs: `/etc/pve/jobs.cfg` (pve-manager `PVE::Jobs`, `vzdump` sections), the legacy
//! `/etc/pve/vzdump.cron` (pve-guest-common `PVE::VZDump::Common::parse_vzdump_cron_config`),
//! each job's state on this node (`/var/lib/pve-manager/jobs/vzdump-<id>.json`,
//! `PVE::Jobs::read_job_state`), and the resource pools of `/etc/pve/user.cfg`
//! (pve-access-control `parse_user_config`), which a job may select.
//!
//! Which guests a job backs up is `PVE::VZDump::get_included_guests`: its `pool`'s members,
//! else its `vmid` list, else with `all` every guest of the cluster but those in `exclude`
//! (`exclude` alone means `all`); then only those on the job's `node` if it has one.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::json;
use super::problem::{numbered_lines, parse_boolean, quote, Problems};
use super::section_config::{self, Section};

/// A backup job as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobConf {
    /// The `jobs.cfg` id, or `vzdump.cron:<n>`.
    pub id: String,
    /// Read from `vzdump.cron`.
    pub legacy: bool,
    pub schedule: Option<String>,
    /// `enabled` as written (Proxmox's default is 1); a `#vzdump` cron line is disabled.
    pub enabled: Option<bool>,
    pub storage: Option<String>,
    pub node: Option<String>,
    /// The selecting keys as written; `selection()` says what they select.
    pub pool: Option<String>,
    pub vmid: Option<Vec<u32>>,
    pub all: Option<bool>,
    pub exclude: Option<Vec<u32>>,
    pub comment: Option<String>,
}

impl JobConf {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// What the job selects (`get_included_guests`' order: pool, then vmid, then
    /// all/exclude; `exclude` alone means all).
    pub fn selection(&self) -> Selection {
        selection(
            self.pool.as_deref(),
            self.vmid.clone(),
            self.all.unwrap_or(false),
            self.exclude.clone(),
        )
    }
}

/// What a job selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    Pool(String),
    Vmids(Vec<u32>),
    All {
        exclude: Vec<u32>,
    },
    /// Nothing: a job without `vmid`, `all`, `exclude` or `pool` backs up nothing.
    #[default]
    Nothing,
}

impl Selection {
    /// As the sample shows it: `all`, `all except 102,103`, `pool prod`, `100,101`.
    pub fn describe(&self) -> String {
        let list = |v: &[u32]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Selection::Pool(pool) => format!("pool {pool}"),
            Selection::Vmids(vmids) => list(vmids),
            Selection::All { exclude } if exclude.is_empty() => "all".to_owned(),
            Selection::All { exclude } => format!("all except {}", list(exclude)),
            Selection::Nothing => "nothing".to_owned(),
        }
    }

    /// The guests selected, among `cluster` (every VMID with its node) and `pools`, sorted. The
    /// caller keeps those of its node.
    pub fn guests(
        &self,
        cluster: &BTreeMap<u32, String>,
        pools: &BTreeMap<String, Vec<u32>>,
    ) -> Vec<u32> {
        let mut out: Vec<u32> = match self {
            Selection::Pool(pool) => pools.get(pool).cloned().unwrap_or_default(),
            Selection::Vmids(vmids) => vmids.clone(),
            Selection::All { exclude } => cluster
                .keys()
                .copied()
                .filter(|v| !exclude.contains(v))
                .collect(),
            Selection::Nothing => Vec::new(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The `vzdump` sections of `jobs.cfg` (other job types, e.g. `realm-sync`, are left out).
pub fn parse_jobs_cfg(text: &str, problems: &mut Problems) -> Result<Vec<JobConf>, String> {
    let sections = section_config::parse(text, |_, id| section_config::is_config_id(id), problems);
    Ok(sections
        .iter()
        .filter(|s| s.kind == "vzdump")
        .map(|s| job_of_section(s, problems))
        .collect())
}

fn job_of_section(section: &Section, problems: &mut Problems) -> JobConf {
    let mut flag = |key: &str| {
        let value = section.get(key)?;
        let flag = parse_boolean(value.unwrap_or("1"));
        if flag.is_none() {
            problems.line(
                section.line_of(key),
                format!(
                    "{}: {key} {} is not a boolean",
                    section.id,
                    quote(value.unwrap_or(""))
                ),
            );
        }
        flag
    };
    let enabled = flag("enabled");
    let all = flag("all");
    let vmid = section
        .value("vmid")
        .map(|list| vmid_list(list, section.line_of("vmid"), &section.id, problems));
    let exclude = section
        .value("exclude")
        .map(|list| vmid_list(list, section.line_of("exclude"), &section.id, problems));
    JobConf {
        id: section.id.clone(),
        legacy: false,
        schedule: section.value("schedule").map(str::to_owned),
        enabled,
        storage: section.value("storage").map(str::to_owned),
        node: section.value("node").map(str::to_owned),
        pool: section.value("pool").map(str::to_owned),
        vmid,
        all,
        exclude,
        comment: section.value("comment").map(str::to_owned),
    }
}

/// `get_included_guests`' order: pool, then vmid, then all/exclude.
fn selection(
    pool: Option<&str>,
    vmids: Option<Vec<u32>>,
    all: bool,
    exclude: Option<Vec<u32>>,
) -> Selection {
    if let Some(pool) = pool {
        return Selection::Pool(pool.to_owned());
    }
    if let Some(vmids) = vmids.filter(|v| !v.is_empty()) {
        return Selection::Vmids(vmids);
    }
    if all || exclude.is_some() {
        return Selection::All {
            exclude: exclude.unwrap_or_default(),
        };
    }
    Selection::Nothing
}

/// `100,101 102;103` (pve-common `split_list`: commas, semicolons, blanks); a word that is no
/// VMID is skipped and reported.
fn vmid_list(list: &str, line: usize, id: &str, problems: &mut Problems) -> Vec<u32> {
    list.split([',', ';', ' ', '\t', '\0'])
        .filter(|w| !w.is_empty())
        .filter_map(|w| match w.parse::<u32>() {
            Ok(vmid) if vmid > 0 => Some(vmid),
            _ => {
                problems.line(line, format!("{id}: {} is not a VMID", quote(w)));
                None
            }
        })
        .collect()
}

/// The jobs of `vzdump.cron`: `M H * * DOW root [/path/][#]vzdump ARGS` lines, numbered from 1;
/// `#vzdump` is a disabled job. Its schedule becomes the calendar event Proxmox converts it to
/// (`sat 02:00`, `mon,fri 01:30`, `02:00` for every day).
pub fn parse_vzdump_cron(text: &str, problems: &mut Problems) -> Result<Vec<JobConf>, String> {
    let mut out = Vec::new();
    for (number, line) in numbered_lines(text) {
        let trimmed = line.trim();
        if trimmed.is_empty() || line.starts_with('#') || line.starts_with("PATH") {
            continue;
        }
        match cron_job(line, out.len() + 1) {
            Some(job) => out.push(job),
            None => problems.line(
                number,
                format!("{} is not a vzdump cron line: ignored", quote(line)),
            ),
        }
    }
    Ok(out)
}

fn cron_job(line: &str, n: usize) -> Option<JobConf> {
    let mut fields = line.split_whitespace();
    let minute: u32 = fields.next()?.parse().ok()?;
    let hour: u32 = fields.next()?.parse().ok()?;
    if fields.next()? != "*" || fields.next()? != "*" {
        return None;
    }
    let dow = fields.next()?;
    if fields.next()? != "root" || minute > 59 || hour > 23 {
        return None;
    }
    let command = fields.next()?;
    let command = command.rsplit('/').next().unwrap_or(command);
    let enabled = match command {
        "vzdump" => true,
        "#vzdump" => false,
        _ => return None,
    };
    let days = days_of_week(dow)?;
    let args: Vec<&str> = fields.collect();
    let mut vmids = Vec::new();
    let (mut all, mut exclude, mut pool, mut storage, mut node) = (false, None, None, None, None);
    let mut i = 0;
    while i < args.len() {
        let Some(option) = args[i].strip_prefix("--") else {
            vmids.extend(args[i].split(',').filter_map(|v| v.parse::<u32>().ok()));
            i += 1;
            continue;
        };
        let value = args.get(i + 1).copied().filter(|v| !v.starts_with("--"));
        match option {
            "all" => all = value.and_then(parse_boolean).unwrap_or(true),
            "exclude" => {
                exclude = Some(
                    value
                        .unwrap_or("")
                        .split([',', ';'])
                        .filter_map(|v| v.parse().ok())
                        .collect(),
                );
            }
            "pool" => pool = value.map(str::to_owned),
            "storage" => storage = value.map(str::to_owned),
            "node" => node = value.map(str::to_owned),
            _ => {}
        }
        i += if value.is_some() { 2 } else { 1 };
    }
    let time = format!("{hour:02}:{minute:02}");
    Some(JobConf {
        id: format!("vzdump.cron:{n}"),
        legacy: true,
        schedule: Some(match days {
            Some(days) => format!("{days} {time}"),
            None => time,
        }),
        enabled: Some(enabled),
        storage,
        node,
        pool,
        vmid: (!vmids.is_empty()).then_some(vmids),
        all: all.then_some(true),
        exclude,
        comment: None,
    })
}

/// `parse_dow`: `*`, `mon-fri`, `sat`, `0`..`7`, comma lists → `mon,tue`; `None` (inside) for
/// every day.
fn days_of_week(dow: &str) -> Option<Option<String>> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    if dow == "*" {
        return Some(None);
    }
    let index = |d: &str| -> Option<usize> {
        let d = d.to_ascii_lowercase();
        if let Some(i) = NAMES.iter().position(|n| *n == d) {
            return Some(i);
        }
        match d.parse::<usize>().ok()? {
            0 | 7 => Some(6),
            n @ 1..=6 => Some(n - 1),
            _ => None,
        }
    };
    let mut days = BTreeSet::new();
    for part in dow.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                days.extend(a..=b);
            }
            None => {
                days.insert(index(part)?);
            }
        }
    }
    if days.is_empty() {
        return None;
    }
    if days.len() == 7 {
        return Some(None);
    }
    Some(Some(
        days.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join(","),
    ))
}

/// A job's state file (`PVE::Jobs`): `{"state":"stopped","msg":"OK","upid":"UPID:...",
/// "config":{...},"updated":...}`; `state` is `created`, `starting`, `started` or `stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobState {
    pub state: String,
    /// The task's status when stopped (`OK`, `WARNINGS: 1`, `job errors`, an error).
    pub msg: Option<String>,
    pub upid: Option<String>,
    /// `time`: when the state was written (created, starting, or a run that failed to start).
    pub time: Option<u64>,
}

/// Parses a job state file; `None` for an empty one, which Proxmox reads as its default
/// state (`created`: never ran).
pub fn parse_job_state(text: &str, problems: &mut Problems) -> Result<Option<JobState>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value = json::parse(text, problems)?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let state = string("state").ok_or("no \"state\"")?;
    Ok(Some(JobState {
        state,
        msg: string("msg"),
        upid: string("upid"),
        time: object
            .get("time")
            .and_then(Value::as_u64)
            .filter(|t| *t > 0),
    }))
}

/// The resource pools of `user.cfg`: `pool:<name>:<comment>:<vmids>:<storages>:` lines. A VMID
/// in two pools belongs to the first (as Proxmox keeps it); a word that is no VMID is skipped
/// and reported.
pub fn parse_pools(
    text: &str,
    problems: &mut Problems,
) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let mut pools: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut owner: BTreeMap<u32, String> = BTreeMap::new();
    for (number, line) in numbered_lines(text) {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("pool:") else {
            continue;
        };
        let mut fields = rest.split(':');
        let name = fields.next().unwrap_or("");
        if name.is_empty() {
            problems.line(number, format!("{} has no pool name", quote(line)));
            continue;
        }
        let _comment = fields.next();
        let members = pools.entry(name.to_owned()).or_default();
        for word in fields
            .next()
            .unwrap_or("")
            .split([',', ';', ' '])
            .filter(|w| !w.is_empty())
        {
            let Ok(vmid) = word.parse::<u32>() else {
                problems.line(
                    number,
                    format!("pool {name}: {} is not a VMID", quote(word)),
                );
                continue;
            };
            if owner.contains_key(&vmid) {
                continue;
            }
            owner.insert(vmid, name.to_owned());
            members.push(vmid);
        }
    }
    Ok(pools)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn problems_of(p: &Problems) -> Vec<String> {
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn jobs_cfg_of_the_fixture() {
        let mut problems = Problems::new();
        let jobs = parse_jobs_cfg(
            include_str!("../../../fixtures/pve-node/etc/pve/jobs.cfg"),
            &mut problems,
        )
        .unwrap();
        assert_eq!(problems_of(&problems), Vec::<String>::new());
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "backup-5f0d2c1e-9a41",
                "backup-8c3e7b20-41d7",
                "backup-b71a9e04-c2f5"
            ]
        );
        assert_eq!(jobs[0].schedule.as_deref(), Some("01:00"));
        assert_eq!(jobs[0].selection(), Selection::Vmids(vec![100, 101]));
        assert_eq!(jobs[0].storage.as_deref(), Some("local"));
        assert_eq!(jobs[0].node.as_deref(), Some("pve1"));
        assert_eq!(
            jobs[1].comment.as_deref(),
            Some("weekly copy of the prod pool (paused)")
        );
        assert!(jobs[0].is_enabled());
        assert_eq!(jobs[1].selection(), Selection::Pool("prod".into()));
        assert!(!jobs[1].is_enabled());
        assert_eq!(
            jobs[2].selection(),
            Selection::All {
                exclude: vec![100, 101, 102]
            }
        );
        assert_eq!(jobs[2].node.as_deref(), Some("pve2"));
    }

    #[test]
    fn selections_resolve_like_get_included_guests() {
        let cluster: BTreeMap<u32, String> = [(100, "pve1"), (101, "pve1"), (200, "pve2")]
            .into_iter()
            .map(|(v, n)| (v, n.to_owned()))
            .collect();
        let pools: BTreeMap<String, Vec<u32>> =
            [("prod".to_owned(), vec![200, 100])].into_iter().collect();
        let all = Selection::All { exclude: vec![101] };
        assert_eq!(all.guests(&cluster, &pools), [100, 200]);
        assert_eq!(all.describe(), "all except 101");
        assert_eq!(
            Selection::Pool("prod".into()).guests(&cluster, &pools),
            [100, 200]
        );
        assert_eq!(
            Selection::Pool("none".into()).guests(&cluster, &pools),
            Vec::<u32>::new()
        );
        // A listed VMID that does not exist is still selected (vzdump reports it).
        assert_eq!(
            Selection::Vmids(vec![300, 100]).guests(&cluster, &pools),
            [100, 300]
        );
        // pool wins over vmid, vmid over all; exclude alone means all.
        assert_eq!(
            selection(Some("p"), Some(vec![1]), true, None),
            Selection::Pool("p".into())
        );
        assert_eq!(
            selection(None, Some(vec![1]), true, None),
            Selection::Vmids(vec![1])
        );
        assert_eq!(
            selection(None, None, false, Some(vec![5])),
            Selection::All { exclude: vec![5] }
        );
        assert_eq!(selection(None, None, false, None), Selection::Nothing);
    }

    #[test]
    fn bad_values_are_reported() {
        let mut problems = Problems::new();
        let jobs = parse_jobs_cfg(
            "vzdump: backup-x\n\tvmid 100,abc\n\tenabled maybe\n\nrealm-sync: s1\n\tschedule daily\n",
            &mut problems,
        )
        .unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].selection(), Selection::Vmids(vec![100]));
        assert!(jobs[0].is_enabled());
        assert_eq!(
            problems_of(&problems),
            [
                "line 3: backup-x: enabled \"maybe\" is not a boolean",
                "line 2: backup-x: \"abc\" is not a VMID"
            ]
        );
    }

    #[test]
    fn vzdump_cron() {
        let mut problems = Problems::new();
        let jobs = parse_vzdump_cron(
            include_str!("../../../fixtures/pve-node/etc/pve/vzdump.cron"),
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].id, "vzdump.cron:1");
        assert_eq!(jobs[0].schedule.as_deref(), Some("sun 03:30"));
        assert!(!jobs[0].is_enabled());
        assert_eq!(
            jobs[0].selection(),
            Selection::All {
                exclude: vec![100, 101]
            }
        );
        assert_eq!(jobs[0].storage.as_deref(), Some("local"));
        assert_eq!(
            jobs[1].schedule.as_deref(),
            Some("mon,tue,wed,thu,fri 02:00")
        );
        assert_eq!(jobs[1].node.as_deref(), Some("pve2"));
        assert_eq!(jobs[1].selection(), Selection::Vmids(vec![200]));
        let mut problems = Problems::new();
        let jobs = parse_vzdump_cron("0 2 * * * root vzdump 1\n61 2 * * * root vzdump 1\n0 2 * * xyz root vzdump 1\n0 2 1 * * root vzdump 1\n", &mut problems).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].schedule.as_deref(), Some("02:00"));
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn job_states() {
        let mut problems = Problems::new();
        let state = parse_job_state(
            include_str!("../../../fixtures/pve-node/var/lib/pve-manager/jobs/vzdump-backup-5f0d2c1e-9a41.json"),
            &mut problems,
        )
        .unwrap()
        .unwrap();
        assert_eq!(state.state, "stopped");
        assert_eq!(state.msg.as_deref(), Some("job errors"));
        assert!(state.upid.unwrap().contains(":vzdump::"));
        assert_eq!(parse_job_state("", &mut problems).unwrap(), None);
        assert!(parse_job_state("{\"msg\":1}", &mut problems).is_err());
        assert!(parse_job_state("[1]", &mut problems).is_err());
    }

    #[test]
    fn pools_of_user_cfg() {
        let mut problems = Problems::new();
        let pools = parse_pools(
            "user:root@pam:1:0:::root@example.com:::\npool:prod:Production:100,200:local-zfs:\npool:test::100,x,102::\npool:empty::::\n",
            &mut problems,
        )
        .unwrap();
        assert_eq!(pools["prod"], [100, 200]);
        assert_eq!(pools["test"], [102]);
        assert_eq!(pools["empty"], Vec::<u32>::new());
        assert_eq!(problems.len(), 1);
    }
}
