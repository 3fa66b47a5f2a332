//! Every parser under `agent/src/collect/` against damaged copies of its fixture files: cut at
//! every byte, with random bytes spliced in anywhere, with CRLF line ends, with keys it does not
//! know and with extra columns. None may panic, and what a parser read from the lines before
//! the damage it must still read (for formats whose lines stand alone, the lines after it too).
//!
//! A parser is seen through a `Reader`: the text → what it read as a list of items (one per
//! datum: an interface's counters, a meminfo field, a config key), `None` if it failed as a
//! whole, and its problems. Items are compared as multisets, so "still read" means "present
//! with the same value".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use agent::collect::problem::{decode, Problems};
use agent::collect::{
    arcstats, cgroup, cpuinfo, diskstats, guest_config, ha, hostname, hwmon, jobs, loadavg,
    meminfo, mounts, net_dev, net_unix, pid_stat, pmxcfs, pressure, replication, smart, stat,
    storage, tasks, uptime, versions, vzdump_log, zpool,
};
use common::sample::GuestType;
use proptest::prelude::*;

type Items = Vec<String>;
type Reader = fn(&str, &mut Problems) -> Option<Items>;

struct Case {
    name: &'static str,
    text: String,
    read: Reader,
    /// Each line means the same whatever happened to the lines before it (no sections, no
    /// header that later lines need): damage to one line costs only that line.
    independent: bool,
    /// The file with one more column on every line, read the same (formats that allow it).
    extra_column: Option<fn(&str) -> String>,
    /// Lines of keys the parser does not use; inserted anywhere they change nothing.
    unknown: &'static [&'static str],
    /// Section formats: a damaged section header merges its section into the one before (later
    /// keys win, as Proxmox reads them), which may change values read before it; that damage
    /// must be reported instead.
    section_header: Option<fn(&str) -> bool>,
}

fn fixture(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case(name: &'static str, text: String, read: Reader) -> Case {
    Case {
        name,
        text,
        read,
        independent: false,
        extra_column: None,
        unknown: &[],
        section_header: None,
    }
}

impl Case {
    fn independent(mut self) -> Case {
        self.independent = true;
        self
    }

    fn extra_column(mut self, add: fn(&str) -> String) -> Case {
        self.extra_column = Some(add);
        self
    }

    fn unknown(mut self, lines: &'static [&'static str]) -> Case {
        self.unknown = lines;
        self
    }

    fn sections(mut self, is_header: fn(&str) -> bool) -> Case {
        self.section_header = Some(is_header);
        self
    }

    /// What the parser reads from these bytes (decoded as the collector does), and whether it
    /// met any problem.
    fn read_bytes(&self, bytes: &[u8]) -> (Items, Problems) {
        let mut problems = Problems::new();
        let text = decode(bytes, &mut problems);
        let items = (self.read)(&text, &mut problems).unwrap_or_default();
        let lines = text.lines().count().max(1);
        for p in problems.iter() {
            if let Some(line) = p.line {
                assert!(
                    (1..=lines).contains(&line),
                    "{}: problem at line {line} of {lines}: {p}",
                    self.name
                );
            }
        }
        (items, problems)
    }

    fn read(&self, text: &str) -> (Items, Problems) {
        self.read_bytes(text.as_bytes())
    }
}

/// Whether every item of `small` is in `big`, as many times.
fn includes(big: &Items, small: &Items) -> bool {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for item in big {
        *counts.entry(item).or_default() += 1;
    }
    small
        .iter()
        .all(|item| match counts.get_mut(item.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
}

fn sorted(mut items: Items) -> Items {
    items.sort();
    items
}

/// The text's lines with their `\n` (the last may have none).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// What the parser reads from the first `n` lines, for every `n`; checks that each line only
/// adds to what the lines before gave, and that all of them give what the file gives.
fn prefix_items(case: &Case) -> Vec<Items> {
    let lines = lines(&case.text);
    let mut out = Vec::with_capacity(lines.len() + 1);
    let mut end = 0;
    out.push(case.read("").0);
    for line in &lines {
        end += line.len();
        let items = case.read(&case.text[..end]).0;
        assert!(
            includes(&items, out.last().unwrap()),
            "{}: line {} took away items: before {:?}, after {:?}",
            case.name,
            out.len(),
            out.last().unwrap(),
            items
        );
        out.push(items);
    }
    out
}

fn check_clean(case: &Case) -> Items {
    let (items, problems) = case.read(&case.text);
    assert!(
        !items.is_empty(),
        "{}: the fixture gives nothing",
        case.name
    );
    assert!(problems.is_empty(), "{}: {problems:?}", case.name);
    items
}

/// Cut at every byte (also inside a UTF-8 sequence): what the complete lines before the cut
/// gave is still read.
fn check_truncations(case: &Case, prefixes: &[Items]) {
    let bytes = case.text.as_bytes();
    for cut in 0..=bytes.len() {
        let complete = bytes[..cut].iter().filter(|b| **b == b'\n').count();
        let (items, _) = case.read_bytes(&bytes[..cut]);
        assert!(
            includes(&items, &prefixes[complete]),
            "{}: cut at byte {cut} lost items of the {complete} lines before it: {:?} ⊉ {:?}",
            case.name,
            items,
            prefixes[complete]
        );
    }
}

/// `junk` spliced in at byte `at`: the lines before it are still read, and for formats whose
/// lines stand alone, every line but the one hit.
fn check_splice(case: &Case, prefixes: &[Items], at: usize, junk: &[u8]) {
    let bytes = case.text.as_bytes();
    let at = at.min(bytes.len());
    let mut spliced = bytes[..at].to_vec();
    spliced.extend_from_slice(junk);
    spliced.extend_from_slice(&bytes[at..]);
    let (items, problems) = case.read_bytes(&spliced);
    let before = bytes[..at].iter().filter(|b| **b == b'\n').count();
    let hit = lines(&case.text).get(before).copied().unwrap_or("");
    if case.section_header.is_some_and(|is_header| is_header(hit)) && !problems.is_empty() {
        return;
    }
    assert!(
        includes(&items, &prefixes[before]),
        "{}: {junk:?} at byte {at} lost items of the lines before it",
        case.name
    );
    if case.independent {
        // Everything but the line hit, read on its own.
        let all = lines(&case.text);
        if before < all.len() {
            let rest: String = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != before)
                .map(|(_, l)| *l)
                .collect();
            let (expected, _) = case.read(&rest);
            assert!(
                includes(&items, &expected),
                "{}: {junk:?} at byte {at} lost items of other lines: {items:?} ⊉ {expected:?}",
                case.name
            );
        }
    }
}

fn check_crlf(case: &Case, items: &Items) {
    let (crlf, problems) = case.read(&case.text.replace('\n', "\r\n"));
    assert_eq!(sorted(crlf), sorted(items.clone()), "{}: CRLF", case.name);
    assert!(problems.is_empty(), "{}: CRLF: {problems:?}", case.name);
}

fn check_extra_column(case: &Case, items: &Items) {
    let Some(add) = case.extra_column else { return };
    let wider: String = lines(&case.text)
        .iter()
        .map(|l| match l.strip_suffix('\n') {
            Some(l) if !l.trim().is_empty() => format!("{}\n", add(l)),
            _ => (*l).to_owned(),
        })
        .collect();
    let (read, problems) = case.read(&wider);
    assert_eq!(
        sorted(read),
        sorted(items.clone()),
        "{}: extra column",
        case.name
    );
    assert!(
        problems.is_empty(),
        "{}: extra column: {problems:?}",
        case.name
    );
}

fn check_unknown_keys(case: &Case, items: &Items) {
    let all = lines(&case.text);
    for unknown in case.unknown {
        for at in [0, all.len() / 2, all.len()] {
            let mut text: String = all[..at].concat();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(unknown);
            text.push('\n');
            text.push_str(&all[at..].concat());
            let (read, problems) = case.read(&text);
            assert_eq!(
                sorted(read),
                sorted(items.clone()),
                "{}: {unknown:?} at line {}",
                case.name,
                at + 1
            );
            assert!(
                problems.is_empty(),
                "{}: {unknown:?}: {problems:?}",
                case.name
            );
        }
    }
}

/// Every check but the random splices.
fn check_all(case: &Case) -> Vec<Items> {
    let items = check_clean(case);
    let prefixes = prefix_items(case);
    assert_eq!(
        sorted(prefixes.last().unwrap().clone()),
        sorted(items.clone()),
        "{}: all lines ≠ the file",
        case.name
    );
    check_truncations(case, &prefixes);
    check_crlf(case, &items);
    check_extra_column(case, &items);
    check_unknown_keys(case, &items);
    // Splices at every line start and end, of a few fixed kinds of junk.
    let mut at = 0;
    for line in lines(&case.text) {
        for junk in [&b"\xff"[..], b"\n", b"\0", b"\r", b" x:= ]["] {
            check_splice(case, &prefixes, at, junk);
            check_splice(case, &prefixes, at + line.len().saturating_sub(1), junk);
        }
        at += line.len();
    }
    prefixes
}

fn some_items<T>(result: Result<T, String>, items: impl FnOnce(T) -> Items) -> Option<Items> {
    result.ok().map(items)
}

fn opt(name: &str, value: Option<impl std::fmt::Debug>) -> Option<String> {
    value.map(|v| format!("{name}={v:?}"))
}

fn add_zero(line: &str) -> String {
    format!("{line} 0")
}

// ------------------------------------------------------------------------------- the readers

fn read_loadavg(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(loadavg::parse(text, p), |l| {
        [opt("1", l.one), opt("5", l.five), opt("15", l.fifteen)]
            .into_iter()
            .flatten()
            .collect()
    })
}

fn read_meminfo(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(meminfo::parse(text, p), |m| {
        [
            opt("total", m.total),
            opt("free", m.free),
            opt("available", m.available),
            opt("buffers", m.buffers),
            opt("cached", m.cached),
            opt("sreclaimable", m.s_reclaimable),
            opt("swap_total", m.swap_total),
            opt("swap_free", m.swap_free),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

fn read_stat(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(stat::parse(text, p), |s| {
        let mut items: Items = s.per_cpu.iter().map(|c| format!("{c:?}")).collect();
        items.extend(opt("cpu", s.total));
        items
    })
}

fn read_uptime(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(uptime::parse_seconds(text), |s| vec![s.to_string()])
}

fn read_cpuinfo(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(cpuinfo::parse(text, p), |c| {
        let mut items = vec!["processor".to_owned(); c.count as usize];
        items.extend(opt("model", c.model));
        items.extend(vec!["socket".to_owned(); c.sockets.unwrap_or(0) as usize]);
        items
    })
}

fn read_pressure(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(pressure::parse(text, p), |s| {
        [
            opt("some", s.some_avg10),
            opt("full", s.full_avg10),
            opt("some_total", s.some_total_us),
            opt("full_total", s.full_total_us),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

fn read_arcstats(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(arcstats::parse(text, p), |a| {
        [
            opt("size", a.size),
            opt("c", a.target),
            opt("c_min", a.min),
            opt("c_max", a.max),
            opt("hits", a.hits),
            opt("misses", a.misses),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

fn read_net_dev(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(net_dev::parse(text, p), |v| {
        v.iter().map(|i| format!("{i:?}")).collect()
    })
}

fn read_diskstats(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(diskstats::parse(text, p), |v| {
        v.iter().map(|d| format!("{d:?}")).collect()
    })
}

fn read_pvecfg(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(versions::parse_pvecfg(text), |v| vec![format!("{v:?}")])
}

fn read_pveversion(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(versions::parse_pveversion(text), |v| vec![format!("{v:?}")])
}

fn read_version_line(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(versions::parse_line(text), |v| vec![v])
}

fn read_hostname(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(hostname::parse(text), |v| vec![v])
}

fn read_vmlist(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(pmxcfs::parse_vmlist(text, p), |v| {
        v.iter().map(|e| format!("{e:?}")).collect()
    })
}

fn read_members(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(pmxcfs::parse_members(text, p), |m| {
        let mut items: Items = opt("nodename", m.nodename).into_iter().collect();
        if let Some(cluster) = m.cluster {
            items.push(format!(
                "cluster={} quorate={:?}",
                cluster.name, cluster.quorate
            ));
            items.extend(cluster.nodes.iter().map(|n| format!("{n:?}")));
        }
        items
    })
}

fn guest_items(conf: guest_config::GuestConf) -> Items {
    let mut items: Items = [
        opt("name", conf.name),
        opt("cores", conf.cores),
        opt("sockets", conf.sockets),
        opt("vcpus", conf.vcpus),
        opt("cpulimit", conf.cpulimit),
        opt("memory", conf.memory_mib),
        opt("swap", conf.swap_mib),
        opt("balloon", conf.balloon_mib),
        conf.onboot.then(|| "onboot".to_owned()),
        conf.template.then(|| "template".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    items.extend(conf.tags.iter().map(|t| format!("tag={t}")));
    items
}

fn read_qemu_config(text: &str, p: &mut Problems) -> Option<Items> {
    Some(guest_items(guest_config::parse(text, GuestType::Qemu, p)))
}

fn read_lxc_config(text: &str, p: &mut Problems) -> Option<Items> {
    Some(guest_items(guest_config::parse(text, GuestType::Lxc, p)))
}

fn read_cpu_stat(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(cgroup::parse_cpu_stat(text, p), |v| vec![v.to_string()])
}

fn read_limit(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(cgroup::parse_limit(text), |v| vec![format!("{v:?}")])
}

fn read_memory_stat(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(cgroup::parse_memory_stat_file(text, p), |v| {
        vec![v.to_string()]
    })
}

fn read_io_stat(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(cgroup::parse_io_stat(text, p), |v| {
        v.iter().map(|d| format!("{d:?}")).collect()
    })
}

fn read_frozen(text: &str, _: &mut Problems) -> Option<Items> {
    Some(if cgroup::parse_frozen(text) {
        vec!["frozen".to_owned()]
    } else {
        Vec::new()
    })
}

fn read_procs(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(cgroup::parse_procs(text, p), |v| {
        v.iter().map(ToString::to_string).collect()
    })
}

fn read_net_unix(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(net_unix::running_containers(text, p), |v| {
        v.iter().map(ToString::to_string).collect()
    })
}

fn read_pid_stat(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(pid_stat::parse(text), |v| vec![format!("{v:?}")])
}

fn read_pidfile(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(pid_stat::parse_pidfile(text), |v| vec![v.to_string()])
}

fn read_storage_cfg(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(storage::parse_config(text, p), |v| {
        let mut items = Vec::new();
        for c in v {
            items.push(format!("{} {} shared={}", c.id, c.kind, c.shared));
            items.extend(opt(&format!("{}.content", c.id), c.content));
            items.extend(opt(&format!("{}.path", c.id), c.path));
            items.extend(c.nodes.iter().map(|n| format!("{}.node={n}", c.id)));
            if c.disabled {
                items.push(format!("{}.disabled", c.id));
            }
        }
        items
    })
}

fn read_pvesm(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(storage::parse_pvesm_status(text, p), |v| {
        v.iter().map(|r| format!("{r:?}")).collect()
    })
}

fn read_zpool_list(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(zpool::parse_list(text, p), |v| {
        v.iter().map(|r| format!("{r:?}")).collect()
    })
}

fn read_zpool_status(text: &str, _: &mut Problems) -> Option<Items> {
    let blocks = zpool::parse_status(text);
    Some(
        blocks
            .iter()
            .flat_map(|(pool, block)| block.lines().map(move |l| format!("{pool}: {l}")))
            .collect(),
    )
}

fn read_pool_state(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(zpool::parse_state(text), |v| vec![v])
}

fn read_mounts(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(mounts::parse(text, p), |v| {
        v.iter().map(|m| format!("{m:?}")).collect()
    })
}

fn read_stat_f(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(mounts::parse_stat_f(text, p), |v| {
        v.iter().map(|(k, u)| format!("{k} {u:?}")).collect()
    })
}

fn read_task_index(text: &str, p: &mut Problems) -> Option<Items> {
    Some(
        tasks::parse_index(text, 1, p)
            .iter()
            .map(|e| format!("{} {:?} {:?}", e.upid, e.endtime, e.status))
            .collect(),
    )
}

fn read_task_active(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(tasks::parse_active(text, p), |v| {
        v.iter()
            .map(|e| format!("{} {:?} {:?}", e.upid, e.endtime, e.status))
            .collect()
    })
}

fn read_vzdump_log(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(vzdump_log::parse(text, p), |log| {
        let mut items: Items = [
            opt("storage", log.storage),
            opt("job_error", log.job_error),
            opt("task", log.task_status),
        ]
        .into_iter()
        .flatten()
        .collect();
        items.extend(log.listed.iter().map(|v| format!("listed {v}")));
        for (i, g) in log.guests.iter().enumerate() {
            let id = format!("{i}:{}", g.vmid);
            items.push(format!("{id} {:?}", g.kind));
            items.extend(opt(&format!("{id} started"), g.started));
            items.extend(opt(&format!("{id} ended"), g.ended));
            items.extend(opt(&format!("{id} duration"), g.duration_seconds));
            items.extend(opt(&format!("{id} archive"), g.archive.clone()));
            items.extend(opt(&format!("{id} size"), g.size_bytes));
            if g.outcome != vzdump_log::Outcome::Unfinished {
                items.push(format!("{id} {:?}", g.outcome));
            }
        }
        items
    })
}

fn job_items(v: Vec<jobs::JobConf>) -> Items {
    let mut items = Vec::new();
    for j in v {
        items.push(j.id.clone());
        items.extend(opt(&format!("{}.schedule", j.id), j.schedule));
        items.extend(opt(&format!("{}.enabled", j.id), j.enabled));
        items.extend(opt(&format!("{}.storage", j.id), j.storage));
        items.extend(opt(&format!("{}.node", j.id), j.node));
        items.extend(opt(&format!("{}.pool", j.id), j.pool));
        items.extend(opt(&format!("{}.vmid", j.id), j.vmid));
        items.extend(opt(&format!("{}.all", j.id), j.all));
        items.extend(opt(&format!("{}.exclude", j.id), j.exclude));
        items.extend(opt(&format!("{}.comment", j.id), j.comment));
    }
    items
}

fn read_jobs_cfg(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(jobs::parse_jobs_cfg(text, p), job_items)
}

fn read_vzdump_cron(text: &str, p: &mut Problems) -> Option<Items> {
    // Cron jobs are numbered in file order: a line lost renumbers the ones after it.
    some_items(jobs::parse_vzdump_cron(text, p), |v| {
        v.into_iter()
            .map(|j| {
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    j.schedule, j.enabled, j.storage, j.node, j.vmid, j.all, j.exclude
                )
            })
            .collect()
    })
}

fn read_job_state(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(jobs::parse_job_state(text, p), |s| {
        let Some(s) = s else { return Vec::new() };
        [
            Some(format!("state={}", s.state)),
            opt("msg", s.msg),
            opt("upid", s.upid),
            opt("time", s.time),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

fn read_pools(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(jobs::parse_pools(text, p), |pools| {
        pools
            .iter()
            .flat_map(|(name, vmids)| {
                std::iter::once(format!("pool {name}"))
                    .chain(vmids.iter().map(move |v| format!("{name} {v}")))
            })
            .collect()
    })
}

fn read_replication_cfg(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(replication::parse_config(text, p), |v| {
        let mut items = Vec::new();
        for c in v {
            items.push(format!("{} {} {}", c.id, c.guest, c.target));
            items.extend(opt(&format!("{}.schedule", c.id), c.schedule));
            items.extend(opt(&format!("{}.disable", c.id), c.disable));
        }
        items
    })
}

fn read_replication_state(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(replication::parse_state(text, p), |states| {
        states.iter().map(|(k, s)| format!("{k:?} {s:?}")).collect()
    })
}

fn read_ha_resources(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(ha::parse_resources(text, p), |v| {
        let mut items = Vec::new();
        for r in v {
            items.push(r.sid.clone());
            items.extend(opt(&format!("{}.state", r.sid), r.state));
            items.extend(opt(&format!("{}.group", r.sid), r.group));
        }
        items
    })
}

fn read_manager_status(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(ha::parse_manager_status(text, p), |m| {
        let mut items: Items = [opt("master", m.master), opt("timestamp", m.timestamp)]
            .into_iter()
            .flatten()
            .collect();
        items.extend(m.nodes.iter().map(|n| format!("{n:?}")));
        items.extend(m.services.iter().map(|s| format!("{s:?}")));
        items
    })
}

fn read_lrm_status(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(ha::parse_lrm_status(text, p), |l| {
        [
            opt("state", l.state),
            opt("mode", l.mode),
            opt("timestamp", l.timestamp),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

fn read_smart_scan(text: &str, p: &mut Problems) -> Option<Items> {
    some_items(smart::parse_scan(text, p), |v| {
        v.iter()
            .flat_map(|d| {
                let protocol = d.protocol.as_ref().map(|p| format!("{} {p}", d.name));
                std::iter::once(format!("{} {}", d.name, d.kind)).chain(protocol)
            })
            .collect()
    })
}

fn read_smart_device(text: &str, p: &mut Problems) -> Option<Items> {
    let device = smart::ScannedDevice {
        name: "/dev/sdx".into(),
        kind: "sat".into(),
        protocol: None,
    };
    some_items(smart::parse_device(&device, text, None, p), |d| {
        let mut items: Items = [
            opt("model", d.model),
            opt("serial", d.serial),
            opt("capacity", d.capacity_bytes),
            opt("passed", d.passed),
            opt("exit", d.exit_status),
            opt("temperature", d.temperature_celsius),
            opt("hours", d.power_on_hours),
            opt("cycles", d.power_cycles),
            opt("reallocated", d.reallocated_sectors),
            opt("pending", d.pending_sectors),
            opt("offline", d.offline_uncorrectable),
            opt("crc", d.crc_errors),
            opt("critical", d.critical_warning),
            opt("spare", d.available_spare_percent),
            opt("spare_threshold", d.available_spare_threshold_percent),
            opt("used", d.percentage_used),
            opt("media", d.media_errors),
            opt("unsafe", d.unsafe_shutdowns),
            opt("message", d.message),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !d.protocol.is_empty() {
            items.push(format!("protocol={}", d.protocol));
        }
        if d.standby {
            items.push("standby".into());
        }
        items
    })
}

fn read_hwmon_value(text: &str, p: &mut Problems) -> Option<Items> {
    match hwmon::parse_millidegrees(text) {
        Ok(v) => Some(vec![v.to_string()]),
        Err(message) => {
            p.line(1, message);
            None
        }
    }
}

fn read_hwmon_threshold(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(hwmon::parse_threshold(text), |v| vec![format!("{v:?}")])
}

fn read_hwmon_label(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(hwmon::parse_label(text), |v| vec![v])
}

fn read_hwmon_name(text: &str, _: &mut Problems) -> Option<Items> {
    some_items(hwmon::parse_name(text), |v| vec![v])
}

// ------------------------------------------------------------------------------- the cases

fn bracketed(line: &str) -> bool {
    line.trim_end().starts_with('[') && line.trim_end().ends_with(']')
}

/// The first `n` lines of a fixture: enough of a long file for the byte-by-byte checks.
fn head(text: &str, n: usize) -> String {
    lines(text).into_iter().take(n).collect()
}

const TASK_25: &str = "UPID:pve1:0003C4D8:0358F2A1:6B062502:vzdump::root@pam:";

fn cases() -> Vec<Case> {
    vec![
        case("loadavg", fixture("pve-node/proc/loadavg"), read_loadavg),
        case("meminfo", fixture("pve-node/proc/meminfo"), read_meminfo)
            .independent()
            .unknown(&["NewCounter:        1234 kB", "HugePages_Total:       0"]),
        case(
            "meminfo (node_exporter)",
            fixture("node-exporter/proc/meminfo"),
            read_meminfo,
        )
        .independent(),
        case("stat", fixture("node-exporter/proc/stat"), read_stat)
            .independent()
            .extra_column(add_zero)
            .unknown(&["softirq_new 1 2 3", "newkey 5"]),
        case("uptime", fixture("pve-node/proc/uptime"), read_uptime),
        // Not `independent`: the first `model name` wins, so a damaged first one is the model.
        case(
            "cpuinfo",
            head(&fixture("node-exporter/proc/cpuinfo"), 60),
            read_cpuinfo,
        )
        .unknown(&["new feature\t: yes"]),
        case(
            "pressure",
            fixture("pve-node/proc/pressure/io"),
            read_pressure,
        )
        .independent()
        .extra_column(|l| format!("{l} avg600=0.00"))
        .unknown(&["partial avg10=1.00 avg60=0.00 avg300=0.00 total=5"]),
        case(
            "arcstats",
            fixture("node-exporter/proc/spl/kstat/zfs/arcstats"),
            read_arcstats,
        )
        .independent()
        .extra_column(add_zero)
        .unknown(&["new_stat                        4    42"]),
        case(
            "net/dev",
            fixture("node-exporter/proc/net/dev"),
            read_net_dev,
        )
        .independent()
        .extra_column(|l| {
            if l.contains('|') {
                l.to_owned()
            } else {
                add_zero(l)
            }
        }),
        case(
            "net/dev (pve)",
            fixture("pve-node/proc/net/dev"),
            read_net_dev,
        )
        .independent(),
        case(
            "diskstats",
            fixture("node-exporter/proc/diskstats"),
            read_diskstats,
        )
        .independent()
        .extra_column(add_zero),
        case(
            "diskstats (pve)",
            fixture("pve-node/proc/diskstats"),
            read_diskstats,
        )
        .independent(),
        case(
            "pvecfg.pm",
            fixture("pve-node/usr/share/perl5/PVE/pvecfg.pm"),
            read_pvecfg,
        ),
        case(
            "pveversion",
            fixture("pve-node/cmd/pveversion.txt"),
            read_pveversion,
        ),
        case(
            "osrelease",
            fixture("pve-node/proc/sys/kernel/osrelease"),
            read_version_line,
        ),
        case(
            "zfs version",
            fixture("pve-node/sys/module/zfs/version"),
            read_version_line,
        ),
        case("hostname", fixture("pve-node/etc/hostname"), read_hostname),
        case(".vmlist", fixture("pve-node/etc/pve/.vmlist"), read_vmlist),
        case(
            ".members",
            fixture("pve-node/etc/pve/.members"),
            read_members,
        ),
        case(
            "qemu 100.conf",
            fixture("pve-node/etc/pve/qemu-server/100.conf"),
            read_qemu_config,
        )
        .sections(bracketed)
        .unknown(&[
            "newkey: 1",
            "hookscript: local:snippets/hook.pl",
            "affinity: 0-3",
        ]),
        case(
            "qemu 130.conf",
            fixture("guest-configs/qemu-server/130.conf"),
            read_qemu_config,
        )
        .sections(bracketed)
        .unknown(&["newkey: 1"]),
        case(
            "lxc 101.conf",
            fixture("pve-node/etc/pve/lxc/101.conf"),
            read_lxc_config,
        )
        .unknown(&["newkey: 1", "lxc.new.key: x", "lxc.other = y"]),
        case(
            "lxc 120.conf",
            fixture("guest-configs/lxc/120.conf"),
            read_lxc_config,
        )
        .sections(bracketed)
        .unknown(&["newkey: 1", "lxc.environment: TZ=UTC"]),
        case(
            "cpu.stat",
            fixture("pve-node/sys/fs/cgroup/qemu.slice/100.scope/cpu.stat"),
            read_cpu_stat,
        )
        .independent()
        .unknown(&["new_usec 5"]),
        case(
            "memory.current",
            fixture("pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.current"),
            read_limit,
        ),
        case(
            "memory.stat",
            fixture("pve-node/sys/fs/cgroup/qemu.slice/100.scope/memory.stat"),
            read_memory_stat,
        )
        .independent()
        .unknown(&["newfield 9"]),
        case(
            "io.stat",
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n\
             230:16 rbytes=5 wbytes=7 rios=1 wios=1 dbytes=0 dios=0\n"
                .to_owned()
                + &fixture("pve-node/sys/fs/cgroup/qemu.slice/100.scope/io.stat"),
            read_io_stat,
        )
        .independent()
        .extra_column(|l| format!("{l} newkey=1")),
        case(
            "cgroup.events",
            "populated 1\nfrozen 1\n".to_owned(),
            read_frozen,
        )
        .independent(),
        case(
            "cgroup.procs",
            "2467\n2533\n2601\n".to_owned()
                + &fixture("pve-node/sys/fs/cgroup/lxc/101/ns/init.scope/cgroup.procs"),
            read_procs,
        )
        .independent(),
        case("net/unix", fixture("pve-node/proc/net/unix"), read_net_unix).independent(),
        case(
            "pid stat",
            fixture("pve-node/proc/1853/stat"),
            read_pid_stat,
        ),
        case(
            "pid file",
            fixture("pve-node/var/run/qemu-server/100.pid"),
            read_pidfile,
        ),
        case(
            "storage.cfg",
            fixture("pve-node/etc/pve/storage.cfg"),
            read_storage_cfg,
        )
        .sections(|l| l.trim().is_empty() || !l.starts_with(char::is_whitespace))
        .unknown(&["# a comment"]),
        case(
            "pvesm status",
            fixture("pve-node/cmd/pvesm-status.pve9-kib-header.txt"),
            read_pvesm,
        )
        .independent()
        .extra_column(|l| format!("{l} extra")),
        case(
            "zpool list",
            fixture("degraded-pool/cmd/zpool-list-HpPLo-pve-columns.txt"),
            read_zpool_list,
        )
        .independent()
        .extra_column(|l| format!("{l}\textra")),
        case(
            "zpool status",
            fixture("pve-node/cmd/zpool-status-x.degraded.txt"),
            read_zpool_status,
        ),
        case(
            "pool state",
            fixture("node-exporter/proc/spl/kstat/zfs/poolz1/state"),
            read_pool_state,
        ),
        case("mounts", fixture("pve-node/proc/mounts"), read_mounts)
            .independent()
            .extra_column(add_zero),
        case("stat-f", fixture("pve-node/cmd/stat-f.txt"), read_stat_f).independent(),
        case(
            "task index",
            fixture("pve-node/var/log/pve/tasks/index.1")
                + &fixture("pve-node/var/log/pve/tasks/index"),
            read_task_index,
        )
        .independent(),
        case(
            "task active",
            fixture("pve-node/var/log/pve/tasks/active"),
            read_task_active,
        )
        .independent(),
        case(
            "vzdump task log",
            fixture(&format!("pve-node/var/log/pve/tasks/2/{TASK_25}")),
            read_vzdump_log,
        )
        .unknown(&[
            "INFO: some output of a hook script",
            "WARN: a warning",
            "plain text",
        ]),
        case(
            "vzdump guest log",
            fixture("pve-node/var/log/vzdump/lxc-101.log"),
            read_vzdump_log,
        )
        .unknown(&["2026-11-25 01:01:50 INFO: more output"]),
        case(
            "jobs.cfg",
            fixture("pve-node/etc/pve/jobs.cfg"),
            read_jobs_cfg,
        )
        .sections(|l| l.trim().is_empty() || !l.starts_with(char::is_whitespace))
        .unknown(&["# a comment"]),
        case(
            "vzdump.cron",
            fixture("pve-node/etc/pve/vzdump.cron"),
            read_vzdump_cron,
        )
        .unknown(&["# a comment", "PATH=\"/bin\""]),
        case(
            "job state",
            fixture("pve-node/var/lib/pve-manager/jobs/vzdump-backup-5f0d2c1e-9a41.json"),
            read_job_state,
        ),
        case(
            "user.cfg pools",
            fixture("pve-node/etc/pve/user.cfg"),
            read_pools,
        )
        .independent()
        .unknown(&["token:root@pam!mon:0:0::", "role:Monitor:Sys.Audit:"]),
        case(
            "replication.cfg",
            fixture("pve-node/etc/pve/replication.cfg"),
            read_replication_cfg,
        )
        .sections(|l| l.trim().is_empty() || !l.starts_with(char::is_whitespace))
        .unknown(&["# a comment"]),
        case(
            "replication state",
            fixture("pve-node/var/lib/pve-manager/pve-replication-state.json"),
            read_replication_state,
        ),
        case(
            "ha resources.cfg",
            fixture("pve-node/etc/pve/ha/resources.cfg"),
            read_ha_resources,
        )
        .sections(|l| l.trim().is_empty() || !l.starts_with(char::is_whitespace))
        .unknown(&["# a comment"]),
        case(
            "ha manager_status",
            fixture("pve-node/etc/pve/ha/manager_status"),
            read_manager_status,
        ),
        case(
            "ha lrm_status",
            fixture("pve-node/etc/pve/nodes/pve1/lrm_status"),
            read_lrm_status,
        ),
        case(
            "smartctl --scan",
            fixture("smart-disks/cmd/smartctl-scan-j.txt"),
            read_smart_scan,
        ),
        case(
            "smartctl ata",
            fixture("smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sda.txt"),
            read_smart_device,
        ),
        case(
            "smartctl nvme",
            fixture("pve-node/cmd/smartctl-json-a-n-standby-d-nvme--dev-nvme1.txt"),
            read_smart_device,
        ),
        case(
            "smartctl standby",
            fixture("smart-disks/cmd/smartctl-json-a-n-standby-d-sat--dev-sdc.txt"),
            read_smart_device,
        ),
        case(
            "hwmon input",
            fixture("pve-node/sys/class/hwmon/hwmon1/temp1_input"),
            read_hwmon_value,
        ),
        case(
            "hwmon max",
            fixture("pve-node/sys/class/hwmon/hwmon1/temp1_max"),
            read_hwmon_threshold,
        ),
        case(
            "hwmon label",
            fixture("pve-node/sys/class/hwmon/hwmon1/temp1_label"),
            read_hwmon_label,
        ),
        case(
            "hwmon name",
            fixture("pve-node/sys/class/hwmon/hwmon3/name"),
            read_hwmon_name,
        ),
    ]
}

#[test]
fn every_parser_survives_cuts_crlf_extra_columns_unknown_keys_and_fixed_splices() {
    for case in cases() {
        check_all(&case);
    }
}

/// The cases with what their lines give, built once for the random splices.
fn prepared() -> &'static [(Case, Vec<Items>)] {
    static PREPARED: std::sync::OnceLock<Vec<(Case, Vec<Items>)>> = std::sync::OnceLock::new();
    PREPARED.get_or_init(|| {
        cases()
            .into_iter()
            .map(|case| {
                let prefixes = prefix_items(&case);
                (case, prefixes)
            })
            .collect()
    })
}

/// Cases per property: 1024 in `make test`; `make fuzz` sets `FUZZ_CASES` far higher.
fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    /// Any text at all (not only damaged fixtures) is read without a panic, and what cannot
    /// be read is reported, never silently taken as data of another shape.
    #[test]
    fn every_parser_survives_arbitrary_text(
        which in 0usize..256,
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let all = prepared();
        let (case, _) = &all[which % all.len()];
        let mut problems = Problems::new();
        let text = decode(&bytes, &mut problems);
        let _ = (case.read)(&text, &mut problems);
    }

    /// Lines of the fixture shuffled, repeated and cut: still no panic.
    #[test]
    fn every_parser_survives_shuffled_lines(
        which in 0usize..256,
        picks in proptest::collection::vec((0usize..4096, 0usize..200), 0..40),
    ) {
        let all = prepared();
        let (case, _) = &all[which % all.len()];
        let lines: Vec<&str> = case.text.lines().collect();
        let mut text = String::new();
        for (line, cut) in picks {
            if let Some(line) = lines.get(line % lines.len().max(1)) {
                let end = line.char_indices().nth(cut).map_or(line.len(), |(i, _)| i);
                text.push_str(&line[..end]);
                text.push('\n');
            }
        }
        let mut problems = Problems::new();
        let _ = (case.read)(&text, &mut problems);
    }

    #[test]
    fn every_parser_survives_random_bytes_spliced_in(
        which in 0usize..256,
        at in 0usize..4096,
        junk in proptest::collection::vec(any::<u8>(), 1..12),
    ) {
        let all = prepared();
        let (case, prefixes) = &all[which % all.len()];
        let at = at % (case.text.len() + 1);
        check_splice(case, prefixes, at, &junk);
    }
}
