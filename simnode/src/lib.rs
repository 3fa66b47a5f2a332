//! Simulated Proxmox VE nodes for `make demo`: a fixture tree (a fake root with `/proc`, `/sys`,
//! `/etc/pve` and `cmd/` captures, the layout `fixtures/README.md` describes) whose counters move
//! every second, so that a real agent with `root = <tree>` reports a busy node with running and
//! stopped VMs and containers, ZFS pools (one DEGRADED on the second node) and storages.
//!
//! - `scenario`: the nodes of the demo cluster and how busy each part is.
//! - `model`: the counters and gauges, advanced by the time passed.
//! - `render`: the files, in the layouts of the real kernel, Proxmox and OpenZFS.
//! - `operations`: backup jobs, two nights of backup tasks (one failed) and hwmon sensors.
//! - `Tree`: writes them under a root, each file atomically (a temp file renamed over it), so
//!   the agent never reads half a file.

pub mod model;
pub mod operations;
pub mod render;
pub mod scenario;

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use model::Model;

/// A simulated node's tree on disk.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    pub model: Model,
}

impl Tree {
    /// Writes every file of `node` under `root` (made if missing; files of an earlier run are
    /// overwritten, others left alone).
    pub fn create(root: &Path, node: scenario::Node) -> std::io::Result<Tree> {
        let tree = Tree {
            root: root.to_owned(),
            model: Model::new(node),
        };
        tree.write(render::static_files(&tree.model))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        tree.write(operations::files(&tree.model.node, now))?;
        tree.write(render::dynamic_files(&tree.model))?;
        Ok(tree)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Moves the node `seconds` on and rewrites the files that changed.
    pub fn advance(&mut self, seconds: f64) -> std::io::Result<()> {
        self.model.advance(seconds);
        self.write(render::dynamic_files(&self.model))
    }

    fn write(&self, files: Vec<render::File>) -> std::io::Result<()> {
        for (relative, content) in files {
            write_atomically(&self.root.join(&relative), content.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `path` through a temp file beside it and a rename: readers see the old file or the
/// new one, never a mix. Errors name the path.
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let with_path =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(with_path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.simnode-tmp"));
    let mut file = std::fs::File::create(&temp).map_err(with_path)?;
    file.write_all(content).map_err(with_path)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(with_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::collect::Collector;
    use common::sample::GuestStatus;
    use std::time::{Duration, Instant};

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("simnode-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The real collector reads a simulated node twice, 2 s of simulation apart.
    fn collect_twice(name: &str) -> (common::sample::FastSample, Tree, Collector) {
        let root = temp_root(name);
        let mut tree = Tree::create(&root, scenario::node(name).unwrap()).unwrap();
        let mut collector = Collector::new(&root);
        let start = Instant::now();
        let first = collector.fast_at(start);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        tree.advance(2.0).unwrap();
        let second = collector.fast_at(start + Duration::from_secs(2));
        (second, tree, collector)
    }

    #[test]
    fn the_agent_reads_a_busy_node_with_running_and_stopped_guests() {
        let (fast, tree, mut collector) = collect_twice("pve-sim1");
        assert!(fast.errors.is_empty(), "{:?}", fast.errors);
        assert_eq!(fast.hostname.as_deref(), Some("pve-sim1"));
        let cpu = fast.cpu_percent.unwrap();
        assert!(cpu > 5.0 && cpu < 100.0, "{cpu}");
        let running: Vec<_> = fast
            .guests
            .iter()
            .filter(|g| g.status == GuestStatus::Running)
            .collect();
        let stopped = fast.guests.len() - running.len();
        assert_eq!((running.len(), stopped), (4, 3), "{:?}", fast.guests);
        for guest in &running {
            assert!(guest.cpu_percent.unwrap() > 0.0, "{guest:?}");
            assert!(guest.net_out_bytes_per_s.unwrap() > 0.0, "{guest:?}");
            assert!(guest.disk_write_bytes_per_s.unwrap() > 0.0, "{guest:?}");
            assert!(guest.mem_used_bytes.unwrap() > 0, "{guest:?}");
        }
        let eno1 = fast.net.iter().find(|n| n.name == "eno1").unwrap();
        assert!(eno1.rx_bytes_per_s.unwrap() > 100_000.0, "{eno1:?}");
        assert_eq!(fast.disks.len(), 2, "{:?}", fast.disks);
        for disk in &fast.disks {
            assert!(disk.write_bytes_per_s.unwrap() > 0.0, "{disk:?}");
            assert!(disk.busy_percent.unwrap() > 0.0, "{disk:?}");
        }
        assert!(fast.arc.unwrap().hit_ratio_percent.unwrap() > 80.0);

        let medium = collector.medium();
        assert!(medium.errors.is_empty(), "{:?}", medium.errors);
        assert_eq!(medium.pools.len(), 1);
        assert_eq!(medium.pools[0].health, "ONLINE");
        let mut ids: Vec<&str> = medium.storages.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["backup-nfs", "local", "local-zfs"]);
        assert!(medium.storages.iter().all(|s| s.active == Some(true)));
        assert!(medium.guests.iter().any(|g| g.template));
        let slow = collector.slow();
        assert!(slow.errors.is_empty(), "{:?}", slow.errors);
        assert_eq!(slow.cluster.unwrap().nodes.len(), 2);
        // Backups: last night's run failed CT 102; 105 is in no job; the rest are fine.
        assert_eq!(medium.backup_jobs.len(), 1, "{:?}", medium.backup_jobs);
        let backup = |vmid: u32| medium.backups.iter().find(|b| b.vmid == vmid).unwrap();
        let dns = backup(102);
        assert!(dns
            .last_failure
            .as_ref()
            .unwrap()
            .message
            .contains("Stale file handle"));
        assert!(
            dns.last_failure.as_ref().unwrap().end_time
                > dns.last_success.as_ref().unwrap().end_time
        );
        assert_eq!(backup(105).jobs.as_deref(), Some(&[][..]));
        let web = backup(100);
        assert!(
            web.last_failure.is_none() && web.last_success.as_ref().unwrap().size_bytes.is_some()
        );
        assert_eq!(web.jobs.as_ref().unwrap()[0], operations::JOB);
        // Temperatures: an ACPI zone and the CPU's sensors with thresholds.
        assert!(fast.temperatures.len() >= 3, "{:?}", fast.temperatures);
        assert!(fast.temperatures.iter().any(|t| t.crit_celsius.is_some()));
        let _ = std::fs::remove_dir_all(tree.root());
    }

    #[test]
    fn the_second_node_has_a_degraded_pool_with_its_status() {
        let (fast, tree, mut collector) = collect_twice("pve-sim2");
        assert!(fast.errors.is_empty(), "{:?}", fast.errors);
        assert_eq!(
            fast.guests.len(),
            3,
            "only its own guests of the cluster's .vmlist"
        );
        let medium = collector.medium();
        assert!(medium.errors.is_empty(), "{:?}", medium.errors);
        let health: Vec<(&str, &str)> = medium
            .pools
            .iter()
            .map(|p| (p.name.as_str(), p.health.as_str()))
            .collect();
        assert_eq!(health, [("rpool", "ONLINE"), ("tank", "DEGRADED")]);
        let tank = &medium.pools[1];
        assert!(tank.status_details.as_deref().unwrap().contains("UNAVAIL"));
        let _ = std::fs::remove_dir_all(tree.root());
    }

    #[test]
    fn counters_keep_moving_and_files_are_replaced_whole() {
        let root = temp_root("moving");
        let mut tree = Tree::create(&root, scenario::node("pve-sim1").unwrap()).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let before = read("proc/stat");
        tree.advance(1.0).unwrap();
        assert_ne!(read("proc/stat"), before);
        let leftovers: Vec<_> = std::fs::read_dir(root.join("proc"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".simnode-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
