//! Measures the collector on a fixture tree (e.g. one written by `gen_node`): CPU time per fast,
//! medium and slow cycle, the fast payload's size and series count, and the process's resident
//! memory. The first medium cycle is reported apart: it reads the task index and the logs of
//! the backup tasks it lists, which later cycles never read again.
//!
//! `cargo run --release -p proxmox-monitor-agent --example collect_bench -- ROOT [--cycles N]
//! [--pause-ms MS] [--medium-cycles M] [--slow-cycles S]`
//!
//! With `--pause-ms`, the measured cycles are that far apart, as in the agent (whose cycles run
//! with cold caches, other processes having run in between); back to back they measure the
//! collector at its warmest. M and S default to N/10 and N/20; with both 1, two runs that
//! differ only in N differ only by fast cycles, for instruction counts under valgrind.
//!
//! Prints one `name=value` line per metric. CPU time is the on-CPU time (user + system) of all
//! the process's threads from `/proc/self/task/*/schedstat` (nanoseconds) — the calling thread
//! and the collector's reader threads for files outside `/proc` and `/sys` — so it includes
//! the kernel's work of opening and reading every file and of handing reads over; wall time
//! is printed next to it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agent::collect::Collector;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut cycles = 100usize;
    let mut pause = Duration::ZERO;
    let (mut medium_cycles, mut slow_cycles) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cycles" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => cycles = n,
                _ => return usage("--cycles needs a positive number"),
            },
            "--pause-ms" => match args.next().and_then(|v| v.parse().ok()) {
                Some(ms) => pause = Duration::from_millis(ms),
                None => return usage("--pause-ms needs a number of milliseconds"),
            },
            "--medium-cycles" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => medium_cycles = Some(n),
                _ => return usage("--medium-cycles needs a positive number"),
            },
            "--slow-cycles" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => slow_cycles = Some(n),
                _ => return usage("--slow-cycles needs a positive number"),
            },
            other if other.starts_with('-') => return usage(&format!("unknown option {other}")),
            other => root = Some(PathBuf::from(other)),
        }
    }
    let Some(root) = root else {
        return usage("no ROOT");
    };
    if !root.is_dir() {
        return usage(&format!("{} is not a directory", root.display()));
    }

    let mut collector = Collector::new(&root);
    // The first cycle reads and caches the guest configs; the steady state is what matters.
    let start = Instant::now();
    let first = collector.fast_at(start);
    let mut wall = Vec::with_capacity(cycles);
    let mut last = first.clone();
    let cpu_before = thread_cpu();
    for i in 0..cycles {
        // Sleeping is not on-CPU time: only the cycles themselves are counted.
        std::thread::sleep(pause);
        let w0 = Instant::now();
        last = collector.fast_at(start + Duration::from_secs(30 * (i as u64 + 1)));
        wall.push(w0.elapsed());
    }
    // The kernel may account CPU time in scheduler ticks (4 ms at HZ=250), so the per-cycle
    // figure is the mean over all cycles rather than a per-cycle median.
    let cpu_total = cpu_before
        .zip(thread_cpu())
        .map(|(a, b)| b.saturating_sub(a));
    let payload = serde_json::to_vec(&last).map(|v| v.len()).unwrap_or(0);

    let (c0, w0) = (thread_cpu(), Instant::now());
    let mut medium = collector.medium();
    let medium_first_wall = w0.elapsed();
    let medium_first_cpu = c0.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
    let medium_cycles: usize = medium_cycles.unwrap_or((cycles / 10).max(1));
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..medium_cycles {
        medium = collector.medium();
    }
    let medium_wall = w0.elapsed() / u32::try_from(medium_cycles).unwrap_or(1);
    let medium_cpu = c0
        .zip(thread_cpu())
        .map(|(a, b)| b.saturating_sub(a) / u32::try_from(medium_cycles).unwrap_or(1));
    let slow_cycles: usize = slow_cycles.unwrap_or((cycles / 20).max(1));
    let (c0, w0) = (thread_cpu(), Instant::now());
    let mut slow = collector.slow();
    for _ in 1..slow_cycles {
        slow = collector.slow();
    }
    let slow_wall = w0.elapsed() / u32::try_from(slow_cycles).unwrap_or(1);
    let slow_cpu = c0
        .zip(thread_cpu())
        .map(|(a, b)| b.saturating_sub(a) / u32::try_from(slow_cycles).unwrap_or(1));

    println!("root={}", root.display());
    println!("cycles={cycles}");
    println!("guests={}", last.guests.len());
    println!("disks={}", last.disks.len());
    println!("interfaces={}", last.net.len());
    println!("pools={}", medium.pools.len());
    println!(
        "errors={}",
        last.errors.len() + medium.errors.len() + slow.errors.len()
    );
    match cpu_total {
        Some(total) => println!(
            "fast_cycle_cpu_us={}",
            total.as_micros() / u128::try_from(cycles).unwrap_or(1).max(1)
        ),
        None => println!("fast_cycle_cpu_us=unavailable"),
    }
    println!("fast_cycle_wall_us={}", micros(median(&mut wall)));
    println!("fast_cycle_wall_max_us={}", micros(max(&wall)));
    println!("fast_payload_bytes={payload}");
    println!("fast_series_points={}", last.series_points().len());
    println!("medium_series_points={}", medium.series_points().len());
    println!("backups={}", medium.backups.len());
    println!("smart_disks={}", slow.smart.len());
    println!("temperatures={}", last.temperatures.len());
    if let Some(c) = medium_first_cpu {
        println!("medium_first_cycle_cpu_us={}", micros(c));
    }
    println!("medium_first_cycle_wall_us={}", micros(medium_first_wall));
    println!("medium_cycles={medium_cycles}");
    if let Some(c) = medium_cpu {
        println!("medium_cycle_cpu_us={}", micros(c));
    }
    println!("medium_cycle_wall_us={}", micros(medium_wall));
    println!("slow_cycles={slow_cycles}");
    if let Some(c) = slow_cpu {
        println!("slow_cycle_cpu_us={}", micros(c));
    }
    println!("slow_cycle_wall_us={}", micros(slow_wall));
    for e in last.errors.iter().chain(&medium.errors).chain(&slow.errors) {
        eprintln!("error: {}: {}", e.source, e.message);
    }
    match rss_kib("VmRSS:") {
        Some(kib) => println!("rss_kib={kib}"),
        None => println!("rss_kib=unavailable"),
    }
    // Heap and stacks apart from the binary's own pages: code added to the agent shows in
    // the second, data it keeps in the first.
    for (key, name) in [("RssAnon:", "rss_anon_kib"), ("RssFile:", "rss_file_kib")] {
        if let Some(kib) = rss_kib(key) {
            println!("{name}={kib}");
        }
    }
    ExitCode::SUCCESS
}

fn usage(message: &str) -> ExitCode {
    eprintln!("collect_bench: {message}");
    eprintln!(
        "usage: collect_bench ROOT [--cycles N] [--pause-ms MS] [--medium-cycles M] [--slow-cycles S]"
    );
    ExitCode::from(2)
}

/// On-CPU time of this thread so far.
/// On-CPU time of all the process's threads (the reader threads never end, so none is lost).
fn thread_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += text.split_ascii_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// A `/proc/self/status` line (`VmRSS:`, `RssAnon:`...) in KiB.
fn rss_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn max(values: &[Duration]) -> Duration {
    values.iter().max().copied().unwrap_or_default()
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}
