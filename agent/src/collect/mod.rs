//! Collectors: one module per data source, each a pure parser over text plus the `Collector`
//! that reads the files under a root directory (`/` on a node, a fixture tree in tests) and keeps
//! the previous counters needed to turn them into rates.
//!
//! One source failing never aborts a sample: its fields stay `None` and the sample's `errors`
//! names the file and what was wrong with it.

pub mod loadavg;
pub mod meminfo;
pub mod stat;
pub mod uptime;

use std::path::{Path, PathBuf};

use common::sample::{FastSample, SourceError, SCHEMA_VERSION};

use crate::error::{Error, Result};

/// Reads a node's files under `root` and produces samples.
#[derive(Debug)]
pub struct Collector {
    root: PathBuf,
    previous_cpu: Option<stat::CpuStat>,
}

impl Collector {
    pub fn new(root: impl Into<PathBuf>) -> Collector {
        Collector {
            root: root.into(),
            previous_cpu: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `metric:fast` sample. CPU percentages need the previous call's counters, so they are
    /// `None` on the first call.
    pub fn fast(&mut self) -> FastSample {
        let mut errors = Vec::new();
        let mut sample = FastSample {
            schema: SCHEMA_VERSION,
            ..FastSample::default()
        };

        sample.hostname = self.hostname(&mut errors);
        if let Some(load) = self.source("proc/loadavg", loadavg::parse, &mut errors) {
            sample.load1 = Some(load.one);
            sample.load5 = Some(load.five);
            sample.load15 = Some(load.fifteen);
        }
        if let Some(mem) = self.source("proc/meminfo", meminfo::parse, &mut errors) {
            sample.mem_total_bytes = Some(mem.total);
            sample.mem_available_bytes = mem.available;
            sample.mem_used_bytes = Some(mem.used());
            sample.swap_total_bytes = Some(mem.swap_total);
            sample.swap_free_bytes = Some(mem.swap_free);
        }
        sample.uptime_seconds = self.source("proc/uptime", uptime::parse, &mut errors);
        match self.source("proc/stat", stat::parse, &mut errors) {
            Some(now) => {
                if let Some(before) = &self.previous_cpu {
                    sample.cpu_percent =
                        stat::percent_between(&before.total, &now.total).map(|p| round2(p.busy));
                    if before.per_cpu.len() == now.per_cpu.len() {
                        sample.cpu_per_core_percent = before
                            .per_cpu
                            .iter()
                            .zip(&now.per_cpu)
                            .map(|(b, a)| stat::percent_between(b, a).map(|p| round2(p.busy)))
                            .collect();
                    }
                }
                self.previous_cpu = Some(now);
            }
            None => self.previous_cpu = None,
        }
        sample.errors = errors;
        sample
    }

    /// The node name: the kernel's idea of it, else `/etc/hostname`.
    fn hostname(&self, errors: &mut Vec<SourceError>) -> Option<String> {
        let parse = |text: &str| -> Result<String, String> {
            let name = text.trim();
            if name.is_empty() {
                Err("file is empty".into())
            } else {
                Ok(name.to_owned())
            }
        };
        let kernel = self.root.join("proc/sys/kernel/hostname");
        if kernel.exists() {
            return self.source("proc/sys/kernel/hostname", parse, errors);
        }
        self.source("etc/hostname", parse, errors)
    }

    /// Reads `relative` under the root and parses it; on failure records why in `errors`.
    fn source<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
        errors: &mut Vec<SourceError>,
    ) -> Option<T> {
        let path = self.root.join(relative);
        let result = read_to_string(&path).and_then(|text| {
            parse(&text).map_err(|message| Error::Parse {
                path: path.clone(),
                message,
            })
        });
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                errors.push(SourceError {
                    source: format!("/{relative}"),
                    message: e.to_string(),
                });
                None
            }
        }
    }
}

/// Reads a whole (small) file, with the path in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Percentages travel with two decimals: finer is noise, and it keeps payloads short.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(name)
    }

    #[test]
    fn fast_sample_of_the_pve_node() {
        let mut collector = Collector::new(fixture("pve-node"));
        let sample = collector.fast();
        assert_eq!(sample.errors, vec![]);
        assert_eq!(sample.hostname.as_deref(), Some("pve1"));
        assert_eq!(
            (sample.load1, sample.load5, sample.load15),
            (Some(0.21), Some(0.37), Some(0.39))
        );
        assert_eq!(sample.mem_total_bytes, Some(65_759_444 * 1024));
        assert_eq!(sample.mem_available_bytes, Some(55_988_844 * 1024));
        assert_eq!(
            sample.mem_used_bytes,
            Some((65_759_444 - 55_988_844) * 1024)
        );
        assert_eq!(sample.swap_total_bytes, Some(8_388_604 * 1024));
        assert_eq!(sample.uptime_seconds, Some(350_735));
        // The first sample has no previous counters: no CPU percentage rather than a bogus one.
        assert_eq!(sample.cpu_percent, None);
        // The same counters again: no time passed, still no percentage.
        assert_eq!(collector.fast().cpu_percent, None);
    }

    #[test]
    fn missing_files_are_errors_not_panics() {
        let mut collector = Collector::new("/nonexistent/root/xyz");
        let sample = collector.fast();
        assert_eq!(sample.load1, None);
        assert_eq!(sample.mem_total_bytes, None);
        assert_eq!(sample.uptime_seconds, None);
        let sources: Vec<&str> = sample.errors.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "/etc/hostname",
                "/proc/loadavg",
                "/proc/meminfo",
                "/proc/uptime",
                "/proc/stat"
            ]
        );
        assert!(sample.errors[1]
            .message
            .contains("/nonexistent/root/xyz/proc/loadavg"));
    }
}
