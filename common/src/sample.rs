//! The payload schema: what the agent measures, as it travels in `MetricPush::data`.
//!
//! Every field is optional (`#[serde(default)]`), so a server reads the samples of older and newer
//! agents alike: a source the agent could not read is `null` and named in `errors`.
//! `series_points` flattens a sample into the named numeric series the server stores; the names
//! are a stable interface (ARCHITECTURE.md lists them).

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning; adding a field does not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// A source the agent could not read this time, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SourceError {
    /// What was being read, e.g. `/proc/meminfo` or `zpool`.
    pub source: String,
    pub message: String,
}

/// The `metric:fast` sample: host CPU, memory, load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FastSample {
    pub schema: u32,
    pub hostname: Option<String>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    /// `MemTotal − MemAvailable`.
    pub mem_used_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub uptime_seconds: Option<u64>,
    /// Busy share of all CPUs since the previous sample, 0–100; null on the first sample.
    pub cpu_percent: Option<f64>,
    /// Busy share of each CPU since the previous sample, 0–100; null on the first sample.
    pub cpu_per_core_percent: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SourceError>,
}

/// One numeric value of a named series, as the server stores it.
pub type SeriesPoint = (String, f64);

impl FastSample {
    /// The numeric series in this sample, e.g. `("load1", 0.42)`, `("cpu.3.percent", 12.5)`.
    pub fn series_points(&self) -> Vec<SeriesPoint> {
        let mut out = Vec::new();
        let mut put = |name: &str, value: Option<f64>| {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                out.push((name.to_owned(), v));
            }
        };
        put("load1", self.load1);
        put("load5", self.load5);
        put("load15", self.load15);
        put("cpu_percent", self.cpu_percent);
        put("mem_total_bytes", self.mem_total_bytes.map(to_f64));
        put("mem_available_bytes", self.mem_available_bytes.map(to_f64));
        put("mem_used_bytes", self.mem_used_bytes.map(to_f64));
        put("swap_total_bytes", self.swap_total_bytes.map(to_f64));
        put(
            "swap_used_bytes",
            self.swap_total_bytes
                .zip(self.swap_free_bytes)
                .map(|(t, f)| to_f64(t.saturating_sub(f))),
        );
        put("uptime_seconds", self.uptime_seconds.map(to_f64));
        if let Some(cores) = &self.cpu_per_core_percent {
            for (i, v) in cores.iter().enumerate() {
                put(&format!("cpu.{i}.percent"), Some(*v));
            }
        }
        out
    }
}

#[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^53
fn to_f64(v: u64) -> f64 {
    v as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase1_payload_without_newer_fields_parses() {
        let sample: FastSample =
            serde_json::from_str(r#"{"hostname":"pve","load1":0.5,"mem_used_bytes":10}"#).unwrap();
        assert_eq!(sample.load1, Some(0.5));
        assert_eq!(sample.cpu_percent, None);
        let points = sample.series_points();
        assert_eq!(
            points,
            vec![
                ("load1".to_owned(), 0.5),
                ("mem_used_bytes".to_owned(), 10.0)
            ]
        );
    }

    #[test]
    fn per_core_series_are_numbered() {
        let sample = FastSample {
            cpu_per_core_percent: Some(vec![1.0, 2.0]),
            ..FastSample::default()
        };
        let names: Vec<String> = sample.series_points().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["cpu.0.percent", "cpu.1.percent"]);
    }
}
